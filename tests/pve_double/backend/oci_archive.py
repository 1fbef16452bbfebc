"""Proxmox VE 9.1's import of an OCI archive given as ``ostemplate``.

Three parts, each after the real code:

- detection: pve-container PVE/LXC/Create.pm ``archive_is_oci_format``;
- extraction: proxmox-rs proxmox-oci (``OciTarImage::new`` / ``image_manifest``, lib.rs ``parse_image`` and
  ``extract_image_rootfs``, oci_tar_image.rs ``build_layer_map``), called through proxmox-perl-rs
  ``PVE::RS::OCI::parse_and_extract_image``;
- the config: pve-container PVE/LXC/Create.pm ``restore_oci_archive`` and ``resolve_oci_user``.

Where the double differs on purpose: it refuses whiteout paths that leave the rootfs (the real importer joins them
unchecked, inside the container's user namespace; the double runs as root on the test machine), and GNU tar makes
device nodes and FIFOs that the tar crate writes as regular files.
"""

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

from ..tasks import TaskFailed

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
# proxmox-oci: the OCI layer types with their compression (chosen by media type only, never by magic bytes)
LAYER_TYPES = {}
for _base in ("application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.nondistributable.v1.tar"):
    LAYER_TYPES.update({_base: None, _base + "+gzip": "gzip", _base + "+zstd": "zstd"})

# restore_oci_archive's $has_ctrl_char (commit f7b2a27 "allow tabs"): \x09-\x0F pass, newline and CR included
_CTRL = set(range(0x00, 0x09)) | set(range(0x10, 0x20)) | {0x7F}


