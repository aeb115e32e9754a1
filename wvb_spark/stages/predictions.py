"""`wvb predictions import`: bring a model's answers into the `predictions` table.

Three kinds of file are read (see README: predictions): the published point-score
TSV/CSV (QUESTION_ID, PARTICIPANT_ID, SCORE), JSONL answers keyed by the custom_id of
`wvb prompts` holding the model's raw text, and distribution predictions; inspect_ai eval
logs (a `.eval` zip or one JSON document) are taken apart into one line per sample first. Every record
becomes exactly one row with a `status`, so a blank, a sentence, an 11 on a 1-10 scale or
a repeated respondent is counted and visible instead of silently dropped or coerced.

Files are read by Spark with all-string schemas (millions of rows are fine); the
model-text and distribution parsing (`wvb_spark.compute.answer_parsing`) runs in a pandas UDF,
everything else in native functions.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from wvb_spark.compute import output_formats
from wvb_spark.compute.answer_parsing import (
    NUMBER_SYNTAX,
    distribution_from_loglikelihoods,
    distribution_from_samples,
    distribution_from_top_logprobs,
    parse_answer,
    parse_distribution,
    verbalised_distribution,
)
from wvb_spark.core import schemas
from wvb_spark.core.errors import InputError, RunError
from wvb_spark.core.stage import Result, common_options
from wvb_spark.core.text_files import hadoop_file_exists
from wvb_spark.transforms.columns import (  # the same point rule as the baselines; file positions as the build
    PARTITION_SHIFT,
    median_point,
    scan_offsets,
    scan_position_column,
)

FORMATS = ("auto", "tsv", "csv", "jsonl", "distribution", "logprobs", "samples", "verbalised", "lm-eval", "inspect")
STATUSES = schemas.PREDICTION_STATUSES
PARTICIPANT_ALIASES = ("PARTICIPANT_ID", "D_INTERVIEW")
# envelope: the batch format a model text came in (output_formats.ENVELOPES), for its parse_method
RAW_COLUMNS = (
    "record",
    "source",
    "question_id",
    "participant_id",
    "raw_score",
    "payload",
    "payload_kind",
    "method",
    "envelope",
)
PAYLOAD_KINDS = (
    "score",
    "text",
    "probabilities",
    "logprobs",
    "top_logprobs",
    "top_logprobs_letters",
    "samples",
    "verbalised",
    "loglikelihoods",
    "failed",
)
_POINT_COLUMN = re.compile(r"^(P|PROB|LOGPROB|LP)_?(-?\d+)$", re.IGNORECASE)


# --------------------------------------------------------------------------- file layout


def detect_layout(path: str, first_line: str, fmt: str) -> dict:
    """{"kind": "delimited"|"jsonl", "separator": str|None, "distribution": bool} from the
    --format option, the file name and its first line."""
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    line = first_line.lstrip("\ufeff").strip()
    name = path.lower().removesuffix(".gz")
    if (
        fmt in output_formats.FORMAT_KINDS
        and fmt != "distribution"
        or (fmt in ("auto", "distribution") and (name.endswith((".jsonl", ".ndjson", ".json")) or line.startswith("{")))
    ):
        keys = ('"distribution"', '"probabilities"', '"logprobs"')
        distribution = fmt == "distribution" or (fmt == "auto" and any(k in line for k in keys))
        return {"kind": "jsonl", "separator": None, "distribution": distribution}
    if fmt == "tsv":
        separator = "\t"
    elif fmt == "csv":
        separator = ","
    else:
        counts = {sep: line.count(sep) for sep in ("\t", ",", ";", "|")}
        separator = (
            # typeshed: dict.get may return None, which max cannot compare; every key here is present
            max(counts, key=counts.get)  # type: ignore[arg-type]
            if max(counts.values()) > 0
            else ("\t" if name.endswith(".tsv") else ",")
        )
    header = [h.strip().strip('"').upper() for h in line.split(separator)]
    distribution = fmt == "distribution" or "DISTRIBUTION" in header or any(_POINT_COLUMN.match(h) for h in header)
    return {
        "kind": "delimited",
        "separator": separator,
        "distribution": distribution,
        "header": [h.strip().strip('"') for h in line.split(separator)],
    }


def _column(header: list[str], *names: str) -> str | None:
    """The header name matching one of `names` (case-insensitive), first alias first."""
    upper = {h.upper(): h for h in header}
    return next((upper[n] for n in names if n in upper), None)


# --------------------------------------------------------------------------- raw records (pure)


def _col(name: str) -> Column:
    """A column by its exact header name (dots and spaces allowed)."""
    return F.col("`" + name.replace("`", "``") + "`")


def _source(name: str) -> Column:
    return F.concat(F.lit(f"{name}:"), F.col("record").cast("string"))


def records_from_delimited(table: DataFrame, source_name: str, distribution: bool) -> DataFrame:
    """A delimited file (all-string columns + `record`) -> raw records.

    Point scores need QUESTION_ID, PARTICIPANT_ID (or D_INTERVIEW) and SCORE; distributions
    need QUESTION_ID, PARTICIPANT_ID and either DISTRIBUTION (a JSON list over the scale),
    P<value> columns (probabilities) or LOGPROB<value> columns.
    """
    header = [c for c in table.columns if c != "record"]
    question = _column(header, "QUESTION_ID")
    participant = _column(header, *PARTICIPANT_ALIASES)
    missing = [n for n, c in (("QUESTION_ID", question), ("PARTICIPANT_ID", participant)) if c is None]
    if distribution:
        listed = _column(header, "DISTRIBUTION")
        matches = [(h, _POINT_COLUMN.match(h)) for h in header]
        points = [(h, m.group(1).upper(), int(m.group(2))) for h, m in matches if m]
        kinds = {"LOGPROB" if k in ("LOGPROB", "LP") else "P" for _, k, _ in points}
        if listed is None and not points:
            missing.append("DISTRIBUTION or P<value> columns")
        if len(kinds) > 1:
            raise InputError("the file mixes probability (P<value>) and log-probability (LOGPROB<value>) columns")
    else:
        score = _column(header, "SCORE")
        if score is None:
            missing.append("SCORE")
    if missing:
        raise InputError(f"{source_name}: missing column(s) {', '.join(missing)} (header: {', '.join(header)})")
    assert question is not None and participant is not None  # else listed in `missing` above

    if not distribution:
        assert score is not None  # else listed in `missing` above
        payload, kind, raw = _col(score), F.lit("score"), _col(score)
    elif listed is not None:
        payload, kind, raw = _col(listed), F.lit("probabilities"), _col(listed)
    else:
        payload = F.to_json(
            F.map_from_arrays(
                F.array(*[F.lit(str(value)) for _, _, value in points]), F.array(*[_col(h) for h, _, _ in points])
            )
        )
        kind = F.lit("logprobs" if kinds == {"LOGPROB"} else "probabilities")
        raw = payload
    return table.select(
        F.col("record"),
        _source(source_name).alias("source"),
        _col(question).alias("question_id"),
        _col(participant).alias("participant_id"),
        raw.alias("raw_score"),
        payload.alias("payload"),
        kind.alias("payload_kind"),
        F.lit(None).cast("string").alias("method"),
        F.lit(None).cast("string").alias("envelope"),
    ).select(*RAW_COLUMNS)


LINE_READ = T.StructType(
    [
        T.StructField(name, T.StringType())
        for name in (
            "kind",
            "shape",
            "question_id",
            "participant_id",
            "elicit",
            "payload",
            "payload_kind",
            "method",
            "raw",
        )
    ]
)


def _line_reader(want: str | None):
    @F.pandas_udf(LINE_READ)  # type: ignore[call-overload]  # pyspark stubs: no overload for a type-hinted struct UDF
    def read_lines(line: pd.Series, mapped_id: pd.Series) -> pd.DataFrame:
        """Each JSONL line -> its kind, key and answer (wvb_spark.compute.output_formats.read_line)."""
        rows = []
        for text, mapped in zip(line, mapped_id):
            mapped = None if mapped is None or (isinstance(mapped, float) and pd.isna(mapped)) else mapped
            record = output_formats.read_line(text, want, mapped)
            rows.append(tuple(getattr(record, name) for name in LINE_READ.names))
        return pd.DataFrame(rows, columns=LINE_READ.names)

    return read_lines


def read_jsonl_lines(
    lines: DataFrame, source_name: str, fmt: str = "auto", record_ids: DataFrame | None = None
) -> DataFrame:
    """JSONL lines (`line`, `record`, optional `source`) -> each line read: `kind`, key,
    `payload`, `payload_kind`, `method`, `raw`. Blank lines are not records. `record_ids`
    (recordId, custom_id) keys Bedrock output lines by our custom_id."""
    want = output_formats.FORMAT_KINDS.get(fmt)
    lines = lines.where(F.trim(F.col("line")) != "")
    if "source" not in lines.columns:
        lines = lines.withColumn("source", _source(source_name))
    if record_ids is not None:
        record = F.get_json_object(F.col("line"), "$.recordId")
        lines = (
            lines.withColumn("_record_id", record)
            .join(
                F.broadcast(
                    record_ids.select(F.col("recordId").alias("_record_id"), F.col("custom_id").alias("mapped_id"))
                ),
                on="_record_id",
                how="left",
            )
            .drop("_record_id")
        )
    else:
        lines = lines.withColumn("mapped_id", F.lit(None).cast("string"))
    read = _line_reader(want)(F.col("line"), F.col("mapped_id"))
    return lines.select("record", "source", read.alias("read")).select("record", "source", "read.*")


# How a model text was asked for, from its custom_id, for the one-format check: a file of
# free-text answers must not hold a verbalised distribution or one sample of several.
ASKED_NAMES = {
    "free": "a free-text answer",
    "verbalised": "a verbalised distribution (custom_id ending -vd)",
    "sampled": "one sampled answer (custom_id ending -s<k>)",
}


def _envelope(shape: Column, kind: Column) -> Column:
    """The format of a line (output_formats.ENVELOPES), null for a line that fits any file:
    not JSON, an error-file line, or a plain line without an answer."""
    envelopes = F.create_map(*[F.lit(x) for pair in output_formats.ENVELOPES.items() for x in pair])
    return F.when(~((kind == "empty") & (shape == "plain")), envelopes[shape])


def _asked(kind: Column, elicit: Column) -> Column:
    """ASKED_NAMES key of a model text, null for other lines."""
    return F.when(
        kind == "text",
        F.when(elicit == "vd", F.lit("verbalised")).when(elicit == "s", F.lit("sampled")).otherwise(F.lit("free")),
    )


def _first_lines(rows, field: str) -> list:
    """(value, first row) per value of `field`, in the order the values first appear."""
    firsts: dict = {}
    for row in rows:
        value = row[field]
        if value is not None and (value not in firsts or row["line"] < firsts[value]["line"]):
            firsts[value] = row
    return sorted(firsts.items(), key=lambda item: item[1]["line"])


def _one_format_error(line, holds: str, first_line, first_holds: str) -> InputError:
    """The one-line error of a file mixing formats: `line` holds another than `first_line`."""
    return InputError(
        f"{line['first']['source']} holds {holds}, but {first_line['first']['source']} holds {first_holds}: "
        f"a file must hold one format (split it)"
    )


def file_kind(read: DataFrame, fmt: str) -> dict:
    """What the file holds: {"kind", "method", "samples", "envelope"} from the first answered
    line (or the forced --format). Every answered line must hold the same kind of answer,
    every line come in the same envelope (Anthropic, OpenAI...) and every model text be
    asked for the same way (free text, verbalised, sampled); a line that does not is a
    one-line error naming it, the first line and both formats."""
    firsts = (
        read.groupBy(
            "kind",
            _envelope(F.col("shape"), F.col("kind")).alias("envelope"),
            _asked(F.col("kind"), F.col("elicit")).alias("asked"),
        )
        .agg(
            F.min_by(F.struct("source", "method"), F.col("record")).alias("first"),
            F.min("record").alias("line"),
            F.sum(F.when(F.col("elicit") == "s", 1).otherwise(0)).alias("sampled"),
        )
        .collect()
    )
    answered = [r for r in firsts if r["kind"] not in output_formats.FITS_ANY]
    kinds = _first_lines(answered, "kind")
    forced = output_formats.FORMAT_KINDS.get(fmt)
    first = forced or (kinds[0][0] if kinds else None)
    first_source = f"--format {fmt}" if forced else (kinds[0][1]["first"]["source"] if kinds else "")
    for kind, row in kinds:
        if first is not None and not output_formats.compatible(first, kind):
            raise InputError(
                f"{row['first']['source']} holds {output_formats.KIND_NAMES[kind]}, but "
                f"{first_source} {'reads' if forced else 'holds'} "
                f"{output_formats.KIND_NAMES[first]}: a file must hold one format "
                f"(split it, or force one with --format)"
            )
    envelopes = _first_lines(firsts, "envelope")
    if len(envelopes) > 1:
        (first_envelope, first_line), (envelope, line) = envelopes[:2]
        names = output_formats.ENVELOPE_NAMES
        raise _one_format_error(line, names[envelope], first_line, names[first_envelope])
    asked = _first_lines(answered, "asked") if fmt not in ("verbalised", "samples") else []
    if len(asked) > 1:
        (first_how, first_line), (how, line) = asked[:2]
        raise _one_format_error(line, ASKED_NAMES[how], first_line, ASKED_NAMES[first_how])
    method = next((row["first"]["method"] for kind, row in kinds if kind == first), None)
    sampled = sum(r["sampled"] or 0 for r in firsts) > 0
    return {
        "kind": first,
        "method": method,
        "samples": first == "samples" or fmt == "samples" or sampled,
        "envelope": envelopes[0][0] if envelopes else None,
    }


def records_from_jsonl_read(read: DataFrame, layout: dict, fmt: str = "auto") -> DataFrame:
    """Lines read (read_jsonl_lines) -> raw records. Under samples (--format samples, n > 1
    choices, or ids of `wvb prompts --elicit sample`) the lines of one (question,
    respondent) become one record whose payload is the list of their texts (a failed
    request is an unusable sample); its source lists the lines."""
    kind = F.col("kind")
    method = F.coalesce(F.col("method"), F.lit(layout.get("method")))
    failed = kind == "failed"
    verbalised = (kind == "text") & ((F.lit(fmt) == "verbalised") | (F.col("elicit") == "vd"))
    payload_kind = (
        F.when(failed & ~F.col("payload_kind").isin("samples"), F.lit("failed"))
        .when(verbalised, F.lit("verbalised"))
        .otherwise(F.coalesce(F.col("payload_kind"), F.lit("text")))
    )
    raw = F.when(kind == "not_json", F.col("raw")).otherwise(F.coalesce(F.col("raw"), F.col("payload")))
    # an error-file line (--errors) belongs to the file it reports on
    envelope = F.when(F.col("shape") == "error_line", F.lit(layout.get("envelope"))).otherwise(
        _envelope(F.col("shape"), kind)
    )
    records = read.select(
        "record",
        "source",
        "kind",
        F.when(kind != "not_json", F.col("question_id")).alias("question_id"),
        F.when(kind != "not_json", F.col("participant_id")).alias("participant_id"),
        raw.alias("raw_score"),
        F.when(kind.isin("failed", "not_json"), F.lit(None)).otherwise(F.col("payload")).alias("payload"),
        payload_kind.alias("payload_kind"),
        F.when(verbalised, F.lit("verbalised")).otherwise(method).alias("method"),
        envelope.alias("envelope"),
    )
    if not layout.get("samples"):
        return records.select(*RAW_COLUMNS)
    return _sample_sets(records)


def _sample_sets(records: DataFrame) -> DataFrame:
    """The records of one (question, respondent) -> one record whose payload is the list of
    their texts; a record without both keys stays alone."""
    kind = F.col("kind")
    texts = F.when(kind == "samples", F.from_json("payload", "array<string>")).when(
        kind.isin("text", "failed", "empty"), F.array(F.col("payload").cast("string"))
    )
    keyed = F.col("question_id").isNotNull() & F.col("participant_id").isNotNull() & texts.isNotNull()
    group = F.when(keyed, F.concat_ws("\u0001", "question_id", "participant_id")).otherwise(
        F.concat(F.lit("#"), F.col("record").cast("string"))
    )
    grouped = (
        records.withColumn("texts", texts)
        .withColumn("group", group)
        .groupBy("group")
        .agg(
            F.array_sort(
                F.collect_list(
                    F.struct(
                        "record",
                        "source",
                        "texts",
                        "question_id",
                        "participant_id",
                        "raw_score",
                        "payload",
                        "payload_kind",
                        "kind",
                        "envelope",
                    )
                )
            ).alias("lines")
        )
    )
    first = F.col("lines")[0]
    lines_text = F.concat(
        F.substring_index(first["source"], ":", 1),
        F.lit(":"),
        F.array_join(F.transform(F.slice("lines", 1, 10), lambda line: line["record"].cast("string")), ","),
        F.when(F.size("lines") > 10, F.lit(",...")).otherwise(F.lit("")),
    )
    all_texts = F.flatten(F.transform("lines", lambda line: line["texts"]))
    is_set = first["texts"].isNotNull()
    return grouped.select(
        first["record"].alias("record"),
        F.when(F.size("lines") > 1, lines_text).otherwise(first["source"]).alias("source"),
        first["question_id"].alias("question_id"),
        first["participant_id"].alias("participant_id"),
        F.when(is_set, F.to_json(all_texts)).otherwise(first["raw_score"]).alias("raw_score"),
        F.when(is_set, F.to_json(all_texts)).otherwise(first["payload"]).alias("payload"),
        F.when(is_set, F.lit("samples")).otherwise(first["payload_kind"]).alias("payload_kind"),
        F.when(is_set, F.lit("samples")).otherwise(F.lit(None)).alias("method"),
        first["envelope"].alias("envelope"),
    ).select(*RAW_COLUMNS)


# --------------------------------------------------------------------------- scoring (pure)

INTERPRETED = T.StructType(
    [
        T.StructField("score_text", T.StringType()),
        T.StructField("parse_method", T.StringType()),
        T.StructField("distribution", T.ArrayType(T.DoubleType())),
        T.StructField("distribution_status", T.StringType()),
        T.StructField("off_scale_mass", T.DoubleType()),
        T.StructField("n_samples", T.IntegerType()),
        T.StructField("n_unusable", T.IntegerType()),
    ]
)

# payload kind -> (parse_method when the reader named none, how to read it)
_DISTRIBUTION_READERS = {
    "probabilities": ("probabilities", lambda p, lo, hi: parse_distribution(p, "probabilities", lo, hi)),
    "logprobs": ("logprobs", lambda p, lo, hi: parse_distribution(p, "logprobs", lo, hi)),
    "top_logprobs": ("chat_logprobs", lambda p, lo, hi: distribution_from_top_logprobs(_loads(p), lo, hi)),
    "top_logprobs_letters": (
        "chat_logprobs",
        lambda p, lo, hi: distribution_from_top_logprobs(_loads(p), lo, hi, letters=True),
    ),
    "samples": ("samples", lambda p, lo, hi: distribution_from_samples(_loads(p), lo, hi)),
    "verbalised": ("verbalised", lambda p, lo, hi: verbalised_distribution(p, lo, hi)),
    "loglikelihoods": ("lm_eval", lambda p, lo, hi: distribution_from_loglikelihoods(_loads(p), lo, hi)),
}


def _loads(payload):
    import json

    if payload is None:
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return None


@F.pandas_udf(INTERPRETED)  # type: ignore[call-overload]  # pyspark stubs: no overload for a type-hinted struct UDF
def interpret_payloads(
    payload: pd.Series,
    kind: pd.Series,
    method: pd.Series,
    envelope: pd.Series,
    scale_min: pd.Series,
    scale_max: pd.Series,
) -> pd.DataFrame:
    """Model text -> (score text, parse method, the batch format before how the number was
    found); a distribution of any origin -> (normalised list, status, off-scale mass,
    samples); a failed request -> missing."""
    rows: list[tuple[Any, ...]] = []
    for text, what, named, shape, low, high in zip(payload, kind, method, envelope, scale_min, scale_max):
        low = None if pd.isna(low) else int(low)
        high = None if pd.isna(high) else int(high)
        text = None if text is None or (isinstance(text, float) and pd.isna(text)) else text
        named = None if named is None or (isinstance(named, float) and pd.isna(named)) else named
        shape = shape if isinstance(shape, str) else None
        if what == "text":  # the reader's method (e.g. inspect_text) or format + how the number was found
            answer = parse_answer(text, low, high)
            found = named or output_formats.text_method(shape, answer.parse_method)
            rows.append((answer.score_text, found, None, None, None, None, None))
        elif what == "failed":
            rows.append((None, named or output_formats.text_method(shape, "none"), None, "missing", None, None, None))
        else:
            default, reader = _DISTRIBUTION_READERS[what]
            parsed = (
                reader(text, low, high)
                if low is not None and high is not None
                else parse_distribution(text, "probabilities", low, high)
            )
            rows.append(
                (
                    None,
                    named or default,
                    parsed.distribution,
                    parsed.status,
                    parsed.off_scale_mass,
                    parsed.n_samples,
                    parsed.n_unusable,
                )
            )
    return pd.DataFrame(rows, columns=[f.name for f in INTERPRETED.fields])


# A participant id is digits, optionally followed by ".0" (how a spreadsheet writes an
# integer column with a blank in it). No sign and no exponent: 8.18070001E8 is a float
# that has been through rounding and may name another respondent, so it names none.
PARTICIPANT_SYNTAX = r"^\s*([0-9]+)(\.0+)?\s*$"


def _participant_number(text: Column) -> Column:
    """A participant id as a long ('156070594' or '156070594.0'); null if the text is not
    an id (see PARTICIPANT_SYNTAX) or does not fit a long."""
    digits = F.regexp_extract(text, PARTICIPANT_SYNTAX, 1)
    return F.when(digits != "", digits.try_cast("long"))


def _number(text: Column) -> Column:
    """A score as a double when its text is a finite number in NUMBER_SYNTAX, else null."""
    number = F.when(text.rlike(NUMBER_SYNTAX), F.trim(text).try_cast("double"))
    return F.when(~F.isnan(number) & (F.abs(number) != F.lit(float("inf"))), number)


def score_status(score_text: Column, raw_score: Column, number: Column) -> Column:
    """Status of a point answer on the question's scale (scale_min / scale_max columns)."""
    blank_raw = raw_score.isNull() | (F.trim(raw_score) == "")
    return (
        F.when(score_text.isNull() & blank_raw, F.lit("missing"))
        .when(score_text.isNull(), F.lit("non_numeric"))
        .when(F.trim(score_text) == "", F.lit("missing"))
        .when(number.isNull(), F.lit("non_numeric"))
        .when(number % 1 != 0, F.lit("non_integer"))
        .when((number < F.col("scale_min")) | (number > F.col("scale_max")), F.lit("out_of_range"))
        .otherwise(F.lit("valid"))
    )


