#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: oci_template
short_description: Turn an OCI/Docker image into a Proxmox VE container template that runs its entrypoint
version_added: 0.1.0
description:
  - Pulls the image into the verified blob cache (as M(lxcri.proxmox.oci_image) does), flattens its layers
    into one template and works out what the container must run, namely the image's ENTRYPOINT+CMD as the init
    command, its environment, working directory, user and stop signal.
  - The layers are merged in one streaming pass, top layer first, straight into the compressed template.
    Nothing from the image is ever unpacked on the host, so no path in an image can reach outside the
    template. Whiteouts and opaque directories apply to lower layers only; hardlinks may point into lower
    layers; setuid bits, C(security.capability) and C(user.*) xattrs and ACLs are kept; device nodes and the
    contents of C(/dev) are dropped, as Proxmox VE's restore does. Member names that climb out of the root,
    entries written through symlinks, and hardlinks that leave the root are refused with an error naming them.
  - The template restores, with Proxmox VE's exact tar command, to the tree the module reads for the user,
    the command and the working directory. A path given twice in a layer is written once (the later member,
    as Docker does), each directory comes before its content with its final attributes, pax global headers are
    ignored, ACL entries naming users or groups take the image's own ids, owners above 65535 become 65534
    (without setuid/setgid), owners outside 0-4294967294 are refused, mtimes are clamped to 1970-2242 and mode
    bits above 07777 are dropped. RV(conversion) counts them. Such images may be read twice.
  - Every layer is checked against the config's C(diff_ids) while it is read; a bad layer publishes nothing.
  - The template is written to a temporary file and renamed into place only when complete. An existing
    template built from the same image digest with the same options is kept (C(changed=false)).
  - The returned RV(runtime) tells M(lxcri.proxmox.lxc_container) (or a raw LXC config) how to run it;
    it is also stored in a JSON sidecar C(<template>.json) next to the template.
  - Runs where the images and the template directory are, normally on the Proxmox VE node, and needs only
    the Python standard library, C(requests) for registries, and the C(zstd) command or C(python3-zstandard)
    for zstd output.
author:
  - lxcri maintainers (@lxcri)
