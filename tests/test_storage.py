"""Delta tables by the offline commit: checked against the Delta log itself, against
an independent reader (deltalake -> pandas) and against pandas-computed statistics."""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
from urllib.parse import unquote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from wvb_spark import storage
from wvb_spark.errors import WvbError

CONFIG = {"storage": {"writer": "auto"}}
EXAMPLES_SCHEMA = T.StructType([
    T.StructField("d_interview", T.LongType()),
    T.StructField("question_id", T.StringType()),
    T.StructField("answer", T.IntegerType()),
    T.StructField("split", T.StringType()),
    T.StructField("recorded_at", T.TimestampType()),
    T.StructField("score", T.DoubleType()),
])
SPLITS = ["train", "test", "va/l x"]  # '/' and ' ' must survive directory escaping


def example_rows(count: int, answer_offset: int = 0) -> list[tuple]:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    return [
        (1000 + i, f"Q{(i * 7) % 11}", (i + answer_offset) % 5, SPLITS[i % 3],
         start + dt.timedelta(microseconds=1001 * i), None if i % 4 == 0 else i * 0.5)
        for i in range(count)
    ]


def log_entries(table: str, version: int) -> list[dict]:
    with open(os.path.join(table, "_delta_log", f"{version:020d}.json"), encoding="utf-8") as log:
        return [json.loads(line) for line in log if line.strip()]


def actions(table: str, version: int, kind: str) -> list[dict]:
    return [entry[kind] for entry in log_entries(table, version) if kind in entry]


def data_file(add: dict) -> str:
    """An add action's file, relative to the table: the log's path %-decoded (Delta spec)."""
    return unquote(add["path"])


def pandas_of(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=EXAMPLES_SCHEMA.names)


