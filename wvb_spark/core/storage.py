"""Delta tables at one location each, written natively or by the offline commit.

Delta's JVM jars come from Maven Central, which is not always reachable, so two
writers sit behind one interface (see README "Tables and storage"):

* native  - Delta's Spark extension is active (Databricks, `--packages io.delta:...`,
  a local session whose jars resolved): `format("delta")` and Delta's own
  conflict detection.
* offline - Spark writes the Parquet files in parallel under a directory that only
  this run uses (`<table>/run-<run id>/`), and the driver commits exactly those
  files as one Delta transaction with `deltalake` (delta-rs): add actions with
  partition values and footer statistics; an overwrite removes the previous files
  in the same commit. A commit that loses a race is retried only when the winner
  touched other partitions; otherwise it is refused (exit 1) and its files deleted.

Either way the result is a real Delta table; readers take the snapshot's file list
from the log, never the directory (which also holds removed files and files of
killed runs). This module knows Delta, not the tables: see `warehouse` for those.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from wvb_spark.core.errors import ConflictError, InputError, RunError
from wvb_spark.core.session import temporary_settings

PARTITION_COLUMN_TYPES = (T.StringType, T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.DateType, T.BooleanType)
# Spark writes a null (or empty string) partition value as this directory name.
HIVE_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
# Like Delta Spark: string statistics keep a 32-character prefix (a prefix is a valid
# lower bound; a longer maximum is left out rather than guessed).
STRING_STATS_PREFIX = 32
RUN_DIRECTORY_PREFIX = "run-"  # <table>/run-<run id>/: the files of one offline write
COMMIT_ATTEMPTS = 20  # offline: retries of a commit that lost a race to other partitions
# Delta Spark's exceptions for a transaction that lost a race (class names in the Java error).
NATIVE_CONFLICTS = (
    "ConcurrentAppendException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "MetadataChangedException",
    "ConcurrentTransactionException",
    "ProtocolChangedException",
    "ConcurrentWriteException",
    "DELTA_CONCURRENT",
    "DELTA_METADATA_CHANGED",
    "DELTA_PROTOCOL_CHANGED",
)


@dataclass(frozen=True)
class Layout:
    """How a write lays out its files (see `write`)."""

    partition_by: tuple = ()
    sort_within: tuple = ()
    range_files: int | None = None
    laid_out: bool = False  # the caller spread and sorted the rows already (see `_lay_out`)


def new_run_id() -> str:
    """Sortable and unique across processes and machines: UTC time + random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:10]


# --------------------------------------------------------------------------- paths


def _is_uri(location: str) -> bool:
    return "://" in location or location.startswith(("file:", "dbfs:"))


def table_path(root: str, name: str) -> str:
    """Where table `name` lives: `<root>/<name>`; local paths made absolute,
    URIs (s3://, abfss://, dbfs:/, file:/) kept as they are."""
    if not name or "/" in name or name.startswith((".", "_")):
        raise InputError(f"invalid table name {name!r}")
    root = str(root)
    if _is_uri(root):
        if root.startswith("file:"):
            return os.path.join(_file_uri_to_path(root), name)
        return root.rstrip("/") + "/" + name
    return os.path.join(os.path.abspath(root), name)


def _file_uri_to_path(uri: str) -> str:
    return os.path.abspath(unquote(urlparse(uri).path))


def _delta_rs_uri(location: str) -> str:
    """The same location for deltalake and pyarrow: Databricks' dbfs:/ through its
    /dbfs FUSE mount; everything else unchanged."""
    if location.startswith("dbfs:/"):
        return "/dbfs/" + location[len("dbfs:/") :].lstrip("/")
    return location


def _join(location: str, relative: str) -> str:
    if "://" in relative or relative.startswith("/"):
        return relative  # Delta allows absolute paths in add actions
    return location.rstrip("/") + "/" + relative


def _filesystem(location: str):
    from pyarrow import fs as pafs

    uri = _delta_rs_uri(location)
    return pafs.FileSystem.from_uri(uri if "://" in uri else os.path.abspath(uri))


# --------------------------------------------------------------------------- reading the log


