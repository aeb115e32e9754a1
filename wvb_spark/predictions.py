"""`wvb predictions import`: bring a model's answers into the `predictions` table.

Three kinds of file are read (see README: predictions): the published point-score
TSV/CSV (QUESTION_ID, PARTICIPANT_ID, SCORE), JSONL answers keyed by the custom_id of
`wvb prompts` holding the model's raw text, and distribution predictions. Every record
becomes exactly one row with a `status`, so a blank, a sentence, an 11 on a 1-10 scale or
a repeated respondent is counted and visible instead of silently dropped or coerced.

Files are read by Spark with all-string schemas (millions of rows are fine); the
model-text and distribution parsing (`wvb_spark.answer_parsing`) runs in a pandas UDF,
everything else in native functions.
"""

from __future__ import annotations

import argparse
import os
import re

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from wvb_spark import schemas
from wvb_spark.answer_parsing import NUMBER_SYNTAX, parse_answer, parse_distribution
from wvb_spark.errors import WvbError
from wvb_spark.prompts import CUSTOM_ID_REGEX

FORMATS = ("auto", "tsv", "csv", "jsonl", "distribution")
STATUSES = schemas.PREDICTION_STATUSES
PARTICIPANT_ALIASES = ("PARTICIPANT_ID", "D_INTERVIEW")
RAW_COLUMNS = ("record", "source", "question_id", "participant_id", "raw_score", "payload", "payload_kind")
PAYLOAD_KINDS = ("score", "text", "probabilities", "logprobs")

# Where the model's text sits in a JSONL line, first match wins: OpenAI batch output
# (chat completions, then responses), Anthropic message batches, then simple shapes.
TEXT_PATHS = (
    "$.response.body.choices[0].message.content",
    "$.response.body.output[0].content[0].text",
    "$.result.message.content[0].text",
    "$.content",
    "$.text",
)
_POINT_COLUMN = re.compile(r"^(P|PROB|LOGPROB|LP)_?(-?\d+)$", re.IGNORECASE)


# --------------------------------------------------------------------------- file layout

def detect_layout(path: str, first_line: str, fmt: str) -> dict:
    """{"kind": "delimited"|"jsonl", "separator": str|None, "distribution": bool} from the
    --format option, the file name and its first line."""
    if fmt not in FORMATS:
        raise WvbError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    line = first_line.lstrip("\ufeff").strip()
    name = path.lower().removesuffix(".gz")
    if fmt == "jsonl" or (fmt in ("auto", "distribution") and
                          (name.endswith((".jsonl", ".ndjson", ".json")) or line.startswith("{"))):
        keys = ('"distribution"', '"probabilities"', '"logprobs"')
        distribution = fmt == "distribution" or (fmt == "auto" and any(k in line for k in keys))
        return {"kind": "jsonl", "separator": None, "distribution": distribution}
    if fmt == "tsv":
        separator = "\t"
    elif fmt == "csv":
        separator = ","
    else:
        counts = {sep: line.count(sep) for sep in ("\t", ",", ";", "|")}
        separator = max(counts, key=counts.get) if max(counts.values()) > 0 else \
            ("\t" if name.endswith(".tsv") else ",")
    header = [h.strip().strip('"').upper() for h in line.split(separator)]
    distribution = fmt == "distribution" or "DISTRIBUTION" in header or \
        any(_POINT_COLUMN.match(h) for h in header)
    return {"kind": "delimited", "separator": separator, "distribution": distribution,
            "header": [h.strip().strip('"') for h in line.split(separator)]}


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
        points = [(h, _POINT_COLUMN.match(h)) for h in header]
        points = [(h, m.group(1).upper(), int(m.group(2))) for h, m in points if m]
        kinds = {"LOGPROB" if k in ("LOGPROB", "LP") else "P" for _, k, _ in points}
        if listed is None and not points:
            missing.append("DISTRIBUTION or P<value> columns")
        if len(kinds) > 1:
            raise WvbError("the file mixes probability (P<value>) and log-probability (LOGPROB<value>) columns")
    else:
        score = _column(header, "SCORE")
        if score is None:
            missing.append("SCORE")
    if missing:
        raise WvbError(f"{source_name}: missing column(s) {', '.join(missing)} "
                       f"(header: {', '.join(header)})")

    if not distribution:
        payload, kind, raw = _col(score), F.lit("score"), _col(score)
    elif listed is not None:
        payload, kind, raw = _col(listed), F.lit("probabilities"), _col(listed)
    else:
        payload = F.to_json(F.map_from_arrays(
            F.array(*[F.lit(str(value)) for _, _, value in points]),
            F.array(*[_col(h) for h, _, _ in points])))
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
    ).select(*RAW_COLUMNS)


