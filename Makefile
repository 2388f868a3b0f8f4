# Workspace — the two commands are `make run` and `make test`; everything else is a step they use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# A Python 3.11+ interpreter (pyenv's has tkinter, which the desktop apps need).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf
STAMP := $(VENV)/.installed

.PHONY: help venv tools system run serve dashboard desktop migrate test lint generate check-generated buf-lint buf-breaking bench clean vendor-protos

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

# Debian packages the tests need beyond Python and Node, each as package:program (the program tells whether it is
# installed): Xvfb, the virtual screen the desktop apps are tested on, and PgBouncer, the connection pooler
# tests/test_pgbouncer.py runs the server behind. pgbouncer lives in /usr/sbin, off a non-root PATH: looked for there too.
SYSTEM_PACKAGES := xvfb:Xvfb pgbouncer:pgbouncer
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
system: ## install the Debian packages the tests need (Xvfb, PgBouncer), when they are missing
	@missing=; for pair in $(SYSTEM_PACKAGES); do program=$${pair#*:}; \
	  command -v $$program >/dev/null || test -x /usr/sbin/$$program || missing="$$missing $${pair%%:*}"; done; \
	  test -z "$$missing" || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; }

run: $(STAMP) ## apply migrations, run the server (SQLite default) and the Envoy gateway until Ctrl-C
	$(PY) -m server migrate
	$(PY) -m gateway run

serve: $(STAMP) ## run the server alone, without the gateway
	$(PY) -m server migrate
	$(PY) -m server serve

dashboard: $(STAMP) ## open the monitoring dashboard (administrators; --address via WORKSPACE_DASHBOARD_ADDRESS)
	$(PY) -m dashboard

desktop: $(STAMP) ## open the desktop app: chat, agenda, shortcuts, lots (--address via WORKSPACE_DESKTOP_ADDRESS)
	$(PY) -m desktop

migrate: $(STAMP) ## apply database migrations to WORKSPACE_DATABASE_URL
	$(PY) -m server migrate

# Test processes: each has its own servers (SQLite file, PostgreSQL schema) and ports; most of a test's time is
# spent waiting on servers, so two workers halve the wall time even on two cores. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
# Line and branch coverage of server/ under which `make test` fails (COVERAGE_FLOOR=0 when running a subset).
COVERAGE_FLOOR ?= 85
test: tools system ## run the whole suite (SQLite and PostgreSQL), lint included
	$(MAKE) --no-print-directory lint
	@rm -f .coverage .coverage.*
	$(PY) -m pytest -n $(TEST_WORKERS) --cov --cov-report= --durations=15 $(PYTEST_ARGS)
	$(PY) -m coverage report
	@echo "server/ coverage (floor $(COVERAGE_FLOOR) %): $$($(PY) -m coverage report --include='server/*' --format=total) %"
	@$(PY) -m coverage report --include='server/*' --fail-under=$(COVERAGE_FLOOR) --format=total >/dev/null \
	  || { echo "server/ coverage is under $(COVERAGE_FLOOR) %"; exit 1; }

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

bench: $(STAMP) system ## run the benchmarks on SQLite (print figures, assert nothing; see docs/PERFORMANCE.md)
	$(PY) bench/unary.py
	$(PY) bench/storage.py
	$(PY) bench/fanout.py
	$(PY) bench/hundred.py
	$(PY) bench/gateway.py
	$(PY) bench/stats.py
	$(PY) bench/report.py
	$(PY) bench/dashboard.py
	$(PY) bench/desktop.py
	$(PY) bench/soak.py

vendor-protos: $(STAMP) ## copy the googleapis protos we import from the pinned package
	$(PY) scripts/vendor_protos.py

clean: ## remove the virtual environment, node_modules and local data
	rm -rf $(VENV) node_modules data .pytest_cache
