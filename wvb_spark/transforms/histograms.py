"""Human and model answer histograms per (model, question, group), natively in Spark.

The first half of `wvb evaluate`. Speed comes from three choices:

* every prediction row stays one row: its human answer and model answer become
  *point indexes* (answer − scale_min), and one aggregation per (model, question,
  fine cell) sums them into fixed-width columns `human_0 … human_{K-1}`,
  `model_0 …` with conditional sums (K = the widest scale), so no row is exploded
  and no key is a string built per row;
* the fine cell is one integer per combination of all group columns
  (`cell_groups`); each fine cell is then summed into every `--group-by` grouping,
  so the big pass runs once however many groupings are asked for;
* a small prediction set (a probe) is broadcast into `examples` instead of
  shuffling the split's answers.

Rare things ride along as keys of the fine aggregation and are collected, not
summed: the reason a row does not count (`invalid_by_status`) and, under the
paper protocol, model values outside the scale (which get their own points).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from wvb_spark.core.schemas import HISTOGRAMS

PROTOCOLS = ("default", "paper")
OVERALL = "overall"  # the --group-by name meaning "everyone in one group"
OVERALL_VALUE = "all"
MISSING_VALUE = "(missing)"  # group value of respondents whose group column is null/unknown
KEYS = ["model", "question_id", "group_by", "group_value"]
JOINS = ("shuffle", "broadcast-predictions", "broadcast-answers")  # how predictions meet examples
MAX_QUESTIONS = 4096  # question index < this: (respondent, question) packs into one long key


def names(schema: T.StructType) -> list[str]:
    return [field.name for field in schema.fields]


def _finite(column: Column) -> Column:
    return column.isNotNull() & ~F.isnan(column) & (F.abs(column) != float("inf"))


def _missing_weight() -> Column:
    return ~_finite(F.col("respondent_weight")) | (F.col("respondent_weight") < 0)


def _answer_on_scale() -> Column:
    """A human answer (`human_value`) inside its question's scale."""
    return F.col("human_value").isNotNull() & F.col("human_value").between(F.col("scale_min"), F.col("scale_max"))


def _answer_index() -> Column:
    """The human answer's point index on its scale (answer − scale_min)."""
    return (F.col("human_value") - F.col("scale_min")).cast("int")


def _usable_distribution() -> Column:
    """A distribution with one probability per scale point, none negative, positive total."""
    distribution = F.col("distribution")
    total = F.aggregate(distribution, F.lit(0.0), lambda acc, x: acc + F.coalesce(x, F.lit(float("nan"))))
    return (
        distribution.isNotNull()
        & F.col("scale_min").isNotNull()
        & (F.size(distribution) == F.col("scale_max") - F.col("scale_min") + 1)
        & ~F.exists(distribution, lambda x: x.isNull() | F.isnan(x) | (x < 0))
        & (total > 0)
    )


def cell_groups(participants: DataFrame, group_columns: list[str]) -> DataFrame:
    """(cell, group_<column>...): one integer id per combination of group values present in
    participants (nulls included). The big aggregation keys on this one integer; the group
    values are joined back on the (small) aggregated cells."""
    combos = participants.select(*[F.col(c).alias(f"group_{c}") for c in group_columns]).distinct()
    order = [F.col(f"group_{c}").asc_nulls_first() for c in group_columns] or [F.lit(1)]
    return combos.select(
        F.row_number().over(Window.orderBy(*order)).cast("int").alias("cell"), *[f"group_{c}" for c in group_columns]
    )


def _respondent_cells(participants: DataFrame, cells: DataFrame, group_columns: list[str]) -> DataFrame:
    """(d_interview, respondent_weight, cell) for every participant."""
    same_cell = [F.col(f"p.{c}").eqNullSafe(F.col(f"c.group_{c}")) for c in group_columns]
    return (
        participants.alias("p")
        .join(F.broadcast(cells.alias("c")), on=same_cell or F.lit(True), how="left")
        .select(
            F.col("p.d_interview").alias("d_interview"),
            F.col("p.weight").alias("respondent_weight"),
            F.col("c.cell").alias("cell"),
        )
    )


