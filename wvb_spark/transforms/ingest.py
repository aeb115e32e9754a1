"""Ingest: the raw WVS Wave 7 CSV -> one typed row per record, with a reason if refused.

The file is read as text so that every line is accounted for: a record whose quotes
are malformed, whose field count differs from the header's, whose needed codes are not
integers, whose demographics are not codebook codes, or whose D_INTERVIEW is not an id
cannot be parsed into a respondent, and is kept with the reason instead of being nulled
or dropped by a CSV reader. Only the columns the benchmark needs are parsed (v5.0 and
v6.0 both carry them; extra columns are ignored).

Every cell is read as text and checked while it is still text or int64: nothing
narrower ever holds a number the checks have not accepted, so a code of 2^32 + 47 is a
quarantined cell or row, never an age of 47. Quoting follows RFC 4180 (quoted
separators, doubled quotes, line breaks inside quotes).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import zlib
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from wvb_spark.core import metadata, preflight
from wvb_spark.core.errors import InputError
from wvb_spark.transforms import recode
from wvb_spark.transforms.columns import scan_offsets, scan_position, scan_position_column

ID_COLUMN = "D_INTERVIEW"
WEIGHT_COLUMNS = ("W_WEIGHT", "S018")  # decimals; S018 is optional
OPTIONAL_COLUMNS = ("S018",)
QUOTE = '"'
# A quoted field may hold line breaks, but a record may span at most this many lines: a
# stray quote must not swallow the rest of the file into one refused record.
MAX_RECORD_LINES = 1000
# Integers of up to 18 digits fit int64 exactly; a longer one is held as +-CLIPPED_CODE,
# which is off every scale and no id, so every comparison still treats it as what it is.
MAX_CODE_DIGITS = 18
CLIPPED_CODE = 10**18
# Demographics whose codebook lists no codes besides the missing ones: a plausible range
# (inclusive). Every other demographic must hold one of its codebook codes.
PLAUSIBLE_RANGES = {"Q262": (15, 120), "Q261": (1890, 2010), "J_INTDATE": (20170101, 20241231)}
SNIPPET = 60  # characters of a malformed record shown in the quarantine
# First bytes of compressed files; the suffix is the one Spark needs to decompress them
# (None: a format Spark does not read as text).
COMPRESSED = (
    (b"\x1f\x8b", "gzip", ".gz"),
    (b"BZh", "bzip2", ".bz2"),
    (b"PK\x03\x04", "zip", None),
    (b"\xfd7zXZ\x00", "xz", None),
    (b"\x28\xb5\x2f\xfd", "zstd", None),
)


def integer_columns() -> list[str]:
    """The coded columns the build parses as integers: D_INTERVIEW first, then the other
    demographics, then the value questions (in metadata order)."""
    return [ID_COLUMN, *demographic_columns(), *metadata.value_question_ids()]


def demographic_columns() -> list[str]:
    """The demographic variables other than the id, in metadata order."""
    return [name for name in metadata.demographic_variables() if name != ID_COLUMN]


def required_columns() -> list[str]:
    return integer_columns() + [c for c in WEIGHT_COLUMNS if c not in OPTIONAL_COLUMNS]


# ---------------------------------------------------------------- the file and its header


def check_raw_file(path: str) -> str | None:
    """Refuse, in one line, a raw file that is absent, a directory, unreadable or compressed
    in a way Spark would read as garbage; return its compression ("gzip", "bzip2") or None.
    Runs before any work, so a bad path never costs a parse."""
    file = Path(path)
    if not file.exists():
        raise InputError(f"raw file not found: {path}")
    if file.is_dir():
        raise InputError(f"raw file {path} is a directory, not a file")
    try:
        with file.open("rb") as handle:
            magic = handle.read(6)
    except OSError as exc:
        raise InputError(f"cannot read raw file {path}: {exc.strerror or exc}") from None
    kind = _compression(path, magic)
    if kind:
        _check_stream(path, kind)
    return kind


def _compression(path: str, magic: bytes) -> str | None:
    """gzip/bzip2 named so that Spark decompresses it (.gz/.bz2); anything else compressed,
    or a name promising a compression the bytes do not have, is refused."""
    name = path.lower()
    for signature, kind, suffix in COMPRESSED:
        if magic.startswith(signature):
            if suffix is None:
                raise InputError(
                    f"raw file {path} is {kind}-compressed, which the build does not read: "
                    "extract the CSV first (gzip and bzip2 files named .gz/.bz2 are read as they are)"
                )
            if not name.endswith(suffix):
                raise InputError(
                    f"raw file {path} is {kind}-compressed but its name does not end in {suffix}: "
                    f"rename it to end in {suffix} or decompress it"
                )
            return kind
    for _, kind, suffix in COMPRESSED:
        if suffix and name.endswith(suffix):
            raise InputError(f"raw file {path} is named {suffix} but is not {kind}-compressed: rename it")
    return None


def _open_compressed(path: str, kind: str | None, mode: str = "rt"):
    if kind == "gzip":
        return gzip.open(path, mode, encoding="utf-8", errors="replace") if "t" in mode else gzip.open(path, mode)
    if kind == "bzip2":
        return bz2.open(path, mode, encoding="utf-8", errors="replace") if "t" in mode else bz2.open(path, mode)
    return open(path, "r", encoding="utf-8", errors="replace")


def _check_stream(path: str, kind: str) -> None:
    """Decompress the whole file once: a truncated or corrupt stream is one line here
    rather than a JVM stack trace in the middle of the parse."""
    try:
        with _open_compressed(path, kind, "rb") as handle:
            while handle.read(1 << 22):
                pass
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise InputError(f"raw file {path} is not a complete {kind} stream: {exc}") from None


def read_header(path: str) -> tuple[list[str], str]:
    """The header's column names and the separator (comma, or semicolon if the header has more)."""
    kind = check_raw_file(path)
    with _open_compressed(path, kind) as handle:
        line = handle.readline()
    if not line:
        raise InputError(f"raw file {path} is empty")
    first = line.rstrip("\r\n").lstrip("\ufeff")
    if not first.strip():
        raise InputError(f"raw file {path} starts with a blank line where its header should be")
    separator = ";" if first.count(";") > first.count(",") else ","
    try:
        names = next(csv.reader([first], delimiter=separator, strict=True))
    except csv.Error as exc:
        raise InputError(f"raw file {path}: the header line is not valid CSV ({exc})") from None
    return [name.strip() for name in names], separator