def open_delta(location: str, version: int | None = None, without_files: bool = False):
    """deltalake.DeltaTable at `location`, or None when there is no table there."""
    from deltalake import DeltaTable

    uri = _delta_rs_uri(location)
    if not DeltaTable.is_deltatable(uri):
        return None
    if version is None:
        return DeltaTable(uri, without_files=without_files)
    latest = DeltaTable(uri, without_files=True).version()
    if not 0 <= version <= latest:
        raise InputError(f"table {location} has no version {version} (versions 0..{latest})")
    return DeltaTable(uri, version=version, without_files=without_files)


def require_delta(location: str, version: int | None = None, without_files: bool = False):
    table = open_delta(location, version, without_files)
    if table is None:
        raise InputError(f"no Delta table at {location}")
    return table


def exists(location: str) -> bool:
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(_delta_rs_uri(location))


def latest_version(location: str) -> int | None:
    table = open_delta(location, without_files=True)
    return None if table is None else table.version()


def history(location: str, limit: int | None = None) -> list[dict]:
    """The commitInfo of each version, newest first (each dict has a `version` key)."""
    return require_delta(location, without_files=True).history(limit)


def user_metadata(entry: dict) -> dict | None:
    """The dict a write stored with its commit (`userMetadata`, JSON), or None."""
    raw = entry.get("userMetadata")
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return None


def commit_info(location: str, version: int | None = None) -> dict | None:
    """The metadata dict stored with that version's commit (default: latest)."""
    table = require_delta(location, without_files=True)
    wanted = table.version() if version is None else version
    for entry in table.history():
        if entry.get("version") == wanted:
            return user_metadata(entry)
    raise InputError(f"table {location} has no commit for version {wanted}")


def schema(location: str, version: int | None = None) -> T.StructType:
    """The table's schema as a Spark StructType (Delta's schema JSON is Spark's)."""
    table = require_delta(location, version, without_files=True)
    return T.StructType.fromJson(json.loads(table.schema().to_json()))


def partition_columns(location: str) -> list[str]:
    return list(require_delta(location, without_files=True).metadata().partition_columns)


def partition_rows(location: str, column: str, version: int | None = None) -> dict | None:
    """Rows per value (as strings; None for null) of partition column `column`, summed from
    the log's file statistics without scanning data (a file without statistics counts 0).
    None when the table is not partitioned by `column`."""
    import pyarrow as pa

    actions = pa.table(require_delta(location, version).get_add_actions(flatten=True)).to_pydict()
    values = actions.get(f"partition.{column}")
    if values is None:
        return None
    rows: dict = {}
    for value, count in zip(values, actions.get("num_records") or [None] * len(values)):
        rows[value] = rows.get(value, 0) + (count or 0)
    return rows


def commit_actions(location: str, version: int) -> list[dict]:
    """The actions of one commit, read from its JSON file in `_delta_log`."""
    filesystem, root = _filesystem(location)
    path = posixpath.join(root, "_delta_log", f"{version:020d}.json")
    with filesystem.open_input_stream(path) as handle:
        text = handle.read().decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def committed_rows(location: str, version: int) -> int:
    """Rows the commit added: its add actions' numRecords (Delta's and our statistics)."""
    total = 0
    for action in commit_actions(location, version):
        add = action.get("add")
        if add and add.get("dataChange", True):
            stats = json.loads(add.get("stats") or "{}")
            total += int(stats.get("numRecords", 0))
    return total


def version_of_run(location: str, run_id: str, newest: int = 50) -> int | None:
    """The version committed by write `run_id` (its metadata carries the id), if any."""
    table = open_delta(location, without_files=True)
    if table is None:
        return None
    for entry in table.history(newest):
        if (user_metadata(entry) or {}).get("run_id") == run_id:
            return int(entry["version"])
    return None


def describe_commit(location: str, version: int) -> str:
    """'version 7 (wvb evaluate, run 2026...-ab12, 2026-12-01 20:11:03 UTC)' for messages."""
    for entry in require_delta(location, without_files=True).history():
        if entry.get("version") != version:
            continue
        meta = user_metadata(entry) or {}
        who = meta.get("stage") or entry.get("operation") or "another writer"
        run = f", run {meta['run_id']}" if meta.get("run_id") else ""
        stamp = entry.get("timestamp")
        when = (
            datetime.fromtimestamp(stamp / 1000, timezone.utc).strftime(", %Y-%m-%d %H:%M:%S UTC")
            if isinstance(stamp, (int, float))
            else ""
        )
        return f"version {version} ({who}{run}{when})"
    return f"version {version}"


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
    jvm = getattr(spark, "_jvm", None)
    if jvm is None:  # Spark Connect: the server has the extension configured
        return True
    try:
        jvm.java.lang.Thread.currentThread().getContextClassLoader().loadClass("io.delta.tables.DeltaTable")
        return True
    except Exception:  # noqa: BLE001 - py4j raises its own error types
        return False


