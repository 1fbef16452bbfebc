"""Engines take their defaults from the modules' argument specs, not from a copy of their own."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.argspec import defaults_of
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import manager, template
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs import dataset, snapshot

ENGINES = [
    (manager.DEFAULTS, manager.image_argument_spec, {"image"}),
    (template.DEFAULTS, template.template_argument_spec, {"image"}),
    (dataset.DEFAULTS, dataset.dataset_argument_spec, {"name", "driver"}),
    (snapshot.DEFAULTS, snapshot.snapshot_argument_spec, {"name", "driver"}),
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