def sorted_frame(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[EXAMPLES_SCHEMA.names].sort_values("d_interview").reset_index(drop=True)
    frame["recorded_at"] = pd.to_datetime(frame["recorded_at"], utc=True).astype("datetime64[us, UTC]")
    return frame


def test_first_write_is_delta_version_0_with_partitions_and_footer_stats(spark, tmp_path):
    rows = example_rows(60)
    df = spark.createDataFrame(rows, EXAMPLES_SCHEMA)
    version = storage.write_table(spark, df, str(tmp_path), "examples", CONFIG,
                                  partition_by=["split"], sort_within=["question_id"])
    table = str(tmp_path / "examples")

    assert version == 0
    delta = DeltaTable(table)
    assert delta.version() == 0
    assert delta.metadata().partition_columns == ["split"]
    protocol = delta.protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)

    expected = pandas_of(rows)
    adds = actions(table, 0, "add")
    # few, large files: one file per partition value, never one per question
    assert sorted(add["partitionValues"]["split"] for add in adds) == sorted(SPLITS)
    assert sum(json.loads(add["stats"])["numRecords"] for add in adds) == len(rows)
    for add in adds:
        split = add["partitionValues"]["split"]
        part = expected[expected["split"] == split]
        stats = json.loads(add["stats"])
        assert stats["numRecords"] == len(part)
        assert stats["minValues"]["d_interview"] == part["d_interview"].min()
        assert stats["maxValues"]["d_interview"] == part["d_interview"].max()
        assert stats["minValues"]["question_id"] == part["question_id"].min()
        assert stats["maxValues"]["question_id"] == part["question_id"].max()
        assert stats["minValues"]["answer"] == part["answer"].min()
        assert stats["maxValues"]["answer"] == part["answer"].max()
        assert stats["minValues"]["score"] == part["score"].min()
        assert stats["maxValues"]["score"] == part["score"].max()
        assert stats["nullCount"]["score"] == part["score"].isna().sum()
        assert stats["nullCount"]["answer"] == 0
        # Delta keeps milliseconds: the bounds are rounded outwards
        times = pd.to_datetime(part["recorded_at"], utc=True)
        assert stats["minValues"]["recorded_at"] == times.min().floor("ms").strftime(
            "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert stats["maxValues"]["recorded_at"] == times.max().ceil("ms").strftime(
            "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert "split" not in stats["minValues"]
        assert add["size"] == os.path.getsize(os.path.join(table, data_file(add)))
        assert add["dataChange"] is True
        # sorted by question_id inside the file, for data skipping
        in_file = pq.read_table(os.path.join(table, data_file(add))).column("question_id")
        assert in_file.to_pylist() == sorted(in_file.to_pylist())

    # deltalake's own reading of the stats agrees
    flat = pa.table(delta.get_add_actions(flatten=True)).to_pandas()
    assert flat["num_records"].sum() == len(rows)
    # Spark's job leftovers are gone
    assert not os.path.exists(os.path.join(table, "_SUCCESS"))
    assert not os.path.exists(os.path.join(table, "_temporary"))


def test_read_table_returns_the_written_rows_with_their_types(spark, tmp_path):
    rows = example_rows(30)
    df = spark.createDataFrame(rows, EXAMPLES_SCHEMA)
    storage.write_table(spark, df, str(tmp_path), "examples", CONFIG,
                        partition_by=["split"], sort_within=["question_id"])

    read = storage.read_table(spark, str(tmp_path), "examples", CONFIG)

    assert read.schema == EXAMPLES_SCHEMA
    assertDataFrameEqual(read, df)
    # an independent Delta reader sees the same rows
    other = DeltaTable(str(tmp_path / "examples")).to_pandas()
    pd.testing.assert_frame_equal(sorted_frame(other), sorted_frame(pandas_of(rows)),
                                  check_dtype=False)


def test_partition_column_types_come_from_the_delta_schema_not_inference(spark, tmp_path):
    schema = T.StructType([T.StructField("model", T.StringType()),
                           T.StructField("wave", T.ShortType()),
                           T.StructField("score", T.LongType())])
    # "007" would be inferred as the integer 7 from the directory name
    df = spark.createDataFrame([("007", 7, 1), ("10", 7, 2), (None, 6, 3)], schema)
    storage.write_table(spark, df, str(tmp_path), "predictions", CONFIG,
                        partition_by=["model", "wave"])

    read = storage.read_table(spark, str(tmp_path), "predictions", CONFIG)

    assert read.schema == schema
    assertDataFrameEqual(read, df)
    values = sorted((a["partitionValues"]["model"] or "", a["partitionValues"]["wave"])
                    for a in actions(str(tmp_path / "predictions"), 0, "add"))
    assert values == [("", "6"), ("007", "7"), ("10", "7")]


def test_overwrite_bumps_the_version_removes_old_files_and_time_travels(spark, tmp_path):
    old_rows, new_rows = example_rows(24), example_rows(12, answer_offset=2)
    old = spark.createDataFrame(old_rows, EXAMPLES_SCHEMA)
    new = spark.createDataFrame(new_rows, EXAMPLES_SCHEMA)
    warehouse, table = str(tmp_path), str(tmp_path / "examples")
    storage.write_table(spark, old, warehouse, "examples", CONFIG, partition_by=["split"])

    version = storage.write_table(spark, new, warehouse, "examples", CONFIG, partition_by=["split"])

    assert version == 1
    assert storage.table_version(warehouse, "examples", CONFIG) == 1
    old_paths = {add["path"] for add in actions(table, 0, "add")}
    assert {remove["path"] for remove in actions(table, 1, "remove")} == old_paths
    assert not old_paths & {add["path"] for add in actions(table, 1, "add")}
    assertDataFrameEqual(storage.read_table(spark, warehouse, "examples", CONFIG), new)
    assertDataFrameEqual(storage.read_table(spark, warehouse, "examples", CONFIG, version=0), old)
    pd.testing.assert_frame_equal(sorted_frame(DeltaTable(table, version=0).to_pandas()),
                                  sorted_frame(pandas_of(old_rows)), check_dtype=False)
    pd.testing.assert_frame_equal(sorted_frame(DeltaTable(table).to_pandas()),
                                  sorted_frame(pandas_of(new_rows)), check_dtype=False)
    with pytest.raises(WvbError, match="no version 5"):
        storage.read_table(spark, warehouse, "examples", CONFIG, version=5)


def test_replace_partitions_replaces_only_that_partition(spark, tmp_path):
    schema = "model string, question_id string, score int"
    warehouse, table = str(tmp_path), str(tmp_path / "predictions")
    first = spark.createDataFrame([("gpt/4 o", "Q1", 1), ("gpt/4 o", "Q2", 2),
                                   ("llama", "Q1", 3)], schema)
    storage.write_table(spark, first, warehouse, "predictions", CONFIG, partition_by=["model"])
    replacement = spark.createDataFrame([("gpt/4 o", "Q1", 9)], schema)

    version = storage.write_table(spark, replacement, warehouse, "predictions", CONFIG,
                                  partition_by=["model"], replace_partitions={"model": "gpt/4 o"})

    assert version == 1
    expected = spark.createDataFrame([("gpt/4 o", "Q1", 9), ("llama", "Q1", 3)], schema)
    assertDataFrameEqual(storage.read_table(spark, warehouse, "predictions", CONFIG), expected)
    removed = actions(table, 1, "remove")
    assert [r["partitionValues"] for r in removed] == [{"model": "gpt/4 o"}]
    llama_files = {a["path"] for a in actions(table, 0, "add")
                   if a["partitionValues"]["model"] == "llama"}
    assert set(DeltaTable(table).get_add_actions().column("path").to_pylist()) >= llama_files


def test_replace_partitions_refuses_rows_of_other_partitions_and_commits_nothing(spark, tmp_path):
    schema = "model string, score int"
    warehouse, table = str(tmp_path), str(tmp_path / "predictions")
    storage.write_table(spark, spark.createDataFrame([("a", 1)], schema), warehouse,
                        "predictions", CONFIG, partition_by=["model"])
    files_before = sorted(glob.glob(os.path.join(table, "**", "*.parquet"), recursive=True))
    mixed = spark.createDataFrame([("a", 2), ("b", 3)], schema)

    with pytest.raises(WvbError, match="also holds rows of partition"):
        storage.write_table(spark, mixed, warehouse, "predictions", CONFIG,
                            partition_by=["model"], replace_partitions={"model": "a"})

    assert storage.table_version(warehouse, "predictions", CONFIG) == 0
    assert sorted(glob.glob(os.path.join(table, "**", "*.parquet"), recursive=True)) == files_before
    with pytest.raises(WvbError, match="partition columns"):
        storage.write_table(spark, mixed, warehouse, "predictions", CONFIG,
                            partition_by=["model"], replace_partitions={"score": 2})


def test_commit_info_round_trips_and_shows_in_history(spark, tmp_path):
    info = {"rows_read": 120, "quarantined": {"bad_code": 3}, "splits": ["train", "test"]}
    df = spark.createDataFrame([(1, "x")], "id long, name string")
    storage.write_table(spark, df, str(tmp_path), "questions", CONFIG, commit_info=info)
    storage.write_table(spark, df, str(tmp_path), "questions", CONFIG)

    assert storage.commit_info(str(tmp_path), "questions", CONFIG, version=0) == info
    assert storage.commit_info(str(tmp_path), "questions", CONFIG) is None
    entries = storage.history(str(tmp_path), "questions", CONFIG)
    assert [entry["version"] for entry in entries] == [1, 0]
    assert json.loads(entries[1]["userMetadata"]) == info
    # the raw log carries it in the standard commitInfo.userMetadata field
    commit = log_entries(str(tmp_path / "questions"), 0)[0]["commitInfo"]
    assert json.loads(commit["userMetadata"]) == info


def test_files_of_a_killed_write_are_never_read(spark, tmp_path):
    warehouse, table = str(tmp_path), str(tmp_path / "examples")
    committed = spark.createDataFrame(example_rows(9), EXAMPLES_SCHEMA)
    storage.write_table(spark, committed, warehouse, "examples", CONFIG, partition_by=["split"])
    # a run killed after Spark wrote its Parquet files but before the Delta commit
    orphan = spark.createDataFrame(example_rows(30, answer_offset=1), EXAMPLES_SCHEMA)
    orphan.write.mode("append").partitionBy("split").parquet(table)
    os.makedirs(os.path.join(table, "_temporary", "0"))

    assert storage.table_version(warehouse, "examples", CONFIG) == 0
    assertDataFrameEqual(storage.read_table(spark, warehouse, "examples", CONFIG), committed)
    assert len(DeltaTable(table).to_pandas()) == 9

    # the next run commits only its own files
    rerun = spark.createDataFrame(example_rows(6, answer_offset=3), EXAMPLES_SCHEMA)
    assert storage.write_table(spark, rerun, warehouse, "examples", CONFIG,
                               partition_by=["split"]) == 1
    assertDataFrameEqual(storage.read_table(spark, warehouse, "examples", CONFIG), rerun)
    assert sum(json.loads(a["stats"])["numRecords"] for a in actions(table, 1, "add")) == 6
    assert not os.path.exists(os.path.join(table, "_temporary"))


def test_an_empty_dataframe_makes_a_valid_empty_version(spark, tmp_path):
    warehouse, table = str(tmp_path), str(tmp_path / "examples")
    empty = spark.createDataFrame([], EXAMPLES_SCHEMA)

    assert storage.write_table(spark, empty, warehouse, "examples", CONFIG,
                               partition_by=["split"]) == 0
    read = storage.read_table(spark, warehouse, "examples", CONFIG)
    assert read.schema == EXAMPLES_SCHEMA and read.count() == 0
    assert DeltaTable(table).to_pandas().shape == (0, len(EXAMPLES_SCHEMA))

    full = spark.createDataFrame(example_rows(6), EXAMPLES_SCHEMA)
    storage.write_table(spark, full, warehouse, "examples", CONFIG, partition_by=["split"])
    assert storage.write_table(spark, empty, warehouse, "examples", CONFIG,
                               partition_by=["split"]) == 2
    assert storage.read_table(spark, warehouse, "examples", CONFIG).count() == 0
    assert len(actions(table, 2, "remove")) == 3
    assert storage.read_table(spark, warehouse, "examples", CONFIG, version=1).count() == 6


def test_overwrite_may_change_schema_and_partitioning(spark, tmp_path):
    warehouse = str(tmp_path)
    flat = spark.createDataFrame([(1, "a")], "id long, split string")
    storage.write_table(spark, flat, warehouse, "participants", CONFIG)
    wider = spark.createDataFrame([(2, "b", 0.5)], "id long, split string, weight double")

    assert storage.write_table(spark, wider, warehouse, "participants", CONFIG,
                               partition_by=["split"]) == 1

    assert DeltaTable(str(tmp_path / "participants")).metadata().partition_columns == ["split"]
    assertDataFrameEqual(storage.read_table(spark, warehouse, "participants", CONFIG), wider)
    assertDataFrameEqual(storage.read_table(spark, warehouse, "participants", CONFIG, version=0),
                         flat)


def test_table_exists_version_and_paths(spark, tmp_path):
    warehouse = str(tmp_path)
    assert not storage.table_exists(warehouse, "questions", CONFIG)
    with pytest.raises(WvbError, match="no Delta table 'questions'"):
        storage.table_version(warehouse, "questions", CONFIG)
    with pytest.raises(WvbError, match="no Delta table 'questions'"):
        storage.read_table(spark, warehouse, "questions", CONFIG)
    storage.write_table(spark, spark.createDataFrame([(1,)], "id long"), warehouse,
                        "questions", CONFIG)
    assert storage.table_exists(warehouse, "questions", CONFIG)
    assert storage.table_version(warehouse, "questions", CONFIG) == 0
    assert storage.table_path(warehouse, "questions") == os.path.join(warehouse, "questions")
    assert storage.table_path("s3://bucket/wh/", "examples") == "s3://bucket/wh/examples"
    assert storage.table_path("dbfs:/wh", "examples") == "dbfs:/wh/examples"
    assert storage.table_path("file:///tmp/wh", "examples") == "/tmp/wh/examples"
    with pytest.raises(WvbError, match="invalid table name"):
        storage.table_path(warehouse, "../x")


def test_writer_choice(spark):
    assert storage.choose_writer(spark, {"storage": {"writer": "auto"}}) == "offline"
    assert storage.choose_writer(spark, {"storage": {"writer": "offline"}}) == "offline"
    with pytest.raises(WvbError, match="Delta's Spark extension is not active"):
        storage.choose_writer(spark, {"storage": {"writer": "native"}})
    with pytest.raises(WvbError, match="storage.writer must be one of"):
        storage.choose_writer(spark, {"storage": {"writer": "parquet"}})


def test_bad_partition_arguments_are_one_line_errors(spark, tmp_path):
    df = spark.createDataFrame([(1, 0.5)], "id long, score double")
    with pytest.raises(WvbError, match="column 'split' is not in the DataFrame"):
        storage.write_table(spark, df, str(tmp_path), "t", CONFIG, partition_by=["split"])
    with pytest.raises(WvbError, match="cannot partition by 'score' of type double"):
        storage.write_table(spark, df, str(tmp_path), "t", CONFIG, partition_by=["score"])
    assert not storage.table_exists(str(tmp_path), "t", CONFIG)


def test_long_strings_keep_a_prefix_as_minimum_and_no_maximum(spark, tmp_path):
    texts = ["How important is family in your life? " + c for c in "ab"]
    df = spark.createDataFrame([(i, text) for i, text in enumerate(texts)], "id long, text string")
    storage.write_table(spark, df.coalesce(1), str(tmp_path), "questions", CONFIG)

    (add,) = actions(str(tmp_path / "questions"), 0, "add")
    stats = json.loads(add["stats"])
    assert stats["minValues"]["text"] == min(texts)[:32]
    assert "text" not in stats["maxValues"]
    assert (stats["minValues"]["id"], stats["maxValues"]["id"]) == (0, 1)


def test_native_replace_where_predicate_quotes_values():
    assert storage._sql_identifier("mo`del") == "`mo``del`"
    assert storage._sql_literal("it's") == "'it\\'s'"
    assert storage._sql_literal(7) == "7"
    assert storage._sql_literal(True) == "true"
    assert storage._sql_literal(dt.date(2024, 5, 1)) == "DATE '2024-05-01'"


def test_timestamps_are_written_as_micros_even_when_the_session_says_int96(spark, tmp_path):
    key = "spark.sql.parquet.outputTimestampType"
    previous = spark.conf.get(key)
    spark.conf.set(key, "INT96")
    try:
        df = spark.createDataFrame(example_rows(3), EXAMPLES_SCHEMA)
        storage.write_table(spark, df, str(tmp_path), "examples", CONFIG)
        assert spark.conf.get(key) == "INT96"  # the session's setting is given back
    finally:
        spark.conf.set(key, previous)

    table = str(tmp_path / "examples")
    for add in actions(table, 0, "add"):
        column = pq.ParquetFile(os.path.join(table, data_file(add))).schema.column(4)
        assert (column.name, column.physical_type) == ("recorded_at", "INT64")
    protocol = DeltaTable(table).protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    assert storage.delta_schema(str(tmp_path), "examples", CONFIG) == EXAMPLES_SCHEMA
