# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A scheduled snapshot job, run without Ansible: the entry point behind the
``lxcri.proxmox.zfs_snapshots`` role's systemd timers.

The role copies the zfs engine (this package, plus ``command.py``) onto the
node and a runner calls :func:`main` with the path of a JSON job file::

    {"name": "data", "datasets": ["rpool/data/app"], "recursive": false,
     "prefix": "lxcri_data_", "retention": {"hourly": 24, "daily": 7, "keep_last": 2, "max_age": "30d"},
     "driver": "auto", "allow_pve_managed": false, "allowed_roots": []}

It takes one snapshot per dataset (atomically per pool, with the same
:class:`SnapshotManager` the ``zfs_snapshot`` module uses) and applies the
retention to the snapshots under the prefix; with ``recursive`` the
descendants get the snapshot too and retention applies to each of them.
Needs nothing but the Python 3 standard library and the ``zfs`` command.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import sys
import time

from ansible_collections.lxcri.proxmox.plugins.module_utils import metrics as textfile
from ansible_collections.lxcri.proxmox.plugins.module_utils.command import subprocess_runner
from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs import retention as zret
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.errors import ZfsError
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.facade import DRIVERS, Zfs
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.names import guard, pool_of, validate_dataset
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.props import parse_size
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.snapshot import SnapshotManager

# no "_" in job names: the default prefixes lxcri_<name>_ of two jobs never overlap
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
PREFIX = re.compile(r"^[A-Za-z0-9_.:-]+$")
KEYS = ("name", "datasets", "recursive", "prefix", "retention", "driver", "allow_pve_managed", "allowed_roots",
        "metrics_dir")
RETENTION_KEYS = zret.CLASSES + ("keep_last", "max_age")


class JobError(LxcriError):
    """The job file is unusable."""

    kind = "job"


def _bool(job, key):
    value = job.get(key, False)
    if not isinstance(value, bool):
        raise JobError("%s must be true or false, not %r" % (key, value))
    return value


def load_job(job):
    """Validate a job (a dict, as read from the job file) and fill in defaults."""
    if not isinstance(job, dict):
        raise JobError("the job must be a JSON object, not %s" % type(job).__name__)
    unknown = sorted(set(job) - set(KEYS))
    if unknown:
        raise JobError("unknown key(s) %s (known: %s)" % (", ".join(unknown), ", ".join(KEYS)))
    name = job.get("name")
    if not isinstance(name, str) or not JOB_NAME.match(name):
        raise JobError("name %r: use letters, digits and - (starting with a letter or digit)" % (name,))
    datasets = job.get("datasets")
    if not isinstance(datasets, list) or not datasets or not all(isinstance(d, str) for d in datasets):
        raise JobError("datasets: give a non-empty list of dataset names")
    twice = sorted(set(d for d in datasets if datasets.count(d) > 1))
    if twice:
        raise JobError("datasets: %s listed more than once" % ", ".join(twice))
    prefix = job.get("prefix")
    if prefix is None:
        prefix = "lxcri_%s_" % name
    if not isinstance(prefix, str) or not PREFIX.match(prefix):
        raise JobError("prefix %r: use letters, digits and _ . : - only" % (prefix,))
    policy = job.get("retention") or {}
    if not isinstance(policy, dict):
        raise JobError("retention must be an object")
    unknown = sorted(set(policy) - set(RETENTION_KEYS))
    if unknown:
        raise JobError("retention: unknown key(s) %s (known: %s)" % (", ".join(unknown), ", ".join(RETENTION_KEYS)))
    classes = dict((k, v) for k, v in policy.items() if k in zret.CLASSES and v is not None)
    driver = job.get("driver", "auto")
    if driver not in DRIVERS:
        raise JobError("driver %r: use one of %s" % (driver, ", ".join(DRIVERS)))
    roots = job.get("allowed_roots") or []
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise JobError("allowed_roots must be a list of dataset names")
    metrics_dir = job.get("metrics_dir") or None
    if metrics_dir is not None and (not isinstance(metrics_dir, str) or not metrics_dir.startswith("/")):
        raise JobError("metrics_dir %r: give an absolute directory (node_exporter's textfile directory)"
                       % (metrics_dir,))
    out = {"name": name, "datasets": list(datasets), "recursive": _bool(job, "recursive"), "prefix": prefix,
           "retention": classes or None, "keep_last": policy.get("keep_last"), "max_age": policy.get("max_age"),
           "driver": driver, "allow_pve_managed": _bool(job, "allow_pve_managed"), "allowed_roots": roots,
           "metrics_dir": metrics_dir}
    try:
        for dataset in datasets:
            validate_dataset(dataset)
        if _has_retention(out):
            zret.validate_policy(out["retention"], out["keep_last"], out["max_age"])
    except ZfsError as exc:
        raise JobError(str(exc))
    return out


