# Two entry points for a fresh machine: `make run` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FRONTEND := metadata_gateway/web/static/build/.built

.PHONY: run test lint js-test bench

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The demo viewer's player comes from npm; without npm the viewer and browser tests are skipped.
$(FRONTEND): frontend/package-lock.json frontend/build.mjs $(wildcard frontend/src/*)
	@if command -v npm >/dev/null; then \
		cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build && touch ../$(FRONTEND); \
	else echo "npm not found: skipping the viewer build"; fi

run: $(STAMP) $(FRONTEND)
	$(BIN)/metadata-gateway serve --local-ivs

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict metadata_gateway

js-test:
	@if command -v node >/dev/null; then node --test clients/js; else echo "node not found: skipping"; fi

test: lint $(FRONTEND) js-test
	$(BIN)/pytest --cov --cov-report=term:skip-covered

bench: $(STAMP)
	$(BIN)/python -m bench
