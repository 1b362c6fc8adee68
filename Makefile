# infersweep: `make quickstart` runs the default sweep offline; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# torch==2.13.0 first: on CPU machines it is the CPU build that lies on disk; a bare
# `torch` requirement would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install quickstart test test-all ui bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/infersweep quickstart

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not cluster" $(PYTEST_ARGS)

# the cluster tests start their own Ray nodes: a separate process from the in-process local Ray
test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "not cluster" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -q -m cluster $(PYTEST_ARGS)

ui: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/infersweep ui

bench: $(STAMP)
	$(BIN)/python bench/trials.py

clean:
	rm -rf .infersweep .pytest_cache