def score_predictions(
    raw: DataFrame, questions: DataFrame, participants: DataFrame, model: str, *, parse_payloads: bool
) -> DataFrame:
    """Raw records -> the `predictions` contract, one row per record, each with a status.

    Precedence: unknown_question (not a value question with a scale), unknown_participant
    (not in participants, or not a whole number), duplicate (a later record for the same
    question and respondent in this file; the first keeps its own status), then the answer's
    own status: missing, non_numeric, non_integer, out_of_range or valid.
    ``parse_payloads`` is False for point-score files: their payload is the score itself.
    """

    value_questions = (
        questions.where(F.col("use_case") == "value")
        .where(F.col("scale_min").isNotNull() & F.col("scale_max").isNotNull())
        .select("question_id", "scale_min", "scale_max", F.lit(True).alias("known_question"))
    )
    people = participants.select("d_interview", F.lit(True).alias("known_participant")).distinct()
    keyed = (
        raw.select(*RAW_COLUMNS)
        .withColumn("question_id", F.trim("question_id"))
        .withColumn("d_interview", _participant_number(F.col("participant_id")))
        .join(F.broadcast(value_questions), on="question_id", how="left")
        .join(F.broadcast(people), on="d_interview", how="left")
    )

    keyed = _interpreted(keyed, parse_payloads)
    number = _number(F.col("score_text"))
    is_distribution = F.col("distribution_status").isNotNull()
    own_status = F.when(is_distribution, F.col("distribution_status")).otherwise(
        score_status(F.col("score_text"), F.col("raw_score"), number)
    )
    known = F.col("known_question").isNotNull() & F.col("known_participant").isNotNull()
    order = Window.partitionBy("question_id", "d_interview").orderBy("record")
    status = (
        F.when(F.col("known_question").isNull(), F.lit("unknown_question"))
        .when(F.col("known_participant").isNull(), F.lit("unknown_participant"))
        .when(known & (F.row_number().over(order) > 1), F.lit("duplicate"))
        .otherwise(own_status)
    )
    distribution = F.when(is_distribution & (F.col("distribution_status") == "valid"), F.col("distribution"))
    score = F.when(
        is_distribution, F.when(distribution.isNotNull(), median_point(distribution, F.col("scale_min")))
    ).otherwise(number)
    return keyed.select(
        F.lit(model).alias("model"),
        F.col("question_id"),
        F.col("d_interview"),
        F.col("raw_score"),
        score.alias("score"),
        status.alias("status"),
        distribution.alias("distribution"),
        F.col("parse_method"),
        F.col("source"),
        F.col("off_scale_mass"),
        F.col("n_samples"),
        F.col("n_unusable"),
    ).select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schemas.PREDICTIONS.fields])


