"""Template names hold only what Proxmox VE keeps in an uploaded file's name ([a-zA-Z0-9_.-])."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import TemplateError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.naming import check_name, default_name, name_parts
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.reference import parse_source
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.client import check_upload_filename


def test_a_default_name_from_a_local_archive_is_one_proxmox_keeps():
    source = parse_source("oci-archive:/srv/images/my+app v2.tar")
    repo, tag = name_parts(source)
    name = default_name(source, "sha256:" + "ab" * 32)
    assert "+" not in repo + tag and " " not in name
    assert check_upload_filename(name + ".tar.zst") == name + ".tar.zst"


@pytest.mark.parametrize("name", ["app+v1", "app v1", "-app"])
def test_a_name_proxmox_would_rename_is_refused(name):
    with pytest.raises(TemplateError, match="letters, digits and . _ - only"):
        check_name(name)


def test_wrappers_keep_proxmox_term_unless_the_image_sets_it():
    from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import with_pve_term
    assert with_pve_term(["A=1"]) == ["TERM=linux", "A=1"]
    assert with_pve_term(["TERM=xterm", "A=1"]) == ["TERM=xterm", "A=1"]
    assert with_pve_term([]) == ["TERM=linux"] and with_pve_term(None) is None