options:
  image:
    description:
      - The image, in the syntax of M(lxcri.proxmox.oci_image)'s O(lxcri.proxmox.oci_image#module:image)
        option, that is a registry reference (V(nginx:1.27), V(registry.local:5000/app@sha256:...)),
        V(oci-layout:/path[:tag]), V(oci-archive:/path.tar[:tag]) or V(docker-archive:/path.tar[:repo:tag]).
    type: str
    required: true
  state:
    description:
      - V(present) builds the template unless an identical one exists.
      - V(absent) removes the template and its sidecar (from O(dest)) or the volume (from O(storage)).
    type: str
    choices: [present, absent]
    default: present
  format:
    description:
      - V(vztmpl) is a plain container template (a compressed tar, members C(./)-prefixed, owners as the
        container sees them), restorable by C(pct create)/C(pct restore) and C(POST /nodes/{node}/lxc) on every
        Proxmox VE version.
      - V(oci-archive) is a normalised OCI archive (one platform, OCI media types, one squashed layer) that
        Proxmox VE 9.1 and later import natively; its Entrypoint/Cmd are rewritten so that Proxmox's import gives
        exactly the intended command.
      - V(auto) picks what the template's node runs the image with, with no other option turned. With O(dest) it
        is V(vztmpl). With O(storage) it follows O(node)'s own version (C(GET /nodes/{node}/version)). On Proxmox VE
        9.1 and later it is V(oci-archive), except for an image that runs as another user than root where the node's
        pve-container is known to be older than 6.1.0 (its import ignores the image's User; read from
        C(GET /nodes/{node}/apt/versions), which needs C(Sys.Audit) on the node, and taken as 6.1.0 or later when
        it cannot be read), which gets V(vztmpl) with O(init_wrapper=always), as does an image whose user has
        supplementary groups (read from the layers' C(/etc/passwd) and C(/etc/group), one more pass over the
        layers for a non-root image), since the import would set them as C(lxc.init.groups), which LXC applies
        only in a privileged container. In check mode without the layers cached those groups are not known.
        Before 9.1 it is V(vztmpl) with
        O(init_wrapper=always), since there are no C(entrypoint)/C(env) keys and the generated C(/sbin/init) runs the app. The
        choice and its reason are returned as RV(format) and RV(format_choice).
    type: str
    choices: [auto, vztmpl, oci-archive]
    default: auto
  compression:
    description:
      - Compression of a V(vztmpl) template. V(zstd) (level 3, multi-threaded) gives C(.tar.zst); V(gzip) gives
        C(.tar.gz). Ignored for V(oci-archive), whose layer is gzip.
    type: str
    choices: [zstd, gzip]
    default: zstd
  dest:
    description:
      - The directory to write the template into, for example a storage's C(template/cache) directory when the
        module runs on the node (C(/var/lib/vz/template/cache) for the C(local) storage).
      - Exactly one of O(dest) and O(storage) is required.
    type: path
  storage:
    description:
      - Upload the finished template to this Proxmox VE storage (content C(vztmpl)) over the API instead,
        with the connection options. The template is built under O(cache_dir) first and uploaded only when
        complete, with its sha256 checksum.
      - An existing volume with the same name is kept, since the name carries the image digest (and, with
        non-default options, their hash); set O(force) to replace it.
      - A template that M(lxcri.proxmox.lxc_container) could not run on the node is refused before the upload; see
        O(require_runnable).
      - When an upload fails, whatever the storage lists under the template's name afterwards (a copy cut off
        midway whose cleanup on the node failed too) is removed, and the error says so.
    type: str
  node:
    description: The node whose storage receives the upload. Defaults to the node the API host is (the only node of
      a one-node cluster; with O(nodes), the first online one of them). Its version decides O(format=auto) unless
      O(nodes) names older ones.
    type: str
  nodes:
    description:
      - Make the template reachable from each of these nodes (V(all) - every node of the cluster, which must all be
        online). On a shared storage (C(shared 1) in storage.cfg) it is uploaded once; on a node-local storage such
        as C(local), to each node that lacks it, so a second run changes nothing and a node added later gets only its
        own upload.
      - Every node must be able to run it (its own version); O(format=auto) and O(lxc_version=auto) follow the
        oldest of them. An unknown or offline node is refused before anything is built or uploaded.
      - When an upload to a later node fails, the nodes that have the complete template keep it and the error names
        them; the failed node's partial copy is removed.
    type: list
    elements: str
  name:
    description:
      - The template's file name without extension.
      - Defaults to C(<repository>_<tag>_<12 digits of the manifest digest>), for example
        C(nginx_1.27_3b7c9e0a1f2d), safe for Proxmox volume names. With options other than the defaults a
        short hash of them is appended, so different variants never share a name.
    type: str
  entrypoint:
    description:
      - Replace the image's ENTRYPOINT (a list of words). As with C(docker run --entrypoint), this also drops
        the image's CMD unless O(cmd) is given. An empty list clears the entrypoint.
    type: list
    elements: str
  cmd:
    description: Replace the image's CMD (a list of words).
    type: list
    elements: str
  env:
    description:
      - Environment to add to or override in the image's ENV, as a dict or a list of C(NAME=value).
      - Values may contain spaces and C(=); newlines and NUL are refused.
    type: raw
  workdir:
    description:
      - Replace the image's WORKDIR. It is created in the template, owned by the container user, when the
        image lacks it (LXC refuses to start otherwise).
      - A working directory, volume or command path in C(/.lxcri) (lexically or through the image's symlinks) is
        refused; the collection reserves that directory for the files it generates, and hides the image's own.
    type: str
  user:
    description:
      - Replace the image's USER, as C(name), C(uid), C(name:group) or C(uid:gid). Names are resolved from the
        image's own C(/etc/passwd) and C(/etc/group), never from the host.
      - As runc does, a part is a number only when it is ASCII digits after an optional sign (Go's
        C(strconv.Atoi)); fullwidth digits or spaces make it a name.
    type: str
  stop_signal:
    description:
      - Replace the image's STOPSIGNAL (for example V(SIGINT) or V(15)). Without either, V(SIGTERM), as Docker
        does; LXC's own default (SIGPWR) is ignored by most applications running as PID 1.
    type: str
  init_wrapper:
    description:
      - V(auto) writes the init command as C(lxc.init.cmd) (Proxmox VE 9.1 C(entrypoint)) when the target LXC
        can parse it back into exactly the argv, and otherwise places a small generated script
        C(/.lxcri/exec) in the template that execs the exact argv (the image needs C(/bin/sh)).
      - V(never) fails instead of adding a script.
      - V(always) makes the template's C(/sbin/init) a generated init for Proxmox VE before 9.1, which has no
        C(entrypoint)/C(env) keys. It sets the environment and working directory, switches to the user
        (with a tool from the image, such as setpriv, su-exec, gosu, chpst or su), runs the application as its child,
        forwards SIGPWR/SIGTERM/SIGINT to it as its stop signal, reaps orphans and exits with its status.
    type: str
    choices: [auto, always, never]
    default: auto
  init:
    description:
      - V(app) (the default) makes a template that runs the image's command (ENTRYPOINT and CMD, with O(entrypoint)
        and O(cmd)), as described above.
      - V(system) makes a base image (C(debian:12), C(alpine:3.20), C(ubuntu:24.04), ...) a system container, as
        Proxmox VE's own templates are, for example for test instances (the collection's molecule platform). The
        template is a plain one (V(vztmpl)) that runs as root in C(/). An image with its own C(/sbin/init) (an
        executable, or a symlink to one inside the image, such as systemd's or BusyBox's) keeps it; any other gets
        a generated C(/sbin/init) that runs C(while :; do sleep 86400; done) as its child, so the container stays up
        for C(pct exec) and Ansible (it forwards the stop signal and reaps orphans; the image needs C(/bin/sh) and
        C(sleep)). RV(runtime.init) says which.
      - With V(system), O(entrypoint), O(cmd), O(workdir), O(user), O(stop_signal), O(net) and O(init_wrapper) do not
        apply and are refused, as is O(format=oci-archive); O(require_runnable) is not needed (every Proxmox VE
        version starts a plain template's C(/sbin/init)). The name gets an options hash, so the system and the app
        template of one image never share a name.
    type: str
    choices: [app, system]
    default: app
  net:
    description:
      - Interfaces that the generated init (O(init_wrapper=always)) configures before it starts the application,
        for a container on Proxmox VE before 9.1 when the play cannot write the node's config files (an API token,
        as in AWX). Proxmox VE 8 configures no interface of a container made from an image - it has no
        host-managed network - and the image's command configures none; with node access, M(lxcri.proxmox.lxc_container)'s
        O(lxcri.proxmox.lxc_container#module:raw_lxc) brings static addresses up without this.
      - The same as M(lxcri.proxmox.lxc_container)'s O(lxcri.proxmox.lxc_container#module:net) for the container (index
        or C(netN) to a property string or dict); the template uses C(name), C(ip), C(gw), C(ip6) and C(gw6) of each,
        skips one with C(link_down=1) and ignores the rest. C(ip=dhcp) runs BusyBox C(udhcpc) in the background
        (it renews the lease and writes C(/etc/resolv.conf) when the server names DNS servers); C(ip6=auto) leaves
        the interface to SLAAC; C(ip6=dhcp) is refused; C(manual) leaves the address to the application.
      - The image must have C(ip) (iproute2 or BusyBox) and, for DHCP, C(udhcpc), as commands or a BusyBox binary;
        without them the task fails and builds nothing. A template with O(net) is for containers with exactly those
        interfaces - M(lxcri.proxmox.lxc_container) refuses a container from it whose
        O(lxcri.proxmox.lxc_container#module:net) differs.
      - Refused without the generated init; on 9.1 and later the node configures an app's interfaces itself
        (host-managed), so leave it unset there.
    type: dict
  volumes:
    description:
      - More volume paths than the image's C(VOLUME)s, for the mount points the container will have (absolute
        paths other than C(/)). Each is checked as the image's are, and made a directory in the template when the
        image lacks it, its parents followed through the image's symlinks.
      - A path that the image has as a file, or that passes through one, fails the task and builds nothing.
        Proxmox VE would mount a volume there over nothing it could see, and its template extraction (which
        skips members that exist) would then leave the image's file out of the container.
      - RV(runtime.volumes) lists them with the image's.
    type: list
    elements: str
  lxc_version:
    description:
      - The LXC version that will run the container, which decides how the init command can be quoted.
        LXC 6.0 and later (Proxmox VE 9) keep words in single or double quotes whole; LXC 5.0 splits on
        whitespace only.
      - V(auto) uses the LXC of the node that runs the template. With O(storage), that is O(node)'s LXC, read
        over the API from its C(lxc-pve) package (C(GET /nodes/{node}/apt/versions), which needs C(Sys.Audit) on
        the node) or, without that permission, from its Proxmox VE release (8.0 and 8.1 ship LXC 5.0, 8.2 and later
        LXC 6.0). With O(dest), it is the LXC installed where the module runs (the node), and LXC 5.0's rules when
        there is none. With O(format=oci-archive), LXC 6.0 (only Proxmox VE 9.1 and later import OCI archives).
    type: str
    default: auto
  force:
    description: Rebuild (and re-upload) even when an identical template exists.
    type: bool
    default: false
  require_runnable:
    description:
      - With O(storage), refuse a template that M(lxcri.proxmox.lxc_container) could not run over the API on
        O(node)'s Proxmox VE version (read from C(GET /version), as M(lxcri.proxmox.lxc_container) does), before
        anything is uploaded and in check mode too. The module fails with what to change, and nothing is uploaded.
      - 'Refused are: on Proxmox VE before 9.1, which has no C(entrypoint)/C(env) keys, a V(vztmpl) template
        without O(init_wrapper=always) (set it), and any V(oci-archive) (8.x cannot import one; build V(vztmpl)
        with O(init_wrapper=always)); on 9.1 and later, a V(vztmpl) template without O(init_wrapper=always) whose
        image runs as a user other than root, with supplementary groups, or in a working directory other than
        C(/), which the API cannot set (build O(format=oci-archive) or use O(init_wrapper=always)).'
      - What the options decide is refused before the image is pulled, what the image config decides (working
        directory, numeric user) before the build, and what needs the image's C(/etc/passwd) and C(/etc/group)
        after the build, before the upload. Check mode with the layers not cached cannot see those files, so a user
        name other than C(root) counts as a non-root user there (as M(lxcri.proxmox.lxc_container) takes it), and
        for root, whose supplementary groups only C(/etc/group) tells, the module warns instead.
      - Set V(false) when the template is still the right one, for example when M(lxcri.proxmox.lxc_container)
        will create the containers on the node with O(lxcri.proxmox.lxc_container#module:raw_lxc=true) (it writes
        the C(lxc.init.*) lines itself), or when other nodes sharing the storage run another version.
      - Ignored with O(dest).
    type: bool
    default: true
  keep:
    description:
      - With O(state=present), keep only the newest O(keep) templates of the image's repository in O(dest) or
        O(storage) and remove the older ones (with their sidecars). They are the templates with default names
        of the same repository, any tag and digest, built with the same options, and the same extension. The
        template just built or found always stays. Ages are the storage's C(ctime) (the file's mtime with
        O(dest)).
      - Needs the default O(name). Templates that containers were created from can be removed; containers do
        not need their template once created.
    type: int