def _interpreted(keyed: DataFrame, parse_payloads: bool) -> DataFrame:
    """Add score_text, parse_method and the distribution columns: a point-score file's
    payload is the score itself; any other payload is interpreted by its kind."""
    if not parse_payloads:
        return keyed.select(
            "*",
            F.col("payload").alias("score_text"),
            F.lit("score_column").alias("parse_method"),
            F.lit(None).cast("array<double>").alias("distribution"),
            F.lit(None).cast("string").alias("distribution_status"),
            F.lit(None).cast("double").alias("off_scale_mass"),
            F.lit(None).cast("int").alias("n_samples"),
            F.lit(None).cast("int").alias("n_unusable"),
        )
    interpreted = interpret_payloads(
        F.col("payload"),
        F.col("payload_kind"),
        F.col("method"),
        F.col("envelope"),
        F.col("scale_min"),
        F.col("scale_max"),
    )
    return (
        keyed.withColumn("interpreted", interpreted)
        .select("*", *[F.col("interpreted")[f.name].alias(f.name) for f in INTERPRETED.fields])
        .drop("interpreted")
    )


# --------------------------------------------------------------------------- reading (edge)


def number_records(df: DataFrame) -> DataFrame:
    """Add `record`, the 1-based position of each row in the file, without a global sort.
    Record order is also what "first" means for duplicates."""
    with_id = df.withColumn("_row_id", F.monotonically_increasing_id())
    partition = F.shiftright(F.col("_row_id"), PARTITION_SHIFT)
    counts = {r["p"]: r["n"] for r in with_id.groupBy(partition.alias("p")).agg(F.count(F.lit(1)).alias("n")).collect()}
    record = scan_position_column(F.col("_row_id"), scan_offsets(counts))
    return with_id.withColumn("record", record).drop("_row_id")


