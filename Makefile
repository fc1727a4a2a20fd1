# minerguard: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TOOLS_BIN := $(shell hack/tools.sh bindir)
export PATH := $(TOOLS_BIN):$(PATH)
export KUBECONFIG_LOCAL := $(CURDIR)/.cluster/kubeconfig

.PHONY: help venv tools cluster-up cluster-down cluster-status lint typecheck unit e2e test demo demo-down bench clean manifests lock docs

help:
	@echo "make demo          the local cluster, the operator and a scene of miners being contained"
	@echo "make test          lint, type checks, unit and e2e tests (installs what is missing)"
	@echo "make cluster-up    start the local control plane (.cluster/kubeconfig)"
	@echo "make cluster-down  stop it and remove its state"
	@echo "make bench         benchmarks (not part of the test suite)"
	@echo "make manifests     render manifests/install.yaml from the Helm chart"
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

cluster-up: tools
	@$(PYTHON) hack/cluster.py up

cluster-down:
	@$(PYTHON) hack/cluster.py down

cluster-status:
	@$(PYTHON) hack/cluster.py status

lint: venv
	$(VENV)/bin/ruff check $(wildcard operator tests hack bench)
	$(VENV)/bin/ruff format --check operator tests
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest -m unit -q

e2e: venv tools
	$(VENV)/bin/pytest -m e2e -q

test: venv tools lint typecheck
	$(VENV)/bin/pytest -q

demo: venv tools
	@$(PY) hack/demo.py

demo-down:
	@-test -f .cluster/pids/demo-operator.pid && kill $$(cat .cluster/pids/demo-operator.pid) 2>/dev/null; true
	@$(PYTHON) hack/cluster.py down

bench: venv tools
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache

# manifests/install.yaml: the Helm chart rendered for `kubectl apply` (release minerguard in
# minerguard-system, CRDs included; the policy pack is applied separately from
# manifests/policies/, and the helm-test Job is left out). tests/e2e/test_chart.py renders
# it again with INSTALL_YAML=<tmp file> and fails when the committed file differs.
INSTALL_YAML ?= manifests/install.yaml
manifests: tools
	@{ echo "# minerguard install manifests, rendered from helm/minerguard by 'make manifests': do not edit."; \
	  echo "#   kubectl create namespace minerguard-system"; \
	  echo "#   kubectl apply --server-side -f crds/    # the CRDs must be served before the ClusterKopfPeering below"; \
	  echo "#   kubectl apply --server-side -f manifests/install.yaml"; \
	  echo "#   kubectl apply -f manifests/policies/    # the default policy pack"; \
	  $(TOOLS_BIN)/helm template minerguard helm/minerguard --namespace minerguard-system \
	    --set policies.installDefaultPack=false --set tests.enabled=false \
	    --api-versions kopf.dev/v1/ClusterKopfPeering 2> >(grep -v 'found symbolic link' >&2); } > $(INSTALL_YAML).tmp
	@mv $(INSTALL_YAML).tmp $(INSTALL_YAML)

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
