# Quick start: `make train` (the default experiment), `make test` (the test suite).
# Each target sets up .venv on first use; only Python >= 3.11 is needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: install train test test-all lint format bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "gan_jax needs Python >= 3.11; run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

install: $(STAMP)

## The default experiment (Goodfellow et al. 2014, Figure 1); pass overrides as ARGS="loss=minimax ..."
train: $(STAMP)
	$(BIN)/gan-train $(ARGS)

## The test suite (tiny configs, real loop; 10-16 minutes on 2 shared CPU cores, cold JAX cache): two processes,
## each test file in one of them (its module fixtures shared; XLA compiles on one core a program)
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

## Including tests marked slow
test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

## Lint, format and type checks (ruff, mypy; settings in pyproject.toml); CI runs it before the tests
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Fix what ruff can: import order, modern syntax, formatting
format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Throughput against a same-architecture PyTorch loop (installs the CPU torch extra)
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python experiments/throughput/mlp_gan.py
	$(BIN)/python experiments/throughput/dcgan.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