def is_oci_archive(path):
    """Create.pm archive_is_oci_format: a ``.tar`` file whose ``tar -tf`` listing has a line ``oci-layout``, a
    line ``index.json`` and a line starting ``blobs/`` (names exactly as stored: ``./index.json`` is not one)."""
    if not str(path).endswith(".tar"):
        return False
    proc = subprocess.run(["tar", "-tf", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          universal_newlines=True, check=False)
    lines = proc.stdout.splitlines()
    return "oci-layout" in lines and "index.json" in lines and any(line.startswith("blobs/") for line in lines)


def _has_ctrl(text):
    return any(ord(char) in _CTRL for char in text)


def cmd2string(argv):
    """PVE::Tools::cmd2string: each word through String::ShellQuote's shell_quote (the real Perl module, as the
    node has it), joined by single spaces."""
    proc = subprocess.run(["perl", "-MString::ShellQuote", "-e", 'print join(" ", map { shell_quote($_) } @ARGV)',
                           "--"] + list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    if proc.returncode != 0:
        raise TaskFailed(proc.stderr.strip() or "shell_quote failed")
    return proc.stdout


class _Image:
    """The archive's members by name, as proxmox-oci indexes the tar."""

    def __init__(self, tar):
        self.tar = tar
        self.members = dict((m.name, m) for m in tar.getmembers())

    def read(self, name):
        member = self.members.get(name)
        return None if member is None else self.tar.extractfile(member).read()

    def blob(self, digest):
        algorithm, dummy, hexpart = str(digest).partition(":")
        if not hexpart:
            raise TaskFailed('Incorrectly formatted digest: "%s"' % digest)
        return self.read("blobs/%s/%s" % (algorithm, hexpart))


def _json(data):
    try:
        return json.loads(data)
    except ValueError:
        raise TaskFailed("OCI spec error: serde failed")


def _manifest(image):
    """oci_tar_image.rs image_manifest: the first index entry of the OCI manifest type (no architecture is passed
    by restore_oci_archive, so the first one; nested indexes and Docker types are skipped, not followed)."""
    index = image.read("index.json")
    if index is None:
        raise TaskFailed("OCI spec error: Missing index.json file")
    for entry in _json(index).get("manifests") or []:
        if entry.get("mediaType") == OCI_MANIFEST:
            data = image.blob(entry.get("digest"))
            if data is None:
                raise TaskFailed("Image manifest with digest %s mentioned in image index is missing"
                                 % entry.get("digest"))
            return _json(data)
    raise TaskFailed("Error while parsing OCI image: Unsupported CPU architecture")


def _layer_map(image, manifest, workdir):
    """build_layer_map: diff_id -> uncompressed layer file.  A compressed layer is keyed by the sha256 of its
    decompressed stream, an uncompressed one by its descriptor digest (trusted, never hashed); blobs are never
    checked against their digests; a layer of another media type is left out (a diff_id naming it is then
    "unknown")."""
    layers = {}
    for number, desc in enumerate(manifest.get("layers") or []):
        kind = desc.get("mediaType")
        if kind not in LAYER_TYPES:
            continue
        data = image.blob(desc.get("digest"))
        if data is None:
            raise TaskFailed("Layer file %s mentioned in image manifest is missing" % desc.get("digest"))
        path = os.path.join(workdir, "layer-%d.tar" % number)
        compression = LAYER_TYPES[kind]
        if compression == "gzip":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise TaskFailed("IO error: %s" % exc)
        elif compression == "zstd":
            proc = subprocess.run(["zstd", "-dc"], input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  check=False)
            if proc.returncode != 0:
                raise TaskFailed("IO error: %s" % proc.stderr.decode("utf-8", "replace").strip())
            data = proc.stdout
        with open(path, "wb") as handle:
            handle.write(data)
        key = "sha256:" + hashlib.sha256(data).hexdigest() if compression else desc.get("digest")
        layers[key] = path
    return layers


def _inside(rootfs, relative):
    """``rootfs``/``relative`` when it stays inside (lexically), else None (see the module's note)."""
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return os.path.join(rootfs, *parts) if parts else rootfs


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _apply_layer(path, rootfs):
    """apply_whiteouts (regular-file entries only; ``.wh..wh..opq`` empties its directory, ``.wh.NAME`` removes
    NAME, ``.wh..`` is ignored), then the layer's other entries (GNU tar replacing an existing file, keeping an
    existing directory), owners, modes and xattrs kept."""
    with tarfile.open(path) as layer:
        for member in layer.getmembers():
            if not member.isfile():
                continue
            directory, dummy, base = member.name.rpartition("/")
            if base == ".wh..wh..opq":
                target = _inside(rootfs, directory)
                if target is not None and os.path.isdir(target):
                    for entry in os.listdir(target):
                        _remove(os.path.join(target, entry))
            elif base.startswith(".wh.") and base != ".wh..":
                target = _inside(rootfs, directory + "/" + base[len(".wh."):])
                # exists() follows links: the whiteout of a dangling symlink does nothing
                if target is not None and os.path.exists(target):
                    _remove(target)
    proc = subprocess.run(["tar", "-xpf", path, "--numeric-owner", "--xattrs", "--xattrs-include=*",
                           "--exclude=.wh.*", "--exclude=*/.wh.*", "-C", rootfs],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    if proc.returncode != 0:
        raise TaskFailed("Error while extracting OCI image: %s" % proc.stdout.strip())


def extract_image(path, rootfs, task):
    """PVE::RS::OCI::parse_and_extract_image: the image config's ``config`` object (``{}`` when absent), after
    the layers were applied in ``rootfs.diff_ids`` order."""
    with tarfile.open(path) as archive:
        image = _Image(archive)
        manifest = _manifest(image)
        desc = manifest.get("config") or {}
        if desc.get("mediaType") != OCI_CONFIG:
            raise TaskFailed("Error while parsing OCI image: Wrong media type")
        data = image.blob(desc.get("digest"))
        if data is None:
            raise TaskFailed("Missing image config")
        config = _json(data)
        workdir = tempfile.mkdtemp(prefix="pve-double-oci-")
        try:
            layers = _layer_map(image, manifest, workdir)
            for diff_id in (config.get("rootfs") or {}).get("diff_ids") or []:
                if diff_id not in layers:
                    raise TaskFailed("Unknown layer digest %s found in rootfs.diff_ids" % diff_id)
                _apply_layer(layers[diff_id], rootfs)
                task.log("applied layer %s" % diff_id)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return config.get("config") or {}


def _resolve_in(rootfs, path):
    """A path inside ``rootfs`` with its symlinks resolved as in a chroot (Cwd::abs_path there); None when a
    directory on the way is missing (abs_path fails)."""
    current = "/"
    parts = [p for p in path.split("/") if p]
    for depth in range(40):
        if not parts:
            return current
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            current = os.path.dirname(current.rstrip("/")) or "/"
            continue
        candidate = os.path.join(current, part)
        host = rootfs + candidate
        if os.path.islink(host):
            target = os.readlink(host)
            current = "/" if target.startswith("/") else current
            parts = [p for p in target.split("/") if p] + parts
            continue
        if parts and not os.path.isdir(host):
            return None
        current = candidate
    return None


def _fields(line):
    """Perl's ``split(/:/, $line)`` after chomp: trailing empty fields are dropped."""
    fields = line.rstrip("\n").split(":")
    while fields and fields[-1] == "":
        fields.pop()
    return fields


def _make_path(rootfs, path):
    """File::Path make_path("/$path") after chroot($rootdir): each missing directory is made, symlinks on the way
    resolved inside the rootfs (a dangling one stops it)."""
    current = "/"
    for part in [p for p in path.split("/") if p not in ("", ".")]:
        resolved = _resolve_in(rootfs, os.path.join(current, part))
        if resolved is None:
            return
        if not os.path.lexists(rootfs + resolved):
            os.mkdir(rootfs + resolved, 0o755)
        elif not os.path.isdir(rootfs + resolved):
            return
        current = resolved


def _lookup(path, match_index, value, ret_index):
    """resolve_oci_user's $lookup_field: the first line whose field ``match_index`` is ``value``."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            for line in handle:
                fields = _fields(line)
                if len(fields) > match_index and fields[match_index] == value:
                    return fields[ret_index] if len(fields) > ret_index else None
    except OSError:
        return None
    return None


def resolve_oci_user(userstr, rootfs):
    """Create.pm resolve_oci_user (pve-container 6.1.0+): (uid, gid, groups), each None when not found."""
    head, sep, group = userstr.partition(":")
    if not head or (sep and (not group or ":" in group)):
        raise TaskFailed("OCI config value for 'User' has an invalid format")
    group = group if sep else None
    etc_passwd, etc_group = _resolve_in(rootfs, "/etc/passwd"), _resolve_in(rootfs, "/etc/group")
    if etc_passwd is None:
        raise TaskFailed("cannot resolve /etc/passwd path in container rootfs")
    if etc_group is None:
        raise TaskFailed("cannot resolve /etc/group path in container rootfs")
    passwd, groupfile = rootfs + etc_passwd, rootfs + etc_group
    if head.isdigit() and head.isascii():
        uid, username = head, _lookup(passwd, 2, head, 0)
    else:
        username, uid = head, _lookup(passwd, 0, head, 2)
    gid = groups = None
    if group is not None:
        gid = group if group.isdigit() and group.isascii() else _lookup(groupfile, 0, group, 2)
    else:
        if uid is not None:
            gid = _lookup(passwd, 2, uid, 3)
        if username is not None:
            groups = _supplementary(groupfile, username)
    return uid, gid, groups


def _supplementary(path, username):
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            found = []
            for line in handle:
                fields = _fields(line)
                if len(fields) >= 4 and username in fields[3].split(","):
                    found.append(fields[2])
            return ",".join(found)
    except OSError:
        return None


def import_oci_archive(path, rootfs, task, config, importer="6.1"):
    """Create.pm restore_oci_archive: extract, then map the image config onto the container ``config`` (netN
    already in it; changed in place) and return the keys it sets.  ``importer``: the node's pve-container,
    "6.1" (6.1.0+: the image's User becomes lxc.init.uid/gid/groups) or "6.0" (User ignored)."""
    oci = extract_image(path, rootfs, task)

    def scalar(key):
        value = oci.get(key)
        if value is None:
            return None
        if _has_ctrl(str(value)):
            raise TaskFailed("OCI config value for '%s' contains forbidden control characters!" % key)
        return value

    def array(key):
        value = oci.get(key)
        if value is None:
            return None
        if any(_has_ctrl(str(item)) for item in value):
            raise TaskFailed("OCI config array-value for '%s' contains forbidden control characters!" % key)
        return value

    keys = {}
    volumes = oci.get("Volumes") or {}
    if any(_has_ctrl(name) for name in volumes):
        raise TaskFailed("OCI config data-volumes path contains forbidden control characters!")
    for name in volumes:
        task.log("creating base directory for volume at %s" % name)
        _make_path(rootfs, name)
    argv = list(array("Entrypoint") or []) + list(array("Cmd") or [])
    if argv and argv[0] != "/sbin/init":
        keys["entrypoint"] = cmd2string(argv)
        # "An entrypoint other than /sbin/init breaks the tty console mode."
        keys["cmode"] = "console"
        for key in sorted(k for k in config if k.startswith("net") and k[3:].isdigit()):
            if "host-managed=" not in str(config[key]):
                task.log("Auto-Enabling host-managed network for network device %s." % key)
                keys[key] = str(config[key]) + ",host-managed=1"
    user = scalar("User")
    if user and importer != "6.0":
        uid, gid, groups = resolve_oci_user(user, rootfs)
        for name, value in (("lxc.init.uid", uid), ("lxc.init.gid", gid), ("lxc.init.groups", groups)):
            if value is not None:
                keys[name] = value
    if scalar("WorkingDir"):
        keys["lxc.init.cwd"] = oci["WorkingDir"]
    env = array("Env")
    if env:
        keys["env"] = "\0".join(env)
    keys["lxc.signal.halt"] = scalar("StopSignal") or "SIGTERM"
    return keys