def _numbered_lines(spark: SparkSession, path: str, name: str, first_record: int = 0) -> DataFrame:
    lines = number_records(spark.read.text(path).withColumnRenamed("value", "line"))
    return lines.select(
        (F.col("record") + F.lit(first_record)).alias("record"),
        "line",
        F.concat(F.lit(f"{name}:"), F.col("record").cast("string")).alias("source"),
    )


def _record_ids(spark: SparkSession, path: str) -> DataFrame:
    """recordId -> custom_id from the records sent to Bedrock (each line holding both)."""
    lines = spark.read.text(path)
    return (
        lines.select(
            F.get_json_object("value", "$.recordId").alias("recordId"),
            F.get_json_object("value", "$.custom_id").alias("custom_id"),
        )
        .where(F.col("recordId").isNotNull() & F.col("custom_id").isNotNull())
        .dropDuplicates(["recordId"])
    )


def inspect_log(path: str, fmt: str) -> str | None:
    """'eval' / 'json' when the file is an inspect_ai log (auto-detected, or --format
    inspect, which then insists), else None."""
    kind = output_formats.inspect_log_kind(path) if os.path.isfile(path) else None
    if fmt == "inspect" and kind is None:
        raise InputError(
            f"--format inspect: {path} is not an inspect_ai log (a .eval zip, or the JSON of "
            f"--log-format=json) on the local file system"
        )
    return kind if fmt in ("auto", "inspect") else None


