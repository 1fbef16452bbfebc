"""Every shared doc fragment describes exactly the argument spec that the modules merge in."""

import pytest
import yaml

from ansible_collections.lxcri.proxmox.plugins.doc_fragments import check_mode_plan, image_limits, pve, registry, zfs
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.manager import (
    image_limits_argument_spec, registry_argument_spec)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.checkplan import check_mode_plan_argument_spec
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import pve_argument_spec
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.facade import DRIVERS, zfs_argument_spec

PAIRS = [
    (pve, pve_argument_spec),
    (zfs, zfs_argument_spec),
    (registry, registry_argument_spec),
    (image_limits, image_limits_argument_spec),
    (check_mode_plan, check_mode_plan_argument_spec),
]


@pytest.mark.parametrize("fragment,make_spec", PAIRS, ids=[p[0].__name__.rsplit(".", 1)[1] for p in PAIRS])
def test_fragment_matches_spec(fragment, make_spec):
    documented = yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)["options"]
    spec = make_spec()
    assert sorted(documented) == sorted(spec)
    for name, option in spec.items():
        doc = documented[name]
        assert doc.get("type", "str") == option.get("type", "str"), name
        assert doc.get("default") == option.get("default"), name
        assert doc.get("required", False) == option.get("required", False), name
        assert doc.get("choices") == option.get("choices"), name
        assert doc.get("elements") == option.get("elements"), name
    assert make_spec() is not spec and make_spec() == spec  # a new dict each call: callers update theirs


def test_zfs_spec():
    spec = zfs_argument_spec()
    assert set(spec) == {"driver", "allow_pve_managed", "allowed_roots"}
    assert spec["driver"]["choices"] == list(DRIVERS) and spec["driver"]["default"] == "auto"
    assert spec["allow_pve_managed"]["default"] is False and spec["allowed_roots"]["default"] == []
    spec["allowed_roots"]["default"].append("tank")
    assert zfs_argument_spec()["allowed_roots"]["default"] == []