def _json_path(line: Column, *paths: str) -> Column:
    return F.coalesce(*[F.get_json_object(line, p) for p in paths])


def records_from_jsonl(lines: DataFrame, source_name: str, distribution: bool) -> DataFrame:
    """JSONL lines (`line`, `record`) -> raw records; blank lines are not records.

    The key is `custom_id` (wvb-<question>-<respondent>-<wd|nd>) or question_id and
    participant_id fields. Answers: the model text (see TEXT_PATHS, or a string `response`),
    or for distributions `distribution` / `probabilities` (list or {value: p}) / `logprobs`.
    A line that is not JSON keeps its text as raw_score and gets `unknown_question`.
    """
    line = F.col("line")
    custom = F.get_json_object(line, "$.custom_id")
    parsed_id_question = F.regexp_extract(custom, CUSTOM_ID_REGEX, 1)
    question = F.when(parsed_id_question != "", parsed_id_question).otherwise(
        _json_path(line, "$.question_id", "$.QUESTION_ID"))
    participant = F.when(parsed_id_question != "", F.regexp_extract(custom, CUSTOM_ID_REGEX, 2)).otherwise(
        _json_path(line, "$.participant_id", "$.PARTICIPANT_ID", "$.d_interview", "$.D_INTERVIEW"))
    is_json = F.get_json_object(line, "$").isNotNull()
    if distribution:
        logprobs = F.get_json_object(line, "$.logprobs")
        probabilities = _json_path(line, "$.distribution", "$.probabilities")
        payload = F.coalesce(probabilities, logprobs)
        kind = F.when(probabilities.isNull() & logprobs.isNotNull(), F.lit("logprobs")).otherwise(
            F.lit("probabilities"))
    else:
        # `response` as a plain string (not the batch-output object)
        response_text = F.when(line.rlike(r'"response"\s*:\s*"'), F.get_json_object(line, "$.response"))
        payload = F.coalesce(_json_path(line, *TEXT_PATHS), response_text)
        kind = F.lit("text")
    return (
        lines.where(F.trim(line) != "")
        .select(
            F.col("record"),
            _source(source_name).alias("source"),
            F.when(is_json, question).alias("question_id"),
            F.when(is_json, participant).alias("participant_id"),
            F.when(is_json, payload).otherwise(line).alias("raw_score"),
            F.when(is_json, payload).alias("payload"),
            kind.alias("payload_kind"),
        )
        .select(*RAW_COLUMNS)
    )


# --------------------------------------------------------------------------- scoring (pure)

INTERPRETED = T.StructType([
    T.StructField("score_text", T.StringType()),
    T.StructField("parse_method", T.StringType()),
    T.StructField("distribution", T.ArrayType(T.DoubleType())),
    T.StructField("distribution_status", T.StringType()),
])


@F.pandas_udf(INTERPRETED)
def interpret_payloads(payload: pd.Series, kind: pd.Series, scale_min: pd.Series,
                       scale_max: pd.Series) -> pd.DataFrame:
    """Model text -> (score text, parse method); distribution JSON -> (normalised list, status)."""
    rows = []
    for text, what, low, high in zip(payload, kind, scale_min, scale_max):
        low = None if pd.isna(low) else int(low)
        high = None if pd.isna(high) else int(high)
        text = None if text is None or (isinstance(text, float) and pd.isna(text)) else text
        if what == "text":
            answer = parse_answer(text, low, high)
            rows.append((answer.score_text, answer.parse_method, None, None))
        else:
            parsed = parse_distribution(text, what, low, high)
            rows.append((None, what, parsed.distribution, parsed.status))
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
    return (F.when(score_text.isNull() & blank_raw, F.lit("missing"))
            .when(score_text.isNull(), F.lit("non_numeric"))
            .when(F.trim(score_text) == "", F.lit("missing"))
            .when(number.isNull(), F.lit("non_numeric"))
            .when(number % 1 != 0, F.lit("non_integer"))
            .when((number < F.col("scale_min")) | (number > F.col("scale_max")), F.lit("out_of_range"))
            .otherwise(F.lit("valid")))


