"""Warehouses of metastore tables: `--warehouse uc://<catalog>.<schema>`.

On Databricks, tables are governed by Unity Catalog and named `catalog.schema.table`,
not paths. A warehouse root `uc://C.S` keeps every table of the registry as the
managed Delta table `C.S.<name>`: written with `saveAsTable`, read with `spark.table`
(`VERSION AS OF` for a pinned build), versions and commit info from `DESCRIBE
HISTORY`. Native Delta only: the metastore owns the files, so the offline commit (which
writes paths) does not apply. Anything else - the registry, pinned builds, the standard
commit info - is `Warehouse`'s. Locally the same code runs against Spark's own catalog,
e.g. `uc://spark_catalog.default` in a session with Delta's catalog (the tests do).
"""

from __future__ import annotations

import re
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from wvb_spark import __version__
from wvb_spark.core import storage, tables
from wvb_spark.core.errors import ConflictError, InputError, RunError
from wvb_spark.core.session import temporary_settings
from wvb_spark.core.warehouse import Vacuumed, Warehouse

SCHEME = "uc://"
# Unquoted Unity Catalog / Spark identifiers: letters, digits, underscores (and hyphens,
# which UC allows in catalog and schema names); anything else is refused, not quoted.
IDENTIFIER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


def parse_root(root: str) -> tuple[str, str]:
    """'uc://main.wvb' -> ('main', 'wvb'); a one-line error for anything else."""
    parts = str(root)[len(SCHEME) :].split(".")
    if len(parts) != 2 or not all(IDENTIFIER.match(part) for part in parts):
        raise InputError(
            f"--warehouse {root}: expected uc://<catalog>.<schema>, e.g. uc://main.wvb "
            f"(names of letters, digits, _ and -)"
        )
    return parts[0], parts[1]


def _quoted(*parts: str) -> str:
    return ".".join(f"`{part}`" for part in parts)


