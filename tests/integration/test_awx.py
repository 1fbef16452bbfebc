"""AWX / Ansible Automation Platform fit, against the Proxmox VE API double.

- The credential type of extensions/awx/credential_type_proxmox.yml: its injectors rendered as AWX renders
  them (Jinja in a sandbox, the inputs with their defaults, ``tower.filename.<name>`` for injected files),
  and a module run with only that environment, no connection option.
- A job template running playbooks/deploy_app_job.yml: through ansible-runner's Python API, as AWX runs
  jobs, with that credential's environment, the survey's scalar answers
  (extensions/awx/survey_deploy_app_job.json) and the template's site settings as extra variables. The
  events ansible-runner reports carry the task results and no secret.
"""

import json
import os
import stat
import sys

import ansible_runner
import pytest
import yaml
from jinja2.sandbox import SandboxedEnvironment

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import pve_argument_spec
from lxcri_testbed.ansible import BIN_DIR, REPO_ROOT
from lxcri_testbed.app_images import push
from pve_double.server import DEFAULT_PASSWORD, Double

pytestmark = pytest.mark.integration

AWX = os.path.join(REPO_ROOT, "extensions", "awx")


class _Namespace(dict):
    """``tower.filename.ca_cert`` in a template: attribute access on a dict."""
    __getattr__ = dict.__getitem__


def credential_type():
    with open(os.path.join(AWX, "credential_type_proxmox.yml")) as handle:
        return yaml.safe_load(handle)


def injected(inputs, workdir):
    """(env, files) that AWX injects for a credential with ``inputs`` (AWX's rules: unset string inputs are
    their default or empty, unset booleans their default or false; ``file: template.NAME`` is written to a
    file whose path is ``tower.filename.NAME``)."""
    ctype = credential_type()
    namespace = {}
    for field in ctype["inputs"]["fields"]:
        empty = False if field["type"] == "boolean" else ""
        namespace[field["id"]] = inputs.get(field["id"], field.get("default", empty))
    missing = [name for name in ctype["inputs"].get("required", []) if not namespace[name]]
    assert not missing, missing
    sandbox = SandboxedEnvironment()
    filenames = _Namespace()
    for key, template in ctype["injectors"].get("file", {}).items():
        name = key.split(".", 1)[1]
        path = os.path.join(str(workdir), "awx-" + name)
        with open(path, "w") as handle:
            handle.write(sandbox.from_string(template).render(**namespace))
        filenames[name] = path
    namespace["tower"] = namespace["awx"] = _Namespace(filename=filenames)
    env = dict((key, sandbox.from_string(value).render(**namespace))
               for key, value in ctype["injectors"]["env"].items())
    return env, filenames


def no_proxmox(environ):
    return dict((k, v) for k, v in environ.items() if not k.startswith("PROXMOX_"))


@pytest.fixture(name="double")
def awx_double(zdouble91):
    return zdouble91


def test_credential_type_shape():
    ctype = credential_type()
    assert ctype["kind"] == "cloud"
    fields = dict((f["id"], f) for f in ctype["inputs"]["fields"])
    assert [name for name, f in fields.items() if f.get("secret")] == ["password", "token_secret"]
    # every PROXMOX_* variable of a credential an API option falls back to is injected, and nothing else;
    # PROXMOX_CONNECTION (api_connection: how to reach the node) is no credential: the job's own setting
    fallbacks = sorted(spec["fallback"][1][0] for spec in pve_argument_spec().values()
                       if "fallback" in spec and spec["fallback"][1][0] != "PROXMOX_CONNECTION")
    assert sorted(ctype["injectors"]["env"]) == fallbacks


@pytest.mark.parametrize("auth", ["password", "token"])
def test_a_module_runs_with_only_the_credentials_environment(installed_collection, tmp_path, auth):
    double = Double(str(tmp_path / "pve"), mode="9.1").start()
    try:
        if auth == "password":
            inputs = {"host": "127.0.0.1", "port": str(double.port), "password": DEFAULT_PASSWORD}
            secret = DEFAULT_PASSWORD
        else:
            secret = double.add_token("root@pam!awx")
            inputs = {"host": "127.0.0.1", "port": str(double.port), "token_id": "root@pam!awx",
                      "token_secret": secret}
        with open(double.cert) as handle:
            inputs["ca_cert"] = handle.read()
        env, files = injected(inputs, tmp_path)
        assert env["PROXMOX_CA_PATH"] == files["ca_cert"] and env["PROXMOX_VALIDATE_CERTS"] == "True"
        run = installed_collection.module("lxcri.proxmox.lxc_container_info",
                                          env=dict(no_proxmox(installed_collection.env()), **env))
        assert run.rc == 0, run
        assert run.data["pve"]["release"] == "9.1", run.data
        assert any(r[1].endswith("/access/ticket") for r in double.requests) == (auth == "password")
        assert secret not in run.stdout + run.stderr + json.dumps(run.results)

        # without the certificate: verified against the system's CAs, which do not know the double's
        env, files = injected(dict(inputs, ca_cert=""), tmp_path)
        assert env["PROXMOX_CA_PATH"] == ""
        run = installed_collection.module("lxcri.proxmox.lxc_container_info",
                                          env=dict(no_proxmox(installed_collection.env()), **env))
        assert run.rc != 0 and "ca_path" in run.data["msg"], run.data
    finally:
        double.stop()


