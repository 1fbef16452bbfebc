"""The sample application of ``make demo`` and the oci_app scenarios, built on the spot.

A busybox HTTP server image in three versions, pushed to the test bed's open
registry: ``1`` and ``2`` serve a page naming their version on port 8080 as
the unprivileged user ``www`` from WORKDIR /srv/www; ``3-broken`` starts but
never serves (its health check fails, so a deployment must roll back).  The
ENTRYPOINT is ``/bin/sh -c <script with quotes, spaces and $VARS> webapp``,
so a container that runs it proves the exact argv, env, cwd and uid.

    python -m lxcri_testbed.app_images [--registry HOST:PORT] [--repository NAME]

prints the three references as JSON.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from .oci_build import Layer, with_setpriv, write_image

REPOSITORY = "lxcri-demo/webapp"
PORT = 8080
SERVE = ('echo "webapp $APP_VERSION: serving $PWD on port $PORT as $(id -u)"; '
         'exec httpd -f -v -p "$PORT" -h .')
BROKEN = 'echo "webapp $APP_VERSION: configuration missing, not serving"; exec sleep 100000'
VERSIONS = {"1": SERVE, "2": SERVE, "3-broken": BROKEN}


def page(version):
    return "Hello from webapp version %s\n" % version


APPLETS = ("sh", "httpd", "wget", "id", "echo", "sleep", "cat", "ls")


# The stateful variant (``stateful=True``): VOLUME /data (owned by www, with a seed file), and every start counts
# itself in /data/count, as the app's user, before it serves (or, broken, does not).
COUNT = 'n=$(cat /data/count 2>/dev/null || echo 0); echo $((n + 1)) > /data/count || exit 1; '


def image_layer(version, applets=APPLETS, stateful=False):
    # util-linux setpriv (with its libraries) lets a Proxmox VE 8 template's generated init switch to www
    layer = (Layer().dir("bin").dir("tmp", mode=0o1777).dir("etc").dir("sbin").dir("srv")
             .busybox(applets)
             .file("etc/passwd", "root:x:0:0::/root:/bin/sh\nwww:x:1000:1000::/srv/www:/bin/sh\n")
             .file("etc/group", "root:x:0:\nwww:x:1000:\n")
             .dir("srv/www", uid=1000, gid=1000)
             .file("srv/www/index.html", page(version), uid=1000, gid=1000))
    if stateful:
        layer = layer.dir("data", uid=1000, gid=1000, mode=0o750).file("data/seed", "seed\n", uid=1000, gid=1000)
    return with_setpriv(layer)


def build(layout, version, applets=APPLETS, stateful=False):
    config = {"Entrypoint": ["/bin/sh", "-c", (COUNT if stateful else "") + VERSIONS[version], "webapp"],
              "Env": ["PATH=/bin:/sbin", "APP_VERSION=%s" % version, "PORT=%d" % PORT],
              "WorkingDir": "/srv/www", "User": "www", "ExposedPorts": {"%d/tcp" % PORT: {}},
              "StopSignal": "SIGTERM"}
    if stateful:
        config["Volumes"] = {"/data": {}}
    write_image(layout, version, [image_layer(version, applets, stateful)], config)


def push(registry, repository=REPOSITORY, versions=tuple(VERSIONS), applets=APPLETS, stateful=False):
    """Build and push the versions (BusyBox with ``applets`` linked in /bin; ``stateful``: with VOLUME /data and a
    start counter in it); returns {version: reference}."""
    refs = {}
    with tempfile.TemporaryDirectory(prefix="lxcri-app-") as tmp:
        layout = os.path.join(tmp, "layout")
        for version in versions:
            build(layout, version, applets, stateful)
            ref = "%s/%s:%s" % (registry, repository, version)
            subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:%s:%s" % (layout, version),
                            "docker://" + ref], check=True)
            refs[version] = ref
    return refs


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m lxcri_testbed.app_images")
    parser.add_argument("--registry", help="HOST:PORT (default: the test bed's open registry)")
    parser.add_argument("--repository", default=REPOSITORY)
    args = parser.parse_args(argv)
    registry = args.registry
    if not registry:
        from .bed import load_state  # pylint: disable=import-outside-toplevel
        state = load_state()
        if state is None:
            raise SystemExit("the test bed is not up: make testbed-up")
        registry = state["registry"]["host"]
    print(json.dumps(push(registry, args.repository), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
