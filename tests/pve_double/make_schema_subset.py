"""Write the committed schema subset the Proxmox VE API test double validates against.

    python tests/pve_double/make_schema_subset.py [../shared/pve-api]

Reads the official apidata-8.json and apidata-9.json (pve-docs' API viewer
data) and keeps the endpoints the double serves, with every parameter and
return schema as published, minus human-readable texts.  The output,
tests/pve_double/schema/apidata-{8,9}.subset.json, is committed so that tests
do not need ../shared at run time.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SOURCE = os.path.join(HERE, "..", "..", "..", "shared", "pve-api")

ENDPOINTS = (
    "/version", "/access/ticket", "/nodes", "/nodes/{node}/status", "/cluster/nextid", "/cluster/resources",
    "/nodes/{node}/lxc", "/nodes/{node}/lxc/{vmid}", "/nodes/{node}/lxc/{vmid}/config",
    "/nodes/{node}/lxc/{vmid}/pending", "/nodes/{node}/lxc/{vmid}/status/current", "/nodes/{node}/lxc/{vmid}/interfaces",
    "/nodes/{node}/lxc/{vmid}/status/start", "/nodes/{node}/lxc/{vmid}/status/stop",
    "/nodes/{node}/lxc/{vmid}/status/shutdown", "/nodes/{node}/lxc/{vmid}/status/reboot",
    "/nodes/{node}/lxc/{vmid}/template", "/nodes/{node}/lxc/{vmid}/clone", "/nodes/{node}/lxc/{vmid}/resize",
    "/nodes/{node}/lxc/{vmid}/move_volume", "/nodes/{node}/lxc/{vmid}/snapshot",
    "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback",
    "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config",
    "/nodes/{node}/storage", "/nodes/{node}/storage/{storage}/content",
    "/nodes/{node}/storage/{storage}/content/{volume}", "/nodes/{node}/storage/{storage}/upload",
    "/nodes/{node}/storage/{storage}/oci-registry-pull", "/nodes/{node}/tasks/{upid}/status",
    "/nodes/{node}/version", "/nodes/{node}/apt/versions",
    "/nodes/{node}/tasks/{upid}/log", "/cluster/status", "/cluster/ha/resources", "/nodes/{node}/lxc/{vmid}/migrate",
)
DROP = ("description", "verbose_description", "typetext", "format_description", "title")
NAME_MAPS = ("properties", "format")  # maps of names to schemas: a name is never a text to drop


def strip(node):
    """A schema node without its human-readable texts.

    Texts go from schema nodes (method infos, parameters, properties, items,
    permissions) at every level; a ``properties`` map (or a property string's
    ``format`` map) keeps every name in it, so a parameter *named*
    ``description`` or ``title`` stays, itself stripped of its texts.
    """
    if isinstance(node, list):
        return [strip(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in NAME_MAPS and isinstance(value, dict):
            out[key] = dict((name, strip(sub)) for name, sub in value.items())
        elif key not in DROP:
            out[key] = strip(value)
    return out


def index(nodes, out):
    for node in nodes:
        out[node["path"]] = node
        index(node.get("children") or [], out)
    return out


def subset(source):
    with open(source) as handle:
        tree = json.load(handle)
    paths = index(tree, {})
    result = {}
    for path in ENDPOINTS:
        node = paths.get(path)
        if node is None:
            continue  # e.g. oci-registry-pull does not exist in 8.x
        result[path] = dict((method, strip(info)) for method, info in sorted(node.get("info", {}).items()))
    return {"source": os.path.basename(source), "all_paths": sorted(paths), "endpoints": result}


def main(argv):
    source_dir = argv[0] if argv else DEFAULT_SOURCE
    for major in ("8", "9"):
        data = subset(os.path.join(source_dir, "apidata-%s.json" % major))
        target = os.path.join(HERE, "schema", "apidata-%s.subset.json" % major)
        with open(target, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.write("\n")
        print("%s: %d endpoints, %d known paths" % (target, len(data["endpoints"]), len(data["all_paths"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
