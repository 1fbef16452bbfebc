"""Shared pytest setup for lxcri.proxmox.

* Makes the working tree importable as ``ansible_collections.lxcri.proxmox``
  (a generated collection root under .cache/, no hand-made symlinks).
* Fixtures for the real test bed: a scratch ZFS dataset per test, registry
  images built on the spot, an LXC runner, and the collection installed from
  a freshly built tarball.
* Tests skip with a reason where what they need is missing; under CI
  (CI=true) any skip fails the session, except tests marked allowed_skip.
"""

import os
import shutil
import subprocess
import sys
import uuid

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
COLLECTIONS_ROOT = os.path.join(REPO_ROOT, ".cache", "collections")


def _collection_root():
    link = os.path.join(COLLECTIONS_ROOT, "ansible_collections", "lxcri", "proxmox")
    if os.path.realpath(link) != REPO_ROOT:
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(REPO_ROOT, link)
    for path in (COLLECTIONS_ROOT, TESTS_DIR):
        if path not in sys.path:
            sys.path.insert(0, path)


_collection_root()

from lxcri_testbed import TEST_REPO_NS, in_ci, xdist_worker  # noqa: E402  (needs the path set above)
from lxcri_testbed.bed import destroy_tree, load_state, run, scratch_create_args  # noqa: E402

# skipped tests' node ids, collected by pytest_runtest_logreport
_SKIPS = []

# Fixtures that need the real components; tests using them are test-bed tests.
BED_FIXTURES = {"bed", "zfs_dataset", "registry_image", "lxc_runner", "image_rootfs"}


def need(condition, reason):
    """Skip when ``condition`` is false, or fail under CI where skips are not allowed."""
    if not condition:
        if in_ci():
            pytest.fail("test bed requirement missing under CI: %s" % reason, pytrace=False)
        pytest.skip(reason)


def pytest_configure(config):
    config.addinivalue_line("markers", "testbed: needs the real test bed (root, LXC, ZFS, registry)")
    config.addinivalue_line("markers", "integration: runs real ansible processes")
    config.addinivalue_line("markers", "openzfs: opt-in tests on a real OpenZFS host (LXCRI_OPENZFS_POOL)")
    config.addinivalue_line("markers", "allowed_skip: may skip under CI too (it needs something outside "
                            "the project, such as ../shared)")
    config.addinivalue_line("markers", "slow(seconds): a long test (about that long in CI), started early on its "
                            "own worker")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if BED_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.testbed)
    spread_slow(items, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))


def slow_seconds(item):
    marker = item.get_closest_marker("slow")
    return (marker.args[0] if marker.args else 60) if marker else 0


