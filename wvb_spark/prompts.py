"""`wvb prompts`: one chat request per probe row (or per example), as a JSONL file.

The prompt follows the example published with WorldValuesBench: the respondent's
demographic answers as numbered question/answer pairs, then the value question and
the JSON answer format. Each line is a request in the shape batch-inference APIs
take (custom_id, method, url, body.model, body.messages), and its custom_id names
question, respondent and variant so `wvb predictions import` can key the answers.

Rendering uses native Spark string functions (the template is split into literal
text and placeholders on the driver), so prompts for millions of examples are
built in parallel; the single output file is written by one task after a global
sort, so line order is (question in metadata order, respondent).
"""

from __future__ import annotations

import argparse
import os
import re
import string
import uuid
from dataclasses import dataclass
from importlib import resources

import yaml
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from wvb_spark import metadata
from wvb_spark.errors import WvbError
from wvb_spark.output_formats import CUSTOM_ID_PREFIX, VARIANTS, custom_id, parse_custom_id  # noqa: F401

# Listed first, as in the published example prompt; then the other demographic variables.
LEADING_DEMOGRAPHICS = ("B_COUNTRY", "H_URBRURAL", "Q275")
# Interview logistics and identifiers rather than attributes of the person.
EXCLUDED_DEMOGRAPHICS = ("D_INTERVIEW", "J_INTDATE", "N_TOWN")

OUTPUT_COLUMNS = ("custom_id", "question_id", "d_interview", "variant", "system", "prompt", "request")
PROMPT_PLACEHOLDERS = ("demographics", "question", "question_id", "scale_min", "scale_max")
ITEM_PLACEHOLDERS = ("number", "question", "answer", "variable")


# --------------------------------------------------------------------------- custom ids

def custom_id_column(question_id: Column, d_interview: Column, variant: str, elicit: Column | None = None) -> Column:
    """The custom_id of output_formats.custom_id as a Spark column (elicit: its suffix, or none)."""
    parts = [F.lit(CUSTOM_ID_PREFIX), question_id, d_interview.cast("string"), F.lit(VARIANTS[variant])]
    return F.concat_ws("-", *parts, *([elicit] if elicit is not None else []))


# --------------------------------------------------------------------------- template

@dataclass(frozen=True)
class PromptTemplate:
    system: str
    with_demographics: str
    without_demographics: str
    demographic_item: str
    demographic_separator: str

    def for_variant(self, variant: str) -> str:
        return self.with_demographics if variant == "with-demographics" else self.without_demographics


