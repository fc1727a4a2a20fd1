# minerguard: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TOOLS_BIN := $(shell hack/tools.sh bindir)
export PATH := $(TOOLS_BIN):$(PATH)
export KUBECONFIG_LOCAL := $(CURDIR)/.cluster/kubeconfig

.PHONY: help venv tools cluster-up cluster-down cluster-status lint typecheck unit e2e test demo bench clean

help:
	@echo "make demo          the local cluster, the operator and a scene of miners being contained"
	@echo "make test          lint, type checks, unit and e2e tests (installs what is missing)"
	@echo "make cluster-up    start the local control plane (.cluster/kubeconfig)"
	@echo "make cluster-down  stop it and remove its state"
	@echo "make bench         benchmarks (not part of the test suite)"

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
	$(VENV)/bin/ruff check operator tests hack bench
	$(VENV)/bin/ruff format --check operator tests

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

bench: venv tools
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
