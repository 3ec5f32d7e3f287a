# Set-up and the everyday jobs. `make quickstart` and `make test` create .venv on first use.
# TORCH picks the PyTorch build: the default pin is the CPU build on these machines; on a GPU
# machine install your CUDA build of torch into .venv first (any 2.4 <= version < 2.15 works).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: install quickstart lint test test-all format clean-runs

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

quickstart: install
	$(BIN)/medim quickstart

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# the fast suite (tests marked slow are left out): under two minutes on 2 CPU cores
test: lint
	$(BIN)/python -m pytest -q -m "not slow"

# everything, as CI runs it
test-all: lint
	$(BIN)/python -m pytest -q

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-runs:
	rm -rf runs
