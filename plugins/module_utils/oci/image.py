# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resolve, inspect, pull and remove images: the engine behind ``oci_image``.

Resolution walks index -> manifest (choosing the platform), verifying every
document against its descriptor.  Pulling stores manifests, config and
layers in the BlobStore, checking each layer's digest and its uncompressed
diff_id in the same pass, and pins the image.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import media
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.compression import (
    DiffIdHasher, ExpansionBound, LayerReader, Prefetcher, diff_id_of_file)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.digest import parse_digest
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import (
    PlatformError, UnsupportedError, VerificationError)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.platform import (
    Platform, choose_manifest, host_platform)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.sources import load_json, open_source

MAX_INDEX_DEPTH = 4
PARALLEL_LAYERS = 3
CONFIG_KEYS = ("Entrypoint", "Cmd", "Env", "WorkingDir", "User", "StopSignal", "Volumes", "ExposedPorts",
               "Labels")


def document_type(doc, hint):
    """The media type of a manifest-like document, from its body first."""
    if doc.get("schemaVersion") == 1:
        return media.DOCKER_SCHEMA1
    media_type = doc.get("mediaType") or hint
    if media_type in media.INDEX_TYPES + media.MANIFEST_TYPES + media.SCHEMA1_TYPES:
        return media_type
    if isinstance(doc.get("manifests"), list):
        return media.OCI_INDEX
    if isinstance(doc.get("layers"), list) and isinstance(doc.get("config"), dict):
        return media.OCI_MANIFEST
    raise UnsupportedError("unsupported manifest media type %r" % (media_type,))


class Resolved:
    """An image resolved to one platform's manifest, with its verified config."""

    def __init__(self):
        self.documents = []  # [(descriptor, bytes)] of every index and manifest walked
        self.index_digest = None
        self.manifest_digest = None
        self.manifest_media_type = None
        self.manifest = None
        self.config_descriptor = None
        self.config_bytes = None
        self.config = None
        self.platform = None

    @property
    def layers(self):
        return self.manifest.get("layers") or []

    def blob_digests(self):
        found = [d["digest"] for d, dummy in self.documents]
        found.append(self.config_descriptor["digest"])
        found.extend(layer["digest"] for layer in self.layers)
        return found


