"""Install, start and stop the real components the tests use.

Everything here is idempotent: ``up`` on a running bed checks and keeps it,
``down`` on a stopped bed does nothing.
"""

import glob
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from . import (BED_DIR, OWNER_PROPERTY, POOL_MARK, POOL_NAME, REGISTRY_AUTH_PORT, REGISTRY_PASSWORD,
               REGISTRY_PORT, REGISTRY_TLS_PORT, REGISTRY_TOKEN_PORT, REGISTRY_USER, STATE_FILE,
               TOKEN_SERVER_PORT)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POOL_IMAGE = os.path.join(BED_DIR, "zpool.img")
POOL_SIZE = "2G"  # sparse file
POOL_MOUNT = os.path.join(BED_DIR, "zfs")
ZFS_PIDFILE = os.path.join(BED_DIR, "zfs-fuse.pid")
LIBCRUN_ROOT = os.path.join(BED_DIR, "libcrun")
# lxc-pve 6.0.5 (the LXC of Proxmox VE 9.1): upstream source + Proxmox's patch series, vendored beside this file
LXC_PVE_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lxc-pve")
LXC_PVE_ROOT = os.path.join(BED_DIR, "lxc-pve")
# a stable name for the built prefix, for playbooks and docs: <current>/bin/lxc-attach
LXC_PVE_CURRENT = os.path.join(LXC_PVE_ROOT, "current")
LXC_PVE_MESON = ["-Dapparmor=true", "-Dselinux=false", "-Ddbus=false", "-Dman=false", "-Dtests=false",
                 "-Dpam-cgroup=false", "-Dexamples=false", "-Dio-uring-event-loop=false",
                 "-Dinstall-init-files=false", "-Dspecfile=false", "-Dtools-multicall=false"]
DEBSRC_LIST = "/etc/apt/sources.list.d/lxcri-testbed-src.sources"


class BedError(RuntimeError):
    pass


def log(msg):
    sys.stderr.write("testbed: %s\n" % msg)
    sys.stderr.flush()


def run(argv, check=True, capture=True, env=None, cwd=None, timeout=None):
    proc = subprocess.run(argv, stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture else None,
                          stdin=subprocess.DEVNULL, env=env, cwd=cwd, timeout=timeout,
                          universal_newlines=True, check=False)
    if check and proc.returncode != 0:
        output = (proc.stderr or proc.stdout or "").strip()
        raise BedError("%s failed (rc=%s): %s" % (" ".join(argv), proc.returncode, output))
    return proc


# ---------------------------------------------------------------------------
# installation

def _apt_env():
    env = dict(os.environ)
    env["DEBIAN_FRONTEND"] = "noninteractive"
    return env


def missing_packages():
    """System packages of bindep.txt's ``test`` profile not yet installed."""
    bindep = os.path.join(os.path.dirname(sys.executable), "bindep")
    if not os.path.exists(bindep):
        bindep = shutil.which("bindep")
    if not bindep:
        raise BedError("bindep is not installed; run 'make deps' first")
    proc = run([bindep, "-b", "-f", os.path.join(REPO_ROOT, "bindep.txt"), "test"], check=False)
    # bindep exits 1 when packages are missing and prints them one per line.
    if proc.returncode not in (0, 1):
        raise BedError("bindep failed: %s" % proc.stderr.strip())
    return proc.stdout.split()


_apt_updated = []


def apt_install(packages):
    if not packages:
        return
    if not _apt_updated:
        run(["apt-get", "update", "-q"], env=_apt_env())
        _apt_updated.append(True)
    log("apt-get install %s" % " ".join(packages))
    # --no-remove: fail rather than remove anything (on a Proxmox VE node,
    # Debian's lxc or zfs-fuse would otherwise replace lxc-pve or OpenZFS).
    run(["apt-get", "install", "-y", "-q", "--no-remove", "--no-install-recommends"]
        + list(packages), env=_apt_env())


def _codename():
    with open("/etc/os-release") as handle:
        for line in handle:
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    raise BedError("cannot tell the Debian release from /etc/os-release")


def libcrun_prefixes():
    return sorted(glob.glob(os.path.join(LIBCRUN_ROOT, "*", "lib", "libcrun.so.0")))


