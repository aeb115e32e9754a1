"""`wvb baselines`: reference models written into `predictions` as answer distributions.

A model score means little without baselines next to it. Four are written, each a
distribution over the question's scale for every (question, respondent) target:

* `uniform`        equal probability on every scale point;
* `majority-leaky` the published baseline: one-hot at the mode of the very answers
                   being predicted — it has seen the answers, so it is an upper
                   reference, not a fair competitor;
* `global-prior`   the question's answer distribution on the train split;
* `group-prior`    the train distribution of the respondent's demographic group,
                   backing off to coarser groups when a group is too small.

Everything is aggregations and joins; the number of joins is the number of back-off
levels, never the number of groups.
"""

from __future__ import annotations

import argparse
import logging

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from wvb_spark.core import schemas
from wvb_spark.core.config import split_list
from wvb_spark.core.errors import InputError
from wvb_spark.core.stage import Result
from wvb_spark.transforms.columns import median_point
from wvb_spark.transforms.selection import all_not_null

log = logging.getLogger(__name__)

MODELS = {  # --models name -> model name written to `predictions`
    "uniform": "uniform",
    "majority": "majority-leaky",
    "majority-leaky": "majority-leaky",
    "global-prior": "global-prior",
    "group-prior": "group-prior",
}
PARSE_METHOD = "baseline"


# --------------------------------------------------------------------------- options

SETTINGS = "baselines"
OPTIONS = ("targets", "models", "group_by", "min_group_size", "train_split")


def add_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    parser.add_argument("--warehouse", required=True, metavar="DIR", help="warehouse root (tables at DIR/<table>)")
    parser.add_argument(
        "--on",
        dest="targets",
        metavar="TARGETS",
        help="whom to predict for: probe (the probe table) or split:<name> "
        f"(every example of that split) (default: {defaults['targets']})",
    )
    parser.add_argument(
        "--models",
        metavar="NAMES",
        help=f"comma list of uniform, majority, global-prior, group-prior (default: {','.join(defaults['models'])})",
    )
    parser.add_argument(
        "--group-by",
        dest="group_by",
        metavar="COLS",
        help=f"group-prior's participants columns, finest last (default: {','.join(defaults['group_by'])})",
    )
    parser.add_argument(
        "--min-group-size",
        dest="min_group_size",
        type=int,
        metavar="N",
        help="group-prior backs off from groups with fewer train answers than this "
        f"(default: {defaults['min_group_size']})",
    )
    parser.add_argument(
        "--train-split",
        dest="train_split",
        metavar="NAME",
        help=f"split the priors are fitted on (default: {defaults['train_split']})",
    )


def resolve_settings(config: dict) -> dict:
    """The `baselines:` block, typed and checked."""
    block = config["baselines"]
    targets = str(block["targets"]).strip()
    if targets != "probe" and not (targets.startswith("split:") and targets[len("split:") :].strip()):
        raise InputError(f"--on must be 'probe' or 'split:<name>', got {targets!r}")
    requested = split_list(block["models"])
    if not requested:
        raise InputError("--models names no baseline; choose from uniform, majority, global-prior, group-prior")
    unknown = [m for m in requested if m not in MODELS]
    if unknown:
        raise InputError(
            f"--models: unknown baseline {', '.join(unknown)}; choose from uniform, majority, global-prior, group-prior"
        )
    group_by = split_list(block.get("group_by"))
    if "group-prior" in requested and not group_by:
        raise InputError("--group-by needs at least one participants column for group-prior")
    minimum = int(block["min_group_size"])
    if minimum < 1:
        raise InputError(f"--min-group-size must be at least 1, got {minimum}")
    return {
        "targets": targets,
        "models": list(dict.fromkeys(MODELS[m] for m in requested)),
        "group_by": group_by,
        "min_group_size": minimum,
        "train_split": str(block["train_split"]),
    }


# --------------------------------------------------------------------------- distributions


def scales(questions: DataFrame) -> DataFrame:
    """question_id, scale_min, scale_max of every question that has a scale."""
    return questions.where(F.col("scale_min").isNotNull() & F.col("scale_max").isNotNull()).select(
        "question_id",
        F.col("scale_min").cast("int").alias("scale_min"),
        F.col("scale_max").cast("int").alias("scale_max"),
    )


