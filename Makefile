# Two entry points for a fresh machine: `make run` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FRONTEND := metadata_gateway/web/static/build/.built
# Every Python package the venv holds, with exact versions and hashes: what CI tested.
LOCK := requirements/dev.lock
RUNTIME_LOCK := requirements/runtime.lock
COMPILE := $(BIN)/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command "make lock"

.PHONY: run test lint js-test bench lock

# --no-deps: the lock already lists every dependency; the project itself is built by the exact
# setuptools that pyproject.toml's build-system names.
$(STAMP): pyproject.toml $(LOCK)
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# Refreshes both locks from pyproject.toml's ranges, keeping the pinned versions that still fit
# (uv reads the existing lock first); `make lock UPGRADE=--upgrade` moves everything forward.
# The runtime lock is constrained by the dev lock, so the image runs what the tests ran.
lock: $(STAMP)
	$(COMPILE) $(UPGRADE) --extra distributed --extra test --extra dev -o $(LOCK)
	$(COMPILE) --extra distributed -c $(LOCK) -o $(RUNTIME_LOCK)
	cd frontend && npm install --package-lock-only --no-audit --no-fund --loglevel=error
	cd clients/js && npm install --package-lock-only --no-audit --no-fund --loglevel=error

# The demo viewer's player comes from npm; without npm the viewer and browser tests are skipped.
$(FRONTEND): frontend/package-lock.json frontend/build.mjs $(wildcard frontend/src/*) clients/js/cue_decoder.js
	@if command -v npm >/dev/null; then \
		cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build && touch ../$(FRONTEND); \
	else echo "npm not found: skipping the viewer build"; fi

run: $(STAMP) $(FRONTEND)
	$(BIN)/metadata-gateway serve --local-ivs

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict metadata_gateway tests bench

# The package's tests start `metadata-gateway` from the venv (a local IVS and gateways on
# 127.0.0.1); tsc checks the shipped declarations against a TypeScript usage example.
js-test: $(STAMP)
	@if command -v node >/dev/null; then \
		cd clients/js && npm ci --no-audit --no-fund --loglevel=error && \
		npx --no-install tsc --noEmit -p examples && node --test; \
	else echo "node not found: skipping"; fi

test: lint $(FRONTEND) js-test
	$(BIN)/pytest --cov --cov-report=term:skip-covered

bench: $(STAMP)
	$(BIN)/python -m bench