BUILD_TABLES = ("questions", "participants", "examples", "quarantine", "build_runs")


def check_inputs(raw_path: str, warehouse: str) -> tuple[list[str], str]:
    """Everything `wvb build` can check before reading a data line: the raw file (readable,
    plain or gzip/bzip2, a header with every needed column) and the warehouse (a writable
    directory, or creatable). Returns the header's names and the separator."""
    header, separator = read_header(raw_path)
    check_columns(header)
    preflight.check_warehouse(warehouse, BUILD_TABLES)
    return header, separator


def check_columns(header: list[str]) -> None:
    """Fail before writing anything if a column the benchmark needs is absent."""
    present = set(header)
    missing = [c for c in required_columns() if c not in present]
    if missing:
        shown = ", ".join(missing[:12]) + (f" and {len(missing) - 12} more" if len(missing) > 12 else "")
        raise InputError(f"raw file lacks {len(missing)} required column(s): {shown}")
    duplicated = sorted({c for c in header if header.count(c) > 1 and c in set(required_columns())})
    if duplicated:
        raise InputError(f"raw file header repeats column(s): {', '.join(duplicated)}")


# ---------------------------------------------------------------- lines -> records


def read_lines(spark: SparkSession, path: str, separator: str = ",") -> DataFrame:
    """Every record after the header as (line_number, line), line_number 1-based counting
    the header as line 1. A record is one line, or several joined by "\n" when a quoted
    field holds line breaks (RFC 4180); its line_number is then its first line's."""
    raw = spark.read.text(path).select(
        F.spark_partition_id().alias("_partition"),
        F.monotonically_increasing_id().alias("_position"),
        F.regexp_replace("value", "\r$", "").alias("line"),
    )
    quotes = F.length("line") - F.length(F.translate("line", QUOTE, ""))
    opens, closes = quote_patterns(separator)
    # One pass collects the per-partition line counts (to number lines) and, for the lines
    # with an odd number of quotes (the only ones that can open or close a quoted field
    # spanning lines; none in an ordinary file), whether they open or close one.
    odd = F.struct(
        F.col("_position").alias("position"),
        F.col("line").rlike(opens).alias("opens"),
        F.col("line").rlike(closes).alias("closes"),
    )
    stats = (
        raw.groupBy("_partition")
        .agg(
            F.count(F.lit(1)).alias("count"),
            F.collect_list(F.when(quotes % 2 == 1, odd)).alias("odd"),
        )
        .collect()
    )
    offsets = scan_offsets({row["_partition"]: row["count"] for row in stats})
    odd_lines = [(scan_position(o["position"], offsets), o["opens"], o["closes"]) for row in stats for o in row["odd"]]
    numbered = raw.select(
        scan_position_column(F.col("_position"), offsets).alias("line_number"),
        "line",
    ).where(F.col("line_number") > 1)
    spans = quoted_spans([line for line in odd_lines if line[0] > 1])
    return _join_spans(spark, numbered, spans) if spans else numbered


