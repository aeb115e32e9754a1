"""`wvb probe`: a stratified sample of (question, respondent) pairs to ask a model.

The published design: for each of the 36 probe questions, respondents of the
`valid` split who answered it, grouped by continent x urban/rural x education
level, k = 5 per group; a group with k or fewer eligible respondents is skipped.
Sampling ranks respondents by a seeded hash inside each (question, group) window,
so it runs as one Spark job, needs no per-group loop, and gives the same sample for
the same seed on any cluster.
"""

from __future__ import annotations

import argparse
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from wvb_spark.core.config import split_list
from wvb_spark.core.errors import InputError
from wvb_spark.core.stage import Result
from wvb_spark.transforms.selection import all_not_null, check_group_columns, resolve_questions

RESERVED_COLUMNS = ("question_id", "d_interview", "split", "group_size", "rank", "sampled", "status")
HASH_TIEBREAK = "d_interview"
SKIPPED_GROUPS_SHOWN = 10


# --------------------------------------------------------------------------- options

SETTINGS = "probe"
OPTIONS = ("questions", "split", "group_by", "per_group", "min_group_size", "seed")


def add_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    parser.add_argument("--warehouse", required=True, metavar="DIR", help="warehouse root (tables at DIR/<table>)")
    parser.add_argument(
        "--questions",
        metavar="SPEC",
        help="probe (the 36 published ones), all (every value question), a category name, "
        f"or a comma list like Q1,Q2 (default: {defaults['questions']})",
    )
    parser.add_argument("--split", help=f"split whose respondents are sampled (default: {defaults['split']})")
    parser.add_argument(
        "--group-by",
        dest="group_by",
        metavar="COLS",
        help=f"comma list of participants columns that define a group (default: {','.join(defaults['group_by'])})",
    )
    parser.add_argument(
        "--per-group",
        dest="per_group",
        type=int,
        metavar="K",
        help=f"respondents sampled per question and group (default: {defaults['per_group']})",
    )
    parser.add_argument(
        "--min-group-size",
        dest="min_group_size",
        type=int,
        metavar="N",
        help="groups with fewer eligible respondents are skipped (default: per-group + 1)",
    )
    parser.add_argument("--seed", type=int, help=f"sampling seed (default: {defaults['seed']})")


def resolve_settings(config: dict) -> dict:
    """The `probe:` block, typed and checked."""
    block = config["probe"]
    settings: dict[str, Any] = {
        "questions": str(block["questions"]),
        "split": str(block["split"]),
        "group_by": split_list(block["group_by"]),
        "per_group": int(block["per_group"]),
        "seed": int(block["seed"]),
    }
    minimum = block.get("min_group_size")
    settings["min_group_size"] = settings["per_group"] + 1 if minimum is None else int(minimum)
    if settings["per_group"] < 1:
        raise InputError(f"--per-group must be at least 1, got {settings['per_group']}")
    if settings["min_group_size"] < 1:
        raise InputError(f"--min-group-size must be at least 1, got {settings['min_group_size']}")
    if not settings["group_by"]:
        raise InputError("--group-by needs at least one participants column")
    if len(set(settings["group_by"])) != len(settings["group_by"]):
        raise InputError(f"--group-by names a column twice: {','.join(settings['group_by'])}")
    return settings


# --------------------------------------------------------------------------- transforms


def answers_with_groups(
    examples: DataFrame, participants: DataFrame, question_ids: list[str], split: str, group_by: list[str]
) -> DataFrame:
    """Every answer of the split to the chosen questions, with the respondent's group and
    whether it may be sampled (`eligible`: a participant of the split with no null group value)."""
    answers = examples.where((F.col("split") == split) & F.col("question_id").isin(question_ids)).select(
        "question_id", "d_interview"
    )
    people = participants.where(F.col("split") == split).select("d_interview", *group_by, F.lit(True).alias("in_split"))
    return answers.join(people, on="d_interview", how="left").select(
        "question_id",
        "d_interview",
        *group_by,
        F.coalesce("in_split", F.lit(False)).alias("in_split"),
        (F.coalesce("in_split", F.lit(False)) & all_not_null(group_by)).alias("eligible"),
    )


