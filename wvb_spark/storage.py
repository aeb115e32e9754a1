"""Delta tables at `<warehouse>/<name>`, written natively or by the offline commit.

Delta's JVM jars come from Maven Central, which is not always reachable, so two
writers sit behind one interface (see README "Tables and storage"):

* native  - Delta's Spark extension is active (Databricks, `--packages io.delta:...`,
  `configure_spark_with_delta_pip`): plain `format("delta")`.
* offline - Spark writes the Parquet files in parallel into the table directory and
  the driver commits them as one Delta transaction with `deltalake` (delta-rs):
  add actions with partition values and per-file column statistics read from the
  Parquet footers; an overwrite removes the previous files in the same commit.

Either way the result is a real Delta table. Readers of an offline table take the
snapshot's file list from the Delta log, never the directory listing: the directory
also holds removed files and files of runs killed before their commit.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from wvb_spark.errors import WvbError

WRITERS = ("auto", "native", "offline")
PARTITION_COLUMN_TYPES = (T.StringType, T.ByteType, T.ShortType, T.IntegerType, T.LongType,
                          T.DateType, T.BooleanType)
# Spark writes a null (or empty string) partition value as this directory name.
HIVE_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
# Like Delta Spark: string statistics keep a 32-character prefix (a prefix is a valid
# lower bound; a longer maximum is left out rather than guessed).
STRING_STATS_PREFIX = 32
NATIVE_HINT = (
    "storage.writer=native but Delta's Spark extension is not active: run on Databricks, "
    "or spark-submit --packages io.delta:delta-spark_2.13:4.x with "
    "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension, "
    "or add --set spark.delta_pip=true (needs network), or use --set storage.writer=offline"
)


# --------------------------------------------------------------------------- paths

def _is_uri(location: str) -> bool:
    return "://" in location or location.startswith(("file:", "dbfs:"))


def table_path(warehouse: str, name: str) -> str:
    """Where table `name` lives: `<warehouse>/<name>`; local paths made absolute,
    URIs (s3://, abfss://, dbfs:/, file:/) kept as they are."""
    if not name or "/" in name or name.startswith((".", "_")):
        raise WvbError(f"invalid table name {name!r}")
    warehouse = str(warehouse)
    if _is_uri(warehouse):
        if warehouse.startswith("file:"):
            return os.path.join(_file_uri_to_path(warehouse), name)
        return warehouse.rstrip("/") + "/" + name
    return os.path.join(os.path.abspath(warehouse), name)


def _file_uri_to_path(uri: str) -> str:
    return os.path.abspath(unquote(urlparse(uri).path))


def _delta_rs_uri(location: str) -> str:
    """The same location for deltalake and pyarrow: Databricks' dbfs:/ through its
    /dbfs FUSE mount; everything else unchanged."""
    if location.startswith("dbfs:/"):
        return "/dbfs/" + location[len("dbfs:/"):].lstrip("/")
    return location


def _join(location: str, relative: str) -> str:
    if "://" in relative or relative.startswith("/"):
        return relative  # Delta allows absolute paths in add actions
    return location.rstrip("/") + "/" + relative


# --------------------------------------------------------------------------- reading the log

def _open_delta(location: str, version: int | None = None, without_files: bool = False):
    """deltalake.DeltaTable at `location`, or None when there is no table there."""
    from deltalake import DeltaTable

    uri = _delta_rs_uri(location)
    if not DeltaTable.is_deltatable(uri):
        return None
    if version is None:
        return DeltaTable(uri, without_files=without_files)
    latest = DeltaTable(uri, without_files=True).version()
    if not 0 <= version <= latest:
        raise WvbError(f"table {location} has no version {version} (versions 0..{latest})")
    return DeltaTable(uri, version=version, without_files=without_files)


def _require_delta(warehouse: str, name: str, version: int | None = None, without_files=False):
    location = table_path(warehouse, name)
    table = _open_delta(location, version, without_files)
    if table is None:
        raise WvbError(f"no Delta table {name!r} at {location}")
    return location, table


def table_exists(warehouse: str, name: str, config: dict | None = None) -> bool:
    """True when `<warehouse>/<name>` holds a Delta table (either writer)."""
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(_delta_rs_uri(table_path(warehouse, name)))


# The command that writes each table, for "run ... first" hints.
WRITTEN_BY = {
    **{name: "wvb build" for name in ("questions", "participants", "examples", "quarantine", "build_runs")},
    "probe": "wvb probe", "probe_groups": "wvb probe",
    "predictions": "wvb predictions import or wvb baselines",
    **{name: "wvb evaluate" for name in ("histograms", "distances", "summary")},
}


def require_tables(warehouse: str, names, config: dict | None = None, hint: str | None = None) -> None:
    """One-line error naming the first missing table and the command that writes it."""
    for name in names:
        if not table_exists(warehouse, name, config):
            advice = hint or f"run {WRITTEN_BY.get(name, 'the stage that writes it')} first"
            raise WvbError(f"no {name} table in {warehouse} ({advice})")


def table_version(warehouse: str, name: str, config: dict | None = None) -> int:
    """The table's latest Delta version."""
    return _require_delta(warehouse, name, without_files=True)[1].version()


def _partition_files(warehouse: str, name: str, column: str) -> list[tuple] | None:
    """(partition value, numRecords or None) per live file, from the Delta log."""
    _, table = _require_delta(warehouse, name)
    import pyarrow as pa

    actions = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    values = actions.get(f"partition.{column}")
    if values is None:
        return None
    return list(zip(values, actions.get("num_records") or [None] * len(values)))


def partition_rows(warehouse: str, name: str, column: str, config: dict | None = None) -> dict | None:
    """Rows per value (as strings; None for null) of partition column `column`, summed from
    the Delta log's file statistics without scanning data (a file without statistics
    counts 0). None when the table is not partitioned by `column`."""
    files = _partition_files(warehouse, name, column)
    if files is None:
        return None
    rows: dict = {}
    for value, count in files:
        rows[value] = rows.get(value, 0) + (count or 0)
    return rows


def partition_values(warehouse: str, name: str, column: str, config: dict | None = None) -> list | None:
    """Distinct values (as strings; None for null) of partition column `column` over the
    table's live, non-empty files — read from the Delta log, without scanning data.
    None when the table is not partitioned by `column`."""
    files = _partition_files(warehouse, name, column)
    if files is None:
        return None
    present = {value for value, count in files if count is None or count > 0}
    return sorted(present, key=lambda value: (value is None, str(value)))


def history(warehouse: str, name: str, config: dict | None = None,
            limit: int | None = None) -> list[dict]:
    """The commitInfo of each version, newest first (each dict has a `version` key).
    Read through deltalake, so it works for tables of either writer."""
    return _require_delta(warehouse, name, without_files=True)[1].history(limit)


def commit_info(warehouse: str, name: str, config: dict | None = None,
                version: int | None = None) -> dict | None:
    """The `commit_info` dict given to write_table for that version (default: latest);
    None when that commit carried none. Stored as the commit's `userMetadata` (JSON),
    the field both Delta Spark and delta-rs expose, e.g. in DESCRIBE HISTORY."""
    _, table = _require_delta(warehouse, name, without_files=True)
    wanted = table.version() if version is None else version
    for entry in table.history():
        if entry.get("version") == wanted:
            raw = entry.get("userMetadata")
            return json.loads(raw) if raw else None
    raise WvbError(f"table {name!r} has no commit for version {wanted}")


def delta_schema(warehouse: str, name: str, config: dict | None = None,
                 version: int | None = None) -> T.StructType:
    """The table's schema as a Spark StructType (Delta's schema JSON is Spark's)."""
    _, table = _require_delta(warehouse, name, version, without_files=True)
    return T.StructType.fromJson(json.loads(table.schema().to_json()))


# --------------------------------------------------------------------------- writer choice

def native_delta_active(spark: SparkSession) -> bool:
    """Delta's Spark extension is usable: on Databricks, or the extension is configured
    and its JVM classes load."""
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return True
    try:
        extensions = spark.conf.get("spark.sql.extensions", "") or ""
    except Exception:  # noqa: BLE001 - a conf we cannot read means "not configured"
        return False
    if "DeltaSparkSessionExtension" not in extensions:
        return False
    try:
        jvm = spark.sparkContext._jvm
        jvm.java.lang.Thread.currentThread().getContextClassLoader().loadClass(
            "io.delta.tables.DeltaTable")
        return True
    except Exception:  # noqa: BLE001 - py4j raises its own error types
        return False


def choose_writer(spark: SparkSession, config: dict) -> str:
    """'native' or 'offline' from config storage.writer (auto | native | offline)."""
    wanted = (config or {}).get("storage", {}).get("writer", "auto")
    if wanted not in WRITERS:
        raise WvbError(f"storage.writer must be one of {', '.join(WRITERS)}, got {wanted!r}")
    if wanted == "offline":
        return "offline"
    active = native_delta_active(spark)
    if wanted == "native" and not active:
        raise WvbError(NATIVE_HINT)
    return "native" if active else "offline"


# --------------------------------------------------------------------------- write / read

def write_table(spark: SparkSession, df: DataFrame, warehouse: str, name: str, config: dict,
                *, partition_by=(), sort_within=(), replace_partitions: dict | None = None,
                commit_info: dict | None = None, range_files: int | None = None) -> int:
    """Overwrite table `name` with `df` as one Delta commit; return the new version.

    partition_by: partition columns (few values each: split, model).
    sort_within: columns each file is sorted by (e.g. question_id), for data skipping.
    replace_partitions: e.g. {"model": "x"} replaces only that partition; `df` must hold
        only rows of it, and the schema and partitioning must match the table's.
    commit_info: a JSON-serialisable dict stored with the commit (see `commit_info()`).
    range_files: spread the rows over this many write tasks by ranges of
        (partition_by, sort_within): a large partition value (the train split) is then
        written by several tasks in parallel, each file holding a contiguous range of
        the sort columns, which keeps per-file min/max statistics useful for skipping.
    """
    partition_by = list(partition_by)
    sort_within = list(sort_within)
    _check_write_arguments(df, partition_by, sort_within, replace_partitions)
    location = table_path(warehouse, name)
    user_metadata = None if commit_info is None else json.dumps(commit_info, sort_keys=True,
                                                                default=str)
    laid_out = _lay_out(df, partition_by, sort_within, range_files)
    if choose_writer(spark, config) == "native":
        return _write_native(spark, laid_out, location, partition_by, replace_partitions,
                             user_metadata)
    return _write_offline(spark, laid_out, location, partition_by, replace_partitions,
                          user_metadata)


def read_table(spark: SparkSession, warehouse: str, name: str, config: dict,
               version: int | None = None) -> DataFrame:
    """The table as a DataFrame (latest version, or `version` by time travel)."""
    location = table_path(warehouse, name)
    if choose_writer(spark, config) == "native":
        from pyspark.errors import AnalysisException

        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", int(version))
        try:
            return reader.load(location)
        except AnalysisException as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise WvbError(f"cannot read Delta table {name!r} at {location}: {first_line}") from None
    _, table = _require_delta(warehouse, name, version)
    schema = T.StructType.fromJson(json.loads(table.schema().to_json()))
    files = [_join(location, unquote(path))
             for path in table.get_add_actions(flatten=False).column("path").to_pylist()]
    if not files:
        return spark.createDataFrame([], schema)
    # The schema (partition column types included) comes from the Delta log, not inference.
    data = spark.read.schema(schema).option("basePath", location).parquet(*files)
    return data.select(*[data[field.name] for field in schema.fields])


def _check_write_arguments(df, partition_by, sort_within, replace_partitions):
    fields = {field.name: field for field in df.schema.fields}
    for column in partition_by + sort_within:
        if column not in fields:
            raise WvbError(f"column {column!r} is not in the DataFrame ({', '.join(fields)})")
    for column in partition_by:
        if not isinstance(fields[column].dataType, PARTITION_COLUMN_TYPES):
            raise WvbError(f"cannot partition by {column!r} of type "
                           f"{fields[column].dataType.simpleString()}")
    if partition_by and len(partition_by) == len(fields):
        raise WvbError("a table needs at least one column that is not a partition column")
    if replace_partitions is not None:
        unknown = sorted(set(replace_partitions) - set(partition_by))
        if not replace_partitions or unknown:
            raise WvbError(f"replace_partitions keys must be partition columns "
                           f"({', '.join(partition_by) or 'none'}), got {sorted(replace_partitions)}")


def _lay_out(df: DataFrame, partition_by: list, sort_within: list, range_files: int | None = None) -> DataFrame:
    """Few, large files: all rows of one partition value go to one task (one file), or
    with `range_files` to that many tasks by ranges of (partition_by, sort_within);
    sorted by the partition columns first - the order Spark's partitioned writer needs,
    so it keeps ours instead of re-sorting - then by `sort_within`."""
    if range_files:
        df = df.repartitionByRange(int(range_files), *partition_by, *sort_within)
    elif partition_by:
        df = df.repartition(*partition_by)
    if partition_by or sort_within:
        df = df.sortWithinPartitions(*partition_by, *sort_within)
    return df


def _write_native(spark, df, location, partition_by, replace_partitions, user_metadata) -> int:
    writer = df.write.format("delta").mode("overwrite")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if replace_partitions:
        predicate = " AND ".join(f"{_sql_identifier(key)} = {_sql_literal(value)}"
                                 for key, value in sorted(replace_partitions.items()))
        writer = writer.option("replaceWhere", predicate)
    else:
        writer = writer.option("overwriteSchema", "true")
    if user_metadata is not None:
        writer = writer.option("userMetadata", user_metadata)
    writer.save(location)
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, location).history(1).collect()[0]["version"])