extends_documentation_fragment:
  - lxcri.proxmox.registry
  - lxcri.proxmox.image_limits
  - lxcri.proxmox.pve
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Resolves the image (its manifest and config only, when the layers are not cached) and computes the
        name, identity and runtime without writing anything, not even cache directories or lock files.
      - With the layers not cached, RV(runtime) holds what the image config and the options tell; the keys that
        need the layers are null and named in RV(runtime.needs_layers).
  diff_mode:
    support: full
    details: Shows the template's identity (image digest, options, argv, init command) before and after.
  platform:
    platforms: posix
notes:
  - Member names containing C(..) components are refused; absolute member names are taken relative to the
    image root. Symlink targets are kept exactly as the image wrote them, since they are resolved inside
    the container.
  - The template's numeric owners are the container's own (0..65535); Proxmox VE shifts them for
    unprivileged containers at restore time.
seealso:
  - module: lxcri.proxmox.oci_image
"""

EXAMPLES = r"""
- name: Build a template of nginx into the local storage's template directory (on the node)
  lxcri.proxmox.oci_template:
    image: nginx:1.27
    dest: /var/lib/vz/template/cache
  register: nginx_template

- name: Show how the container must be run
  ansible.builtin.debug:
    msg: "{{ nginx_template.runtime.argv }} as {{ nginx_template.runtime.uid }}, init {{ nginx_template.runtime.lxc_init_cmd }}"