def survey_defaults():
    with open(os.path.join(AWX, "survey_deploy_app_job.json")) as handle:
        spec = json.load(handle)["spec"]
    return dict((q["variable"], q["default"]) for q in spec)


def test_deploy_app_job_through_ansible_runner(installed_collection, double, tmp_path, bed):
    image = push(bed["registry"]["host"], "lxcri-test/awx-%s" % os.path.basename(tmp_path), versions=("1",))["1"]
    env, dummy = injected({"host": "127.0.0.1", "port": str(double.port), "password": DEFAULT_PASSWORD,
                           "ca_cert": open(double.cert).read()}, tmp_path)
    # the execution environment's settings: where the collection is, and nothing of the test's callbacks
    env.update(PATH=os.pathsep.join([BIN_DIR, os.environ["PATH"]]),
               ANSIBLE_COLLECTIONS_PATH=installed_collection.collections_path, ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    project = tmp_path / "runner" / "project"
    project.mkdir(parents=True)
    # a project of the job template's: it imports the collection's playbook
    (project / "deploy.yml").write_text("- ansible.builtin.import_playbook: lxcri.proxmox.deploy_app_job\n")
    site = {  # the job template's own extra variables: settings of this site (the test bed)
        "oci_app_health_exec": [double.backend.lxc_tools.tool("lxc-attach"), "-P", double.backend.lxc_path, "-n", "{vmid}",
                                "--"],
        "oci_app_registry_tls_verify": False,
        "oci_app_template_cache_dir": os.path.join(double.backend.root, "cache"),
        "oci_app_health_timeout": 20, "oci_app_health_interval": 1, "oci_app_shutdown_timeout": 5,
        # no metrics: parallel tests deploy apps of the same name, and this machine has node_exporter's directory
        # (tests/integration/test_metrics.py and the oci_app molecule scenario write them)
        "oci_app_metrics_dir": "",
    }
    answers = dict(survey_defaults(), app_name="awxapp", app_image=image, app_memory=256, app_disk_size=1,
                   app_health_command="wget -qO- http://127.0.0.1:8080/", app_env="GREETING=hello awx\n")

    def job(**changes):
        events = []
        result = ansible_runner.run(
            private_data_dir=str(tmp_path / "runner"), playbook="deploy.yml",
            inventory="localhost ansible_connection=local ansible_python_interpreter=%s" % sys.executable,
            envvars=env, extravars=dict(site, **dict(answers, **changes)),
            quiet=True, event_handler=lambda event: events.append(event) or True,  # True: kept in artifacts too
            suppress_env_files=True)
        stdout = result.stdout.read()
        assert result.status == "successful" and result.rc == 0, stdout[-3000:]
        return result, events, stdout

    def task_results(events, action):
        return [e["event_data"]["res"] for e in events if e["event"] in ("runner_on_ok", "runner_on_failed")
                and e["event_data"].get("task_action") == action]

    def secret_nowhere(result, events, stdout):
        assert DEFAULT_PASSWORD not in json.dumps(events) + stdout
        for dirpath, dummy, names in os.walk(result.config.artifact_dir):
            for name in names:
                path = os.path.join(dirpath, name)
                if os.path.relpath(path, result.config.artifact_dir) == "command":
                    # ansible-runner records the job's command and environment here, readable by its owner
                    # only, as AWX's own job environment is
                    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
                    continue
                with open(path, "rb") as handle:
                    assert DEFAULT_PASSWORD.encode() not in handle.read(), path
        assert not os.path.exists(str(tmp_path / "runner" / "env" / "envvars"))

    first = job()
    result, events, stdout = first
    secret_nowhere(*first)
    created = task_results(events, "lxcri.proxmox.lxc_container")
    assert created and created[0]["changed"] and "created" in created[0]["actions"], created
    vmid = created[0]["vmid"]
    config = double.backend.containers[vmid].config
    assert config["hostname"] == "awxapp" and int(config["memory"]) == 256, config
    assert "GREETING=hello awx" in config.get("env", "").split("\0"), config
    assert double.running(vmid)
    assert result.stats["changed"].get("localhost", 0) > 0 and not result.stats["failures"]

    again, events, stdout = job()
    secret_nowhere(again, events, stdout)
    changed = [e["event_data"].get("task") for e in events if e["event_data"].get("res", {}).get("changed")]
    assert not again.stats["changed"].get("localhost"), changed

    gone, events, stdout = job(app_state="absent")
    secret_nowhere(gone, events, stdout)
    assert any(res["changed"] for res in task_results(events, "lxcri.proxmox.lxc_container"))
    assert vmid not in double.backend.containers
