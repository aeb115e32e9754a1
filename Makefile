# The two commands of the README: `make demo` and `make test`.
# Each sets up its own virtual environment first (VENV, default .venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= data
WAREHOUSE ?= warehouse
RESPONDENTS ?= 94728
SEED ?= 7

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: setup
	$(BIN)/wvb synth --respondents $(RESPONDENTS) --seed $(SEED) --out $(DATA)/wvs.csv

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/wvb bench

clean:
	rm -rf $(DATA) $(WAREHOUSE) out .pytest_cache