# --------------------------------------------------------------------------- write / read


def write(
    spark: SparkSession,
    df: DataFrame,
    location: str,
    *,
    native: bool,
    layout: Layout = Layout(),
    replace: dict | None = None,
    metadata: dict | None = None,
    expected_rows: int | None = None,
) -> int:
    """Overwrite the table at `location` with `df` as one Delta commit; return its version.

    replace: e.g. {"model": "x"} or {"model": ["x", "y"]} replaces only those partitions;
        `df` must hold only rows of them, and the schema and partitioning must match the table's.
    metadata: a JSON-serialisable dict stored with the commit (`userMetadata`); a
        `run_id` is added so the commit can be found again.
    expected_rows: the rows the caller meant to write; a commit holding another number
        is refused (offline: before it lands) or reported (native) - exit 1.
    """
    partition_by = list(layout.partition_by)
    replace = _as_value_lists(replace)
    _check_write_arguments(df, partition_by, list(layout.sort_within), replace)
    metadata = {**(metadata or {}), "run_id": (metadata or {}).get("run_id") or new_run_id()}
    laid_out = _lay_out(df, partition_by, list(layout.sort_within), layout.range_files, layout.laid_out)
    with temporary_settings(spark, LAID_OUT_SETTINGS if layout.laid_out else {}):
        if native:
            version = _write_native(spark, laid_out, location, partition_by, replace, metadata)
        else:
            version = _write_offline(spark, laid_out, location, partition_by, replace, metadata, expected_rows)
    if expected_rows is not None:
        written = committed_rows(location, version)
        if written != expected_rows:
            raise RunError(
                f"{location} version {version} holds {written} new rows but {expected_rows} were meant to be written"
            )
    return version


def read(spark: SparkSession, location: str, *, native: bool, version: int | None = None) -> DataFrame:
    """The table as a DataFrame (latest version, or `version` by time travel)."""
    if native:
        return _read_native(spark, location, version)
    table = require_delta(location, version)
    spark_schema = T.StructType.fromJson(json.loads(table.schema().to_json()))
    import pyarrow as pa

    actions = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    if not actions.get("path"):
        return spark.createDataFrame([], spark_schema)
    partitions = list(table.metadata().partition_columns)
    data_columns = [f for f in spark_schema.fields if f.name not in partitions]
    frames: dict[tuple, list[str]] = {}
    # Files are grouped by partition values, which come from the log (not from paths).
    for index, path in enumerate(actions["path"]):
        key = tuple(actions[f"partition.{column}"][index] for column in partitions)
        frames.setdefault(key, []).append(_join(location, unquote(path)))
    # The empty frame makes every column nullable as the table declares it (a literal
    # partition column alone would be "not null"); the optimizer drops it.
    result = spark.createDataFrame([], spark_schema)
    for key, files in sorted(frames.items(), key=lambda item: [str(v) for v in item[0]]):
        part = spark.read.schema(T.StructType(data_columns)).parquet(*files)
        for column, value in zip(partitions, key):
            part = part.withColumn(column, F.lit(value).cast(spark_schema[column].dataType))
        result = result.unionByName(part)
    return result.select(*[f.name for f in spark_schema.fields])


def _read_native(spark, location, version):
    from pyspark.errors import AnalysisException

    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", int(version))
    try:
        return reader.load(location)
    except AnalysisException as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InputError(f"cannot read Delta table at {location}: {first_line}") from None


