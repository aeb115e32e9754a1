"""The table registry: every warehouse table declared once.

A table's name, the columns readers may count on, how its files are laid out and
the command that writes it live here and nowhere else; `Warehouse` reads and
writes by these declarations, and error messages name the command to rerun.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pyspark.sql import types as T

from wvb_spark.core import schemas
from wvb_spark.core.errors import InputError, WvbError


@dataclass(frozen=True)
class Table:
    """One warehouse table.

    columns: the columns every version holds (a table may hold more, e.g. the probe's
        group columns, which depend on --group-by).
    from_build: written by `wvb build` as one unit; readers see the versions of the
        last completed build, so a build killed half-way is invisible to them.
    """

    name: str
    written_by: str
    columns: Callable[[], list[T.StructField]]
    partition_by: tuple[str, ...] = ()
    sort_within: tuple[str, ...] = ()
    from_build: bool = False


def _all(schema) -> Callable[[], list[T.StructField]]:
    return lambda: list((schema() if callable(schema) else schema).fields)


def _some(*fields: tuple[str, T.DataType]) -> Callable[[], list[T.StructField]]:
    return lambda: [T.StructField(name, data_type, True) for name, data_type in fields]


BUILD = "wvb build"
TABLES: dict[str, Table] = {
    table.name: table
    for table in (
        Table("questions", BUILD, _all(schemas.QUESTIONS), from_build=True),
        Table("participants", BUILD, _all(schemas.participants_schema), sort_within=("d_interview",), from_build=True),
        Table(
            "examples",
            BUILD,
            _all(schemas.EXAMPLES),
            partition_by=("split",),
            sort_within=("question_id", "d_interview"),
            from_build=True,
        ),
        Table("quarantine", BUILD, _all(schemas.QUARANTINE), from_build=True),
        Table("build_runs", BUILD, _all(schemas.BUILD_RUNS)),
        Table(
            "probe",
            "wvb probe",
            _some(
                ("question_id", T.StringType()),
                ("d_interview", T.LongType()),
                ("split", T.StringType()),
                ("group_size", T.LongType()),
                ("rank", T.IntegerType()),
            ),
            sort_within=("question_id",),
        ),
        Table(
            "probe_groups",
            "wvb probe",
            _some(("question_id", T.StringType()), ("group_size", T.LongType()), ("status", T.StringType())),
            sort_within=("question_id",),
        ),
        Table(
            "predictions",
            "wvb predictions import or wvb baselines",
            _all(schemas.PREDICTIONS),
            partition_by=("model",),
            sort_within=("question_id", "d_interview"),
        ),
        Table("histograms", "wvb evaluate", _all(schemas.HISTOGRAMS), partition_by=("model",)),
        Table("distances", "wvb evaluate", _all(schemas.DISTANCES), partition_by=("model",)),
        Table("summary", "wvb evaluate", _all(schemas.SUMMARY), partition_by=("model",)),
    )
}


def table(name: str) -> Table:
    """The declaration of `name`; an unknown name is a one-line error listing the known ones."""
    try:
        return TABLES[name]
    except KeyError:
        raise InputError(f"unknown table {name!r} (tables: {', '.join(TABLES)})") from None


class ColumnMismatch(WvbError):
    """A table on disk lacks a column its readers need, or holds it with another type."""


def check_columns(name: str, schema: T.StructType) -> None:
    """Raise ColumnMismatch naming the table, the column and the command to rerun."""
    declared = table(name)
    # Types compare without nullability: Delta and Spark differ on array/map element nullability.
    present = {field.name: field.dataType.simpleString() for field in schema.fields}
    for field in declared.columns():
        if field.name not in present:
            raise ColumnMismatch(
                f"table {name} has no column {field.name!r} (written by an older version?): rerun {declared.written_by}"
            )
        if present[field.name] != field.dataType.simpleString():
            raise ColumnMismatch(
                f"table {name} column {field.name!r} is {present[field.name]}, "
                f"expected {field.dataType.simpleString()}: rerun {declared.written_by}"
            )