def _sql_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _sql_literal(value) -> str:
    if value is None:
        raise WvbError("replace_partitions values cannot be null")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


# --------------------------------------------------------------------------- offline commit

def _write_offline(spark, df, location, partition_by, replace_partitions, user_metadata) -> int:
    """Spark writes Parquet into the table directory; the driver commits it with deltalake.

    The files of this write are found by listing the directory before and after Spark's
    write. Staging elsewhere and moving would copy every byte on object stores, and
    Spark's output names carry no id we can pass in; a listing diff needs neither. It
    assumes one writer per table at a time (a concurrent Delta commit would be refused
    anyway, as deltalake commits against the version it read).
    """
    from deltalake import CommitProperties
    from deltalake.transaction import create_table_with_add_actions
    from pyarrow import fs as pafs

    schema = _delta_schema_of(df.schema)
    current = _open_delta(location)
    if replace_partitions is not None and current is not None:
        _check_same_layout(current, df.schema, partition_by, location)
    filesystem, root = pafs.FileSystem.from_uri(_absolute_for_pyarrow(location))
    before = {info.path for info in _data_files(filesystem, root)}
    read_version = None if current is None else current.version()
    try:
        with _timestamps_as_micros(spark):
            df.write.mode("append").partitionBy(*partition_by).parquet(location)
        _remove_spark_leftovers(filesystem, root)
        new_files = [info for info in _data_files(filesystem, root) if info.path not in before]
        adds = [_add_action(filesystem, root, info, partition_by) for info in new_files]
        if replace_partitions is not None:
            _check_rows_in_partitions(adds, replace_partitions, location)
        properties = CommitProperties(
            custom_metadata=None if user_metadata is None else {"userMetadata": user_metadata})
        delta_uri = _delta_rs_uri(location)
        if current is None:
            create_table_with_add_actions(delta_uri, schema, adds, mode="error",
                                          partition_by=partition_by,
                                          commit_properties=properties)
        elif replace_partitions is not None:
            filters = [(key, "=", _partition_string(value))
                       for key, value in sorted(replace_partitions.items())]
            current.create_write_transaction(adds, mode="overwrite", schema=schema,
                                             partition_by=partition_by,
                                             partition_filters=filters,
                                             commit_properties=properties)
        elif list(current.metadata().partition_columns) == partition_by:
            current.create_write_transaction(adds, mode="overwrite", schema=schema,
                                             partition_by=partition_by,
                                             commit_properties=properties)
        else:
            # A different partitioning needs new table metadata (CREATE OR REPLACE);
            # the older versions stay readable by time travel.
            create_table_with_add_actions(delta_uri, schema, adds, mode="overwrite",
                                          partition_by=partition_by,
                                          commit_properties=properties)
    except BaseException:
        _delete_uncommitted(filesystem, root, before, location, read_version)
        raise
    return _open_delta(location, without_files=True).version()


