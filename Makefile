# One developer entry point. `make demo` and `make test` both set up .venv/ first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup dev extras demo test test-all test-containers lint typecheck unit integration acceptance bench clean

# Two stamps: the package alone (what `citepipe` and the demo need), and the package with
# its test extra (pytest, ruff, mypy and the analysts' extras), for every target that tests.
BASE := $(VENV)/.installed-base

$(BASE): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(BASE)

$(STAMP): $(BASE)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# `citepipe` in .venv/bin, with what the demo needs and nothing more.
setup: $(BASE)

# The developer's set-up: the package with the test extra.
dev: $(STAMP)

# The analysts' extras (parquet, plot, datasette, network, bibliography), editable.
extras: $(BASE)
	$(BIN)/python -m pip install --quiet -e '.[parquet,plot,datasette,network,bibliography]'

demo: $(BASE)
	$(BIN)/citepipe demo --source both

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check pipeline citesite tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# The everyday suite: everything but the tests marked slow.
test: $(STAMP) lint typecheck
	$(BIN)/pytest -q -m "not slow" tests

# Every test, the slow ones too (CI runs this).
test-all: $(STAMP) lint typecheck
	$(BIN)/pytest -q tests

# The image and the compose file on a real Docker engine (tests/containers, collected only
# with --containers). It fails, never skips, when no engine answers `docker info`.
test-containers: $(STAMP)
	$(BIN)/pytest -q --containers tests/containers

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

acceptance: $(STAMP)
	$(BIN)/pytest -q tests/acceptance

# The race (citepipe, Scrapy with parsel, Scrapy with citepipe's parser, the bare loop,
# side by side), then the component benchmarks.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/race.py
	$(BIN)/python benchmarks/parse.py
	$(BIN)/python benchmarks/store.py
	$(BIN)/python benchmarks/e2e.py
	$(BIN)/python benchmarks/bare.py
	$(BIN)/python benchmarks/reparse.py
	$(BIN)/python benchmarks/addresses.py
	$(BIN)/python benchmarks/enqueue.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache data/demo.sqlite*
