# lxcri.proxmox: the main job (make demo) and the tests (make test).
# Run as root on Debian 12/13 or a Proxmox VE node; both install what they need.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
CACHE := $(abspath .cache)
COLLECTIONS := $(CACHE)/ansible/collections
DIST := $(abspath build)
# ansible-test wants the tree at .../ansible_collections/lxcri/proxmox and
# outside this git checkout (inside it, it would list files through git).
SANITY_ROOT ?= $(or $(TMPDIR),/tmp)/lxcri-sanity
SANITY_TREE := $(SANITY_ROOT)/ansible_collections/lxcri/proxmox
PYTEST_ARGS ?=
# pytest-xdist workers for the integration stage: its tests mostly wait on LXC, zfs-fuse and registries, so
# four workers on two cores overlap the waits (a clean-clone CI: 11:29 for integration with four, 11:51 with three
# and one test fewer). --dist worksteal: each worker gets a run of consecutive tests, the long ones (marked slow)
# at their front (tests/conftest.py spread_slow), and an idle worker takes from the end of the longest queue.
INTEGRATION_WORKERS ?= 4

export PATH := $(BIN):$(PATH)
export ANSIBLE_NOCOLOR := 1
export NO_COLOR := 1

.PHONY: help test demo demo-cluster deps testbed-up testbed-down testbed-status build install-collection \
        sanity unit integration molecule bed-stages side-stages clean ee-context bench openzfs pve-double
.PHONY: packaging matrix changelog

help:
	@echo "make demo              the main job: deploy an OCI app as a container, upgrade it, roll back a broken version"
	@echo "make demo-cluster      placement (node: auto) and migration on a three-node cluster of the API double"
	@echo "make test              install everything, then run the sanity, unit, packaging, integration and molecule stages"
	@echo "make deps              the virtualenv ($(VENV)) with requirements-dev.txt"
	@echo "make testbed-up        install and start the real test components (LXC, zfs-fuse pool, registries)"
	@echo "make testbed-down      stop them"
	@echo "make testbed-status    what runs of the test bed"
	@echo "make build             the collection tarball in build/"
	@echo "make install-collection  build it and install it into .cache/ansible/collections"
	@echo "make sanity            ansible-test sanity on the venv's ansible-core"
	@echo "make unit              the unit tests (tests/unit)"
	@echo "make packaging         the packaging tests (tests/packaging): metadata, changelog, EE context, make help"
	@echo "make integration       the integration tests against the test bed and the API double"
	@echo "make molecule          the role scenarios (molecule/)"
	@echo "make bed-stages        integration, and beside it unit, packaging and molecule (make test runs sanity beside them)"
	@echo "make side-stages       unit, packaging and molecule one after the other"
	@echo "make matrix            sanity and unit tests on every ansible-core in requires_ansible (tests/matrix)"
	@echo "make changelog         CHANGELOG.rst from changelogs/ (antsibull-changelog), after a lint"
	@echo "make ee-context        the build context of the AWX / AAP execution environment (.cache/ee-context)"
	@echo "make bench             benchmarks against peers (bench/pull, zfs, convert, runtime, pve)"
	@echo "make openzfs           both ZFS drivers on a real OpenZFS host (LXCRI_OPENZFS_POOL=<scratch pool>)"
	@echo "make pve-double        the Proxmox VE API test double in the foreground"
	@echo "make clean             remove .cache, build/ and the sanity tree"
	@echo "make help              this list"

# ---------------------------------------------------------------------------
# installation

deps: $(VENV)/.deps

$(VENV)/.deps: requirements.txt requirements-dev.txt
	@if ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then \
	  echo "installing python3-venv"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; \
	fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	@touch $@

testbed-up: deps
	cd tests && $(BIN)/python -m lxcri_testbed up > /dev/null
	@cd tests && $(BIN)/python -m lxcri_testbed status | sed -n 1,40p

testbed-down:
	@if [ -x $(BIN)/python ]; then cd tests && $(BIN)/python -m lxcri_testbed down; fi

testbed-status:
	@cd tests && $(BIN)/python -m lxcri_testbed status

build: deps
	@mkdir -p $(DIST)
	$(BIN)/ansible-galaxy collection build --force --output-path $(DIST) .

install-collection: build
	ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS) $(BIN)/ansible-galaxy collection install --force -p $(COLLECTIONS) $(DIST)/lxcri-proxmox-$$(awk '/^version:/{print $$2}' galaxy.yml).tar.gz

# ---------------------------------------------------------------------------
# the main job

# The embedded default: the test bed (registry, zfs-fuse pool, LXC) and the Proxmox VE API double.
# tests/lxcri_testbed/demo.py runs playbooks/deploy_app.yml (deploy, upgrade, broken version rolled
# back) and playbooks/rollback_app.yml, then cleans up. DEMO_ARGS=--keep leaves it running.
DEMO_ARGS ?=
demo: testbed-up install-collection
	cd tests && ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS) ANSIBLE_LOCALHOST_WARNING=false \
	ANSIBLE_INVENTORY_UNPARSED_WARNING=false \
	  $(BIN)/python -m lxcri_testbed.demo $(DEMO_ARGS)

