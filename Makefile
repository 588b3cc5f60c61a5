# Set-up and checks. Each target installs what it needs into .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# No network at run time: no hub downloads, no telemetry.
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1
export HF_HUB_DISABLE_TELEMETRY = 1
export RAY_USAGE_STATS_ENABLED = 0
export WANDB_MODE = offline
export SE_OFFLINE = true
export SE_AVOID_STATS = true

.PHONY: install demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch first, so nothing later pulls a CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

## The main job on the embedded default: the training demo (tiny model, CPU, about two minutes).
demo: install
	$(BIN)/rounds train examples/configs/demo.yaml

## The whole test suite.
test: install
	$(BIN)/python -m pytest

## The edit loop: every test but those marked slow (`make test` still runs them all).
test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

## Every benchmark: benchmarks/results.json and results.md (median of 3 runs, min and max).
bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist *.egg-info runs .pytest_cache .mypy_cache .ruff_cache
