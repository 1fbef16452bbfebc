"""Prometheus textfile metrics (issue 20): the exposition text, reading it back, keep/increment, atomic writes."""

import os

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils import metrics
from ansible_collections.lxcri.proxmox.plugins.module_utils.metrics import MetricsError


def sample(name, value, labels=None, **extra):
    return dict({"name": name, "value": value, "labels": labels}, **extra)


def test_render_groups_by_name_with_help_and_type_and_escapes_label_values():
    text = metrics.render([
        sample("lxcri_app_health_ok", True, {"app": "web"}, help="1 when healthy"),
        sample("lxcri_app_info", 1, {"app": "web", "image": 'reg:5000/a\\b "q"\nx'}),
        sample("lxcri_app_health_ok", 0, {"app": "api"}),
        sample("lxcri_app_rollbacks_total", 2, {"app": "web"}, type="counter"),
        sample("lxcri_ratio", 0.25),
    ])
    assert text == (
        "# HELP lxcri_app_health_ok 1 when healthy\n"
        "# TYPE lxcri_app_health_ok gauge\n"
        'lxcri_app_health_ok{app="api"} 0\n'
        'lxcri_app_health_ok{app="web"} 1\n'
        "# HELP lxcri_app_info lxcri_app_info\n"
        "# TYPE lxcri_app_info gauge\n"
        'lxcri_app_info{app="web",image="reg:5000/a\\\\b \\"q\\"\\nx"} 1\n'
        "# HELP lxcri_app_rollbacks_total lxcri_app_rollbacks_total\n"
        "# TYPE lxcri_app_rollbacks_total counter\n"
        'lxcri_app_rollbacks_total{app="web"} 2\n'
        "# HELP lxcri_ratio lxcri_ratio\n"
        "# TYPE lxcri_ratio gauge\n"
        "lxcri_ratio 0.25\n")
    parsed = metrics.parse(text)
    assert parsed[metrics.key("lxcri_app_info", {"app": "web", "image": 'reg:5000/a\\b "q"\nx'})] == 1.0
    assert parsed[metrics.key("lxcri_ratio", {})] == 0.25


@pytest.mark.parametrize("metric,fragment", [
    (sample("1bad", 1), "metric name"),
    (sample("ok", 1, {"__reserved": "x"}), "label name"),
    (sample("ok", 1, {"a-b": "x"}), "label name"),
    (sample("ok", 1, {"job": "x"}), "exported_job"),
    (sample("ok", "many"), "not a number"),
    (sample("ok", 1, type="summary"), "type"),
])
def test_what_prometheus_would_refuse_is_refused(metric, fragment):
    with pytest.raises(MetricsError, match=fragment):
        metrics.render([metric])


def test_a_sample_given_twice_is_refused():
    with pytest.raises(MetricsError, match="given twice"):
        metrics.render([sample("x", 1, {"a": "1"}), sample("x", 2, {"a": "1"})])


def test_keep_takes_the_files_value_and_increment_adds_to_it():
    before = metrics.render([sample("deployed", 100, {"app": "web"}), sample("rollbacks", 2, {"app": "web"})])
    merged = metrics.merge([sample("deployed", 200, {"app": "web"}, keep=True),
                            sample("deployed", 300, {"app": "new"}, keep=True),
                            sample("rollbacks", 1, {"app": "web"}, increment=True),
                            sample("rollbacks", 0, {"app": "new"}, increment=True)], before)
    assert [(m["labels"]["app"], m["value"]) for m in merged] == [("web", 100), ("new", 300), ("web", 3), ("new", 0)]


def test_update_writes_only_a_changed_file_atomically_and_check_mode_writes_nothing(tmp_path):
    directory = str(tmp_path)
    first = [sample("lxcri_app_health_ok", 1, {"app": "web"})]
    changed, path, before, after = metrics.update(directory, "lxcri_app_web", first, check_mode=True)
    assert changed and before is None and not os.path.exists(path)
    changed, path, before, after = metrics.update(directory, "lxcri_app_web", first)
    assert changed and open(path).read() == after and oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert metrics.update(directory, "lxcri_app_web", first)[0] is False
    assert sorted(os.listdir(directory)) == ["lxcri_app_web.prom"]  # no temporary file left
    assert metrics.remove(directory, "lxcri_app_web")[0] is True and os.listdir(directory) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    directory = str(tmp_path)
    metrics.update(directory, "job", [sample("x", 1)])

    def broken(*args):
        raise OSError("disk full")
    monkeypatch.setattr(metrics.os, "rename", broken)
    with pytest.raises(OSError):
        metrics.update(directory, "job", [sample("x", 2)])
    assert os.listdir(directory) == ["job.prom"] and "x 1" in open(os.path.join(directory, "job.prom")).read()


@pytest.mark.parametrize("name", ["../evil", "a/b", "x.prom", "", ".hidden"])
def test_file_names_stay_in_the_directory(tmp_path, name):
    with pytest.raises(MetricsError, match="textfile name"):
        metrics.update(str(tmp_path), name, [])


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(MetricsError, match="prometheus-node-exporter"):
        metrics.update(str(tmp_path / "nope"), "job", [sample("x", 1)])


def test_keep_others_keeps_the_files_samples_not_given_with_their_help_and_type(tmp_path):
    directory = str(tmp_path)
    metrics.update(directory, "app", [sample("lxcri_app_info", 1, {"app": "web", "digest": "sha256:a"}, help="info"),
                                      sample("lxcri_app_rollbacks_total", 0, {"app": "web"}, type="counter")])
    changed, path, before, after = metrics.update(
        directory, "app", [sample("lxcri_app_rollbacks_total", 1, {"app": "web"}, type="counter", increment=True)],
        others=True)
    assert changed and '# HELP lxcri_app_info info\n' in after and 'digest="sha256:a"' in after
    assert 'lxcri_app_rollbacks_total{app="web"} 1' in after and "# TYPE lxcri_app_rollbacks_total counter" in after
    assert metrics.render(metrics.read_metrics(after)) == after
