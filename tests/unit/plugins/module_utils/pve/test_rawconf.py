"""Raw lxc.* lines written into a Proxmox VE container conf (pure logic and a temp file)."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.rawconf import apply, merged

CONF = """arch: amd64
hostname: web1
lxc.init.cwd: /old
lxc.apparmor.profile: unconfined
lxc.environment: OLD=1
memory: 512

[before-upgrade]
arch: amd64
lxc.init.cwd: /snap
"""


def test_only_managed_keys_change_and_snapshots_stay():
    lines = ["lxc.init.cmd = /bin/sleep 3600", "lxc.init.cwd = /srv/app", "lxc.environment = A=b c"]
    out = merged(CONF, lines)
    assert out == ("arch: amd64\nhostname: web1\nlxc.apparmor.profile: unconfined\nmemory: 512\n"
                   "lxc.init.cmd: /bin/sleep 3600\nlxc.init.cwd: /srv/app\nlxc.environment: A=b c\n\n"
                   "[before-upgrade]\narch: amd64\nlxc.init.cwd: /snap\n")
    assert merged(out, lines) == out  # idempotent


def test_apply_writes_once_and_refuses_off_node(tmp_path):
    (tmp_path / "120.conf").write_text(CONF)
    lines = ["lxc.init.uid = 1000"]
    assert apply(120, lines, str(tmp_path), check_mode=True) is True
    assert (tmp_path / "120.conf").read_text() == CONF
    assert apply(120, lines, str(tmp_path)) is True
    assert "lxc.init.uid: 1000" in (tmp_path / "120.conf").read_text()
    assert apply(120, lines, str(tmp_path)) is False
    with pytest.raises(OSError, match="Proxmox VE node"):
        apply(120, lines, str(tmp_path / "nope"))
