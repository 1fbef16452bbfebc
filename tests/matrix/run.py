"""The version matrix: sanity and unit tests on every ansible-core the collection claims.

meta/runtime.yml's ``requires_ansible`` names the oldest ansible-core; MATRIX below lists one line per
minor release from there up to the newest on PyPI, each with a controller Python that release supports.
Each line gets its own virtualenv under .cache/matrix/<ansible-core minor>, made from that Python, and
runs ``ansible-test sanity`` (in a copy of the tree under ``$TMPDIR/lxcri-matrix/<minor>``) and the unit
tests in it. The integration and molecule stages stay on the one version of requirements-dev.txt.

Where the Pythons come from (ansible-core 2.20 and later need Python >= 3.12; Debian 12 ships 3.11):
``pythonX.Y`` on PATH, else pyenv's builds (``~/.pyenv/versions/X.Y.*``; this project's machines carry
3.12 and 3.13 there), else Debian's ``/usr/bin/pythonX.Y`` (Debian 13 ships python3.13:
``apt-get install python3.13-venv``). ``LXCRI_PYTHON_X_Y=/path/to/python`` names one explicitly.

Usage: python tests/matrix/run.py [--stage sanity|unit|all] [--only 2.20,2.21] [--list]
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# ansible-core minor: (newest patch release tested, controller Python it runs on)
MATRIX = [
    ("2.17", "2.17.14", "3.11"),
    ("2.18", "2.18.19", "3.11"),
    ("2.19", "2.19.14", "3.11"),
    ("2.20", "2.20.10", "3.12"),
    ("2.21", "2.21.5", "3.13"),
]


def requires_ansible():
    with open(os.path.join(REPO, "meta", "runtime.yml")) as handle:
        match = re.search(r"^requires_ansible:\s*['\"]?([^'\"\n]+)", handle.read(), re.M)
    return match.group(1).strip()


def find_python(version):
    """The path of a Python ``version`` (``3.12``) interpreter with venv, or None."""
    explicit = os.environ.get("LXCRI_PYTHON_" + version.replace(".", "_"))
    candidates = [explicit] if explicit else []
    on_path = shutil.which("python" + version)
    if on_path and ".pyenv/shims" not in on_path:  # a shim answers only for the selected pyenv version
        candidates.append(on_path)
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/%s.*/bin/python%s" % (version, version))),
                         reverse=True)
    candidates.append("/usr/bin/python" + version)
    for path in candidates:
        if path and os.access(path, os.X_OK) and subprocess.call(
                [path, "-c", "import ensurepip, ssl, venv"], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL) == 0:
            return path
    return None


def run(argv, **kwargs):
    sys.stdout.write("+ %s\n" % " ".join(argv))
    sys.stdout.flush()
    subprocess.run(argv, check=True, **kwargs)


def venv(minor, release, python):
    """The matrix line's virtualenv, made once per release (a stamp file names what is installed)."""
    path = os.path.join(REPO, ".cache", "matrix", minor)
    stamp = os.path.join(path, ".installed")
    wanted = "ansible-core==%s\n%s" % (release, open(os.path.join(HERE, "requirements.txt")).read())
    if os.path.exists(stamp) and open(stamp).read() == wanted:
        return path
    shutil.rmtree(path, ignore_errors=True)
    run([python, "-m", "venv", path])
    pip = [os.path.join(path, "bin", "python"), "-m", "pip", "install", "-q"]
    run(pip + ["--upgrade", "pip"])
    run(pip + ["ansible-core==" + release, "-r", os.path.join(HERE, "requirements.txt")])
    with open(stamp, "w") as handle:
        handle.write(wanted)
    return path


def sanity(minor, env_path, python_version):
    tree_root = os.path.join(os.environ.get("TMPDIR", "/tmp"), "lxcri-matrix", minor)
    tree = os.path.join(tree_root, "ansible_collections", "lxcri", "proxmox")
    shutil.rmtree(tree_root, ignore_errors=True)
    os.makedirs(tree)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           stdout=subprocess.PIPE).stdout
    for name in files.decode().split("\0"):
        if name and os.path.isfile(os.path.join(REPO, name)):
            os.makedirs(os.path.dirname(os.path.join(tree, name)), exist_ok=True)
            shutil.copy2(os.path.join(REPO, name), os.path.join(tree, name))
    bindir = os.path.join(env_path, "bin")
    run([os.path.join(bindir, "python"), os.path.join(REPO, "tests", "sanity", "pip_bootstrap.py")])
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"])
    run([os.path.join(bindir, "ansible-test"), "sanity", "--color", "no", "--python", python_version],
        cwd=tree, env=env)
    shutil.rmtree(tree_root, ignore_errors=True)


def unit(env_path):
    bindir = os.path.join(env_path, "bin")
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"])
    run([os.path.join(bindir, "pytest"), "-q", "-p", "no:cacheprovider", "tests/unit"], cwd=REPO, env=env)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--stage", choices=("sanity", "unit", "all"), default="all")
    parser.add_argument("--only", help="comma-separated ansible-core minors, e.g. 2.20,2.21")
    parser.add_argument("--list", action="store_true", help="print the matrix and where each Python is")
    args = parser.parse_args()
    lines = [line for line in MATRIX if not args.only or line[0] in args.only.split(",")]
    sys.stdout.write("requires_ansible %s\n" % requires_ansible())
    missing = []
    for minor, release, python_version in lines:
        python = find_python(python_version)
        sys.stdout.write("ansible-core %-8s on Python %s: %s\n" % (release, python_version, python or "NOT FOUND"))
        if not python:
            missing.append(python_version)
    if missing:
        sys.stdout.write("missing Python %s: see tests/matrix/run.py's docstring for where to get it\n"
                         % ", ".join(sorted(set(missing))))
        return 2
    if args.list:
        return 0
    outcomes = []
    for minor, release, python_version in lines:  # every line runs, whatever an earlier one gave
        started = time.time()
        try:
            env_path = venv(minor, release, find_python(python_version))
            if args.stage in ("sanity", "all"):
                sanity(minor, env_path, python_version)
            if args.stage in ("unit", "all"):
                unit(env_path)
            outcome = "passed"
        except subprocess.CalledProcessError as exc:
            outcome = "FAILED (%s exited %s)" % (os.path.basename(exc.cmd[0]), exc.returncode)
        outcomes.append((outcome, release, python_version, time.time() - started))
    for outcome, release, python_version, seconds in outcomes:
        sys.stdout.write("%s: ansible-core %s on Python %s (%s) in %.0f s\n"
                         % (outcome, release, python_version, args.stage, seconds))
    return 0 if all(outcome == "passed" for outcome, dummy, dummy, dummy in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