def rank_in_groups(eligible: DataFrame, group_by: list[str], seed: int) -> DataFrame:
    """Eligible answers with their group's size and a seeded rank inside (question, group)."""
    group = Window.partitionBy("question_id", *group_by)
    order = group.orderBy(F.xxhash64(F.lit(seed).cast("long"), "question_id", "d_interview"), HASH_TIEBREAK)
    return eligible.select(
        "question_id",
        "d_interview",
        *group_by,
        F.count(F.lit(1)).over(group).alias("group_size"),
        F.row_number().over(order).alias("rank"),
    )


def sample_probe(
    answers: DataFrame, *, split: str, group_by: list[str], per_group: int, min_group_size: int, seed: int
) -> DataFrame:
    """The probe table: the `per_group` best-ranked respondents of every group that has at
    least `min_group_size` eligible respondents for the question."""
    ranked = rank_in_groups(answers.where("eligible"), group_by, seed)
    return ranked.where((F.col("group_size") >= min_group_size) & (F.col("rank") <= per_group)).select(
        "question_id",
        "d_interview",
        F.lit(split).alias("split"),
        *group_by,
        F.col("group_size").cast("long").alias("group_size"),
        F.col("rank").cast("int").alias("rank"),
    )


def group_report(
    answers: DataFrame,
    participants: DataFrame,
    question_ids: list[str],
    *,
    split: str,
    group_by: list[str],
    per_group: int,
    min_group_size: int,
) -> DataFrame:
    """One row per (question, group), kept or skipped, with its eligible count.

    A group is a combination of group values held by at least one participant of the
    split, so a group where nobody answered a question shows up as skipped with size 0.
    """
    spark = answers.sparkSession
    groups = participants.where((F.col("split") == split) & all_not_null(group_by)).select(*group_by).distinct()
    chosen = spark.createDataFrame([(q,) for q in question_ids], "question_id string")
    sizes = answers.where("eligible").groupBy("question_id", *group_by).agg(F.count(F.lit(1)).alias("group_size"))
    size = F.coalesce(F.col("group_size"), F.lit(0)).cast("long")
    kept = size >= min_group_size
    return (
        chosen.crossJoin(groups)
        .join(sizes, on=["question_id", *group_by], how="left")
        .select(
            "question_id",
            *group_by,
            size.alias("group_size"),
            F.when(kept, F.least(size, F.lit(per_group).cast("long")))
            .otherwise(F.lit(0).cast("long"))
            .alias("sampled"),
            F.when(kept, F.lit("kept")).otherwise(F.lit("skipped")).alias("status"),
        )
    )


def answer_counts(answers: DataFrame, group_by: list[str]) -> dict:
    """How the split's answers to the chosen questions divide into eligible and not."""
    row = answers.agg(
        F.count(F.lit(1)).alias("answers"),
        F.sum(F.col("eligible").cast("long")).alias("eligible"),
        F.sum((~F.col("in_split")).cast("long")).alias("no_participant"),
        F.sum((F.col("in_split") & ~F.col("eligible")).cast("long")).alias("null_group"),
        F.countDistinct(F.when(F.col("in_split") & ~F.col("eligible"), F.col("d_interview"))).alias(
            "null_group_respondents"
        ),
    ).first()
    assert row is not None  # an aggregate without grouping always has one row
    return {key: int(row[key] or 0) for key in row.asDict()}


# --------------------------------------------------------------------------- command


