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

.PHONY: setup demo test bench clean vacuum

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)
	@# Delta's JVM jars (Maven Central), once, into ~/.cache/wvb_spark/jars; without them
	@# the commands still work and write with the offline commit (it says so).
	$(BIN)/wvb delta-jars

OUT ?= out
demo: setup
	$(BIN)/wvb synth --respondents $(RESPONDENTS) --seed $(SEED) --out $(DATA)/wvs.csv
	$(BIN)/wvb build --raw $(DATA)/wvs.csv --warehouse $(WAREHOUSE)
	$(BIN)/wvb probe --warehouse $(WAREHOUSE)
	$(BIN)/wvb prompts --warehouse $(WAREHOUSE) --out $(OUT)/prompts.jsonl
	$(BIN)/wvb baselines --warehouse $(WAREHOUSE)
	$(BIN)/wvb simulate-model --warehouse $(WAREHOUSE) --out $(DATA)/biased-model.tsv --shift 1 --seed $(SEED)
	$(BIN)/wvb predictions import --warehouse $(WAREHOUSE) --model biased-model --file $(DATA)/biased-model.tsv
	$(BIN)/wvb evaluate --warehouse $(WAREHOUSE)
	$(BIN)/wvb report --warehouse $(WAREHOUSE) --out $(OUT)/report
	@echo
	@echo "Demo done. Tables: $(WAREHOUSE)/  prompts: $(OUT)/prompts.jsonl  report: $(OUT)/report/report.html"

test: setup
	$(BIN)/python -m pytest

vacuum: setup
	$(BIN)/wvb vacuum --warehouse $(WAREHOUSE)

bench: setup
	$(BIN)/wvb bench

clean:
	rm -rf $(DATA) $(WAREHOUSE) out .pytest_cache
