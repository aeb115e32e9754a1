"""Delta tables by both writers: checked against the Delta log itself, against an
independent reader (deltalake -> pandas) and against pandas-computed statistics.

Every test taking `writer` runs once with Delta's own Spark writer (native) and once
with the offline commit; tests of what only the offline commit does say so.
"""

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

from wvb_spark.core import storage
from wvb_spark.core.errors import WvbError
from wvb_spark.core.storage import Layout
from wvb_spark.core.warehouse import choose_writer

EXAMPLES_SCHEMA = T.StructType(
    [
        T.StructField("d_interview", T.LongType()),
        T.StructField("question_id", T.StringType()),
        T.StructField("answer", T.IntegerType()),
        T.StructField("split", T.StringType()),
        T.StructField("recorded_at", T.TimestampType()),
        T.StructField("score", T.DoubleType()),
    ]
)
SPLITS = ["train", "test", "va/l x"]  # '/' and ' ' must survive directory escaping
BY_SPLIT = Layout(partition_by=("split",))
BY_MODEL = Layout(partition_by=("model",))


def example_rows(count: int, answer_offset: int = 0) -> list[tuple]:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    return [
        (
            1000 + i,
            f"Q{(i * 7) % 11}",
            (i + answer_offset) % 5,
            SPLITS[i % 3],
            start + dt.timedelta(microseconds=1001 * i),
            None if i % 4 == 0 else i * 0.5,
        )
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


def write(spark, df, table, writer, layout=Layout(), **options) -> int:
    return storage.write(spark, df, str(table), native=writer == "native", layout=layout, **options)


def read(spark, table, writer, version=None):
    return storage.read(spark, str(table), native=writer == "native", version=version)


def test_first_write_is_delta_version_0_with_partitions_and_statistics(spark, tmp_path, writer):
    rows = example_rows(60)
    table = str(tmp_path / "examples")
    version = write(
        spark,
        spark.createDataFrame(rows, EXAMPLES_SCHEMA),
        table,
        writer,
        Layout(partition_by=("split",), sort_within=("question_id",)),
    )

    assert version == 0
    delta = DeltaTable(table)
    assert delta.version() == 0 and delta.metadata().partition_columns == ["split"]
    expected = pandas_of(rows)
    adds = actions(table, 0, "add")
    # few, large files: one file per partition value, never one per question
    assert sorted(add["partitionValues"]["split"] for add in adds) == sorted(SPLITS)
    for add in adds:
        part = expected[expected["split"] == add["partitionValues"]["split"]]
        stats = json.loads(add["stats"])
        assert stats["numRecords"] == len(part)
        for column in ("d_interview", "question_id", "answer", "score"):
            assert stats["minValues"][column] == part[column].min()
            assert stats["maxValues"][column] == part[column].max()
        assert stats["nullCount"]["score"] == part["score"].isna().sum()
        assert add["size"] == os.path.getsize(os.path.join(table, data_file(add)))
        # sorted by question_id inside the file, for data skipping
        in_file = pq.read_table(os.path.join(table, data_file(add))).column("question_id")
        assert in_file.to_pylist() == sorted(in_file.to_pylist())
    assert pa.table(delta.get_add_actions(flatten=True)).to_pandas()["num_records"].sum() == len(rows)


def test_offline_statistics_round_times_outwards_and_files_sit_in_the_run_directory(spark, tmp_path):
    rows = example_rows(60)
    table = str(tmp_path / "examples")
    write(spark, spark.createDataFrame(rows, EXAMPLES_SCHEMA), table, "offline", BY_SPLIT, metadata={"run_id": "r1"})
    expected = pandas_of(rows)
    protocol = DeltaTable(table).protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    for add in actions(table, 0, "add"):
        assert data_file(add).startswith("run-r1/split=")
        part = expected[expected["split"] == add["partitionValues"]["split"]]
        stats = json.loads(add["stats"])
        times = pd.to_datetime(part["recorded_at"], utc=True)
        assert stats["minValues"]["recorded_at"] == times.min().floor("ms").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert stats["maxValues"]["recorded_at"] == times.max().ceil("ms").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert "split" not in stats["minValues"] and add["dataChange"] is True


def test_read_returns_the_written_rows_with_their_types(spark, tmp_path, writer):
    rows = example_rows(30)
    df = spark.createDataFrame(rows, EXAMPLES_SCHEMA)
    table = tmp_path / "examples"
    write(spark, df, table, writer, Layout(partition_by=("split",), sort_within=("question_id",)))

    got = read(spark, table, writer)

    assert got.schema == EXAMPLES_SCHEMA
    assertDataFrameEqual(got, df)
    # an independent Delta reader sees the same rows
    other = DeltaTable(str(table)).to_pandas()
    pd.testing.assert_frame_equal(sorted_frame(other), sorted_frame(pandas_of(rows)), check_dtype=False)


def test_partition_column_types_come_from_the_delta_schema_not_inference(spark, tmp_path, writer):
    schema = T.StructType(
        [
            T.StructField("model", T.StringType()),
            T.StructField("wave", T.ShortType()),
            T.StructField("score", T.LongType()),
        ]
    )
    # "007" would be inferred as the integer 7 from the directory name
    df = spark.createDataFrame([("007", 7, 1), ("10", 7, 2), (None, 6, 3)], schema)
    write(spark, df, tmp_path / "p", writer, Layout(partition_by=("model", "wave")))

    got = read(spark, tmp_path / "p", writer)

    assert got.schema == schema
    assertDataFrameEqual(got, df)
    values = sorted(
        (a["partitionValues"]["model"] or "", a["partitionValues"]["wave"])
        for a in actions(str(tmp_path / "p"), 0, "add")
    )
    assert values == [("", "6"), ("007", "7"), ("10", "7")]


def test_overwrite_bumps_the_version_removes_old_files_and_time_travels(spark, tmp_path, writer):
    old_rows, new_rows = example_rows(24), example_rows(12, answer_offset=2)
    old = spark.createDataFrame(old_rows, EXAMPLES_SCHEMA)
    new = spark.createDataFrame(new_rows, EXAMPLES_SCHEMA)
    table = str(tmp_path / "examples")
    write(spark, old, table, writer, BY_SPLIT)

    assert write(spark, new, table, writer, BY_SPLIT) == 1

    old_paths = {add["path"] for add in actions(table, 0, "add")}
    assert {remove["path"] for remove in actions(table, 1, "remove")} == old_paths
    assert not old_paths & {add["path"] for add in actions(table, 1, "add")}
    assertDataFrameEqual(read(spark, table, writer), new)
    assertDataFrameEqual(read(spark, table, writer, version=0), old)
    pd.testing.assert_frame_equal(
        sorted_frame(DeltaTable(table, version=0).to_pandas()), sorted_frame(pandas_of(old_rows)), check_dtype=False
    )
    pd.testing.assert_frame_equal(
        sorted_frame(DeltaTable(table).to_pandas()), sorted_frame(pandas_of(new_rows)), check_dtype=False
    )
    if writer == "offline":
        with pytest.raises(WvbError, match="no version 5"):
            read(spark, table, writer, version=5)
    else:
        with pytest.raises(WvbError, match="cannot read Delta table"):
            read(spark, table, writer, version=5).collect()


def test_replace_replaces_only_those_partitions(spark, tmp_path, writer):
    schema = "model string, question_id string, score int"
    table = str(tmp_path / "predictions")
    first = spark.createDataFrame(
        [("gpt/4 o", "Q1", 1), ("gpt/4 o", "Q2", 2), ("llama", "Q1", 3), ("mistral", "Q1", 4)], schema
    )
    write(spark, first, table, writer, BY_MODEL)
    replacement = spark.createDataFrame([("gpt/4 o", "Q1", 9)], schema)

    assert write(spark, replacement, table, writer, BY_MODEL, replace={"model": "gpt/4 o"}) == 1

    expected = spark.createDataFrame([("gpt/4 o", "Q1", 9), ("llama", "Q1", 3), ("mistral", "Q1", 4)], schema)
    assertDataFrameEqual(read(spark, table, writer), expected)
    assert {r["partitionValues"]["model"] for r in actions(table, 1, "remove")} == {"gpt/4 o"}
    # several values at once: llama replaced by nothing, mistral by a new row
    two = spark.createDataFrame([("mistral", "Q3", 5)], schema)
    write(spark, two, table, writer, BY_MODEL, replace={"model": ["llama", "mistral"]})
    expected = spark.createDataFrame([("gpt/4 o", "Q1", 9), ("mistral", "Q3", 5)], schema)
    assertDataFrameEqual(read(spark, table, writer), expected)


def test_replace_refuses_rows_of_other_partitions_and_commits_nothing(spark, tmp_path, writer):
    schema = "model string, score int"
    table = str(tmp_path / "predictions")
    write(spark, spark.createDataFrame([("a", 1)], schema), table, writer, BY_MODEL)
    mixed = spark.createDataFrame([("a", 2), ("b", 3)], schema)

    with pytest.raises(WvbError, match="also hold"):
        write(spark, mixed, table, writer, BY_MODEL, replace={"model": "a"})

    assert storage.latest_version(table) == 0
    assertDataFrameEqual(read(spark, table, writer), spark.createDataFrame([("a", 1)], schema))
    if writer == "offline":  # its own files are gone too
        assert [p for p in glob.glob(os.path.join(table, "run-*")) if "/run-" in p] == [
            os.path.join(table, data_file(actions(table, 0, "add")[0]).split("/")[0])
        ]
    with pytest.raises(WvbError, match="partition columns"):
        write(spark, mixed, table, writer, BY_MODEL, replace={"score": 2})


def test_commit_metadata_round_trips_and_shows_in_history(spark, tmp_path, writer):
    info = {"rows_read": 120, "quarantined": {"bad_code": 3}, "splits": ["train", "test"]}
    df = spark.createDataFrame([(1, "x")], "id long, name string")
    table = str(tmp_path / "questions")
    write(spark, df, table, writer, metadata={**info, "run_id": "first"})
    write(spark, df, table, writer)

    assert storage.commit_info(table, version=0) == {**info, "run_id": "first"}
    assert set(storage.commit_info(table)) == {"run_id"}
    assert [entry["version"] for entry in storage.history(table)] == [1, 0]
    # the raw log carries it in the standard commitInfo.userMetadata field
    commit = [e["commitInfo"] for e in log_entries(table, 0) if "commitInfo" in e][0]
    assert json.loads(commit["userMetadata"])["rows_read"] == 120


def test_files_of_a_killed_write_are_never_read_nor_committed_later(spark, tmp_path, writer):
    table = str(tmp_path / "examples")
    committed = spark.createDataFrame(example_rows(9), EXAMPLES_SCHEMA)
    write(spark, committed, table, writer, BY_SPLIT)
    # runs killed after Spark wrote Parquet files, before the Delta commit: an offline run's
    # finished task output and a task still in Spark's _temporary, and stray table-level files
    orphan = spark.createDataFrame(example_rows(30, answer_offset=1), EXAMPLES_SCHEMA)
    orphan.write.mode("append").partitionBy("split").parquet(os.path.join(table, "run-killed"))
    orphan.write.mode("append").partitionBy("split").parquet(os.path.join(table, "run-killed2", "_temporary", "0"))
    orphan.write.mode("append").partitionBy("split").parquet(table)

    assert storage.latest_version(table) == 0
    assertDataFrameEqual(read(spark, table, writer), committed)
    assert len(DeltaTable(table).to_pandas()) == 9

    rerun = spark.createDataFrame(example_rows(6, answer_offset=3), EXAMPLES_SCHEMA)
    assert write(spark, rerun, table, writer, BY_SPLIT, expected_rows=6) == 1
    assertDataFrameEqual(read(spark, table, writer), rerun)
    assert sum(json.loads(a["stats"])["numRecords"] for a in actions(table, 1, "add")) == 6


def test_a_write_of_another_row_count_than_expected_is_refused(spark, tmp_path):
    table = str(tmp_path / "examples")
    df = spark.createDataFrame(example_rows(9), EXAMPLES_SCHEMA)
    with pytest.raises(WvbError, match="9 rows were written .* but 10 were meant") as error:
        write(spark, df, table, "offline", BY_SPLIT, expected_rows=10)
    assert error.value.exit_code == 1
    assert not storage.exists(table) and not glob.glob(os.path.join(table, "run-*"))


def test_an_empty_dataframe_makes_a_valid_empty_version(spark, tmp_path, writer):
    table = str(tmp_path / "examples")
    empty = spark.createDataFrame([], EXAMPLES_SCHEMA)

    assert write(spark, empty, table, writer, BY_SPLIT) == 0
    got = read(spark, table, writer)
    assert got.schema == EXAMPLES_SCHEMA and got.count() == 0
    assert DeltaTable(table).to_pandas().shape == (0, len(EXAMPLES_SCHEMA))

    write(spark, spark.createDataFrame(example_rows(6), EXAMPLES_SCHEMA), table, writer, BY_SPLIT)
    assert write(spark, empty, table, writer, BY_SPLIT) == 2
    assert read(spark, table, writer).count() == 0
    assert len(actions(table, 2, "remove")) == 3
    assert read(spark, table, writer, version=1).count() == 6

    # an empty table overwritten by no rows is still a version, carrying its run's metadata
    assert write(spark, empty, table, writer, BY_SPLIT, metadata={"run_id": "again-empty"}) == 3
    assert storage.version_of_run(table, "again-empty") == 3
    assert read(spark, table, writer).count() == 0


def test_overwrite_may_change_schema_and_partitioning(spark, tmp_path, writer):
    table = str(tmp_path / "participants")
    flat = spark.createDataFrame([(1, "a")], "id long, split string")
    write(spark, flat, table, writer)
    wider = spark.createDataFrame([(2, "b", 0.5)], "id long, split string, weight double")

    assert write(spark, wider, table, writer, BY_SPLIT) == 1

    assert DeltaTable(table).metadata().partition_columns == ["split"]
    assertDataFrameEqual(read(spark, table, writer), wider)
    assertDataFrameEqual(read(spark, table, writer, version=0), flat)


@pytest.mark.parametrize("first,second", [("native", "offline"), ("offline", "native")])
def test_a_table_of_one_writer_is_replaced_and_overwritten_by_the_other(
    spark, tmp_path, native_available, first, second
):
    if not native_available:
        pytest.skip("native Delta: Delta's jars are not available")
    schema = "model string, question_id string, score int"
    table = str(tmp_path / "predictions")
    write(spark, spark.createDataFrame([("a", "Q1", 1), ("b", "Q1", 2)], schema), table, first, BY_MODEL)
    write(spark, spark.createDataFrame([("a", "Q2", 3)], schema), table, second, BY_MODEL, replace={"model": "a"})
    expected = spark.createDataFrame([("a", "Q2", 3), ("b", "Q1", 2)], schema)
    for reader in ("native", "offline"):
        assertDataFrameEqual(read(spark, table, reader), expected)
    assert sorted(DeltaTable(table).to_pandas()["score"]) == [2, 3]

    write(spark, spark.createDataFrame([("c", "Q9", 7)], schema), table, first, BY_MODEL)
    for reader in ("native", "offline"):
        assertDataFrameEqual(read(spark, table, reader), spark.createDataFrame([("c", "Q9", 7)], schema))
        assertDataFrameEqual(read(spark, table, reader, version=1), expected)


def test_table_paths(tmp_path):
    warehouse = str(tmp_path)
    assert storage.table_path(warehouse, "questions") == os.path.join(warehouse, "questions")
    assert storage.table_path("s3://bucket/wh/", "examples") == "s3://bucket/wh/examples"
    assert storage.table_path("dbfs:/wh", "examples") == "dbfs:/wh/examples"
    assert storage.table_path("file:///tmp/wh", "examples") == "/tmp/wh/examples"
    with pytest.raises(WvbError, match="invalid table name"):
        storage.table_path(warehouse, "../x")
    assert not storage.exists(os.path.join(warehouse, "questions"))
    with pytest.raises(WvbError, match="no Delta table"):
        storage.commit_info(os.path.join(warehouse, "questions"))


def test_writer_choice(spark, native_available):
    assert choose_writer(spark, {"storage": {"writer": "offline"}}) == "offline"
    assert choose_writer(None, {"storage": {"writer": "auto"}}) == "offline"
    assert choose_writer(spark, {"storage": {"writer": "auto"}}) == ("native" if native_available else "offline")
    if native_available:
        assert choose_writer(spark, {"storage": {"writer": "native"}}) == "native"
    else:
        with pytest.raises(WvbError, match="Delta's Spark extension is not active"):
            choose_writer(spark, {"storage": {"writer": "native"}})
    with pytest.raises(WvbError, match="storage.writer must be one of"):
        choose_writer(spark, {"storage": {"writer": "parquet"}})


def test_bad_partition_arguments_are_one_line_errors(spark, tmp_path, writer):
    df = spark.createDataFrame([(1, 0.5)], "id long, score double")
    with pytest.raises(WvbError, match="column 'split' is not in the DataFrame"):
        write(spark, df, tmp_path / "t", writer, BY_SPLIT)
    with pytest.raises(WvbError, match="cannot partition by 'score' of type double"):
        write(spark, df, tmp_path / "t", writer, Layout(partition_by=("score",)))
    assert not storage.exists(str(tmp_path / "t"))


def test_long_strings_keep_a_prefix_as_minimum_and_no_maximum(spark, tmp_path):
    texts = ["How important is family in your life? " + c for c in "ab"]
    df = spark.createDataFrame([(i, text) for i, text in enumerate(texts)], "id long, text string")
    write(spark, df.coalesce(1), tmp_path / "questions", "offline")

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
        write(spark, spark.createDataFrame(example_rows(3), EXAMPLES_SCHEMA), tmp_path / "examples", "offline")
        assert spark.conf.get(key) == "INT96"  # the session's setting is given back
    finally:
        spark.conf.set(key, previous)

    table = str(tmp_path / "examples")
    for add in actions(table, 0, "add"):
        column = pq.ParquetFile(os.path.join(table, data_file(add))).schema.column(4)
        assert (column.name, column.physical_type) == ("recorded_at", "INT64")
    assert storage.schema(table) == EXAMPLES_SCHEMA


def test_overwritten_since_names_a_later_commit_that_rewrote_the_version(spark, tmp_path, writer):
    schema = "model string, score int"
    table = str(tmp_path / "distances")
    rows = spark.createDataFrame([("a", 1), ("b", 2)], schema)
    ours = write(spark, rows, table, writer, BY_MODEL, metadata={"stage": "ours"})
    assert storage.overwritten_since(table, ours) is None  # nothing after it
    # another writer replaces model b only: our model-a rows stand, our whole table does not
    other = write(spark, spark.createDataFrame([("b", 3)], schema), table, writer, BY_MODEL, replace={"model": "b"})
    assert storage.overwritten_since(table, ours, {"model": "a"}) is None
    described = storage.overwritten_since(table, ours, {"model": ["a", "b"]})
    assert described is not None and described.startswith(f"version {other} (")
    assert storage.overwritten_since(table, ours) is not None
    assert storage.overwritten_since(table, other) is None


def test_an_offline_replace_of_a_native_table_with_array_columns_is_accepted(spark, tmp_path, native_available):
    """Delta's Spark writer records arrays as holding nulls; rows from the same code, whose
    arrays cannot hold nulls, must still replace a partition (as `evaluate --models` does)."""
    if not native_available:
        pytest.skip("native Delta: Delta's jars are not available")
    schema = T.StructType(
        [
            T.StructField("model", T.StringType()),
            T.StructField("counts", T.ArrayType(T.DoubleType(), containsNull=False)),
        ]
    )
    table = str(tmp_path / "histograms")
    write(spark, spark.createDataFrame([("a", [1.0]), ("b", [2.0])], schema), table, "native", BY_MODEL)
    write(spark, spark.createDataFrame([("a", [3.0, 4.0])], schema), table, "offline", BY_MODEL, replace={"model": "a"})
    for reader in ("native", "offline"):
        rows = sorted((r["model"], list(r["counts"])) for r in read(spark, table, reader).collect())
        assert rows == [("a", [3.0, 4.0]), ("b", [2.0])]
    # a real difference of type is still refused
    other = spark.createDataFrame([("a", [3])], "model string, counts array<int>")
    with pytest.raises(WvbError, match="differ from"):
        write(spark, other, table, "offline", BY_MODEL, replace={"model": "a"})
