# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection plugin lxcri.proxmox.pct: into a Proxmox VE container with pct exec/push/pull, on the node or over SSH."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: pct
short_description: Run tasks in a Proxmox VE container through pct, on the node or over SSH to it
description:
  - Runs commands in a Proxmox VE LXC container with C(pct exec), and copies files with C(pct push) and C(pct pull).
    The container needs no SSH server, only C(/bin/sh) (and Python for most modules).
  - Without O(node_host) C(pct) runs where Ansible runs, which must then be the node (as root). With it, the plugin
    connects to the node with Ansible's own C(ssh) connection plugin (no paramiko), as O(node_user), and runs
    C(pct) there; files go through a temporary file on the node, removed afterwards.
  - Pipelining works (the module goes through C(pct exec)'s standard input). Output is passed through as bytes,
    binary or not; file transfers stream, whatever their size.
  - Become (C(sudo), C(su)) runs inside the container. A become method that asks for a password is refused.
  - A container that is stopped or does not exist makes the task unreachable with a message saying which.
  - C(pct push) and C(pct pull) exit 0 even when the copy fails (pve-container C(src/PVE/CLI/pct.pm)); the plugin
    reads their error output and checks the result.
author:
  - lxcri maintainers (@lxcri)
options:
  vmid:
    description: The container's id. Defaults to the inventory host's address (O(remote_addr)) when that is a number,
      or C(<vmid>@<node host>).
    type: int
    vars:
      - name: ansible_pct_vmid
      - name: lxcri_pct_vmid
  remote_addr:
    description:
      - The inventory host's address; its vmid when O(vmid) is not set.
      - C(<vmid>@<node host>) (for example V(305@pve2.example.com)) also names the node to reach over SSH, for inventories
        that can only set an address per host, such as the instance config of the collection's molecule platform. The
        node host given this way is used instead of O(node_host).
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
  node_host:
    description: The Proxmox VE node that runs the container, reached over SSH. Empty - C(pct) runs where Ansible runs
      (unless O(remote_addr) names a node).
    type: str
    default: ""
    vars:
      - name: ansible_pct_node_host
  node_user:
    description: The SSH user on the node. C(pct) needs root there.
    type: str
    default: root
    vars:
      - name: ansible_pct_node_user
  node_port:
    description: The node's SSH port.
    type: int
    default: 22
    vars:
      - name: ansible_pct_node_port
  node_private_key_file:
    description: The private key for the node.
    type: path
    vars:
      - name: ansible_pct_node_private_key_file
  node_ssh_args:
    description: More arguments for ssh to the node (for example C(-F /path/ssh_config)), appended to Ansible's.
    type: str
    default: ""
    vars:
      - name: ansible_pct_node_ssh_args
  pct_command:
    description: The C(pct) command on the node.
    type: str
    default: pct
    vars:
      - name: ansible_pct_command
  keep_env:
    description:
      - Pass C(--keep-env 1) or C(--keep-env 0) to C(pct exec). Not set - C(pct)'s own default (it keeps the
        environment up to Proxmox VE 9, with a warning on newer versions).
    type: bool
    vars:
      - name: ansible_pct_keep_env
  shell:
    description:
      - Run each command through C(/bin/sh -c) in the container (what modules need). V(false) runs it as an argument
        list (split as a shell would, with no shell in the container), for C(ansible.builtin.raw) in images that have
        no C(/bin/sh), such as distroless ones; become is then refused.
    type: bool
    default: true
    vars:
      - name: ansible_pct_shell
  pipelining:
    description: Send modules through standard input instead of copying them into the container first.
    type: bool
    default: false
    vars:
      - name: ansible_pipelining
      - name: ansible_pct_pipelining
"""

EXAMPLES = r"""
# inventory: containers by vmid, reached through their node over SSH
# [app_containers]
# 120 ansible_connection=lxcri.proxmox.pct ansible_pct_node_host=pve1.example.com
# web ansible_connection=lxcri.proxmox.pct ansible_pct_vmid=121 ansible_pct_node_host=pve2.example.com
- name: Configure the app inside its container
  hosts: app_containers
  gather_facts: false
  tasks:
    - name: Write the config
      ansible.builtin.copy:
        content: "listen 8080\n"
        dest: /etc/app.conf
        mode: "0644"