def _inspect_lines(spark: SparkSession, path: str, kind: str) -> DataFrame:
    """One JSON line per sample of an inspect_ai log (read on the driver: a log is one
    document, not a splittable file), numbered in the dataset's order."""
    try:
        samples, _ = output_formats.read_inspect_log(path, kind)
    except ValueError as error:
        raise InputError(str(error)) from None
    name = os.path.basename(path.rstrip("/"))
    rows = [(i, output_formats.inspect_line(sample), f"{name}:{i}") for i, sample in enumerate(samples, start=1)]
    return spark.createDataFrame(rows, "record long, line string, source string")


def read_records(
    spark: SparkSession, path: str, fmt: str, errors: str | None = None, inputs: str | None = None
) -> tuple[DataFrame, bool]:
    """(raw records, whether their payloads need parsing in Python) for one file; for JSONL
    also the lines of a batch's separate error file (`errors`, numbered after the file's)
    and the Bedrock input records that key recordIds (`inputs`)."""
    for given in (path, errors, inputs):
        if given is not None and not hadoop_file_exists(spark, given):
            raise InputError(f"file not found: {given}")
    log = inspect_log(path, fmt)
    if log is not None:
        if errors is not None or inputs is not None:
            raise InputError("--errors and --inputs go with JSONL batch output, not an inspect_ai log")
        read = read_jsonl_lines(_inspect_lines(spark, path, log), os.path.basename(path), "auto")
        return records_from_jsonl_read(read, file_kind(read, "auto"), "auto"), True
    first = spark.read.text(path).where(F.trim("value") != "").limit(1).collect()
    if not first:
        raise InputError(f"{path} is empty")
    layout = detect_layout(path, first[0]["value"], fmt)
    name = os.path.basename(path.rstrip("/"))
    if layout["kind"] == "jsonl":
        lines = _numbered_lines(spark, path, name)
        if errors is not None:
            count = lines.count()
            lines = lines.unionByName(_numbered_lines(spark, errors, os.path.basename(errors.rstrip("/")), count))
        read = read_jsonl_lines(lines, name, fmt, _record_ids(spark, inputs) if inputs else None)
        return records_from_jsonl_read(read, file_kind(read, fmt), fmt), True
    if errors is not None or inputs is not None:
        raise InputError("--errors and --inputs go with JSONL batch output, not a TSV/CSV file")
    header = [h.lstrip("\ufeff") for h in layout["header"]]
    if len(set(h.upper() for h in header)) != len(header):
        raise InputError(f"{path}: repeated column names in header: {', '.join(header)}")
    schema = T.StructType([T.StructField(h, T.StringType()) for h in header])
    table = (
        spark.read.schema(schema)
        .option("header", True)
        .option("sep", layout["separator"])
        .option("mode", "PERMISSIVE")
        .option("enforceSchema", True)
        .csv(path)
    )
    records = records_from_delimited(number_records(table), name, layout["distribution"])
    return records, layout["distribution"]


