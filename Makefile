# The one place torch is pinned: a CPU build of it lies on this machine's disk.
TORCH := torch==2.13.0
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve run test test-all bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Until the API exists, `serve` runs one headless session (see README).
serve: install
	$(BIN)/continuous-play run

run: install
	$(BIN)/continuous-play run

test: install
	$(BIN)/python -m pytest

test-all: install
	$(BIN)/python -m pytest -m ""

bench: install
	$(BIN)/python bench/net_throughput.py
	$(BIN)/python bench/mcts_throughput.py
	$(BIN)/python bench/session.py

clean:
	rm -rf $(VENV) .pytest_cache