- name: Build from an OCI archive with overrides, for LXC 6.0 (Proxmox VE 9)
  lxcri.proxmox.oci_template:
    image: oci-archive:/srv/images/app.tar:2.1
    dest: /var/lib/vz/template/cache
    env:
      APP_MODE: production
    user: app
    lxc_version: "6.0"

- name: Build an OCI archive for Proxmox VE 9.1's importer and upload it to a storage
  lxcri.proxmox.oci_template:
    image: registry.example.com/team/app:2.1
    format: oci-archive
    storage: local
    api_host: pve1.example.com
    api_token_id: root@pam!ansible
    api_token_secret: "{{ vault_pve_token }}"

- name: A plain template for containers that lxc_container creates on the node with raw_lxc (it writes lxc.init.*)
  lxcri.proxmox.oci_template:
    image: registry.example.com/team/app:2.1
    storage: local
    require_runnable: false
    api_host: pve1.example.com
    api_token_id: root@pam!ansible
    api_token_secret: "{{ vault_pve_token }}"

- name: A template whose /sbin/init runs the application, for Proxmox VE 8
  lxcri.proxmox.oci_template:
    image: nginx:1.27
    dest: /var/lib/vz/template/cache
    init_wrapper: always

- name: Debian 12 as a system container template (its own /sbin/init where it has one, else a sleep)
  lxcri.proxmox.oci_template:
    image: debian:12
    init: system
    storage: local
    node: pve1
  register: debian_base

