# One task runner for people and CI. Every target bootstraps .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-core test-integration lint format typecheck bench chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/stream demo

test: $(STAMP)
	$(BIN)/ruff check stream tests chaos bench
	$(BIN)/ruff format --check stream tests chaos bench
	$(BIN)/mypy
	$(BIN)/pytest

test-core: $(STAMP)
	$(BIN)/pytest tests/core

test-integration: $(STAMP)
	$(BIN)/pytest tests/integration

lint: $(STAMP)
	$(BIN)/ruff check stream tests chaos bench
	$(BIN)/ruff format --check stream tests chaos bench

format: $(STAMP)
	$(BIN)/ruff format stream tests chaos bench
	$(BIN)/ruff check --fix stream tests chaos bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.throughput

# Every fault scenario at full size (>= 200k calls, 1k accounts each), one table
# at the end (and chaos-results.json). Takes a while; `make test` runs short ones.
chaos: $(STAMP)
	$(BIN)/python -m chaos

clean:
	rm -rf $(VENV) data .demo .pytest_cache .mypy_cache .ruff_cache chaos-results.json

# Deployment files: promtool checks and rule tests, docker-compose config,
# settings consistency, and every dashboard/rule query against a live worker
# scraped by a real Prometheus (installs Debian's prometheus and docker-compose
# packages when missing; needs root for that).
.PHONY: deploy-check
deploy-check: $(STAMP)
	$(BIN)/ruff check tests/deploy
	$(BIN)/pytest tests/deploy
