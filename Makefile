# The two commands a newcomer needs: `make run` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast bench install system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## make run: SQLite under ./var, demo data, http://127.0.0.1:8000 (prints the logins)
run: $(STAMP)
	$(BIN)/inbox db upgrade
	$(BIN)/inbox demo
	$(BIN)/inbox serve --host 127.0.0.1 --port 8000 --demo-providers

## Debian packages the end-to-end tests drive (Chromium, Dovecot IMAP); needs root/apt.
system-deps:
	@bash scripts/system-deps.sh

## make test: the whole suite (PostgreSQL runs too when INBOX_TEST_DATABASE_URL is set)
test: $(STAMP) system-deps
	$(BIN)/pytest -q

## make test-fast: everything but the slow real-server/browser tests
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not e2e"

## make bench: benchmarks, printed as tables
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache *.egg-info
