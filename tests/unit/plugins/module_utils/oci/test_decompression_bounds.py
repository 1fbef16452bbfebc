"""Decompression outside the flattener: a pull's diff_id check (verify_diff_ids, layers cached without
their diff_id) is bounded like a conversion (max_expansion_ratio, max_uncompressed_bytes), and the
options are checked.  The flattener's bounds are tested in test_flatten.py.
"""

import os
import shutil
import subprocess

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.compression import (
    DiffIdHasher, ExpansionBound, diff_id_of_file, zstd_cli_digest)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import LimitError, OciError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.manager import ImageManager, image_limits
from lxcri_testbed.oci_build import ZeroBomb

ZSTD = shutil.which("zstd")
MIB = 1 << 20


def test_bound_defaults_and_caps():
    bound = ExpansionBound()
    assert (bound.ratio, bound.allowance, bound.max_bytes) == (100, 512 * MIB, 32 << 30)
    assert bound.cap(MIB) == 100 * MIB + 512 * MIB
    assert bound.cap(1 << 30) == 32 << 30 and bound.cap(None) == 32 << 30
    assert "max_uncompressed_bytes" in str(bound.error("x", 1 << 30))
    assert "max_expansion_ratio" in str(bound.error("x", MIB))


# --- the pull's own decompression (verify_diff_ids, layers cached without their diff_id) -------------

@pytest.mark.parametrize("streaming", [True, False])
def test_the_diff_id_hasher_stops_at_its_limit(tmp_path, streaming):
    bomb, dummy = ZeroBomb(1 << 30).blob("gzip")
    bound = ExpansionBound(allowance=MIB)
    limit = bound.cap(len(bomb))
    path = tmp_path / "layer"
    path.write_bytes(bomb)
    with pytest.raises(LimitError, match=r"layer x expands beyond 100 times its compressed size of %d bytes plus "
                                         r"1 MiB \(max_expansion_ratio\)" % len(bomb)):
        if streaming:
            hasher = DiffIdHasher("gzip", limit, lambda: bound.error("layer x", len(bomb)))
            for start in range(0, len(bomb), MIB):  # a source writes a MiB at a time
                hasher.update(bomb[start:start + MIB])
            assert hasher.size < limit + 65536 * 1100  # decoded in 64 KiB steps, and no further than one
            hasher.result(str(path))
        else:
            diff_id_of_file(str(path), "gzip", limit, lambda: bound.error("layer x", len(bomb)))


@pytest.mark.skipif(ZSTD is None, reason="no zstd command")
def test_the_zstd_command_is_stopped_at_the_limit(tmp_path):
    path = tmp_path / "layer.zst"
    path.write_bytes(subprocess.run([ZSTD, "-q", "-c"], input=bytes(64 * MIB), stdout=subprocess.PIPE,
                                    check=True).stdout)
    bound = ExpansionBound(max_bytes=8 * MIB)
    with pytest.raises(LimitError, match=r"beyond max_uncompressed_bytes \(8388608 bytes\)"):
        zstd_cli_digest(str(path), bound.cap(os.path.getsize(str(path))),
                        lambda: bound.error("layer x", os.path.getsize(str(path))))
    assert zstd_cli_digest(str(path))[1] == 64 * MIB


@pytest.mark.parametrize("params,message", [
    ({"max_expansion_ratio": 0}, "max_expansion_ratio must be a whole number of at least 1"),
    ({"max_uncompressed_bytes": "0"}, "max_uncompressed_bytes must be at least 1 byte"),
    ({"max_uncompressed_bytes": "lots"}, "max_uncompressed_bytes: "),
    ({"cache_max_bytes": "lots"}, "cache_max_bytes: "),  # the engine reads sizes, the module hands them on
])
def test_option_values_are_checked(params, message):
    with pytest.raises(OciError, match=message):
        ImageManager(dict(params, image="oci-layout:/nonexistent"))


def test_sizes_take_units():
    assert image_limits({"max_expansion_ratio": 7, "max_uncompressed_bytes": "2G"}) == (7, 2 << 30)
    assert image_limits({"max_expansion_ratio": 7, "max_uncompressed_bytes": 5}) == (7, 5)
    assert ImageManager({"image": "oci-layout:/nonexistent", "cache_max_bytes": "1K"}).params["cache_max_bytes"] == 1024
