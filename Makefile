# remit — `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export REMIT_DATA_DIR ?= data
export REMIT_HOST ?= 127.0.0.1
export REMIT_PORT ?= 8000

.PHONY: help install run test test-sqlite test-postgres lint bench migrations-check clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the locked dependencies

run: $(STAMP) ## migrate the SQLite database in $REMIT_DATA_DIR, load the demo tenant if empty, serve
	$(BIN)/remit serve --demo

# Two workers (the machine's two cores), a test file per worker at a time.
PYTEST = $(BIN)/python -m pytest -q -n 2 --dist loadfile

test: $(STAMP) ## run the whole suite (SQLite; REMIT_TEST_DATABASE_URL=postgres for PostgreSQL)
	$(PYTEST)

test-postgres: $(STAMP) ## the suite on the local PostgreSQL (database `test`)
	REMIT_TEST_DATABASE_URL=postgres $(PYTEST)

lint: $(STAMP) ## ruff, formatting, mypy --strict and the import-linter contracts (pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict src
	$(BIN)/lint-imports --no-cache

migrations-check: $(STAMP) ## one head; upgrade, check, downgrade -1, upgrade on $REMIT_DATABASE_URL
	bash scripts/check-migrations.sh

bench: $(STAMP) ## run the benchmarks (BENCH_QUICK=1 for a smoke run)
	$(BIN)/python -m bench

lock: ## re-resolve requirements.lock from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra dev -o requirements.lock --python $(BIN)/python

clean: ## remove the virtualenv and caches (not the data directory)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
