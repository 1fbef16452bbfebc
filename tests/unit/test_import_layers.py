"""The import graph of plugins/: no loops, and no import running up from a lower layer to a higher one.

The layers, lowest first (docs/ARCHITECTURE.md says what each owns):

1. module_utils/*.py (the shared base: errors, argspec, command, hashing, requests_import) and doc_fragments/
2. module_utils/zfs, module_utils/runtime, module_utils/pve: engines side by side, none imports another
3. module_utils/oci: images and templates; publishes to a PVE storage through pve, asks runtime for the LXC version;
   oci_container's engine runs images through runtime and keeps their root filesystems on zfs
4. modules/ (node side), plugin_utils/ (controller side), inventory/ (controller side, on the pve engine),
   connection/ and callback/ (controller side, on nothing of ours)
5. action/ (controller side, on plugin_utils)

A package may import its own files and the packages listed for it in ALLOWED, nothing else.  Imports
inside functions count as much as those at the top: they hide a loop, they do not remove it.
"""

import ast
import os

PLUGINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "plugins")
PREFIX = "ansible_collections.lxcri.proxmox.plugins."

BASE = "module_utils"
ALLOWED = {
    BASE: set(),
    "doc_fragments": set(),
    "module_utils/zfs": {BASE},
    "module_utils/runtime": {BASE},
    "module_utils/pve": {BASE},
    "module_utils/oci": {BASE, "module_utils/pve", "module_utils/runtime", "module_utils/zfs"},
    "modules": {BASE, "module_utils/zfs", "module_utils/runtime", "module_utils/pve", "module_utils/oci"},
    "plugin_utils": set(),
    "inventory": {BASE, "module_utils/pve"},
    "connection": set(),
    "callback": set(),
    "action": {"plugin_utils"},
}


def package_of(path):
    """``module_utils/oci`` for module_utils/oci/x.py, ``module_utils`` for module_utils/x.py, ``modules`` ..."""
    parts = path.split("/")
    if parts[0] == "module_utils" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0]


def plugin_files():
    out = []
    for folder, dummy, files in os.walk(PLUGINS):
        for name in files:
            if name.endswith(".py"):
                out.append(os.path.relpath(os.path.join(folder, name), PLUGINS).replace(os.sep, "/"))
    return sorted(out)


def _target(dotted, files):
    """The file of the collection a dotted name (without PREFIX) stands for, or None."""
    path = dotted.replace(".", "/")
    if path + ".py" in files:
        return path + ".py"
    if path + "/__init__.py" in files:
        return path + "/__init__.py"
    return None


def import_graph():
    """{file: {imported file: line}} over plugins/, every import statement of the collection's own code."""
    files = set(plugin_files())
    graph = {}
    for path in sorted(files):
        with open(os.path.join(PLUGINS, path)) as handle:
            tree = ast.parse(handle.read(), path)
        edges = graph.setdefault(path, {})
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
                base = node.module[len(PREFIX):]
                # "from ...module_utils.oci import media" imports the file media.py; "... import X" a name of base
                names = [base + "." + alias.name if _target(base + "." + alias.name, files) else base
                         for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name[len(PREFIX):] for alias in node.names if alias.name.startswith(PREFIX)]
            for name in names:
                target = _target(name, files)
                assert target is not None, (path, name)  # every import of ours names a file of ours
                if target != path:
                    edges.setdefault(target, node.lineno)
    return graph


def loops(graph):
    """The strongly connected groups of more than one file (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, {}):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read():
    graph = import_graph()
    assert len(graph) > 60
    assert "module_utils/pve/client.py" in graph["module_utils/pve/connection.py"]
    assert "module_utils/oci/media.py" in graph["module_utils/oci/registry.py"]  # "from ...oci import media"
    # a function-level import counts: template.py asks runtime/detect.py for the LXC version
    assert "module_utils/runtime/detect.py" in graph["module_utils/oci/template.py"]
    assert set(package_of(p) for p in graph) == set(ALLOWED)


def test_no_import_runs_upward():
    upward = []
    for path, edges in import_graph().items():
        mine = package_of(path)
        for target, line in edges.items():
            theirs = package_of(target)
            if theirs != mine and theirs not in ALLOWED[mine]:
                upward.append("%s:%d imports %s (%s may import %s)"
                              % (path, line, target, mine, ", ".join(sorted(ALLOWED[mine])) or "nothing of ours"))
    assert upward == []


def test_no_loops():
    assert [sorted(group) for group in loops(import_graph())] == []


def test_the_checks_catch_what_they_are_for():
    graph = {"a.py": {"b.py": 1}, "b.py": {"c.py": 1}, "c.py": {"a.py": 1}, "d.py": {"a.py": 1}}
    assert loops(graph) == [{"a.py", "b.py", "c.py"}]
    assert package_of("module_utils/oci/x.py") == "module_utils/oci" and package_of("module_utils/x.py") == BASE
    assert "module_utils/oci" not in ALLOWED["module_utils/pve"] and "modules" not in ALLOWED["module_utils/oci"]