def _indexed_questions(questions: DataFrame) -> DataFrame:
    """(question_id, scale_min, scale_max, question_index): a small integer per question
    (kept when `questions` already has one, e.g. built on the driver from the small table)."""
    if "question_index" in questions.columns:
        return questions.select("question_id", "scale_min", "scale_max", "question_index")
    return questions.select(
        "question_id",
        "scale_min",
        "scale_max",
        F.row_number().over(Window.orderBy("question_id")).alias("question_index"),
    )


def _pair_key() -> Column:
    """(respondent, question) as one long: a compact, fast join key (the question's index
    is below MAX_QUESTIONS; ANSI arithmetic fails loudly rather than wrap)."""
    return F.col("d_interview").cast("long") * F.lit(MAX_QUESTIONS) + F.col("question_index")


def pair_rows(
    predictions: DataFrame,
    examples: DataFrame,
    participants: DataFrame,
    questions: DataFrame,
    cells: DataFrame,
    *,
    protocol: str,
    weights: bool,
    group_columns: list[str],
    join: str = "shuffle",
) -> DataFrame:
    """One row per prediction row, with what it adds to each side.

    Columns: model, question_id, cell (null for a respondent not in participants),
    reason (why the row does not count; null if it counts), answered (1 when the
    respondent has an answer on the question's scale), human_index / model_index
    (answer − scale_min on the human / model side, null when that side gets nothing),
    mass (the respondent's weight, or 1), model_probs (a usable distribution,
    normalised and times mass), offscale_value (paper protocol: a truncated model
    value outside the scale), counted_model (1 when the row adds to the model side).

    `join` picks how predictions meet `examples` (same result, different cost):
    `broadcast-predictions` for a small prediction set (its keys are broadcast into
    examples, so the split's answers are not shuffled), `broadcast-answers` when the
    split's answers fit in memory (the predictions are not shuffled), `shuffle` otherwise.
    """
    rows = _joined_rows(predictions, examples, participants, questions, cells, group_columns, join)
    known_scale = F.col("scale_min").isNotNull()
    has_answer = known_scale & _answer_on_scale()
    mass = F.col("respondent_weight").cast("double") if weights else F.lit(1.0)
    point = F.col("score") - (F.col("score") % 1)  # truncation toward zero, kept as double
    on_scale = point.between(F.col("scale_min"), F.col("scale_max"))
    use_point, use_distribution, reason, in_human = _protocol_rules(protocol, weights, point, on_scale, has_answer)
    total = F.aggregate(F.col("distribution"), F.lit(0.0), lambda acc, x: acc + x)
    return rows.select(
        "model",
        "question_id",
        "cell",
        reason.cast("string").alias("reason"),
        F.when(has_answer, 1).otherwise(0).alias("answered"),
        F.when(in_human, _answer_index()).alias("human_index"),
        F.when(use_point & on_scale, (point - F.col("scale_min")).cast("int")).alias("model_index"),
        F.when(use_point & ~on_scale, point).alias("offscale_value"),
        mass.alias("mass"),
        F.when(use_distribution, F.transform(F.col("distribution"), lambda p: p / total * mass)).alias("model_probs"),
        F.when(use_point | use_distribution, 1).otherwise(0).alias("counted_model"),
    )


def _joined_rows(
    predictions: DataFrame,
    examples: DataFrame,
    participants: DataFrame,
    questions: DataFrame,
    cells: DataFrame,
    group_columns: list[str],
    join: str,
) -> DataFrame:
    """Prediction rows with their question's scale, the human answer and the respondent's
    cell and weight (see pair_rows for what `join` chooses)."""
    if join not in JOINS:
        raise ValueError(f"join must be one of {JOINS}, got {join!r}")
    indexed = F.broadcast(_indexed_questions(questions))
    preds = (
        predictions.select("model", "question_id", "d_interview", "score", "status", "distribution")
        .join(indexed, on="question_id", how="left")
        .withColumn("pair_key", _pair_key())
    )
    answers = (
        examples.select("question_id", "d_interview", F.col("answer").cast("double").alias("human_value"))
        .join(indexed.select("question_id", "question_index"), on="question_id", how="inner")
        .select(_pair_key().alias("pair_key"), "human_value")
    )
    if join == "broadcast-predictions":
        answers = F.broadcast(answers.join(F.broadcast(preds.select("pair_key")), on="pair_key", how="left_semi"))
    elif join == "broadcast-answers":
        answers = F.broadcast(answers)
    people = F.broadcast(_respondent_cells(participants, cells, group_columns))
    return preds.join(answers, on="pair_key", how="left").join(people, on="d_interview", how="left")