- name: Remove the template again
  lxcri.proxmox.oci_template:
    image: nginx:1.27
    dest: /var/lib/vz/template/cache
    state: absent
"""

RETURN = r"""
image:
  description: The image as resolved, normalised.
  returned: always
  type: str
  sample: docker.io/library/nginx:1.27
name:
  description: The template's name without extension.
  returned: always
  type: str
  sample: nginx_1.27_3b7c9e0a1f2d
filename:
  description: The template's file name.
  returned: when state is present
  type: str
  sample: nginx_1.27_3b7c9e0a1f2d.tar.zst
path:
  description: The template's path (with O(dest)).
  returned: when O(dest) is given
  type: str
  sample: /var/lib/vz/template/cache/nginx_1.27_3b7c9e0a1f2d.tar.zst
sidecar:
  description: The JSON sidecar with the identity and runtime (with O(dest)).
  returned: when O(dest) is given and state is present
  type: str
  sample: /var/lib/vz/template/cache/nginx_1.27_3b7c9e0a1f2d.tar.zst.json
nodes:
  description: With O(nodes), the nodes whose storage has the template (one when the storage is shared).
  returned: when O(nodes) is given
  type: list
  elements: str
  sample: [pve1, pve2, pve3]
shared:
  description: With O(nodes), whether O(storage) is shared (one upload serves every node).
  returned: when O(nodes) is given
  type: bool
