"""bench/molecule: a molecule instance that is a linked clone of an existing base, against the first one, in one run.

Against the Proxmox VE API test double (9.1, real LXC, ``local-zfs`` on the test bed's zfs-fuse pool), with the
Debian-like image of the molecule tests (tests/lxcri_testbed/molecule_images.py, built now and pushed to the test
bed's registry), each round:

1. ``molecule create`` of scenario A of the sample role (tests/molecule_sample/hello_service) on a fresh double and
   an empty image cache: the image pulled, its system template built and uploaded, the base container made and
   converted to a template, and the instance cloned from it and started (the first instance of an image);
2. ``molecule create`` of scenario B (a copy of the same project, another scenario id) against the same double: the
   template and the base are found, and the instance is one ``zfs clone`` (the second instance of the image);
3. a floor: ``ansible-playbook`` of one ``ansible.builtin.ping`` on localhost (Ansible's own start-up; molecule's
   create runs one playbook too).

Printed per round and as medians: both creates' wall seconds and their ratio, the same ratio with the floor taken
off both, and the instance steps alone (a task timer, callback/lxcri_bench_timer.py): the image's template (built,
or found by its digest), the base (made, or found in the cluster listing) and the instance's clone and start, first
against second.  Target: the second instance's steps cost at most half the first's (exit status 1 when missed);
the rest of a create (molecule's and Ansible's start, the cluster listing, the instance config) is the same for
both.  Wall times on a shared, noisy machine: ``--rounds R`` repeats everything on a fresh
double each time.

Usage (root, test bed up):  python bench/molecule/run.py [--rounds R]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TESTS = os.path.join(REPO, "tests")
sys.path.insert(0, TESTS)
sys.path.insert(0, os.path.dirname(HERE))

from common import collections_root  # noqa: E402
from lxcri_testbed.bed import load_state  # noqa: E402
from lxcri_testbed.molecule_images import push  # noqa: E402
from lxcri_testbed.pct_shim import wrapper as pct_wrapper  # noqa: E402
from pve_double.server import DEFAULT_PASSWORD  # noqa: E402

PORT = 18130
BIN = os.path.dirname(sys.executable)
SAMPLE = os.path.join(TESTS, "molecule_sample", "hello_service")


def double(action, directory):
    argv = [sys.executable, "-m", "pve_double", "--dir", directory, "--pidfile", directory + ".pid"]
    if action == "start":
        argv += ["--detach", "--fresh", "--mode", "9.1", "--port", str(PORT), "--resources-lag", "0"]
    else:
        argv += ["--stop"]
    subprocess.run(argv, cwd=TESTS, check=True, stdout=subprocess.DEVNULL)


INSTANCE_STEPS = ("Build or reuse the system container template", "Make the base template", "Wait for the base template",
                  "Make and start each instance")


def env_for(work, name, image, pct):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CALLBACK_PLUGINS": os.path.join(HERE, "callback"), "ANSIBLE_CALLBACKS_ENABLED": "lxcri_bench_timer",
        "LXCRI_BENCH_TIMER_FILE": os.path.join(work, name + ".timer"),
        "PATH": BIN + os.pathsep + env.get("PATH", ""), "NO_COLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
        "PROXMOX_HOST": "127.0.0.1", "PROXMOX_PORT": str(PORT), "PROXMOX_USER": "root@pam",
        "PROXMOX_PASSWORD": DEFAULT_PASSWORD, "PROXMOX_VALIDATE_CERTS": "false",
        "LXCRI_COLLECTIONS_PATH": collections_root(), "ANSIBLE_COLLECTIONS_PATH": collections_root(),
        "LXCRI_MOLECULE_IMAGE": image, "LXCRI_MOLECULE_TLS_VERIFY": "false",
        "LXCRI_MOLECULE_UNPRIVILEGED": "false",  # zfs-fuse refuses chown in a user namespace (see the tests)
        "LXCRI_MOLECULE_CACHE_DIR": os.path.join(work, "oci-cache"), "LXCRI_PCT_COMMAND": pct,
        "MOLECULE_EPHEMERAL_DIRECTORY": os.path.join(work, name, "ephemeral"),
    })
    return env


def timed(argv, cwd, env):
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-6000:])
        raise SystemExit("bench/molecule: %s failed" % " ".join(argv))
    return elapsed


def one_round(work, image):
    pve = os.path.join(work, "bench-molecule-pve")  # its basename names its dataset: unlike any test's
    double("start", pve)
    try:
        pct = pct_wrapper(work, [pve])
        projects = {}
        for name in ("first", "second"):
            projects[name] = os.path.join(work, name, "hello_service")
            shutil.copytree(SAMPLE, projects[name])
        first = timed([os.path.join(BIN, "molecule"), "create"], projects["first"], env_for(work, "first", image, pct))
        second = timed([os.path.join(BIN, "molecule"), "create"], projects["second"],
                       env_for(work, "second", image, pct))
        floor = timed([os.path.join(BIN, "ansible"), "localhost", "-m", "ansible.builtin.ping"], work,
                      env_for(work, "floor", image, pct))
        steps = [instance_steps(os.path.join(work, name + ".timer")) for name in ("first", "second")]
        for name in projects:
            timed([os.path.join(BIN, "molecule"), "destroy"], projects[name], env_for(work, name, image, pct))
    finally:
        double("stop", pve)
    return first, second, floor, steps[0], steps[1]


def instance_steps(path):
    """Seconds of the create's tasks that make the instance (INSTANCE_STEPS), from the timer's file."""
    total = 0.0
    with open(path) as handle:
        for line in handle:
            seconds, dummy, name = line.rstrip("\n").partition(" ")
            if name.startswith(INSTANCE_STEPS):
                total += float(seconds)
    return total


def main(argv):
    parser = argparse.ArgumentParser(prog="bench/molecule/run.py")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    state = load_state()
    if state is None:
        raise SystemExit("the test bed is not up: make testbed-up")
    image = push(state["registry"]["host"])
    rows = []
    for index in range(args.rounds):
        work = tempfile.mkdtemp(prefix="lxcri-bench-molecule-")
        try:
            row = one_round(work, image)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        rows.append(row)
        report("round %d" % (index + 1), *row)
    ratio = report("median of %d" % len(rows), *(statistics.median(column) for column in zip(*rows)))
    return 0 if ratio <= 0.5 else 1


def report(what, first, second, floor, first_steps, second_steps):
    ratio = second_steps / first_steps
    print("%s: molecule create, first instance of the image %.2f s, second (a linked clone) %.2f s: %.2f; without "
          "Ansible's start-up (%.2f s) %.2f; the instance steps: first %.2f s, second %.2f s: %.2f (target <= 0.50: %s)"
          % (what, first, second, second / first, floor, (second - floor) / max(first - floor, 1e-6), first_steps,
             second_steps, ratio, "PASS" if ratio <= 0.5 else "MISS"))
    return ratio


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
