# PriorSight: the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
# A stamp per dependency set: editing pyproject.toml or constraints.txt reinstalls.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | sha1sum | cut -c1-12)
# glibc returns big activation buffers to the OS after every forward pass: 3x slower CNNs.
export MALLOC_MMAP_THRESHOLD_ := 4294967296
export MALLOC_TRIM_THRESHOLD_ := 68719476736
# ...and off the main thread (Ray Data map actors, asyncio.to_thread) a second malloc arena
# mmaps those buffers anyway: one arena for all threads (docs/benchmarks.md, embed)
export MALLOC_ARENA_MAX := 1
# OpenMP (torch's libgomp) threads spin ~10 ms after every parallel region by default, holding a
# core the other processes need (Milvus, Serve's other replicas, Ray Data): spin ~0.4 ms (docs/serving.md)
export GOMP_SPINCOUNT := 10000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0
ARGS ?=

.PHONY: demo test install lint clean constraints browser loadtest

demo: $(STAMP)
	$(BIN)/priorsight demo $(ARGS)

test: $(STAMP) browser
	$(BIN)/python -m pytest $(ARGS)

# The web page is tested in Debian's Chromium (never `playwright install`, which downloads).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "warning: chromium not installed; browser tests will skip (sudo apt-get install chromium)"; fi; }

# Locust against the service (started on the held-out sample when none answers): docs/loadtesting.md
loadtest: $(STAMP)
	$(BIN)/priorsight loadtest run --sample data/loadtest-sample $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check priorsight cluster services training loadtests tests

install: $(STAMP)

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (PriorSight needs Python 3.11; set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install $(TORCH)
	$(BIN)/pip install -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache

# Re-pin constraints.txt to what is installed now (after an intentional upgrade).
constraints: $(BIN)/python
	$(BIN)/pip freeze --exclude-editable | grep -v -E '^(torch|priorsight)[=@ ]' > constraints.txt
