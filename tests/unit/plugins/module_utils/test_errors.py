"""The one error model: every engine error derives from LxcriError and reaches fail_json one way."""

import importlib
import inspect
import os
import re

import pytest

from ansible_collections.lxcri.proxmox.plugins import module_utils
from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError, fail_module, failure_result
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.container import ContainerError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.errors import PveConfigError, PveError
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.snapshot import SnapshotError
from ansible_collections.lxcri.proxmox.plugins.module_utils.zfs.errors import ZfsError

# exceptions of the engines that are no errors for the user: control flow inside one engine
NOT_ENGINE_ERRORS = {"FlattenRestart", "_HeaderError", "CommandNotFound"}


def engine_exception_classes():
    found = {}
    root = list(module_utils.__path__)[0]
    for folder, dummy, files in os.walk(root):
        for filename in sorted(f for f in files if f.endswith(".py") and f != "__init__.py"):
            relative = os.path.relpath(os.path.join(folder, filename[:-3]), root)
            module = importlib.import_module(module_utils.__name__ + "." + relative.replace(os.sep, "."))
            for name, value in vars(module).items():
                if (inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == module.__name__
                        and name not in NOT_ENGINE_ERRORS):
                    found[value.__module__ + "." + name] = value
    return found


def test_every_engine_error_derives_from_the_base():
    classes = engine_exception_classes()
    assert len(classes) >= 25, sorted(classes)
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, LxcriError))
    assert outside == []


def test_every_error_class_names_its_kind():
    classes = engine_exception_classes()
    for name, cls in classes.items():
        if cls is LxcriError or cls is ZfsError:
            continue  # the base says "failed"; a ZfsError's kind is given per error
        assert "kind" in vars(cls), name
    kinds = [cls.kind for cls in classes.values() if "kind" in vars(cls)]
    assert len(kinds) == len(set(kinds)), sorted(kinds)


def test_container_and_snapshot_errors_are_no_config_errors():
    for cls in (ContainerError, SnapshotError):
        assert issubclass(cls, PveError) and not issubclass(cls, PveConfigError)
    assert ContainerError("x").kind == "container" and SnapshotError("x").kind == "snapshot"


def test_kind_and_result_fields():
    err = LxcriError("boom", kind="special", name="tank/a")
    assert str(err) == "boom" and err.kind == "special" and err.result_fields == {"name": "tank/a"}
    assert LxcriError("plain").kind == "failed"
    zfs = ZfsError("gone", "not_found", name="tank/b")
    assert zfs.kind == "not_found" and zfs.name == "tank/b" and ZfsError("x").kind == "failed"


class _Module:
    def __init__(self):
        self.failed = None

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise SystemExit(1)


class _Engine:
    def __init__(self):
        self.actions = ["created"]


def test_fail_module_reports_kind_actions_and_traceback():
    module = _Module()
    engine = _Engine()
    with pytest.raises(SystemExit):
        try:
            raise ContainerError("CT 105 cannot start", vmid=105)
        except LxcriError as exc:
            fail_module(module, exc, engine, image="app")
    failed = module.failed
    assert failed["msg"] == "CT 105 cannot start"
    assert failed["error_kind"] == "container" and failed["actions"] == ["created"]
    assert failed["vmid"] == 105 and failed["image"] == "app"
    assert "Traceback" in failed["exception"] and "ContainerError" in failed["exception"]
    engine.actions.append("started")
    assert failed["actions"] == ["created"]  # a copy, not the engine's list


def test_failure_result_without_engine():
    assert failure_result(ZfsError("x", "busy")) == {"error_kind": "busy"}
    assert failure_result(ZfsError("x", "busy"), engine=object(), name="t") == {"error_kind": "busy", "name": "t"}


def test_modules_fail_one_way_and_document_error_kind():
    import yaml
    from ansible_collections.lxcri.proxmox.plugins import modules
    root = list(modules.__path__)[0]
    helped = []
    for filename in sorted(f for f in os.listdir(root) if f.endswith(".py") and f != "__init__.py"):
        with open(os.path.join(root, filename)) as handle:
            source = handle.read()
        # engine errors reach fail_json through fail_module only: no module catches an engine error class itself
        assert not re.search(r"except \(?(\w+Error|LxcriError)\b.*:\n\s+module\.fail_json", source), filename
        if "fail_module(" not in source:
            continue
        helped.append(filename)
        module = importlib.import_module("%s.%s" % (modules.__name__, filename[:-3]))
        returned = yaml.safe_load(module.RETURN)
        assert returned["error_kind"]["returned"] == "failed" and returned["error_kind"]["type"] == "str", filename
    assert len(helped) == 12, helped
