# The two commands of the quick start: `make run` and `make test`.
# Python 3.11: the lock (uv.lock) is made for the CPU build of torch 2.13.0 held for it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PORT ?= 8000
BIN := $(VENV)/bin
# The installer, whatever pip the machine's Python ships (pip 23 backtracks for half an hour
# where uv resolves in seconds): pinned here, in pyproject.toml's [tool.uv] required-version
# and in its dev extra (tests/test_lock.py holds the three together).
UV_VERSION := 0.13.10
TOOLS := .tools
UV := $(TOOLS)/bin/uv
# uv installs into $(VENV) with the machine's Python; it never downloads one.
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
# Every tool here runs from local files; nothing is fetched from a model hub.
export HF_HUB_OFFLINE := 1

.PHONY: run test test-fast lint lock clean

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "ReplyGuard installs on Python 3.11 (the CPU build of torch 2.13.0 is held for it): set PYTHON=/path/to/python3.11")'
	@echo "installing the installer: uv $(UV_VERSION), into $(TOOLS)/"
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/python -m pip install --disable-pip-version-check -q "uv==$(UV_VERSION)" \
	  || { echo "could not install uv $(UV_VERSION) from the package index: check the network, or 'rm -rf $(TOOLS)' and try again" >&2; exit 1; }

# From the lock, nothing resolved (--frozen); again whenever pyproject.toml or uv.lock change.
# On a failure uv names the package; 'make clean' and a second try start from nothing.
SYNC_FAILED := { echo "install failed (the package is named above): try 'make clean' and the command again; 'make lock' if you changed pyproject.toml" >&2; exit 1; }

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen || $(SYNC_FAILED)
	@touch $@

$(VENV)/.installed-dev: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --extra dev || $(SYNC_FAILED)
	@touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/replyguard run --port $(PORT)

test: $(VENV)/.installed-dev
	scripts/system-deps.sh
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

# The quick loop: every test but the integration ones (servers, browsers, workers, PostgreSQL).
test-fast: $(VENV)/.installed-dev
	$(BIN)/pytest -m "not integration"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Brings uv.lock in line with pyproject.toml, keeping every pin it can; UPGRADE=1 moves every
# package to its newest release within pyproject.toml's bounds.
lock: | $(UV)
	$(UV) lock $(if $(UPGRADE),--upgrade)

clean:
	rm -rf $(VENV) $(TOOLS) var .pytest_cache .mypy_cache .ruff_cache