def quote_patterns(separator: str) -> tuple[str, str]:
    """Java regexes (possessive, so long lines cannot make them backtrack) for a line that
    *opens* a quoted field it does not close (well-formed fields, then a quote and the
    field's text to the end of the line) and for a line that *closes* one (the field's
    text, a quote, then well-formed fields to the end)."""
    sep = "\\" + separator
    inside = '(?:[^"]++|"")*+'
    field = f'(?:"{inside}"|(?:[^"{sep}][^{sep}]*+)?)'
    return f'^(?:{field}{sep})*+"{inside}$', f'^{inside}"(?:{sep}{field})*+$'


def quoted_spans(odd_lines: list[tuple[int, bool, bool]]) -> list[tuple[int, int]]:
    """(first, last) line ranges holding one record each, from the lines with an odd number
    of quotes as (line number, opens, closes): a line that opens a quoted field is joined
    with the next such line if that one closes it and is less than MAX_RECORD_LINES away.
    Any other odd line stays alone (and is refused for its quote): a stray quote costs
    its own line, not the lines after it."""
    spans, ordered, i = [], sorted(odd_lines), 0
    while i < len(ordered):
        first, opens, _ = ordered[i]
        if opens and i + 1 < len(ordered):
            last, _, closes = ordered[i + 1]
            if closes and last - first < MAX_RECORD_LINES:
                spans.append((first, last))
                i += 2
                continue
        i += 1
    return spans


def _join_spans(spark: SparkSession, numbered: DataFrame, spans: list[tuple[int, int]]) -> DataFrame:
    """Lines in a span -> one record (its lines joined by "\\n", in order); other lines as they are."""
    members = spark.createDataFrame(spans, "first long, last long").select(
        F.col("first").alias("record_start"), F.explode(F.sequence("first", "last")).alias("line_number")
    )
    tagged = numbered.join(F.broadcast(members), on="line_number", how="left")
    alone = tagged.where(F.col("record_start").isNull()).select("line_number", "line")
    joined = (
        tagged.where(F.col("record_start").isNotNull())
        .groupBy("record_start")
        .agg(F.sort_array(F.collect_list(F.struct("line_number", "line"))).alias("parts"))
        .select(F.col("record_start").alias("line_number"), F.concat_ws("\n", F.col("parts.line")).alias("line"))
    )
    return alone.unionByName(joined)


def _allow_long_fields() -> None:
    """The csv module refuses fields over 128 KiB by default: a long text field is not a
    quoting error."""
    if csv.field_size_limit() < 1 << 30:
        csv.field_size_limit(1 << 30)


