"""`wvb evaluate`: model vs human answer histograms, their distances, and the headline summary.

The pipeline, all inside Spark:

1. every prediction row becomes a few *contributions* (listed / invalid / human
   answer / model answer — a distribution adds one per scale point), aggregated
   natively per (model, question, fine group, value);
2. the fine cells are expanded into each `--group-by` grouping and summed again, so
   the big join runs once however many groupings are asked for;
3. per (model, question, group) the human and model histograms are laid side by
   side on common points (`comparisons`);
4. one `applyInPandas` per (model, question) computes W1, JSD, TV, the bootstrap
   interval and the noise floor for all its groups with numpy (wvb_spark.metrics);
5. one `applyInPandas` per (model, group) turns the per-question results and their
   bootstrap replicates into the share of questions below each threshold.

Protocols (see README: evaluate): `paper` reproduces the published evaluation;
`default` drops a pair from both sides when its prediction is not usable.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from wvb_spark import config as wvb_config
from wvb_spark.config import split_list, stage_block
from wvb_spark import metrics
from wvb_spark.errors import WvbError

PROTOCOLS = ("default", "paper")
POPULATIONS = ("paired", "population")
OVERALL = "overall"          # the --group-by name meaning "everyone in one group"
OVERALL_VALUE = "all"
MISSING_VALUE = "(missing)"  # group value of respondents whose group column is null/unknown
DEFAULT_GROUP_BY = (OVERALL, "continent", "urban_rural", "education_level", "country")
RESERVED_COLUMNS = ("d_interview", "split", "weight", "question_id", "model")

KEYS = ["model", "question_id", "group_by", "group_value"]

CELL_KINDS = ("listed", "human", "model")

HISTOGRAMS = T.StructType([
    T.StructField("model", T.StringType(), False),
    T.StructField("side", T.StringType(), False),            # human | model
    T.StructField("question_id", T.StringType(), False),
    T.StructField("group_by", T.StringType(), False),
    T.StructField("group_value", T.StringType(), False),
    T.StructField("scale_min", T.IntegerType(), False),
    T.StructField("scale_max", T.IntegerType(), False),
    T.StructField("points", T.ArrayType(T.DoubleType()), False),   # answer value of each count
    T.StructField("counts", T.ArrayType(T.DoubleType()), False),   # count / weight sum per point
    T.StructField("n", T.LongType(), False),                       # respondents (pairs), unweighted
])

DISTANCES = T.StructType([
    T.StructField("model", T.StringType(), False),
    T.StructField("question_id", T.StringType(), False),
    T.StructField("group_by", T.StringType(), False),
    T.StructField("group_value", T.StringType(), False),
    T.StructField("n_human", T.LongType(), False),
    T.StructField("n_model", T.LongType(), False),
    T.StructField("n_listed", T.LongType(), False),
    T.StructField("n_invalid", T.LongType(), False),
    T.StructField("w1", T.DoubleType(), True),
    T.StructField("w1_ci_low", T.DoubleType(), True),
    T.StructField("w1_ci_high", T.DoubleType(), True),
    T.StructField("jsd", T.DoubleType(), True),
    T.StructField("tv", T.DoubleType(), True),
    T.StructField("representativeness", T.DoubleType(), True),
    T.StructField("noise_floor", T.DoubleType(), True),
    T.StructField("within_noise_floor", T.BooleanType(), True),
    T.StructField("invalid_rate", T.DoubleType(), True),
    T.StructField("invalid_by_status", T.MapType(T.StringType(), T.LongType()), True),
])

SUMMARY = T.StructType([
    T.StructField("model", T.StringType(), False),
    T.StructField("group_by", T.StringType(), False),
    T.StructField("group_value", T.StringType(), False),
    T.StructField("threshold", T.DoubleType(), False),
    T.StructField("pct_questions_below", T.DoubleType(), True),
    T.StructField("ci_low", T.DoubleType(), True),
    T.StructField("ci_high", T.DoubleType(), True),
    T.StructField("mean_w1", T.DoubleType(), True),
    T.StructField("invalid_rate", T.DoubleType(), True),
    T.StructField("n_questions", T.LongType(), False),
])

# What the distance UDF returns (before the status map is joined back).
_DISTANCE_UDF_OUTPUT = T.StructType(
    [f for f in DISTANCES.fields if f.name not in ("representativeness", "within_noise_floor",
                                                   "invalid_rate", "invalid_by_status")]
    + [T.StructField("replicate_bins", T.BinaryType(), True)]
)


def _names(schema: T.StructType) -> list[str]:
    return [field.name for field in schema.fields]


# --------------------------------------------------------------------------- options

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--warehouse", required=True, metavar="DIR", help="warehouse root (tables at DIR/<table>)")
    parser.add_argument("--models", metavar="A,B", help="comma list of models to score (default: every model in predictions)")
    parser.add_argument("--protocol", choices=PROTOCOLS,
                        help="paper: the published evaluation exactly; default: drop unusable pairs from both sides")
    parser.add_argument("--population", choices=POPULATIONS,
                        help="human side: the respondents the model answered (paired, default) "
                             "or every respondent of the split in the group (population)")
    parser.add_argument("--split", help="split of the human population for --population population "
                                        "(default: the split most predicted respondents are in)")
    parser.add_argument("--weights", action=argparse.BooleanOptionalAction, default=None,
                        help="weight respondents by W_WEIGHT (participants.weight); not with --protocol paper")
    parser.add_argument("--bootstrap", type=int, metavar="B", help="bootstrap replicates (default: 1000; 0 disables)")
    parser.add_argument("--seed", type=int, help="bootstrap seed (default: 0)")
    parser.add_argument("--group-by", dest="group_by", metavar="COLS",
                        help="comma list of participants columns, 'overall' = everyone "
                             "(default: overall,continent,urban_rural,education_level,country)")


def resolve_settings(args, config: dict) -> dict:
    """Command-line options over the `evaluate:` block of the settings."""
    block = stage_block(config, "evaluate", args,
                        ("models", "protocol", "population", "split", "weights", "bootstrap", "seed", "group_by"))
    settings = {
        "models": split_list(block.get("models")),
        "protocol": str(block.get("protocol") or "default"),
        "population": str(block.get("population") or "paired"),
        "split": block.get("split") or None,
        "weights": bool(block.get("weights", False)),
        "bootstrap": int(block.get("bootstrap", 1000)),
        "seed": int(block.get("seed", 0)),
        "group_by": split_list(block.get("group_by")) or list(DEFAULT_GROUP_BY),
        "thresholds": [float(t) for t in block.get("thresholds", metrics.DEFAULT_THRESHOLDS)],
        "headline_threshold": float(block.get("headline_threshold", 0.2)),
        "noise_floor_draws": int(block.get("noise_floor_draws", 200)),
        "confidence": float(block.get("confidence", 0.95)),
    }
    if settings["protocol"] not in PROTOCOLS:
        raise WvbError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {settings['protocol']!r}")
    if settings["population"] not in POPULATIONS:
        raise WvbError(f"--population must be one of {', '.join(POPULATIONS)}, got {settings['population']!r}")
    if settings["protocol"] == "paper" and settings["weights"]:
        raise WvbError("--weights is not part of the paper protocol (equal weights); use --protocol default")
    if settings["bootstrap"] < 0:
        raise WvbError(f"--bootstrap must be 0 or more, got {settings['bootstrap']}")
    if len(set(settings["group_by"])) != len(settings["group_by"]):
        raise WvbError(f"--group-by names a column twice: {','.join(settings['group_by'])}")
    thresholds = settings["thresholds"]
    if not thresholds or sorted(thresholds) != thresholds or len(thresholds) > 255:
        raise WvbError("evaluate.thresholds must be 1 to 255 ascending numbers")
    if not 0 < settings["confidence"] < 1:
        raise WvbError(f"evaluate.confidence must be between 0 and 1, got {settings['confidence']}")
    return settings


def check_group_columns(participants: DataFrame, group_by: list[str]) -> None:
    """Every grouping is 'overall' or a participants column that is not a key."""
    available = [c for c in participants.columns if c not in RESERVED_COLUMNS]
    for name in group_by:
        if name == OVERALL:
            continue
        if name in RESERVED_COLUMNS or name not in participants.columns:
            raise WvbError(f"--group-by: {name!r} is not a participants column "
                           f"(use overall or one of: {', '.join(available)})")


# --------------------------------------------------------------------------- transforms

def _finite(column: Column) -> Column:
    return column.isNotNull() & ~F.isnan(column) & (F.abs(column) != float("inf"))


def _usable_distribution() -> Column:
    """A distribution with one probability per scale point, none negative, positive total."""
    distribution = F.col("distribution")
    total = F.aggregate(distribution, F.lit(0.0), lambda acc, x: acc + F.coalesce(x, F.lit(float("nan"))))
    return (distribution.isNotNull() & F.col("scale_min").isNotNull()
            & (F.size(distribution) == F.col("scale_max") - F.col("scale_min") + 1)
            & ~F.exists(distribution, lambda x: x.isNull() | F.isnan(x) | (x < 0))
            & (total > 0))


def _contribution(kind: str, value: Column, reason: Column, mass: Column, pairs: Column) -> Column:
    return F.struct(F.lit(kind).alias("kind"), value.cast("double").alias("value"),
                    reason.cast("string").alias("reason"), mass.cast("double").alias("mass"),
                    pairs.cast("long").alias("pairs"))


def cell_groups(participants: DataFrame, group_columns: list[str]) -> DataFrame:
    """(cell, group_<column>...): one integer id per combination of group values present in
    participants (nulls included). The big aggregation keys on this one integer instead of
    several strings; the group values are joined back on the (small) aggregated cells."""
    combos = participants.select(*[F.col(c).alias(f"group_{c}") for c in group_columns]).distinct()
    order = [F.col(f"group_{c}").asc_nulls_first() for c in group_columns] or [F.lit(1)]
    return combos.select(F.row_number().over(Window.orderBy(*order)).cast("int").alias("cell"),
                         *[f"group_{c}" for c in group_columns])


def contributions(predictions: DataFrame, examples: DataFrame, participants: DataFrame,
                  questions: DataFrame, *, protocol: str, population: str, weights: bool,
                  group_columns: list[str], cells: DataFrame | None = None) -> DataFrame:
    """One row per (prediction row, contribution), with the respondent's `cell` (see
    `cell_groups`; pass the same `cells` frame to `group_cells`).

    kind = listed (every row; reason = why the row does not count, null if it counts; mass =
    1 when the respondent has an answer to the question, whether or not the pair counts), human (the respondent's answer, mass = weight or 1), model (the score, or one
    row per scale point of a distribution, mass = probability x weight). Under
    `--population population` the human side comes from `population_cells` instead.
    """
    preds = predictions.select("model", "question_id", "d_interview", "score", "status", "distribution")
    answers = examples.select("question_id", "d_interview", F.col("answer").cast("double").alias("human_value"))
    cells = cell_groups(participants, group_columns) if cells is None else cells
    same_cell = [F.col(f"p.{c}").eqNullSafe(F.col(f"c.group_{c}")) for c in group_columns]
    people = (participants.alias("p")
              .join(F.broadcast(cells.alias("c")), on=same_cell or F.lit(True), how="left")
              .select(F.col("p.d_interview").alias("d_interview"), F.col("p.weight").alias("respondent_weight"),
                      F.col("c.cell").alias("cell")))
    scales = F.broadcast(questions.select("question_id", "scale_min", "scale_max"))
    pairs = (preds.join(scales, on="question_id", how="left")
             .join(answers, on=["question_id", "d_interview"], how="left")
             .join(F.broadcast(people), on="d_interview", how="left"))

    has_score = _finite(F.col("score"))
    has_distribution = _usable_distribution()
    known_scale = F.col("scale_min").isNotNull()
    has_answer = F.col("human_value").isNotNull() & known_scale
    weight = F.col("respondent_weight") if weights else F.lit(1.0)

    if protocol == "paper":
        # The published code: every listed respondent's answer; every numeric score truncated
        # toward zero, unchecked. A row with no number but a distribution uses the distribution.
        use_point = has_score
        use_distribution = ~has_score & has_distribution
        drop_reason = F.when(~(use_point | use_distribution), F.col("status"))
        in_human = has_answer
    else:
        use_distribution = has_distribution
        use_point = ~has_distribution & (F.col("status") == "valid") & has_score
        drop_reason = (
            F.when(F.col("distribution").isNotNull() & ~has_distribution & known_scale, F.lit("bad_distribution"))
            .when(~(use_point | use_distribution), F.col("status"))
            .when(~has_answer, F.lit("no_human_answer"))
        )
        if weights:
            drop_reason = F.when(drop_reason.isNull() & _missing_weight(), F.lit("missing_weight")).otherwise(drop_reason)
        in_human = drop_reason.isNull()
        use_point = use_point & in_human
        use_distribution = use_distribution & in_human

    point_value = F.col("score") - (F.col("score") % 1)  # truncation toward zero, kept as double
    empty = F.array().cast(T.ArrayType(_CONTRIBUTION_TYPE))
    distribution_total = F.aggregate(F.col("distribution"), F.lit(0.0), lambda acc, x: acc + x)
    parts = [
        # one 'listed' row per prediction row: reason = why it does not count, mass = 1 if answered
        F.array(_contribution("listed", F.lit(None), drop_reason, F.when(has_answer, 1.0).otherwise(0.0), F.lit(1))),
        F.when(use_point, F.array(_contribution("model", point_value, F.lit(None), weight, F.lit(1)))).otherwise(
            F.when(use_distribution,
                   F.transform(F.col("distribution"), lambda p, i: _contribution(
                       "model", F.col("scale_min") + i, F.lit(None), p / distribution_total * weight,
                       F.when(i == 0, 1).otherwise(0)))).otherwise(empty)),
    ]
    if population == "paired":
        parts.append(F.when(in_human, F.array(_contribution("human", F.col("human_value"), F.lit(None), weight,
                                                            F.lit(1)))).otherwise(empty))
    exploded = pairs.select("model", "question_id", "cell", F.explode(F.concat(*parts)).alias("c"))
    return exploded.select("model", "question_id", "cell", "c.kind", "c.value", "c.reason", "c.mass", "c.pairs")


_CONTRIBUTION_TYPE = T.StructType([
    T.StructField("kind", T.StringType(), False),
    T.StructField("value", T.DoubleType(), True),
    T.StructField("reason", T.StringType(), True),
    T.StructField("mass", T.DoubleType(), True),
    T.StructField("pairs", T.LongType(), True),
])


def _missing_weight() -> Column:
    return ~_finite(F.col("respondent_weight")) | (F.col("respondent_weight") < 0)


def _group_value(column: str) -> Column:
    if column == OVERALL:
        return F.lit(OVERALL_VALUE)
    return F.coalesce(F.col(f"group_{column}").cast("string"), F.lit(MISSING_VALUE))


def expand_groups(fine: DataFrame, keys: list[str], group_columns: list[str], group_by: list[str],
                  measures: list[str], cells_table: DataFrame | None = None) -> DataFrame:
    """Sum `measures` of fine cells into every grouping of `group_by`.

    The fine cells are first aggregated over all group columns at once (native, and far
    fewer rows than the input); each is then repeated once per grouping and summed again.
    With `cells_table`, `fine` carries a `cell` id instead of the group columns, which are
    joined back after the first aggregation.
    """
    if cells_table is None:
        fine_keys = keys + [f"group_{c}" for c in group_columns]
        cells = fine.groupBy(*fine_keys).agg(*[F.sum(m).alias(m) for m in measures])
    else:
        cells = (fine.groupBy(*keys, "cell").agg(*[F.sum(m).alias(m) for m in measures])
                 .join(F.broadcast(cells_table), on="cell", how="left"))
    groupings = F.array(*[F.struct(F.lit(name).alias("group_by"), _group_value(name).alias("group_value"))
                          for name in group_by])
    expanded = cells.select(*keys, *measures, F.explode(groupings).alias("g"))
    return (expanded.groupBy(*keys, "g.group_by", "g.group_value")
            .agg(*[F.sum(m).alias(m) for m in measures]))


def group_cells(contribution_rows: DataFrame, cells_table: DataFrame, group_columns: list[str],
                group_by: list[str]) -> DataFrame:
    """(model, question_id, group_by, group_value, kind, value, reason, mass, pairs).

    `cells_table` is the `cell_groups` frame `contribution_rows` was built with."""
    cells = expand_groups(contribution_rows, ["model", "question_id", "kind", "value", "reason"],
                          group_columns, group_by, ["mass", "pairs"], cells_table)
    return cells.select("model", "question_id", "group_by", "group_value", "kind", "value", "reason",
                        "mass", "pairs")


def population_cells(examples: DataFrame, participants: DataFrame, question_ids: DataFrame, *,
                     split: str, weights: bool, group_columns: list[str], group_by: list[str]) -> DataFrame:
    """Human cells of every respondent of `split` who answered a question in `question_ids`:
    (question_id, group_by, group_value, value, mass, pairs). Respondents without a usable
    weight are left out of a weighted population."""
    people = participants.where(F.col("split") == split).select(
        "d_interview", F.col("weight").alias("respondent_weight"),
        *[F.col(c).alias(f"group_{c}") for c in group_columns])
    answers = (examples.where(F.col("split") == split)
               .join(F.broadcast(question_ids.select("question_id").distinct()), on="question_id", how="inner")
               .select("question_id", "d_interview", F.col("answer").cast("double").alias("value")))
    rows = answers.join(F.broadcast(people), on="d_interview", how="inner")
    if weights:
        rows = rows.where(~_missing_weight())
    rows = rows.select("question_id", "value", *[f"group_{c}" for c in group_columns],
                       (F.col("respondent_weight") if weights else F.lit(1.0)).cast("double").alias("mass"),
                       F.lit(1).cast("long").alias("pairs"))
    cells = expand_groups(rows, ["question_id", "value"], group_columns, group_by, ["mass", "pairs"])
    return cells.select("question_id", "group_by", "group_value", "value", "mass", "pairs")


def _side_histograms(cells: DataFrame, keys: list[str]) -> DataFrame:
    return (cells.groupBy(*keys)
            .agg(F.map_from_entries(F.collect_list(F.struct("value", "mass"))).alias("by_value"),
                 F.sum("pairs").alias("n")))


def comparisons(cells: DataFrame, questions: DataFrame, *, protocol: str,
                human_population: DataFrame | None = None) -> DataFrame:
    """Per listed (model, question, group): human and model histograms on common points.

    Points are the scale's integers; under the paper protocol they also include every
    out-of-scale (truncated) model value seen for that (model, question), so nothing is
    clipped. `n_answered` counts listed respondents with a human answer (the population
    size under `population`); groups where it is 0 are not scored (see `skipped_groups`).
    A group with answers but no usable prediction is scored with null distances.
    """
    listing = F.col("kind") == "listed"
    invalid = listing & F.col("reason").isNotNull()
    listed = (cells.groupBy(*KEYS)
              .agg(F.sum(F.when(listing, F.col("pairs")).otherwise(0)).alias("n_listed"),
                   F.sum(F.when(invalid, F.col("pairs")).otherwise(0)).alias("n_invalid"),
                   F.sum(F.when(listing, F.col("mass")).otherwise(0)).alias("n_answered"),
                   F.map_from_entries(F.collect_list(F.when(invalid,
                                                            F.struct("reason", "pairs")))).alias("invalid_by_status")))
    scales = F.broadcast(questions.select("question_id", "scale_min", "scale_max"))
    model_cells = cells.where(F.col("kind") == "model")
    if human_population is None:
        human_cells = cells.where(F.col("kind") == "human")
        human = _side_histograms(human_cells, KEYS)
    else:
        human_cells = human_population
        human = _side_histograms(human_population, ["question_id", "group_by", "group_value"])
    model = _side_histograms(model_cells, KEYS)

    scale_points = F.transform(F.sequence(F.col("scale_min"), F.col("scale_max")), lambda v: v.cast("double"))
    if protocol == "paper":
        observed = (model_cells.select("model", "question_id", "value")
                    .groupBy("model", "question_id").agg(F.collect_set("value").alias("observed")))
        points = (observed.join(scales, on="question_id", how="inner")
                  .select("model", "question_id",
                          F.array_sort(F.array_distinct(F.concat(scale_points, F.col("observed")))).alias("points")))
    else:
        points = None

    human_keys = KEYS if human_population is None else ["question_id", "group_by", "group_value"]
    joined = (listed.join(scales, on="question_id", how="left")
              .join(human.select(*human_keys, F.col("by_value").alias("human_by_value"),
                                 F.col("n").alias("n_human")), on=human_keys, how="left")
              .join(model.select(*KEYS, F.col("by_value").alias("model_by_value"),
                                 F.col("n").alias("n_model")), on=KEYS, how="left"))
    if points is not None:
        joined = joined.join(points, on=["model", "question_id"], how="left")
        points_column = F.coalesce(F.col("points"), scale_points)
    else:
        points_column = scale_points

    def counts(by_value: str) -> Column:
        return F.transform(F.col("points"), lambda v: F.coalesce(F.try_element_at(F.col(by_value), v), F.lit(0.0)))

    known = F.col("scale_min").isNotNull() & F.col("scale_max").isNotNull()
    return (joined
            .withColumn("points", F.when(known, points_column))
            .select(*KEYS, "scale_min", "scale_max", "points",
                    F.when(known, counts("human_by_value")).alias("human_counts"),
                    F.when(known, F.coalesce(F.col("n_human"), F.lit(0))).otherwise(F.lit(0)).cast("long").alias("n_human"),
                    F.when(known, counts("model_by_value")).alias("model_counts"),
                    F.coalesce(F.col("n_model"), F.lit(0)).cast("long").alias("n_model"),
                    F.col("n_listed").cast("long"), F.col("n_invalid").cast("long"), "invalid_by_status",
                    # a group is scored when it has human answers at all, even if no pair counts
                    (F.coalesce(F.col("n_human"), F.lit(0)) if human_population is not None
                     else F.col("n_answered")).cast("long").alias("n_answered")))


def skipped_groups(comparison_rows: DataFrame) -> DataFrame:
    """Listed (model, question, group) rows without any human answer: not scored."""
    return comparison_rows.where(F.col("n_answered") == 0).select(*KEYS, "n_listed", "n_invalid")


def scored_groups(comparison_rows: DataFrame) -> DataFrame:
    return comparison_rows.where(F.col("n_answered") > 0)


def histograms(comparison_rows: DataFrame) -> DataFrame:
    """The `histograms` table: one human and one model row per scored (model, question, group)."""
    def side(name: str) -> DataFrame:
        return comparison_rows.select("model", F.lit(name).alias("side"), "question_id", "group_by", "group_value",
                                      "scale_min", "scale_max", "points",
                                      F.col(f"{name}_counts").alias("counts"), F.col(f"n_{name}").alias("n"))
    return side("human").unionByName(side("model")).select(*_names(HISTOGRAMS))


def _stack(column: pd.Series) -> np.ndarray:
    return np.stack([np.asarray(value, dtype=float) for value in column])


def _distance_batch(pdf: pd.DataFrame, *, bootstrap: int, seed: int, noise_draws: int,
                    thresholds: list[float], confidence: float) -> pd.DataFrame:
    """All groups of one (model, question), vectorised: point estimates for every row, and
    one bootstrap call per grouping (seeded by model, question and grouping)."""
    pdf = pdf.sort_values(["group_by", "group_value"]).reset_index(drop=True)
    human = _stack(pdf["human_counts"])
    model = _stack(pdf["model_counts"])
    steps = metrics.normalised_steps(_stack(pdf["points"]), pdf["scale_min"].to_numpy(),
                                     pdf["scale_max"].to_numpy())
    n_human = pdf["n_human"].to_numpy()
    n_model = pdf["n_model"].to_numpy()
    scored = (n_human > 0) & (n_model > 0) & (human.sum(axis=1) > 0) & (model.sum(axis=1) > 0)

    w1 = np.where(scored, metrics.wasserstein_1(human, model, steps), np.nan)
    jsd = np.where(scored, metrics.jensen_shannon(human, model), np.nan)
    tv = np.where(scored, metrics.total_variation(human, model), np.nan)
    ci_low = np.full(len(pdf), np.nan)
    ci_high = np.full(len(pdf), np.nan)
    noise_floor = np.full(len(pdf), np.nan)
    bins = np.full(len(pdf), None, dtype=object)
    group_by = pdf["group_by"].to_numpy()
    first = pdf.iloc[0]
    for grouping in dict.fromkeys(group_by[scored]):
        rows = np.flatnonzero(scored & (group_by == grouping))
        rng = np.random.default_rng(metrics.row_seed(seed, first["model"], first["question_id"], grouping))
        replicates, noise_floor[rows] = metrics.bootstrap_batch(
            human[rows], n_human[rows], model[rows], n_model[rows], steps[rows], bootstrap, noise_draws, rng)
        if bootstrap > 0:
            ci_low[rows], ci_high[rows] = metrics.percentile_intervals(replicates, confidence)
            row_bins = metrics.threshold_bins(replicates, thresholds)
            bins[rows] = [row.tobytes() for row in row_bins]
    out = pdf[["model", "question_id", "group_by", "group_value", "n_human", "n_model", "n_listed", "n_invalid"]].copy()
    out["w1"], out["w1_ci_low"], out["w1_ci_high"] = w1, ci_low, ci_high
    out["jsd"], out["tv"], out["noise_floor"] = jsd, tv, noise_floor
    out["replicate_bins"] = bins
    return out[_names(_DISTANCE_UDF_OUTPUT)]


def distances_with_replicates(comparison_rows: DataFrame, *, bootstrap: int, seed: int, noise_draws: int,
                              thresholds: list[float], confidence: float = 0.95) -> DataFrame:
    """The `distances` columns plus `replicate_bins` (per bootstrap replicate, how many
    thresholds the replicate's W1 reaches), which `summary` needs for its interval."""
    settings = dict(bootstrap=bootstrap, seed=seed, noise_draws=noise_draws, thresholds=list(thresholds),
                    confidence=confidence)
    scored = scored_groups(comparison_rows)
    computed = (scored.select(*KEYS, "scale_min", "scale_max", "points", "human_counts", "n_human",
                              "model_counts", "n_model", "n_listed", "n_invalid")
                .groupBy("model", "question_id")
                .applyInPandas(lambda pdf: _distance_batch(pdf, **settings), schema=_DISTANCE_UDF_OUTPUT))
    statuses = scored.select(*KEYS, "invalid_by_status")
    result = computed.join(statuses, on=KEYS, how="inner")
    return result.select(
        *KEYS, "n_human", "n_model", "n_listed", "n_invalid", "w1", "w1_ci_low", "w1_ci_high", "jsd", "tv",
        (1.0 - F.col("w1")).alias("representativeness"), "noise_floor",
        (F.col("w1") <= F.col("noise_floor")).alias("within_noise_floor"),
        F.when(F.col("n_listed") > 0, F.col("n_invalid") / F.col("n_listed")).alias("invalid_rate"),
        "invalid_by_status", "replicate_bins")


def distances(distance_rows: DataFrame) -> DataFrame:
    """The `distances` table columns."""
    return distance_rows.select(*_names(DISTANCES))


def _summary_batch(pdf: pd.DataFrame, *, thresholds: list[float], confidence: float) -> pd.DataFrame:
    scored = pdf[pdf["w1"].notna()].sort_values("question_id")
    w1 = scored["w1"].to_numpy(dtype=float)
    shares = metrics.share_below(w1, thresholds)
    with_bins = [b for b in scored["replicate_bins"] if b is not None]
    if len(with_bins) and len(with_bins) == len(scored):
        bins = np.stack([np.frombuffer(b, dtype=np.uint8) for b in with_bins])
        replicate_shares = metrics.share_below_replicates(bins, len(thresholds))
        intervals = [metrics.percentile_interval(replicate_shares[:, j], confidence) for j in range(len(thresholds))]
    else:
        intervals = [(np.nan, np.nan)] * len(thresholds)
    listed = pdf["n_listed"].sum()
    first = pdf.iloc[0]
    return pd.DataFrame({
        "model": first["model"], "group_by": first["group_by"], "group_value": first["group_value"],
        "threshold": np.asarray(thresholds, dtype=float),
        "pct_questions_below": shares,
        "ci_low": [low for low, _ in intervals], "ci_high": [high for _, high in intervals],
        "mean_w1": float(w1.mean()) if len(w1) else np.nan,
        "invalid_rate": float(pdf["n_invalid"].sum() / listed) if listed > 0 else np.nan,
        "n_questions": np.int64(len(w1)),
    })[_names(SUMMARY)]


def summary(distance_rows: DataFrame, *, thresholds: list[float], confidence: float = 0.95) -> DataFrame:
    """Per (model, group): % of questions with W1 < τ for each τ (strict), with a percentile
    interval over bootstrap replicates (replicate b counts each question's replicate b)."""
    settings = dict(thresholds=list(thresholds), confidence=confidence)
    return (distance_rows.select("model", "question_id", "group_by", "group_value", "w1", "n_listed", "n_invalid",
                                 "replicate_bins")
            .groupBy("model", "group_by", "group_value")
            .applyInPandas(lambda pdf: _summary_batch(pdf, **settings), schema=SUMMARY)
            .select(*_names(SUMMARY)))


# --------------------------------------------------------------------------- command

def predicted_splits(predictions: DataFrame, participants: DataFrame) -> dict[str, int]:
    """Split -> number of predicted respondents in it (a handful of rows)."""
    respondents = predictions.select("d_interview").where(F.col("d_interview").isNotNull()).distinct()
    counts = (respondents.join(participants.select("d_interview", "split"), on="d_interview", how="inner")
              .groupBy("split").count().collect())
    return {row["split"]: int(row["count"]) for row in counts}


def headline_table(summary_rows: list, threshold: float) -> str:
    """The printed headline: one line per model (overall group, τ = threshold)."""
    lines = [f"{'model':<24} {'% W1<' + format(threshold, 'g'):>9} {'95% CI':>17} {'mean W1':>8} "
             f"{'invalid':>8} {'questions':>9}"]
    for row in sorted(summary_rows, key=lambda r: r["model"]):
        pct = "-" if row["pct_questions_below"] is None else f"{row['pct_questions_below']:.1f}"
        ci = ("-" if row["ci_low"] is None
              else f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}]")
        mean = "-" if row["mean_w1"] is None else f"{row['mean_w1']:.3f}"
        invalid = "-" if row["invalid_rate"] is None else f"{100 * row['invalid_rate']:.1f}%"
        lines.append(f"{row['model']:<24} {pct:>9} {ci:>17} {mean:>8} {invalid:>8} {row['n_questions']:>9}")
    return "\n".join(lines)