def answer_counts(answers: DataFrame, question_scales: DataFrame, keys: list[str]) -> DataFrame:
    """On-scale answers counted per (question, keys..., answer); null key values form their own row."""
    return (
        answers.join(F.broadcast(question_scales), on="question_id", how="inner")
        .where(F.col("answer").between(F.col("scale_min"), F.col("scale_max")))
        .groupBy("question_id", *keys, "scale_min", "scale_max", "answer")
        .agg(F.count(F.lit(1)).alias("count"))
    )


def distributions_from_counts(counts: DataFrame, keys: list[str]) -> DataFrame:
    """Counts (possibly by finer keys) -> per (question, keys...): probabilities over
    scale_min..scale_max and the number of answers `n` they come from. Rows with a null
    key are not a group and are left out."""
    rolled_up = (
        counts.where(all_not_null(keys))
        .groupBy("question_id", *keys, "scale_min", "scale_max", "answer")
        .agg(F.sum("count").alias("count"))
    )
    per_group = rolled_up.groupBy("question_id", *keys, "scale_min", "scale_max").agg(
        F.map_from_entries(F.collect_list(F.struct("answer", "count"))).alias("counts"), F.sum("count").alias("n")
    )
    probabilities = F.transform(
        F.sequence("scale_min", "scale_max"),
        lambda k: F.coalesce(F.col("counts")[k], F.lit(0)).cast("double") / F.col("n"),
    )
    return per_group.select(
        "question_id", *keys, F.col("n").cast("long").alias("n"), probabilities.alias("distribution")
    )


def answer_distributions(answers: DataFrame, question_scales: DataFrame, keys: list[str]) -> DataFrame:
    """Empirical answer distribution per (question, keys...) of on-scale answers."""
    return distributions_from_counts(answer_counts(answers, question_scales, keys), keys)


def to_predictions(rows: DataFrame, model: str) -> DataFrame:
    """rows(question_id, d_interview, scale_min, distribution, source, status?) -> the predictions
    contract, with its exact types, so these partitions sit beside imported models'."""
    status = F.col("status") if "status" in rows.columns else F.lit(None).cast("string")
    status = (
        F.when(status.isNotNull(), status)
        .when(F.col("distribution").isNull(), F.lit("missing"))
        .otherwise(F.lit("valid"))
    )
    return rows.select(
        F.lit(model).alias("model"),
        F.col("question_id"),
        F.col("d_interview").cast("long").alias("d_interview"),
        F.lit(None).cast("string").alias("raw_score"),
        F.when(F.col("distribution").isNotNull(), median_point(F.col("distribution"), F.col("scale_min"))).alias(
            "score"
        ),
        status.alias("status"),
        F.col("distribution"),
        F.lit(PARSE_METHOD).alias("parse_method"),
        F.col("source"),
        F.lit(None).cast("double").alias("off_scale_mass"),
        F.lit(None).cast("int").alias("n_samples"),
        F.lit(None).cast("int").alias("n_unusable"),
    ).select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schemas.PREDICTIONS.fields])


def with_scales(targets: DataFrame, question_scales: DataFrame) -> DataFrame:
    """Targets with their question's scale; a question without one is `unknown_question`."""
    return (
        targets.select("question_id", "d_interview")
        .join(F.broadcast(question_scales), on="question_id", how="left")
        .select(
            "question_id",
            "d_interview",
            "scale_min",
            "scale_max",
            F.when(F.col("scale_min").isNull(), F.lit("unknown_question")).alias("status"),
        )
    )


# --------------------------------------------------------------------------- the four models


def uniform(targets: DataFrame, questions: DataFrame) -> DataFrame:
    rows = with_scales(targets, scales(questions))
    n_points = F.col("scale_max") - F.col("scale_min") + 1
    distribution = F.transform(F.sequence("scale_min", "scale_max"), lambda _: F.lit(1.0) / n_points)
    return to_predictions(
        rows.select(
            "question_id",
            "d_interview",
            "scale_min",
            "status",
            F.when(F.col("status").isNull(), distribution).alias("distribution"),
            F.concat(
                F.lit("uniform over "),
                F.col("scale_min").cast("string"),
                F.lit(".."),
                F.col("scale_max").cast("string"),
            ).alias("source"),
        ),
        "uniform",
    )


