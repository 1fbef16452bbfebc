"""Docker's rules for argv, env, workdir, user and stop signal (pure logic)."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.runtime_config import (
    ConfigError, command_argv, merge_env, needs_user_files, normalize_signal, normalize_workdir, resolve_user,
    runtime_spec)

PASSWD = """root:x:0:0:root:/root:/bin/sh
# a comment, then a malformed line
broken
app:x:1000:1001:app:/app:/bin/sh
www-data:x:33:33::/var/www:/usr/sbin/nologin
"""
GROUP = """root:x:0:
app:x:1001:
video:x:44:app,www-data
audio:x:29: app , other
staff:x:50:www-data
"""


@pytest.mark.parametrize("cfg,entrypoint,cmd,argv", [
    ({"Entrypoint": ["/e"], "Cmd": ["a", "b"]}, None, None, ["/e", "a", "b"]),
    ({"Cmd": ["/bin/sh", "-c", "x y"]}, None, None, ["/bin/sh", "-c", "x y"]),
    ({"Entrypoint": ["/e"], "Cmd": ["a"]}, None, ["z"], ["/e", "z"]),
    # docker run --entrypoint drops the image's CMD
    ({"Entrypoint": ["/e"], "Cmd": ["a"]}, ["/other"], None, ["/other"]),
    ({"Entrypoint": ["/e"], "Cmd": ["a"]}, ["/other"], ["b", ""], ["/other", "b", ""]),
    # an empty entrypoint clears it; cmd alone remains
    ({"Entrypoint": ["/e"], "Cmd": ["a"]}, [], ["/bin/x"], ["/bin/x"]),
    ({"Entrypoint": None, "Cmd": ["/x", "it's", "\"q\"", "$HOME", "a\\b"]}, None, None,
     ["/x", "it's", "\"q\"", "$HOME", "a\\b"]),
])
def test_command_argv_follows_docker_run(cfg, entrypoint, cmd, argv):
    assert command_argv(cfg, entrypoint, cmd) == argv


@pytest.mark.parametrize("cfg,entrypoint,cmd,message", [
    ({}, None, None, "neither Entrypoint nor Cmd"),
    ({"Entrypoint": ["/e"]}, [], None, "neither Entrypoint nor Cmd"),
    ({"Cmd": "nginx -g"}, None, None, "must be a list of words"),
    ({"Cmd": ["/x"]}, None, ["a\0b"], "NUL"),
    ({"Cmd": ["", "x"]}, None, None, "first word"),
])
def test_command_argv_errors_name_the_problem(cfg, entrypoint, cmd, message):
    with pytest.raises(ConfigError, match=message):
        command_argv(cfg, entrypoint, cmd)


def test_env_merge_keeps_order_overrides_in_place_and_allows_spaces_and_equals():
    image = ["PATH=/bin", "A=1", "GREETING=hello world"]
    assert merge_env(image, {"A": "x=y z", "NEW": "v"}) == ["PATH=/bin", "A=x=y z", "GREETING=hello world", "NEW=v"]
    assert merge_env(image, ["PATH=/usr/bin:/bin"]) == ["PATH=/usr/bin:/bin", "A=1", "GREETING=hello world"]
    assert merge_env(["A=1", "A=2"]) == ["A=2"]
    assert merge_env([], {"EMPTY": None, "FLAG": True}) == ["EMPTY=", "FLAG=true"]


@pytest.mark.parametrize("override,message", [
    ({"A": "line1\nline2"}, "newline"),
    (["NOEQUALS"], "not NAME=value"),
    (["=value"], "not NAME=value"),
    ({"A": "x\0"}, "NUL"),
])
def test_env_rejects_newlines_and_bad_names(override, message):
    with pytest.raises(ConfigError, match=message):
        merge_env(["PATH=/bin"], override)


def test_workdir_and_signal_normalisation():
    assert normalize_workdir(None) == "/"
    assert normalize_workdir("app/") == "/app"
    assert normalize_workdir("/srv//data/../www") == "/srv/www"
    assert normalize_signal(None) == "SIGTERM"
    assert normalize_signal("quit") == "SIGQUIT"
    assert normalize_signal("SIGINT") == "SIGINT"
    assert normalize_signal("9") == "SIGKILL"
    assert normalize_signal("SIGRTMIN+3") == "SIGRTMIN+3"
    with pytest.raises(ConfigError, match="unknown stop signal"):
        normalize_signal("SIGNOPE")


@pytest.mark.parametrize("spec,expected", [
    ("", (0, 0, [])),
    ("root", (0, 0, [])),
    ("app", (1000, 1001, [29, 44])),
    ("1000", (1000, 1001, [29, 44])),
    ("www-data", (33, 33, [44, 50])),
    ("app:video", (1000, 44, [])),
    ("app:7", (1000, 7, [])),
    ("4242", (4242, 0, [])),  # a uid passwd does not know: gid 0, as runc
    ("4242:4243", (4242, 4243, [])),
])
def test_resolve_user_from_image_files(spec, expected):
    assert resolve_user(spec, PASSWD, GROUP) == expected


@pytest.mark.parametrize("spec,passwd,group,message", [
    ("nobody", PASSWD, GROUP, "user 'nobody' is not defined in the image"),
    ("app", None, None, "no /etc/passwd"),
    ("app:wheel", PASSWD, GROUP, "group 'wheel' is not defined"),
    ("1000:wheel", PASSWD, None, "no /etc/group"),
    ("app:", PASSWD, GROUP, "expected name"),
    ("99999999999", PASSWD, GROUP, "out of range"),
])
def test_resolve_user_errors(spec, passwd, group, message):
    with pytest.raises(ConfigError, match=message):
        resolve_user(spec, passwd, group)


def test_needs_user_files():
    assert not needs_user_files("1000:1000")
    assert needs_user_files("1000")
    assert needs_user_files("app")
    assert needs_user_files("1000:app")
    assert needs_user_files("\uff11\uff10\uff10\uff10:1000")  # fullwidth digits: a name
    assert not needs_user_files("+1000:+1000")


# What runc's strconv.Atoi takes as a number: ASCII digits after one optional sign.  Fullwidth
# digits and spaces make a name; a passwd line whose id is not such a number is skipped.
ODD = PASSWD + "\uff11\uff10\uff10\uff10:x:7:7::/:/bin/sh\nwide:x:\uff19:9::/:/bin/sh\n"


@pytest.mark.parametrize("spec,expected", [
    ("\uff11\uff10\uff10\uff10", (7, 7, [])),  # the user named with fullwidth digits, not uid 1000
    (" 1000", None),  # a name with a space (that no passwd line has: runc trims lines), not uid 1000
    ("1000 ", None),
    ("+1000", (1000, 1001, [29, 44])),  # Atoi takes a sign: uid 1000
    ("app:+7", (1000, 7, [])),
    ("\u0661\u0660", None),  # Arabic-Indic digits: a name the image lacks
    ("wide", None),  # its uid field is fullwidth: the line is skipped, not read as uid 9
    ("-1", "out of range"),
    ("app:-5", "out of range"),
])
def test_user_numbers_are_ascii_digits_as_runc_reads_them(spec, expected):
    if expected is None:
        with pytest.raises(ConfigError, match="is not defined in the image"):
            resolve_user(spec, ODD, GROUP)
    elif isinstance(expected, str):
        with pytest.raises(ConfigError, match=expected):
            resolve_user(spec, ODD, GROUP)
    else:
        assert resolve_user(spec, ODD, GROUP) == expected


def test_runtime_spec_combines_everything():
    config = {"Entrypoint": ["/bin/sleep"], "Cmd": ["3600"], "Env": ["PATH=/bin"], "WorkingDir": "/app",
              "User": "app", "StopSignal": "SIGQUIT", "Volumes": {"/data/": {}, "/cache": {}},
              "ExposedPorts": {"80/tcp": {}, "443/tcp": {}}, "Labels": {"a": "b"}}
    spec = runtime_spec(config, {"env": {"X": "1"}}, PASSWD, GROUP)
    assert spec == {
        "argv": ["/bin/sleep", "3600"], "env": ["PATH=/bin", "X=1"], "cwd": "/app", "user": "app",
        "uid": 1000, "gid": 1001, "groups": [29, 44], "stop_signal": "SIGQUIT",
        "volumes": ["/cache", "/data"], "exposed_ports": ["443/tcp", "80/tcp"], "labels": {"a": "b"},
    }
    spec = runtime_spec(config, {"user": "0", "workdir": "/", "stop_signal": "INT"}, PASSWD, GROUP)
    assert (spec["uid"], spec["gid"], spec["cwd"], spec["stop_signal"]) == (0, 0, "/", "SIGINT")
