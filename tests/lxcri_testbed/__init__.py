"""The lxcri.proxmox test bed: real LXC, ZFS (zfs-fuse), registries and images.

``python -m lxcri_testbed up`` installs and starts everything (idempotent),
``python -m lxcri_testbed down`` stops it, ``status`` prints the state JSON.
The pytest fixtures in tests/conftest.py read the state this writes.
"""

import os

BED_DIR = os.environ.get("LXCRI_TESTBED_DIR", "/var/lib/lxcri-testbed")
STATE_FILE = os.path.join(BED_DIR, "state.json")

# A pool name no real host uses; the pool's root also carries the user
# property below, and nothing here touches a pool that lacks it.
POOL_NAME = os.environ.get("LXCRI_TESTBED_POOL", "lxcritestbed")
POOL_MARK = "lxcri:testbed"
# The pid of the process that made a scratch dataset (t-*, bench-*): `up` leaves a dataset alone while that process
# lives (a test or benchmark run beside it: `make test` runs `up` again for each stage it starts).
OWNER_PROPERTY = "lxcri:owner"

REGISTRY_PORT = int(os.environ.get("LXCRI_REGISTRY_PORT", "45000"))
REGISTRY_AUTH_PORT = int(os.environ.get("LXCRI_REGISTRY_AUTH_PORT", "45001"))
REGISTRY_TOKEN_PORT = int(os.environ.get("LXCRI_REGISTRY_TOKEN_PORT", "45002"))
TOKEN_SERVER_PORT = int(os.environ.get("LXCRI_TOKEN_SERVER_PORT", "45003"))
REGISTRY_TLS_PORT = int(os.environ.get("LXCRI_REGISTRY_TLS_PORT", "45004"))
REGISTRY_USER = "lxcri"
# A throwaway credential for a loopback-only test registry.
REGISTRY_PASSWORD = "testbed-only-secret"


def xdist_worker():
    """The pytest-xdist worker running this process (``gw0``, ``gw1``, ...), or "" outside xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "")


def per_worker(name):
    """``name`` suffixed with the xdist worker, for what parallel workers share on the test bed.

    The registries and the LXC path are shared by every worker; repositories and container
    directories named this way keep one worker from overwriting another's (images built by
    umoci differ between builds, so two workers pushing one tag would race).
    """
    worker = xdist_worker()
    return "%s-%s" % (name, worker) if worker else name


# the registry namespace the integration tests push their images to
TEST_REPO_NS = per_worker("lxcri-test")


def in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