def build_libcrun():
    """Build libcrun and python_crun from Debian's own crun source package.

    Debian ships crun without a shared libcrun; the oci_runtime role does the
    same build on nodes.  Here it gives oci_runtime_info a real libcrun to find.
    """
    found = libcrun_prefixes()
    if found:
        return os.path.dirname(os.path.dirname(found[-1]))
    if not os.path.exists(DEBSRC_LIST):
        with open(DEBSRC_LIST, "w") as handle:
            handle.write("Types: deb-src\nURIs: http://deb.debian.org/debian\n"
                         "Suites: %s\nComponents: main\n"
                         "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n" % _codename())
        _apt_updated[:] = []
    if not _apt_updated:
        run(["apt-get", "update", "-q"], env=_apt_env())
        _apt_updated.append(True)
    run(["apt-get", "build-dep", "-y", "-q", "crun"], env=_apt_env())
    apt_install([p for p in ("python3-dev", "dpkg-dev") if not _dpkg_installed(p)])
    work = os.path.join(BED_DIR, "crun-src")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    log("building libcrun from Debian's crun source")
    run(["apt-get", "source", "-q", "crun"], cwd=work)
    srcdir = [d for d in glob.glob(os.path.join(work, "crun-*")) if os.path.isdir(d)][0]
    version = os.path.basename(srcdir)[len("crun-"):]
    prefix = os.path.join(LIBCRUN_ROOT, version)
    # Debian's python3 (not a venv's) so the binding matches the node's interpreter.
    env = dict(os.environ, PYTHON="/usr/bin/python3")
    run(["./configure", "--enable-shared", "--with-python-bindings", "--prefix=" + prefix],
        cwd=srcdir, env=env)
    pyexecdir = "pyexecdir=%s/lib/python3/dist-packages" % prefix
    run(["make", "-j%d" % (os.cpu_count() or 2), pyexecdir], cwd=srcdir, env=env)
    run(["make", "install", pyexecdir], cwd=srcdir, env=env)
    shutil.rmtree(work, ignore_errors=True)
    return prefix


