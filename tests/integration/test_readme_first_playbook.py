"""README.md's "Your first playbook" section, run as written, and its Contents table checked against the tree.

The section's steps are the fenced blocks that follow a ``<!-- first-playbook: NAME -->`` comment. The test
runs them in order as a reader would, from the repository's top directory, changing only what would collide
with the reader (or another run): the double's directory (``/var/tmp/lxcri-first``, which also names its
dataset and pidfile and prefixes the image directory), its port (``18106``) and the image's repository
(``first/hello``). The README's setup block (``make testbed-up install-collection`` and
``ANSIBLE_COLLECTIONS_PATH``) is what the ``bed`` and ``installed_collection`` fixtures do: the collection is
built into a tarball and installed from it, and ``ansible-playbook`` gets that path.

Everything checked is real: the container is read from the double's API (verified against the certificate
the README names as ``ca_path``), from LXC and from /proc, and the page it serves is fetched by the README's
own command.
"""

import glob
import os
import re
import shlex
import socket
import subprocess
import uuid

import pytest
import requests
import yaml

from lxcri_testbed.ansible import REPO_ROOT
from lxcri_testbed.bed import LXC_PVE_CURRENT
from pve_double.server import DEFAULT_PASSWORD

pytestmark = pytest.mark.integration

README = os.path.join(REPO_ROOT, "README.md")
SECTION = "## Your first playbook"
MARK = re.compile(r"^<!-- first-playbook: (\S+) -->\n```(\w+)\n(.*?)^```$", re.M | re.S)
STEPS = ["double", "image", "first.yml", "run", "look", "remove", "stop"]
# what the README writes, and what this run uses instead
README_DIR, README_PORT, README_REPO = "/var/tmp/lxcri-first", "18106", "first/hello"
PAGE = "Hello from my first image"


def section():
    with open(README) as handle:
        text = handle.read()
    start = text.index(SECTION + "\n")
    end = text.find("\n## ", start + len(SECTION))
    return text[start:end if end >= 0 else len(text)]


def readme_steps():
    """{name: (language, text)} of the section's marked blocks, in the README's order."""
    found = MARK.findall(section())
    assert [name for name, dummy, dummy in found] == STEPS, "the README's first-playbook steps changed"
    return dict((name, (lang, body)) for name, lang, body in found)


def playbook_argv(line):
    """(extra vars, playbook) of a README line ``.venv/bin/ansible-playbook -i localhost, FILE [-e K=V]``."""
    argv = shlex.split(line)
    assert argv[:3] == [".venv/bin/ansible-playbook", "-i", "localhost,"], line
    extra, rest = {}, argv[3:]
    while rest and rest[0] != "-e":
        playbook, rest = rest[0], rest[1:]
    while rest:
        assert rest[0] == "-e" and "=" in rest[1], line
        key, dummy, value = rest[1].partition("=")
        extra[key], rest = value, rest[2:]
    return extra, playbook


def api(port, ca_path):
    """A logged-in requests session on the double, verifying its certificate with the README's ca_path."""
    base = "https://127.0.0.1:%d/api2/json" % port
    # verify per request: a session's verify loses to REQUESTS_CA_BUNDLE in the environment
    login = requests.post(base + "/access/ticket", data={"username": "root@pam", "password": DEFAULT_PASSWORD},
                          timeout=10, verify=ca_path)
    login.raise_for_status()
    cookies = {"PVEAuthCookie": login.json()["data"]["ticket"]}
    return lambda path: requests.get(base + path, cookies=cookies, timeout=10, verify=ca_path).json()["data"]


def result(run, task):
    """The result of the play's task named ``task``."""
    found = [t["result"] for t in run.results["tasks"] if t["task"] == task]
    assert len(found) == 1, (task, run)
    return found[0]


