# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image sources: a registry, an OCI layout directory, an OCI archive, a docker archive.

Every source answers the same four questions:

* ``root()``: the top document (manifest or index) as ``(bytes, media_type, digest)``;
* ``manifest(descriptor)``: a manifest or index named by a descriptor;
* ``blob_bytes(descriptor, limit)``: a small blob (a config), verified;
* ``copy_blob(descriptor, writer)``: stream a blob into a store writer (verified by the store).

Archives are read in place through ``tarfile``; nothing is unpacked to disk.

A local source is read as hostile input: a blob costs at most its
descriptor's size (plus the one byte that tells it is longer), only regular
files inside the layout are opened (a FIFO, a device, or a link leading out
of the layout is refused from its metadata alone, before anything is opened
or read), and an archive member expands to no more than the bytes the
archive holds for it (a sparse member with holes is refused).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bz2
import gzip
import io
import json
import lzma
import os
import posixpath
import stat
import tarfile
import zlib

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import media
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.compression import ExpansionBound
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.digest import digest_of, parse_digest, verify_bytes
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import (
    InvalidReference, OciError, UnsupportedError, VerificationError)
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.reference import Source, parse_reference

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
COPY_CHUNK = 1024 * 1024
MAX_LINK_HOPS = 16  # links followed inside an archive to reach a blob (docker save links duplicate layers)
_FILE_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link"))
_MEMBER_KINDS = ((tarfile.TarInfo.isfifo, "a FIFO"), (tarfile.TarInfo.ischr, "a character device"),
                 (tarfile.TarInfo.isblk, "a block device"), (tarfile.TarInfo.isdir, "a directory"))


def load_json(data, what):
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise VerificationError("%s is not valid JSON: %s" % (what, exc))
    if not isinstance(doc, dict):
        raise VerificationError("%s is not a JSON object" % what)
    return doc


def declared_size(descriptor):
    """The descriptor's size when it is a usable one (a non-negative integer), else None."""
    size = descriptor.get("size")
    if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
        return size
    return None


class BytesWriter:
    """A BlobWriter stand-in that keeps a small blob in memory (at most ``limit`` bytes and the descriptor's size)."""

    def __init__(self, limit, descriptor=None):
        self.buffer = io.BytesIO()
        self.limit = limit
        self.declared = declared_size(descriptor or {})
        self.name = (descriptor or {}).get("digest", "blob")
        self.size = 0

    def write(self, data):
        self.size += len(data)
        if self.declared is not None and self.size > self.declared:
            raise VerificationError("blob %s: more than the %d bytes the descriptor says" % (self.name, self.declared))
        if self.size > self.limit:
            raise VerificationError("blob is more than the %d bytes allowed" % self.limit)
        self.buffer.write(data)

    def reset(self):
        self.buffer = io.BytesIO()
        self.size = 0

    def getvalue(self):
        return self.buffer.getvalue()


# ---------------------------------------------------------------------------
# readers for layouts in a directory or a tar

def _refused(what, kind):
    return OciError("%s is %s, not a regular file: refused without reading it" % (what, kind))


class DirReader:
    """Files of a layout directory: regular files inside it only, checked before they are opened."""

    def __init__(self, root):
        if not os.path.isdir(root):
            raise OciError("%s is not a directory" % root)
        self.root = root
        self.real_root = os.path.realpath(root)

    def _path(self, name):
        path = os.path.normpath(os.path.join(self.root, name))
        if not path.startswith(os.path.normpath(self.root) + os.sep):
            raise VerificationError("path %r leaves the layout" % name)
        return path

    def exists(self, name):
        return os.path.lexists(self._path(name))

    def open(self, name):
        path = self._path(name)
        real = os.path.realpath(path)
        if not real.startswith(self.real_root.rstrip(os.sep) + os.sep):
            raise OciError("%s is a symbolic link leading out of the layout (to %s): refused without reading it"
                           % (path, real))  # the link may be the file or a directory on its way
        try:
            before = os.stat(real)
        except OSError as exc:
            raise OciError("cannot read %s: %s" % (path, exc.strerror))
        if not stat.S_ISREG(before.st_mode):
            raise _refused(path, _file_kind(before.st_mode))
        try:
            # O_NONBLOCK: a FIFO swapped in since the stat must not block the open
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise OciError("cannot read %s: %s" % (path, exc.strerror))
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino):
            os.close(fd)
            raise OciError("%s changed while it was being opened: refused" % path)
        return os.fdopen(fd, "rb")

    def close(self):
        pass


