# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Where images come from and where their blobs are cached: shared by oci_image and oci_template.
    # The matching argument spec is registry_argument_spec() in module_utils/oci/manager.py.
    DOCUMENTATION = r"""
options:
  platform:
    description:
      - The platform to choose from a multi-platform image, as V(os/architecture[/variant]), for example
        V(linux/amd64) or V(linux/arm64/v8).
      - Defaults to the platform of the machine running the module.
      - A single-platform image for another platform is refused.
    type: str
  cache_dir:
    description: Where blobs are stored by digest.
    type: path
    default: /var/cache/lxcri/oci
  registry_username:
    description: User name for the registry (basic authentication, or for the token service).
    type: str
  registry_password:
    description: Password or access token for O(registry_username).
    type: str
  auth_file:
    description:
      - A Docker C(config.json) or containers C(auth.json) with C(auths) entries. Used when
        O(registry_username) is not given. Credential helpers are not supported.
    type: path
  registry_tls_verify:
    description:
      - Verify the registry's TLS certificate.
      - V(false) skips verification and also allows plain HTTP, as C(skopeo --tls-verify=false) does. Only
        for registries you trust, such as a local test registry.
      - With V(true), a registry port that answers plain HTTP fails with a message that says so. A mirror
        in O(registry_mirrors) can be given as an C(http://) URL instead.
    type: bool
    default: true
  registry_ca_path:
    description:
      - A CA bundle for registries with a private CA. (C(ca_path) is the Proxmox VE API's CA in modules that
        also talk to the API.)
    type: path
  registry_mirrors:
    description:
      - Mirrors to try before Docker Hub, for C(docker.io) images only, as host names (HTTPS) or URLs.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds for each HTTP request to the registry.
    type: int
    default: 60
  retries:
    description:
      - How often to retry on HTTP 429 and 5xx, broken connections and short bodies, with backoff.
      - A refused connection (nothing listens on the registry's port) is retried at most three times,
        within two seconds in all, and then fails naming the host and port.
    type: int
    default: 5
  keep_corrupt:
    description:
      - Keep content that failed verification under C(<cache_dir>/corrupt/) for inspection, at most the size
        its descriptor gives.
      - A local source's file that is refused without being read (a FIFO, a device, a link leading out of the
        layout) leaves nothing there.
    type: bool
    default: false
requirements:
  - requests (Python library), on the host that runs the module, for images from a registry
"""