# --------------------------------------------------------------------------- command

SETTINGS = None
OPTIONS = ()


def add_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = actions.add_parser(
        "import",
        help="import one model's predictions file",
        parents=[common_options(after_action=True)],
        description="Import one model's predictions (TSV/CSV, JSONL or distributions).",
    )
    imp.add_argument("--warehouse", required=True, metavar="DIR", help="warehouse root (tables at DIR/<table>)")
    imp.add_argument(
        "--model", required=True, metavar="NAME", help="model name; its rows in predictions are replaced by this import"
    )
    imp.add_argument("--file", required=True, metavar="FILE", help="the predictions file")
    imp.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="auto (default: from the extension and the lines), tsv, csv, jsonl (model texts), "
        "distribution (a TSV/CSV/JSONL of probabilities), logprobs (batch output with top "
        "log-probabilities), samples (several answers per question and respondent), verbalised "
        "(texts holding a JSON distribution), lm-eval (lm-evaluation-harness samples file), inspect "
        "(an inspect_ai eval log: .eval, or the JSON of --log-format=json)",
    )
    imp.add_argument(
        "--errors",
        metavar="FILE",
        help="the batch's separate error file (OpenAI, Together): its failed requests become rows with status missing",
    )
    imp.add_argument(
        "--inputs",
        metavar="FILE",
        help="Bedrock: the input records sent (recordId and custom_id per line), to key the output",
    )


