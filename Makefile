# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export PREFECT_SERVER_ANALYTICS_ENABLED := false
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)

.DEFAULT_GOAL := help
.PHONY: help setup browser demo test test-all lint format bench bench-1m clean

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

setup: ## install uv (if missing) and the locked environment into .venv
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

browser: ## install Debian chromium for the browser tests (if missing)
	@test -x /usr/bin/chromium || { (apt-get update -qq || sudo apt-get update -qq) && \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || \
	   sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); }

demo: setup ## run the main job end to end on the embedded synthetic operator
	$(UV) run --frozen churn demo

test: setup browser ## run the test suite (what CI runs)
	$(UV) run --frozen pytest -q -m "not slow" --durations=20

test-all: setup browser ## run every test, slow ones included
	$(UV) run --frozen pytest -q

lint: setup ## ruff check, ruff format --check, import contracts, dependency audit
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen lint-imports
	$(UV) run --frozen pip-audit --progress-spinner off --skip-editable -l || echo "pip-audit: could not complete (offline index?)"

format: setup ## ruff format and fix
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

bench: setup ## benchmarks at 10k and 100k customers (results in benchmarks/results/)
	$(UV) run --frozen python -m benchmarks.run --sizes 10000 100000

bench-1m: setup ## benchmarks at 1M customers
	$(UV) run --frozen python -m benchmarks.run --sizes 1000000

clean: ## remove the default work directory and caches
	rm -rf .churn .pytest_cache .ruff_cache test-output