def main(args) -> int:
    from wvb_spark import storage
    from wvb_spark.session import get_spark

    config = wvb_config.load(getattr(args, "conf", None), getattr(args, "overrides", None))
    settings = resolve_settings(args, config)
    warehouse = args.warehouse
    storage.require_tables(warehouse, ("predictions", "examples", "participants", "questions"), config)
    spark = get_spark(config)
    predictions = storage.read_table(spark, warehouse, "predictions", config)
    examples = storage.read_table(spark, warehouse, "examples", config)
    participants = storage.read_table(spark, warehouse, "participants", config)
    questions = storage.read_table(spark, warehouse, "questions", config)

    # the models are the table's partition values: read from the Delta log, not the data
    partitions = storage.partition_values(warehouse, "predictions", "model", config)
    if partitions is None:  # not partitioned by model: scan
        partitions = [row["model"] for row in predictions.select("model").distinct().collect()]
    available = sorted(m for m in partitions if m is not None)
    if not available:
        raise WvbError(f"the predictions table in {warehouse} is empty")
    models = settings["models"] or available
    unknown = [m for m in models if m not in available]
    if unknown:
        raise WvbError(f"unknown model(s) {', '.join(unknown)}; predictions has: {', '.join(available)}")
    group_by = settings["group_by"]
    check_group_columns(participants, group_by)
    group_columns = [c for c in group_by if c != OVERALL]
    predictions = predictions.where(F.col("model").isin(models))

    splits = predicted_splits(predictions, participants)
    split = settings["split"]
    if settings["population"] == "population":
        if split is None:
            if not splits:
                raise WvbError("no predicted respondent is in participants; give --split")
            split = max(sorted(splits), key=lambda s: splits[s])
        known_splits = {row["split"] for row in participants.select("split").distinct().collect()}
        if split not in known_splits:
            raise WvbError(f"--split {split!r} is not a split of participants ({', '.join(sorted(known_splits))})")
    elif splits:
        examples = examples.where(F.col("split").isin(sorted(splits)))  # partition pruning

    run_settings = {
        "protocol": settings["protocol"], "population": settings["population"],
        "split": split if settings["population"] == "population" else None,
        "weights": settings["weights"], "bootstrap": settings["bootstrap"], "seed": settings["seed"],
        "group_by": group_by, "models": models, "thresholds": settings["thresholds"],
        "noise_floor_draws": settings["noise_floor_draws"], "confidence": settings["confidence"],
    }
    print(f"wvb evaluate: {len(models)} model(s), protocol {settings['protocol']}, "
          f"population {settings['population']}{' (' + split + ')' if run_settings['split'] else ''}, "
          f"weights {'on' if settings['weights'] else 'off'}, bootstrap {settings['bootstrap']}, "
          f"seed {settings['seed']}, group-by {','.join(group_by)}")

    cell_table = cell_groups(participants, group_columns).cache()
    rows = contributions(predictions, examples, participants, questions, protocol=settings["protocol"],
                         population=settings["population"], weights=settings["weights"],
                         group_columns=group_columns, cells=cell_table)
    cells = group_cells(rows, cell_table, group_columns, group_by).persist(StorageLevel.MEMORY_AND_DISK)
    human_population = None
    if settings["population"] == "population":
        human_population = population_cells(
            examples, participants, predictions.select("question_id").where(F.col("question_id").isNotNull()),
            split=split, weights=settings["weights"], group_columns=group_columns, group_by=group_by)
    comparison_rows = comparisons(cells, questions, protocol=settings["protocol"],
                                  human_population=human_population).persist(StorageLevel.MEMORY_AND_DISK)
    skipped = skipped_groups(comparison_rows).count()

    commit_info = {"operation": "wvb evaluate", **run_settings}
    histogram_version = storage.write_table(spark, histograms(scored_groups(comparison_rows)), warehouse,
                                            "histograms", config, partition_by=["model"], commit_info=commit_info)
    distance_rows = distances_with_replicates(
        comparison_rows, bootstrap=settings["bootstrap"], seed=settings["seed"],
        noise_draws=settings["noise_floor_draws"], thresholds=settings["thresholds"],
        confidence=settings["confidence"]).persist(StorageLevel.MEMORY_AND_DISK)
    distance_version = storage.write_table(spark, distances(distance_rows), warehouse, "distances", config,
                                           partition_by=["model"], commit_info=commit_info)
    summary_rows = summary(distance_rows, thresholds=settings["thresholds"],
                           confidence=settings["confidence"]).persist(StorageLevel.MEMORY_AND_DISK)
    summary_version = storage.write_table(spark, summary_rows, warehouse, "summary", config,
                                          commit_info=commit_info)

    n_distances = distance_rows.count()
    headline_group = OVERALL if OVERALL in group_by else group_by[0]
    headline = (summary_rows.where((F.col("group_by") == headline_group)
                                   & (F.abs(F.col("threshold") - settings["headline_threshold"]) < 1e-9))
                .orderBy("model", "group_value").collect())
    for frame in (summary_rows, distance_rows, comparison_rows, cells):
        frame.unpersist()

    print(f"wvb evaluate: {n_distances} (model, question, group) rows scored; {skipped} skipped "
          f"(no human answers); tables histograms v{histogram_version}, distances v{distance_version}, "
          f"summary v{summary_version} in {warehouse}")
    print(f"headline ({headline_group}, W1 < {settings['headline_threshold']:g}, "
          f"{int(round(100 * settings['confidence']))}% bootstrap CI):")
    print(headline_table([row.asDict() for row in headline], settings["headline_threshold"]))
    return 0