def load_template(path: str | None = None) -> PromptTemplate:
    """The packaged template (resources/prompt_template.yaml), or a user's file with the same keys."""
    if path is None:
        text = resources.files("wvb_spark").joinpath("resources", "prompt_template.yaml").read_text(encoding="utf-8")
        where = "built-in template"
    else:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise WvbError(f"cannot read --template {path}: {exc.strerror}") from None
        where = path
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WvbError(f"{where} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(raw, dict):
        raise WvbError(f"{where}: expected a mapping with keys with_demographics, without_demographics, ...")
    required = ("with_demographics", "without_demographics", "demographic_item")
    missing = [key for key in required if not isinstance(raw.get(key), str)]
    if missing:
        raise WvbError(f"{where}: missing text for {', '.join(missing)}")
    system = str(raw.get("system") or "")
    template = PromptTemplate(
        # the system message has no placeholders; only $$ -> $ applies
        system="".join(text_ for _, text_ in template_parts(system, (), f"{where}: system")),
        with_demographics=raw["with_demographics"],
        without_demographics=raw["without_demographics"],
        demographic_item=raw["demographic_item"],
        demographic_separator=str(raw.get("demographic_separator", "\n")),
    )
    for text_, allowed, key in ((template.with_demographics, PROMPT_PLACEHOLDERS, "with_demographics"),
                                (template.without_demographics, PROMPT_PLACEHOLDERS, "without_demographics"),
                                (template.demographic_item, ITEM_PLACEHOLDERS, "demographic_item")):
        template_parts(text_, allowed, f"{where}: {key}")
    return template


def template_parts(text: str, allowed, where: str) -> list[tuple[str, str]]:
    """Split a $-template into [("text", literal) | ("name", placeholder)] parts."""
    parts: list[tuple[str, str]] = []
    position = 0
    for match in string.Template.pattern.finditer(text):
        if match.start() > position:
            parts.append(("text", text[position:match.start()]))
        if match.group("escaped") is not None:
            parts.append(("text", "$"))
        elif match.group("invalid") is not None:
            raise WvbError(f"{where}: a lone '$' at character {match.start()} (write $$ for a dollar sign)")
        else:
            name = match.group("named") or match.group("braced")
            if name not in allowed:
                allowed_text = ", ".join(f"${{{a}}}" for a in allowed) or "none"
                raise WvbError(f"{where}: unknown placeholder ${{{name}}} (allowed: {allowed_text})")
            parts.append(("name", name))
        position = match.end()
    if position < len(text):
        parts.append(("text", text[position:]))
    return parts


def template_column(text: str, values: dict[str, Column], where: str = "template") -> Column:
    """A Spark string column filling the template with columns (nulls become empty text)."""
    columns = [F.lit(value) if kind == "text" else F.coalesce(values[value].cast("string"), F.lit(""))
               for kind, value in template_parts(text, tuple(values), where)]
    return F.concat(*columns) if columns else F.lit("")


# --------------------------------------------------------------------------- transforms

def default_demographics() -> list[str]:
    """Every demographic variable of the published demographic_qa files except interview
    ids/logistics (D_INTERVIEW, J_INTDATE, N_TOWN); country, urban/rural and education first."""
    rest = [v for v in metadata.demographic_variables()
            if v not in LEADING_DEMOGRAPHICS and v not in EXCLUDED_DEMOGRAPHICS]
    return list(LEADING_DEMOGRAPHICS) + rest


def demographics_block(variables: list[str], template: PromptTemplate) -> Column:
    """Numbered question/answer pairs of one respondent; unanswered (null or blank) ones left out,
    so numbering stays consecutive."""
    if not variables:
        return F.lit("")
    questions = metadata.questions()
    items = F.array(*[
        F.struct(F.lit(v).alias("variable"), F.lit(questions[v].text).alias("question"),
                 F.col(v).cast("string").alias("answer"))
        for v in variables
    ])
    answered = F.filter(items, lambda item: item["answer"].isNotNull() & (F.trim(item["answer"]) != ""))
    lines = F.transform(answered, lambda item, index: template_column(
        template.demographic_item,
        {"number": index + 1, "question": item["question"], "answer": item["answer"],
         "variable": item["variable"]},
        "demographic_item"))
    return F.array_join(lines, template.demographic_separator)


def render_prompts(rows: DataFrame, participants: DataFrame, questions: DataFrame, *,
                   template: PromptTemplate, variant: str, demographics: list[str], model: str,
                   url: str = "/v1/chat/completions") -> DataFrame:
    """One request per (question_id, d_interview) row: custom_id, prompt text and the JSON line.

    Rows whose respondent or question is absent from `participants` / `questions` are not
    rendered (inner joins); `main` counts them first and refuses such input.
    """
    if variant not in VARIANTS:
        raise WvbError(f"--variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    selected = rows.select("question_id", F.col("d_interview").cast("long").alias("d_interview"))
    people = participants.select("d_interview", *[F.col(v) for v in demographics]) \
        if variant == "with-demographics" else participants.select("d_interview")
    asked = questions.select("question_id", F.col("text").alias("question_text"), "scale_min", "scale_max")
    joined = selected.join(people, on="d_interview", how="inner").join(F.broadcast(asked), on="question_id",
                                                                        how="inner")
    values = {
        "demographics": demographics_block(demographics, template) if variant == "with-demographics" else F.lit(""),
        "question": F.col("question_text"),
        "question_id": F.col("question_id"),
        "scale_min": F.col("scale_min"),
        "scale_max": F.col("scale_max"),
    }
    prompt = template_column(template.for_variant(variant), values, variant.replace("-", "_"))
    messages = [F.struct(F.lit("user").alias("role"), F.col("prompt").alias("content"))]
    if template.system:
        messages.insert(0, F.struct(F.lit("system").alias("role"), F.col("system").alias("content")))
    request = F.to_json(F.struct(
        F.col("custom_id"), F.lit("POST").alias("method"), F.lit(url).alias("url"),
        F.struct(F.lit(model).alias("model"), F.array(*messages).alias("messages")).alias("body"),
    ))
    return (
        joined
        .withColumn("custom_id", custom_id_column(F.col("question_id"), F.col("d_interview"), variant))
        .withColumn("variant", F.lit(variant))
        .withColumn("system", F.lit(template.system) if template.system else F.lit(None).cast("string"))
        .withColumn("prompt", prompt)
        .withColumn("request", request)
        .select(*OUTPUT_COLUMNS)
    )


def in_question_order(requests: DataFrame) -> DataFrame:
    """Sorted by question (metadata order, unknown ids last by name), then respondent."""
    spark = requests.sparkSession
    order = spark.createDataFrame([(qid, i) for i, qid in enumerate(metadata.questions())],
                                  "question_id string, question_order int")
    return (requests.join(F.broadcast(order), on="question_id", how="left")
            .orderBy(F.col("question_order").asc_nulls_last(), "question_id", "d_interview")
            .select(*requests.columns))


# --------------------------------------------------------------------------- output

def _hadoop_fs(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path, jvm


def _drop_checksum_file(fs, path) -> None:
    """The local file system keeps a hidden .<name>.crc beside each file; the user asked for one file."""
    if fs.getClass().getName().endswith("LocalFileSystem"):
        checksum = fs.getChecksumFile(path)
        if fs.exists(checksum):
            fs.getRawFileSystem().delete(checksum, False)


def _write_through_driver(lines: DataFrame, out: str) -> None:
    """Where the session offers no Hadoop FileSystem (no `sparkContext`): stream the rows
    in order through the driver into a local path - on Databricks a /Volumes/... path,
    which is mounted on the driver. Written beside `out` and renamed when complete."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    partial = f"{out}.tmp-{uuid.uuid4().hex[:8]}"
    column = lines.columns[0]
    with open(partial, "w", encoding="utf-8") as handle:
        for row in lines.toLocalIterator():
            handle.write(row[column] + "\n")
    os.replace(partial, out)


def write_single_text_file(spark: SparkSession, lines: DataFrame, out: str) -> None:
    """Write a one-string-column DataFrame as ONE text file at `out`, keeping its order.

    coalesce(1) after a sort concatenates the sorted partitions in order, in one task,
    without pulling the data to the driver; the part file is then renamed to `out`
    through Hadoop's FileSystem, so `out` can be local, HDFS, S3 or DBFS.
    """
    try:
        fs, target, jvm = _hadoop_fs(spark, out)
    except Exception:  # noqa: BLE001 - no JVM access (Databricks standard-access/serverless, Connect)
        _write_through_driver(lines, out)
        return
    staging = jvm.org.apache.hadoop.fs.Path(f"{out}.tmp-{uuid.uuid4().hex[:8]}")
    lines.coalesce(1).write.mode("overwrite").option("compression", "none").text(staging.toString())
    try:
        parts = [s.getPath() for s in fs.listStatus(staging) if s.getPath().getName().startswith("part-")]
        if len(parts) > 1:
            raise WvbError(f"expected one part file in {staging.toString()}, found {len(parts)}", exit_code=1)
        parent = target.getParent()
        if parent is not None:
            fs.mkdirs(parent)
        if fs.exists(target):
            fs.delete(target, False)
        if parts:
            if not fs.rename(parts[0], target):
                raise WvbError(f"could not move the prompts to {out}", exit_code=1)
            _drop_checksum_file(fs, target)
        else:  # no rows: Spark may write no part file at all
            fs.create(target, True).close()
    finally:
        fs.delete(staging, True)


# --------------------------------------------------------------------------- command

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--warehouse", required=True, metavar="DIR", help="warehouse root (tables at DIR/<table>)")
    parser.add_argument("--out", required=True, metavar="FILE", help="JSONL file to write (replaced if it exists)")
    parser.add_argument("--variant", choices=tuple(VARIANTS), default="with-demographics",
                        help="include the respondent's demographics or not (default: with-demographics)")
    parser.add_argument("--source", choices=("probe", "examples"), default="probe",
                        help="one request per row of the probe table (default) or per selected example")
    parser.add_argument("--split", help="only rows of this split (train, test or valid; default: all)")
    parser.add_argument("--questions", metavar="SPEC",
                        help="probe, all, a category name, or a comma list like Q1,Q2 (default: every question "
                             "of the source)")
    parser.add_argument("--demographics", metavar="VARS",
                        help="comma list of demographic variables to list, in order (default: all but "
                             "D_INTERVIEW, J_INTDATE, N_TOWN; B_COUNTRY, H_URBRURAL, Q275 first)")
    parser.add_argument("--template", metavar="FILE", help="YAML prompt template (default: the built-in one)")
    parser.add_argument("--model", default="gpt-3.5-turbo", help="model name put in each request body "
                                                                 "(default: gpt-3.5-turbo)")
    parser.add_argument("--url", default="/v1/chat/completions",
                        help="endpoint put in each request (default: /v1/chat/completions)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N requests in output order")


def resolve_demographics(spec: str | None) -> list[str]:
    if not spec:
        return default_demographics()
    wanted = [v.strip() for v in spec.split(",") if v.strip()]
    known = set(metadata.demographic_variables()) - {"D_INTERVIEW"}
    unknown = [v for v in wanted if v not in known]
    if unknown:
        raise WvbError(f"--demographics: {', '.join(unknown)} is not a demographic variable "
                       f"(see README: prompts)")
    return list(dict.fromkeys(wanted))


def main(args) -> int:
    from wvb_spark import config as wvb_config
    from wvb_spark.core.warehouse import Warehouse
    from wvb_spark.probe import resolve_questions
    from wvb_spark.session import get_spark

    config = wvb_config.load(getattr(args, "conf", None), getattr(args, "overrides", None))
    if args.limit is not None and args.limit < 1:
        raise WvbError(f"--limit must be at least 1, got {args.limit}")
    template = load_template(args.template)
    demographics = resolve_demographics(args.demographics)
    Warehouse(None, args.warehouse, config).require(args.source, "participants", "questions")
    spark = get_spark(config)
    tables = Warehouse(spark, args.warehouse, config)
    rows = tables.read(args.source)
    participants = tables.read("participants")
    questions = tables.read("questions")

    if args.split:
        rows = rows.where(F.col("split") == args.split)
    if args.questions:
        rows = rows.where(F.col("question_id").isin(resolve_questions(questions, args.questions)))
    rows = rows.select("question_id", "d_interview")

    unknown_people = rows.join(participants.select("d_interview"), on="d_interview", how="left_anti").count()
    unknown_questions = rows.join(questions.select("question_id"), on="question_id", how="left_anti").count()
    if unknown_people or unknown_questions:
        raise WvbError(f"{args.source} has {unknown_people} rows whose respondent is not in participants and "
                       f"{unknown_questions} whose question is not in questions; rebuild it from this warehouse")

    requests = in_question_order(render_prompts(
        rows, participants, questions, template=template, variant=args.variant,
        demographics=demographics, model=args.model, url=args.url))
    if args.limit:
        requests = requests.limit(args.limit)
    total = requests.count()
    write_single_text_file(spark, requests.select("request"), args.out)
    print(f"wrote {total} {args.variant} requests from {args.source} to {args.out}")
    return 0
