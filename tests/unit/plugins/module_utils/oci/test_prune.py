"""Which templates keep removes (pure selection logic)."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.prune import PruneError, choose, family_regex

DIGEST = "sha256:3b7c9e0a1f2d" + "0" * 52


@pytest.mark.parametrize("entries, keep, current, doomed", [
    ([("a", 1), ("b", 2), ("c", 3)], 2, "c", ["a"]),
    ([("a", 1), ("b", 2), ("c", 3)], 1, "a", ["b", "c"]),  # the current one stays even when oldest
    ([("a", 1), ("b", 2)], 5, "b", []),
    ([("b", 5), ("a", 5), ("c", 1)], 2, "c", ["a"]),  # same ctime: the name decides
    ([], 1, "x", []),
])
def test_choose(entries, keep, current, doomed):
    assert choose(entries, keep, current) == doomed


@pytest.mark.parametrize("name, member", [
    ("nginx_1.27_3b7c9e0a1f2d.tar.zst", True),
    ("nginx_1.26_aaaaaaaaaaaa.tar.zst", True),
    ("nginx_my_tag_bbbbbbbbbbbb.tar.zst", True),
    ("nginx_1.26_aaaaaaaaaaaa.tar.gz", False),  # another extension is another family
    ("nginx_1.26_aaaaaaaaaaaa_0123abcd.tar.zst", False),  # other options
    ("nginx-extra_1.26_aaaaaaaaaaaa.tar.zst", False),
    ("nginx_1.26_AAAAAAAAAAAA.tar.zst", False),
    # a sidecar next to a template built with dest in a storage's directory: never a family member, whether a
    # storage listing shows it or not
    ("nginx_1.26_aaaaaaaaaaaa.tar.zst.json", False),
])
def test_family(name, member):
    regex = family_regex("nginx", "nginx_1.27_3b7c9e0a1f2d.tar.zst", DIGEST)
    assert bool(regex.match(name)) is member


def test_family_needs_a_default_name():
    with pytest.raises(PruneError, match="default template name"):
        family_regex("nginx", "mine.tar.zst", DIGEST)
