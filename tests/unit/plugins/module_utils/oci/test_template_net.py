"""oci_template's net (issue 15): the interfaces a template's generated init configures before Proxmox VE 9.1.

What the image must have, what is refused, what the runtime says, and that a template's name and identity
change with its interfaces only (the identity of a template without them is what it was before net existed).
"""

import io
import tarfile

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import initwrap
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import OciError
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.flatten import BlobLayer, Limits, flatten
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.naming import default_name, identity, identity_hash
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.reference import parse_source
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.runtime_config import runtime_spec
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import (
    TemplateManager, _NullSink, finish_runtime, reserved_layer)
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.config import app_net

PASSWD = "root:x:0:0:root:/root:/bin/sh\n"
GROUP = "root:x:0:\n"
STATIC = app_net({"0": "name=eth0,bridge=vmbr0,ip=10.0.0.5/24,gw=10.0.0.1"})
DHCP = app_net({"net1": {"name": "eth1", "bridge": "vmbr0", "ip": "dhcp"}})


class Sink(_NullSink):
    """Keeps the generated files."""

    def __init__(self):
        _NullSink.__init__(self)
        self.files = {}

    def add_file(self, name, data, mode=0o755, uid=0, gid=0, mtime=0):
        self.files["/" + name] = (data, mode)

    def add_dir(self, name, uid=0, gid=0, mode=0o755, mtime=0):
        pass


def tree(*paths, links=()):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("bin", "sbin", "etc", "usr", "usr/bin", "usr/sbin"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name in ("bin/sh", "etc/passwd", "etc/group") + paths:
            text = {"etc/passwd": PASSWD, "etc/group": GROUP}.get(name, "x")
            info = tarfile.TarInfo(name)
            info.size = len(text)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(text.encode()))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return flatten([BlobLayer(out.getvalue()), reserved_layer(True)], _NullSink(), Limits())


def run(layers, net, init_wrapper="always", sink=None):
    spec = runtime_spec({"Entrypoint": ["/bin/app"]}, {}, PASSWD, GROUP)
    return finish_runtime(spec, layers, "5.0", init_wrapper, sink=sink, net=net)


def test_app_net_reads_what_the_init_needs_and_refuses_bad_addresses():
    assert STATIC == [{"key": "net0", "name": "eth0", "ip": "10.0.0.5/24", "gw": "10.0.0.1"}]
    assert app_net({"1": "name=eth1,ip=dhcp", "0": "name=eth0,ip6=auto,link_down=1"}) == \
        [{"key": "net1", "name": "eth1", "ip": "dhcp"}]
    for nets, fragment in ((({"0": "name=eth0,ip=10.0.0.5"}), "prefix length"),
                           ({"0": "name=eth0,ip=fd00::5/64"}, "is an IPv6 address"),
                           ({"0": "name=eth0,gw=fd00::1"}, "is an IPv6 address"),
                           ({"0": "name=eth0,ip6=10.0.0.5/24"}, "is an IPv4 address"),
                           ({"0": "name=eth 0,ip=dhcp"}, "not an interface name"),
                           ({"x": "name=eth0"}, "not an interface index"),
                           ({"0": "name=eth0", "net0": "name=eth1"}, "given twice"),
                           ({"0": "bridge=vmbr0"}, "name missing"),
                           ({"0": "name=eth0,ip=dhcp,colour=blue"}, "unknown setting")):
        with pytest.raises(ValueError, match=fragment):
            app_net(nets)


def test_the_init_configures_the_interfaces_with_the_images_ip_and_udhcpc():
    sink = Sink()
    runtime = run(tree("sbin/ip", "bin/busybox", links=(("sbin/udhcpc", "/bin/busybox"),)), STATIC + DHCP, sink=sink)
    assert runtime["net"] == STATIC + DHCP
    assert runtime["wrapper"]["net_tools"] == ["/sbin/ip", "/sbin/udhcpc"]
    init = sink.files[initwrap.INIT_WRAPPER_PATH][0].decode()
    assert "'/sbin/ip' -4 addr add '10.0.0.5/24' dev 'eth0'" in init and "'/sbin/udhcpc' -i 'eth1'" in init
    script, mode = sink.files[initwrap.DHCP_SCRIPT_PATH]
    assert mode == 0o755 and script == initwrap.dhcp_script(["/sbin/ip"])
    # a static address needs no DHCP client, and no event script is written
    sink = Sink()
    runtime = run(tree("bin/busybox"), STATIC, sink=sink)
    assert runtime["wrapper"]["net_tools"] == ["/bin/busybox ip"] and initwrap.DHCP_SCRIPT_PATH not in sink.files
    assert run(tree("bin/busybox"), None)["net"] is None


@pytest.mark.parametrize("paths, net, fragment", [
    ((), STATIC, "with ip, which the image lacks"),
    (("sbin/ip",), DHCP, "with udhcpc, which the image lacks"),
    ((), DHCP, "with ip and udhcpc"),
])
def test_an_image_without_the_tools_is_refused(paths, net, fragment):
    with pytest.raises(OciError, match=fragment) as info:
        run(tree(*paths), net)
    assert "raw_lxc" in str(info.value) and "host-managed" in str(info.value)


def test_net_needs_the_generated_init_and_refuses_dhcpv6():
    with pytest.raises(OciError, match="only the generated init"):
        run(tree("sbin/ip"), STATIC, init_wrapper="auto")
    with pytest.raises(OciError, match="no DHCPv6 client"):
        run(tree("sbin/ip"), app_net({"0": "name=eth0,ip6=dhcp"}))


def test_check_mode_without_layers_lists_the_tools_as_unknown():
    spec = runtime_spec({"Entrypoint": ["/bin/app"]}, {}, PASSWD, GROUP)
    cold = finish_runtime(spec, None, "5.0", "always", net=DHCP)
    assert "wrapper.net_tools" in cold["needs_layers"] and cold["net"] == DHCP


def test_the_name_and_identity_change_with_the_interfaces_only():
    source = parse_source("registry.example/app:1")
    digest = "sha256:" + "a" * 64
    plain = TemplateManager({"image": "registry.example/app:1", "dest": "/tmp"}).params
    with_net = TemplateManager({"image": "registry.example/app:1", "dest": "/tmp",
                                "net": {"0": "name=eth0,bridge=vmbr0,ip=dhcp"}}).params
    assert with_net["net"] == [{"key": "net0", "name": "eth0", "ip": "dhcp"}]
    assert default_name(source, digest, plain) == "app_1_aaaaaaaaaaaa"
    assert default_name(source, digest, with_net).startswith("app_1_aaaaaaaaaaaa_")
    ident = identity(plain, digest, "linux/amd64", "5.0")
    assert "net" not in ident["options"]  # templates built before net keep their identity
    assert identity_hash(identity(with_net, digest, "linux/amd64", "5.0")) != identity_hash(ident)
    with pytest.raises(OciError, match="is not an IPv4 address with its prefix length.*nothing was built"):
        TemplateManager({"image": "registry.example/app:1", "dest": "/tmp", "net": {"0": "name=eth0,ip=x"}})