def _check_write_arguments(df, partition_by, sort_within, replace):
    fields = {field.name: field for field in df.schema.fields}
    for column in partition_by + sort_within:
        if column not in fields:
            raise InputError(f"column {column!r} is not in the DataFrame ({', '.join(fields)})")
    for column in partition_by:
        if not isinstance(fields[column].dataType, PARTITION_COLUMN_TYPES):
            raise InputError(f"cannot partition by {column!r} of type {fields[column].dataType.simpleString()}")
    if partition_by and len(partition_by) == len(fields):
        raise InputError("a table needs at least one column that is not a partition column")
    if replace is not None:
        unknown = sorted(set(replace) - set(partition_by))
        if not replace or unknown:
            raise InputError(
                f"replace keys must be partition columns ({', '.join(partition_by) or 'none'}), got {sorted(replace)}"
            )
        if any(not values or None in values for values in replace.values()):
            raise InputError("replace values cannot be null or empty")


def _lay_out(
    df: DataFrame, partition_by: list, sort_within: list, range_files: int | None = None, laid_out: bool = False
) -> DataFrame:
    """Few, large files: all rows of one partition value go to one task (one file), or
    with `range_files` to that many tasks by ranges of (partition_by, sort_within);
    sorted by the partition columns first - the order Spark's partitioned writer needs,
    so it keeps ours instead of re-sorting - then by `sort_within`. `laid_out`: the
    caller did this its own way (the build sorts `examples` on one long key); Spark's
    writer still sorts by the partition columns, which keeps an order already by them."""
    if laid_out:
        return df
    if range_files:
        df = df.repartitionByRange(int(range_files), *partition_by, *sort_within)
    elif partition_by:
        df = df.repartition(*partition_by)
    if partition_by or sort_within:
        df = df.sortWithinPartitions(*partition_by, *sort_within)
    return df


# --------------------------------------------------------------------------- native


def delta_writer(df: DataFrame, partition_by: list, replace: dict | None, metadata: dict):
    """Delta's Spark writer set up for one overwrite: the whole table (schema may change)
    or, with `replace` ({column: values}), only those partitions; metadata as userMetadata."""
    # Delta skips the commit of a write that changes no file (an empty table overwritten
    # by no rows), and with it the run's metadata: builds record the versions they wrote.
    df.sparkSession.conf.set("spark.databricks.delta.skipRecordingEmptyCommits", "false")
    writer = df.write.format("delta").mode("overwrite")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if replace:
        predicate = " AND ".join(
            f"{_sql_identifier(key)} IN ({', '.join(_sql_literal(value) for value in values)})"
            for key, values in sorted(replace.items())
        )
        writer = writer.option("replaceWhere", predicate)
    else:
        writer = writer.option("overwriteSchema", "true")
    return writer.option("userMetadata", json.dumps(metadata, sort_keys=True, default=str))


def _write_native(spark, df, location, partition_by, replace, metadata) -> int:
    """Delta's own writer and conflict detection. Delta does not settle two writers that
    both create a table: a partition replacement that lost only that race runs again
    on the table the winner created (Delta then checks the partitions itself)."""
    created_meanwhile_may_retry = replace is not None and not exists(location)
    while True:
        try:
            delta_writer(df, partition_by, replace, metadata).save(location)
            break
        except Exception as error:  # noqa: BLE001 - py4j/pyspark wrap Delta's Java exceptions
            if "DELTA_REPLACE_WHERE_MISMATCH" in str(error):
                raise RunError(
                    f"replace {_describe(replace)}: the rows to write also hold other "
                    f"partitions; nothing was committed to {location}"
                ) from None
            if not any(name in str(error) for name in NATIVE_CONFLICTS):
                raise
            if created_meanwhile_may_retry and exists(location):
                created_meanwhile_may_retry = False
                continue
            latest = latest_version(location)
            other = describe_commit(location, latest) if latest is not None else "another writer"
            raise ConflictError(
                f"{location} was changed by another writer ({other}) while this run "
                f"wrote it; nothing was committed - rerun when it has finished"
            ) from None
    version = version_of_run(location, metadata["run_id"])
    if version is None:
        raise RunError(f"{location}: the commit of run {metadata['run_id']} is not in the log")
    return version


def _sql_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _sql_literal(value) -> str:
    if value is None:
        raise InputError("replace values cannot be null")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


# --------------------------------------------------------------------------- offline commit