def _one_record(text: str, width: int, separator: str) -> bool:
    """Whether `text` (lines joined by "\\n") is exactly one well-quoted record of `width` fields."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=separator, strict=True))
    except csv.Error:
        return False
    return len(rows) == 1 and len(rows[0]) == width


def split_broken_records(
    line_numbers: np.ndarray, lines: list[str], width: int, separator: str
) -> tuple[np.ndarray, list[str]]:
    """A record joined from several lines that is not one well-quoted record of `width`
    fields goes back to its lines, each parsed (and refused) on its own: a stray quote then
    costs the lines that hold it, not the lines between. Blank pieces are not records."""
    if not any("\n" in line for line in lines):
        return line_numbers, lines
    _allow_long_fields()
    numbers, texts = [], []
    for number, text in zip(line_numbers.tolist(), lines):
        if "\n" not in text or _one_record(text, width, separator):
            numbers.append(number)
            texts.append(text)
            continue
        for k, piece in enumerate(text.split("\n")):
            if piece.strip(" "):
                numbers.append(number + k)
                texts.append(piece)
    return np.array(numbers, dtype=np.int64), texts


# ---------------------------------------------------------------- records -> typed rows

INT_PATTERN = r"^\s*-?\d+\s*$"
NUMBER_PATTERN = r"^\s*-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
COUNT_COLUMNS = tuple(f"n_{outcome}".replace("-", "m") for outcome in recode.CELL_OUTCOMES)


def parsed_schema() -> str:
    """Spark schema of `parse_lines` output (before `source` is added). The codes of
    out-of-range cells are kept as the file's text."""
    return ", ".join(
        [
            "source_row long",
            "d_interview long",
            *[f"`{name}` int" for name in demographic_columns()],
            *[f"`{name}` double" for name in WEIGHT_COLUMNS],
            "answers array<int>",
            "out_of_range_positions array<int>",
            "out_of_range_codes array<string>",
            *[f"`{name}` int" for name in COUNT_COLUMNS],
            "reject_reason string",
            "reject_value string",
        ]
    )


@cache
def demographic_rule(name: str) -> tuple[np.ndarray, tuple[int, int] | None]:
    """(codebook codes, plausible range or None) of one demographic variable. The missing
    codes -1..-5 hold for every variable, listed or not."""
    listed = {int(float(code)) for code in metadata.choices(name) if _is_number(code)}
    codes = sorted(listed | set(metadata.MISSING_CODES))
    return np.array(codes, dtype=np.int64), PLAUSIBLE_RANGES.get(name)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def demographic_ok(name: str, codes: np.ndarray) -> np.ndarray:
    """Whether each code is one the codebook lists for the variable, or within its
    plausible range: a wrapped, mistyped or invented code never reaches `participants`."""
    allowed, bounds = demographic_rule(name)
    ok = np.isin(codes, allowed)
    if bounds is not None:
        ok |= (codes >= bounds[0]) & (codes <= bounds[1])
    return ok


def record_shapes(lines: list[str], separator: str) -> tuple[np.ndarray, np.ndarray]:
    """(fields per record, malformed quoting). Records without a quote are split by
    counting separators; the others by the csv module in strict mode, which refuses an
    unclosed quote or text after a closing quote instead of guessing."""
    _allow_long_fields()
    counts = np.fromiter((line.count(separator) + 1 for line in lines), dtype=np.int64, count=len(lines))
    malformed = np.zeros(len(lines), dtype=bool)
    for i, line in enumerate(lines):
        if QUOTE in line:
            try:
                counts[i] = len(next(csv.reader([line], delimiter=separator, strict=True)))
            except csv.Error:
                malformed[i] = True
    return counts, malformed


def quote_problem(text: str, separator: str) -> str:
    """What is wrong with a record's quotes, in words, with the file's text from the
    offending quote on (the quarantine's raw_value)."""
    inside, opened, field_start, i = False, 0, True, 0
    while i < len(text):
        char = text[i]
        if inside and char == QUOTE and text[i + 1 : i + 2] == QUOTE:
            i += 2
            continue
        if inside and char == QUOTE:
            inside = False
            if text[i + 1 : i + 2] not in ("", separator):
                return f"text after a closing quote: {_snippet(text, opened)}"
        elif not inside and char == QUOTE and field_start:
            inside, opened = True, i
        field_start = not inside and char == separator
        i += 1
    return f"quoted field not closed: {_snippet(text, opened)}" if inside else f"malformed quoting: {_snippet(text, 0)}"