def _delete_uncommitted(filesystem, root, before, location, read_version) -> None:
    """After a failed write: delete the files it left, unless its commit did land
    (then they belong to the table). Uncommitted files are invisible to readers;
    this only saves space."""
    after = _open_delta(location, without_files=True)
    if (None if after is None else after.version()) != read_version:
        return
    for info in _data_files(filesystem, root):
        if info.path not in before:
            filesystem.delete_file(info.path)


def _absolute_for_pyarrow(location: str) -> str:
    uri = _delta_rs_uri(location)
    return uri if "://" in uri else os.path.abspath(uri)


def _delta_schema_of(spark_schema: T.StructType):
    """Delta's schemaString is Spark's schema JSON, so the types carry over exactly."""
    from deltalake import Schema

    return Schema.from_json(spark_schema.json())


def _check_same_layout(current, spark_schema, partition_by, location):
    table_partitions = list(current.metadata().partition_columns)
    if table_partitions != partition_by:
        raise WvbError(f"{location} is partitioned by {table_partitions}, not {partition_by}; "
                       f"replace_partitions needs the same partitioning")
    table_fields = [(f["name"], f["type"]) for f in json.loads(current.schema().to_json())["fields"]]
    new_fields = [(f["name"], f["type"]) for f in json.loads(spark_schema.json())["fields"]]
    if table_fields != new_fields:
        raise WvbError(f"replace_partitions: the DataFrame's columns {new_fields} differ from "
                       f"the table's {table_fields} at {location}")


