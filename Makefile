# The two commands from a fresh clone: `make demo` (the main job) and `make test` (the tests; CI runs it).
# `make test-fast` runs the tests not marked slow (tests/conftest.py marks them): about a minute, for development.
# Each builds the environment when it is missing or out of date: a virtual environment in $(VENV)
# (python3 -m venv), then .ci/install into it; a stamp file records the install, so a second call
# reinstalls only after pyproject.toml or .ci/install changed. ARGS passes options through:
# `make test ARGS="-k prompt -x"`, `make demo ARGS="--overwrite"`.

PYTHON ?= python3
VENV ?= .venv
INSTALL ?= bash .ci/install
ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.mio-installed

.PHONY: help demo demo-train test test-fast lint venv

help:
	@echo "make demo        the main job: the shipped weights (M+EP, S+EP) on the embedded photos (about a minute)"
	@echo "make demo-train  the live version: train M and S+EP on the embedded photos, then the same report (minutes)"
	@echo "make test        the test suite (python -m pytest), as CI runs it"
	@echo "make test-fast   the tests not marked slow (python -m pytest -m \"not slow\"): about a minute"
	@echo "make lint        the layer contracts, ruff and mypy (.ci/lint)"
	@echo "make venv        only build or update the environment in $(VENV)"

demo: $(STAMP)
	$(BIN)/mio-strategies demo --pretrained $(ARGS)

demo-train: $(STAMP)
	$(BIN)/mio-strategies demo $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

lint: $(STAMP)
	. $(BIN)/activate && bash .ci/lint

venv: $(STAMP)

$(STAMP): pyproject.toml .ci/install
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "mio-strategies needs Python 3.10+: $(PYTHON) is $$($(PYTHON) --version 2>&1); pass PYTHON=python3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	. $(BIN)/activate && $(INSTALL)
	touch $(STAMP)
