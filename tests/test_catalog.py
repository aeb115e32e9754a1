"""Metastore tables (`--warehouse uc://<catalog>.<schema>`) through Spark's own catalog.

Unity Catalog itself needs a Databricks workspace; what can run here is the same code
path against the local session's catalog with Delta's DeltaCatalog as spark_catalog:
three-part names, saveAsTable, VERSION AS OF, DESCRIBE HISTORY. The stages run through
the CLI in this process (the session is the active one) and their tables are compared
with a path warehouse built from the same file.
"""

from __future__ import annotations

import uuid

import pytest
from pyspark.testing import assertDataFrameEqual
from warehouse_helpers import conform

from wvb_spark import cli
from wvb_spark.core import config as wvb_config
from wvb_spark.core.catalog import CatalogWarehouse, parse_root
from wvb_spark.core.errors import WvbError
from wvb_spark.core.warehouse import Warehouse
from wvb_spark.stages.synth import write_synthetic_wvs


@pytest.fixture(scope="module")
def native(spark, native_available):
    if not native_available:
        pytest.skip(
            "metastore tables need Delta's catalog: Delta's jars are not cached "
            "(run `wvb delta-jars` where Maven Central is reachable)"
        )
    return spark


@pytest.fixture
def schema(native):
    """A schema of its own in spark_catalog, dropped with its tables afterwards."""
    name = f"wvb_{uuid.uuid4().hex[:8]}"
    native.sql(f"CREATE SCHEMA spark_catalog.{name}")
    yield name
    native.sql(f"DROP SCHEMA spark_catalog.{name} CASCADE")


def _settings():
    return wvb_config.load(None, ["storage.writer=native"])


def test_root_names_catalog_and_schema():
    assert parse_root("uc://main.wvb_dev") == ("main", "wvb_dev")
    for bad in ("uc://main", "uc://a.b.c", "uc://main.wvb;drop", "uc://.x"):
        with pytest.raises(WvbError, match="uc://<catalog>.<schema>"):
            parse_root(bad)


def test_uc_root_refuses_the_offline_commit(native):
    with pytest.raises(WvbError, match="storage.writer=offline"):
        Warehouse(native, "uc://spark_catalog.default", wvb_config.load(None, ["storage.writer=offline"]))


def test_uc_style_name_resolves_through_the_catalog(native):
    """spark_catalog.default.<table>: written by the warehouse, found by Spark's catalog
    under its three-part name, versioned, with the commit info in DESCRIBE HISTORY."""
    warehouse = Warehouse(native, "uc://spark_catalog.default", _settings())
    assert isinstance(warehouse, CatalogWarehouse)
    name = "probe_groups"
    native.sql("DROP TABLE IF EXISTS spark_catalog.default.probe_groups")
    try:
        first = conform(
            native.createDataFrame([("Q1", 7, "kept")], "question_id string, group_size long, status string"), name
        )
        second = conform(
            native.createDataFrame(
                [("Q2", 3, "skipped"), ("Q3", 9, "kept")], "question_id string, group_size long, status string"
            ),
            name,
        )
        assert warehouse.write(name, first, stage="test", expected_rows=1) == 0
        assert warehouse.write(name, second, stage="test", counts={"rows": 2}) == 1
        assert native.catalog.tableExists("spark_catalog.default.probe_groups")
        assert [
            row.question_id
            for row in native.table("spark_catalog.default.probe_groups").orderBy("question_id").collect()
        ] == ["Q2", "Q3"]
        assert [tuple(r) for r in warehouse.read(name, version=0).select("question_id", "group_size").collect()] == [
            ("Q1", 7)
        ]
        assert warehouse.version(name) == 1
        assert warehouse.commit_info(name)["counts"] == {"rows": 2}
        assert warehouse.commit_info(name, 0)["stage"] == "test"
        assert [entry["version"] for entry in warehouse.history(name)] == [1, 0]
        with pytest.raises(WvbError, match="holds 2 new rows but 3 were meant"):
            warehouse.write(name, second, stage="test", expected_rows=3)
    finally:
        native.sql("DROP TABLE IF EXISTS spark_catalog.default.probe_groups")


def test_partitions_replaced_by_model(native, schema):
    warehouse = Warehouse(native, f"uc://spark_catalog.{schema}", _settings())
    rows = native.createDataFrame(
        [("a", "Q1", 1), ("b", "Q1", 2)], "model string, question_id string, d_interview long"
    )
    warehouse.write("predictions", conform(rows, "predictions"), stage="test")
    again = native.createDataFrame(
        [("b", "Q2", 5), ("b", "Q3", 6)], "model string, question_id string, d_interview long"
    )
    warehouse.write("predictions", conform(again, "predictions"), stage="test", replace={"model": "b"})
    assert warehouse.partition_rows("predictions", "model") == {"a": 1, "b": 2}
    assert warehouse.partition_values("predictions", "model") == ["a", "b"]
    assert warehouse.commit_info("predictions")["replaced"] == {"model": "b"}


def test_missing_table_is_one_line(native, schema):
    warehouse = Warehouse(None, f"uc://spark_catalog.{schema}", _settings())
    with pytest.raises(
        WvbError, match=rf"no participants table in uc://spark_catalog.{schema} \(run wvb build first\)"
    ):
        warehouse.require("participants")


def test_stages_on_metastore_tables_equal_a_path_warehouse(native, schema, tmp_path):
    """build -> probe -> baselines through the CLI, once on uc:// tables and once on paths:
    the same rows; the build tables read at the versions build_runs pinned."""
    raw = tmp_path / "wvs.csv"
    write_synthetic_wvs(str(raw), respondents=150, seed=5)
    roots = {"uc": f"uc://spark_catalog.{schema}", "path": str(tmp_path / "warehouse")}
    for root in roots.values():
        common = ["--warehouse", root, "--set", "storage.writer=native"]
        assert cli.main(["build", "--raw", str(raw), *common]) == 0
        assert cli.main(["probe", *common]) == 0
        assert cli.main(["baselines", *common, "--on", "split:valid", "--models", "uniform,global-prior"]) == 0
    uc = Warehouse(native, roots["uc"], _settings())
    path = Warehouse(native, roots["path"], _settings())
    assert native.table(f"spark_catalog.{schema}.participants").count() == 150
    assert set(uc.build_versions()) == {"questions", "participants", "examples", "quarantine"}
    for name in ("participants", "examples", "questions", "probe", "predictions"):
        assertDataFrameEqual(uc.read(name), path.read(name), checkRowOrder=False)
    assert uc.partition_rows("examples", "split") == path.partition_rows("examples", "split")
    assert uc.commit_info("examples")["stage"] == path.commit_info("examples")["stage"]