# compressed archives (docker save | gzip): magic bytes -> a seekable decompressing file
_ARCHIVE_CODECS = ((b"\x1f\x8b", gzip.GzipFile), (b"BZh", bz2.BZ2File), (b"\xfd7zXZ\x00", lzma.LZMAFile))


class _CappedStream:
    """A compressed archive's decompressed view that never goes past ``cap`` bytes: a seek beyond
    it (tarfile skipping a member's data) is refused before any of it is decompressed."""

    def __init__(self, inner, cap, on_cap):
        self.inner = inner
        self.cap = cap
        self.on_cap = on_cap

    def read(self, size=-1):
        if size is None or size < 0:
            size = self.cap + 1 - self.inner.tell()
        data = self.inner.read(max(0, min(size, self.cap + 1 - self.inner.tell())))
        if self.inner.tell() > self.cap:
            raise self.on_cap()
        return data

    def seek(self, offset, whence=io.SEEK_SET):
        target = offset if whence == io.SEEK_SET else self.inner.tell() + offset if whence == io.SEEK_CUR else None
        if target is None or target > self.cap:
            raise self.on_cap()
        return self.inner.seek(target)

    def tell(self):
        return self.inner.tell()

    def close(self):
        self.inner.close()


def _open_archive(path, bound):
    """``tarfile.open`` on ``path``; a compressed one decompresses within ``bound``."""
    with open(path, "rb") as handle:
        head = handle.read(6)
    for magic, codec in _ARCHIVE_CODECS:
        if head.startswith(magic):
            size = os.path.getsize(path)
            stream = _CappedStream(codec(path, "rb"), bound.cap(size),
                                   lambda: bound.error("archive %s (%s)" % (path, codec.__module__), size))
            return tarfile.open(fileobj=stream, mode="r:")
    return tarfile.open(path, "r:")


def _file_kind(mode):
    for test, kind in _FILE_KINDS:
        if test(mode):
            return kind
    return "a special file"


class TarReader:
    """Members of an archive: links are followed inside the archive only, and a member is read
    only when it is a regular file that expands to no more than the bytes stored for it."""

    def __init__(self, path, bound=None):
        self.path = path
        try:
            self.tar = _open_archive(path, bound or ExpansionBound())
            self.members = {}
            for member in self.tar.getmembers():
                self.members[os.path.normpath(member.name).lstrip("/")] = member
        except (OSError, IOError, EOFError, ValueError, OverflowError, zlib.error, tarfile.TarError) as exc:
            raise OciError("cannot read archive %s: %s" % (path, exc))

    def exists(self, name):
        member = self.members.get(os.path.normpath(name))
        return member is not None and not member.isdir()

    def _resolve(self, name):
        """The member ``name`` names, its links followed inside the archive."""
        member = self.members.get(os.path.normpath(name))
        if member is None:
            raise OciError("%s: the archive has no %s" % (self.path, name))
        for dummy in range(MAX_LINK_HOPS):
            if not (member.issym() or member.islnk()):
                return member
            if member.issym():  # relative to its directory; an absolute one names a host path
                base = posixpath.dirname(posixpath.normpath(member.name).lstrip("/"))
                target = posixpath.normpath(posixpath.join(base, member.linkname))
            else:  # a hard link names a member, from the archive's root
                target = posixpath.normpath(member.linkname).lstrip("/")
            if target.startswith("/") or target == ".." or target.startswith("../"):
                raise OciError("%s: archive member %s is a link leading out of the archive (to %s): refused"
                               % (self.path, member.name, member.linkname))
            found = self.members.get(target)
            if found is None:
                raise OciError("%s: archive member %s links to %s, which the archive does not hold"
                               % (self.path, member.name, member.linkname))
            member = found
        raise OciError("%s: %s: more than %d links to follow" % (self.path, name, MAX_LINK_HOPS))

    def open(self, name):
        member = self._resolve(name)
        what = "%s: archive member %s" % (self.path, member.name)
        if not member.isreg():
            kind = [k for test, k in _MEMBER_KINDS if test(member)]
            raise _refused(what, kind[0] if kind else "a special file")
        if member.issparse():
            # a sparse member is worth what the archive stores for it, not what its holes expand to
            stored = sum(size for dummy, size in member.sparse)
            if member.size > stored:
                raise OciError("%s is sparse: it stores %d bytes but expands to %d, refused (an archive must hold "
                               "its blobs whole; write it without --sparse)" % (what, stored, member.size))
        try:
            handle = self.tar.extractfile(member)
        except (KeyError, ValueError, tarfile.TarError) as exc:
            raise VerificationError("%s cannot be read: %s" % (what, exc))
        if handle is None:
            raise VerificationError("%s cannot be read" % what)
        return handle

    def close(self):
        self.tar.close()


