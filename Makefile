# minerguard: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TOOLS_BIN := $(shell hack/tools.sh bindir)
export PATH := $(TOOLS_BIN):$(PATH)
export KUBECONFIG_LOCAL := $(CURDIR)/.cluster/kubeconfig

.PHONY: help venv tools real-node-tools real-node-tools-bg cluster-up cluster-down cluster-status lint typecheck unit e2e test demo demo-down bench bench-wire bench-soak bench-startup clean manifests lock docs image image-test

help:
	@echo "make demo          the local cluster, the operator and a scene of miners being contained"
	@echo "make test          lint, type checks, unit and e2e tests (installs what is missing)"
	@echo "make cluster-up    start the local control plane (.cluster/kubeconfig)"
	@echo "make cluster-down  stop it and remove its state"
	@echo "make bench         benchmarks (not part of the test suite)"
	@echo "make manifests     render manifests/install.yaml and manifests/policies-audit.yaml from the Helm charts"
	@echo "make image         build the operator image without Docker: dist/minerguard-<version>.{oci,docker}.tar"
	@echo "make image-test    build it and check it against the Dockerfile, then start it against the local cluster"
	@echo "make lock          regenerate requirements.lock (pinned, hashed runtime deps for the image)"
	@echo "make docs          regenerate docs/policy-reference.md from the CRDs"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

venv: $(STAMP)

tools:
	@hack/tools.sh build

# The real node's tools (kubelet, containerd, kube-router, hack/realnode.py): about 20 minutes the
# first time. `make test` builds them in the background while the rest runs; the real-node tests,
# which run last, wait for that build (hack/tools.sh takes a lock), so it is never done twice.
real-node-tools:
	@hack/tools.sh real-node

real-node-tools-bg:
	@if [ "$$(id -u)" = 0 ] && [ "$${MINERGUARD_REAL_NODE:-auto}" != 0 ]; then mkdir -p build; \
	  echo "[tools] building the real node's tools in the background (log: build/real-node-tools.log)"; \
	  nohup hack/tools.sh real-node >build/real-node-tools.log 2>&1 & \
	else echo "[tools] no real node here (needs root; MINERGUARD_REAL_NODE=0 turns it off): KWOK nodes only"; fi

cluster-up: tools
	@$(PYTHON) hack/cluster.py up

cluster-down:
	@$(PYTHON) hack/cluster.py down

cluster-status:
	@$(PYTHON) hack/cluster.py status