class CatalogWarehouse(Warehouse):
    """The registry's tables as `catalog.schema.<name>` through the session's catalog."""

    def __init__(self, spark: SparkSession | None, root: str, settings: dict):
        self.catalog, self.schema = parse_root(root)
        wanted = ((settings or {}).get("storage") or {}).get("writer", "auto")
        if wanted == "offline":
            raise InputError(
                f"--warehouse {root} holds metastore tables, which only Delta's own "
                f"writer can write: drop storage.writer=offline"
            )
        self.spark = spark
        self.root = str(root)
        self.settings = settings or {}
        self.writer = "native"
        self._build_versions: dict | None = None
        self._checked_delta = False

    # ------------------------------------------------------------------ where and what

    def location(self, name: str) -> str:
        """The table's three-part name, quoted for SQL."""
        tables.table(name)
        return _quoted(self.catalog, self.schema, name)

    def exists(self, name: str) -> bool:
        tables.table(name)
        return self._spark().catalog.tableExists(f"{self.catalog}.{self.schema}.{name}")

    def build_versions(self) -> dict[str, int]:
        """The table versions of the last completed build, from the build_runs table."""
        if self._build_versions is None:
            self._build_versions = {}
            if self.exists("build_runs"):
                runs = (
                    self._spark()
                    .table(self.location("build_runs"))
                    .orderBy(F.col("run_number").desc())
                    .select("table_versions")
                    .limit(1)
                    .collect()
                )
                if runs:
                    self._build_versions = {key: int(value) for key, value in (runs[0]["table_versions"] or {}).items()}
        return self._build_versions

    def version(self, name: str) -> int:
        if tables.table(name).from_build and name != "build_runs":
            self.require(name)
            return self.build_versions()[name]
        self.require(name)
        return int(self.history(name, limit=1)[0]["version"])

    # ------------------------------------------------------------------ read

    def read(self, name: str, version: int | None = None) -> DataFrame:
        version = self.version(name) if version is None else int(version)
        frame = self._spark().sql(f"SELECT * FROM {self.location(name)} VERSION AS OF {version}")
        tables.check_columns(name, frame.schema)
        return frame

    def partition_rows(self, name: str, column: str) -> dict | None:
        """Rows per partition value (as strings, None for null), counted by a query: a
        metastore table's log is not ours to read."""
        if column not in tables.table(name).partition_by:
            return None
        counts = self.read(name).groupBy(column).count().collect()
        return {None if row[column] is None else str(row[column]): int(row["count"]) for row in counts}

    def commit_info(self, name: str, version: int | None = None) -> dict | None:
        for entry in self.history(name):
            if version is None or entry["version"] == version:
                return storage.user_metadata(entry)
        raise InputError(f"table {self.location(name)} has no commit for version {version}")

    def history(self, name: str, limit: int | None = None) -> list[dict]:
        """DESCRIBE HISTORY as dicts, newest first (each with `version` and `userMetadata`)."""
        statement = f"DESCRIBE HISTORY {self.location(name)}" + (f" LIMIT {int(limit)}" if limit else "")
        return [row.asDict(recursive=True) for row in self._spark().sql(statement).collect()]

    # ------------------------------------------------------------------ write

    def write(
        self,
        name: str,
        df: DataFrame,
        *,
        stage: str,
        options: dict | None = None,
        counts: dict | None = None,
        replace: dict | None = None,
        expected_rows: int | None = None,
        sort_within: tuple | None = None,
        range_files: int | None = None,
        run_id: str | None = None,
        laid_out: bool = False,
    ) -> int:
        """`saveAsTable` as the table's next version (or replaceWhere of `replace`'s
        partitions), laid out and annotated like `Warehouse.write`; return the version."""
        declared = tables.table(name)
        tables.check_columns(name, df.schema)
        partition_by = list(declared.partition_by)
        replaced = None if replace is None else {key: str(value) for key, value in replace.items()}
        replace = storage._as_value_lists(replace)
        storage._check_write_arguments(df, partition_by, list(sort_within or declared.sort_within), replace)
        metadata: dict[str, Any] = {
            "stage": stage,
            "table": name,
            "wvb_version": __version__,
            "options": options or {},
            "counts": counts or {},
            "run_id": run_id or storage.new_run_id(),
        }
        if replaced is not None:
            metadata["replaced"] = replaced
        arranged = storage._lay_out(df, partition_by, list(sort_within or declared.sort_within), range_files, laid_out)
        with temporary_settings(self._spark(), storage.LAID_OUT_SETTINGS if laid_out else {}):
            self._save(arranged, name, partition_by, replace, metadata)
        version = self._version_of_run(name, metadata["run_id"])
        if expected_rows is not None:
            written = self._rows_written(name, version)
            if written is not None and written != expected_rows:
                raise RunError(
                    f"{self.location(name)} version {version} holds {written} new rows but "
                    f"{expected_rows} were meant to be written"
                )
        return version

    def _save(self, df: DataFrame, name: str, partition_by: list, replace: dict | None, metadata: dict) -> None:
        self._require_delta()
        writer = storage.delta_writer(df, partition_by, replace if self.exists(name) else None, metadata)
        try:
            writer.saveAsTable(self.location(name))
        except Exception as error:  # noqa: BLE001 - Delta's Java exceptions come wrapped
            if any(conflict in str(error) for conflict in storage.NATIVE_CONFLICTS):
                raise ConflictError(
                    f"{self.location(name)} was changed by another writer while this run "
                    f"wrote it; nothing was committed - rerun when it has finished"
                ) from None
            raise

    def _version_of_run(self, name: str, run_id: str) -> int:
        for entry in self.history(name, limit=50):
            if (storage.user_metadata(entry) or {}).get("run_id") == run_id:
                return int(entry["version"])
        raise RunError(f"{self.location(name)}: the commit of run {run_id} is not in its history")

    def _rows_written(self, name: str, version: int) -> int | None:
        for entry in self.history(name, limit=50):
            if entry["version"] == version:
                metrics = entry.get("operationMetrics") or {}
                return int(metrics["numOutputRows"]) if "numOutputRows" in metrics else None
        return None

    def _require_delta(self) -> None:
        if not self._checked_delta:
            if not storage.native_delta_active(self._spark()):
                raise InputError(
                    f"--warehouse {self.root} needs Delta's Spark extension (Databricks has "
                    f"it; elsewhere spark-submit with Delta's jars, or `wvb delta-jars`)"
                )
            self._checked_delta = True

    # ------------------------------------------------------------------ vacuum

    def vacuum(self, retain_hours: float = 168, dry_run: bool = False) -> list[Vacuumed]:
        """Delta's VACUUM on every table (the metastore's files are not ours to list: bytes
        are not counted). Retentions below Delta's check need `--force` in `wvb vacuum`."""
        spark = self._spark()
        if retain_hours < 168:  # `wvb vacuum` asked for --force; Delta's own check would refuse
            spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
        freed = []
        for name in tables.TABLES:
            if not self.exists(name):
                continue
            statement = f"VACUUM {self.location(name)} RETAIN {float(retain_hours):g} HOURS DRY RUN"
            files = spark.sql(statement).count()
            if not dry_run and files:
                spark.sql(statement[: -len(" DRY RUN")]).collect()
            freed.append(Vacuumed(name, files, 0))
        return freed

    def _spark(self) -> SparkSession:
        """The run's session; a command that checks tables before starting Spark (the
        preflight of most stages) starts it here: the metastore is only reachable through it."""
        if self.spark is None:
            from wvb_spark.core.session import get_spark

            self.spark = get_spark(self.settings)
        return self.spark
