"""Build: raw WVS Wave 7 file -> questions, participants, examples, quarantine, build_runs.

Transforms here are pure DataFrame functions; `run_build` is the edge that reads
the file, writes the Delta tables and reconciles the counts.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from wvb_spark import __version__
from wvb_spark.core import metadata, schemas
from wvb_spark.core.errors import InputError, RunError
from wvb_spark.core.session import default_parallelism, get_spark
from wvb_spark.core.stage import Result
from wvb_spark.core.warehouse import Warehouse, describe_writer, new_run_id
from wvb_spark.transforms import ingest, recode, splits

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- metadata tables


def adjusted_labels(question_id: str) -> dict[int, str]:
    """Codebook labels keyed by the *adjusted* code, so labels match `examples.answer`."""
    adjustments = metadata.answer_adjustments().get(question_id, {})
    labels: dict[int, str] = {}
    for code, label in metadata.choices(question_id).items():
        raw = int(code)
        if raw < 0:
            continue
        new = adjustments.get(raw, raw)
        if new is not None:
            labels[new] = label
    return dict(sorted(labels.items()))


def questions_rows() -> list[tuple]:
    """One row per benchmark variable (small: built on the driver from the metadata)."""
    probe = set(metadata.probe_questions())
    rows = []
    for q in metadata.questions().values():
        labels = (
            adjusted_labels(q.question_id)
            if q.is_value
            else {
                int(code): label
                for code, label in metadata.choices(q.question_id).items()
                if code.lstrip("-").isdigit() and int(code) >= 0
            }
        )
        rows.append(
            (
                q.question_id,
                q.text,
                q.category,
                q.use_case,
                q.scale_min,
                q.scale_max,
                q.data_type,
                labels,
                q.question_id in probe,
            )
        )
    return rows


def label_maps_frame(spark: SparkSession) -> DataFrame:
    """One row holding, per demographic variable, its code -> label map (broadcast to label
    participants without a join per variable)."""
    variables = schemas.demographic_text_columns()
    maps = [
        {int(code): label for code, label in metadata.choices(v).items() if code.lstrip("-").isdigit()}
        for v in variables
    ]
    schema = ", ".join(f"`_labels_{v}` map<int,string>" for v in variables)
    return spark.createDataFrame([tuple(maps)], schema)


# ---------------------------------------------------------------- transforms


def participants_table(respondents: DataFrame, label_maps: DataFrame, groupings: str = "project") -> DataFrame:
    """One row per accepted respondent: group keys, weights and one text column per
    demographic variable (the codebook label of its code, or the number itself for
    numeric variables such as age)."""
    published = groupings == "published"
    continents = metadata.country_continents(published=published)
    levels = metadata.education_levels(published=published)
    continent_map = F.create_map(*[F.lit(x) for kv in continents.items() for x in kv])
    level_map = F.create_map(*[F.lit(x) for kv in levels.items() for x in kv])
    texts = {
        v: F.coalesce(F.try_element_at(F.col(f"_labels_{v}"), F.col(v)), F.col(v).cast("string"))
        for v in schemas.demographic_text_columns()
    }
    labelled = respondents.crossJoin(F.broadcast(label_maps))
    return labelled.select(
        "d_interview",
        "split",
        F.col("B_COUNTRY").alias("country_code"),
        texts["B_COUNTRY"].alias("country"),
        F.try_element_at(continent_map, texts["B_COUNTRY"]).alias("continent"),
        F.when(F.col("H_URBRURAL") == 1, "Urban").when(F.col("H_URBRURAL") == 2, "Rural").alias("urban_rural"),
        F.try_element_at(level_map, texts["Q275"]).alias("education_level"),
        F.when(F.col("Q260") == 1, "Male").when(F.col("Q260") == 2, "Female").alias("sex"),
        F.when(F.col("Q262") >= 0, F.col("Q262")).alias("age"),
        F.col("W_WEIGHT").alias("weight"),
        F.col("S018").alias("equilibrated_weight"),
        "source_row",
        *[texts[v].alias(v) for v in schemas.demographic_text_columns()],
    ).select(*schemas.columns(schemas.participants_schema()))


def _question_ids():
    """Literal array of the value question ids, aligned with `answers`."""
    return F.array(*[F.lit(q) for q in metadata.value_question_ids()])


# `examples` is laid out by (split, question_id, d_interview). Sorting 21 million rows by
# two strings and a long is the build's costliest step, so the rows are shuffled and
# sorted by one long that has the same order - (rank of split, rank of question_id) in the
# high bits, the rank of d_interview in the low ID_BITS - and decoded back after the sort.
ID_BITS = 40
SPLIT_ORDER = tuple(sorted(splits.SPLITS))


def _question_order() -> list[str]:
    return sorted(metadata.value_question_ids())


def keyed_examples(respondents: DataFrame) -> DataFrame:
    """One row per answered cell (the recode left a null in `answers` for every other
    cell): d_interview, answer and `order`, the long whose order is the table's."""
    ids, ordered = metadata.value_question_ids(), _question_order()
    id_ranks = respondents.select(
        "d_interview", (F.row_number().over(Window.orderBy("d_interview")) - 1).cast("long").alias("id_rank")
    )
    exploded = respondents.join(F.broadcast(id_ranks), "d_interview").select(
        "d_interview", "id_rank", "split", F.posexplode("answers").alias("position", "answer")
    )
    split_rank = F.array_position(F.array(*[F.lit(s) for s in SPLIT_ORDER]), F.col("split")) - 1
    question_rank = F.element_at(F.array(*[F.lit(ordered.index(q)) for q in ids]), F.col("position") + 1)
    group = (split_rank * len(ids) + question_rank).cast("long")
    return exploded.where(F.col("answer").isNotNull()).select(
        "d_interview",
        F.col("answer").cast("int").alias("answer"),
        (F.shiftleft(group, ID_BITS) + F.col("id_rank")).alias("order"),
    )