def _summary_lines(
    settings: dict, question_ids: list[str], counts: dict, tally: dict, skipped_by_group: list
) -> list[str]:
    """What `wvb probe` reports: the design, the groups kept and skipped, the answers."""
    group_by, split = settings["group_by"], settings["split"]
    kept_groups, kept_rows = tally.get("kept", (0, 0))
    skipped_groups, _ = tally.get("skipped", (0, 0))
    lines: list[str] = []
    n_groups = kept_groups + skipped_groups
    lines.append(
        f"probe: {len(question_ids)} questions, {split} split, groups by {' x '.join(group_by)}, "
        f"{settings['per_group']} per group, seed {settings['seed']}"
    )
    lines.append(
        f"  question x group: {n_groups} in all, {kept_groups} kept ({kept_rows} rows), "
        f"{skipped_groups} skipped (fewer than {settings['min_group_size']} eligible respondents; "
        f"see table probe_groups)"
    )
    lines.append(
        f"  answers in the split: {counts['answers']}, eligible {counts['eligible']}, "
        f"null group value {counts['null_group']} ({counts['null_group_respondents']} respondents), "
        f"no participant row {counts['no_participant']}"
    )
    for row in skipped_by_group[:SKIPPED_GROUPS_SHOWN]:
        lines.append(
            f"  skipped: {' / '.join(str(row[c]) for c in group_by)} for {row['questions']} "
            f"question(s) (at most {row['largest']} eligible)"
        )
    if len(skipped_by_group) > SKIPPED_GROUPS_SHOWN:
        lines.append("  ... more skipped groups in table probe_groups (status = 'skipped')")
    return lines


def run(args, config: dict) -> Result:
    from wvb_spark.core.session import get_spark
    from wvb_spark.core.warehouse import Warehouse

    settings = resolve_settings(config)
    warehouse = args.warehouse
    Warehouse(None, warehouse, config).require("questions", "participants", "examples")
    spark = get_spark(config)
    tables = Warehouse(spark, warehouse, config)
    questions = tables.read("questions")
    participants = tables.read("participants")
    examples = tables.read("examples")
    group_by, split = settings["group_by"], settings["split"]
    check_group_columns(participants, group_by, RESERVED_COLUMNS)
    question_ids = resolve_questions(questions, settings["questions"])
    if participants.where(F.col("split") == split).limit(1).count() == 0:
        raise InputError(f"--split {split}: no participants in that split")

    answers = answers_with_groups(examples, participants, question_ids, split, group_by).cache()
    counts = answer_counts(answers, group_by)
    options = {k: settings[k] for k in ("split", "per_group", "min_group_size", "seed")}
    probe = sample_probe(answers, group_by=group_by, **options)
    groups = group_report(
        answers,
        participants,
        question_ids,
        group_by=group_by,
        split=split,
        per_group=settings["per_group"],
        min_group_size=settings["min_group_size"],
    ).cache()
    tally = {
        r["status"]: (int(r["groups"]), int(r["rows"]))
        for r in groups.groupBy("status")
        .agg(F.count(F.lit(1)).alias("groups"), F.sum("sampled").alias("rows"))
        .collect()
    }
    kept_groups, kept_rows = tally.get("kept", (0, 0))
    skipped_groups, _ = tally.get("skipped", (0, 0))
    run_options = {"questions": settings["questions"], "group_by": list(group_by), **options}
    run_counts = {
        "kept_groups": kept_groups,
        "skipped_groups": skipped_groups,
        "rows": kept_rows,
        **{f"answers_{k}": v for k, v in counts.items()},
    }
    sort = ("question_id", *group_by, "rank")
    result = Result()
    result.tables["probe"] = version = tables.write(
        "probe",
        probe,
        stage="wvb probe",
        options=run_options,
        counts=run_counts,
        expected_rows=kept_rows,
        sort_within=sort,
    )
    result.tables["probe_groups"] = tables.write(
        "probe_groups",
        groups,
        stage="wvb probe",
        options=run_options,
        counts=run_counts,
        expected_rows=kept_groups + skipped_groups,
        sort_within=("question_id", *group_by),
    )
    skipped_by_group = (
        groups.where(F.col("status") == "skipped")
        .groupBy(*group_by)
        .agg(F.count(F.lit(1)).alias("questions"), F.max("group_size").alias("largest"))
        .orderBy(F.col("questions").desc(), *group_by)
        .limit(SKIPPED_GROUPS_SHOWN + 1)
        .collect()
    )
    answers.unpersist()
    groups.unpersist()

    result.lines = _summary_lines(settings, question_ids, counts, tally, skipped_by_group)
    result.say(f"  wrote {warehouse}/probe (version {version}) and {warehouse}/probe_groups")
    return result