def _check_rows_in_partitions(adds, replace_partitions, location):
    wanted = {key: _partition_string(value) for key, value in replace_partitions.items()}
    for add in adds:
        got = {key: add.partition_values.get(key) for key in wanted}
        if got != wanted:
            raise WvbError(f"replace_partitions {wanted}: the DataFrame also holds rows of "
                           f"partition {got}; nothing was committed to {location}")


def _partition_string(value) -> str:
    """A partition value as Delta (and Spark's directory names) write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


@contextmanager
def _timestamps_as_micros(spark):
    """Parquet INT96 timestamps would need a newer Delta protocol; micros keep 1/2."""
    key = "spark.sql.parquet.outputTimestampType"
    previous = spark.conf.get(key, None)
    spark.conf.set(key, "TIMESTAMP_MICROS")
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)


def _is_hidden(relative: str) -> bool:
    """Spark's and Delta's rule: path parts starting with '_' or '.' are not data."""
    return any(part.startswith(("_", ".")) for part in relative.split("/"))


def _data_files(filesystem, root: str) -> list:
    from pyarrow import fs as pafs

    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    return [info for info in filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File and info.path.endswith(".parquet")
            and not _is_hidden(_relative(root, info.path))]


def _relative(root: str, path: str) -> str:
    return posixpath.relpath(path, root.rstrip("/") or "/")


def _remove_spark_leftovers(filesystem, root: str) -> None:
    """`_SUCCESS` markers and `_temporary` directories of (possibly killed) Spark jobs."""
    from pyarrow import fs as pafs

    for leftover in ("_temporary", "_SUCCESS"):
        path = posixpath.join(root, leftover)
        info = filesystem.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            filesystem.delete_dir(path)
        elif info.type == pafs.FileType.File:
            filesystem.delete_file(path)
    # Hadoop's local file system leaves a checksum file next to each marker.
    crc = posixpath.join(root, "._SUCCESS.crc")
    if filesystem.get_file_info(crc).type == pafs.FileType.File:
        filesystem.delete_file(crc)


def _add_action(filesystem, root, info, partition_by):
    from deltalake.transaction import AddAction

    relative = _relative(root, info.path)  # decoded; deltalake encodes it in the log
    return AddAction(
        path=relative,
        size=int(info.size),
        partition_values=_partition_values(relative, partition_by),
        modification_time=int(info.mtime_ns // 1_000_000),
        data_change=True,
        stats=json.dumps(_footer_stats(filesystem, info.path, set(partition_by)),
                         separators=(",", ":")),
    )


def _partition_values(relative: str, partition_by: list) -> dict:
    """From Spark's `col=value/` directories (values %XX-escaped by Spark)."""
    found = {}
    for part in relative.split("/")[:-1]:
        key, sep, value = part.partition("=")
        if sep:
            found[unquote(key)] = None if value == HIVE_NULL_PARTITION else unquote(value)
    missing = [column for column in partition_by if column not in found]
    if missing:
        raise WvbError(f"file {relative} has no directory for partition column(s) {missing}")
    return {column: found[column] for column in partition_by}