lint: venv tools
	$(VENV)/bin/ruff check $(wildcard operator tests hack bench)
	$(VENV)/bin/ruff format --check operator tests
	$(VENV)/bin/lint-imports
	$(TOOLS_BIN)/actionlint -no-color .github/workflows/*.yml

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest -m unit -q

e2e: venv tools
	$(VENV)/bin/pytest -m e2e -q

test: venv tools real-node-tools-bg lint typecheck image
	$(VENV)/bin/pytest -q

# With root (and MINERGUARD_REAL_NODE unset or 1), the demo also runs the real node: its tools and
# the operator image are built first (cached); otherwise it says so and stays KWOK-only.
demo: venv tools
	@if [ "$$(id -u)" = 0 ] && [ "$${MINERGUARD_REAL_NODE:-auto}" != 0 ]; then \
	  hack/tools.sh real-node && $(MAKE) -s image; \
	else echo "[demo] no real node here (needs root; MINERGUARD_REAL_NODE=0 turns it off): KWOK only"; fi
	@$(PY) hack/demo.py

demo-down:
	@-test -f .cluster/pids/demo-operator.pid && kill $$(cat .cluster/pids/demo-operator.pid) 2>/dev/null; true
	@$(PYTHON) hack/cluster.py down

bench: venv tools
	$(PY) bench/run.py $(BENCH_ARGS)

# Quarantine -> first refused packet on the real node (median of --runs; needs root): bench/wire.py.
bench-wire: venv tools real-node-tools image
	$(PY) bench/wire.py $(BENCH_ARGS)

# The exhaustion soak of issue #11 item 12 (bench/soak.py: 10 x 1 MiB pods annotated at 20 Hz, 1,000 pending
# 1 MiB pods, a miner every 15 s for 5 minutes; about 10 minutes in all), on its own cluster.
bench-soak: venv tools
	$(PY) bench/soak.py $(SOAK_ARGS)

# Startup memory over a full cluster (bench/startup.py: 10,000 pods, the operator started on them once per variant).
bench-startup: venv tools
	$(PY) bench/startup.py $(STARTUP_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache

# manifests/install.yaml: the Helm chart rendered for `kubectl apply` (release minerguard in
# minerguard-system, which it creates first; CRDs included; for Kubernetes 1.30+, so with the
# ValidatingAdmissionPolicy; the helm-test Job is left out). The policy pack is
# manifests/policies-audit.yaml, rendered from helm/minerguard-policies (mode Audit).
# tests/e2e/test_chart.py renders both again with INSTALL_YAML=<tmp file>
# POLICIES_YAML=<tmp file> and fails when a committed file differs.
INSTALL_YAML ?= manifests/install.yaml
POLICIES_YAML ?= manifests/policies-audit.yaml
KUBE_VERSION_RENDER := $(shell sed -n "s/^KUBE_VERSION=v//p" hack/versions.env)
HELM_TEMPLATE := $(TOOLS_BIN)/helm template --kube-version $(KUBE_VERSION_RENDER)
manifests: tools
	@{ echo "# minerguard install manifests, rendered from helm/minerguard by 'make manifests': do not edit."; \
	  echo "#   kubectl apply --server-side -f crds/    # the CRDs must be served before the ClusterKopfPeering below"; \
	  echo "#   kubectl apply --server-side -f manifests/install.yaml   # creates the namespace minerguard-system"; \
	  echo "#   kubectl apply --server-side -f manifests/policies-audit.yaml   # the default policy pack, in Audit"; \
	  echo "---"; \
	  echo "apiVersion: v1"; \
	  echo "kind: Namespace"; \
	  echo "metadata:"; \
	  echo "  name: minerguard-system"; \
	  echo "  labels:"; \
	  echo "    app.kubernetes.io/part-of: minerguard"; \
	  echo "    pod-security.kubernetes.io/enforce: restricted"; \
	  $(HELM_TEMPLATE) minerguard helm/minerguard --namespace minerguard-system --set tests.enabled=false \
	    --set peering.create=false \
	    --api-versions admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy 2> >(grep -v 'found symbolic link' >&2); \
	  echo "---"; \
	  echo "# The chart's peering hook, as a plain object (kubectl apply knows no hooks)."; \
	  echo "apiVersion: kopf.dev/v1"; \
	  echo "kind: ClusterKopfPeering"; \
	  echo "metadata:"; \
	  echo "  name: minerguard"; \
	  echo "  labels:"; \
	  echo "    app.kubernetes.io/part-of: minerguard"; } > $(INSTALL_YAML).tmp
	@mv $(INSTALL_YAML).tmp $(INSTALL_YAML)
	@{ echo "# The default policy pack in mode Audit, rendered from helm/minerguard-policies by 'make manifests': do not edit."; \
	  echo "# Enforce: kubectl apply -f manifests/policies/ (the pack as written)."; \
	  $(HELM_TEMPLATE) minerguard-policies helm/minerguard-policies --namespace minerguard-system \
	    2> >(grep -v 'found symbolic link' >&2); } > $(POLICIES_YAML).tmp
	@mv $(POLICIES_YAML).tmp $(POLICIES_YAML)

# The operator image without Docker (hack/image.py): mmdebstrap, umoci and skopeo, Debian
# packages that `hack/tools.sh image-tools` installs. Writes dist/minerguard-<version>.oci.tar
# and dist/minerguard-<version>.docker.tar, tagged with the chart's default image.
# Rebuilt only when one of its inputs changed.
IMAGE_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_ARCHIVE := dist/minerguard-$(IMAGE_VERSION).docker.tar
IMAGE_INPUTS := Dockerfile requirements.lock pyproject.toml README.md hack/image.py helm/minerguard/Chart.yaml \
  helm/minerguard/values.yaml $(shell find operator -name '*.py' -not -path '*/__pycache__/*') \
  $(wildcard manifests/policies/*.yaml)
image: $(IMAGE_ARCHIVE)
$(IMAGE_ARCHIVE): $(IMAGE_INPUTS)
	@hack/tools.sh image-tools
	$(PYTHON) hack/image.py build

# The built image against the Dockerfile (entrypoint, user, labels, Python packages and
# versions), and the operator started from its root filesystem against the local cluster.
image-test: venv tools image
	$(VENV)/bin/pytest -q tests/e2e/test_image.py

# requirements.lock: the runtime dependencies of pyproject.toml, pinned with hashes for
# the image (Dockerfile), resolved for CPython 3.11 like the image's python:3.11-slim.
PIP_TOOLS_VERSION ?= 7.6.2
LOCK_VENV := build/lock-venv
lock:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "make lock needs CPython 3.11 (the image runs python:3.11)")'
	@test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install -q pip-tools==$(PIP_TOOLS_VERSION); }
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	  --output-file requirements.lock pyproject.toml
	@sed -i '1i # requirements.lock: minerguard'"'"'s runtime dependencies, pinned with hashes, for the image (Dockerfile).' requirements.lock

# docs/policy-reference.md: every MinerPolicy and MinerIncident field, generated from crds/.
docs: venv
	$(PY) hack/gen_policy_reference.py