def _lxc_pve_fingerprint():
    """A short hash of the vendored source, the patches and the build options (not the README): a change
    rebuilds."""
    digest = hashlib.sha256(" ".join(LXC_PVE_MESON).encode())
    inputs = [os.path.join(LXC_PVE_SRC, "lxc-6.0.5.tar.gz")]
    for top, dirs, files in os.walk(os.path.join(LXC_PVE_SRC, "patches")):
        dirs.sort()
        inputs += [os.path.join(top, name) for name in sorted(files)]
    for path in inputs:
        digest.update(os.path.relpath(path, LXC_PVE_SRC).encode() + b"\0")
        with open(path, "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()[:12]


def lxc_pve_prefix():
    return os.path.join(LXC_PVE_ROOT, "6.0.5-" + _lxc_pve_fingerprint())


def build_lxc_pve():
    """Build lxc-pve 6.0.5 (upstream v6.0.5 + Proxmox's patches) into its own prefix, once.

    Debian 12's LXC (5.0.2) stays the system LXC; the API double runs its 9.1-mode containers with this one
    (tests/lxcri_testbed/lxc_tools.py).  The prefix is named by a hash of the source, the patches and the meson
    options, so a changed input builds anew and an unchanged one is reused; it is complete only once
    ``.built`` exists (an interrupted build is redone).
    """
    prefix = lxc_pve_prefix()
    if os.path.exists(os.path.join(prefix, ".built")):
        _point_current(prefix)
        return prefix
    work = os.path.join(LXC_PVE_ROOT, "src")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(prefix, ignore_errors=True)
    os.makedirs(work)
    log("building lxc-pve 6.0.5 into %s (about 2 minutes, once)" % prefix)
    run(["tar", "-xzf", os.path.join(LXC_PVE_SRC, "lxc-6.0.5.tar.gz"), "-C", work])
    srcdir = os.path.join(work, "lxc-6.0.5")
    with open(os.path.join(LXC_PVE_SRC, "patches", "series")) as handle:
        for patch in (line.strip() for line in handle):
            if patch and not patch.startswith("#"):
                run(["patch", "-p1", "--forward", "-i", os.path.join(LXC_PVE_SRC, "patches", patch)], cwd=srcdir)
    # the tools find their own liblxc through the rpath: no LD_LIBRARY_PATH, so an argv alone runs them
    env = dict(os.environ, LDFLAGS="-Wl,-rpath,%s/lib" % prefix)
    run(["meson", "setup", "build", "--prefix=" + prefix, "--libdir=lib"] + LXC_PVE_MESON, cwd=srcdir, env=env,
        timeout=600)
    run(["ninja", "-C", "build", "install"], cwd=srcdir, env=env, timeout=1800)
    with open(os.path.join(prefix, ".built"), "w") as handle:
        handle.write("lxc-pve 6.0.5\n")
    shutil.rmtree(work, ignore_errors=True)
    _point_current(prefix)
    for old in glob.glob(os.path.join(LXC_PVE_ROOT, "6.0.5-*")):
        if old != prefix:  # builds of an earlier source or options
            shutil.rmtree(old, ignore_errors=True)
    return prefix


def _point_current(prefix):
    if os.path.islink(LXC_PVE_CURRENT) and os.readlink(LXC_PVE_CURRENT) == os.path.basename(prefix):
        return
    tmp = LXC_PVE_CURRENT + ".tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.basename(prefix), tmp)
    os.rename(tmp, LXC_PVE_CURRENT)


def _dpkg_installed(package):
    proc = run(["dpkg-query", "-W", "-f=${Status}", package], check=False)
    return proc.returncode == 0 and "install ok installed" in proc.stdout


def host_provided(packages):
    """Drop test packages whose job the host already does another way.

    A Proxmox VE node has lxc-pve (not Debian's lxc) and OpenZFS (which
    conflicts with zfs-fuse); the test bed then uses those.
    """
    keep = []
    for package in packages:
        if package == "lxc" and shutil.which("lxc-start"):
            continue
        if package == "zfs-fuse" and _dpkg_installed("zfsutils-linux"):
            continue
        keep.append(package)
    return keep


def install():
    os.makedirs(BED_DIR, exist_ok=True)
    apt_install(host_provided(missing_packages()))
    build_lxc_pve()
    return build_libcrun()


# ---------------------------------------------------------------------------
# ZFS (zfs-fuse, file-backed pool)

def zfs_daemon_up():
    return run(["zpool", "list", "-H", "-o", "name"], check=False).returncode == 0


def _pid_alive(pidfile, command):
    """The pid in ``pidfile`` if that process is alive and runs ``command``."""
    try:
        with open(pidfile) as handle:
            pid = int(handle.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv0 = handle.read().split(b"\0")[0].decode(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if os.path.basename(argv0) == command else None


def _stale_fuse_zfs_mounts():
    """Mount points of fuse.zfs filesystems, deepest first (from mountinfo)."""
    points = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "fuse.zfs":
                points.append(fields[4].encode().decode("unicode_escape"))
    return sorted(points, key=len, reverse=True)


def recover_dead_zfs_fuse():
    """Clear what a killed zfs-fuse leaves behind, so that it can start again.

    A session's processes are killed when it ends; the daemon's pidfile then
    makes the next ``zfs-fuse --pidfile`` exit 1 without a word, and its FUSE
    mounts stay behind as "Transport endpoint is not connected".  Only called
    when ``zpool`` does not answer, so no live daemon owns these mounts.
    """
    pid = _pid_alive(ZFS_PIDFILE, "zfs-fuse")
    if pid:
        log("zfs-fuse (pid %d) runs but does not answer; stopping it" % pid)
        _kill_pidfile(ZFS_PIDFILE)
    elif os.path.exists(ZFS_PIDFILE):
        log("removing the stale zfs-fuse pidfile")
        os.unlink(ZFS_PIDFILE)
    for point in _stale_fuse_zfs_mounts():
        log("detaching the dead zfs-fuse mount %s" % point)
        run(["umount", "-l", point], check=False)


def start_zfs():
    if not zfs_daemon_up():
        if not shutil.which("zfs-fuse"):
            raise BedError("zpool does not answer and zfs-fuse is not installed")
        recover_dead_zfs_fuse()
        log("starting zfs-fuse")
        run(["zfs-fuse", "--pidfile", ZFS_PIDFILE, "--no-kstat-mount"])
        deadline = time.time() + 20
        while not zfs_daemon_up():
            if time.time() > deadline:
                raise BedError("zfs-fuse did not come up within 20s")
            time.sleep(0.2)
    pools = run(["zpool", "list", "-H", "-o", "name"]).stdout.split()
    if POOL_NAME not in pools:
        if os.path.exists(POOL_IMAGE):
            log("importing pool %s" % POOL_NAME)
            proc = run(["zpool", "import", "-d", BED_DIR, POOL_NAME], check=False)
            if proc.returncode != 0:
                log("import failed (%s); recreating the scratch pool" % proc.stderr.strip())
                os.unlink(POOL_IMAGE)
        if not os.path.exists(POOL_IMAGE):
            log("creating pool %s on %s" % (POOL_NAME, POOL_IMAGE))
            run(["truncate", "-s", POOL_SIZE, POOL_IMAGE])
            run(["zpool", "create", "-m", POOL_MOUNT, POOL_NAME, POOL_IMAGE])
            run(["zfs", "set", "%s=yes" % POOL_MARK, POOL_NAME])
    mark = run(["zfs", "get", "-H", "-o", "value", POOL_MARK, POOL_NAME]).stdout.strip()
    if mark != "yes":
        raise BedError("pool %s exists but is not the test bed's (no %s=yes); not touching it"
                       % (POOL_NAME, POOL_MARK))
    mounted = run(["zfs", "get", "-H", "-o", "value", "mounted", POOL_NAME]).stdout.strip()
    if mounted != "yes":
        # a pool imported from zpool.cache at daemon start is not mounted
        log("mounting pool %s" % POOL_NAME)
        run(["zfs", "mount", "-a"])
    remove_stale_datasets()
    return {"pool": POOL_NAME, "mountpoint": POOL_MOUNT, "image": POOL_IMAGE}


def destroy_tree(root, attempts=10):
    """Destroy ``root`` and everything below it on the test bed's zfs-fuse.

    zfs-fuse answers "dataset is busy" for mounted datasets it has not yet
    let go of: unmount the tree deepest first, then destroy, a few times.
    """
    for dummy in range(attempts):
        listing = run(["zfs", "list", "-H", "-o", "name", "-r", root], check=False)
        if listing.returncode != 0:
            return True
        for name in sorted(listing.stdout.split(), reverse=True):
            run(["zfs", "unmount", "-f", name], check=False)
        if run(["zfs", "destroy", "-R", root], check=False).returncode == 0:
            return True
        time.sleep(0.3)
    return False


def owner_alive(value):
    """Whether the process a dataset's OWNER_PROPERTY names (a pid; "-" when unset) is alive."""
    try:
        os.kill(int(value), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def remove_stale_datasets():
    """Scratch datasets (t-*, bench-*) left behind by interrupted runs: those whose owner (OWNER_PROPERTY, the pid
    that made it) is gone, or that name none.  A live run's datasets stay: `make test` runs `up` again for each
    stage it starts, beside the integration stage that uses them."""
    listing = run(["zfs", "list", "-H", "-o", "name,%s" % OWNER_PROPERTY, "-d", "1", POOL_NAME], check=False)
    for line in listing.stdout.splitlines():
        name, dummy, owner = line.partition("\t")
        leaf = name.split("/")[-1]
        if "/" in name and (leaf.startswith("t-") or leaf.startswith("bench-")) and not owner_alive(owner.strip()):
            destroy_tree(name)


def scratch_create_args():
    """``zfs create`` options that mark a scratch dataset as this process's (see remove_stale_datasets)."""
    return ["-o", "%s=%d" % (OWNER_PROPERTY, os.getpid())]


def stop_zfs():
    if zfs_daemon_up():
        pools = run(["zpool", "list", "-H", "-o", "name"]).stdout.split()
        if POOL_NAME in pools:
            run(["zpool", "export", "-f", POOL_NAME], check=False)
    _kill_pidfile(ZFS_PIDFILE)


# ---------------------------------------------------------------------------
# registries

def _port_open(port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _registry_config(name, port, htpasswd=None, token=None, tls=None):
    data = os.path.join(BED_DIR, "registry-%s" % name)
    os.makedirs(data, exist_ok=True)
    lines = [
        "version: 0.1",
        "log: {level: warn}",
        "storage:",
        "  filesystem: {rootdirectory: %s}" % data,
        "  delete: {enabled: true}",
        "http:",
        "  addr: 127.0.0.1:%d" % port,
        "  secret: lxcri-testbed-%s" % name,
    ]
    if tls:
        lines += ["  tls: {certificate: %s, key: %s}" % (tls["cert"], tls["key"])]
    if htpasswd:
        lines += ["auth:", "  htpasswd: {realm: lxcri-testbed, path: %s}" % htpasswd]
    if token:
        lines += ["auth:", "  token:",
                  "    realm: %s" % token["realm"],
                  "    service: %s" % token["service"],
                  "    issuer: %s" % token["issuer"],
                  "    rootcertbundle: %s" % token["cert"]]
    path = os.path.join(BED_DIR, "registry-%s.yml" % name)
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def _wait_registry(port, auth, tls=None):
    deadline = time.time() + 20
    url = "%s://127.0.0.1:%d/v2/" % ("https" if tls else "http", port)
    context = None
    if tls:
        import ssl  # pylint: disable=import-outside-toplevel
        context = ssl.create_default_context(cafile=tls["ca"])
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2, context=context)
            if not auth:
                return
        except urllib.error.HTTPError as exc:
            if auth and exc.code == 401:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise BedError("registry on port %d did not answer within 20s" % port)


def start_token_server():
    """The token service in front of the token-auth registry (see token_server.py)."""
    key = os.path.join(BED_DIR, "token.key")
    cert = os.path.join(BED_DIR, "token.crt")
    if not os.path.exists(cert):
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
             "-days", "3650", "-subj", "/CN=lxcri-testbed-token"])
    info = {"realm": "http://127.0.0.1:%d/token" % TOKEN_SERVER_PORT, "service": "lxcri-testbed-registry",
            "issuer": "lxcri-testbed-token-issuer", "cert": cert,
            "control": "http://127.0.0.1:%d/control" % TOKEN_SERVER_PORT}
    pidfile = os.path.join(BED_DIR, "token-server.pid")
    if not _port_open(TOKEN_SERVER_PORT):
        log("starting token server on 127.0.0.1:%d" % TOKEN_SERVER_PORT)
        logfile = open(os.path.join(BED_DIR, "token-server.log"), "ab")
        proc = subprocess.Popen([sys.executable, "-m", "lxcri_testbed.token_server", str(TOKEN_SERVER_PORT),
                                 key, cert, info["issuer"], info["service"], REGISTRY_USER, REGISTRY_PASSWORD],
                                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        with open(pidfile, "w") as handle:
            handle.write("%d\n" % proc.pid)
        deadline = time.time() + 20
        while not _port_open(TOKEN_SERVER_PORT):
            if time.time() > deadline or proc.poll() is not None:
                raise BedError("token server did not start; see %s/token-server.log" % BED_DIR)
            time.sleep(0.1)
    return info


def make_test_ca():
    """A private CA and a server certificate for 127.0.0.1 (the TLS registry)."""
    ca_key, ca_cert = os.path.join(BED_DIR, "ca.key"), os.path.join(BED_DIR, "ca.crt")
    key, cert = os.path.join(BED_DIR, "registry-tls.key"), os.path.join(BED_DIR, "registry-tls.crt")
    if not os.path.exists(cert):
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_cert,
             "-days", "3650", "-subj", "/CN=lxcri-testbed-ca"])
        csr = os.path.join(BED_DIR, "registry-tls.csr")
        run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
             "-subj", "/CN=127.0.0.1"])
        ext = os.path.join(BED_DIR, "registry-tls.ext")
        with open(ext, "w") as handle:
            handle.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
             "-out", cert, "-days", "3650", "-extfile", ext])
    return {"ca": ca_cert, "cert": cert, "key": key}


