# mlstack: the two commands a fresh machine needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := prometheus prometheus-pushgateway chromium wrk postgresql

# No tool phones home: not from these machines, not from yours.
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1
export EVIDENTLY_DISABLE_TELEMETRY := 1
export UV_PYTHON_DOWNLOADS := never

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.PHONY: uv
uv: ## install uv if it is not there
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --user --quiet uv || python3 -m pip install --quiet uv

# --compile-bytecode: every process (each dvc stage, each bentoml worker, each drift run)
# then reads cached .pyc instead of compiling mlflow's, evidently's and sklearn's sources
# again, which it would do at every start where PYTHONDONTWRITEBYTECODE is set (it is on
# the CI machines): ~20 s of a 50 s drift run. The first install compiles for ~1 minute,
# later ones check in seconds.
.PHONY: install
install: uv ## install the locked Python environment into .venv
	$(UV) sync --locked --compile-bytecode

.PHONY: system-deps
system-deps: ## Debian packages the tests and the demo use: Prometheus, Pushgateway, Chromium, wrk, PostgreSQL
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

.PHONY: demo
demo: install ## the whole loop: train, serve, replay, judge drift (no drift, then drift)
	$(UV) run python -m mlstack.demo

# Two pytest workers (pytest-xdist), each test file on one worker: its module fixtures
# (a served project, the team stack) are built once. Half the suite's time is spent waiting
# on servers and subprocesses, so two workers fill the two cores; TEST_WORKERS=0 runs it in
# one process.
TEST_WORKERS ?= 2
.PHONY: test
test: install system-deps ## run the whole test suite, real servers included
	$(UV) run pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: lint
lint: install ## ruff and mypy, both must be clean
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

.PHONY: deploy-check
deploy-check: install system-deps ## render every kustomization and validate every deploy, CI and dev file
	$(UV) run mlstack deploy check

.PHONY: repro
repro: install ## run the DVC pipeline: prepare, train, evaluate, promote, package
	$(UV) run dvc repro

.PHONY: bench
bench: install system-deps ## benchmarks (after dvc repro): serving, drift job, pipeline, team stack
	$(UV) run python -m bench.serving
	$(UV) run python -m bench.capture
	$(UV) run python -m bench.drift
	$(UV) run python -m bench.pipeline
	$(UV) run python -m bench.team
