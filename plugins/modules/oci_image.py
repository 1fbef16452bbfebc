#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: oci_image
short_description: Pull OCI/Docker images into a verified, content-addressed cache on the node
version_added: 0.1.0
description:
  - Resolves an image from a registry, an OCI image layout directory, an OCI archive or a C(docker save)
    archive, chooses the manifest for one platform, and stores the manifests, config and layers by digest
    under O(cache_dir).
  - Every manifest, index, config and layer is checked against its descriptor (size and sha256), and every
    layer's uncompressed content against the config's C(rootfs.diff_ids), before it enters the cache.
    Nothing unverified is ever kept in the cache.
  - A second pull of the same image transfers nothing but the tag lookup (nothing at all for a digest
    reference). Concurrent pulls from several processes share one download per blob (file locks).
  - Needs only the Python standard library and C(requests) on the node; not skopeo, umoci or docker.
    zstd layers use the C(zstandard) module when importable, else the C(zstd) command.
author:
  - lxcri maintainers (@lxcri)
options:
  image:
    description:
      - The image. A registry reference as users write it (V(nginx), V(nginx:1.27), V(library/nginx),
        V(docker.io/library/nginx:1.27), V(ghcr.io/org/app@sha256:...), V(registry.local:5000/app:tag)),
        optionally prefixed with V(docker://). Docker Hub's normalisation applies. A reference may carry
        both a tag and a digest; the digest decides.
      - V(oci-layout:/path[:tag|@digest]) for an OCI image layout directory.
      - V(oci-archive:/path.tar[:tag]) for the same layout in a tar.
      - V(docker-archive:/path.tar[:repo:tag]) for C(docker save) output, classic or OCI-based.
      - Local paths are split at their first C(:), so they cannot contain one.
    type: str
    required: true
  state:
    description:
      - V(present) pulls the image into the cache and pins it, so pruning keeps it.
      - V(absent) unpins the image and deletes its blobs that no other pinned image uses.
      - V(inspect) resolves the image and reads its config without pulling layers or writing to the cache.
    type: str
    choices: [present, absent, inspect]
    default: present
  cache_max_bytes:
    description:
      - After a pull, evict least-recently-used blobs that no pinned image references until the cache holds
        at most this much. Accepts bytes or units such as V(20G). Pinned images are never evicted.
      - Unset means no limit.
    type: str
  verify_diff_ids:
    description:
      - Also decompress every new layer during the pull and check it against the config's C(rootfs.diff_ids).
      - By default a pull checks each layer's size and digest, as skopeo does, and the diff_id is checked by
        whatever reads the layer later (template conversion decompresses it anyway), so the layer is
        decompressed once instead of twice. Either way, a layer is never used unchecked.
    type: bool
    default: false
extends_documentation_fragment:
  - lxcri.proxmox.registry
  - lxcri.proxmox.image_limits
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads manifests and the config from the source and reports what would be fetched; writes nothing.
  diff_mode:
    support: full
    details: Shows the pinned manifest digest before and after.
  platform:
    platforms: posix
notes:
  - For C(docker-archive) in the classic format, which has no manifest, the manifest and its digest are
    synthesised from C(manifest.json); they are stable for the same archive.
  - V(inspect) reports C(changed=false) and no cache paths.
  - Uncompressed layers (for example from classic C(docker save)) have their diff_id checked during the pull
    in any case, since it equals their digest.
  - Decompression uses the C(isal) or C(zlib_ng) Python modules when importable, else the standard zlib.
  - Local sources are read as untrusted input. A blob costs the cache at most the size its descriptor gives
    (one byte more is read to tell it is longer). Only regular files inside the layout are read; a blob or
    document that is a FIFO, a device or a symbolic link leading out of the layout directory (or out of the
    archive) is refused from its metadata, before it is opened, so nothing from outside the layout is read,
    not even for O(keep_corrupt). An archive member stored sparse (GNU tar C(--sparse)) counts as the bytes
    it stores; one that would expand beyond them is refused.
seealso:
  - name: OCI image specification
    description: Manifests, indexes, configs and platform matching.
    link: https://github.com/opencontainers/image-spec
"""

EXAMPLES = r"""
- name: Pull nginx for this node's platform into the cache
  lxcri.proxmox.oci_image:
    image: nginx:1.27
  register: nginx

- name: Pull an arm64 image from a private registry with credentials
  lxcri.proxmox.oci_image:
    image: registry.example.com:5000/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    platform: linux/arm64/v8
    registry_username: deploy
    registry_password: "{{ vault_registry_password }}"

- name: Read an image's entrypoint without pulling its layers
  lxcri.proxmox.oci_image:
    image: docker-archive:/srv/images/app.tar:app:2
    state: inspect
  register: app

- name: Show it
  ansible.builtin.debug:
    msg: "{{ app.config.Entrypoint }} {{ app.config.Cmd }}"

- name: Keep the cache under 20 GiB
  lxcri.proxmox.oci_image:
    image: oci-archive:/srv/images/tool.tar:1.0
    cache_max_bytes: 20G

- name: Drop an image from the cache
  lxcri.proxmox.oci_image:
    image: nginx:1.27
    state: absent
"""

RETURN = r"""
image:
  description: The image as resolved, normalised (for example V(docker.io/library/nginx:1.27)).
  returned: always
  type: str
  sample: docker.io/library/nginx:1.27
manifest_digest:
  description: Digest of the platform's image manifest.
  returned: when state is present or inspect
  type: str
  sample: sha256:8d1e0c4b1b5f0d1c9c6d7b3c5e4f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f
index_digest:
  description: Digest of the index (manifest list) the manifest was chosen from, or null.
  returned: when state is present or inspect
  type: str
  sample: sha256:2b7412e6465c3c7fc5bb21d3e6f1917c167358449fecac8176c6e496e5c1f05f
media_type:
  description: Media type of the manifest.
  returned: when state is present or inspect
  type: str
  sample: application/vnd.oci.image.manifest.v1+json
platform:
  description: The platform of the chosen manifest.
  returned: when state is present or inspect
  type: dict
  sample: {"os": "linux", "architecture": "amd64", "variant": null}
config_digest:
  description: Digest of the image config.
  returned: when state is present or inspect
  type: str
  sample: sha256:ec745a984bd1b4c5a8367366f1a0db33f774ca8ea04260f1fad07b389d6c01c6
config:
  description: The runtime part of the image config.
  returned: when state is present or inspect
  type: dict
  contains:
    Entrypoint:
      description: ENTRYPOINT, or null.
      type: list
      elements: str
    Cmd:
      description: CMD, or null.
      type: list
      elements: str
    Env:
      description: Environment as C(KEY=value) strings.
      type: list
      elements: str
    WorkingDir:
      description: Working directory.
      type: str
    User:
      description: User (and group) to run as.
      type: str
    StopSignal:
      description: Signal to stop the container.
      type: str
    Volumes:
      description: Volume mount points.
      type: dict
    ExposedPorts:
      description: Exposed ports.
      type: dict
    Labels:
      description: Image labels.
      type: dict
  sample: {"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["nginx", "-g", "daemon off;"],
           "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "WorkingDir": null,
           "User": null, "StopSignal": "SIGQUIT", "Volumes": null, "ExposedPorts": {"80/tcp": {}}, "Labels": null}
created:
  description: The image's creation time from its config.
  returned: when state is present or inspect
  type: str
  sample: "2026-10-01T12:00:00Z"
layers:
  description: Layer descriptors in order, with their uncompressed diff_id and the cache path once pulled.
  returned: when state is present or inspect
  type: list
  elements: dict
  sample: [{"digest": "sha256:d62d61276e27116291f3cff1ea8771dc0f2c009af4d99ad253e62a81b48634bc", "size": 1084116,
            "media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
            "diff_id": "sha256:2a8f3e6c0d2f6e9d5b3e1c7a4f0b9d8c7e6a5f4b3c2d1e0f9a8b7c6d5e4f3a2b",
            "diff_id_verified": true, "uncompressed_size": 2296320,
            "path": "/var/cache/lxcri/oci/blobs/sha256/d62d61276e27116291f3cff1ea8771dc0f2c009af4d99ad253e62a81b48634bc"}]
compressed_size:
  description: Sum of the layer sizes as stored.
  returned: when state is present or inspect
  type: int
  sample: 1084116
uncompressed_size:
  description:
    - Sum of the uncompressed layer sizes; null while any layer's diff_id has not been checked yet
      (see O(verify_diff_ids)), and for inspect and check mode.
  returned: when state is present or inspect
  type: int
  sample: 2296320
manifest_path:
  description: Cache path of the manifest; null for inspect and in check mode.
  returned: when state is present or inspect
  type: str
  sample: /var/cache/lxcri/oci/blobs/sha256/8d1e0c4b1b5f0d1c9c6d7b3c5e4f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f
config_path:
  description: Cache path of the config; null for inspect and in check mode.
  returned: when state is present or inspect
  type: str
  sample: /var/cache/lxcri/oci/blobs/sha256/ec745a984bd1b4c5a8367366f1a0db33f774ca8ea04260f1fad07b389d6c01c6
fetched_bytes:
  description: Bytes transferred into the cache by this run.
  returned: when state is present
  type: int
  sample: 1086000
fetched_blobs:
  description: Digests fetched by this run.
  returned: when state is present
  type: list
  elements: str
  sample: ["sha256:d62d61276e27116291f3cff1ea8771dc0f2c009af4d99ad253e62a81b48634bc"]
would_fetch:
  description: In check mode, the blobs a pull would fetch, with their sizes.
  returned: when state is present and in check mode
  type: list
  elements: dict
  sample: [{"digest": "sha256:d62d61276e27116291f3cff1ea8771dc0f2c009af4d99ad253e62a81b48634bc", "size": 1084116}]
removed_blobs:
  description: With O(state=absent), the blobs deleted; after a pull with O(cache_max_bytes), the blobs evicted.
  returned: when state is absent, or present with cache_max_bytes
  type: list
  elements: str
  sample: []
cache_dir:
  description: The cache directory used.
  returned: always
  type: str
  sample: /var/cache/lxcri/oci
error_kind:
  description:
    - When the module fails, what kind of error it was (for playbooks that handle failures by kind); kinds are
      V(invalid_reference), V(registry), V(auth), V(verification), V(platform), V(unsupported), V(limit),
      V(missing_library) (no C(requests)).
  returned: failed
  type: str
  sample: auth
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError, fail_module
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.manager import ImageManager, image_argument_spec


def main():
    module = AnsibleModule(
        argument_spec=image_argument_spec(),
        required_together=[("registry_username", "registry_password")],
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = ImageManager(params, check_mode=module.check_mode).run()
    except LxcriError as exc:
        fail_module(module, exc, image=params["image"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
