"""The PVE API test double validates requests against the official schema subset."""

import json
import os
import subprocess
import sys

import pytest

from pve_double.schema import ApiError, Schema, check_value, parse_property_string

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "pve-api")


@pytest.fixture(params=["9.1", "8"])
def schema(request):
    return Schema(request.param)


def create(schema, **params):
    template, info, path = schema.route("POST", "/nodes/pve1/lxc")
    base = {"node": path["node"], "vmid": "101", "ostemplate": "local:vztmpl/debian.tar.zst"}
    base.update(params)
    return schema.validate(info, base)


def test_routes_and_path_parameters(schema):
    template, info, path = schema.route("GET", "/nodes/pve1/lxc/101/status/current")
    assert template == "/nodes/{node}/lxc/{vmid}/status/current" and path == {"node": "pve1", "vmid": "101"}
    with pytest.raises(ApiError) as err:
        schema.route("GET", "/nodes/pve1/nonsense")
    assert err.value.status == 501 and err.value.message == "Method 'GET /nodes/pve1/nonsense' not implemented"
    with pytest.raises(ApiError) as err:
        schema.route("PATCH", "/version")
    assert err.value.status == 501


def test_a_valid_create_is_typed(schema):
    typed = create(schema, memory="1024", unprivileged="1", net0="name=eth0,bridge=vmbr0,ip=dhcp",
                   rootfs="local-zfs:8", features="nesting=1", startup="order=2,up=30", tags="web;prod")
    assert typed["memory"] == 1024 and typed["unprivileged"] == 1
    assert typed["net0"] == {"name": "eth0", "bridge": "vmbr0", "ip": "dhcp"}
    assert typed["rootfs"] == {"volume": "local-zfs:8"}
    assert typed["features"] == {"nesting": 1}


@pytest.mark.parametrize("params,param,fragment", [
    ({"memory": "8"}, "memory", "minimum value of 16"),
    ({"memory": "lots"}, "memory", "type check ('integer') failed"),
    ({"vmid": "99"}, "vmid", "minimum value of 100"),
    ({"cmode": "serial"}, "cmode", "does not have a value in the enumeration"),
    ({"hostname": "bad_host!"}, "hostname", "valid dns-name"),
    ({"net0": "name=eth0,colour=blue"}, "net0", "property 'colour' not allowed"),
    ({"net0": "bridge=vmbr0"}, "net0", "property 'name' is missing"),
    ({"net0": "name=eth0,ip=300.1.1.1/24"}, "net0", "ip"),
    ({"features": "nesting=maybe"}, "features", "type check ('boolean') failed"),
    ({"startup": "order=first"}, "startup", "startup-order"),
    ({"rootfs": "local-zfs:8,size=big"}, "rootfs", "size"),
    ({"bogus": "1"}, "bogus", "not defined in schema"),
])
def test_bad_parameters_are_400_with_pve_shape(schema, params, param, fragment):
    with pytest.raises(ApiError) as err:
        create(schema, **params)
    assert err.value.status == 400 and err.value.message == "Parameter verification failed."
    assert fragment in err.value.errors[param]
    assert err.value.body()["errors"][param] == err.value.errors[param]


def test_missing_required_parameter(schema):
    template, info, path = schema.route("POST", "/nodes/pve1/lxc")
    with pytest.raises(ApiError) as err:
        schema.validate(info, {"node": "pve1", "ostemplate": "local:vztmpl/x.tar"})
    assert err.value.errors == {"vmid": "property is missing and it is not optional"}


def test_9_1_keys_exist_only_in_9_1():
    assert create(Schema("9.1"), entrypoint="/bin/sleep 60", env="A=1\0B=two words")["entrypoint"]
    with pytest.raises(ApiError) as err:
        create(Schema("8"), entrypoint="/bin/sleep 60")
    assert "not defined in schema" in err.value.errors["entrypoint"]
    with pytest.raises(ApiError) as err:
        create(Schema("9.1"), env="not an env")
    assert "regex" in err.value.errors["env"]
    Schema("9.1").route("POST", "/nodes/pve1/storage/local/oci-registry-pull")
    with pytest.raises(ApiError):
        Schema("8").route("POST", "/nodes/pve1/storage/local/oci-registry-pull")


