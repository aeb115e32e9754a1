"""Ingest: the raw WVS Wave 7 CSV -> one typed row per data line, with a reason if refused.

The file is read as text so that every line is accounted for: a line whose field
count differs from the header's, whose needed codes are not numbers, or whose
D_INTERVIEW is missing cannot be parsed into a respondent, and is kept with the
reason instead of being nulled or dropped by a CSV reader. Only the columns the
benchmark needs are parsed (v5.0 and v6.0 both carry them; extra columns are ignored).
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from wvb_spark import metadata
from wvb_spark.errors import WvbError

ID_COLUMN = "D_INTERVIEW"
WEIGHT_COLUMNS = ("W_WEIGHT", "S018")  # decimals; S018 is optional
OPTIONAL_COLUMNS = ("S018",)


def integer_columns() -> list[str]:
    """The coded columns the build parses as integers: D_INTERVIEW first, then the other
    demographics, then the value questions (in metadata order)."""
    demographics = [name for name in metadata.demographic_variables() if name != ID_COLUMN]
    return [ID_COLUMN, *demographics, *metadata.value_question_ids()]


def required_columns() -> list[str]:
    return integer_columns() + [c for c in WEIGHT_COLUMNS if c not in OPTIONAL_COLUMNS]


def read_header(path: str) -> tuple[list[str], str]:
    """The header's column names and the separator (comma, or semicolon if the header has more)."""
    file = Path(path)
    if not file.is_file():
        raise WvbError(f"raw file not found: {path}")
    with file.open("r", encoding="utf-8", errors="replace") as handle:
        first = handle.readline().rstrip("\r\n").lstrip("\ufeff")
    if not first:
        raise WvbError(f"raw file {path} is empty")
    separator = ";" if first.count(";") > first.count(",") else ","
    names = [name.strip().strip('"') for name in first.split(separator)]
    return names, separator


def check_columns(header: list[str]) -> None:
    """Fail before writing anything if a column the benchmark needs is absent."""
    present = set(header)
    missing = [c for c in required_columns() if c not in present]
    if missing:
        shown = ", ".join(missing[:12]) + (f" and {len(missing) - 12} more" if len(missing) > 12 else "")
        raise WvbError(f"raw file lacks {len(missing)} required column(s): {shown}")
    duplicated = sorted({c for c in header if header.count(c) > 1 and c in set(required_columns())})
    if duplicated:
        raise WvbError(f"raw file header repeats column(s): {', '.join(duplicated)}")


def read_lines(spark: SparkSession, path: str) -> DataFrame:
    """Every line of the file after the header as (line_number, line), line_number 1-based
    counting the header as line 1, in file order."""
    lines = (
        spark.read.text(path)
        .withColumn("_partition", F.spark_partition_id())
        .withColumn("_position", F.monotonically_increasing_id())
    )
    # monotonically_increasing_id = partition << 33 | position within partition; turn it
    # into a global line number from the (few) per-partition line counts.
    counts = sorted(
        (row["_partition"], row["count"]) for row in lines.groupBy("_partition").count().collect()
    )
    offsets, running = {}, 0
    for partition, count in counts:
        offsets[partition] = running
        running += count
    offset_map = F.create_map(*[x for p, o in offsets.items() for x in (F.lit(p), F.lit(o))]) if offsets else F.lit(None)
    within = F.col("_position") - F.shiftleft(F.col("_partition").cast("long"), 33)
    numbered = lines.select(
        (F.try_element_at(offset_map, F.col("_partition")) + within + F.lit(1)).cast("long").alias("line_number"),
        F.regexp_replace("value", "\r$", "").alias("line"),
    )
    return numbered.where(F.col("line_number") > 1)


def _unquoted(field):
    """A field without surrounding spaces and double quotes (official files quote strings)."""
    return F.btrim(field, F.lit('" '))


def _pick(fields, positions: list[int]):
    """The fields at 0-based `positions`, unquoted, as one array. Each lookup is its own
    expression on the `fields` column: inside a lambda, Spark's optimizer would inline
    the split and redo it for every element."""
    return F.array(*[_unquoted(F.try_element_at(fields, F.lit(i + 1))) for i in positions])