def _protocol_rules(protocol: str, weights: bool, point: Column, on_scale: Column, has_answer: Column):
    """(use_point, use_distribution, reason, in_human): which side a row adds to under the
    protocol, and why it does not count (reason, null when it does)."""
    known_scale = F.col("scale_min").isNotNull()
    has_score = _finite(F.col("score"))
    has_distribution = _usable_distribution()
    if protocol == "paper":
        # The published code: every listed respondent's answer; every numeric score truncated
        # toward zero, unchecked. A row with no number but a distribution uses the distribution.
        use_point = has_score & known_scale
        use_distribution = ~has_score & has_distribution
        reason = F.when(~(has_score | use_distribution), F.col("status"))
        in_human = has_answer
    else:
        use_distribution = has_distribution
        valid_score = ~has_distribution & (F.col("status") == "valid") & has_score & known_scale
        use_point = valid_score & on_scale
        reason = (
            F.when(F.col("distribution").isNotNull() & ~has_distribution & known_scale, F.lit("bad_distribution"))
            .when(valid_score & ~on_scale, F.lit("out_of_range"))  # a 'valid' score off the scale
            .when(~(use_point | use_distribution), F.col("status"))
            .when(~has_answer, F.lit("no_human_answer"))
        )
        if weights:
            reason = F.when(reason.isNull() & _missing_weight(), F.lit("missing_weight")).otherwise(reason)
        in_human = reason.isNull()
        use_point = use_point & in_human
        use_distribution = use_distribution & in_human

    return use_point, use_distribution, reason, in_human


def _point_sums(index: str, width: int, prefix: str, probs: str | None = None) -> list[Column]:
    """`prefix_j` = Σ mass of rows whose `index` is j (plus their `probs[j]`), j < width."""
    sums = []
    for j in range(width):
        value = F.when(F.col(index) == j, F.col("mass"))
        if probs is not None:
            value = value.otherwise(F.try_element_at(F.col(probs), F.lit(j + 1)))
        sums.append(F.sum(value).alias(f"{prefix}_{j}"))
    return sums


def _point_columns(prefix: str, width: int) -> list[str]:
    return [f"{prefix}_{j}" for j in range(width)]


def fine_cells(rows: DataFrame, width: int) -> DataFrame:
    """`pair_rows` summed per (model, question, cell, reason, offscale_value): counts and
    the fixed-width point sums of both sides. reason and offscale_value are almost always
    null, so keying on them adds few rows and keeps them exact."""
    return rows.groupBy("model", "question_id", "cell", "reason", "offscale_value").agg(
        F.count(F.lit(1)).alias("n_listed"),
        F.sum("answered").alias("n_answered"),
        F.count("human_index").alias("n_human"),
        F.sum("counted_model").alias("n_model"),
        F.sum(F.when(F.col("offscale_value").isNotNull(), F.col("mass"))).alias("offscale_mass"),
        *_point_sums("human_index", width, "human"),
        *_point_sums("model_index", width, "model", probs="model_probs"),
    )


def _group_value(column: str) -> Column:
    if column == OVERALL:
        return F.lit(OVERALL_VALUE)
    return F.coalesce(F.col(f"group_{column}").cast("string"), F.lit(MISSING_VALUE))