def _write_offline(spark, df, location, partition_by, replace, metadata, expected_rows) -> int:
    """Spark writes Parquet under `<location>/run-<id>/`; the driver commits exactly the
    files found there (never a directory diff: other runs' and killed runs' files stay
    out), against the version seen before the write started."""
    run_directory = RUN_DIRECTORY_PREFIX + metadata["run_id"]
    filesystem, root = _filesystem(location)
    run_root = posixpath.join(root, run_directory)
    base = latest_version(location)
    try:
        with temporary_settings(spark, OFFLINE_WRITE_SETTINGS):
            df.write.mode("errorifexists").partitionBy(*partition_by).parquet(
                location.rstrip("/") + "/" + run_directory
            )
        adds = [
            _add_action(filesystem, root, run_root, info, partition_by) for info in _run_files(filesystem, run_root)
        ]
        _check_adds(adds, replace, expected_rows, location)
        return _commit(location, base, adds, df.schema, partition_by, replace, metadata)
    except BaseException:
        if version_of_run(location, metadata["run_id"]) is None:
            filesystem.delete_dir(run_root) if _is_directory(filesystem, run_root) else None
        raise


def _is_directory(filesystem, path: str) -> bool:
    from pyarrow import fs as pafs

    return filesystem.get_file_info(path).type == pafs.FileType.Directory


def _run_files(filesystem, run_root: str) -> list:
    """The data files Spark committed under the run's directory (its `_temporary` holds
    only attempts Spark discarded)."""
    from pyarrow import fs as pafs

    selector = pafs.FileSelector(run_root, recursive=True, allow_not_found=True)
    return sorted(
        (
            info
            for info in filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File
            and info.path.endswith(".parquet")
            and not any(part.startswith(("_", ".")) for part in posixpath.relpath(info.path, run_root).split("/"))
        ),
        key=lambda info: info.path,
    )


def _check_adds(adds, replace, expected_rows, location) -> None:
    if replace is not None:
        for add in adds:
            if not _in_partitions(add.partition_values, replace):
                raise RunError(
                    f"replace {_describe(replace)}: the rows to write also hold partition "
                    f"{add.partition_values}; nothing was committed to {location}"
                )
    if expected_rows is not None:
        written = sum(json.loads(add.stats)["numRecords"] for add in adds)
        if written != expected_rows:
            raise RunError(
                f"{written} rows were written for {location} but {expected_rows} were "
                f"meant to be; nothing was committed"
            )


def _commit(location, base, adds, spark_schema, partition_by, replace, metadata) -> int:
    """One Delta commit of `adds`; a lost race is retried when the winners touched only
    other partitions than `replace`, else refused (exit 1)."""
    from deltalake.exceptions import CommitFailedError

    seen = base
    for _ in range(COMMIT_ATTEMPTS):
        current = open_delta(location)
        latest = None if current is None else current.version()
        if latest != seen:
            _refuse_unless_disjoint(location, seen, latest, replace)
            seen = latest
        try:
            _commit_once(location, current, adds, spark_schema, partition_by, replace, metadata)
        except CommitFailedError:
            time.sleep(0.05)
            continue
        except Exception:  # noqa: BLE001 - delta-rs: table created meanwhile
            if current is None and exists(location):
                continue
            raise
        version = version_of_run(location, metadata["run_id"])
        if version is not None:
            return version
    raise ConflictError(
        f"{location}: could not commit after {COMMIT_ATTEMPTS} attempts (other writers keep committing)"
    )


def _refuse_unless_disjoint(location, seen, latest, replace) -> None:
    """Other writers committed versions (seen, latest]: go on only if each touched other
    partitions than ours and changed neither schema nor protocol."""
    version = _first_overlapping(location, seen, latest, replace)
    if version is not None:
        raise ConflictError(
            f"{location} was changed by another writer ({describe_commit(location, version)}) "
            f"while this run wrote it; nothing was committed - rerun when it has "
            f"finished"
        )


def _first_overlapping(location, seen, latest, replace) -> int | None:
    first = 0 if seen is None else seen + 1
    for version in range(first, latest + 1):
        # A table created meanwhile (version 0) is fine to replace partitions in: its
        # schema and partitioning are checked against ours before committing.
        if replace is None or _touches(commit_actions(location, version), replace, version == 0):
            return version
    return None


def overwritten_since(location: str, version: int, replace: dict | None = None) -> str | None:
    """The first later commit that rewrote what `version` wrote (all of it, or the
    partitions `replace` names), described for a message; None while `version` stands."""
    latest = latest_version(location)
    if latest is None or latest <= version:
        return None
    other = _first_overlapping(location, version, latest, _as_value_lists(replace))
    return None if other is None else describe_commit(location, other)


