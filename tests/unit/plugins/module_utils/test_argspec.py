"""Engines take their defaults from the modules' argument specs, not from a copy of their own."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.argspec import defaults_of, with_defaults
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import manager, template
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve import container as pve_container
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve import snapshot as pve_snapshot
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs import dataset, snapshot

ENGINES = [
    (manager.DEFAULTS, manager.image_argument_spec, {"image"}),
    (template.DEFAULTS, template.template_argument_spec, {"image"}),
    (dataset.DEFAULTS, dataset.dataset_argument_spec, {"name", "driver"}),
    (snapshot.DEFAULTS, snapshot.snapshot_argument_spec, {"name", "driver"}),
    (pve_container.DEFAULTS, pve_container.container_argument_spec, set()),
    (pve_snapshot.DEFAULTS, pve_snapshot.snapshot_argument_spec, {"name"}),
]


@pytest.mark.parametrize("defaults,make_spec,left_out", ENGINES)
def test_engine_defaults_are_the_spec_defaults(defaults, make_spec, left_out):
    spec = make_spec()
    assert set(defaults) == set(spec) - left_out
    for name, value in defaults.items():
        assert value == spec[name].get("default"), name


def test_defaults_of_copies_mutable_defaults():
    spec = {"roots": {"type": "list", "default": []}, "name": {"type": "str", "required": True}}
    first = defaults_of(spec)
    first["roots"].append("tank")
    assert defaults_of(spec) == {"roots": [], "name": None}
    assert defaults_of(spec, leave_out=("name",)) == {"roots": []}


def test_engines_without_ansible_get_the_spec_defaults():
    images = manager.ImageManager({"image": "oci-layout:/nonexistent"})
    assert images.params["state"] == "present" and images.params["timeout"] == 60
    assert images.bound.max_bytes == 32 << 30  # the spec's "32G", read by the engine


def test_with_defaults_fills_left_out_and_none_and_keeps_other_keys():
    merged = with_defaults({"state": None, "force": True, "api_password": None}, {"state": "present", "force": False})
    assert merged == {"state": "present", "force": True, "api_password": None}


class _NoClient:
    """The pve engines below must not call the API while they are only built."""

    def __getattr__(self, name):
        raise AssertionError("unexpected API call %s" % name)


def test_pve_engines_without_ansible_get_the_spec_defaults():
    containers = pve_container.ContainerManager({"vmid": 100}, client=_NoClient())
    assert containers.params["state"] == "present" and containers.params["on_mismatch"] == "fail"
    assert containers.params["shutdown_timeout"] == pve_container.DEFAULT_SHUTDOWN_TIMEOUT
    assert containers.params["raw_lxc_dir"] == "/etc/pve/lxc" and containers.params["restart"] == "never"
    snapshots = pve_snapshot.SnapshotManager({"vmid": 100, "name": "s1", "state": None}, client=_NoClient())
    assert snapshots.params["state"] == "present" and snapshots.params["start"] is False
