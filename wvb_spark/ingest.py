"""Ingest: the raw WVS Wave 7 CSV -> one typed row per data line, with a reason if refused.

The file is read as text so that every line is accounted for: a line whose field
count differs from the header's, whose needed codes are not numbers, or whose
D_INTERVIEW is missing cannot be parsed into a respondent, and is kept with the
reason instead of being nulled or dropped by a CSV reader. Only the columns the
benchmark needs are parsed (v5.0 and v6.0 both carry them; extra columns are ignored).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from wvb_spark import metadata, recode
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


INT_PATTERN = r"^\s*-?\d+\s*$"
NUMBER_PATTERN = r"^\s*-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
COUNT_COLUMNS = tuple(f"n_{outcome}".replace("-", "m") for outcome in recode.CELL_OUTCOMES)


def parsed_schema() -> str:
    """Spark schema of `parse_lines` output (before `source` is added)."""
    demographics = [name for name in metadata.demographic_variables() if name != ID_COLUMN]
    return ", ".join([
        "source_row long", "d_interview long",
        *[f"`{name}` int" for name in demographics],
        *[f"`{name}` double" for name in WEIGHT_COLUMNS],
        "answers array<int>", "out_of_range_positions array<int>", "out_of_range_codes array<int>",
        *[f"`{name}` int" for name in COUNT_COLUMNS],
        "reject_reason string", "reject_value string",
    ])


def _field_counts(lines: list[str], separator: str) -> np.ndarray:
    """Fields per line; a line with quotes is split by the csv module (quoted separators)."""
    counts = np.fromiter((line.count(separator) + 1 for line in lines), dtype=np.int64, count=len(lines))
    for i, line in enumerate(lines):
        if '"' in line:
            counts[i] = len(next(csv.reader([line], delimiter=separator)))
    return counts


def _list_array(values: np.ndarray, valid: np.ndarray, lengths: np.ndarray, row_valid: np.ndarray):
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = pa.array(values.astype(np.int32), mask=~valid)
    return pa.ListArray.from_arrays(pa.array(offsets), flat, mask=pa.array(~row_valid))


def parse_batch(line_numbers: np.ndarray, lines: list[str], header: list[str], separator: str) -> pa.RecordBatch:
    """Parse one batch of data lines into typed rows (schema `parsed_schema()`), with the
    reason a row is refused. Vectorised: pyarrow's CSV reader for the fields, numpy for
    the checks and the recode."""
    n = len(lines)
    demographics = [name for name in metadata.demographic_variables() if name != ID_COLUMN]
    ints = integer_columns()
    weights = [name for name in WEIGHT_COLUMNS if name in header]
    reason = np.full(n, None, dtype=object)
    reason_value = np.full(n, None, dtype=object)

    field_counts = _field_counts(lines, separator)
    wrong = field_counts != len(header)
    reason[wrong] = "wrong_field_count"
    reason_value[wrong] = [f"{c} fields, header has {len(header)}" for c in field_counts[wrong]]
    good = np.flatnonzero(~wrong)

    codes = np.zeros((n, len(ints)), dtype=np.int64)
    is_int = np.zeros((n, len(ints)), dtype=bool)
    weight_values = {name: np.full(n, np.nan) for name in WEIGHT_COLUMNS}
    weight_bad = np.zeros(n, dtype=bool)
    weight_text = np.full(n, None, dtype=object)
    if len(good):
        text = "\n".join(lines[i] for i in good).encode("utf-8")
        table = pacsv.read_csv(
            io.BytesIO(text),
            read_options=pacsv.ReadOptions(column_names=header, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=separator),
            convert_options=pacsv.ConvertOptions(
                include_columns=ints + weights,
                column_types={name: pa.string() for name in ints + weights},
                strings_can_be_null=False, quoted_strings_can_be_null=False,
            ),
        )
        for j, name in enumerate(ints):
            column = table.column(name)
            matches = pc.match_substring_regex(column, INT_PATTERN).to_numpy(zero_copy_only=False)
            safe = pc.if_else(pa.array(matches), column, "0")
            codes[good, j] = pc.cast(pc.utf8_trim_whitespace(safe), pa.int64()).to_numpy()
            is_int[good, j] = matches
        for name in weights:
            column = table.column(name)
            blank = pc.equal(pc.utf8_trim_whitespace(column), "").to_numpy(zero_copy_only=False)
            matches = pc.match_substring_regex(column, NUMBER_PATTERN).to_numpy(zero_copy_only=False)
            safe = pc.if_else(pa.array(matches), column, "0")
            parsed = pc.cast(pc.utf8_trim_whitespace(safe), pa.float64()).to_numpy()
            weight_values[name][good] = np.where(matches, parsed, np.nan)
            bad = ~matches & ~blank
            bad_rows = good[bad]
            weight_bad[bad_rows] = True
            weight_text[bad_rows] = [f"{name}={v}" for v in column.filter(pa.array(bad)).to_pylist()]

    pending = reason == None  # noqa: E711 - element-wise on an object array
    bad_id = pending & ~is_int[:, 0]
    reason[bad_id] = "bad_d_interview"
    if bad_id.any():
        id_index = header.index(ID_COLUMN)
        reason_value[bad_id] = [fields[id_index] for fields in _fields_of(lines, np.flatnonzero(bad_id), separator)]
    pending &= ~bad_id
    first_bad = np.argmax(~is_int, axis=1)
    bad_code = pending & ~is_int.all(axis=1)
    reason[bad_code] = "non_numeric_code"
    if bad_code.any():
        rows = np.flatnonzero(bad_code)
        raw = _fields_of(lines, rows, separator)
        reason_value[bad_code] = [f"{ints[first_bad[r]]}={raw[k][header.index(ints[first_bad[r]])]}"
                                  for k, r in enumerate(rows)]
    pending &= ~bad_code
    bad_weight = pending & weight_bad
    reason[bad_weight] = "non_numeric_weight"
    reason_value[bad_weight] = weight_text[bad_weight]
    accepted = reason == None  # noqa: E711

    n_values = len(metadata.value_question_ids())
    value_codes = codes[:, len(ints) - n_values:]
    answers, out_of_range, counts = recode.recode(value_codes)
    out_of_range &= accepted[:, None]
    oor_rows, oor_positions = np.nonzero(out_of_range)
    oor_lengths = out_of_range.sum(axis=1)

    columns = {
        "source_row": pa.array(line_numbers - 1, type=pa.int64()),
        "d_interview": pa.array(codes[:, 0], mask=~accepted, type=pa.int64()),
    }
    for name in demographics:
        columns[name] = pa.array(codes[:, ints.index(name)].astype(np.int32), mask=~accepted)
    for name in WEIGHT_COLUMNS:
        columns[name] = pa.array(weight_values[name], mask=~accepted | np.isnan(weight_values[name]))
    columns["answers"] = _list_array(answers.ravel(), (answers >= 0).ravel(),
                                     np.full(n, n_values), accepted)
    columns["out_of_range_positions"] = _list_array(oor_positions, np.ones(len(oor_positions), bool),
                                                    oor_lengths, accepted)
    columns["out_of_range_codes"] = _list_array(value_codes[oor_rows, oor_positions],
                                                np.ones(len(oor_positions), bool), oor_lengths, accepted)
    for name, outcome in zip(COUNT_COLUMNS, recode.CELL_OUTCOMES):
        columns[name] = pa.array(np.where(accepted, counts[outcome], 0).astype(np.int32))
    columns["reject_reason"] = pa.array(reason.tolist(), type=pa.string())
    columns["reject_value"] = pa.array(reason_value.tolist(), type=pa.string())
    # a refused row keeps the id it had, when it had one (so quarantine can name it)
    ids, has_id = codes[:, 0].copy(), is_int[:, 0].copy()
    id_index = header.index(ID_COLUMN)
    for row, fields in zip(np.flatnonzero(wrong), _fields_of(lines, np.flatnonzero(wrong), separator)):
        if len(fields) > id_index and fields[id_index].strip().lstrip("-").isdigit():
            ids[row], has_id[row] = int(fields[id_index]), True
    columns["d_interview"] = pa.array(ids, mask=~has_id, type=pa.int64())
    return pa.RecordBatch.from_pydict(columns)


def _fields_of(lines: list[str], rows: np.ndarray, separator: str) -> list[list[str]]:
    """The fields of a few lines, for error messages."""
    return [next(csv.reader([lines[r]], delimiter=separator)) for r in rows]


def parse_lines(lines: DataFrame, header: list[str], separator: str, source_name: str) -> DataFrame:
    """(line_number, line) -> one typed row per non-blank line (see `parse_batch`), plus
    `source` ("file:line"). Pure transform; the parsing runs in Arrow batches."""

    def parse(batches):
        for batch in batches:
            if batch.num_rows:
                yield parse_batch(batch.column("line_number").to_numpy(), batch.column("line").to_pylist(),
                                  header, separator)

    non_blank = lines.where(F.length(F.trim("line")) > 0).select("line_number", "line")
    parsed = non_blank.mapInArrow(parse, parsed_schema())
    return parsed.withColumn(
        "source", F.concat(F.lit(f"{source_name}:"), (F.col("source_row") + 1).cast("string"))
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