def lxc(lxc_path, vmid, option):
    return subprocess.run([os.path.join(LXC_PVE_CURRENT, "bin", "lxc-info"), "-P", lxc_path, "-n", str(vmid), option, "-H"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, check=False).stdout.strip()


def datasets():
    return subprocess.run(["zfs", "list", "-H", "-o", "name"], stdout=subprocess.PIPE, universal_newlines=True,
                          check=True).stdout.split()


def app_argv(lxc_path, vmid):
    """The argv of the container's web server: its init itself (9.1) or the generated init's child (8)."""
    init = lxc(lxc_path, vmid, "-p")
    pids = [init] + [entry for entry in os.listdir("/proc") if entry.isdigit() and parent(entry) == init]
    for pid in pids:
        with open("/proc/%s/cmdline" % pid, "rb") as handle:
            argv = [word.decode() for word in handle.read().split(b"\0")[:-1]]
        if argv and argv[0] == "/bin/httpd":
            return pid == init, argv
    raise AssertionError("no /bin/httpd at or under the init of CT %s" % vmid)


def parent(pid):
    try:
        with open("/proc/%s/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[1]
    except (OSError, IndexError):
        return None


@pytest.mark.parametrize("mode", ["9.1", "8"])
def test_first_playbook_runs_as_written(installed_collection, bed, tmp_path, mode):
    """The README's steps in both of the double's modes: the default 9.1, and 8 as the README says
    (PVE_DOUBLE_MODE=8), where the same playbook picks a plain template with the generated init."""
    for tool in ("umoci", "skopeo", os.path.join(LXC_PVE_CURRENT, "bin", "lxc-attach")):
        assert subprocess.run(["which", tool], stdout=subprocess.DEVNULL, check=False).returncode == 0, tool
    assert "127.0.0.1:45000" == bed["registry"]["host"]  # the README's registry is the test bed's open one
    steps = readme_steps()
    own = uuid.uuid4().hex[:10]
    directory = str(tmp_path / ("lxcri-first-" + own))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    for value in (README_DIR, README_PORT, README_REPO):
        assert value in section(), value

    def private(text):
        return (text.replace(README_DIR, directory).replace(README_PORT, str(port))
                .replace(README_REPO, "first/hello-" + own))

    def shell(name):
        lang, body = steps[name]
        assert lang == "sh"
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", private(body)], cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                              env=installed_collection.env(PVE_DOUBLE_MODE=mode), timeout=300, check=False)
        assert proc.returncode == 0, (name, proc.stdout[-3000:])
        return proc.stdout

    lang, play = steps["first.yml"]
    assert lang == "yaml"
    playbook = tmp_path / "first.yml"
    playbook.write_text(private(play))
    defaults = yaml.safe_load(private(play))[0]["module_defaults"]["group/lxcri.proxmox.pve"]
    assert defaults["ca_path"] == os.path.join(directory, "pve-double.crt")

    def ansible(name):
        lang, body = steps[name]
        lines = [line for line in body.splitlines() if line.strip()]
        assert lang == "sh" and len(lines) == 1, body
        extra, path = playbook_argv(lines[0])
        assert path == "first.yml"
        return installed_collection.playbook(str(playbook), inventory="localhost,", extra_vars=extra or None)

    lxc_path = os.path.join(directory, "lxc")
    zfs_root = "%s/%s" % (bed["zfs"]["pool"], os.path.basename(directory))
    pidfile = directory + ".pid"
    started = False
    try:
        out = shell("double")
        started = True
        assert "PVE API test double (mode %s) at https://127.0.0.1:%d/api2/json" % (mode, port) in out, out
        assert "local (dir)" in out and "local-zfs (zfspool)" in out, out
        assert os.path.exists(defaults["ca_path"]) and zfs_root in datasets()
        get = api(port, defaults["ca_path"])  # the README's ca_path verifies the double's certificate

        shell("image")
        manifest = requests.get("http://127.0.0.1:45000/v2/first/hello-%s/manifests/1" % own, timeout=10,
                                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert manifest.status_code == 200, manifest.text

        first = ansible("run")
        assert first.rc == 0, first
        template = result(first, "Build a template from the image and upload it to the storage local")
        container = result(first, "Run it as the container hello")
        assert template["changed"] and template["volid"].startswith("local:vztmpl/"), template
        assert template["digest"] == manifest.headers["Docker-Content-Digest"], template  # the image pushed
        # the format the play chose from lxc_container_info: an OCI archive on 9.1, a zstd vztmpl on 8
        assert template["volid"].endswith(".tar" if mode == "9.1" else ".tar.zst"), template
        assert container["changed"] and container["vmid"] == 100 and "created" in container["actions"], container
        cts = [r for r in get("/cluster/resources?type=vm") if r.get("vmid") == 100]
        assert len(cts) == 1
        status = get("/nodes/pve1/lxc/100/status/current")
        assert status["status"] == "running" and status["name"] == "hello", status
        config = get("/nodes/pve1/lxc/100/config")
        assert config["hostname"] == "hello" and config["rootfs"].startswith("local-zfs:subvol-100-disk-0")
        assert config.get("entrypoint") == ("/bin/httpd -f -p 8080 -h /www" if mode == "9.1" else None), config
        assert lxc(lxc_path, 100, "-s") == "RUNNING"
        assert app_argv(lxc_path, 100) == (mode == "9.1", ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"])
        assert "%s/subvol-100-disk-0" % zfs_root in datasets()

        again = ansible("run")
        assert again.rc == 0, again
        assert again.stats["localhost"]["changed"] == 0, again.task_results()
        assert shell("look").strip() == PAGE

        removed = ansible("remove")
        assert removed.rc == 0, removed
        gone = result(removed, "Run it as the container hello")
        assert gone["changed"] and gone["vmid"] == 100, gone
        assert [r for r in get("/cluster/resources?type=vm") if r.get("vmid") == 100] == []
        assert not os.path.exists(os.path.join(lxc_path, "100"))
        assert "%s/subvol-100-disk-0" % zfs_root not in datasets()

        out = shell("stop")
        started = False
        assert "PVE API test double stopped" in out, out
        assert not os.path.exists(directory) and not os.path.exists(pidfile)
        assert zfs_root not in datasets()
        assert not glob.glob(directory + "-image*")  # the README's image directory went too
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get("https://127.0.0.1:%d/api2/json/version" % port, verify=False, timeout=5)
    finally:
        if started:  # a failed step: stop the double as the README does, whatever is left
            subprocess.run(["bash", "-c", private(steps["stop"][1])], cwd=REPO_ROOT, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def test_readme_contents_lists_everything():
    """The Contents table names every module, role and playbook and the action group; the registries are the
    test bed's."""
    with open(README) as handle:
        text = handle.read()
    contents = text[text.index("## Contents"):text.index(SECTION)]
    with open(os.path.join(REPO_ROOT, "meta", "runtime.yml")) as handle:
        groups = yaml.safe_load(handle)["action_groups"]
    rows = re.findall(r"^\| (module|role|playbook|action group|\w+ plugin) \| `lxcri\.proxmox\.(\w+)` \|",
                      contents, re.M)
    listed = {}
    for kind, name in rows:
        listed.setdefault(kind, []).append(name)

    def names(pattern, strip):
        return [strip(path) for path in glob.glob(os.path.join(REPO_ROOT, pattern))
                if not os.path.basename(path).startswith("_")]

    modules = names("plugins/modules/*.py", lambda path: os.path.basename(path)[:-3])
    present = {"module": modules, "action group": list(groups),
               "role": names("roles/*/tasks/main.yml", lambda path: path.split(os.sep)[-3]),
               "playbook": names("playbooks/*.yml", lambda path: os.path.basename(path)[:-4])}
    # other plugin types (inventory, filter, lookup, ...) are listed as '<type> plugin'; an action plugin named
    # after its module is part of that module, and doc fragments and utils are no content of their own
    for path in names("plugins/*/*.py", lambda path: path):
        kind, name = path.split(os.sep)[-2], os.path.basename(path)[:-3]
        if kind in ("modules", "module_utils", "doc_fragments", "plugin_utils") or (kind == "action" and
                                                                                    name in modules):
            continue
        present.setdefault("%s plugin" % kind, []).append(name)
    assert dict((k, sorted(v)) for k, v in listed.items()) == dict((k, sorted(v)) for k, v in present.items())
    assert "ansible-doc -t role lxcri.proxmox.<role>" in text
    from lxcri_testbed import (REGISTRY_AUTH_PORT, REGISTRY_PORT, REGISTRY_TLS_PORT, REGISTRY_TOKEN_PORT,
                               TOKEN_SERVER_PORT)
    for port in (REGISTRY_PORT, REGISTRY_AUTH_PORT, REGISTRY_TOKEN_PORT, TOKEN_SERVER_PORT, REGISTRY_TLS_PORT):
        assert text.count("`:%d`" % port) >= 2, port  # in the Tests table and in the first playbook
