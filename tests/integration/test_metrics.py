"""Prometheus metrics (issue 20): oci_app's and a zfs_snapshots job's textfiles, scraped by Debian's
prometheus-node-exporter and read back from Prometheus' HTTP API, both running on 127.0.0.1.

The app is deployed, its upgrade to a broken version rolled back, and deployed again unchanged (its textfile then
unchanged); the snapshot job is installed by the role and run three times as its unit runs it.  Each figure is
checked by a query to Prometheus, as a dashboard or an alert rule reads it.
"""

import json
import os
import subprocess
import time

import pytest

from lxcri_testbed import TEST_REPO_NS
from lxcri_testbed.app_images import push
from lxcri_testbed.prometheus import PrometheusStack, available
from pve_double.server import DEFAULT_PASSWORD

pytestmark = pytest.mark.integration


@pytest.fixture(name="prometheus")
def fixture_prometheus(tmp_path, bed):
    from conftest import need  # pylint: disable=import-outside-toplevel
    need(available(), "prometheus and prometheus-node-exporter are not installed (make testbed-up installs them)")
    stack = PrometheusStack(tmp_path / "prometheus").start()
    yield stack
    stack.stop()


def value(result, **labels):
    found = [r for r in result if all(r["metric"].get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (labels, result)
    return float(found[0]["value"][1])


def app_vars(double, image, textfile_dir):
    return {
        "pve_api_host": "127.0.0.1", "pve_api_port": double.port, "pve_api_user": "root@pam",
        "pve_api_password": DEFAULT_PASSWORD, "pve_ca_path": double.cert,
        "oci_app_name": "metricsapp", "oci_app_image": image, "oci_app_template_storage": "local",
        "oci_app_storage": "local-zfs", "oci_app_disk_size": 1, "oci_app_memory": 256,
        "oci_app_registry_tls_verify": False, "oci_app_template_cache_dir": os.path.join(double.backend.root, "cache"),
        "oci_app_health_command": ["wget", "-qO-", "http://127.0.0.1:8080/"],
        "oci_app_health_exec": [double.backend.lxc_tools.tool("lxc-attach"), "-P", double.backend.lxc_path, "-n",
                                "{vmid}", "--"],
        "oci_app_health_timeout": 10, "oci_app_health_interval": 1, "oci_app_shutdown_timeout": 2,
        "oci_app_metrics_dir": textfile_dir,
    }


@pytest.mark.slow(60)
def test_a_deploy_and_a_snapshot_job_are_scraped_by_prometheus(
        installed_collection, zdouble91, zfs_dataset, prometheus, tmp_path, bed):
    double = zdouble91
    textfile = prometheus.textfile_dir
    images = push(bed["registry"]["host"], "%s/webapp-metrics" % TEST_REPO_NS, versions=("1", "3-broken"))
    deploy = "lxcri.proxmox.deploy_app"

    before = int(time.time())
    run = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], textfile))
    assert run.rc == 0, [t["result"].get("msg") for t in run.results["tasks"] if t["status"] == "failed"]
    deployed = prometheus.wait('lxcri_app_last_deploy_timestamp_seconds{app="metricsapp"}', lambda r: len(r) == 1)
    assert before <= value(deployed) <= time.time()
    info = prometheus.wait('lxcri_app_info{app="metricsapp"}', lambda r: len(r) == 1)
    assert info[0]["metric"]["image"] == images["1"] and info[0]["metric"]["digest"].startswith("sha256:")
    assert info[0]["metric"]["node"] == "pve1" and info[0]["metric"]["job"] == "node"

    broken = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["3-broken"], textfile))
    assert broken.rc != 0
    failed = prometheus.wait('lxcri_app_failed_upgrades_total{app="metricsapp"}', lambda r: r and value(r) == 1)
    rollbacks = prometheus.query('lxcri_app_rollbacks_total{app="metricsapp"}')
    assert value(rollbacks) == 1 and value(failed) == 1
    assert value(prometheus.query('lxcri_app_health_ok{app="metricsapp"}')) == 1  # the previous version runs
    assert value(prometheus.query('lxcri_app_last_deploy_timestamp_seconds{app="metricsapp"}')) == value(deployed)
    assert value(prometheus.query('lxcri_app_last_failed_upgrade_timestamp_seconds{app="metricsapp"}')) >= before
    # the version that runs again is the one the first deploy described
    assert [r["metric"] for r in prometheus.query('lxcri_app_info{app="metricsapp"}')] == [info[0]["metric"]]

    path = os.path.join(textfile, "lxcri_app_metricsapp.prom")
    text = open(path).read()
    again = installed_collection.playbook(deploy, extra_vars=app_vars(double, images["1"], textfile))
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again.stats
    assert open(path).read() == text  # an unchanged run writes an unchanged file

    # the snapshot job: installed by the role (its own directories; no systemd here, so run as its unit would)
    data = zfs_dataset + "/jobdata"
    subprocess.run(["zfs", "create", data], check=True)
    (tmp_path / "units").mkdir()  # as /etc/systemd/system is there on a node
    play = tmp_path / "snapshots.yml"
    play.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "roles": [{"role": "lxcri.proxmox.zfs_snapshots", "vars": {
            "zfs_snapshots_jobs": [{"name": "metricsjob", "datasets": [data], "retention": {"keep_last": 2}}],
            "zfs_snapshots_exclusive": False, "zfs_snapshots_metrics_dir": textfile,
            "zfs_snapshots_install_root": str(tmp_path / "opt"), "zfs_snapshots_config_dir": str(tmp_path / "etc"),
            "zfs_snapshots_unit_dir": str(tmp_path / "units")}}]}]))
    run = installed_collection.playbook(str(play))
    assert run.rc == 0, [(t["task"], t["result"]) for t in run.results["tasks"] if t["status"] == "failed"]
    with open(str(tmp_path / "units" / "lxcri-zfs-snapshots-metricsjob.service")) as handle:
        exec_start = [line.split("=", 1)[1].split() for line in handle if line.startswith("ExecStart=")][0]
    mountpoint = subprocess.run(["zfs", "get", "-H", "-o", "value", "mountpoint", data], check=True,
                                capture_output=True, text=True).stdout.strip()
    for index in range(3):
        # each snapshot holds a file that the next run no longer has: the kept snapshots use bytes of their own
        for old in os.listdir(mountpoint):
            os.unlink(os.path.join(mountpoint, old))
        with open(os.path.join(mountpoint, "data%d" % index), "wb") as handle:
            handle.write(os.urandom(1 << 20))
        job = subprocess.run(exec_start, check=True, capture_output=True, text=True)
        assert "warning" not in job.stderr, job.stderr
        time.sleep(1.1)  # snapshot names carry the second
    kept = prometheus.wait('lxcri_zfs_snapshots_kept{snapshot_job="metricsjob"}', lambda r: r and value(r) == 2)
    assert value(prometheus.query('lxcri_zfs_snapshots_created_total{snapshot_job="metricsjob"}')) == 3
    assert value(prometheus.query('lxcri_zfs_snapshots_pruned_total{snapshot_job="metricsjob"}')) == 1
    assert value(prometheus.query('lxcri_zfs_snapshots_last_run_success{snapshot_job="metricsjob"}')) == 1
    assert value(prometheus.query('lxcri_zfs_snapshots_last_success_timestamp_seconds{snapshot_job="metricsjob"}')) >= before
    assert value(prometheus.query('lxcri_zfs_snapshots_used_bytes{snapshot_job="metricsjob"}')) >= 1 << 20
    assert value(kept) == 2

    # what Prometheus answers, for the record
    answers = dict((expr, prometheus.query(expr)) for expr in (
        '{__name__=~"lxcri_app_.*"}', '{__name__=~"lxcri_zfs_snapshots_.*"}'))
    print(json.dumps(dict((expr, [[r["metric"], r["value"][1]] for r in result]) for expr, result in answers.items()),
                     indent=1, sort_keys=True))
