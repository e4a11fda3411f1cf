# One task runner for people and CI. Every target bootstraps .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Written by setup.py once the core is compiled (mypyc): the digests of its sources.
CORE := stream/_core_sources.py

.PHONY: demo test test-core test-integration lint format typecheck bench chaos clean core clean-core

# The editable install leaves the core to the next rule, so that it is compiled once.
$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	STREAM_COMPILE_CORE=0 $(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The core compiled in place (setup.py), again whenever one of its sources
# changes (`import stream` refuses a stale one).
$(CORE): $(wildcard stream/core/*.py) setup.py | $(STAMP)
	$(BIN)/python setup.py --quiet build_ext --inplace

core: $(CORE)

clean-core:
	rm -rf build $(CORE) stream/core/*.so

demo: $(CORE)
	$(BIN)/stream demo

test: $(CORE)
	$(BIN)/ruff check stream tests chaos bench
	$(BIN)/ruff format --check stream tests chaos bench
	$(BIN)/mypy
	$(BIN)/pytest
	STREAM_PURE_PYTHON=1 $(BIN)/pytest -q tests/core

test-core: $(CORE)
	$(BIN)/pytest tests/core
	STREAM_PURE_PYTHON=1 $(BIN)/pytest -q tests/core

test-integration: $(CORE)
	$(BIN)/pytest tests/integration

lint: $(STAMP)
	$(BIN)/ruff check stream tests chaos bench
	$(BIN)/ruff format --check stream tests chaos bench

format: $(STAMP)
	$(BIN)/ruff format stream tests chaos bench
	$(BIN)/ruff check --fix stream tests chaos bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(CORE)
	$(BIN)/python -m bench.throughput --runs 3

# Every fault scenario at full size (>= 200k calls, 1k accounts each), one table
# at the end (and chaos-results.json). Takes a while; `make test` runs short ones.
chaos: $(CORE)
	$(BIN)/python -m chaos

clean: clean-core
	rm -rf $(VENV) data .demo .pytest_cache .mypy_cache .ruff_cache chaos-results.json

# Deployment files: promtool checks and rule tests, docker-compose config,
# settings consistency, and every dashboard/rule query against a live worker
# scraped by a real Prometheus (installs Debian's prometheus and docker-compose
# packages when missing; needs root for that).
.PHONY: deploy-check
deploy-check: $(CORE)
	$(BIN)/ruff check tests/deploy
	$(BIN)/pytest tests/deploy