# A model name is a partition value, hence a directory name: letters, digits, spaces and
# . _ - + @ only (no path separators, nothing a writer would have to escape), at most
# MODEL_NAME_BYTES bytes, and not the name Spark gives a null partition.
MODEL_NAME_SYNTAX = re.compile(r"[\w.+@-]([\w .+@-]*[\w.+@-])?")
MODEL_NAME_BYTES = 200
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def check_model_name(name: str) -> str:
    """The --model value without surrounding spaces, or one line saying why it cannot
    name a partition of `predictions` (checked before anything is read or written)."""
    model = name.strip()
    if not model:
        raise InputError("--model must not be empty")
    if model.upper() == NULL_PARTITION:
        raise InputError(f"--model {model} is the name Spark gives a null partition: choose another name")
    if not MODEL_NAME_SYNTAX.fullmatch(model) or len(model.encode("utf-8")) > MODEL_NAME_BYTES:
        raise InputError(
            f"--model {model!r} cannot name a partition: use letters, digits, spaces and . _ - + @ "
            f"(at most {MODEL_NAME_BYTES} bytes; e.g. meta-llama--Llama-3-8B for meta-llama/Llama-3-8B)"
        )
    return model


def check_import_paths(file: str, warehouse: str) -> None:
    """The predictions file readable and the warehouse writable, before Spark starts."""
    from wvb_spark.core import preflight

    preflight.check_input_file(file, "predictions file")
    preflight.check_warehouse(warehouse, ("predictions",))