def score_predictions(raw: DataFrame, questions: DataFrame, participants: DataFrame, model: str,
                      *, parse_payloads: bool) -> DataFrame:
    """Raw records -> the `predictions` contract, one row per record, each with a status.

    Precedence: unknown_question (not a value question with a scale), unknown_participant
    (not in participants, or not a whole number), duplicate (a later record for the same
    question and respondent in this file; the first keeps its own status), then the answer's
    own status: missing, non_numeric, non_integer, out_of_range or valid.
    ``parse_payloads`` is False for point-score files: their payload is the score itself.
    """
    from wvb_spark.baselines import median_point  # the same point rule as the baselines

    value_questions = (questions.where(F.col("use_case") == "value")
                       .where(F.col("scale_min").isNotNull() & F.col("scale_max").isNotNull())
                       .select("question_id", "scale_min", "scale_max", F.lit(True).alias("known_question")))
    people = participants.select("d_interview", F.lit(True).alias("known_participant")).distinct()
    keyed = (raw.select(*RAW_COLUMNS)
             .withColumn("question_id", F.trim("question_id"))
             .withColumn("d_interview", _participant_number(F.col("participant_id")))
             .join(F.broadcast(value_questions), on="question_id", how="left")
             .join(F.broadcast(people), on="d_interview", how="left"))

    if parse_payloads:
        interpreted = interpret_payloads(F.col("payload"), F.col("payload_kind"), F.col("scale_min"),
                                         F.col("scale_max"))
        keyed = keyed.withColumn("interpreted", interpreted).select(
            "*", *[F.col("interpreted")[f.name].alias(f.name) for f in INTERPRETED.fields]).drop("interpreted")
    else:
        keyed = keyed.select("*", F.col("payload").alias("score_text"),
                             F.lit("score_column").alias("parse_method"),
                             F.lit(None).cast("array<double>").alias("distribution"),
                             F.lit(None).cast("string").alias("distribution_status"))

    number = _number(F.col("score_text"))
    is_distribution = F.col("distribution_status").isNotNull()
    own_status = F.when(is_distribution, F.col("distribution_status")).otherwise(
        score_status(F.col("score_text"), F.col("raw_score"), number))
    known = F.col("known_question").isNotNull() & F.col("known_participant").isNotNull()
    order = Window.partitionBy("question_id", "d_interview").orderBy("record")
    status = (F.when(F.col("known_question").isNull(), F.lit("unknown_question"))
              .when(F.col("known_participant").isNull(), F.lit("unknown_participant"))
              .when(known & (F.row_number().over(order) > 1), F.lit("duplicate"))
              .otherwise(own_status))
    distribution = F.when(is_distribution & (F.col("distribution_status") == "valid"), F.col("distribution"))
    score = F.when(is_distribution, F.when(distribution.isNotNull(),
                                           median_point(distribution, F.col("scale_min")))).otherwise(number)
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
    ).select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schemas.PREDICTIONS.fields])


# --------------------------------------------------------------------------- reading (edge)

def number_records(df: DataFrame) -> DataFrame:
    """Add `record`, the 1-based position of each row in the file, without a global sort.

    monotonically_increasing_id is (partition << 33) + position within the partition and a
    file scan is deterministic, so per-partition counts (a few numbers, collected) turn it
    into exact consecutive numbers. Record order is also what "first" means for duplicates.
    """
    with_id = df.withColumn("_row_id", F.monotonically_increasing_id())
    partition = F.shiftright(F.col("_row_id"), 33)
    counts = sorted((r["p"], r["n"]) for r in with_id.groupBy(partition.alias("p"))
                    .agg(F.count(F.lit(1)).alias("n")).collect())
    offsets, total = {}, 0
    for part, count in counts:
        offsets[part] = total
        total += count
    if not offsets:
        return with_id.withColumn("record", F.lit(None).cast("long")).drop("_row_id")
    offset = F.create_map(*[item for p, o in offsets.items()
                            for item in (F.lit(p).cast("long"), F.lit(o).cast("long"))])[partition]
    position = F.col("_row_id").bitwiseAND(F.lit((1 << 33) - 1))
    return with_id.withColumn("record", (offset + position + 1).cast("long")).drop("_row_id")


def _hadoop_path_exists(spark: SparkSession, path: str) -> bool:
    try:
        jvm = spark.sparkContext._jvm
        hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
        fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        return bool(fs.exists(hadoop_path)) and bool(fs.getFileStatus(hadoop_path).isFile())
    except Exception:  # no JVM access (Spark Connect): fall back to the local file system
        return os.path.isfile(path)


