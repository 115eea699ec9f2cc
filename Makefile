# The two commands a user needs: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint bench dashboards clean docs bundle

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

## run the daemon on the embedded default config (metrics on http://127.0.0.1:10491/metrics)
run: $(STAMP)
	$(BIN)/reachwatch run

# the suite mostly waits on real servers, tors and namespaces (about half a core busy on average):
# two workers, one test file each at a time (module fixtures start once), halve its wall time
TEST_WORKERS ?= 2

## install Debian test packages (as root) and Python deps, then lint, type-check and run the whole suite
test: $(STAMP)
	./scripts/install-test-deps.sh
	$(MAKE) lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

## regenerate docs/CONFIGURATION.md from the config schema (a test fails when it is stale)
docs: $(STAMP)
	$(BIN)/python scripts/gen_config_docs.py

## the offline install bundle (dist/reachwatch-<version>-bundle.tar.gz): wheels for amd64, arm64, armv7
bundle: $(STAMP)
	$(BIN)/python scripts/bundle.py

bench: $(STAMP)
	$(BIN)/python bench/sweep.py --endpoints 1000

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
