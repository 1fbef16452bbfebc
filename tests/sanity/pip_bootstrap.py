"""Let ansible-test build its sanity virtualenvs without the internet.

ansible-test bootstraps pip in each sanity venv by running a get-pip.py it
downloads from ci-files.testing.ansible.com and caches as
~/.ansible/test/cache/get_pip_<version>.py.  That host is out of reach here;
PyPI is not.  This writes a stand-in at the cache path that installs pip the
offline way (the interpreter's own ensurepip) and then the exact pip version
ansible-test asked for from PyPI.  A real cached get-pip.py is left alone.

Usage: python tests/sanity/pip_bootstrap.py
"""

import os
import re
import sys

SHIM = '''"""Stand-in for get-pip.py written by lxcri.proxmox's tests/sanity/pip_bootstrap.py."""
import ensurepip
import os
import subprocess
import sys

ARGS = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
ensurepip.bootstrap(upgrade=True)
# ensurepip leaves PIP_CONFIG_FILE=/dev/null in os.environ; the host's pip
# configuration (index, CA bundle) must apply to the real install.
ENV = dict((k, v) for k, v in os.environ.items() if k != "PIP_CONFIG_FILE")
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + ARGS, env=ENV))
'''


def requested_pip_version():
    import ansible_test._internal.python_requirements as reqs  # pylint: disable=import-outside-toplevel
    with open(reqs.__file__) as handle:
        match = re.search(r"pip='([0-9.]+)'", handle.read())
    if not match:
        raise SystemExit("cannot find the pip version ansible-test bootstraps")
    return match.group(1)


def main():
    version = requested_pip_version()
    path = os.path.expanduser("~/.ansible/test/cache/get_pip_%s.py" % version.replace(".", "_"))
    if os.path.exists(path):
        with open(path) as handle:
            current = handle.read()
        if current == SHIM or not current.startswith(SHIM.splitlines()[0]):
            return 0  # ours and current, or a real get-pip.py: keep it
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as handle:
        handle.write(SHIM)
    os.rename(path + ".tmp", path)
    sys.stderr.write("wrote pip bootstrap stand-in %s\n" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