uploaded_to:
  description: With O(nodes), the nodes this run uploaded the template to (those that lacked it).
  returned: when O(nodes) is given and the template was uploaded
  type: list
  elements: str
  sample: [pve3]
volid:
  description: The Proxmox VE volume id of the uploaded template (with O(storage)), for C(ostemplate).
  returned: when O(storage) is given and state is present
  type: str
  sample: local:vztmpl/nginx_1.27_3b7c9e0a1f2d.tar.zst
size:
  description: The template's size in bytes (null in check mode when it would be built).
  returned: when state is present
  type: int
  sample: 73400320
sha256:
  description: The template file's sha256 (null in check mode when it would be built).
  returned: when state is present
  type: str
  sample: 8d1e0c4b1b5f0d1c9c6d7b3c5e4f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f
digest:
  description: The image's manifest digest.
  returned: when state is present
  type: str
  sample: sha256:3b7c9e0a1f2d0d1c9c6d7b3c5e4f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f
platform:
  description: The image platform used.
  returned: when state is present
  type: str
  sample: linux/amd64
identity:
  description: A hash of the image digest and every option that shapes the template.
  returned: when state is present
  type: str
  sample: 0f5a3c0c2b0f6e0f0d6a3a0b8c1e2d3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d
format:
  description: The template's format (what V(auto) chose, see O(format)).
  returned: always
  type: str
  sample: oci-archive
format_choice:
  description: With O(format=auto), what it chose and why.
  returned: when state is present and O(format=auto)
  type: str
  sample: "oci-archive: node pve1 imports OCI archives"
init_wrapper:
  description: The init wrapper setting the template was built with (O(init_wrapper), or what O(format=auto) chose).
  returned: when state is present
  type: str
  sample: auto
lxc_version:
  description: The LXC version the init command was encoded for.
  returned: when state is present
  type: str
  sample: "5.0.2"
pruned:
  description: Older templates removed by O(keep) (volids with O(storage), paths with O(dest)).
  returned: when O(keep) is given and state is present
  type: list
  elements: str
  sample: ["local:vztmpl/nginx_1.26_0c1d2e3f4a5b.tar.zst"]
removed:
  description: Files removed (state absent with O(dest)).
  returned: when state is absent
  type: list
  elements: str
