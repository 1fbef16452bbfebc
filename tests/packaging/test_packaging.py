"""The collection's packaging files say what the project promises."""

import json
import os
import re
import shutil
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
    # the EE's Python packages are the collection's own requirements (requests, proxmoxer when it is one)

    def requirements(path):
        with open(str(path)) as handle:
            return sorted(line.split("#", 1)[0].strip() for line in handle if line.split("#", 1)[0].strip())
    assert requirements(context / "_build" / "requirements.txt") == requirements(os.path.join(REPO, "requirements.txt"))
    containerfile = [p for p in ("Containerfile", "Dockerfile") if (context / p).exists()][0]
    text = (context / containerfile).read_text()
    assert "ansible-galaxy collection install" in text and "-r requirements.yml" in text


def test_execution_environment_python_deps_come_from_the_collection():
    """The EE's Python dependencies are the collection's own requirements.txt (requests, and whatever it
    names next), never a list of its own, and its ansible-core range is requirements-dev.txt's."""
    ee = load("execution-environment.yml")
    assert ee["dependencies"]["python"] == "requirements.txt"
    assert ee["dependencies"]["system"] == "bindep.txt"
    with open(os.path.join(REPO, "requirements-dev.txt")) as handle:
        core = [line.strip() for line in handle if line.startswith("ansible-core")]
    assert core and ee["dependencies"]["ansible_core"]["package_pip"] == core[0]


def make_targets():
    """Every target the Makefile defines, read from its rules (not from its help)."""
    with open(os.path.join(REPO, "Makefile")) as handle:
        text = handle.read()
    return sorted(set(name for name in re.findall(r"^([a-z][a-z0-9-]*):(?!=)", text, re.M)))


def test_make_help_lists_every_target():
    make = subprocess.run(["make", "-s", "help"], cwd=REPO, stdout=subprocess.PIPE, universal_newlines=True,
                          check=True).stdout
    listed = sorted(re.findall(r"^make (\S+)", make, re.M))
    assert listed == make_targets()
    with open(os.path.join(REPO, "Makefile")) as handle:
        phony = set(" ".join(re.findall(r"^\.PHONY:((?:.*\\\n)*.*)$", handle.read(), re.M)).replace("\\", " ").split())
    assert sorted(phony) == make_targets()


def antsibull_changelog():
    path = os.path.join(os.path.dirname(sys.executable), "antsibull-changelog")
    if not os.path.exists(path):
        pytest.fail("antsibull-changelog is not installed (requirements-dev.txt)")
    return path


def test_changelog_lint():
    """The fragments and changelogs/changelog.yaml pass antsibull-changelog's lint; no hand-written CHANGELOG.md."""
    proc = subprocess.run([antsibull_changelog(), "lint"], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout
    assert not os.path.exists(os.path.join(REPO, "CHANGELOG.md"))
    changelog = load("changelogs/changelog.yaml")
    assert load("galaxy.yml")["version"] in changelog["releases"]


def test_changelog_is_generated(tmp_path):
    """CHANGELOG.rst is what `antsibull-changelog generate` makes of changelogs/ (run `make changelog`)."""
    shutil.copytree(os.path.join(REPO, "changelogs"), str(tmp_path / "changelogs"))
    shutil.copy(os.path.join(REPO, "galaxy.yml"), str(tmp_path / "galaxy.yml"))
    subprocess.run([antsibull_changelog(), "generate", "--is-collection"], cwd=str(tmp_path), check=True,
                   stdout=subprocess.PIPE)
    with open(os.path.join(REPO, "CHANGELOG.rst")) as handle:
        assert handle.read() == (tmp_path / "CHANGELOG.rst").read_text()


def test_job_template_survey_matches_the_playbook_and_the_role():
    """Every survey variable is one deploy_app_job.yml maps (and back), and a survey default that stands for
    an oci_app variable is the role's default: an untouched answer changes nothing."""
    with open(os.path.join(REPO, "extensions", "awx", "survey_deploy_app_job.json")) as handle:
        spec = json.load(handle)["spec"]
    play = load("playbooks/deploy_app_job.yml")[0]
    with open(os.path.join(REPO, "playbooks", "deploy_app_job.yml")) as handle:
        text = handle.read()
    scalars = play["vars"]["deploy_app_job_scalars"]
    used = set(re.findall(r"\b(app_[a-z_]+)\b", text))
    asked = [question["variable"] for question in spec]
    assert len(asked) == len(set(asked))
    assert set(asked) == used, (sorted(set(asked) - used), sorted(used - set(asked)))
    role_defaults = load("roles/oci_app/defaults/main.yml")
    for question in spec:
        target = scalars.get(question["variable"])
        if target and question["default"] not in ("", None):
            assert question["default"] == role_defaults[target], question
        assert question["variable"] in text.split("# Structured")[0], question["variable"]  # documented on top


def test_awx_credential_type_file():
    """The credential type is what AWX's API takes (name, kind, inputs, injectors) and its secrets are marked."""
    ctype = load("extensions/awx/credential_type_proxmox.yml")
    assert set(ctype) == {"name", "description", "kind", "inputs", "injectors"}
    assert ctype["kind"] == "cloud" and ctype["inputs"]["required"] == ["host"]
    for field in ctype["inputs"]["fields"]:
        assert set(field) <= {"id", "label", "type", "secret", "default", "help_text", "multiline"}, field
        assert field["type"] in ("string", "boolean")
    assert all(value.startswith(("{{", "{%")) for value in ctype["injectors"]["env"].values())


def test_readme_ten_line_playbook():
    """The README's first screen deploys an image in ten lines, with variables the role declares."""
    with open(os.path.join(REPO, "README.md")) as handle:
        text = handle.read()
    block = re.search(r"^<!-- readme: ten-line playbook -->\n```yaml\n(.*?)^```$", text, re.M | re.S).group(1)
    assert len(block.splitlines()) <= 10
    assert text.index(block) < text.index("## Contents")
    play = yaml.safe_load(block)[0]
    role = play["roles"][0]
    assert role["role"] == "lxcri.proxmox.oci_app"
    options = load("roles/oci_app/meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(role) - {"role"} <= set(options)
    assert {"oci_app_name", "oci_app_image"} <= set(role)
    assert "group/lxcri.proxmox.pve" in play["module_defaults"]
    for command in ("ansible-galaxy collection install", "make demo", "make test", "Proxmox VE 8.x and 9.x"):
        assert command in text[:text.index("## Contents")], command