def into_groupings(
    fine: DataFrame, keys: list[str], cells: DataFrame, group_by: list[str], measures: list[str]
) -> DataFrame:
    """Sum `measures` of fine cells (keyed by `keys` + `cell`) into every grouping of
    `group_by`: each fine cell is repeated once per grouping it belongs to, with that
    grouping's (group_by, group_value), then summed: (keys, group_by, group_value, measures...)."""
    groupings = F.array(
        *[F.struct(F.lit(name).alias("group_by"), _group_value(name).alias("group_value")) for name in group_by]
    )
    return (
        fine.join(F.broadcast(cells), on="cell", how="left")
        .select(*keys, *measures, F.explode(groupings).alias("g"))
        .groupBy(*keys, "g.group_by", "g.group_value")
        .agg(*[F.sum(m).alias(m) for m in measures])
    )


def _summed_map(entries: str, key: str, amount: str) -> Column:
    """A list of (key, amount) structs with repeated keys -> map key -> Σ amount."""
    keys = F.array_sort(F.array_distinct(F.transform(F.col(entries), lambda e: e[key])))
    sums = F.transform(
        keys,
        lambda k: F.aggregate(
            F.filter(F.col(entries), lambda e: e[key] == k), F.lit(0.0), lambda acc, e: acc + e[amount]
        ),
    )
    return F.map_from_arrays(keys, sums)


def paired_groups(rows: DataFrame, cells: DataFrame, group_by: list[str], width: int) -> DataFrame:
    """Per (model, question, group): counts, both sides' point sums, and the lists of
    reasons and out-of-scale model values met there (`reasons`, `offscale`: (key, amount)
    entries, a key possibly repeated; see `_summed_map`).

    The sums into groupings keep reason and offscale_value as keys (a native hash
    aggregation); only the last, small aggregation per group gathers them into lists."""
    keys = ["model", "question_id", "reason", "offscale_value"]
    measures = (
        ["n_listed", "n_answered", "n_human", "n_model"]
        + _point_columns("human", width)
        + _point_columns("model", width)
    )
    by_group = into_groupings(fine_cells(rows, width), keys, cells, group_by, measures + ["offscale_mass"])
    return by_group.groupBy(*KEYS).agg(
        *[F.sum(m).alias(m) for m in measures],
        F.collect_list(
            F.when(
                F.col("reason").isNotNull(),
                F.struct(F.col("reason").alias("key"), F.col("n_listed").cast("double").alias("amount")),
            )
        ).alias("reasons"),
        F.collect_list(
            F.when(
                F.col("offscale_value").isNotNull(),
                F.struct(F.col("offscale_value").alias("key"), F.col("offscale_mass").alias("amount")),
            )
        ).alias("offscale"),
    )


def population_groups(
    examples: DataFrame,
    participants: DataFrame,
    questions: DataFrame,
    question_ids: list[str],
    cells: DataFrame,
    *,
    split: str,
    weights: bool,
    group_columns: list[str],
    group_by: list[str],
    width: int,
) -> DataFrame:
    """Human side of every respondent of `split` who answered one of `question_ids`:
    (question_id, group_by, group_value, n_human, human_0...). Respondents without a usable
    weight are left out of a weighted population."""
    people = F.broadcast(_respondent_cells(participants.where(F.col("split") == split), cells, group_columns))
    scales = F.broadcast(questions.select("question_id", "scale_min", "scale_max"))
    rows = (
        examples.where((F.col("split") == split) & F.col("question_id").isin(question_ids))
        .select("question_id", "d_interview", F.col("answer").cast("double").alias("human_value"))
        .join(scales, on="question_id", how="inner")
        .join(people, on="d_interview", how="inner")
        .where(_answer_on_scale())
    )
    if weights:
        rows = rows.where(~_missing_weight())
    rows = rows.select(
        "question_id",
        "cell",
        _answer_index().alias("human_index"),
        (F.col("respondent_weight").cast("double") if weights else F.lit(1.0)).alias("mass"),
    )
    fine = rows.groupBy("question_id", "cell").agg(
        F.count(F.lit(1)).alias("n_human"), *_point_sums("human_index", width, "human")
    )
    return into_groupings(fine, ["question_id"], cells, group_by, ["n_human"] + _point_columns("human", width))