runtime:
  description:
    - How to run a container made from the template.
    - In check mode with the image's layers not cached yet, the runtime is what the image config and the options
      tell, without reading the layers. Known then are RV(runtime.argv), RV(runtime.env), RV(runtime.cwd),
      RV(runtime.user), RV(runtime.stop_signal), RV(runtime.volumes), RV(runtime.exposed_ports), RV(runtime.labels),
      RV(runtime.image_digest), RV(runtime.platform), RV(runtime.lxc_init_cmd), RV(runtime.pve_entrypoint),
      RV(runtime.pve_env), RV(runtime.oci_config) and whether a RV(runtime.wrapper) is needed.
    - Null until the layers are read, and listed in RV(runtime.needs_layers), are RV(runtime.uid), RV(runtime.gid)
      and RV(runtime.groups) where the image's C(/etc/passwd) and C(/etc/group) decide them (a user name, a uid
      without a group, supplementary groups; C(uid:gid) is known), RV(runtime.lxc_config) with them, and the
      wrapper's C(drop_tool) and C(written_at) with O(init_wrapper=always). A predicted wrapper is listed too,
      since whether the image has the C(/bin/sh) it needs is only seen in the layers.
  returned: when state is present
  type: dict
  contains:
    argv:
      description: The command the container runs (ENTRYPOINT+CMD after overrides).
      type: list
      elements: str
      sample: ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
    env:
      description: The environment as C(NAME=value) items.
      type: list
      elements: str
      sample: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NGINX_VERSION=1.27.5"]
    cwd:
      description: The working directory.
      type: str
      sample: /
    user:
      description: The user as the image or O(user) gave it.
      type: str
      sample: "101:101"
    uid:
      description: The resolved uid.
      type: int
      sample: 101
    gid:
      description: The resolved gid.
      type: int
      sample: 101
    groups:
      description: Supplementary group ids.
      type: list
      elements: int
      sample: []
    stop_signal:
      description: The signal that stops the application.
      type: str
      sample: SIGQUIT
    volumes:
      description:
        - The image's volumes and those of O(volumes), suggested mount points (their directories exist in the
          template).
      type: list
      elements: str
      sample: ["/var/cache/nginx"]
    exposed_ports:
      description: The image's exposed ports.
      type: list
      elements: str
      sample: ["80/tcp"]
    labels:
      description: The image's labels.
      type: dict
      sample: {"maintainer": "NGINX Docker Maintainers"}
    image_digest:
      description: The manifest digest of the image the template was made from.
      type: str
    platform:
      description: The image platform, as C(os/architecture[/variant]).
      type: str
      sample: linux/amd64
    oci_config:
      description: The Entrypoint and Cmd written into an V(oci-archive)'s config for Proxmox VE's importer.
      type: dict
    init:
      description: With O(init=system), the container's init - V(image) (the image's own C(/sbin/init)) or V(sleep)
        (the generated C(/sbin/init) running a sleep loop); null in check mode before the layers are read.
      type: str
      returned: with O(init=system)
      sample: sleep
    lxc_init_cmd:
      description: The value for C(lxc.init.cmd) that the target LXC splits back into exactly RV(runtime.argv).
      type: str
      sample: /docker-entrypoint.sh nginx -g 'daemon off;'
    pve_entrypoint:
      description:
        - The Proxmox VE 9.1+ C(entrypoint) config value (null with a reason in C(pve_entrypoint_problem) when
          it cannot be expressed).
      type: str
      sample: /docker-entrypoint.sh nginx -g 'daemon off;'
    pve_env:
      description: The Proxmox VE 9.1+ C(env) config value (NUL-separated C(NAME=value)).
      type: str
    lxc_config:
      description:
        - Raw C(lxc.init.cwd), C(lxc.init.uid), C(lxc.init.gid), C(lxc.init.groups), C(lxc.environment) and
          C(lxc.signal.halt) lines, for nodes where the collection writes the container config itself.
      type: list
      elements: str
    wrapper:
      description:
        - The generated script placed in the template (C(kind) V(exec) or V(init), its C(path)), or null.
        - With O(net), C(net_tools) lists the commands it configures the interfaces with (C(ip), C(udhcpc)).
      type: dict
    net:
      description:
        - The interfaces the generated init configures (O(net)), each with C(key) (C(netN)), C(name) and what of
          C(ip), C(gw), C(ip6), C(gw6) is set; null without O(net).
      type: list
      elements: dict
      sample: [{"key": "net0", "name": "eth0", "ip": "dhcp"}]
    pve_entrypoint_problem:
      description: Why RV(runtime.pve_entrypoint) is null, when it is.
      type: str
    pve_env_problem:
      description: Why RV(runtime.pve_env) is null (a name or value Proxmox VE refuses), when it is.
      type: str
    needs_layers:
      description:
        - Only in check mode with the layers not cached; the runtime keys that are null (or, for C(wrapper),
          unverified) until the layers are read, as C(uid), C(gid), C(groups), C(lxc_config), C(wrapper),
          C(wrapper.drop_tool), C(wrapper.written_at), C(wrapper.net_tools). Empty when the config tells everything.
      type: list
      elements: str
      sample: ["gid", "groups", "lxc_config"]