def _has_retention(job):
    return bool(job["retention"]) or job["keep_last"] is not None or job["max_age"] is not None


def run_job(job, runner=subprocess_runner, check_mode=False, clock=time.time):
    """Snapshot and prune as ``job`` (from :func:`load_job`) says; returns a report (dict)."""
    zfs = Zfs(runner, job["driver"])
    now = clock()
    common = {"prefix": job["prefix"], "retention": job["retention"], "keep_last": job["keep_last"],
              "max_age": job["max_age"], "allow_pve_managed": job["allow_pve_managed"],
              "allowed_roots": job["allowed_roots"]}
    by_pool = {}
    for dataset in job["datasets"]:
        by_pool.setdefault(pool_of(dataset), []).append(dataset)
    descendants = {}
    if job["recursive"]:
        # every descendant gets the snapshot, so every descendant must be ours to prune: refuse before creating
        listing = zfs.get_all(job["datasets"], recursive=True, props="type")
        for pool, tops in by_pool.items():
            found = sorted(n for n, props in listing.items()
                           if "@" not in n and n not in tops and pool_of(n) == pool
                           and any(n.startswith(t + "/") for t in tops)
                           and props.get("type", ("",))[0] in ("filesystem", "volume"))
            for name in found:
                guard(name, job["allow_pve_managed"], job["allowed_roots"], "snapshot (recursively)")
            descendants[pool] = found
    report = {"job": job["name"], "check_mode": check_mode, "created": [], "pruned": [], "warnings": [],
              "retention": {}}
    for pool in sorted(by_pool):
        params = dict(common, name=by_pool[pool], recursive=job["recursive"])
        result = SnapshotManager(zfs, params, check_mode=check_mode, clock=lambda: now).run()
        report["created"] += result.get("created", [])
        report["pruned"] += result.get("pruned", [])
        report["warnings"] += result.get("warnings", [])
        report["retention"].update(result.get("retention", {}))
        if descendants.get(pool) and _has_retention(job):
            params = dict(common, name=descendants[pool], create=False)
            result = SnapshotManager(zfs, params, check_mode=check_mode, clock=lambda: now).run()
            report["pruned"] += result.get("pruned", [])
            report["warnings"] += result.get("warnings", [])
            report["retention"].update(result.get("retention", {}))
    report["driver"] = zfs.lzc.name if zfs.lzc else "cli"
    report["driver_operations"] = zfs.operations
    return report