def start_registry(name, port, auth, token=None, tls=None):
    htpasswd = None
    if auth:
        htpasswd = os.path.join(BED_DIR, "htpasswd")
        line = run(["htpasswd", "-Bbn", REGISTRY_USER, REGISTRY_PASSWORD]).stdout.strip()
        with open(htpasswd, "w") as handle:
            handle.write(line + "\n")
    config = _registry_config(name, port, htpasswd, token, tls)
    pidfile = os.path.join(BED_DIR, "registry-%s.pid" % name)
    if not _port_open(port):
        log("starting registry %s on 127.0.0.1:%d" % (name, port))
        logfile = open(os.path.join(BED_DIR, "registry-%s.log" % name), "ab")
        proc = subprocess.Popen(["docker-registry", "serve", config], stdout=logfile,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        with open(pidfile, "w") as handle:
            handle.write("%d\n" % proc.pid)
    _wait_registry(port, auth or bool(token), tls)
    scheme = "https" if tls else "http"
    info = {"host": "127.0.0.1:%d" % port, "url": "%s://127.0.0.1:%d" % (scheme, port)}
    if tls:
        info["ca"] = tls["ca"]
    if auth or token:
        info.update(username=REGISTRY_USER, password=REGISTRY_PASSWORD)
    if token:
        info["token_service"] = token
    return info


def _kill_pidfile(pidfile):
    try:
        with open(pidfile) as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        for dummy in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.unlink(pidfile)


# ---------------------------------------------------------------------------
# peers: unmodified community collections to measure against and to prove the PVE double

PEER_DIR = os.path.join(BED_DIR, "peer-collections")
PEER_COLLECTIONS = ("community/general", "community/proxmox")


def peer_collections():
    """community.general and community.proxmox from the ``ansible`` 12 wheel on PyPI (ansible-core 2.19)."""
    wanted = [os.path.join(PEER_DIR, "ansible_collections", c) for c in PEER_COLLECTIONS]
    if all(os.path.isdir(path) for path in wanted):
        return PEER_DIR
    import tempfile  # pylint: disable=import-outside-toplevel
    import zipfile  # pylint: disable=import-outside-toplevel
    os.makedirs(BED_DIR, exist_ok=True)
    wheels = tempfile.mkdtemp(dir=BED_DIR)
    try:
        run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", wheels, "ansible>=12,<13"],
            timeout=600)
        wheel = glob.glob(os.path.join(wheels, "ansible-*.whl"))[0]
        with zipfile.ZipFile(wheel) as archive:
            prefixes = tuple("ansible_collections/%s/" % c for c in PEER_COLLECTIONS)
            archive.extractall(PEER_DIR, [m for m in archive.namelist() if m.startswith(prefixes)])
    finally:
        shutil.rmtree(wheels, ignore_errors=True)
    return PEER_DIR


