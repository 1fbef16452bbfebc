"""The zfs_snapshots role's entry point: job files are checked before anything runs."""

import io
import json

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.job import JobError, load_job, main

GOOD = {"name": "hourly", "datasets": ["tank/data"], "retention": {"hourly": 24, "daily": 7}}


def test_defaults_are_filled_in():
    job = load_job(dict(GOOD))
    assert job["prefix"] == "lxcri_hourly_" and job["recursive"] is False and job["driver"] == "auto"
    assert job["retention"] == {"hourly": 24, "daily": 7} and job["keep_last"] is None


@pytest.mark.parametrize("change, message", [
    ({"name": "bad name"}, "name 'bad name'"),
    ({"datasets": []}, "non-empty list"),
    ({"datasets": ["tank/a", "tank/a"]}, "tank/a listed more than once"),
    ({"prefix": "a b"}, "prefix 'a b'"),
    ({"retention": {"weekly": 2, "fortnightly": 1}}, "retention: unknown key(s) fortnightly"),
    ({"retention": [1]}, "retention must be an object"),
    ({"recursive": "yes"}, "recursive must be true or false"),
    ({"driver": "magic"}, "driver 'magic'"),
    ({"colour": "blue"}, "unknown key(s) colour"),
    ({"datasets": ["tank@snap"]}, "tank@snap"),
])
def test_bad_jobs_name_the_problem(change, message):
    with pytest.raises(JobError) as err:
        load_job(dict(GOOD, **change))
    assert message in str(err.value)


def test_main_exits_2_naming_a_bad_job_file(tmp_path):
    path = tmp_path / "job.json"
    path.write_text(json.dumps(dict(GOOD, name="")))
    err = io.StringIO()
    assert main([str(path)], stdout=io.StringIO(), stderr=err) == 2
    assert "job file %s" % path in err.getvalue() and "name ''" in err.getvalue()
    assert main([], stdout=io.StringIO(), stderr=io.StringIO()) == 2


def test_main_reports_a_zfs_failure_with_exit_1(tmp_path):
    path = tmp_path / "job.json"
    path.write_text(json.dumps(dict(GOOD, driver="cli")))

    def runner(argv, **kwargs):
        return 1, "", "cannot open 'tank/data': dataset does not exist"
    err = io.StringIO()
    assert main([str(path)], runner=runner, stdout=io.StringIO(), stderr=err) == 1
    assert "job hourly failed" in err.getvalue()


def test_a_failed_run_writes_its_metrics_and_keeps_the_last_success(tmp_path):
    """A failed run: last_run_success 0, the last success and the counters kept from the file (issue 20)."""
    from ansible_collections.lxcri.proxmox.plugins.module_utils import metrics
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    (textfile / "lxcri_zfs_snapshots_hourly.prom").write_text(
        "lxcri_zfs_snapshots_last_success_timestamp_seconds{snapshot_job=\"hourly\"} 1700000000\n"
        "lxcri_zfs_snapshots_created_total{snapshot_job=\"hourly\"} 5\nlxcri_zfs_snapshots_kept{snapshot_job=\"hourly\"} 4\n")
    path = tmp_path / "job.json"
    path.write_text(json.dumps(dict(GOOD, driver="cli", metrics_dir=str(textfile))))

    def runner(argv, **kwargs):
        return 1, "", "cannot open 'tank/data': dataset does not exist"
    assert main([str(path)], runner=runner, stdout=io.StringIO(), stderr=io.StringIO()) == 1
    samples = metrics.parse((textfile / "lxcri_zfs_snapshots_hourly.prom").read_text())
    labels = {"snapshot_job": "hourly"}
    assert samples[metrics.key("lxcri_zfs_snapshots_last_run_success", labels)] == 0
    assert samples[metrics.key("lxcri_zfs_snapshots_last_success_timestamp_seconds", labels)] == 1700000000
    assert samples[metrics.key("lxcri_zfs_snapshots_created_total", labels)] == 5
    assert samples[metrics.key("lxcri_zfs_snapshots_kept", labels)] == 4


def test_metrics_that_cannot_be_written_are_a_warning_not_a_failure(tmp_path):
    from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.job import write_metrics
    job = load_job(dict(GOOD, metrics_dir=str(tmp_path / "missing")))
    problem = write_metrics(job, {"created": [], "pruned": []}, runner=lambda argv, **kw: (0, "", ""))
    assert "metrics not written to %s" % (tmp_path / "missing") in problem and "node-exporter" in problem


def test_metrics_dir_must_be_absolute():
    with pytest.raises(JobError, match="metrics_dir 'relative'"):
        load_job(dict(GOOD, metrics_dir="relative"))
