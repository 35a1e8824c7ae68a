# `make run` serves the API on the embedded defaults; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint openapi migrate bench screenshots webcall-assets clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)  ## serve on SQLite (./calltrack.db) at http://127.0.0.1:8000
	$(BIN)/calltrack serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

test: $(STAMP)  ## ruff, mypy --strict, OpenAPI drift, pytest on SQLite and PostgreSQL
	scripts/check

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

openapi: $(STAMP)  ## regenerate openapi/openapi.json from the code
	$(BIN)/calltrack openapi

migrate: $(STAMP)
	$(BIN)/calltrack migrate

screenshots: $(STAMP)  ## retake docs/demo.png and docs/dashboard.png from the browser tests
	CALLTRACK_UPDATE_SCREENSHOTS=1 CALLTRACK_TEST_BACKENDS=sqlite $(BIN)/pytest -q \
		tests/browser/test_demo_site.py tests/browser/test_dashboard.py

webcall-assets:  ## rebuild app/static/vendor/jssip.min.js from package-lock.json (needs node and npm)
	scripts/build-webcall

bench: $(STAMP)
	$(BIN)/python -m bench.lease_bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