def _read(reader, name, limit, size=None):
    """``name``'s content, at most ``limit`` bytes and the descriptor's ``size`` (one more is read to tell)."""
    bound = limit if size is None else min(limit, size)
    handle = reader.open(name)
    try:
        data = handle.read(bound + 1)
    finally:
        handle.close()
    if len(data) > bound:
        if bound != limit:
            raise VerificationError("%s: more than the %d bytes the descriptor says" % (name, size))
        raise VerificationError("%s is more than the %d bytes allowed" % (name, limit))
    return data


def _blob_name(digest):
    algo, value = parse_digest(digest)
    return "blobs/%s/%s" % (algo, value)


def _copy(handle, writer, size):
    """Copy a blob of the descriptor's ``size``: at most ``size`` + 1 bytes are read, and a
    store's writer refuses the one past ``size`` (as it does for a registry download)."""
    left = None if size is None else size + 1
    try:
        while left is None or left > 0:
            chunk = handle.read(COPY_CHUNK if left is None else min(COPY_CHUNK, left))
            if not chunk:
                break
            if left is not None:
                left -= len(chunk)
            writer.write(chunk)
    finally:
        handle.close()


# ---------------------------------------------------------------------------
# OCI image layout (directory, archive, and Docker's OCI-based save format)

class LayoutSource:
    def __init__(self, reader, description, tag=None, digest=None, image_name=None):
        self.reader = reader
        self.description = description
        self.tag = tag
        self.digest = digest
        self.image_name = image_name  # docker-archive: "docker.io/library/app:1"

    def _select(self, index, index_bytes):
        descs = [d for d in index.get("manifests") or [] if isinstance(d, dict)]
        if self.digest:
            for desc in descs:
                if desc.get("digest") == self.digest:
                    return desc
            if self.reader.exists(_blob_name(self.digest)):
                return {"digest": self.digest, "mediaType": None}
            raise OciError("%s: no image with digest %s" % (self.description, self.digest))
        names = []
        for desc in descs:
            annotations = desc.get("annotations") or {}
            names.append(annotations.get(CONTAINERD_NAME) or annotations.get(REF_NAME))
            if self.image_name and annotations.get(CONTAINERD_NAME) == self.image_name:
                return desc
            if self.tag and annotations.get(REF_NAME) == self.tag:
                return desc
            if self.image_name and annotations.get(REF_NAME) == self.image_name.rsplit(":", 1)[-1] \
                    and not annotations.get(CONTAINERD_NAME):
                return desc
        wanted = self.image_name or self.tag
        listing = ", ".join(sorted(n for n in names if n)) or "no named images"
        if wanted:
            raise OciError("%s: no image named %r; it holds: %s" % (self.description, wanted, listing))
        if len(descs) == 1:
            return descs[0]
        if descs and all(d.get("platform") for d in descs):
            # index.json is itself a multi-platform index
            return {"digest": digest_of(index_bytes), "mediaType": media.OCI_INDEX, "_body": index_bytes}
        raise OciError("%s holds several images (%s); name one with :tag or @digest"
                       % (self.description, listing))

    def root(self):
        if not self.reader.exists("oci-layout"):
            raise OciError("%s is not an OCI image layout (no oci-layout file)" % self.description)
        layout = load_json(_read(self.reader, "oci-layout", 4096), "%s: oci-layout" % self.description)
        if not str(layout.get("imageLayoutVersion", "")).startswith("1."):
            raise UnsupportedError("%s: image layout version %r is not supported"
                                   % (self.description, layout.get("imageLayoutVersion")))
        index_bytes = _read(self.reader, "index.json", media.MAX_MANIFEST_BYTES)
        index = load_json(index_bytes, "%s: index.json" % self.description)
        desc = self._select(index, index_bytes)
        if "_body" in desc:
            return desc["_body"], desc["mediaType"], desc["digest"]
        body = self.manifest(desc)
        return body, desc.get("mediaType"), desc["digest"]

    def manifest(self, descriptor):
        return self.blob_bytes(descriptor, media.MAX_MANIFEST_BYTES)

    def blob_bytes(self, descriptor, limit):
        data = _read(self.reader, _blob_name(descriptor["digest"]), limit, declared_size(descriptor))
        verify_bytes(data, descriptor, "%s: blob %s" % (self.description, descriptor["digest"]))
        return data

    def copy_blob(self, descriptor, writer):
        _copy(self.reader.open(_blob_name(descriptor["digest"])), writer, declared_size(descriptor))

    def close(self):
        self.reader.close()