def parse_lines(lines: DataFrame, header: list[str], separator: str, source_name: str) -> DataFrame:
    """(line_number, line) -> one row per non-blank line: source_row, source, d_interview,
    the demographic codes (one int column each), W_WEIGHT and S018 (double),
    `value_codes` (array<int>, the raw codes of metadata.value_question_ids() in order) and
    `reject_reason` / `reject_value` (null when the row is usable). Pure transform."""
    index = {name: i for i, name in enumerate(header)}
    ints = integer_columns()
    demographics = [name for name in metadata.demographic_variables() if name != ID_COLUMN]
    n_values = len(metadata.value_question_ids())
    pattern = "\\" + separator if separator in ".|" else separator
    fields = F.split(F.col("line"), pattern, -1)
    weight_raw = [
        _unquoted(F.try_element_at(F.col("_fields"), F.lit(index[name] + 1)))
        if name in index else F.lit(None).cast("string")
        for name in WEIGHT_COLUMNS
    ]
    staged = lines.where(F.length(F.trim("line")) > 0).select(
        "line_number", fields.alias("_fields")
    ).select(
        (F.col("line_number") - 1).alias("source_row"),
        F.concat(F.lit(f"{source_name}:"), F.col("line_number").cast("string")).alias("source"),
        F.size("_fields").alias("_field_count"),
        _pick(F.col("_fields"), [index[name] for name in ints]).alias("_raw"),
        *[raw.alias(f"_raw_{name}") for raw, name in zip(weight_raw, WEIGHT_COLUMNS)],
    ).select(
        "*",
        F.transform("_raw", lambda x: x.try_cast("int")).alias("_ints"),
    ).select(
        "*",
        F.array_position(F.transform("_ints", lambda x: x.isNull()), True).cast("int").alias("_first_bad"),
        *[F.col(f"_raw_{name}").try_cast("double").alias(name) for name in WEIGHT_COLUMNS],
    )
    names = F.array(*[F.lit(name) for name in ints])
    bad_code = F.concat(F.try_element_at(names, F.col("_first_bad")), F.lit("="),
                        F.coalesce(F.try_element_at(F.col("_raw"), F.col("_first_bad")), F.lit("")))
    weight_bad = F.coalesce(*[
        F.when((F.col(f"_raw_{name}") != "") & F.col(name).isNull(), F.concat(F.lit(f"{name}="), F.col(f"_raw_{name}")))
        for name in WEIGHT_COLUMNS
    ])
    expected_fields = len(header)
    d_interview = F.try_element_at(F.col("_raw"), F.lit(1)).try_cast("long")
    wrong_count = F.col("_field_count") != expected_fields
    reason = (
        F.when(wrong_count, F.lit("wrong_field_count"))
        .when(d_interview.isNull(), F.lit("bad_d_interview"))
        .when(F.col("_first_bad") > 0, F.lit("non_numeric_code"))
        .when(weight_bad.isNotNull(), F.lit("non_numeric_weight"))
    )
    reason_value = (
        F.when(wrong_count, F.concat(F.col("_field_count").cast("string"), F.lit(f" fields, header has {expected_fields}")))
        .when(d_interview.isNull(), F.try_element_at(F.col("_raw"), F.lit(1)))
        .when(F.col("_first_bad") > 0, bad_code)
        .when(weight_bad.isNotNull(), weight_bad)
    )
    first_value = len(ints) - n_values
    return staged.select(
        "source_row",
        "source",
        d_interview.alias("d_interview"),
        *[F.col("_ints")[ints.index(name)].alias(name) for name in demographics],
        *WEIGHT_COLUMNS,
        F.slice("_ints", first_value + 1, n_values).alias("value_codes"),
        reason.alias("reject_reason"),
        reason_value.alias("reject_value"),
    )


def flag_duplicate_ids(parsed: DataFrame) -> DataFrame:
    """Refuse every copy of a D_INTERVIEW that occurs more than once: which copy is the
    real respondent cannot be known (the published pipeline dropped 858069901 by hand)."""
    duplicated = (
        parsed.where(F.col("reject_reason").isNull())
        .groupBy("d_interview").count()
        .where(F.col("count") > 1)
        .select("d_interview", F.lit(True).alias("_duplicated"))
    )
    joined = parsed.join(F.broadcast(duplicated), on="d_interview", how="left")
    return joined.select(
        *[c for c in parsed.columns if c not in ("reject_reason", "reject_value")],
        F.when(F.col("reject_reason").isNull() & F.col("_duplicated"), F.lit("duplicate_d_interview"))
        .otherwise(F.col("reject_reason")).alias("reject_reason"),
        F.when(F.col("reject_reason").isNull() & F.col("_duplicated"), F.col("d_interview").cast("string"))
        .otherwise(F.col("reject_value")).alias("reject_value"),
    )
