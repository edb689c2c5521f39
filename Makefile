# `make demo` and `make test` set up .venv from scratch (torch first, then pinned packages).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.iatros-installed
# test files run in parallel processes (pytest-xdist), each file's tests in one process: many
# tests wait on subprocesses, servers and Ray, so 3 workers keep 2 cores busy
TEST_WORKERS ?= 3
export MPLBACKEND := Agg

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,encoder,serve,privacy,federated,molecules,pgx,omics,scale]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/iatros demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=30

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/tabular.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