def majority_leaky(targets: DataFrame, examples: DataFrame, questions: DataFrame) -> DataFrame:
    """One-hot at each question's mode over the answers of the targets themselves (ties:
    the lowest answer). This is the published baseline, and it leaks the answer."""
    question_scales = scales(questions)
    target_answers = targets.select("question_id", "d_interview").join(
        examples.select("question_id", "d_interview", "answer"), on=["question_id", "d_interview"], how="inner"
    )
    counts = target_answers.groupBy("question_id", "answer").agg(F.count(F.lit(1)).alias("count"))
    by_count = Window.partitionBy("question_id").orderBy(F.col("count").desc(), F.col("answer").asc())
    modes = (
        counts.select(
            "question_id",
            "answer",
            "count",
            F.row_number().over(by_count).alias("position"),
            F.sum("count").over(Window.partitionBy("question_id")).alias("n"),
        )
        .where("position = 1")
        .select("question_id", F.col("answer").alias("mode"), "n")
    )
    rows = with_scales(targets, question_scales).join(modes, on="question_id", how="left")
    one_hot = F.transform(
        F.sequence("scale_min", "scale_max"), lambda k: F.when(k == F.col("mode"), F.lit(1.0)).otherwise(F.lit(0.0))
    )
    in_scale = F.col("mode").between(F.col("scale_min"), F.col("scale_max"))
    source = F.concat(
        F.lit("LEAKY majority: mode "),
        F.col("mode").cast("string"),
        F.lit(" of the "),
        F.col("n").cast("string"),
        F.lit(" evaluated answers (it has seen the answers)"),
    )
    return to_predictions(
        rows.select(
            "question_id",
            "d_interview",
            "scale_min",
            "status",
            F.when(F.col("status").isNull() & in_scale, one_hot).alias("distribution"),
            F.when(F.col("mode").isNotNull(), source)
            .otherwise(F.lit("LEAKY majority: no evaluated answer for this question"))
            .alias("source"),
        ),
        "majority-leaky",
    )


def global_prior(targets: DataFrame, train_answers: DataFrame, questions: DataFrame) -> DataFrame:
    question_scales = scales(questions)
    priors = answer_distributions(train_answers.select("question_id", "answer"), question_scales, [])
    rows = with_scales(targets, question_scales).join(F.broadcast(priors), on="question_id", how="left")
    source = F.concat(F.lit("global-prior: train distribution ("), F.col("n").cast("string"), F.lit(" answers)"))
    return to_predictions(
        rows.select(
            "question_id",
            "d_interview",
            "scale_min",
            "status",
            F.when(F.col("status").isNull(), F.col("distribution")).alias("distribution"),
            F.when(F.col("n").isNotNull(), source)
            .otherwise(F.lit("global-prior: no train answer for this question"))
            .alias("source"),
        ),
        "global-prior",
    )


def level_name(keys: list[str]) -> str:
    return ",".join(keys) if keys else "global"


def group_prior(
    targets: DataFrame,
    train_answers: DataFrame,
    participants: DataFrame,
    questions: DataFrame,
    group_by: list[str],
    min_group_size: int,
) -> DataFrame:
    """The train distribution of the respondent's group at the finest level of
    `group_by` prefixes whose group has at least `min_group_size` train answers:
    (a, b, c), else (a, b), else (a), else the question's global train distribution.
    A null group value never matches, so it backs off too. `source` names the level."""
    question_scales = scales(questions)
    people = participants.select("d_interview", *group_by)
    train = train_answers.select("question_id", "d_interview", "answer").join(people, on="d_interview", how="inner")
    # one pass over the train answers at the finest level; coarser levels roll these counts up
    finest = answer_counts(train.select("question_id", *group_by, "answer"), question_scales, group_by)
    rows = with_scales(targets, question_scales).join(people, on="d_interview", how="left")
    levels = list(range(len(group_by), -1, -1))
    for level in levels:
        keys = group_by[:level]
        fitted = distributions_from_counts(finest, keys)
        if level > 0:
            fitted = fitted.where(F.col("n") >= min_group_size)
        fitted = fitted.select(
            "question_id", *keys, F.col("distribution").alias(f"distribution_{level}"), F.col("n").alias(f"n_{level}")
        )
        rows = rows.join(F.broadcast(fitted), on=["question_id", *keys], how="left")
    chosen_level = F.coalesce(*[F.when(F.col(f"n_{lv}").isNotNull(), F.lit(lv)) for lv in levels])
    chosen_n = F.coalesce(*[F.col(f"n_{lv}") for lv in levels])
    distribution = F.coalesce(*[F.col(f"distribution_{lv}") for lv in levels])
    names = F.create_map(*[x for lv in levels for x in (F.lit(lv), F.lit(level_name(group_by[:lv])))])
    source = F.concat(
        F.lit("group-prior level "),
        chosen_level.cast("string"),
        F.lit(": "),
        names[chosen_level],
        F.lit(" ("),
        chosen_n.cast("string"),
        F.lit(" train answers)"),
    )
    return to_predictions(
        rows.select(
            "question_id",
            "d_interview",
            "scale_min",
            "status",
            F.when(F.col("status").isNull(), distribution).alias("distribution"),
            F.when(chosen_level.isNotNull(), source)
            .otherwise(F.lit("group-prior: no train answer for this question"))
            .alias("source"),
        ),
        "group-prior",
    )