def test_property_string_details():
    fmt = {"volume": {"type": "string", "default_key": 1}, "size": {"type": "string", "format": "disk-size",
                                                                    "optional": 1}}
    assert parse_property_string(fmt, "local:8,size=8G") == {"volume": "local:8", "size": "8G"}
    with pytest.raises(ValueError, match="duplicate key"):
        parse_property_string(fmt, "local:8,volume=local:9")
    assert check_value({"type": "boolean"}, "on") == 1
    assert check_value({"type": "string", "pattern": "(?^:[a-z]+)"}, "abc") == "abc"
    with pytest.raises(ValueError):
        check_value({"type": "string", "pattern": "(?^:[a-z]+)"}, "abc1")


@pytest.mark.allowed_skip  # the committed subset exists so that tests do not need ../shared
@pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared/pve-api is not beside this checkout")
def test_committed_subset_matches_the_generator(tmp_path):
    """The committed subset is what the script makes from the official schema."""
    here = os.path.join(os.path.dirname(__file__), "..", "pve_double")
    for major in ("8", "9"):
        with open(os.path.join(here, "schema", "apidata-%s.subset.json" % major)) as handle:
            committed = json.load(handle)
        code = ("import sys, json; sys.path.insert(0, %r); import make_schema_subset as m; "
                "print(json.dumps(m.subset(%r)))" % (here, os.path.join(SHARED, "apidata-%s.json" % major)))
        fresh = json.loads(subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, check=True).stdout)
        assert fresh == committed


def test_a_parameter_named_description_is_in_the_schema(schema):
    """The subset strips human texts, not the parameters called ``description`` (config, create, snapshot)."""
    assert create(schema, description="web server\nsecond line")["description"] == "web server\nsecond line"
    template, info, path = schema.route("PUT", "/nodes/pve1/lxc/101/config")
    assert schema.validate(info, dict(path, description="x" * 8192))["description"] == "x" * 8192
    with pytest.raises(ApiError) as err:
        schema.validate(info, dict(path, description="x" * 8193))
    assert err.value.status == 400 and "description" in err.value.errors
    template, info, path = schema.route("POST", "/nodes/pve1/lxc/101/snapshot")
    assert schema.validate(info, dict(path, snapname="before", description="pre-upgrade"))["description"] == \
        "pre-upgrade"