def _footer_stats(filesystem, path: str, partition_columns: set) -> dict:
    """Delta file statistics from the Parquet footer alone (no data is read):
    numRecords, and per top-level primitive column nullCount, minValues, maxValues
    (a column is left out of min/max when any row group lacks them)."""
    import pyarrow.parquet as pq

    with filesystem.open_input_file(path) as handle:
        metadata = pq.ParquetFile(handle).metadata
    stats = {"numRecords": metadata.num_rows, "minValues": {}, "maxValues": {}, "nullCount": {}}
    top_level = {field.name for field in metadata.schema.to_arrow_schema()}
    for index in range(metadata.num_columns):
        column = metadata.schema.column(index)
        name = column.path
        if name not in top_level or name in partition_columns or column.max_repetition_level:
            continue
        chunks = [metadata.row_group(group).column(index).statistics
                  for group in range(metadata.num_row_groups)]
        if all(s is not None and s.has_null_count for s in chunks):
            stats["nullCount"][name] = sum(s.null_count for s in chunks)
        if chunks and all(s is not None and s.has_min_max for s in chunks):
            low = _stat_value(min(s.min for s in chunks), "min")
            high = _stat_value(max(s.max for s in chunks), "max")
            if low is not None:
                stats["minValues"][name] = low
            if high is not None:
                stats["maxValues"][name] = high
    return stats


def _stat_value(value, bound: str):
    """A footer min/max as Delta's stats JSON holds it, or None when it cannot be
    stated exactly (a missing statistic only disables skipping; a wrong one loses rows)."""
    if isinstance(value, bool) or isinstance(value, bytes):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        if len(value) <= STRING_STATS_PREFIX:
            return value
        return value[:STRING_STATS_PREFIX] if bound == "min" else None
    if isinstance(value, datetime):
        # Delta keeps milliseconds: round the lower bound down, the upper bound up.
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        extra = value.microsecond % 1000
        if extra:
            value -= timedelta(microseconds=extra)
            if bound == "max":
                value += timedelta(milliseconds=1)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    return None  # decimals and anything else: left out rather than rounded
