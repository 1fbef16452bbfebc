"""Tests skip with a reason locally; under CI=true any skip fails the run unless marked allowed_skip."""

import os
import subprocess
import sys

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NEEDS_BED = "def test_needs_bed(bed):\n    assert bed\n"
MARKED_SKIP = ("import pytest\n\n@pytest.mark.testbed\n"
               "def test_marked():\n    pytest.skip('zfs missing')\n")
PLAIN_SKIP = ("import pytest\n\n"
              "def test_plain():\n    pytest.skip('perl module missing')\n\n"
              "@pytest.mark.skipif(True, reason='zstd missing')\n"
              "def test_skipif():\n    pass\n")
ALLOWED_SKIP = ("import pytest\n\n@pytest.mark.allowed_skip\n"
                "def test_allowed():\n    pytest.skip('../shared is not here')\n")


def run_pytest(tmp_path, source, ci, extra=()):
    test = tmp_path / "test_policy_probe.py"
    test.write_text(source)
    env = dict(os.environ, PYTHONPATH=TESTS_DIR, LXCRI_TESTBED_DIR=str(tmp_path / "no-bed"))
    env.pop("CI", None)
    if ci:
        env["CI"] = "true"
    # Load tests/conftest.py as a plugin so the probe gets the real fixtures and hooks.
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider",
                           "-q", "-rs"] + list(extra) + [str(test)], cwd=str(tmp_path), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          check=False)


def test_missing_bed_skips_with_a_reason_outside_ci(tmp_path):
    proc = run_pytest(tmp_path, NEEDS_BED, ci=False)
    assert proc.returncode == 0, proc.stdout
    assert "1 skipped" in proc.stdout
    assert ("the test bed is down" in proc.stdout) or ("needs root" in proc.stdout)


def test_missing_bed_fails_under_ci(tmp_path):
    proc = run_pytest(tmp_path, NEEDS_BED, ci=True)
    assert proc.returncode == 1, proc.stdout
    assert "test bed requirement missing under CI" in proc.stdout


def test_any_skipped_testbed_test_fails_the_session_under_ci(tmp_path):
    proc = run_pytest(tmp_path, MARKED_SKIP, ci=True)
    assert proc.returncode == 1, proc.stdout
    assert "1 skipped" in proc.stdout
    assert "1 test(s) were skipped" in proc.stdout
    local = run_pytest(tmp_path, MARKED_SKIP, ci=False)
    assert local.returncode == 0, local.stdout


def test_any_skip_fails_under_ci_not_only_test_bed_ones(tmp_path):
    proc = run_pytest(tmp_path, PLAIN_SKIP, ci=True)
    assert proc.returncode == 1, proc.stdout
    assert "2 test(s) were skipped" in proc.stdout
    assert "test_plain" in proc.stdout and "test_skipif" in proc.stdout
    local = run_pytest(tmp_path, PLAIN_SKIP, ci=False)
    assert local.returncode == 0 and "2 skipped" in local.stdout, local.stdout


def test_allowed_skip_passes_under_ci(tmp_path):
    proc = run_pytest(tmp_path, ALLOWED_SKIP, ci=True)
    assert proc.returncode == 0, proc.stdout
    assert "1 skipped" in proc.stdout


def test_skips_fail_under_ci_with_xdist_workers_too(tmp_path):
    """make integration runs in pytest-xdist workers: their skips must still fail the controller's session."""
    proc = run_pytest(tmp_path, PLAIN_SKIP + ALLOWED_SKIP.replace("import pytest\n", ""), ci=True,
                      extra=["-n", "2"])
    assert proc.returncode == 1, proc.stdout
    assert "2 test(s) were skipped" in proc.stdout
    assert "test_plain" in proc.stdout and "test_skipif" in proc.stdout and "test_allowed" not in proc.stdout