def test_strip_drops_texts_from_schema_nodes_only():
    """Texts go from every schema node; names in ``properties``/``format`` maps stay, whatever they are."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pve_double"))
    try:
        import make_schema_subset
    finally:
        sys.path.pop(0)
    info = {"description": "Set container options.", "method": "PUT", "permissions": {"description": "who"},
            "parameters": {"additionalProperties": 0, "properties": {
                "description": {"type": "string", "description": "Description for the Container.",
                                "verbose_description": "long", "maxLength": 8192, "optional": 1},
                "title": {"type": "string", "title": "Title", "typetext": "<string>"},
                "net[n]": {"type": "string", "format_description": "net", "format": {
                    "description": {"type": "string", "description": "a sub-key named description"},
                    "name": {"type": "string", "description": "Interface name."}}},
                "list": {"type": "array", "items": {"type": "object", "description": "item",
                                                    "properties": {"typetext": {"type": "integer", "title": "t"}}}},
            }},
            "returns": {"type": "null", "description": "nothing"}}
    assert make_schema_subset.strip(info) == {
        "method": "PUT", "permissions": {},
        "parameters": {"additionalProperties": 0, "properties": {
            "description": {"type": "string", "maxLength": 8192, "optional": 1},
            "title": {"type": "string"},
            "net[n]": {"type": "string", "format": {"description": {"type": "string"}, "name": {"type": "string"}}},
            "list": {"type": "array", "items": {"type": "object", "properties": {"typetext": {"type": "integer"}}}},
        }},
        "returns": {"type": "null"}}


RETURNS = {"type": "object", "properties": {
    "vmid": {"type": "integer", "minimum": 100},
    "status": {"type": "string", "enum": ["stopped", "running"]},
    "template": {"type": "boolean", "optional": 1},
    "cpu": {"type": "number", "optional": 1},
    "net[n]": {"type": "string", "optional": 1},
    "lxc": {"type": "array", "optional": 1, "items": {"type": "array", "items": {"type": "string"}}},
}}


@pytest.mark.parametrize("value,problem", [
    ({"vmid": 101, "status": "running"}, None),
    ({"vmid": 101, "status": "running", "template": True, "cpu": 0, "net0": "name=eth0", "other": [1]}, None),
    ({"vmid": 101, "status": "running", "template": None}, None),  # None is a missing value: optional
    ({"vmid": "101", "status": "running"}, "data.vmid: type check ('integer') failed - got \"101\""),
    ({"vmid": True, "status": "running"}, "data.vmid: type check ('integer') failed - got true"),
    ({"vmid": 99, "status": "running"}, "data.vmid: value 99 is below the minimum 100"),
    ({"status": "running"}, "data.vmid: property is missing and it is not optional"),
    ({"vmid": 101, "status": "paused"}, "data.status: value \"paused\" is not in the enumeration"),
    ({"vmid": 101, "status": "running", "template": 2}, "data.template: type check ('boolean') failed"),
    ({"vmid": 101, "status": "running", "template": "1"}, "data.template: type check ('boolean') failed"),
    ({"vmid": 101, "status": "running", "cpu": "0.5"}, "data.cpu: type check ('number') failed"),
    ({"vmid": 101, "status": "running", "net1": 5}, "data.net1: type check ('string') failed"),
    ({"vmid": 101, "status": "running", "lxc": [["lxc.init.cwd", 1]]}, "data.lxc[0][1]: type check ('string')"),
    ([], "data: type check ('object') failed - got []"),
])
def test_check_returns_holds_json_types(value, problem):
    from pve_double.schema import check_returns
    problems = check_returns(RETURNS, value)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_check_returns_items_null_and_closed_objects():
    from pve_double.schema import check_returns
    rows = {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"},
                                                                        "t": {"type": "string"}}}}
    assert check_returns(rows, [{"n": 1, "t": "a"}, {"n": 2, "t": "b"}]) == []
    assert check_returns(rows, [{"n": 1, "t": "a"}, {"n": "2"}]) == [
        "data[1].n: type check ('integer') failed - got \"2\"",
        "data[1].t: property is missing and it is not optional"]
    assert check_returns({"type": "null"}, None) == []
    assert check_returns({"type": "null"}, "UPID:x") == ["data: type check ('null') failed - got \"UPID:x\""]
    assert check_returns({"type": "string"}, None) == ["data: property is missing and it is not optional"]
    assert check_returns({"type": "string", "optional": 1}, None) == []
    closed = {"type": "object", "additionalProperties": 0, "properties": {"a": {"type": "integer"}}}
    assert check_returns(closed, {"a": 1, "b": 2}) == [
        "data.b: property is not defined in schema and the schema does not allow additional properties"]


def test_every_endpoint_has_a_returns_schema_the_checker_knows(schema):
    """No ``returns`` in the subset uses a type the checker would not understand."""
    from pve_double.schema import JSON_TYPES

    def types(node, found):
        if isinstance(node, dict):
            if isinstance(node.get("type"), str):
                found.add(node["type"])
            for key, value in node.items():
                if key in ("properties", "format") and isinstance(value, dict):
                    for sub in value.values():
                        types(sub, found)
                elif key in ("items", "additionalProperties"):
                    types(value, found)
        return found

    found = set()
    for methods in schema.endpoints.values():
        for info in methods.values():
            types(info.get("returns") or {}, found)
    assert found and found <= set(JSON_TYPES)


def test_property_strings_print_back_as_pve_does(schema):
    """The default key's value comes first without its name (a rootfs PUT stores 'local:1,size=1G')."""
    typed = create(schema, rootfs="volume=local:0,size=1G", mp0="size=2G,volume=local-zfs:2,mp=/srv")
    assert typed["rootfs"].text() == "local:0,size=1G"
    assert typed["mp0"].text() == "local-zfs:2,size=2G,mp=/srv"
