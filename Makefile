# Workspace — the two commands are `make run` and `make test`; everything else is a step they use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# A Python 3.11+ interpreter (pyenv's has tkinter, which the desktop apps need).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf
STAMP := $(VENV)/.installed

.PHONY: help venv tools run serve migrate test lint generate check-generated buf-lint buf-breaking bench clean vendor-protos

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; set PYTHON=/path/to/python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(STAMP) ## create .venv and install the pinned packages

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

tools: $(STAMP) node_modules/.installed ## install Python and npm tooling (buf)

run: $(STAMP) ## apply migrations, run the server (SQLite default) and the Envoy gateway until Ctrl-C
	$(PY) -m server migrate
	$(PY) -m gateway run

serve: $(STAMP) ## run the server alone, without the gateway
	$(PY) -m server migrate
	$(PY) -m server serve

migrate: $(STAMP) ## apply database migrations to WORKSPACE_DATABASE_URL
	$(PY) -m server migrate

test: tools ## run the whole suite (SQLite and PostgreSQL), lint included
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint: tools ## ruff, buf lint, and buf breaking against main
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(BUF) lint
	@if git rev-parse --verify -q main >/dev/null; then $(BUF) breaking --against '.git#branch=main'; \
	 else echo "buf breaking: no local main branch to compare with, skipped"; fi

generate: tools ## regenerate generated/ from protos/
	$(PY) scripts/generate.py

buf-breaking: tools ## compare protos/ with main for breaking changes
	$(BUF) breaking --against '.git#branch=main'

bench: $(STAMP) ## run the benchmarks on SQLite (print figures, assert nothing; see docs/PERFORMANCE.md)
	$(PY) bench/unary.py
	$(PY) bench/storage.py
	$(PY) bench/fanout.py
	$(PY) bench/hundred.py
	$(PY) bench/gateway.py
	$(PY) bench/stats.py

vendor-protos: $(STAMP) ## copy the googleapis protos we import from the pinned package
	$(PY) scripts/vendor_protos.py

clean: ## remove the virtual environment, node_modules and local data
	rm -rf $(VENV) node_modules data .pytest_cache