conversion:
  description:
    - What flattening the layers did to the image's members, as counters (null in check mode when the template
      would be built; from the sidecar when the template exists).
  returned: when state is present
  type: dict
  contains:
    passes:
      description:
        - How many times the layers were read and the template written; 2 when the first pass found something the
          restore would get wrong without knowing it earlier (a path given twice in a layer, a directory whose
          entry came after something below it) and wrote the template again.
      type: int
      sample: 1
    members:
      description: Entries written to the template from the image (generated files not included).
      type: int
    bytes:
      description: Regular-file data bytes written from the image.
      type: int
    rereads:
      description: Layers read a second time for a hard link to a file the upper layers hid.
      type: int
    same_path_repeats:
      description:
        - Members that named a path given earlier in the same layer. The later member wins, as with Docker and
          containerd, and the template holds the path once (Proxmox VE's restore would keep the first).
      type: int
    pax_global_headers:
      description: Pax global headers (type C(g)) skipped; containerd and moby ignore them too.
      type: int
    clamped_ids:
      description:
        - Owners (uid or gid) above 65535 written as 65534, the id an unmapped owner shows as; the member loses
          its setuid (setgid) bit with it. An unprivileged container maps 0-65535 only, and its restore fails on
          any other owner. Owners outside 0-4294967294 are refused.
      type: int
    clamped_mtimes:
      description: Modification times outside 0-8589934591 (1970-2242) written as the nearer end.
      type: int
    acl_entries_converted:
      description:
        - POSIX ACL entries naming a user or group (C(user:NAME), C(group:NAME)) written with the id the image's
          own C(/etc/passwd) or C(/etc/group) gives that name. The restore (GNU tar C(--acls)) would look the
          name up in the Proxmox VE host's user database.
      type: int
    acl_entries_dropped:
      description:
        - POSIX ACL entries dropped, an entry naming a user or group the image does not define, with an id above
          65535, an id in another numeric form (octal, hex, signed) or a malformed one.
      type: int
    dropped_members:
      description: Device nodes and the contents of C(/dev), dropped as Proxmox VE's restore drops them.
      type: int
    dropped_xattrs:
      description: Pax records not kept (xattrs other than C(user.*) and C(security.capability), atime, ctime, ...).
      type: int
diff:
  description: Template identity before and after (with C(--diff)).
  returned: when state is present
  type: dict
error_kind:
  description:
    - When the module fails, what kind of error it was (for playbooks that handle failures by kind); kinds are
      the kinds of M(lxcri.proxmox.oci_image), and V(template), V(flatten), V(image_config), V(not_expressible),
      V(lxc_config), V(wrapper), V(prune), and with O(storage) those of the Proxmox VE API (V(config),
      V(connection), V(api), V(task)).
  returned: failed
  type: str
  sample: template
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcri.proxmox.plugins.module_utils.errors import LxcriError, fail_module
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.template import TemplateManager, template_argument_spec
from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.connection import pve_argument_spec


def main():
    spec = template_argument_spec()
    spec.update(pve_argument_spec())
    module = AnsibleModule(
        argument_spec=spec,
        required_one_of=[("dest", "storage")],
        mutually_exclusive=[("dest", "storage")],
        required_together=[("registry_username", "registry_password")],
        required_by={"nodes": "storage"},
        supports_check_mode=True,
    )
    params = dict(module.params)
    env = params["env"]
    if env is not None and not isinstance(env, (dict, list)):
        module.fail_json(msg="env must be a dict or a list of NAME=value, not %s" % type(env).__name__)
    manager = None
    try:
        manager = TemplateManager(params, check_mode=module.check_mode)
        result = manager.run()
    except LxcriError as exc:
        fail_module(module, exc, image=params["image"])
    for warning in manager.warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