def _as_value_lists(replace: dict | None) -> dict | None:
    """{"model": "x"} -> {"model": ("x",)}: one shape for one or several partition values."""
    if replace is None:
        return None
    return {
        key: tuple(values) if isinstance(values, (list, tuple, set)) else (values,) for key, values in replace.items()
    }


def _in_partitions(partition_values: dict, replace: dict) -> bool:
    return all(partition_values.get(key) in {_partition_string(v) for v in values} for key, values in replace.items())


def _describe(replace: dict) -> str:
    return ", ".join(f"{key} in {[str(v) for v in values]}" for key, values in sorted(replace.items()))


def _touches(actions: list[dict], replace: dict, creation: bool = False) -> bool:
    for action in actions:
        if ("metaData" in action or "protocol" in action) and not creation:
            return True
        change = action.get("add") or action.get("remove")
        if change is None:
            continue
        if _in_partitions(change.get("partitionValues") or {}, replace):
            return True
    return False


def _commit_once(location, current, adds, spark_schema, partition_by, replace, metadata) -> None:
    from deltalake import CommitProperties
    from deltalake.transaction import create_table_with_add_actions

    delta_schema = _delta_schema_of(spark_schema)
    properties = CommitProperties(custom_metadata={"userMetadata": json.dumps(metadata, sort_keys=True, default=str)})
    uri = _delta_rs_uri(location)
    if current is None:
        create_table_with_add_actions(
            uri, delta_schema, adds, mode="error", partition_by=partition_by, commit_properties=properties
        )
    elif replace is not None:
        _check_same_layout(current, spark_schema, partition_by, location)
        filters = [
            (key, "in", [_partition_string(value) for value in values]) for key, values in sorted(replace.items())
        ]
        current.create_write_transaction(
            adds,
            mode="overwrite",
            schema=delta_schema,
            partition_by=partition_by,
            partition_filters=filters,
            commit_properties=properties,
        )
    elif list(current.metadata().partition_columns) == partition_by:
        current.create_write_transaction(
            adds, mode="overwrite", schema=delta_schema, partition_by=partition_by, commit_properties=properties
        )
    else:
        # A different partitioning needs new table metadata (CREATE OR REPLACE);
        # the older versions stay readable by time travel.
        create_table_with_add_actions(
            uri, delta_schema, adds, mode="overwrite", partition_by=partition_by, commit_properties=properties
        )