"""

import os
import shlex
import shutil
import subprocess
import uuid

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

# pve-container src/PVE/CLI/pct.pm and PVE::AbstractConfig::load_config: what pct says for a stopped or missing CT
NOT_RUNNING = (b"not running!", b"can only push files to a running CT", b"can only pull files from a running")
MISSING = b"does not exist"


class Connection(ConnectionBase):
    transport = "lxcri.proxmox.pct"
    has_pipelining = True
    has_tty = False
    default_user = "root"

    def __init__(self, *args, **kwargs):
        super(Connection, self).__init__(*args, **kwargs)
        self._node = None  # the ssh connection to the node, when node_host is set

    # -- setup -----------------------------------------------------------------
    def _address(self):
        """(vmid or None, node host or None) from the address: ``<vmid>`` or ``<vmid>@<node host>``."""
        addr = str(self.get_option("remote_addr") or "")
        vmid, sep, host = addr.partition("@")
        if not vmid.isdigit() or (sep and not host):
            return None, None
        return vmid, host or None

    def _vmid(self):
        vmid = self.get_option("vmid")
        if vmid is None:
            vmid = self._address()[0]
            if vmid is None:
                raise AnsibleError("lxcri.proxmox.pct: give the container's vmid (ansible_pct_vmid, or an address "
                                   "<vmid> or <vmid>@<node host>); the host's address %r is not one"
                                   % str(self.get_option("remote_addr") or ""))
        return str(int(vmid))

    def _node_host(self):
        return self._address()[1] or self.get_option("node_host")

    def _connect(self):
        if self._connected:
            return self
        node_host = self._node_host()
        if node_host:
            from ansible.plugins.loader import connection_loader  # pylint: disable=import-outside-toplevel
            node = connection_loader.get("ssh", self._play_context, "/dev/null")
            direct = {"host": node_host, "remote_user": self.get_option("node_user"),
                      "port": self.get_option("node_port")}
            if self.get_option("node_private_key_file"):
                direct["private_key_file"] = self.get_option("node_private_key_file")
            if self.get_option("node_ssh_args"):
                direct["ssh_extra_args"] = self.get_option("node_ssh_args")
            node.set_options(direct=direct)
            node._connect()  # pylint: disable=protected-access
            self._node = node
        self._connected = True
        return self

    def close(self):
        if self._node is not None:
            self._node.close()
            self._node = None
        self._connected = False

    # -- running pct -------------------------------------------------------------
    def _pct(self, args, in_data=None):
        """(rc, stdout, stderr) of ``pct <args>`` on the node (here, or over SSH)."""
        argv = [self.get_option("pct_command")] + list(args)
        if self._node is not None:
            return self._node.exec_command(" ".join(shlex.quote(a) for a in argv), in_data=in_data, sudoable=False)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE if in_data is not None else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise AnsibleConnectionFailure("lxcri.proxmox.pct: cannot run %s here (%s): run Ansible on the Proxmox VE "
                                           "node, or set ansible_pct_node_host" % (argv[0], exc))
        stdout, stderr = proc.communicate(in_data)
        return proc.returncode, stdout, stderr

    def _where(self):
        return "node %s" % self._node_host() if self._node is not None else "this host"

    def _check_reachable(self, rc, stderr):
        """A stopped or missing container: unreachable, saying which."""
        if rc == 0 and not stderr:
            return
        vmid = self._vmid()
        if any(marker in stderr for marker in NOT_RUNNING):
            raise AnsibleConnectionFailure("lxcri.proxmox.pct: CT %s on %s is not running; start it first (for "
                                           "example lxcri.proxmox.lxc_container with state: started)"
                                           % (vmid, self._where()))
        if MISSING in stderr and b"Configuration file" in stderr:
            raise AnsibleConnectionFailure("lxcri.proxmox.pct: CT %s does not exist on %s (%s)"
                                           % (vmid, self._where(), to_native(stderr.strip())))

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        self._connect()
        if sudoable and self.become is not None and self.become.expect_prompt():
            raise AnsibleError("lxcri.proxmox.pct: become method %s asks for a password, which pct exec cannot "
                               "answer (no terminal); use a become user that needs none (root's su, or sudo with "
                               "NOPASSWD)" % self.become.name)
        args = ["exec", self._vmid()]
        if self.get_option("keep_env") is not None:
            args += ["--keep-env", "1" if self.get_option("keep_env") else "0"]
        if self.get_option("shell"):
            args += ["--", "/bin/sh", "-c", to_text(cmd, errors="surrogate_or_strict")]
        else:
            if sudoable and self.become is not None:
                raise AnsibleError("lxcri.proxmox.pct: become needs a shell in the container (shell: false)")
            args += ["--"] + shlex.split(to_text(cmd, errors="surrogate_or_strict"))
        display.vvv("PCT EXEC %s" % " ".join(shlex.quote(a) for a in args), host=self._vmid())
        rc, stdout, stderr = self._pct(args, in_data)
        if rc == 255:
            self._check_reachable(rc, stderr)
        return rc, stdout, stderr

    # -- files -------------------------------------------------------------------
    def _node_tmp(self):
        return "/tmp/.lxcri-pct-%s" % uuid.uuid4().hex

    def _transfer_error(self, what, rc, stderr):
        self._check_reachable(rc, stderr)
        if rc != 0 or stderr.strip():
            raise AnsibleError("lxcri.proxmox.pct: %s failed: %s" % (what, to_native(stderr.strip() or "exit %d" % rc)))

    def put_file(self, in_path, out_path):
        super(Connection, self).put_file(in_path, out_path)
        self._connect()
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound("file or module does not exist: %s" % in_path)
        display.vvv("PCT PUSH %s TO %s" % (in_path, out_path), host=self._vmid())
        source = in_path
        if self._node is not None:
            source = self._node_tmp()
            self._node.put_file(in_path, source)
        try:
            rc, dummy, stderr = self._pct(["push", self._vmid(), source, out_path])
        finally:
            if self._node is not None:
                self._node.exec_command("rm -f %s" % shlex.quote(source), sudoable=False)
        self._transfer_error("pct push of %s to %s" % (in_path, out_path), rc, stderr)

    def fetch_file(self, in_path, out_path):
        super(Connection, self).fetch_file(in_path, out_path)
        self._connect()
        display.vvv("PCT PULL %s TO %s" % (in_path, out_path), host=self._vmid())
        # pct pull creates the destination before it opens the source: pull to a temporary file, so that a missing
        # source leaves nothing at out_path
        local_tmp = "%s.lxcri-pct-%s" % (out_path, uuid.uuid4().hex[:8])
        target = local_tmp if self._node is None else self._node_tmp()
        try:
            rc, dummy, stderr = self._pct(["pull", self._vmid(), in_path, target])
            self._transfer_error("pct pull of %s" % in_path, rc, stderr)
            if self._node is not None:
                self._node.fetch_file(target, local_tmp)
            shutil.move(local_tmp, out_path)
        finally:
            if self._node is not None:
                self._node.exec_command("rm -f %s" % shlex.quote(target), sudoable=False)
            if os.path.exists(local_tmp):
                os.unlink(local_tmp)