def spread_slow(items, workers):
    """Order the collection for pytest-xdist's worksteal scheduling (Makefile): it hands each worker an equal
    run of consecutive tests, and an idle worker steals from the end of the longest queue.  The slow tests go to
    the front of those runs, the longest first and balanced over the workers, so that none starts late and ends
    the run alone.  Every worker collects the same order (the hook sees the same items)."""
    if workers < 2 or not any(slow_seconds(item) for item in items):
        return
    slow = sorted((item for item in items if slow_seconds(item)), key=lambda item: -slow_seconds(item))
    rest = [item for item in items if not slow_seconds(item)]
    sizes, remaining = [], len(items)
    for index in range(workers):  # worksteal's first split: len(pending) // nodes_remaining each
        sizes.append(remaining // (workers - index))
        remaining -= sizes[-1]
    runs = [[] for dummy in range(workers)]
    load = [0] * workers
    for item in slow:  # longest first, to the run with the least slow seconds that still has room
        open_runs = [index for index in range(workers) if len(runs[index]) < sizes[index]]
        index = min(open_runs, key=lambda index: load[index])
        runs[index].append(item)
        load[index] += slow_seconds(item)
    for index in range(workers):
        while len(runs[index]) < sizes[index]:
            runs[index].append(rest.pop(0))
    items[:] = [item for run in runs for item in run]


def pytest_runtest_logreport(report):
    # a report hook, not makereport: under pytest-xdist it runs in the controller too, which gets every
    # worker's reports (a worker's exit status does not reach the controller's); markers are in keywords
    if report.skipped and "allowed_skip" not in report.keywords:
        _SKIPS.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    skips = _SKIPS
    if skips and in_ci():
        sys.stderr.write("\nCI=true but %d test(s) were skipped (CI installs everything the tests need, "
                         "so a skip there hides a gap):\n  %s\n"
                         % (len(skips), "\n  ".join(skips)))
        session.exitstatus = 1


# ---------------------------------------------------------------------------
# test bed fixtures

@pytest.fixture(scope="session")
def bed():
    """The running test bed's state (see tests/lxcri_testbed/bed.py)."""
    need(os.geteuid() == 0, "needs root")
    state = load_state()
    need(state is not None, "the test bed is down: run 'make testbed-up'")
    if xdist_worker():
        # one LXC path per xdist worker (lxc_runner, test_initwrap), so lxc-ls and logs stay its own
        state["lxc_path"] = os.path.join(state["lxc_path"], xdist_worker())
        os.makedirs(state["lxc_path"], exist_ok=True)
    return state


@pytest.fixture
def zfs_dataset(bed):
    """A scratch dataset ``<pool>/t-<random>``, destroyed with its children afterwards."""
    pool = bed["zfs"]["pool"]
    need(run(["zpool", "list", "-H", pool], check=False).returncode == 0,
         "zfs pool %s is not imported: run 'make testbed-up'" % pool)
    name = "%s/t-%s" % (pool, uuid.uuid4().hex[:12])
    run(["zfs", "create"] + scratch_create_args() + [name])  # this worker's: a concurrent `up` leaves it alone
    yield name
    destroy_tree(name)


@pytest.fixture(params=["9.1", "8"])
def busybox_double(request, tmp_path, bed):
    """The Proxmox VE API double (9.1 and 8 modes) with a busybox template ``local:vztmpl/base.tar.zst``.

    Its /sbin/init is ``sleep 300``, which ignores the halt signal as many apps as PID 1 do.
    """
    from pve_double.server import Double  # pylint: disable=import-outside-toplevel
    instance = Double(str(tmp_path / "pve"), mode=request.param).start()
    instance.add_busybox_template("base.tar.zst", tmp_path, init=Double.STUBBORN_INIT)
    yield instance
    instance.kill_containers()
    instance.stop()


def _zdouble(mode, tmp_path, zfs_dataset):
    from pve_double.server import Double  # pylint: disable=import-outside-toplevel
    instance = Double(str(tmp_path / "pve"), mode=mode, zfs_root=zfs_dataset + "/pve").start()
    yield instance
    instance.kill_containers()
    instance.stop()


@pytest.fixture
def zdouble91(tmp_path, zfs_dataset, bed):
    """The API double in 9.1 mode with a zfspool storage ``local-zfs`` on a scratch dataset."""
    yield from _zdouble("9.1", tmp_path, zfs_dataset)


@pytest.fixture
def zdouble8(tmp_path, zfs_dataset, bed):
    """The API double in 8 mode (LXC 5.0.2, no host-managed network), with ``local-zfs`` as zdouble91."""
    yield from _zdouble("8", tmp_path, zfs_dataset)


@pytest.fixture
def zcluster(tmp_path, zfs_dataset, bed):
    """The API double as a three-node cluster (multinode.py): pve1 (the API host) and pve2 run 9.1, pve3 runs 8 (a
    cluster mid-upgrade); each node has its own ``local`` and ``local-zfs`` (on ``<scratch>/pve/<node>``), and
    every node sees the ``shared`` dir storage.  /cluster/resources reads live (placement tests stage loads with
    ``usage_override``)."""
    from pve_double.server import Double  # pylint: disable=import-outside-toplevel
    instance = Double(str(tmp_path / "pve"), nodes=["pve1", "pve2", "pve3"], node_modes={"pve3": "8"},
                      zfs_root=zfs_dataset + "/pve", resources_lag=0).start()
    yield instance
    instance.kill_containers()
    instance.stop()


@pytest.fixture(scope="session")
def registry_image(bed, tmp_path_factory):
    """The default busybox test image, built now and pushed to both registries.

    ``.refs['open']`` / ``.refs['auth']`` are ``host:port/repo:tag`` references;
    the auth registry's credentials are in ``bed['registry_auth']``.
    """
    from lxcri_testbed.images import build_image, push_image
    for tool in ("umoci", "skopeo", "busybox"):
        need(run(["which", tool], check=False).returncode == 0, "%s is not installed" % tool)
    image = build_image(str(tmp_path_factory.mktemp("image")))
    push_image(image, bed["registry"], TEST_REPO_NS + "/busybox", "open")
    push_image(image, bed["registry_auth"], TEST_REPO_NS + "/busybox", "auth")
    return image


@pytest.fixture
def image_rootfs(registry_image, tmp_path):
    """The test image unpacked by umoci (a reference rootfs)."""
    from lxcri_testbed.images import unpack_rootfs
    return unpack_rootfs(registry_image, str(tmp_path / "bundle"))


@pytest.fixture
def lxc_runner(bed):
    """Starts rootfs directories as real LXC containers; stops and removes them afterwards."""
    from lxcri_testbed.lxc import LxcRunner
    need(run(["which", "lxc-start"], check=False).returncode == 0, "lxc is not installed")
    runner = LxcRunner(bed["lxc_path"])
    yield runner
    runner.cleanup()


class Bridge:
    """A Linux bridge on the host with the address ``<net>.1/24``; ``address(n)`` is ``<net>.n/24``."""

    def __init__(self, name, net):
        self.name = name
        self.net = net
        self.host = net + ".1"

    def address(self, number):
        return "%s.%d/24" % (self.net, number)

    def serve_dhcp(self, directory):
        """A DHCP server on the bridge (dnsmasq, no DNS): leases ``<net>.100``-``<net>.199`` with ``<net>.1``
        as router and name server; stopped with the bridge.  Returns the lease file's path."""
        need(shutil.which("dnsmasq") is not None, "dnsmasq is not installed")
        leases = os.path.join(str(directory), "dnsmasq.leases")
        self._dhcp = subprocess.Popen(
            ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--user=root",
             "--interface=%s" % self.name, "--bind-interfaces", "--except-interface=lo",
             "--dhcp-range=%s.100,%s.199,255.255.255.0,1h" % (self.net, self.net),
             "--dhcp-option=option:router,%s" % self.host, "--dhcp-option=option:dns-server,%s" % self.host,
             "--dhcp-leasefile=%s" % leases, "--pid-file="],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return leases

    def stop(self):
        if getattr(self, "_dhcp", None) is not None:
            self._dhcp.terminate()
            self._dhcp.wait(10)
            self._dhcp = None


@pytest.fixture
def bridge():
    """A test bridge ``lxcri-br<N>`` with its own /24 per xdist worker N (10.231.<N>.0/24), deleted afterwards:
    parallel tests never share a subnet.  A test bridge a killed run left with that subnet goes first (its route
    would win, and the new bridge's addresses would answer "no route to host")."""
    need(shutil.which("ip") is not None, "iproute2 (the ip command) is not installed")
    worker = xdist_worker() or "gw0"
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    name = "lxcri-br%d" % index
    net = "10.231.%d" % index
    listed = subprocess.run(["ip", "-o", "-4", "addr", "show"], stdout=subprocess.PIPE, universal_newlines=True,
                            check=True).stdout
    stale = {line.split()[1] for line in listed.splitlines() if " %s.1/24 " % net in line}
    for link in stale | {name}:
        if link.startswith("lxcri-br"):
            subprocess.run(["ip", "link", "del", link], check=False, stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", net + ".1/24", "dev", name], check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    made = Bridge(name, net)
    yield made
    made.stop()
    subprocess.run(["ip", "link", "del", name], check=False)


@pytest.fixture
def lxc6_runner(bed):
    """lxc_runner with lxc-pve 6.0.5, the LXC of Proxmox VE 9.1 (the test bed builds it into its own prefix)."""
    from lxcri_testbed.lxc import LxcRunner, lxc_pve_tools
    runner = LxcRunner(bed["lxc_path"], lxc_pve_tools())
    assert runner.tools.version == "6.0.5", runner.tools.version
    yield runner
    runner.cleanup()


# ---------------------------------------------------------------------------
# Ansible

@pytest.fixture(scope="session")
def installed_collection(tmp_path_factory):
    """lxcri.proxmox built into a tarball and installed with ansible-galaxy."""
    from lxcri_testbed.ansible import InstalledCollection
    try:
        return InstalledCollection(str(tmp_path_factory.mktemp("ansible")))
    except subprocess.CalledProcessError as exc:
        pytest.fail("building/installing the collection failed: %s" % exc.stderr, pytrace=False)