def _add_action(filesystem, root, run_root, info, partition_by):
    from deltalake.transaction import AddAction

    relative = posixpath.relpath(info.path, root.rstrip("/") or "/")  # decoded; deltalake encodes it
    inside_run = posixpath.relpath(info.path, run_root)
    return AddAction(
        path=relative,
        size=int(info.size),
        partition_values=_partition_values(inside_run, partition_by),
        modification_time=int(info.mtime_ns // 1_000_000),
        data_change=True,
        stats=json.dumps(_footer_stats(filesystem, info.path, set(partition_by)), separators=(",", ":")),
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
        raise InputError(f"file {relative} has no directory for partition column(s) {missing}")
    return {column: found[column] for column in partition_by}


# --------------------------------------------------------------------------- vacuum


@dataclass
class Vacuumed:
    files: int
    bytes: int


def vacuum(
    spark, location: str, *, native: bool, retain_hours: float, dry_run: bool, keep_versions: list[int] | None = None
) -> Vacuumed:
    """Delete files no version inside the retention (nor `keep_versions`) references,
    and directories of offline runs that hold nothing else; count what was (or would be)
    freed. Delta's rules: a removed file goes once it was removed longer ago than the
    retention; a file never committed, once it is older than the retention."""
    table = require_delta(location)
    filesystem, root = _filesystem(location)
    candidates = table.vacuum(
        retention_hours=int(math.ceil(retain_hours)),
        dry_run=True,
        enforce_retention_duration=False,
        full=True,
        keep_versions=keep_versions or None,
    )
    paths = [_join(root, unquote(path)) if not path.startswith("/") else path for path in candidates]
    sizes = [info.size or 0 for info in filesystem.get_file_info(paths)]
    if not dry_run and paths:
        table.vacuum(
            retention_hours=int(math.ceil(retain_hours)),
            dry_run=False,
            enforce_retention_duration=False,
            full=True,
            keep_versions=keep_versions or None,
        )
    leftovers = _stale_run_directories(filesystem, root, retain_hours, set(paths), dry_run)
    return Vacuumed(files=len(paths) + leftovers.files, bytes=sum(sizes) + leftovers.bytes)


def _stale_run_directories(filesystem, root, retain_hours, deleted, dry_run) -> Vacuumed:
    """Run directories older than the retention whose data files are all gone (or going):
    what is left is Spark's `_SUCCESS` and `_temporary` of finished or killed runs."""
    from pyarrow import fs as pafs

    cutoff_ns = (time.time() - retain_hours * 3600) * 1e9
    freed = Vacuumed(0, 0)
    for entry in filesystem.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        name = posixpath.basename(entry.path)
        if entry.type != pafs.FileType.Directory or not name.startswith(RUN_DIRECTORY_PREFIX):
            continue
        inside = filesystem.get_file_info(pafs.FileSelector(entry.path, recursive=True))
        files = [i for i in inside if i.type == pafs.FileType.File]
        live = [
            i
            for i in files
            if i.path.endswith(".parquet")
            and i.path not in deleted
            and not _hidden(posixpath.relpath(i.path, entry.path))
        ]
        if live or any((i.mtime_ns or 0) > cutoff_ns for i in files):
            continue
        leftover = [i for i in files if i.path not in deleted]
        freed.files += len(leftover)
        freed.bytes += sum(i.size or 0 for i in leftover)
        if not dry_run:
            filesystem.delete_dir(entry.path)
    return freed


def _hidden(relative: str) -> bool:
    return any(part.startswith(("_", ".")) for part in relative.split("/"))


def _delta_schema_of(spark_schema: T.StructType):
    """Delta's schemaString is Spark's schema JSON, so the types carry over exactly."""
    from deltalake import Schema

    return Schema.from_json(spark_schema.json())


def _check_same_layout(current, spark_schema, partition_by, location):
    table_partitions = list(current.metadata().partition_columns)
    if table_partitions != partition_by:
        raise InputError(
            f"{location} is partitioned by {table_partitions}, not {partition_by}; "
            f"replacing partitions needs the same partitioning (rewrite the whole table)"
        )
    table_fields = [(f["name"], f["type"]) for f in json.loads(current.schema().to_json())["fields"]]
    new_fields = [(f["name"], f["type"]) for f in json.loads(spark_schema.json())["fields"]]
    if _without_nullability(table_fields) != _without_nullability(new_fields):
        raise InputError(
            f"replacing partitions: the new rows' columns {new_fields} differ from "
            f"the table's {table_fields} at {location} (rewrite the whole table)"
        )


def _without_nullability(value):
    """A schema's JSON without the nullability flags of nested types: Delta's Spark writer
    declares arrays and maps as holding nulls where Spark's DataFrame says they do not, so
    a table written natively and rows from the same code differ only there."""
    if isinstance(value, dict):
        return {
            key: _without_nullability(item)
            for key, item in value.items()
            if key not in ("containsNull", "valueContainsNull", "nullable")
        }
    if isinstance(value, (list, tuple)):
        return [_without_nullability(item) for item in value]
    return value


def _partition_string(value) -> str:
    """A partition value as Delta (and Spark's directory names) write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# Parquet INT96 timestamps would need a newer Delta protocol; micros keep 1/2. Planned
# writes off: the optimizer would otherwise add a sort by the partition columns to a
# laid-out write and drop the caller's sort beneath it (Delta's writer plans as Spark did
# before planned writes, so the native path needs nothing).
OFFLINE_WRITE_SETTINGS = {
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.optimizer.plannedWrite.enabled": "false",
}
# A laid-out write (rows spread and sorted by the caller, on a key the partition columns do
# not show) keeps its order: each task writes the few partition values it holds through
# one open file each, as the rows come, instead of Spark sorting them by partition first -
# a second sort of every row, which may also reorder rows when it spills.
LAID_OUT_SETTINGS = {"spark.sql.maxConcurrentOutputFileWriters": "16"}


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
        chunks = [metadata.row_group(group).column(index).statistics for group in range(metadata.num_row_groups)]
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