def read_records(spark: SparkSession, path: str, fmt: str) -> tuple[DataFrame, bool]:
    """(raw records, whether their payloads need parsing in Python) for one file."""
    if not _hadoop_path_exists(spark, path):
        raise WvbError(f"file not found: {path}")
    first = spark.read.text(path).where(F.trim("value") != "").limit(1).collect()
    if not first:
        raise WvbError(f"{path} is empty")
    layout = detect_layout(path, first[0]["value"], fmt)
    name = os.path.basename(path.rstrip("/"))
    if layout["kind"] == "jsonl":
        lines = number_records(spark.read.text(path).withColumnRenamed("value", "line"))
        return records_from_jsonl(lines, name, layout["distribution"]), True
    header = [h.lstrip("\ufeff") for h in layout["header"]]
    if len(set(h.upper() for h in header)) != len(header):
        raise WvbError(f"{path}: repeated column names in header: {', '.join(header)}")
    schema = T.StructType([T.StructField(h, T.StringType()) for h in header])
    table = (spark.read.schema(schema).option("header", True).option("sep", layout["separator"])
             .option("mode", "PERMISSIVE").option("enforceSchema", True).csv(path))
    records = records_from_delimited(number_records(table), name, layout["distribution"])
    return records, layout["distribution"]


# --------------------------------------------------------------------------- command

def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = actions.add_parser("import", help="import one model's predictions file",
                             description="Import one model's predictions (TSV/CSV, JSONL or distributions).")
    # also accept the common options after `import` (they default to what was given before it)
    imp.add_argument("--conf", metavar="YAML", default=argparse.SUPPRESS, help="settings file")
    imp.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", default=argparse.SUPPRESS,
                     help="override one setting")
    imp.add_argument("--warehouse", required=True, metavar="DIR", help="warehouse root (tables at DIR/<table>)")
    imp.add_argument("--model", required=True, metavar="NAME",
                     help="model name; its rows in predictions are replaced by this import")
    imp.add_argument("--file", required=True, metavar="FILE", help="the predictions file")
    imp.add_argument("--format", choices=FORMATS, default="auto",
                     help="auto (default: from the extension and first line), tsv, csv, jsonl, or distribution "
                          "(a TSV/CSV/JSONL of probabilities)")


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
        raise WvbError("--model must not be empty")
    if model.upper() == NULL_PARTITION:
        raise WvbError(f"--model {model} is the name Spark gives a null partition: choose another name")
    if not MODEL_NAME_SYNTAX.fullmatch(model) or len(model.encode("utf-8")) > MODEL_NAME_BYTES:
        raise WvbError(f"--model {model!r} cannot name a partition: use letters, digits, spaces and . _ - + @ "
                       f"(at most {MODEL_NAME_BYTES} bytes; e.g. meta-llama--Llama-3-8B for meta-llama/Llama-3-8B)")
    return model


def check_import_paths(file: str, warehouse: str) -> None:
    """The predictions file readable and the warehouse writable, before Spark starts."""
    from wvb_spark import preflight

    preflight.check_input_file(file, "predictions file")
    preflight.check_warehouse(warehouse, ("predictions",))


def format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{status} {counts.get(status, 0)}" for status in STATUSES)


def main(args) -> int:
    from wvb_spark import config as wvb_config
    from wvb_spark.core.warehouse import Warehouse
    from wvb_spark.session import get_spark

    if args.action != "import":
        raise WvbError(f"unknown action {args.action!r} (expected: import)")
    model = check_model_name(args.model)
    check_import_paths(args.file, args.warehouse)
    config = wvb_config.load(getattr(args, "conf", None), getattr(args, "overrides", None))
    Warehouse(None, args.warehouse, config).require("questions", "participants")
    spark = get_spark(config)
    tables = Warehouse(spark, args.warehouse, config)
    questions = tables.read("questions")
    participants = tables.read("participants")

    raw, parse_payloads = read_records(spark, args.file, args.format)
    rows_read = raw.count()
    if rows_read == 0:  # a header alone must not replace the model's rows with nothing
        raise WvbError(f"{args.file} holds no prediction rows (a header only); nothing was imported")
    predictions = score_predictions(raw, questions, participants, model, parse_payloads=parse_payloads)
    version = tables.write("predictions", predictions, stage="wvb predictions import",
                           options={"model": model, "file": args.file, "format": args.format},
                           counts={"rows_read": rows_read}, replace={"model": model}, expected_rows=rows_read)
    written = (tables.read("predictions", version=version)
               .where(F.col("model") == model).groupBy("status").count().collect())
    counts = {r["status"]: r["count"] for r in written}
    print(f"imported {args.file} as model {model!r}: {rows_read} rows read; {format_counts(counts)}; "
          f"predictions version {version}")
    if sum(counts.values()) != rows_read:
        raise WvbError(f"{sum(counts.values())} rows written but {rows_read} read", exit_code=1)
    return 0