# Placement and migration on a three-node cluster of the double (pve3 runs 8); make demo stays single-node.
demo-cluster: testbed-up install-collection
	cd tests && ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS) ANSIBLE_LOCALHOST_WARNING=false \
	ANSIBLE_INVENTORY_UNPARSED_WARNING=false \
	  $(BIN)/python -m lxcri_testbed.demo_cluster $(DEMO_ARGS)

# ---------------------------------------------------------------------------
# tests

# sanity needs no test bed and is mostly CPU; the other stages mostly wait on LXC, zfs-fuse and the registries.
# So sanity runs beside them (make -j2; -O prints each one's output whole when it ends).  Integration, the
# longest, starts at once; unit, packaging and molecule run one after the other beside it.  Integration and
# molecule share the test bed's pool, registries and LXC but nothing of each other's (molecule's double listens
# on 18107 and keeps its own directory, dataset and image repository; the README's first playbook, an
# integration test, has 18106).
test: deps testbed-up
	$(MAKE) --no-print-directory -j2 -O sanity bed-stages
	@echo "make test: all stages passed"

bed-stages: deps testbed-up
	$(MAKE) --no-print-directory -j2 -O integration side-stages

side-stages: deps testbed-up
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory packaging
	$(MAKE) --no-print-directory molecule

sanity: deps
	$(BIN)/python tests/sanity/pip_bootstrap.py
	rm -rf $(SANITY_ROOT)
	mkdir -p $(SANITY_TREE)
	git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C $(SANITY_TREE)
	cd $(SANITY_TREE) && $(BIN)/ansible-test sanity --color no \
	  --python $$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')

unit: deps
	$(BIN)/pytest -n 2 tests/unit $(PYTEST_ARGS)

# Packaging: galaxy.yml and meta/runtime.yml, requirements, changelog lint, the EE context, make help.
packaging: deps
	$(BIN)/pytest tests/packaging $(PYTEST_ARGS)

# The version matrix (tests/matrix/run.py): sanity and unit on each ansible-core from requires_ansible up to
# the newest release, each in its own venv under .cache/matrix on a Python it supports. About 6-8 minutes
# per line on 2 cores, too slow for `make test`, which runs sanity and unit on requirements-dev.txt's one.
MATRIX_ARGS ?=
matrix: deps
	$(BIN)/python tests/matrix/run.py $(MATRIX_ARGS)

changelog: deps
	$(BIN)/antsibull-changelog lint
	$(BIN)/antsibull-changelog generate

integration: deps testbed-up
	$(BIN)/pytest -n $(INTEGRATION_WORKERS) --dist worksteal --durations=15 tests/integration $(PYTEST_ARGS)

# MOLECULE_GLOB names the scenario root the project's layout asks for (molecule/ at the top), so molecule
# does not warn that collection scenarios belong in extensions/molecule; `reset` drops state that an earlier
# run on this machine left (molecule warns when a scenario changed since then).
molecule: deps testbed-up install-collection
	MOLECULE_GLOB='molecule/*/molecule.yml' LXCRI_COLLECTIONS_PATH=$(COLLECTIONS) \
	LXCRI_LIBCRUN_PATHS=$$(ls /var/lib/lxcri-testbed/libcrun/*/lib/libcrun.so.0 | head -1) \
	  sh -c '$(BIN)/molecule reset --all > /dev/null && $(BIN)/molecule test --all'

# Benchmarks print ratios against a peer measured in the same run.
bench: testbed-up
	@command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
	$(BIN)/python bench/pull/run.py
	$(BIN)/python bench/zfs/run.py
	$(BIN)/python bench/convert/run.py
	$(BIN)/python bench/runtime/run.py
	$(BIN)/python bench/runtime/unit.py
	$(BIN)/python bench/pve/run.py
	$(BIN)/python bench/molecule/run.py

clean:
	rm -rf $(CACHE) $(DIST) $(SANITY_ROOT) .pytest_cache

# Build context for an AWX / AAP execution environment (podman/docker not needed here).
ee-context: build
	cp $(DIST)/lxcri-proxmox-$$(awk '/^version:/{print $$2}' galaxy.yml).tar.gz $(DIST)/lxcri-proxmox.tar.gz
	$(BIN)/ansible-builder create -f execution-environment.yml -c $(CACHE)/ee-context

# Opt-in: both ZFS drivers on a real OpenZFS host (LXCRI_OPENZFS_POOL=<scratch pool>).
openzfs: deps
	$(BIN)/pytest -m openzfs tests/openzfs $(PYTEST_ARGS)

# The Proxmox VE API test double in the foreground (tests/pve_double; the README says how playbooks reach it).
PVE_DOUBLE_PORT ?= 8006
PVE_DOUBLE_MODE ?= 9.1
PVE_DOUBLE_USER ?= root@pam
PVE_DOUBLE_PASSWORD ?= lxcri-double
pve-double: deps
	cd tests && $(BIN)/python -m pve_double --port $(PVE_DOUBLE_PORT) --mode $(PVE_DOUBLE_MODE) \
	  --user $(PVE_DOUBLE_USER) --password $(PVE_DOUBLE_PASSWORD)
