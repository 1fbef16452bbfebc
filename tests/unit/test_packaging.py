"""The collection's packaging files say what the project promises."""

import os
import re
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(path):
    with open(os.path.join(REPO, path)) as handle:
        return yaml.safe_load(handle)


def test_galaxy_metadata():
    galaxy = load("galaxy.yml")
    assert (galaxy["namespace"], galaxy["name"], galaxy["version"]) == ("lxcri", "proxmox", "0.1.0")
    assert galaxy["license"] == ["GPL-3.0-or-later"]
    assert galaxy["readme"] == "README.md"
    # placeholders are left out rather than invented
    for key in ("repository", "issues", "homepage", "documentation"):
        assert key not in galaxy
    for ignored in ("tests", "bench", "molecule", ".cache", ".venv"):
        assert ignored in galaxy["build_ignore"]


def test_runtime_metadata():
    runtime = load("meta/runtime.yml")
    assert runtime["requires_ansible"] == ">=2.17.0"
    assert "pve" in runtime["action_groups"]
    for module in runtime["action_groups"]["pve"]:
        assert os.path.exists(os.path.join(REPO, "plugins", "modules", module + ".py")), module


def test_python_requirements_are_ranges():
    for name in ("requirements.txt", "requirements-dev.txt"):
        with open(os.path.join(REPO, name)) as handle:
            for line in handle:
                line = line.split("#", 1)[0].strip()
                if not line or line.startswith("-r"):
                    continue
                assert re.search(r">=[^,]+,<", line), "%s: %r needs a lower and upper bound" % (name, line)
    with open(os.path.join(REPO, "requirements-dev.txt")) as handle:
        packages = [line.split("#", 1)[0].strip() for line in handle]
    assert not [p for p in packages if p.startswith("pytest-ansible")]


def test_readme_first_screen_and_ci():
    with open(os.path.join(REPO, "README.md")) as handle:
        first_screen = "".join(handle.readlines()[:25])
    assert "make demo" in first_screen and "make test" in first_screen
    assert "Debian 12" in first_screen and "root" in first_screen
    with open(os.path.join(REPO, ".ci", "run")) as handle:
        ci = handle.read()
    assert re.search(r"^exec make test$", ci, re.M)


def test_execution_environment_context(tmp_path):
    """ansible-builder accepts the EE definition and installs the collection in it."""
    builder = os.path.join(os.path.dirname(sys.executable), "ansible-builder")
    if not os.path.exists(builder):
        pytest.fail("ansible-builder is not installed (requirements-dev.txt)")
    ee = load("execution-environment.yml")
    assert ee["version"] == 3
    workdir = tmp_path / "ee"
    (workdir / "build").mkdir(parents=True)
    for name in ("execution-environment.yml", "requirements.txt", "bindep.txt"):
        (workdir / name).write_bytes(open(os.path.join(REPO, name), "rb").read())
    galaxy = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
    subprocess.run([galaxy, "collection", "build", "--output-path", str(workdir / "build"), REPO],
                   check=True, stdout=subprocess.PIPE)
    built = [p for p in os.listdir(str(workdir / "build")) if p.endswith(".tar.gz")]
    os.rename(str(workdir / "build" / built[0]), str(workdir / "build" / "lxcri-proxmox.tar.gz"))
    subprocess.run([builder, "create", "-f", "execution-environment.yml", "-c", "context"],
                   cwd=str(workdir), check=True, stdout=subprocess.PIPE)
    context = workdir / "context"
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert requirements["collections"] == [{"name": "collections/lxcri-proxmox.tar.gz", "type": "file"}]
    assert (context / "_build" / "collections" / "lxcri-proxmox.tar.gz").exists()
    containerfile = [p for p in ("Containerfile", "Dockerfile") if (context / p).exists()][0]
    text = (context / containerfile).read_text()
    assert "ansible-galaxy collection install" in text and "-r requirements.yml" in text
