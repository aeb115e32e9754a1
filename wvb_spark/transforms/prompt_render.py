"""Prompt text as Spark columns: the template, the persona block, the options, the request
(shared by `wvb prompts` and `wvb export`, so both ask the same question the same way).

Rendering uses native Spark string functions (the template is split into literal text
and placeholders on the driver), so prompts for millions of examples are built in
parallel.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from importlib import resources

import yaml
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from wvb_spark.compute.output_formats import CUSTOM_ID_PREFIX, VARIANTS, custom_id, parse_custom_id  # noqa: F401
from wvb_spark.core import metadata
from wvb_spark.core.errors import InputError

# Listed first, as in the published example prompt; then the other demographic variables.
LEADING_DEMOGRAPHICS = ("B_COUNTRY", "H_URBRURAL", "Q275")
# Interview logistics and identifiers rather than attributes of the person.
EXCLUDED_DEMOGRAPHICS = ("D_INTERVIEW", "J_INTDATE", "N_TOWN")

OUTPUT_COLUMNS = ("custom_id", "question_id", "d_interview", "sample", "variant", "system", "prompt", "request")
PROMPT_PLACEHOLDERS = ("demographics", "question", "question_id", "scale_min", "scale_max", "options", "option_word")
# How the model is asked (--elicit): the free-text answer of the published prompt; the
# probabilities of the first token over the numbered options; several sampled free-text
# answers; or a distribution the model writes out as JSON.
ELICITATIONS = ("free-text", "logprobs", "sample", "verbalised")
OPTION_STYLES = ("numbers", "letters")
ITEM_PLACEHOLDERS = ("number", "question", "answer", "variable")
ELICITED_KEYS = (
    "options_with_demographics",
    "options_without_demographics",
    "verbalised_with_demographics",
    "verbalised_without_demographics",
)


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
    options_with_demographics: str = ""
    options_without_demographics: str = ""
    verbalised_with_demographics: str = ""
    verbalised_without_demographics: str = ""

    def for_variant(self, variant: str, elicit: str = "free-text") -> str:
        suffix = "with_demographics" if variant == "with-demographics" else "without_demographics"
        prefix = {"logprobs": "options_", "verbalised": "verbalised_"}.get(elicit, "")
        return getattr(self, prefix + suffix)


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
            raise InputError(f"cannot read --template {path}: {exc.strerror}") from None
        where = path
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{where} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a mapping with keys with_demographics, without_demographics, ...")
    required = ("with_demographics", "without_demographics", "demographic_item")
    missing = [key for key in required if not isinstance(raw.get(key), str)]
    if missing:
        raise InputError(f"{where}: missing text for {', '.join(missing)}")
    # the option prompts of a user's file default to the built-in ones
    builtin = (
        raw
        if path is None
        else yaml.safe_load(
            resources.files("wvb_spark").joinpath("resources", "prompt_template.yaml").read_text(encoding="utf-8")
        )
    )
    elicited = {key: str(raw.get(key) or builtin[key]) for key in ELICITED_KEYS}
    system = str(raw.get("system") or "")
    template = PromptTemplate(
        # the system message has no placeholders; only $$ -> $ applies
        system="".join(text_ for _, text_ in template_parts(system, (), f"{where}: system")),
        with_demographics=raw["with_demographics"],
        without_demographics=raw["without_demographics"],
        demographic_item=raw["demographic_item"],
        demographic_separator=str(raw.get("demographic_separator", "\n")),
        **elicited,
    )
    for text_, allowed, key in (
        (template.with_demographics, PROMPT_PLACEHOLDERS, "with_demographics"),
        (template.without_demographics, PROMPT_PLACEHOLDERS, "without_demographics"),
        (template.demographic_item, ITEM_PLACEHOLDERS, "demographic_item"),
        *[(elicited[k], PROMPT_PLACEHOLDERS, k) for k in ELICITED_KEYS],
    ):
        template_parts(text_, allowed, f"{where}: {key}")
    return template


def template_parts(text: str, allowed, where: str) -> list[tuple[str, str]]:
    """Split a $-template into [("text", literal) | ("name", placeholder)] parts."""
    parts: list[tuple[str, str]] = []
    position = 0
    for match in string.Template.pattern.finditer(text):
        if match.start() > position:
            parts.append(("text", text[position : match.start()]))
        if match.group("escaped") is not None:
            parts.append(("text", "$"))
        elif match.group("invalid") is not None:
            raise InputError(f"{where}: a lone '$' at character {match.start()} (write $$ for a dollar sign)")
        else:
            name = match.group("named") or match.group("braced")
            if name not in allowed:
                allowed_text = ", ".join(f"${{{a}}}" for a in allowed) or "none"
                raise InputError(f"{where}: unknown placeholder ${{{name}}} (allowed: {allowed_text})")
            parts.append(("name", name))
        position = match.end()
    if position < len(text):
        parts.append(("text", text[position:]))
    return parts


def template_column(text: str, values: dict[str, Column], where: str = "template") -> Column:
    """A Spark string column filling the template with columns (nulls become empty text)."""
    columns = [
        F.lit(value) if kind == "text" else F.coalesce(values[value].cast("string"), F.lit(""))
        for kind, value in template_parts(text, tuple(values), where)
    ]
    return F.concat(*columns) if columns else F.lit("")


# --------------------------------------------------------------------------- transforms


def default_demographics() -> list[str]:
    """Every demographic variable of the published demographic_qa files except interview
    ids/logistics (D_INTERVIEW, J_INTDATE, N_TOWN); country, urban/rural and education first."""
    rest = [
        v for v in metadata.demographic_variables() if v not in LEADING_DEMOGRAPHICS and v not in EXCLUDED_DEMOGRAPHICS
    ]
    return list(LEADING_DEMOGRAPHICS) + rest


def demographics_block(variables: list[str], template: PromptTemplate) -> Column:
    """Numbered question/answer pairs of one respondent; unanswered (null or blank) ones left out,
    so numbering stays consecutive."""
    if not variables:
        return F.lit("")
    questions = metadata.questions()
    items = F.array(
        *[
            F.struct(
                F.lit(v).alias("variable"),
                F.lit(questions[v].text).alias("question"),
                F.col(v).cast("string").alias("answer"),
            )
            for v in variables
        ]
    )
    answered = F.filter(items, lambda item: item["answer"].isNotNull() & (F.trim(item["answer"]) != ""))
    lines = F.transform(
        answered,
        lambda item, index: template_column(
            template.demographic_item,
            {"number": index + 1, "question": item["question"], "answer": item["answer"], "variable": item["variable"]},
            "demographic_item",
        ),
    )
    return F.array_join(lines, template.demographic_separator)


@dataclass(frozen=True)
class Elicitation:
    """How the requests ask for the answer (--elicit and its options) and what that puts in
    each request body."""

    how: str = "free-text"
    options: str = "numbers"  # logprobs: number or letter the options
    top_logprobs: int = 20  # logprobs: how many alternatives per token
    samples: int = 10  # sample: answers per (question, respondent)
    sample_as: str = "requests"  # sample: N requests, or one request with n: N
    temperature: float | None = None

    def suffix(self) -> str | None:
        """The custom_id suffix (output_formats.ELICIT_CODES, s<k>); None for free text."""
        if self.how == "logprobs":
            return "lpl" if self.options == "letters" else "lp"
        if self.how == "verbalised":
            return "vd"
        return None

    def body_fields(self) -> list[Column]:
        """What the request body adds to model and messages."""
        if self.how == "logprobs":
            return [
                F.lit(1).alias("max_tokens"),
                F.lit(True).alias("logprobs"),
                F.lit(self.top_logprobs).alias("top_logprobs"),
                F.lit(float(0.0 if self.temperature is None else self.temperature)).alias("temperature"),
            ]
        fields = []
        if self.how == "sample":
            fields.append(F.lit(float(1.0 if self.temperature is None else self.temperature)).alias("temperature"))
            if self.sample_as == "n":
                fields.append(F.lit(self.samples).alias("n"))
        elif self.temperature is not None:
            fields.append(F.lit(float(self.temperature)).alias("temperature"))
        return fields


def options_column(labels: Column | None, scale_min: Column, scale_max: Column, letters: bool = False) -> Column:
    """The question's answer options, one a line, numbered as the scale ("1. Very important")
    or lettered ("A. Very important"); a label that is only the number is not repeated."""

    def line(point):
        mark = F.char(F.lit(65) + point - scale_min) if letters else point.cast("string")
        label = F.try_element_at(labels, point.cast("int")) if labels is not None else F.lit(None)
        named = label.isNotNull() & (F.trim(label) != point.cast("string"))
        return F.when(named, F.concat(mark, F.lit(". "), label)).otherwise(mark)

    return F.array_join(F.transform(F.sequence(scale_min, scale_max), line), "\n")


def render_prompts(
    rows: DataFrame,
    participants: DataFrame,
    questions: DataFrame,
    *,
    template: PromptTemplate,
    variant: str,
    demographics: list[str],
    model: str,
    url: str = "/v1/chat/completions",
    elicit: Elicitation | None = None,
) -> DataFrame:
    """One request per (question_id, d_interview) row (N per row when sampling in separate
    requests): custom_id, prompt text and the JSON line.

    Rows whose respondent or question is absent from `participants` / `questions` are not
    rendered (inner joins); `main` counts them first and refuses such input.
    """
    elicit = elicit or Elicitation()
    if variant not in VARIANTS:
        raise InputError(f"--variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    selected = rows.select("question_id", F.col("d_interview").cast("long").alias("d_interview"))
    people = (
        participants.select("d_interview", *[F.col(v) for v in demographics])
        if variant == "with-demographics"
        else participants.select("d_interview")
    )
    labels = [F.col("labels")] if "labels" in questions.columns else []
    asked = questions.select("question_id", F.col("text").alias("question_text"), "scale_min", "scale_max", *labels)
    joined = selected.join(people, on="d_interview", how="inner").join(
        F.broadcast(asked), on="question_id", how="inner"
    )
    letters = elicit.how == "logprobs" and elicit.options == "letters"
    values = {
        "demographics": demographics_block(demographics, template) if variant == "with-demographics" else F.lit(""),
        "question": F.col("question_text"),
        "question_id": F.col("question_id"),
        "scale_min": F.col("scale_min"),
        "scale_max": F.col("scale_max"),
        "options": options_column(F.col("labels") if labels else None, F.col("scale_min"), F.col("scale_max"), letters),
        "option_word": F.lit("letter" if letters else "number"),
    }
    key = (
        "options_" if elicit.how == "logprobs" else "verbalised_" if elicit.how == "verbalised" else ""
    ) + variant.replace("-", "_")
    prompt = template_column(template.for_variant(variant, elicit.how), values, key)
    messages = [F.struct(F.lit("user").alias("role"), F.col("prompt").alias("content"))]
    if template.system:
        messages.insert(0, F.struct(F.lit("system").alias("role"), F.col("system").alias("content")))
    request = F.to_json(
        F.struct(
            F.col("custom_id"),
            F.lit("POST").alias("method"),
            F.lit(url).alias("url"),
            F.struct(F.lit(model).alias("model"), F.array(*messages).alias("messages"), *elicit.body_fields()).alias(
                "body"
            ),
        )
    )
    if elicit.how == "sample" and elicit.sample_as == "requests":
        joined = joined.withColumn("sample", F.explode(F.sequence(F.lit(1), F.lit(elicit.samples))))
        suffix: Column | None = F.concat(F.lit("s"), F.col("sample").cast("string"))
    else:
        joined = joined.withColumn("sample", F.lit(None).cast("int"))
        code = "s" if elicit.how == "sample" else elicit.suffix()
        suffix = F.lit(code) if code else None
    return (
        joined.withColumn("custom_id", custom_id_column(F.col("question_id"), F.col("d_interview"), variant, suffix))
        .withColumn("variant", F.lit(variant))
        .withColumn("system", F.lit(template.system) if template.system else F.lit(None).cast("string"))
        .withColumn("prompt", prompt)
        .withColumn("request", request)
        .select(*OUTPUT_COLUMNS)
    )


def in_question_order(requests: DataFrame) -> DataFrame:
    """Sorted by question (metadata order, unknown ids last by name), then respondent, then sample."""
    spark = requests.sparkSession
    order = spark.createDataFrame(
        [(qid, i) for i, qid in enumerate(metadata.questions())], "question_id string, question_order int"
    )
    return (
        requests.join(F.broadcast(order), on="question_id", how="left")
        .orderBy(
            F.col("question_order").asc_nulls_last(),
            "question_id",
            "d_interview",
            *(["sample"] if "sample" in requests.columns else []),
        )
        .select(*requests.columns)
    )


def resolve_demographics(spec: str | None) -> list[str]:
    if not spec:
        return default_demographics()
    wanted = [v.strip() for v in spec.split(",") if v.strip()]
    known = set(metadata.demographic_variables()) - {"D_INTERVIEW"}
    unknown = [v for v in wanted if v not in known]
    if unknown:
        raise InputError(f"--demographics: {', '.join(unknown)} is not a demographic variable (see README: prompts)")
    return list(dict.fromkeys(wanted))


def add_selection_options(parser, noun: str) -> None:
    """The options `wvb prompts` and `wvb export` share: which rows (--source, --split,
    --questions, --limit) and how they are rendered (--variant, --template); `noun` is
    what one row becomes (request, document)."""
    parser.add_argument(
        "--variant",
        choices=tuple(VARIANTS),
        default="with-demographics",
        help="include the respondent's demographics or not (default: %(default)s)",
    )
    parser.add_argument(
        "--source",
        choices=("probe", "examples"),
        default="probe",
        help=f"one {noun} per row of the probe table or per selected example (default: %(default)s)",
    )
    parser.add_argument("--split", help="only rows of this split (train, test or valid; default: all)")
    parser.add_argument(
        "--questions",
        metavar="SPEC",
        help="probe, all, a category name, or a comma list like Q1,Q2 (default: every question of the source)",
    )
    parser.add_argument("--limit", type=int, metavar="N", help=f"only the first N {noun}s in output order")
    parser.add_argument("--template", metavar="FILE", help="YAML prompt template (default: the built-in one)")
