# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How far image layers may decompress: shared by oci_image and oci_template.
    # The matching argument spec is image_limits_argument_spec() in module_utils/oci/manager.py.
    DOCUMENTATION = r"""
options:
  max_expansion_ratio:
    description:
      - How many times its compressed size a layer may expand to when it is decompressed, plus an allowance of
        512 MiB that all layers of the image share for content that compresses far better (zero-filled files,
        such as a C(lastlog) sized by a large uid or preallocated database files).
      - Applies wherever layers are decompressed (converting them into a template, checking their diff_ids with
        O(lxcri.proxmox.oci_image#module:verify_diff_ids=true)), and to a compressed C(oci-archive) or
        C(docker-archive) (such as C(docker save | gzip)) as a whole when it is read.
      - Real layers expand 2 to 10 times. gzip can reach about 1030 times and zstd tens of thousands, so a limit of
        1000 or more would let any gzip bomb through; with the default, a layer of a few MiB expands to at most
        about 100 times its size plus 512 MiB, never to gigabytes.
      - Past it the module fails, naming the layer and this option. Raise it for an image you trust.
    type: int
    default: 100
  max_uncompressed_bytes:
    description:
      - The most the layers of an image may expand to when decompressed, all together, as bytes or with a unit
        (V(64G)). It bounds the disk a template takes once restored, and the time a conversion can take.
      - The default is well above the largest common images (CUDA and PyTorch development images are 10 to 20 GiB).
      - Past it the module fails, naming this option. Raise it for a larger image.
    type: str
    default: 32G
"""