def _snippet(text: str, start: int) -> str:
    piece = text[start : start + SNIPPET]
    return piece + ("…" if len(text) > start + SNIPPET else "")


def read_fields(records: list[str], header: list[str], separator: str, names: list[str]) -> pa.Table:
    """The named columns of well-quoted records of the header's width, as text (an empty
    cell is ""): pyarrow's reader, or the csv module's should they disagree on where
    records end."""
    if not records:
        return pa.table({name: pa.array([], pa.string()) for name in names})
    text = "\n".join(records).encode("utf-8")
    try:
        table = pacsv.read_csv(
            io.BytesIO(text),
            read_options=pacsv.ReadOptions(column_names=header, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=separator, newlines_in_values=any("\n" in r for r in records)),
            convert_options=pacsv.ConvertOptions(
                include_columns=names,
                column_types={name: pa.string() for name in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        if table.num_rows == len(records):
            return table
    except pa.ArrowInvalid:
        pass
    rows = [next(csv.reader([r], delimiter=separator)) for r in records]
    return pa.table({name: pa.array([row[header.index(name)] for row in rows], pa.string()) for name in names})


def parse_codes(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(codes as int64, is an integer) for a column of cell texts. An integer longer than
    MAX_CODE_DIGITS digits becomes +-CLIPPED_CODE instead of overflowing."""
    is_int = pc.match_substring_regex(column, INT_PATTERN).to_numpy(zero_copy_only=False)
    text = pc.utf8_trim_whitespace(pc.if_else(pa.array(is_int), column, "0"))
    long = (pc.utf8_length(text).to_numpy(zero_copy_only=False) > MAX_CODE_DIGITS) & is_int
    codes = pc.cast(pc.if_else(pa.array(long), "0", text), pa.int64()).to_numpy(zero_copy_only=False).copy()
    for i in np.flatnonzero(long):
        codes[i] = max(-CLIPPED_CODE, min(CLIPPED_CODE, int(text[int(i)].as_py())))
    return codes, is_int


def parse_weights(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(weights, refused) for a column of cell texts: a blank cell is NaN (no weight); a
    cell that is not a finite decimal number is refused."""
    blank = pc.equal(pc.utf8_trim_whitespace(column), "").to_numpy(zero_copy_only=False)
    matches = pc.match_substring_regex(column, NUMBER_PATTERN).to_numpy(zero_copy_only=False)
    safe = pc.utf8_trim_whitespace(pc.if_else(pa.array(matches), column, "0"))
    parsed = pc.cast(safe, pa.float64()).to_numpy(zero_copy_only=False)
    values = np.where(matches, parsed, np.nan)
    return values, (~matches & ~blank) | (matches & ~np.isfinite(parsed))


def valid_id(codes: np.ndarray, is_int: np.ndarray) -> np.ndarray:
    """D_INTERVIEW must be a positive integer of at most MAX_CODE_DIGITS digits."""
    return is_int & (codes > 0) & (codes < CLIPPED_CODE)


class _Refusals:
    """The reason (and raw_value) of each refused record of a batch: the first check a
    record fails names it, later checks only look at records still pending."""

    def __init__(self, n: int):
        self.reason = np.full(n, None, dtype=object)
        self.value = np.full(n, None, dtype=object)

    @property
    def pending(self) -> np.ndarray:
        return self.reason == None  # noqa: E711 - element-wise on an object array

    def refuse(self, mask: np.ndarray, reason: str, value_of) -> None:
        """Refuse the pending records of `mask`; `value_of(row)` gives each one's raw_value."""
        rows = np.flatnonzero(mask & self.pending)
        self.reason[rows] = reason
        self.value[rows] = [value_of(int(r)) for r in rows]


def parse_batch(line_numbers: np.ndarray, lines: list[str], header: list[str], separator: str) -> pa.RecordBatch:
    """Parse one batch of records into typed rows (schema `parsed_schema()`), with the
    reason a record is refused. Vectorised: pyarrow's CSV reader for the fields, numpy for
    the checks and the recode; Python only for the few refused records' messages."""
    n, ints = len(lines), integer_columns()
    weights = [name for name in WEIGHT_COLUMNS if name in header]
    refusals = _Refusals(n)
    field_counts, malformed = record_shapes(lines, separator)
    refusals.refuse(malformed, "malformed_quote", lambda r: quote_problem(lines[r], separator))
    refusals.refuse(
        field_counts != len(header),
        "wrong_field_count",
        lambda r: f"{field_counts[r]} fields, header has {len(header)}",
    )
    good = np.flatnonzero(refusals.pending)
    table = read_fields([lines[i] for i in good], header, separator, ints + weights)
    table_row = np.full(n, -1)
    table_row[good] = np.arange(len(good))

    def cell(name: str, row: int) -> str:
        return table.column(name)[int(table_row[row])].as_py()

    codes, is_int = np.zeros((n, len(ints)), dtype=np.int64), np.zeros((n, len(ints)), dtype=bool)
    for j, name in enumerate(ints):
        codes[good, j], is_int[good, j] = parse_codes(table.column(name))
    weight_values = {name: np.full(n, np.nan) for name in WEIGHT_COLUMNS}
    weight_bad = np.zeros((n, len(weights)), dtype=bool)
    for j, name in enumerate(weights):
        weight_values[name][good], weight_bad[good, j] = parse_weights(table.column(name))

    in_file = table_row >= 0
    refusals.refuse(in_file & ~valid_id(codes[:, 0], is_int[:, 0]), "bad_d_interview", lambda r: cell(ID_COLUMN, r))
    first_bad = np.argmax(~is_int, axis=1)
    refusals.refuse(
        in_file & ~is_int.all(axis=1),
        "non_numeric_code",
        lambda r: f"{ints[first_bad[r]]}={cell(ints[first_bad[r]], r)}",
    )
    demographics = demographic_columns()
    known = np.stack([demographic_ok(name, codes[:, 1 + j]) for j, name in enumerate(demographics)], axis=1)
    first_unknown = np.argmax(~known, axis=1)
    refusals.refuse(
        in_file & ~known.all(axis=1),
        "out_of_range_demographic",
        lambda r: f"{demographics[first_unknown[r]]}={cell(demographics[first_unknown[r]], r)}",
    )
    first_weight = np.argmax(weight_bad, axis=1) if weights else np.zeros(n, dtype=np.int64)
    refusals.refuse(
        weight_bad.any(axis=1),  # type: ignore[arg-type]  # numpy stubs: any(axis=1) of a 2-D array is an array
        "non_numeric_weight",
        lambda r: f"{weights[first_weight[r]]}={cell(weights[first_weight[r]], r)}",
    )
    ids = _record_ids(codes[:, 0], is_int[:, 0], lines, refusals.reason, header.index(ID_COLUMN), separator)
    return _typed_batch(line_numbers, codes, weight_values, refusals, ids, cell)


def _record_ids(
    codes: np.ndarray, is_int: np.ndarray, lines: list[str], reason: np.ndarray, id_index: int, separator: str
) -> np.ndarray:
    """Each record's D_INTERVIEW where it reads as one (object array, None elsewhere): a
    refused record keeps its id so the quarantine can name it, even when its fields could
    not be parsed as a whole."""
    # numpy stubs reject None as where()'s value; at run time it gives an object array
    ids = np.where(valid_id(codes, is_int), codes, None).astype(object)  # type: ignore[call-overload]
    unparsed = np.isin(reason, ["malformed_quote", "wrong_field_count"])
    for row in np.flatnonzero(unparsed):
        ids[row] = _id_from_text(lines[row], id_index, separator)
    return ids


def _id_from_text(line: str, id_index: int, separator: str) -> int | None:
    try:
        fields = next(csv.reader([line], delimiter=separator), [])
    except csv.Error:
        fields = line.split(separator)
    text = fields[id_index].strip() if len(fields) > id_index else ""
    if not (text.isdigit() and text.isascii() and len(text) <= MAX_CODE_DIGITS):
        return None
    return int(text) or None


def _typed_batch(line_numbers, codes, weight_values, refusals, ids, cell) -> pa.RecordBatch:
    """The batch's columns: values only for accepted records, and never a code narrower
    than int64 that the checks have not accepted."""
    n, accepted = len(line_numbers), refusals.pending
    n_values = len(metadata.value_question_ids())
    value_codes = codes[:, codes.shape[1] - n_values :]
    answers, out_of_range, counts = recode.recode(value_codes)
    out_of_range &= accepted[:, None]
    oor_rows, oor_positions = np.nonzero(out_of_range)
    question_ids = metadata.value_question_ids()
    columns = {
        "source_row": pa.array(np.asarray(line_numbers, dtype=np.int64) - 1, type=pa.int64()),
        "d_interview": pa.array(ids.tolist(), type=pa.int64()),
    }
    for j, name in enumerate(demographic_columns()):
        columns[name] = pa.array(np.where(accepted, codes[:, 1 + j], 0).astype(np.int32), mask=~accepted)
    for name in WEIGHT_COLUMNS:
        columns[name] = pa.array(weight_values[name], mask=~accepted | np.isnan(weight_values[name]))
    lengths = out_of_range.sum(axis=1)
    columns["answers"] = _list_array(
        pa.array(answers.ravel().astype(np.int32), mask=(answers < 0).ravel()), np.full(n, n_values), accepted
    )
    columns["out_of_range_positions"] = _list_array(pa.array(oor_positions.astype(np.int32)), lengths, accepted)
    texts = [cell(question_ids[p], r) for r, p in zip(oor_rows.tolist(), oor_positions.tolist())]
    columns["out_of_range_codes"] = _list_array(pa.array(texts, pa.string()), lengths, accepted)
    for name, outcome in zip(COUNT_COLUMNS, recode.CELL_OUTCOMES):
        columns[name] = pa.array(np.where(accepted, counts[outcome], 0).astype(np.int32))
    columns["reject_reason"] = pa.array(refusals.reason.tolist(), type=pa.string())
    columns["reject_value"] = pa.array(refusals.value.tolist(), type=pa.string())
    return pa.RecordBatch.from_pydict(columns)


def _list_array(flat: pa.Array, lengths: np.ndarray, row_valid: np.ndarray) -> pa.ListArray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), flat, mask=pa.array(~row_valid))


def parse_lines(lines: DataFrame, header: list[str], separator: str, source_name: str) -> DataFrame:
    """(line_number, line) records -> one typed row per non-blank record (see `parse_batch`),
    plus `source` ("file:line"). Pure transform; the parsing runs in Arrow batches."""

    def parse(batches):
        for batch in batches:
            if batch.num_rows:
                numbers, texts = split_broken_records(
                    batch.column("line_number").to_numpy(), batch.column("line").to_pylist(), len(header), separator
                )
                if len(texts):
                    yield parse_batch(numbers, texts, header, separator)

    non_blank = lines.where(F.length(F.trim("line")) > 0).select("line_number", "line")
    parsed = non_blank.mapInArrow(parse, parsed_schema())
    source = F.concat(F.lit(f"{source_name}:"), (F.col("source_row") + 1).cast("string"))
    return parsed.select(*parsed.columns, source.alias("source"))


def flag_duplicate_ids(parsed: DataFrame) -> DataFrame:
    """Refuse every copy of a D_INTERVIEW that occurs more than once: which copy is the
    real respondent cannot be known (the published pipeline dropped 858069901 by hand)."""
    duplicated = (
        parsed.where(F.col("reject_reason").isNull())
        .groupBy("d_interview")
        .count()
        .where(F.col("count") > 1)
        .select("d_interview", F.lit(True).alias("_duplicated"))
    )
    joined = parsed.join(F.broadcast(duplicated), on="d_interview", how="left")
    return joined.select(
        *[c for c in parsed.columns if c not in ("reject_reason", "reject_value")],
        F.when(F.col("reject_reason").isNull() & F.col("_duplicated"), F.lit("duplicate_d_interview"))
        .otherwise(F.col("reject_reason"))
        .alias("reject_reason"),
        F.when(F.col("reject_reason").isNull() & F.col("_duplicated"), F.col("d_interview").cast("string"))
        .otherwise(F.col("reject_value"))
        .alias("reject_value"),
    )