# ---------------------------------------------------------------------------
# docker save, classic layout (manifest.json, <id>/layer.tar)

class DockerArchiveSource:
    """``docker save`` output.  The newer OCI-based format is read as a layout;
    the classic one gets a synthesised OCI manifest (its digest is ours, not Docker's).
    """

    def __init__(self, path, repo_tag=None, bound=None):
        self.path = path
        self.reader = TarReader(path, bound)
        self.description = "docker-archive:%s" % path
        self.repo_tag = repo_tag
        self.layout = None
        self.files = {}  # digest -> member name, for the classic format
        if self.reader.exists("index.json") and self.reader.exists("oci-layout"):
            image_name = None
            if repo_tag:
                try:
                    image_name = str(parse_reference(repo_tag))
                except InvalidReference as exc:
                    raise InvalidReference("%s: %s" % (self.description, exc))
            self.layout = LayoutSource(self.reader, self.description, image_name=image_name)

    def root(self):
        if self.layout is not None:
            return self.layout.root()
        if not self.reader.exists("manifest.json"):
            raise OciError("%s is neither a docker save archive (no manifest.json) nor an OCI layout"
                           % self.description)
        try:
            entries = json.loads(_read(self.reader, "manifest.json", media.MAX_MANIFEST_BYTES).decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise VerificationError("%s: manifest.json is not valid JSON: %s" % (self.description, exc))
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise VerificationError("%s: manifest.json lists no images" % self.description)
        entry = self._choose(entries)
        config_name = entry.get("Config")
        names = entry.get("Layers") or []
        if not isinstance(config_name, str) or not isinstance(names, list) \
                or not all(isinstance(name, str) for name in names):
            raise VerificationError("%s: manifest.json names its config and layers wrongly" % self.description)
        config = _read(self.reader, config_name, media.MAX_CONFIG_BYTES)
        config_digest = digest_of(config)
        self.files[config_digest] = config_name
        layers = []
        for name in names:
            descriptor = self._describe_layer(name)
            self.files[descriptor["digest"]] = name
            layers.append(descriptor)
        manifest = {
            "schemaVersion": 2,
            "mediaType": media.OCI_MANIFEST,
            "config": {"mediaType": media.OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": layers,
        }
        body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return body, media.OCI_MANIFEST, digest_of(body)

    def _choose(self, entries):
        if self.repo_tag:
            wanted = parse_reference(self.repo_tag)
            tags = []
            for entry in entries:
                for tag in entry.get("RepoTags") or []:
                    tags.append(tag)
                    try:
                        if parse_reference(tag) == wanted:
                            return entry
                    except InvalidReference:
                        continue
            raise OciError("%s: no image tagged %s; it holds: %s"
                           % (self.description, self.repo_tag, ", ".join(tags) or "untagged images"))
        if len(entries) > 1:
            tags = [t for e in entries for t in (e.get("RepoTags") or [])]
            raise OciError("%s holds %d images (%s); name one as docker-archive:PATH:REPO:TAG"
                           % (self.description, len(entries), ", ".join(tags) or "untagged"))
        return entries[0]

    def _describe_layer(self, name):
        import hashlib  # pylint: disable=import-outside-toplevel
        hasher = hashlib.sha256()
        size = 0
        head = b""
        handle = self.reader.open(name)
        try:
            while True:
                chunk = handle.read(COPY_CHUNK)
                if not chunk:
                    break
                if not head:
                    head = chunk[:4]
                hasher.update(chunk)
                size += len(chunk)
        finally:
            handle.close()
        compression = media.compression_of(None, head)
        media_type = {None: media.OCI_LAYER, "gzip": media.OCI_LAYER_GZIP, "zstd": media.OCI_LAYER_ZSTD}[compression]
        return {"mediaType": media_type, "digest": "sha256:" + hasher.hexdigest(), "size": size}

    def manifest(self, descriptor):
        if self.layout is not None:
            return self.layout.manifest(descriptor)
        raise VerificationError("%s: unexpected manifest reference %s" % (self.description, descriptor["digest"]))

    def blob_bytes(self, descriptor, limit):
        if self.layout is not None:
            return self.layout.blob_bytes(descriptor, limit)
        data = _read(self.reader, self.files[descriptor["digest"]], limit, declared_size(descriptor))
        verify_bytes(data, descriptor, "%s: %s" % (self.description, self.files[descriptor["digest"]]))
        return data

    def copy_blob(self, descriptor, writer):
        if self.layout is not None:
            return self.layout.copy_blob(descriptor, writer)
        return _copy(self.reader.open(self.files[descriptor["digest"]]), writer, declared_size(descriptor))

    def close(self):
        self.reader.close()


# ---------------------------------------------------------------------------
# registry

class RegistrySource:
    parallel_safe = True  # layer downloads may run in threads (one HTTP session each)

    def __init__(self, client, reference):
        self.client = client
        self.reference = reference
        self.description = str(reference)

    def root(self):
        ref = self.reference
        body, media_type, header_digest = self.client.get_manifest(ref, ref.lookup)
        if ref.digest:
            verify_bytes(body, {"digest": ref.digest}, "%s: manifest" % ref)
            return body, media_type, ref.digest
        computed = digest_of(body)
        if header_digest and header_digest.startswith("sha256:") and header_digest != computed:
            raise VerificationError("%s: the registry says the manifest is %s but it hashes to %s"
                                    % (ref, header_digest, computed))
        return body, media_type, computed

    def manifest(self, descriptor):
        body, dummy, dummy2 = self.client.get_manifest(self.reference, descriptor["digest"])
        verify_bytes(body, descriptor, "%s: manifest %s" % (self.reference, descriptor["digest"]))
        return body

    def blob_bytes(self, descriptor, limit):
        writer = BytesWriter(limit, descriptor)
        self.client.fetch_blob(self.reference, descriptor, writer)
        data = writer.getvalue()
        verify_bytes(data, descriptor, "%s: blob %s" % (self.reference, descriptor["digest"]))
        return data

    def copy_blob(self, descriptor, writer):
        self.client.fetch_blob(self.reference, descriptor, writer)

    def close(self):
        pass


def open_source(source, client_factory, bound=None):
    """A source object for a parsed Source; ``client_factory()`` builds the registry client; a compressed
    archive decompresses within ``bound`` (an ExpansionBound)."""
    if source.kind == Source.REGISTRY:
        return RegistrySource(client_factory(), source.reference)
    if source.kind == Source.OCI_LAYOUT:
        return LayoutSource(DirReader(source.path), str(source), tag=source.tag, digest=source.digest)
    if not os.path.isfile(source.path):
        raise OciError("%s: no such file" % source)
    if source.kind == Source.OCI_ARCHIVE:
        return LayoutSource(TarReader(source.path, bound), str(source), tag=source.tag)
    return DockerArchiveSource(source.path, source.repo_tag, bound)