# ---------------------------------------------------------------------------
# entry points

def up():
    if os.geteuid() != 0:
        raise BedError("the test bed needs root (apt, zfs-fuse, LXC)")
    libcrun_prefix = install()
    state = {
        "zfs": start_zfs(),
        "registry": start_registry("open", REGISTRY_PORT, auth=False),
        "registry_auth": start_registry("auth", REGISTRY_AUTH_PORT, auth=True),
        "registry_token": start_registry("token", REGISTRY_TOKEN_PORT, auth=False, token=start_token_server()),
        "registry_tls": start_registry("tls", REGISTRY_TLS_PORT, auth=False, tls=make_test_ca()),
        "libcrun": {
            "prefix": libcrun_prefix,
            "library": os.path.join(libcrun_prefix, "lib", "libcrun.so.0"),
            "version": os.path.basename(libcrun_prefix),
        },
        "lxc_path": os.path.join(BED_DIR, "lxc"),
        "lxc_pve": {"prefix": lxc_pve_prefix(), "version": "6.0.5"},
    }
    os.makedirs(state["lxc_path"], exist_ok=True)
    remove_stale_containers(state["lxc_path"])
    with open(STATE_FILE + ".tmp", "w") as handle:
        json.dump(state, handle, indent=2, sort_keys=True)
    os.rename(STATE_FILE + ".tmp", STATE_FILE)
    return state


def remove_stale_containers(lxc_path):
    """Containers left by an interrupted run: stop and remove them."""
    for name in os.listdir(lxc_path):
        if name.startswith("lxcri-t-"):
            run(["lxc-stop", "-P", lxc_path, "-n", name, "-k"], check=False, timeout=30)
            shutil.rmtree(os.path.join(lxc_path, name), ignore_errors=True)


def down():
    for name in ("registry-open", "registry-auth", "registry-token", "registry-tls", "token-server"):
        _kill_pidfile(os.path.join(BED_DIR, "%s.pid" % name))
    if shutil.which("zpool"):
        stop_zfs()
    if os.path.exists(STATE_FILE):
        os.unlink(STATE_FILE)


def load_state():
    """The running bed's state, or None when it is not up."""
    try:
        with open(STATE_FILE) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None
