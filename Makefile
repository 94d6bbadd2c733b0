# The one place torch is pinned: a CPU build of it lies on this machine's disk.
TORCH := torch==2.13.0
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve run check test test-all bench openapi postgres stockfish promtool chromium clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) stockfish promtool chromium

# Debian's stockfish: the external UCI opponent of evaluation and of the UCI tests.
stockfish:
	@command -v stockfish >/dev/null 2>&1 || test -x /usr/games/stockfish || \
		(apt-get update -qq && apt-get install -y -qq stockfish)

# Debian's prometheus package, for its promtool: the tests check the /metrics exposition with it.
promtool:
	@command -v promtool >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus)

# Debian's chromium: the dashboard and HTML-report tests drive it with Playwright
# (executable_path), since Playwright's own browser download cannot work here.
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium)

# Migrates the database (SQLite file under ./data by default), then serves on 127.0.0.1:8000.
serve: install
	$(BIN)/continuous-play db upgrade
	$(BIN)/continuous-play serve

run: install
	$(BIN)/continuous-play run

# The storage and API tests also run on this machine's PostgreSQL: start it if it is down.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start || true

# Lint, format and type checks first: they take seconds, the suite takes minutes.
check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install postgres check
	$(BIN)/python -m pytest

test-all: install postgres
	$(BIN)/python -m pytest -m ""

openapi: install
	$(BIN)/python -m service.openapi

bench: install
	$(BIN)/python bench/net_throughput.py
	$(BIN)/python bench/mcts_throughput.py
	$(BIN)/python bench/session.py

clean:
	rm -rf $(VENV) .pytest_cache