def comparisons(
    groups: DataFrame, questions: DataFrame, *, protocol: str, width: int, human_population: DataFrame | None = None
) -> DataFrame:
    """Per listed (model, question, group): human and model histograms on common points.

    Points are the scale's integers; under the paper protocol they also include every
    out-of-scale (truncated) model value of that group, so nothing is clipped (a point
    with no mass on either side changes no distance). `n_answered` counts listed
    respondents with a human answer (the population size under `population`); groups
    where it is 0 are not scored (see `skipped_groups`). A group with answers but no
    usable prediction is scored with null distances.
    """
    scales = F.broadcast(questions.select("question_id", "scale_min", "scale_max"))
    joined = groups.join(scales, on="question_id", how="left")
    if human_population is not None:
        population = human_population.select(
            "question_id",
            "group_by",
            "group_value",
            F.col("n_human").alias("population_n"),
            *[F.col(c).alias(f"population_{c}") for c in _point_columns("human", width)],
        )
        joined = joined.join(population, on=["question_id", "group_by", "group_value"], how="left")
        human_prefix, n_human = "population_human", F.coalesce(F.col("population_n"), F.lit(0))
        n_answered = n_human
    else:
        human_prefix, n_human, n_answered = "human", F.col("n_human"), F.col("n_answered")

    known = F.col("scale_min").isNotNull() & F.col("scale_max").isNotNull()
    size = F.col("scale_max") - F.col("scale_min") + 1

    def on_scale(prefix: str) -> Column:
        columns = [F.coalesce(F.col(f"{prefix}_{j}"), F.lit(0.0)) for j in range(width)]
        return F.slice(F.array(*columns), 1, size)

    scale_points = F.transform(F.sequence(F.col("scale_min"), F.col("scale_max")), lambda v: v.cast("double"))
    human_counts, model_counts = on_scale(human_prefix), on_scale("model")
    if protocol == "paper":
        offscale = _summed_map("offscale", "key", "amount")
        points = F.array_sort(F.concat(scale_points, F.map_keys(offscale)))
        scale_map = F.map_from_arrays(scale_points, model_counts)
        every = F.map_concat(scale_map, offscale)
        human_map = F.map_from_arrays(scale_points, human_counts)
        model_counts = F.transform(points, lambda p: F.element_at(every, p))
        human_counts = F.transform(points, lambda p: F.coalesce(F.try_element_at(human_map, p), F.lit(0.0)))
    else:
        points = scale_points
    reasons = _summed_map("reasons", "key", "amount")
    return joined.select(
        *KEYS,
        "scale_min",
        "scale_max",
        F.when(known, points).alias("points"),
        F.when(known, human_counts).alias("human_counts"),
        F.when(known, n_human).otherwise(F.lit(0)).cast("long").alias("n_human"),
        F.when(known, model_counts).alias("model_counts"),
        F.col("n_model").cast("long").alias("n_model"),
        F.col("n_listed").cast("long").alias("n_listed"),
        F.aggregate(F.map_values(reasons), F.lit(0.0), lambda acc, x: acc + x).cast("long").alias("n_invalid"),
        F.transform_values(reasons, lambda _, v: v.cast("long")).alias("invalid_by_status"),
        n_answered.cast("long").alias("n_answered"),
    )


def skipped_groups(comparison_rows: DataFrame) -> DataFrame:
    """Listed (model, question, group) rows without any human answer: not scored."""
    return comparison_rows.where(F.col("n_answered") == 0).select(*KEYS, "n_listed", "n_invalid")


def scored_groups(comparison_rows: DataFrame) -> DataFrame:
    return comparison_rows.where(F.col("n_answered") > 0)


def histograms(comparison_rows: DataFrame) -> DataFrame:
    """The `histograms` table: one human and one model row per scored (model, question, group)."""

    def side(name: str) -> DataFrame:
        return comparison_rows.select(
            "model",
            F.lit(name).alias("side"),
            "question_id",
            "group_by",
            "group_value",
            "scale_min",
            "scale_max",
            "points",
            F.col(f"{name}_counts").alias("counts"),
            F.col(f"n_{name}").alias("n"),
        )

    return side("human").unionByName(side("model")).select(*names(HISTOGRAMS))
