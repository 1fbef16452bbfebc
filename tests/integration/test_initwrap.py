"""Generated init scripts and lxc.init.cmd encoding, run in real LXC containers (LXC 5.0 here).

The test image is busybox-static: its /bin/sh is BusyBox ash.  Its BusyBox
has no chpst/setuidgid and a setpriv without --reuid, and the host's setpriv
is dynamically linked, so the user switch is tested with BusyBox su (linked
into the unpacked rootfs here; choose_drop_tool finds it through the
account).  test_init_wrapper_under_dash_with_setpriv covers Debian's dash,
util-linux setpriv and coreutils env on the host, in a PID namespace.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import initwrap, lxcinit
from lxcri_testbed.bed import run
from lxcri_testbed.lxc import lxc_info

# The app: records that it started, traps its stop signal (writes the signal's name to /tmp/stopped and
# exits 7), optionally leaves an orphan behind, and otherwise waits.
APP = r"""
echo started > /tmp/started
trap 'echo TERM > /tmp/stopped; exit 7' TERM
trap 'echo USR1 > /tmp/stopped; exit 7' USR1
trap 'echo INT > /tmp/stopped; exit 7' INT
if [ "$1" = orphan ]; then ( sleep 2 & ) ; fi
while :; do sleep 1 & wait $!; done
"""
ARGS = ["a b", "", "it's", "$HOME", "back\\slash", "tab\there", 'dq"x', "  lead", "trail  ", "*", "é"]
ENV = ["PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello  world ", "QUOTED='\"x\"'", "EMPTY=", "MULTI=a\nb",
       "HOME=/nowhere"]


def _env_dict(items):
    return dict(item.split("=", 1) for item in items)


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def _state(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _proc(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as handle:
        cmdline = handle.read()
    with open("/proc/%d/environ" % pid, "rb") as handle:
        environ = handle.read()
    with open("/proc/%d/status" % pid) as handle:
        status = dict(line.split(":", 1) for line in handle.read().splitlines() if ":" in line)
    return {
        "cmdline": cmdline,
        "env": dict(item.decode("utf-8").split("=", 1) for item in environ.split(b"\0") if item),
        "cwd": os.readlink("/proc/%d/cwd" % pid),
        "uid": int(status["Uid"].split()[1]),
        "gid": int(status["Gid"].split()[1]),
        "groups": sorted(int(g) for g in status["Groups"].split()),
        "sigign": int(status["SigIgn"].strip(), 16),
    }


def _wait_for(predicate, timeout=10, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def _app_child(init_pid, cmdline_prefix):
    """The init's child whose cmdline starts with ``cmdline_prefix`` (once the drop tool/env/sh steps exec'd)."""
    def find():
        for child in _children(init_pid):
            try:
                if _proc(child)["cmdline"].startswith(cmdline_prefix):
                    return child
            except OSError:
                continue
        return None
    return _wait_for(find)


def _cmdline(argv):
    return b"".join(word.encode("utf-8") + b"\0" for word in argv)


def _after_exec(pid, script):
    """/proc of ``pid`` once it no longer runs the wrapper ``script`` (LxcRunner returns as soon as init runs)."""
    wrapper = _cmdline(["/bin/sh", script])
    assert _wait_for(lambda: _proc(pid)["cmdline"] != wrapper), "%s never exec'd" % script
    return _proc(pid)


def _write(rootfs, path, data, mode=0o755):
    full = os.path.join(rootfs, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    if os.path.lexists(full):
        os.unlink(full)
    with open(full, "wb") as handle:
        handle.write(data)
    os.chmod(full, mode)
    os.chown(full, 0, 0)


def _lxc_stop(bed, name, timeout=20):
    started = time.time()
    proc = run(["lxc-stop", "-P", bed["lxc_path"], "-n", name, "-t", str(timeout)], check=False, timeout=timeout + 30)
    return proc, time.time() - started


# ---------------------------------------------------------------------------
# lxc.init.cmd under LXC 5.0

TRICKY_VALUES = [
    "/bin/sh /bin/hold a  b",
    "/bin/sh /bin/hold 'a b'",
    "/bin/sh /bin/hold a\tb\t",
    '"/bin/sh /bin/hold x"',
    "'/bin/sh /bin/hold \"x\" '",
    "   /bin/sh   /bin/hold  q  ",
    '"/bin/sh /bin/hold "x""',
    "/bin/sh /bin/hold a=b $HOME \\n",
    "/bin/sh /bin/hold 'x",
    "/bin/sh /bin/hold \"'\" '\"'",
    "'/bin/sh /bin/hold x'y'",
    "/bin/sh /bin/hold #no-comment \u00e9 `y` $(z)",
    "\t/bin/sh /bin/hold \t x \t",
    "/bin/sh /bin/hold ''",
]


def test_lxc5_model_matches_real_lxc(lxc_runner, image_rootfs):
    assert lxc_runner.__class__.__name__ == "LxcRunner"
    version = run(["lxc-start", "--version"]).stdout.strip()
    assert not lxcinit.lxc_splits_quoted(version), "this test checks the pre-6.0 model against the local LXC"
    seen = set()
    for value in TRICKY_VALUES:
        init = lxc_runner.start(image_rootfs, value)
        expected = lxcinit.split_init_cmd(value, version)
        assert init.argv == expected, value
        seen.add(tuple(init.argv))
        lxc_runner.stop(init.name)
    assert len(seen) == len(TRICKY_VALUES) - 1  # two values differ only in blanks around words


ROUND_TRIP_ARGVS = [
    ["/bin/sh", "/bin/hold", "'a", "b'", "tab\tin", "x\t", '"q"', "$HOME"],
    ["/bin/sh", "/bin/hold", "'lone"],
    ["/bin/sh", "/bin/hold", "end'"],
    ["/bin/sh", "/bin/hold", "\tlead", "\u00e9\\"],
]


@pytest.mark.parametrize("argv", ROUND_TRIP_ARGVS)
def test_lxc5_encoding_round_trips_in_real_lxc(lxc_runner, image_rootfs, argv):
    version = run(["lxc-start", "--version"]).stdout.strip()
    value = lxcinit.encode_init_cmd(argv, version)
    init = lxc_runner.start(image_rootfs, value)
    with open("/proc/%d/cmdline" % init.pid, "rb") as handle:
        assert handle.read() == _cmdline(argv)


def test_lxc6_model_matches_real_lxc_pve(lxc6_runner, image_rootfs):
    """lxcinit's model of LXC 6.0's lxc.init.cmd splitting, against lxc-pve 6.0.5 (Proxmox VE 9.1's LXC)."""
    values = TRICKY_VALUES + ['/bin/sh /bin/hold "a b" \'c  d\' e"f g"h', "/bin/sh /bin/hold \"\" ''",
                              '/bin/sh /bin/hold "unterminated']
    for value in values:
        expected = lxcinit.split_init_cmd(value, lxc6_runner.tools.version)
        assert expected, value  # each of these leaves at least one word
        init = lxc6_runner.start(image_rootfs, value)
        assert init.argv == expected, value
        lxc6_runner.stop(init.name)


@pytest.mark.parametrize("argv", ROUND_TRIP_ARGVS + [["/bin/sh", "/bin/hold", "two words", "", "it's", 'say "x"']])
def test_lxc6_encoding_round_trips_in_real_lxc_pve(lxc6_runner, image_rootfs, argv):
    value = lxcinit.encode_init_cmd(argv, lxc6_runner.tools.version)
    init = lxc6_runner.start(image_rootfs, value)
    with open("/proc/%d/cmdline" % init.pid, "rb") as handle:
        assert handle.read() == _cmdline(argv)


def test_lxc5_refuses_what_it_cannot_express():
    for argv in (["/bin/x", "a b"], ["/bin/x", ""]):
        with pytest.raises(lxcinit.NotExpressible):
            lxcinit.encode_init_cmd(argv, "5.0.2")


def test_lxc_config_lines_survive_real_lxc(lxc_runner, image_rootfs):
    env = ["GREETING=hello  world ", "QUOTED='x'", "LEAD=\tx", "EQ=a=b", "EMPTY="]
    os.makedirs(os.path.join(image_rootfs, "app", " odd dir "))
    lines = lxcinit.lxc_config_lines("/app/ odd dir ", 1000, 1000, env, "SIGUSR1", groups=[1000, 5])
    init = lxc_runner.start(image_rootfs, "/bin/hold", extra=lines)
    assert init.argv == ["/bin/sh", "/bin/hold"]
    assert {k: v for k, v in init.env.items() if k != "container"} == _env_dict(env)
    assert init.cwd == "/app/ odd dir "
    assert (init.uid, init.gid) == (1000, 1000)
    assert _proc(init.pid)["groups"] == [5, 1000]


# ---------------------------------------------------------------------------
# exec wrapper

def test_exec_wrapper_runs_what_lxc5_cannot_express(lxc_runner, image_rootfs):
    argv = ["/bin/sh", "-c", APP, "app"] + ARGS
    with pytest.raises(lxcinit.NotExpressible):
        lxcinit.encode_init_cmd(argv, "5.0")
    _write(image_rootfs, initwrap.EXEC_WRAPPER_PATH, initwrap.exec_wrapper(argv, ENV))
    init = lxc_runner.start(image_rootfs, initwrap.EXEC_WRAPPER_PATH, cwd="/app", extra=["lxc.environment = JUNK=1"])
    proc = _after_exec(init.pid, initwrap.EXEC_WRAPPER_PATH)
    assert proc["cmdline"] == _cmdline(argv)
    assert proc["env"] == _env_dict(ENV)  # not LXC's container=lxc/JUNK, not the shell's PWD/SHLVL
    assert proc["cwd"] == "/app"


def test_exec_wrapper_without_env_leaves_lxcs_environment(lxc_runner, image_rootfs):
    argv = ["/bin/sh", "-c", APP, "app", "", "x y"]
    _write(image_rootfs, initwrap.EXEC_WRAPPER_PATH, initwrap.exec_wrapper(argv))
    init = lxc_runner.start(image_rootfs, initwrap.EXEC_WRAPPER_PATH, env={"FROM_LXC": "yes"})
    proc = _after_exec(init.pid, initwrap.EXEC_WRAPPER_PATH)
    assert proc["cmdline"] == _cmdline(argv)
    assert proc["env"]["FROM_LXC"] == "yes" and proc["env"]["container"] == "lxc"


# ---------------------------------------------------------------------------
# init wrapper

def _start_init(lxc_runner, rootfs, argv, uid=0, gid=0, groups=(), stop_signal=None, tool=None):
    script = initwrap.init_wrapper(argv, ENV, "/app", uid, gid, list(groups), stop_signal, tool)
    _write(rootfs, initwrap.INIT_WRAPPER_PATH, script)
    init = lxc_runner.start(rootfs, initwrap.INIT_WRAPPER_PATH)
    assert _proc(init.pid)["cmdline"] == _cmdline(["/bin/sh", initwrap.INIT_WRAPPER_PATH])
    app = _app_child(init.pid, _cmdline(argv[:3]))
    assert app, "no app child under init; log:\n%s" % init.log
    return init, app


def test_init_wrapper_runs_the_app_exactly_as_root(lxc_runner, image_rootfs):
    argv = ["/bin/sh", "-c", APP, "app"] + ARGS
    init, app = _start_init(lxc_runner, image_rootfs, argv)
    proc = _proc(app)
    assert proc["cmdline"] == _cmdline(argv)
    assert proc["env"] == _env_dict(ENV)
    assert proc["cwd"] == "/app"
    assert (proc["uid"], proc["gid"], proc["groups"]) == (0, 0, [])
    assert _children(init.pid) == [app]  # the app is init's direct child; no shell or tool left between


def _busybox_su(rootfs):
    os.symlink("busybox", os.path.join(rootfs, "bin", "su"))

    def exists(path):
        return os.path.isfile(os.path.join(rootfs, path.lstrip("/")))

    def is_busybox(path):
        return os.path.basename(os.path.realpath(os.path.join(rootfs, path.lstrip("/")))) == "busybox"
    return exists, is_busybox


def test_init_wrapper_switches_user_with_busybox_su(lxc_runner, image_rootfs):
    exists, is_busybox = _busybox_su(image_rootfs)
    assert initwrap.choose_drop_tool(exists, 1000, [1000], is_busybox=is_busybox) is None  # su needs the account
    tool = initwrap.choose_drop_tool(exists, 1000, [1000], account=("app", 1000, [1000]), is_busybox=is_busybox)
    assert (tool.name, tool.path, tool.user) == ("su", "/bin/su", "app")
    argv = ["/bin/sh", "-c", APP, "app"] + ARGS
    init, app = _start_init(lxc_runner, image_rootfs, argv, uid=1000, gid=1000, groups=[1000], tool=tool)
    proc = _proc(app)
    assert proc["cmdline"] == _cmdline(argv)
    assert proc["env"] == _env_dict(ENV)  # su -p's and the shell's additions are gone, HOME is the image's
    assert proc["cwd"] == "/app"
    assert (proc["uid"], proc["gid"], proc["groups"]) == (1000, 1000, [1000])
    assert _proc(init.pid)["uid"] == 0


def test_init_wrapper_refuses_a_user_switch_without_a_tool():
    with pytest.raises(initwrap.WrapperError):
        initwrap.init_wrapper(["/bin/true"], [], "/", 1000, 1000, [], None, None)


@pytest.mark.parametrize("stop_signal,marker", [(None, "TERM"), ("SIGUSR1", "USR1")])
def test_lxc_stop_reaches_the_app_as_its_stop_signal(lxc_runner, image_rootfs, bed, stop_signal, marker):
    argv = ["/bin/sh", "-c", APP, "app"]
    init, app = _start_init(lxc_runner, image_rootfs, argv, stop_signal=stop_signal)
    assert _wait_for(lambda: os.path.exists(os.path.join(image_rootfs, "tmp", "started")))
    proc, took = _lxc_stop(bed, init.name, timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert took < 10, "lxc-stop needed %.1fs: the halt signal did not end the app" % took
    with open(os.path.join(image_rootfs, "tmp", "stopped")) as handle:
        assert handle.read().strip() == marker
    assert lxc_info(bed["lxc_path"], init.name)[0] == "STOPPED"
    log = lxc_runner._log(os.path.join(bed["lxc_path"], init.name, "lxc.log"))
    assert "Child <%d> ended on error (7)" % init.pid in log, log[-2000:]  # the app's exit status


def _orphan_is_reaped(init_pid, app_pid, sleeper=("sleep", "2")):
    """The orphan (a ``sleep 2`` whose parent exited) gets re-parented to init, and is reaped after it exits."""
    def orphan():
        for child in _children(init_pid):
            try:
                with open("/proc/%d/cmdline" % child, "rb") as handle:
                    cmdline = handle.read()
            except OSError:  # it ended between the listing and the read (a zombie's environ says ESRCH)
                continue
            if child != app_pid and cmdline == _cmdline(sleeper):
                return child
        return None
    adopted = _wait_for(orphan, timeout=5, step=0.05)
    assert adopted, "the orphan never became a child of init"
    reaped = _wait_for(lambda: _state(adopted) is None, timeout=6)
    return reaped, adopted


def test_init_wrapper_reaps_orphans(lxc_runner, image_rootfs):
    argv = ["/bin/sh", "-c", APP, "app", "orphan"]
    init, app = _start_init(lxc_runner, image_rootfs, argv)
    reaped, adopted = _orphan_is_reaped(init.pid, app)
    assert reaped, "the orphan %d stayed as %s" % (adopted, _state(adopted))
    assert _state(app) in ("S", "R")  # the app itself runs on


def test_orphan_stays_a_zombie_under_a_non_reaping_init(lxc_runner, image_rootfs):
    """The control for the test above: the same orphan under an init that never waits stays a zombie."""
    init = lxc_runner.start(image_rootfs, "/bin/sh -c (sleep${IFS}2&);exec${IFS}/bin/sleep${IFS}1000")
    reaped, adopted = _orphan_is_reaped(init.pid, None)
    assert not reaped and _state(adopted) == "Z"


def test_init_wrapper_exits_with_the_apps_status(lxc_runner, image_rootfs, bed):
    argv = ["/bin/sh", "-c", "sleep 1; exit 5"]
    init, app = _start_init(lxc_runner, image_rootfs, argv)
    assert _wait_for(lambda: lxc_info(bed["lxc_path"], init.name)[0] == "STOPPED", timeout=10)
    log = lxc_runner._log(os.path.join(bed["lxc_path"], init.name, "lxc.log"))
    assert "Child <%d> ended on error (5)" % init.pid in log, log[-2000:]


# ---------------------------------------------------------------------------
# the same script under Debian's dash, with util-linux setpriv and coreutils env (host tools)

def test_init_wrapper_under_dash_with_setpriv(bed, tmp_path):
    for tool in ("/bin/dash", "/usr/bin/setpriv", "/usr/bin/unshare", "/usr/bin/env"):
        assert os.path.exists(tool), tool
    tmp_path = tmp_path.__class__(tempfile.mkdtemp(prefix="lxcri-initwrap-", dir="/tmp"))
    os.chmod(str(tmp_path), 0o777)
    marker = tmp_path / "stopped"
    app = "trap 'echo INT > %s; exit 7' INT\n( sleep 2 & )\nwhile :; do sleep 1 & wait $!; done\n" % marker
    argv = ["/bin/dash", "-c", app, "app"] + ARGS
    tool = initwrap.choose_drop_tool(lambda p: p == "/usr/bin/setpriv", 1000, [5, 1000])
    assert tool.name == "setpriv"
    script = tmp_path / "init"
    script.write_bytes(initwrap.init_wrapper(argv, ENV, str(tmp_path), 1000, 1000, [5, 1000], "SIGINT", tool))
    proc = subprocess.Popen(["unshare", "--fork", "--pid", "--mount-proc", "/bin/dash", str(script)],
                            stdin=subprocess.DEVNULL)
    try:
        def init_pid():
            for child in _children(proc.pid):
                return child
            return None
        init = _wait_for(init_pid)
        app_pid = _app_child(init, _cmdline(argv[:3]))
        assert app_pid
        got = _proc(app_pid)
        assert got["cmdline"] == _cmdline(argv)
        assert got["env"] == _env_dict(ENV)
        assert got["cwd"] == str(tmp_path)
        assert (got["uid"], got["gid"], got["groups"]) == (1000, 1000, [5, 1000])
        assert got["sigign"] & (1 << (signal.SIGINT - 1)) == 0, "the app starts with SIGINT ignored"
        reaped, adopted = _orphan_is_reaped(init, app_pid)
        assert reaped, "dash left the orphan %d as %s" % (adopted, _state(adopted))
        os.kill(init, signal.SIGPWR)
        assert proc.wait(timeout=10) == 7
        assert marker.read_text().strip() == "INT"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(str(tmp_path), ignore_errors=True)