def job_metrics(job, report, runner=subprocess_runner, clock=time.time):
    """The job's node_exporter metrics after a run: ``report`` of a successful run, or None after a failed one.

    What a run did (created and pruned, counters), when it last succeeded, and what the job's snapshots are now (how
    many under its prefix, and the bytes they use; one ``zfs get -Hp used``)."""
    labels = {"snapshot_job": job["name"]}  # not "job": Prometheus keeps that for its scrape job
    ok = report is not None
    out = [
        {"name": "lxcri_zfs_snapshots_last_run_success", "labels": labels, "value": 1 if ok else 0,
         "help": "1 when the snapshot job's last run succeeded, 0 when it failed"},
        {"name": "lxcri_zfs_snapshots_last_run_timestamp_seconds", "labels": labels, "value": int(clock()),
         "help": "When the snapshot job last ran"},
        {"name": "lxcri_zfs_snapshots_last_success_timestamp_seconds", "labels": labels, "value": int(clock()),
         "keep": not ok, "help": "When the snapshot job last succeeded"},
        {"name": "lxcri_zfs_snapshots_created_total", "labels": labels, "type": "counter", "increment": True,
         "value": len(report["created"]) if ok else 0, "help": "Snapshots the job took"},
        {"name": "lxcri_zfs_snapshots_pruned_total", "labels": labels, "type": "counter", "increment": True,
         "value": len(report["pruned"]) if ok else 0, "help": "Snapshots the job's retention destroyed"},
    ]
    if ok:
        # -r: without it zfs get lists no snapshots; the descendants count only for a recursive job
        data = Zfs(runner, "cli").get_all(job["datasets"], recursive=True, props="used")
        mine = [(name, props) for name, props in data.items()
                if "@" in name and name.split("@", 1)[1].startswith(job["prefix"])
                and (name.split("@", 1)[0] in job["datasets"] or job["recursive"])]
        used = sum(parse_size(props["used"][0], "used") for dummy, props in mine if props.get("used"))
        out += [{"name": "lxcri_zfs_snapshots_kept", "labels": labels, "value": len(mine),
                 "help": "Snapshots under the job's prefix now"},
                {"name": "lxcri_zfs_snapshots_used_bytes", "labels": labels, "value": used,
                 "help": "Bytes the job's snapshots use (their used property)"}]
    else:
        out += [{"name": "lxcri_zfs_snapshots_kept", "labels": labels, "value": 0, "keep": True,
                 "help": "Snapshots under the job's prefix now"},
                {"name": "lxcri_zfs_snapshots_used_bytes", "labels": labels, "value": 0, "keep": True,
                 "help": "Bytes the job's snapshots use (their used property)"}]
    return out


def write_metrics(job, report, runner=subprocess_runner, clock=time.time):
    """Write the job's textfile (``lxcri_zfs_snapshots_<job>.prom``); an error is returned as text, never raised:
    metrics must not fail a snapshot job."""
    try:
        textfile.update(job["metrics_dir"], "lxcri_zfs_snapshots_%s" % job["name"],
                        job_metrics(job, report, runner, clock))
    except (LxcriError, OSError) as exc:
        return "metrics not written to %s: %s" % (job["metrics_dir"], exc)
    return None


USAGE = "usage: lxcri-zfs-snapshots [--check] JOB.json"


def main(argv=None, runner=subprocess_runner, stdout=None, stderr=None):
    """Run the job file named in ``argv``; print the report as JSON. Exit status 0, 1 (zfs) or 2 (usage/job)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    check_mode = "--check" in argv
    paths = [a for a in argv if a != "--check"]
    if len(paths) != 1 or paths[0].startswith("-"):
        stderr.write(USAGE + "\n")
        return 2
    try:
        with open(paths[0]) as handle:
            job = load_job(json.load(handle))
    except (OSError, ValueError, JobError) as exc:
        stderr.write("lxcri-zfs-snapshots: job file %s: %s\n" % (paths[0], exc))
        return 2
    try:
        report = run_job(job, runner, check_mode)
    except ZfsError as exc:
        stderr.write("lxcri-zfs-snapshots: job %s failed (%s): %s\n" % (job["name"], exc.kind, exc))
        if job["metrics_dir"] and not check_mode:
            problem = write_metrics(job, None, runner)
            if problem:
                stderr.write("lxcri-zfs-snapshots: warning: %s\n" % problem)
        return 1
    if job["metrics_dir"] and not check_mode:
        problem = write_metrics(job, report, runner)
        if problem:
            report["warnings"].append(problem)
    stdout.write(json.dumps(report, sort_keys=True) + "\n")
    for warning in report["warnings"]:
        stderr.write("lxcri-zfs-snapshots: warning: %s\n" % warning)
    return 0