def decoded_examples(keyed: DataFrame) -> DataFrame:
    """The `examples` contract from keyed rows, keeping their order."""
    ordered = _question_order()
    group = F.shiftright(F.col("order"), ID_BITS)
    return keyed.select(
        "d_interview",
        F.element_at(F.array(*[F.lit(q) for q in ordered]), (group % len(ordered) + 1).cast("int")).alias(
            "question_id"
        ),
        "answer",
        F.element_at(F.array(*[F.lit(s) for s in SPLIT_ORDER]), (F.floor(group / len(ordered)) + 1).cast("int")).alias(
            "split"
        ),
    )


def examples_table(respondents: DataFrame) -> DataFrame:
    """Explode respondents x value questions into one row per answered cell."""
    return decoded_examples(keyed_examples(respondents))


def laid_out_examples(respondents: DataFrame, files: int) -> DataFrame:
    """`examples_table` in `files` tasks by ranges of (split, question_id, d_interview),
    sorted so within each: the layout the table declares, shuffled and sorted on one long."""
    keyed = keyed_examples(respondents).repartitionByRange(files, "order").sortWithinPartitions("order")
    return decoded_examples(keyed)


def out_of_range_cells(respondents: DataFrame) -> DataFrame:
    """Quarantine rows for codes that are not missing codes but fall off the question's
    scale after adjustment: a code the codebook does not know for that question."""
    cells = F.arrays_zip(F.col("out_of_range_positions").alias("position"), F.col("out_of_range_codes").alias("code"))
    return (
        respondents.where(F.size("out_of_range_positions") > 0)
        .select("source", "source_row", "d_interview", F.inline(cells))
        .select(
            F.lit("build").alias("stage"),
            "source",
            "source_row",
            "d_interview",
            F.try_element_at(_question_ids(), F.col("position") + 1).alias("question_id"),
            F.col("code").cast("string").alias("raw_value"),
            F.lit("out_of_range").alias("reason"),
        )
    )


def rejected_rows(parsed: DataFrame) -> DataFrame:
    """Quarantine rows for whole lines that could not become respondents."""
    return parsed.where(F.col("reject_reason").isNotNull()).select(
        F.lit("build").alias("stage"),
        "source",
        "source_row",
        "d_interview",
        F.lit(None).cast("string").alias("question_id"),
        F.col("reject_value").alias("raw_value"),
        F.col("reject_reason").alias("reason"),
    )


def cell_counts(respondents: DataFrame) -> DataFrame:
    """Per split: respondents and value-question cells by outcome (answered, each missing
    code, adjusted to missing, out of range), summed from the per-row counts of the
    recode, independently of the explode, so the two can be reconciled."""
    return respondents.groupBy("split").agg(
        F.count(F.lit(1)).alias("respondents"),
        *[
            F.sum(column).cast("long").alias(outcome)
            for column, outcome in zip(ingest.COUNT_COLUMNS, recode.CELL_OUTCOMES)
        ],
    )


# ---------------------------------------------------------------- the job


