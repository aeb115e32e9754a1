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

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
DIST ?= dist
ENV_BUILD ?= build/env

.PHONY: setup demo lint test test-cluster bench clean vacuum dist dist-env

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 'setuptools>=77' wheel venv-pack==0.2.0
	@# pyspark and delta-spark come with the `local` extra: a cluster's runtime provides its own.
	$(BIN)/python -m pip install -q -e '.[local,test,bench]'
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

# Lint, format check and type check (seconds), then the tests.
lint: setup
	$(BIN)/ruff check wvb_spark tests jobs
	$(BIN)/ruff format --check wvb_spark tests jobs
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

# The pipeline on a real standalone cluster started by the tests (tests/test_cluster.py):
# `make test` runs its native-Delta half (the whole pipeline submitted, its fault test);
# this runs all of it, adding the packed-environment run (tens of minutes on 2 cores).
test-cluster: setup
	$(BIN)/python -m pytest -m "cluster or not cluster" tests/test_cluster.py

vacuum: setup
	$(BIN)/wvb vacuum --warehouse $(WAREHOUSE)

bench: setup
	$(BIN)/wvb bench

# What a cluster gets (README "Running on a cluster"): the wheel, and the same files as
# $(DIST)/wvb_spark-$(VERSION).zip for spark-submit --py-files (Spark puts only .zip/.egg
# files of --py-files on the executors' Python path, not wheels). Built offline.
dist: setup
	rm -f $(DIST)/wvb_spark-$(VERSION)-py3-none-any.whl $(DIST)/wvb_spark-$(VERSION).zip
	$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w $(DIST) .
	cp $(DIST)/wvb_spark-$(VERSION)-py3-none-any.whl $(DIST)/wvb_spark-$(VERSION).zip
	@echo "$(DIST)/wvb_spark-$(VERSION).zip (--py-files) and $(DIST)/wvb_spark-$(VERSION)-py3-none-any.whl"

# The dependencies without Spark and without wvb_spark itself (that ships as the zip), packed
# for spark-submit --archives $(DIST)/env.tar.gz#env with executors on ./env/bin/python.
# Nodes need this machine's Python at the same path (venv-pack links, not copies, it).
# Rebuilt only when pyproject.toml changes (its dependencies are all that goes in).
dist-env: $(DIST)/env.tar.gz

$(DIST)/env.tar.gz: pyproject.toml | $(STAMP)
	rm -rf $(ENV_BUILD) $(ENV_BUILD)-wheel $@
	$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w $(ENV_BUILD)-wheel .
	$(BIN)/python -m venv $(ENV_BUILD)
	$(ENV_BUILD)/bin/python -m pip install -q $(ENV_BUILD)-wheel/wvb_spark-$(VERSION)-py3-none-any.whl
	$(ENV_BUILD)/bin/python -m pip uninstall -q -y wvb_spark
	mkdir -p $(DIST)
	$(BIN)/venv-pack -q --compress-level 1 -p $(ENV_BUILD) -o $@.partial --format tar.gz
	mv $@.partial $@
	@echo "$@ ($$(du -h $@ | cut -f1))"

clean:
	rm -rf $(DATA) $(WAREHOUSE) out .pytest_cache
