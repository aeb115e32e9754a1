"""The warehouse: every table of the registry, read and written through one object.

Stages never touch Parquet or Delta: they ask the warehouse for a table by name
(its columns checked against the registry) and hand it a DataFrame to write (laid
out as the registry says, with a standard commit info). Readers of the tables that
`wvb build` writes see the versions of the last *completed* build, recorded in
`build_runs`, so a build killed between two tables is invisible to them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from wvb_spark import __version__
from wvb_spark.core import storage, tables
from wvb_spark.core.errors import InputError, MissingTableError

WRITERS = ("auto", "native", "offline")
DEFAULT_RETAIN_HOURS = 7 * 24  # Delta's default retention


def choose_writer(spark: SparkSession | None, settings: dict) -> str:
    """'native' or 'offline' from storage.writer (auto | native | offline)."""
    wanted = (settings or {}).get("storage", {}).get("writer", "auto")
    if wanted not in WRITERS:
        raise InputError(f"storage.writer must be one of {', '.join(WRITERS)}, got {wanted!r}")
    if wanted == "offline" or spark is None:
        return "offline"
    active = storage.native_delta_active(spark)
    if wanted == "native" and not active:
        raise InputError(
            "storage.writer=native but Delta's Spark extension is not active: run "
            "`wvb delta-jars`, or spark-submit with Delta's jars, or use "
            "--set storage.writer=offline"
        )
    return "native" if active else "offline"


@dataclass
class Vacuumed:
    table: str
    files: int
    bytes: int


class Warehouse:
    """Tables at `<root>/<name>`. `spark` may be None for commands that only read the
    Delta log (vacuum, partition counts): the log is read with deltalake."""

    def __new__(cls, spark: SparkSession | None = None, root: str = "", settings: dict | None = None):
        """A root `uc://catalog.schema` holds metastore tables instead (core.catalog)."""
        if cls is Warehouse and str(root).startswith("uc://"):
            from wvb_spark.core.catalog import CatalogWarehouse

            return super().__new__(CatalogWarehouse)
        return super().__new__(cls)

    def __init__(self, spark: SparkSession | None, root: str, settings: dict):
        self.spark = spark
        self.root = str(root)
        self.settings = settings
        self.writer = choose_writer(spark, settings)
        self._build_versions: dict | None = None

    # ------------------------------------------------------------------ where and what

    def location(self, name: str) -> str:
        tables.table(name)
        return storage.table_path(self.root, name)

    def exists(self, name: str) -> bool:
        return storage.exists(self.location(name))

    def require(self, *names: str, hint: str | None = None) -> None:
        """One line naming the first missing table and the command that writes it."""
        for name in names:
            declared = tables.table(name)
            present = self.exists(name)
            if present and declared.from_build and name != "build_runs":
                present = name in self.build_versions()
            if not present:
                advice = hint or f"run {declared.written_by} first"
                raise MissingTableError(f"no {name} table in {self.root} ({advice})")

    def build_versions(self) -> dict[str, int]:
        """The table versions of the last completed build (empty when none completed)."""
        if self._build_versions is None:
            self._build_versions = {}
            location = self.location("build_runs")
            if storage.exists(location):
                runs = (
                    storage.require_delta(location)
                    .to_pyarrow_table(columns=["run_number", "table_versions"])
                    .to_pylist()
                )
                if runs:
                    last = max(runs, key=lambda run: run["run_number"])
                    self._build_versions = {key: int(value) for key, value in (last["table_versions"] or [])}
        return self._build_versions

    def version(self, name: str) -> int:
        """The version readers see: the last completed build's for build tables, else the latest."""
        if tables.table(name).from_build and name != "build_runs":
            self.require(name)
            return self.build_versions()[name]
        latest = storage.latest_version(self.location(name))
        if latest is None:
            self.require(name)
        assert latest is not None  # require raised: no table at the location
        return latest

    # ------------------------------------------------------------------ read

    def read(self, name: str, version: int | None = None) -> DataFrame:
        """The table at `version` (default: what `version(name)` says), columns checked."""
        version = self.version(name) if version is None else version
        location = self.location(name)
        frame = storage.read(self._spark(), location, native=self.writer == "native", version=version)
        tables.check_columns(name, frame.schema)
        return frame

    def partition_rows(self, name: str, column: str) -> dict | None:
        """Rows per partition value, from the log's statistics (no data read)."""
        return storage.partition_rows(self.location(name), column, self.version(name))

    def partition_values(self, name: str, column: str) -> list | None:
        """Partition values that hold rows, from the log (no data read)."""
        rows = self.partition_rows(name, column)
        if rows is None:
            return None
        return sorted((value for value, count in rows.items() if count), key=lambda value: (value is None, str(value)))

    def commit_info(self, name: str, version: int | None = None) -> dict | None:
        """The standard commit info of that version (stage, wvb_version, options, counts, run_id)."""
        return storage.commit_info(self.location(name), version)

    def history(self, name: str, limit: int | None = None) -> list[dict]:
        return storage.history(self.location(name), limit)

    def overwritten_since(self, name: str, version: int, replace: dict | None = None) -> str | None:
        """Who rewrote what `version` of the table wrote (None while it stands): stages
        that write several tables check it between their commits."""
        return storage.overwritten_since(self.location(name), version, replace)

    # ------------------------------------------------------------------ write

    def add_new_columns(self, name: str, stage: str) -> int | None:
        """A table written before some of its declared columns existed gets them, as nulls,
        in one whole-table commit (so partitions of the new shape can be written beside the
        old rows); the version written, or None when nothing was missing."""
        from pyspark.sql import functions as F

        if not self.exists(name):
            return None
        location = self.location(name)
        version = self.version(name)
        frame = storage.read(self._spark(), location, native=self.writer == "native", version=version)
        declared = tables.table(name).columns()
        missing = [f for f in declared if f.name not in frame.columns]
        if not missing:
            return None
        for field in missing:
            frame = frame.withColumn(field.name, F.lit(None).cast(field.dataType))
        frame = frame.select(
            *[f.name for f in declared], *[c for c in frame.columns if c not in {f.name for f in declared}]
        )
        frame = frame.localCheckpoint()  # read fully before the same table is overwritten
        return self.write(
            name, frame, stage=stage, options={"added_columns": [f.name for f in missing]}, expected_rows=frame.count()
        )

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
        """Write `df` as the table's next version (or replace the partition `replace`);
        return the version. The commit info is the standard one; `expected_rows` is
        checked against what the commit holds. `laid_out`: `df` is already spread and
        sorted as the table declares (storage.Layout)."""
        declared = tables.table(name)
        tables.check_columns(name, df.schema)
        layout = storage.Layout(
            partition_by=declared.partition_by,
            sort_within=tuple(sort_within or declared.sort_within),
            range_files=range_files,
            laid_out=laid_out,
        )
        metadata = {
            "stage": stage,
            "table": name,
            "wvb_version": __version__,
            "options": options or {},
            "counts": counts or {},
            "run_id": run_id or storage.new_run_id(),
        }
        if replace is not None:
            metadata["replaced"] = {
                key: [str(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
                for key, values in replace.items()
            }
        return storage.write(
            self._spark(),
            df,
            self.location(name),
            native=self.writer == "native",
            layout=layout,
            replace=replace,
            metadata=metadata,
            expected_rows=expected_rows,
        )

    # ------------------------------------------------------------------ vacuum

    def vacuum(self, retain_hours: float = DEFAULT_RETAIN_HOURS, dry_run: bool = False) -> list[Vacuumed]:
        """Delete the files no version inside the retention references, per table; the
        build tables also keep the versions of the last completed build."""
        freed = []
        for name in tables.TABLES:
            location = self.location(name)
            if not storage.exists(location):
                continue
            keep = [self.build_versions()[name]] if name in self.build_versions() else None
            result = storage.vacuum(
                self.spark,
                location,
                native=self.writer == "native",
                retain_hours=retain_hours,
                dry_run=dry_run,
                keep_versions=keep,
            )
            freed.append(Vacuumed(name, result.files, result.bytes))
        return freed

    def _spark(self) -> SparkSession:
        if self.spark is None:
            raise InputError("this needs a Spark session")
        return self.spark


def new_run_id() -> str:
    return storage.new_run_id()


def describe_writer(warehouse: Warehouse) -> str:
    return (
        "native Delta (Delta's Spark writer)"
        if warehouse.writer == "native"
        else "offline commit (Spark's Parquet writer + deltalake)"
    )