# --------------------------------------------------------------------------- command


def run(args, config: dict) -> Result:
    from wvb_spark.core.session import get_spark
    from wvb_spark.core.warehouse import Warehouse

    settings = resolve_settings(config)
    warehouse = args.warehouse
    needed = ["questions", "participants", "examples"] + (["probe"] if settings["targets"] == "probe" else [])
    Warehouse(None, warehouse, config).require(*needed[:3])
    Warehouse(None, warehouse, config).require(*needed[3:], hint="run wvb probe first, or use --on split:valid")
    spark = get_spark(config)
    tables = Warehouse(spark, warehouse, config)
    questions = tables.read("questions")
    participants = tables.read("participants")
    examples = tables.read("examples")
    missing = [c for c in settings["group_by"] if c not in participants.columns]
    if "group-prior" in settings["models"] and missing:
        raise InputError(f"--group-by: no participants column {', '.join(missing)}")

    if settings["targets"] == "probe":
        targets = tables.read("probe").select("question_id", "d_interview")
        target_splits = [r["split"] for r in tables.read("probe").select("split").distinct().collect()]
    else:
        split = settings["targets"][len("split:") :].strip()
        targets = examples.where(F.col("split") == split).select("question_id", "d_interview")
        target_splits = [split]
    if targets.limit(1).count() == 0:
        raise InputError(f"--on {settings['targets']}: nothing to predict for (no rows)")
    train_split = settings["train_split"]
    train_answers = examples.where(F.col("split") == train_split).select("question_id", "d_interview", "answer")
    if train_split in target_splits and ({"global-prior", "group-prior"} & set(settings["models"])):
        log.warning(f"the priors are fitted on split {train_split}, which is also predicted for")
    evaluated = examples.where(F.col("split").isin(target_splits))

    builders = {
        "uniform": lambda: uniform(targets, questions),
        "majority-leaky": lambda: majority_leaky(targets, evaluated, questions),
        "global-prior": lambda: global_prior(targets, train_answers, questions),
        "group-prior": lambda: group_prior(
            targets, train_answers, participants, questions, settings["group_by"], settings["min_group_size"]
        ),
    }
    result = Result()
    result.say(f"baselines: on {settings['targets']}, priors fitted on split {train_split}")
    tables.add_new_columns("predictions", stage="wvb baselines")
    for model in settings["models"]:
        predictions = builders[model]().cache()
        statuses = {r["status"]: r["count"] for r in predictions.groupBy("status").count().collect()}
        options = {
            "model": model,
            "targets": settings["targets"],
            "train_split": train_split,
            "group_by": list(settings["group_by"]),
            "min_group_size": settings["min_group_size"],
        }
        result.tables["predictions"] = version = tables.write(
            "predictions",
            predictions,
            stage="wvb baselines",
            options=options,
            counts=statuses,
            replace={"model": model},
            expected_rows=sum(statuses.values()),
        )
        line = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
        result.say(f"  {model}: {sum(statuses.values())} rows ({line}); predictions version {version}")
        if model == "group-prior":
            levels = (
                predictions.groupBy(F.regexp_extract("source", r"^group-prior level \d+: ([^ ]+)", 1).alias("level"))
                .count()
                .collect()
            )
            result.say(
                "    level used: "
                + ", ".join(f"{r['level'] or 'none'} {r['count']}" for r in sorted(levels, key=lambda r: -r["count"]))
            )
        predictions.unpersist()
    return result