@dataclass
class BuildReport:
    """What a build read, accepted, refused and wrote: printed and stored in build_runs."""

    raw_file: str
    split_method: str
    rows_read: int = 0
    participants: int = 0
    quarantined_rows: dict[str, int] = field(default_factory=dict)
    quarantined_cells: int = 0
    missing_cells: dict[str, int] = field(default_factory=dict)
    examples_by_split: dict[str, int] = field(default_factory=dict)
    table_versions: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    writer: str = ""
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def lap(self, phase: str, since: float) -> float:
        """Record how long `phase` took (for `wvb bench`); returns now."""
        now = time.time()
        self.phase_seconds[phase] = round(now - since, 3)
        return now

    @property
    def examples(self) -> int:
        return sum(self.examples_by_split.values())

    def reconciles(self) -> bool:
        """Rows read = participants + quarantined rows, and every value-question cell of
        every participant is an example, a missing cell or an out-of-range cell."""
        cells = self.participants * len(metadata.value_question_ids())
        return (
            self.rows_read == self.participants + sum(self.quarantined_rows.values())
            and cells == self.examples + sum(self.missing_cells.values()) + self.quarantined_cells
        )

    def check_reconciles(self) -> None:
        """One line and exit code 1 when the counts do not add up."""
        if not self.reconciles():
            raise RunError(
                f"build counts do not reconcile: {self.rows_read} rows read, {self.participants} participants, "
                f"{sum(self.quarantined_rows.values())} quarantined rows, {self.examples} examples, "
                f"{sum(self.missing_cells.values())} missing and {self.quarantined_cells} out-of-range cells"
            )

    def counts(self) -> dict:
        """The counts every build table's commit records."""
        return {
            "rows_read": self.rows_read,
            "participants": self.participants,
            "quarantined_rows": self.quarantined_rows,
            "quarantined_cells": self.quarantined_cells,
            "missing_cells": self.missing_cells,
            "examples_by_split": self.examples_by_split,
        }

    def lines(self) -> list[str]:
        out = [
            f"rows read            {self.rows_read:>12,}",
            f"participants         {self.participants:>12,}",
            f"quarantined rows     {sum(self.quarantined_rows.values()):>12,}"
            + "".join(f"\n  {reason:<18} {n:>12,}" for reason, n in sorted(self.quarantined_rows.items())),
            f"quarantined cells    {self.quarantined_cells:>12,}  (out_of_range)",
            "missing cells" + "".join(f"\n  {code:<18} {n:>12,}" for code, n in sorted(self.missing_cells.items())),
            f"examples             {self.examples:>12,}"
            + "".join(f"\n  {split:<18} {self.examples_by_split.get(split, 0):>12,}" for split in splits.SPLITS),
            "reconciled: rows read = participants + quarantined rows; "
            "participants x 239 = examples + missing cells + out-of-range cells"
            if self.reconciles()
            else "NOT RECONCILED: see the counts above",
        ]
        return out


def _with_split(spark: SparkSession, respondents: DataFrame, n: int, build_conf: dict) -> DataFrame:
    method = build_conf["split_method"]
    ratios = build_conf["split_ratios"]
    if method == "paper":
        return splits.assign_paper_split(spark, respondents, n, int(build_conf["split_seed"]), ratios)
    if method == "hash":
        return splits.assign_hash_split(respondents, str(build_conf["hash_salt"]), ratios)
    raise InputError(f"unknown split method {method!r}: use paper or hash")


def _count_rows(parsed: DataFrame, report: BuildReport) -> None:
    """Rows read, accepted as participants, and refused by reason."""
    by_reason = {r["reject_reason"]: r["count"] for r in parsed.groupBy("reject_reason").count().collect()}
    report.participants = by_reason.pop(None, 0)
    report.quarantined_rows = by_reason
    report.rows_read = report.participants + sum(by_reason.values())


def _count_cells(respondents: DataFrame, report: BuildReport) -> None:
    """Answered cells per split, out-of-range cells, and missing cells by outcome."""
    counts = {row["split"]: row.asDict() for row in cell_counts(respondents).collect()}
    report.examples_by_split = {s: int(c["answered"]) for s, c in counts.items()}
    report.quarantined_cells = sum(int(c["out_of_range"]) for c in counts.values())
    for name in (outcome for outcome in recode.CELL_OUTCOMES if outcome not in ("answered", "out_of_range")):
        report.missing_cells[name] = sum(int(c[name]) for c in counts.values())