def resolve(src, wanted=None):
    """Resolve ``src`` to one manifest for platform ``wanted`` (default: this host's)."""
    explicit = wanted is not None
    wanted = wanted or host_platform()
    res = Resolved()
    body, hint, digest = src.root()
    descriptor = {"digest": digest, "size": len(body), "mediaType": hint}
    chosen_platform = None
    for dummy in range(MAX_INDEX_DEPTH):
        doc = load_json(body, "%s: manifest %s" % (src.description, digest))
        kind = document_type(doc, hint)
        descriptor["mediaType"] = kind
        res.documents.append((dict(descriptor), body))
        if kind in media.SCHEMA1_TYPES:
            raise UnsupportedError("%s: Docker image manifest schema 1 is not supported (deprecated by Docker "
                                   "since 2017); re-push the image with a current client" % src.description)
        if kind in media.MANIFEST_TYPES:
            break
        if res.index_digest is None:
            res.index_digest = digest
        descriptor, chosen_platform = choose_manifest(doc, wanted)
        body = src.manifest(descriptor)
        digest, hint = descriptor["digest"], descriptor.get("mediaType")
    else:
        raise VerificationError("%s: indexes nested more than %d deep" % (src.description, MAX_INDEX_DEPTH))
    res.manifest_digest = digest
    res.manifest_media_type = kind
    res.manifest = doc
    config_desc = doc.get("config")
    if not isinstance(config_desc, dict) or "digest" not in config_desc:
        raise VerificationError("%s: manifest %s has no config descriptor" % (src.description, digest))
    parse_digest(config_desc["digest"])
    if config_desc.get("mediaType") not in media.CONFIG_TYPES:
        raise UnsupportedError("%s: config media type %r is not an image config (is this an artifact?)"
                               % (src.description, config_desc.get("mediaType")))
    for layer in res.layers:
        parse_digest(layer.get("digest"))
        if not isinstance(layer.get("size"), int) or layer["size"] < 0:
            raise VerificationError("%s: layer %s has no valid size" % (src.description, layer.get("digest")))
    res.config_descriptor = config_desc
    res.config_bytes = src.blob_bytes(config_desc, media.MAX_CONFIG_BYTES)
    res.config = load_json(res.config_bytes, "%s: config" % src.description)
    diff_ids = (res.config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(res.layers):
        raise VerificationError("%s: the config lists %d diff_ids for %d layers"
                                % (src.description, len(diff_ids), len(res.layers)))
    for diff_id in diff_ids:
        parse_digest(diff_id)
    config_platform = Platform(res.config.get("os") or "linux", res.config.get("architecture") or "",
                               res.config.get("variant"))
    if chosen_platform is None:
        # a single-platform image: its config says what it is
        if config_platform.architecture and not wanted.matches(config_platform):
            raise PlatformError("%s is for %s only; %s %s was asked for%s"
                                % (src.description, config_platform,
                                   "platform" if explicit else "this host's platform", wanted,
                                   "" if explicit else " (set platform to override)"))
        chosen_platform = config_platform
    res.platform = chosen_platform
    return res


def describe(res, store=None, pulled=True):
    """The module's view of a resolved image."""
    cfg = res.config.get("config") or {}
    diff_ids = res.config["rootfs"]["diff_ids"] if res.layers else []
    layers = []
    total_uncompressed = 0
    for i, layer in enumerate(res.layers):
        entry = {
            "digest": layer["digest"], "size": layer["size"], "media_type": layer.get("mediaType"),
            "diff_id": diff_ids[i], "uncompressed_size": None, "path": None,
        }
        entry["diff_id_verified"] = False
        if store is not None and pulled:
            meta = store.get_meta(layer["digest"])
            entry["uncompressed_size"] = meta.get("uncompressed_size")
            entry["diff_id_verified"] = meta.get("diff_id") == diff_ids[i]
            entry["path"] = store.path(layer["digest"])
        if entry["uncompressed_size"] is None:
            total_uncompressed = None
        elif total_uncompressed is not None:
            total_uncompressed += entry["uncompressed_size"]
        layers.append(entry)
    result = {
        "manifest_digest": res.manifest_digest,
        "index_digest": res.index_digest,
        "media_type": res.manifest_media_type,
        "platform": res.platform.as_dict(),
        "config_digest": res.config_descriptor["digest"],
        "config": dict((key, cfg.get(key)) for key in CONFIG_KEYS),
        "created": res.config.get("created"),
        "layers": layers,
        "compressed_size": sum(layer["size"] for layer in res.layers),
        "uncompressed_size": total_uncompressed if layers else 0,
        "manifest_path": None,
        "config_path": None,
    }
    if store is not None and pulled:
        result["manifest_path"] = store.path(res.manifest_digest)
        result["config_path"] = store.path(res.config_descriptor["digest"])
    return result


def open_layer(store, layer, diff_id):
    """A LayerReader over a stored layer, read ahead in a thread; a verified read records the diff_id and size."""
    digest = layer["digest"]

    def remember(got, size):
        store.set_meta(digest, {"diff_id": got, "uncompressed_size": size})

    path = store.path(digest)
    head = b""
    if layer.get("mediaType") not in media.LAYER_COMPRESSION:
        # an unknown (or missing) media type: the magic bytes decide
        with open(path, "rb") as handle:
            head = handle.read(4)
    return Prefetcher(LayerReader(path, media.compression_of(layer.get("mediaType"), head), diff_id, remember))


class CachedSource:
    """Reads digest-addressed documents from the store before asking the source.

    Content in the store was verified when written, so a digest reference
    that is cached needs no network at all, and a tag needs only its lookup.
    """

    def __init__(self, src, store):
        self.src = src
        self.store = store
        self.description = src.description

    def _cached(self, digest, limit):
        if self.store is not None and digest and self.store.has(digest):
            return self.store.read(digest, limit)
        return None

    def root(self):
        digest = getattr(getattr(self.src, "reference", None), "digest", None) or getattr(self.src, "digest", None)
        body = self._cached(digest, media.MAX_MANIFEST_BYTES)
        if body is not None:
            return body, None, digest
        return self.src.root()

    def manifest(self, descriptor):
        body = self._cached(descriptor["digest"], media.MAX_MANIFEST_BYTES)
        return body if body is not None else self.src.manifest(descriptor)

    def blob_bytes(self, descriptor, limit):
        body = self._cached(descriptor["digest"], limit)
        return body if body is not None else self.src.blob_bytes(descriptor, limit)

    def copy_blob(self, descriptor, writer):
        return self.src.copy_blob(descriptor, writer)


class Puller:
    def __init__(self, store, client_factory, keep_corrupt=False, verify_diff_ids=False, bound=None):
        self.store = store
        self.client_factory = client_factory
        self.keep_corrupt = keep_corrupt
        # diff_ids are checked by every reader of a layer (LayerReader); checking
        # them during the pull as well costs a full decompression.
        self.verify_diff_ids = verify_diff_ids
        self.bound = bound or ExpansionBound()  # how far a layer decompressed here may expand
        self.fetched_bytes = 0
        self.fetched_blobs = []
        self.lock = threading.Lock()

    def _layer(self, src, layer, diff_id):
        digest = layer["digest"]
        known = layer.get("mediaType") in media.LAYER_COMPRESSION
        # an unknown media type: compression is only known from the bytes, so the reader checks the diff_id
        compression = media.compression_of(layer.get("mediaType")) if known else "unknown"
        limit = self.bound.cap(layer["size"])

        def too_large():
            return self.bound.error("layer %s" % digest, layer["size"])
        with self.store.lock_blob(digest):
            if self.store.has(digest, layer["size"]):
                meta = self.store.get_meta(digest)
                if meta.get("diff_id") is None and (not self.verify_diff_ids or not known):
                    self.store.touch(digest)
                    return
                if meta.get("diff_id") is None:
                    got, size = diff_id_of_file(self.store.path(digest), compression, limit, too_large)
                    meta = {"diff_id": got, "uncompressed_size": size}
                    self.store.set_meta(digest, meta)
                if meta["diff_id"] != diff_id:
                    raise VerificationError("layer %s uncompresses to %s, but the config's diff_id is %s"
                                            % (digest, meta["diff_id"], diff_id))
                self.store.touch(digest)
                return
            if compression is None:
                # an uncompressed layer's diff_id is its digest: checked for free
                if layer["digest"] != diff_id:
                    raise VerificationError("layer %s is uncompressed but the config's diff_id is %s"
                                            % (digest, diff_id))
            hasher = None
            if known and (self.verify_diff_ids or compression is None):
                hasher = DiffIdHasher(compression, limit, too_large)
            found = {}

            def check(writer):
                if hasher is None:
                    return
                try:
                    got, size = hasher.result(writer.path)
                except VerificationError as exc:
                    raise VerificationError("layer %s: %s" % (digest, exc))
                if got != diff_id:
                    raise VerificationError("layer %s uncompresses to %s, but the config's diff_id is %s"
                                            % (digest, got, diff_id))
                found.update(diff_id=got, uncompressed_size=size)

            with self.store.writer(layer, observer=hasher, keep_corrupt=self.keep_corrupt, check=check) as out:
                src.copy_blob(layer, out)
            if found:
                self.store.set_meta(digest, found)
            with self.lock:
                self.fetched_bytes += layer["size"]
                self.fetched_blobs.append(digest)

    def _layers(self, src, res):
        """Fetch the layers, several at once: sockets, zlib and hashlib release the GIL."""
        diff_ids = res.config["rootfs"]["diff_ids"]
        jobs = list(zip(res.layers, diff_ids))
        if len(jobs) < 2 or not getattr(src, "parallel_safe", False):
            for layer, diff_id in jobs:
                self._layer(src, layer, diff_id)
            return
        queue = list(jobs)
        errors = []

        def work():
            while True:
                with self.lock:
                    if not queue or errors:
                        return
                    layer, diff_id = queue.pop(0)
                try:
                    self._layer(src, layer, diff_id)
                except Exception as exc:  # pylint: disable=broad-except
                    with self.lock:
                        errors.append(exc)

        # plain threads: concurrent.futures would add its import time to every run
        threads = [threading.Thread(target=work) for dummy in range(min(PARALLEL_LAYERS, len(jobs)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def _small(self, descriptor, data):
        if self.store.put_bytes(descriptor, data):
            self.fetched_bytes += len(data)
            self.fetched_blobs.append(descriptor["digest"])
        else:
            self.store.touch(descriptor["digest"])

    def missing(self, res):
        """Blobs of ``res`` not in the store (all of them without a store), as (digest, size)."""
        wanted = [(d["digest"], len(b)) for d, b in res.documents]
        wanted.append((res.config_descriptor["digest"], len(res.config_bytes)))
        wanted.extend((layer["digest"], layer["size"]) for layer in res.layers)
        seen = set()
        found = []
        for digest, size in wanted:
            if digest not in seen and (self.store is None or not self.store.has(digest, size)):
                found.append((digest, size))
            seen.add(digest)
        return found

    def open(self, source):
        return open_source(source, self.client_factory, self.bound)

    def inspect(self, source, platform=None):
        src = self.open(source)
        try:
            return resolve(src, platform)
        finally:
            src.close()

    def pull(self, source, key, platform=None, check_mode=False):
        """Pull into the store and pin under ``key``; returns the Resolved image."""
        with self.store.using():
            if not check_mode:
                self.store.remove_stale_tmp()
            src = self.open(source)
            try:
                res = resolve(CachedSource(src, self.store), platform)
                if check_mode:
                    return res
                for descriptor, body in res.documents:
                    self._small(dict(descriptor, size=len(body)), body)
                self._small(res.config_descriptor, res.config_bytes)
                self._layers(src, res)
                self.store.pin(key, {
                    "source": str(source), "manifest_digest": res.manifest_digest,
                    "index_digest": res.index_digest, "platform": str(res.platform),
                    "blobs": res.blob_digests(),
                })
                return res
            finally:
                src.close()

    def remove(self, key):
        """Unpin ``key`` and delete its blobs that no other pin uses.

        Returns ``(old pin or None, sorted digests of the blobs deleted)``.
        """
        with self.store.exclusive():
            record = self.store.get_pin(key)
            if record is None:
                return None, []
            self.store.unpin(key)
            others = set()
            for other in self.store.pins():
                others.update(other.get("blobs") or [])
            removed = [digest for digest in sorted(set(record.get("blobs") or []))
                       if digest not in others and self.store.remove_blob(digest)]
            return record, removed
