# One entry point for people and CI. `make test` is what .ci/run calls.
SHELL := /bin/bash
# Independent prerequisites build side by side: one's downloads overlap another's compiling
# (`make test` and `make demo` cold, docs/testbed.md).
MAKEFLAGS += --jobs=2
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")

.PHONY: preflight setup kubebin nodebin images demo lint test crds

preflight:  ## One line saying what this machine lacks (root, a kernel feature, a toolchain, disk) before any build starts.
	@$(PYTHON) operator/quantfleet/testbed/preflight.py

# The goals that start a real node check the machine first: the builds wait for the check.
ifneq ($(filter demo test,$(MAKECMDGOALS)),)
setup kubebin nodebin: | preflight
endif

setup:  ## Install uv, the locked environment (.venv) with the Job programs' libraries, and the serving one (serving/.venv: vLLM's CPU build).
	@command -v uv >/dev/null || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install -q "uv==$(UV_VERSION)"
	$(UV) sync --frozen --all-extras
	$(UV) sync --frozen --project serving

kubebin:  ## Build kube-apiserver, controller-manager, scheduler, etcd, kubectl, kubelet, kube-proxy and kwok into bin/.
	tools/kubebin/build.sh

nodebin:  ## The real node (issue 13): Debian packages (apt.sh, root), then runc, containerd, CNI plugins, CoreDNS and pause into bin/.
	tools/nodebin/apt.sh
	tools/nodebin/build.sh

images: setup nodebin  ## Build the operator, jobs and vllm-cpu images with buildah (no Docker, no registry) into OCI archives; a cache hit builds nothing (docs/images.md).
	tools/images/build.sh

demo: setup kubebin images  ## The main job: local control plane, the simulated GPU fleet and the real CPU node; CRDs, samples, placements, the REAL row.
	$(UV) run quantfleet demo --real-node

lint: setup  ## ruff, mypy --strict, the layer contract, and CRD drift.
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run lint-imports
	$(UV) run quantfleet crds --check

test: setup kubebin nodebin images lint  ## Everything CI runs: lint, unit, Job programs, integration on the real control plane, the real node.
	$(UV) run pytest

crds: setup  ## Regenerate crds/ from the API models.
	$(UV) run quantfleet crds