def run_build(spark: SparkSession, config: dict, raw_path: str, warehouse: str) -> BuildReport:
    """Read the raw file, write every build table as a new Delta version, reconcile."""
    started = time.time()
    build_conf = config["build"]
    header, separator = ingest.check_inputs(raw_path, warehouse)
    report = BuildReport(raw_file=str(raw_path), split_method=build_conf["split_method"])

    lines = ingest.read_lines(spark, raw_path, separator)
    parsed_lines = ingest.parse_lines(lines, header, separator, Path(raw_path).name).persist()
    parsed = ingest.flag_duplicate_ids(parsed_lines)
    _count_rows(parsed, report)
    mark = report.lap("parse", started)
    if report.participants == 0:
        parsed_lines.unpersist()
        raise InputError(f"no usable respondent rows in {raw_path} ({report.rows_read} rows read, all refused)")

    accepted = parsed.where(F.col("reject_reason").isNull()).drop("reject_reason", "reject_value")
    respondents = _with_split(spark, accepted, report.participants, build_conf).persist()

    _count_cells(respondents, report)
    mark = report.lap("split_and_count", mark)

    quarantine = rejected_rows(parsed).unionByName(out_of_range_cells(respondents))
    groupings = build_conf["groupings"]
    tables = Warehouse(spark, warehouse, config)
    report.writer = describe_writer(tables)
    options = {
        "raw_file": Path(raw_path).name,
        "split_method": report.split_method,
        "split_seed": build_conf["split_seed"],
        "groupings": groupings,
    }
    counts = report.counts()
    run_id = new_run_id()  # one id for the build's commits: they belong together

    def write(df: DataFrame, name: str, expected_rows: int, **layout) -> int:
        nonlocal mark
        version = tables.write(
            name,
            df,
            stage="wvb build",
            options=options,
            counts=counts,
            expected_rows=expected_rows,
            run_id=run_id,
            **layout,
        )
        mark = report.lap(f"write_{name}", mark)
        return version

    question_rows = questions_rows()
    report.table_versions["questions"] = write(
        spark.createDataFrame(question_rows, schemas.QUESTIONS), "questions", len(question_rows)
    )
    report.table_versions["participants"] = write(
        participants_table(respondents, label_maps_frame(spark), groupings), "participants", report.participants
    )
    files = int(build_conf["examples_files"]) or 2 * default_parallelism(spark)
    report.table_versions["examples"] = write(
        laid_out_examples(respondents, files), "examples", report.examples, laid_out=True
    )
    report.table_versions["quarantine"] = write(
        quarantine.select(*schemas.columns(schemas.QUARANTINE)),
        "quarantine",
        sum(report.quarantined_rows.values()) + report.quarantined_cells,
    )
    for cached in (respondents, parsed_lines):
        cached.unpersist()
    report.seconds = time.time() - started
    # Written last: its row names the versions above, which readers then see as one build.
    runs, run_count = _build_runs(spark, tables, report)
    report.table_versions["build_runs"] = write(runs, "build_runs", run_count)
    report.check_reconciles()
    return report


def _build_runs(spark: SparkSession, tables: Warehouse, report: BuildReport) -> tuple[DataFrame, int]:
    """The previous runs plus this one (and how many): the warehouse keeps its build
    history as a table, and each row names the table versions that build wrote."""
    import datetime

    previous = tables.read("build_runs") if tables.exists("build_runs") else None
    run_number = (previous.count() + 1) if previous is not None else 1
    row = (
        run_number,
        datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None),
        report.raw_file,
        report.split_method,
        report.rows_read,
        report.participants,
        sum(report.quarantined_rows.values()),
        report.quarantined_rows,
        report.quarantined_cells,
        report.missing_cells,
        report.examples,
        report.examples_by_split,
        report.table_versions,
        round(report.seconds, 3),
        __version__,
        spark.version,
    )
    current = spark.createDataFrame([row], schemas.BUILD_RUNS)
    return (current if previous is None else previous.unionByName(current)), run_number


# ---------------------------------------------------------------- CLI

SETTINGS = "build"
OPTIONS = ("split_method", "split_seed", "groupings")


def add_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    parser.add_argument(
        "--raw", required=True, help="WVS Wave 7 CSV (official v5.0/v6.0 download or `wvb synth` output)"
    )
    parser.add_argument("--warehouse", required=True, help="directory holding the Delta tables")
    parser.add_argument(
        "--split-method",
        choices=("paper", "hash"),
        help=f"train/test/valid assignment (default: {defaults['split_method']})",
    )
    parser.add_argument(
        "--split-seed", type=int, help=f"seed of the paper split's shuffle (default: {defaults['split_seed']})"
    )
    parser.add_argument(
        "--groupings",
        choices=("project", "published"),
        help="continent/education mappings: the project's complete ones or the release's "
        f"(default: {defaults['groupings']})",
    )


def run(args: argparse.Namespace, config: dict) -> Result:
    ingest.check_inputs(args.raw, args.warehouse)  # fail fast, before Spark starts
    spark = get_spark(config)
    report = run_build(spark, config, args.raw, args.warehouse)
    result = Result(lines=report.lines(), tables=dict(report.table_versions))
    result.say(f"tables written with the {report.writer}")
    for name, version in report.table_versions.items():
        result.say(f"{name:<13} {Path(args.warehouse, name)}  (Delta version {version})")
    result.say(f"built in {report.seconds:.1f} s")
    # where the time went, for profiling (wvb -v build ... or the log of a cluster job)
    log.info("phases: " + ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in report.phase_seconds.items()))
    return result
