"""How Proxmox VE restores a container template: the one tar command every test that restores a template uses.

pve-container src/PVE/LXC/Create.pm, restore_tar_archive_command (read at 94f5585): ``tar xpf - <compression>
--totals @PVE::Storage::Plugin::COMMON_TAR_FLAGS -C <rootdir> --skip-old-files --anchored --exclude ./dev/*``,
the compression option from tar_compression_option (GNU tar does not detect it on a pipe).  ``--skip-old-files``
keeps the FIRST entry of a path that the archive holds twice.  For an unprivileged container the command runs
inside the user namespace (lxc-usernsexec), so owners land shifted; the tests here restore as root.
"""

# pve-storage PVE::Storage::Plugin::COMMON_TAR_FLAGS
COMMON_TAR_FLAGS = ["--one-file-system", "-p", "--sparse", "--numeric-owner", "--acls", "--xattrs",
                    "--xattrs-include=user.*", "--xattrs-include=security.capability", "--warning=no-file-ignored",
                    "--warning=no-xattr-write"]
# pve-container PVE::LXC::Create::tar_compression_option
COMPRESSION = ((".tar.gz", "-z"), (".tgz", "-z"), (".tar.xz", "-J"), (".tar.zst", "--zstd"), (".tar.bz2", "-j"))


def compression_option(archive):
    for suffix, option in COMPRESSION:
        if str(archive).endswith(suffix):
            return option
    return None


# the id map of an unprivileged container, as pve-container's parse_id_maps gives it by default
UNPRIVILEGED_ID_MAP = (("u", 0, 100000, 65536), ("g", 0, 100000, 65536))


def restore_command(archive, rootdir, id_map=()):
    """The argv Proxmox VE runs to restore ``archive`` into ``rootdir`` (reading the file, not stdin).

    With ``id_map`` (an unprivileged container: UNPRIVILEGED_ID_MAP) tar runs inside the user namespace, through
    ``lxc-usernsexec -m u:0:100000:65536 ... --`` as PVE::LXC::userns_command makes it; ``rootdir`` must then be
    owned by the mapped root, and ``archive`` and ``rootdir`` reachable by it.
    """
    option = compression_option(archive)
    userns = []
    if id_map:
        for entry in id_map:
            userns += ["-m", ":".join(str(field) for field in entry)]
        userns = ["lxc-usernsexec"] + userns + ["--"]
    return (userns + ["tar", "xpf", str(archive)] + ([option] if option else []) + ["--totals"] + COMMON_TAR_FLAGS +
            ["-C", str(rootdir), "--skip-old-files", "--anchored", "--exclude", "./dev/*"])