def format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{status} {counts.get(status, 0)}" for status in STATUSES)


def run(args, config: dict) -> Result:
    from wvb_spark.core.session import get_spark
    from wvb_spark.core.warehouse import Warehouse

    if args.action != "import":
        raise InputError(f"unknown action {args.action!r} (expected: import)")
    model = check_model_name(args.model)
    check_import_paths(args.file, args.warehouse)
    Warehouse(None, args.warehouse, config).require("questions", "participants")
    spark = get_spark(config)
    tables = Warehouse(spark, args.warehouse, config)
    questions = tables.read("questions")
    participants = tables.read("participants")

    raw, parse_payloads = read_records(spark, args.file, args.format, errors=args.errors, inputs=args.inputs)
    raw = raw.persist()
    rows_read = raw.count()
    if rows_read == 0:  # a header alone must not replace the model's rows with nothing
        raise InputError(f"{args.file} holds no prediction rows (a header only); nothing was imported")
    predictions = score_predictions(raw, questions, participants, model, parse_payloads=parse_payloads)
    tables.add_new_columns("predictions", stage="wvb predictions import")
    version = tables.write(
        "predictions",
        predictions,
        stage="wvb predictions import",
        options={"model": model, "file": args.file, "format": args.format},
        counts={"rows_read": rows_read},
        replace={"model": model},
        expected_rows=rows_read,
    )
    raw.unpersist()
    written = (
        tables.read("predictions", version=version)
        .where(F.col("model") == model)
        .groupBy("status", "parse_method")
        .count()
        .collect()
    )
    counts: dict[str, int] = {}
    methods: dict[str | None, int] = {}
    for row in written:
        counts[row["status"]] = counts.get(row["status"], 0) + row["count"]
        methods[row["parse_method"]] = methods.get(row["parse_method"], 0) + row["count"]
    lines = _lines_grouped(spark, args, rows_read)
    if sum(counts.values()) != rows_read:
        raise RunError(f"{sum(counts.values())} rows written but {rows_read} read")
    return Result(
        lines=[
            f"imported {args.file} as model {model!r}: {rows_read} rows read{lines}; "
            f"{format_counts(counts)}; parse_method "
            f"{', '.join(f'{m} {n}' for m, n in sorted(methods.items(), key=lambda i: str(i[0])))}; "
            f"predictions version {version}"
        ],
        tables={"predictions": version},
        counts={"rows_read": rows_read, **counts},
    )


def _lines_grouped(spark: SparkSession, args, rows_read: int) -> str:
    """' (from N lines: sampled answers grouped)' when JSONL lines became fewer rows."""
    paths = [p for p in (args.file, args.errors) if p]
    if inspect_log(args.file, args.format) is not None:
        return ""
    first = spark.read.text(args.file).where(F.trim("value") != "").limit(1).collect()
    if not first or not first[0]["value"].lstrip("\ufeff").strip().startswith("{"):
        return ""
    lines = sum(spark.read.text(p).where(F.trim("value") != "").count() for p in paths)
    return (
        f" (from {lines} lines: the sampled answers of each question and respondent as one row)"
        if lines != rows_read
        else ""
    )
