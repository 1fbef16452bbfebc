# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The oci_image module's manager: present / absent / inspect over the engine.

Importable and usable without Ansible: ``ImageManager(params).run()``
returns the module result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lxcri.proxmox.plugins.module_utils.argspec import defaults_of, with_defaults
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.authfile import Credentials, load_auth_file, lookup
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.compression import (
    MAX_EXPANSION_RATIO, MAX_UNCOMPRESSED_BYTES, ExpansionBound)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import OciError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.image import Puller, describe
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.platform import host_platform, parse_platform
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.reference import parse_source
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.store import DEFAULT_CACHE_DIR, BlobStore, store_complete


def registry_argument_spec():
    """Options of the lxcri.proxmox.registry doc fragment (image source and blob cache)."""
    return dict(
        platform=dict(type="str"),
        cache_dir=dict(type="path", default=DEFAULT_CACHE_DIR),
        registry_username=dict(type="str"),
        registry_password=dict(type="str", no_log=True),
        auth_file=dict(type="path"),
        registry_tls_verify=dict(type="bool", default=True),
        registry_ca_path=dict(type="path"),
        registry_mirrors=dict(type="list", elements="str", default=[]),
        timeout=dict(type="int", default=60),
        retries=dict(type="int", default=5),
        keep_corrupt=dict(type="bool", default=False),
    )


def image_limits_argument_spec():
    """Options of the lxcri.proxmox.image_limits doc fragment (bounds on decompressing layers)."""
    return dict(
        max_expansion_ratio=dict(type="int", default=MAX_EXPANSION_RATIO),
        max_uncompressed_bytes=dict(type="str", default="%dG" % (MAX_UNCOMPRESSED_BYTES >> 30)),
    )


def image_argument_spec():
    """A new dict of oci_image's options (its DOCUMENTATION and the doc fragments registry and image_limits)."""
    spec = dict(
        image=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent", "inspect"]),
        cache_max_bytes=dict(type="str"),
        verify_diff_ids=dict(type="bool", default=False),
    )
    spec.update(registry_argument_spec())
    spec.update(image_limits_argument_spec())
    return spec


# what a caller without Ansible leaves out
DEFAULTS = defaults_of(image_argument_spec(), leave_out=("image",))


def size_option(params, name):
    """``params[name]`` in bytes: a size given as text may have units (V(32G)); OciError names the option."""
    size = params[name]
    if isinstance(size, str):
        from ansible.module_utils.common.text.formatters import human_to_bytes  # pylint: disable=import-outside-toplevel
        try:
            size = human_to_bytes(size)
        except ValueError as exc:
            raise OciError("%s: %s" % (name, exc))
    return size


def image_limits(params):
    """``(max_expansion_ratio, max_uncompressed_bytes)`` of ``params``, checked; sizes may have units (V(32G))."""
    ratio = params["max_expansion_ratio"]
    size = size_option(params, "max_uncompressed_bytes")
    if not isinstance(ratio, int) or isinstance(ratio, bool) or ratio < 1:
        raise OciError("max_expansion_ratio must be a whole number of at least 1, not %r" % (ratio,))
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise OciError("max_uncompressed_bytes must be at least 1 byte, not %r" % (size,))
    return ratio, size


def pin_key(source, platform):
    return "%s|%s" % (source, platform)


class ImageManager:
    def __init__(self, params, check_mode=False, client_options=None):
        self.params = with_defaults(params, DEFAULTS)
        if self.params["cache_max_bytes"] is not None:
            self.params["cache_max_bytes"] = size_option(self.params, "cache_max_bytes")
        self.check_mode = check_mode
        self.client_options = client_options or {}  # tests: sleep, session, backoff
        self.source = parse_source(self.params["image"])
        self.platform = parse_platform(self.params["platform"]) if self.params["platform"] else None
        self.bound = ExpansionBound(*image_limits(self.params))
        self._store = None

    @property
    def store(self):
        if self._store is None:
            self._store = BlobStore(self.params["cache_dir"])
        return self._store

    def client(self):
        # the registry client brings requests: imported when a registry is used, not for local sources
        from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.registry import (  # pylint: disable=import-outside-toplevel
            RegistryClient)
        params = self.params
        credentials = Credentials(params["registry_username"], params["registry_password"])
        credentials_for = None
        if not credentials and params["auth_file"]:
            config = load_auth_file(params["auth_file"])

            def credentials_for(domain, repository):
                return lookup(config, domain, repository)

        options = dict(credentials=credentials, credentials_for=credentials_for,
                       tls_verify=params["registry_tls_verify"], ca_path=params["registry_ca_path"],
                       mirrors=params["registry_mirrors"], timeout=params["timeout"], retries=params["retries"])
        options.update(self.client_options)
        return RegistryClient(**options)

    def _key(self):
        return pin_key(self.source, self.platform or host_platform())

    def run(self):
        state = self.params["state"]
        if state == "inspect":
            return self.inspect()
        if state == "absent":
            return self.absent()
        return self.present()

    def _base(self):
        return {"changed": False, "image": str(self.source), "cache_dir": self.params["cache_dir"]}

    def inspect(self):
        puller = Puller(None, self.client, bound=self.bound)
        res = puller.inspect(self.source, self.platform)
        result = self._base()
        result.update(describe(res, pulled=False))
        return result

    def _cache_untouchable(self):
        """Check mode on a cache that does not exist (whole): opening it would create directories and locks."""
        return self.check_mode and not store_complete(self.params["cache_dir"])

    def present(self):
        store = None if self._cache_untouchable() else self.store
        puller = Puller(store, self.client, keep_corrupt=self.params["keep_corrupt"],
                        verify_diff_ids=self.params["verify_diff_ids"], bound=self.bound)
        key = self._key()
        before = store.get_pin(key) if store is not None else None
        if store is None:
            res = puller.inspect(self.source, self.platform)  # manifest and config only: every blob is missing
        else:
            res = puller.pull(self.source, key, self.platform, check_mode=self.check_mode)
        result = self._base()
        if self.check_mode:
            missing = puller.missing(res)
            result.update(describe(res, pulled=False))
            result["would_fetch"] = [{"digest": d, "size": s} for d, s in missing]
            result["changed"] = bool(missing)
        else:
            result.update(describe(res, self.store))
            result["fetched_bytes"] = puller.fetched_bytes
            result["fetched_blobs"] = puller.fetched_blobs
            result["changed"] = bool(puller.fetched_blobs)
            if self.params["cache_max_bytes"] is not None:
                result["removed_blobs"] = self.store.prune(self.params["cache_max_bytes"])
        result["diff"] = {
            "before": {"image": str(self.source), "manifest_digest": before and before.get("manifest_digest")},
            "after": {"image": str(self.source), "manifest_digest": res.manifest_digest},
        }
        return result

    def absent(self):
        result = self._base()
        wanted_key = pin_key(self.source, self.platform) if self.platform else None
        pins = [] if self._cache_untouchable() else self.store.pins()  # no cache: nothing to remove
        matches = [p for p in pins if p.get("source") == str(self.source)
                   and (wanted_key is None or p.get("key") == wanted_key)]
        result["removed_blobs"] = []
        if matches and not self.check_mode:
            puller = Puller(self.store, self.client)
            for record in matches:
                result["removed_blobs"].extend(puller.remove(record["key"])[1])
        result["changed"] = bool(matches)
        result["diff"] = {
            "before": {"image": str(self.source),
                       "manifest_digest": matches[0].get("manifest_digest") if matches else None},
            "after": {"image": str(self.source), "manifest_digest": None},
        }
        return result
