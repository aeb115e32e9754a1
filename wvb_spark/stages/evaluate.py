"""`wvb evaluate`: model vs human answer histograms, their distances, and the headline summary.

The pipeline, all inside Spark:

1. `wvb_spark.transforms.histograms`: one native pass over the prediction rows (joined to
   `examples` and `participants`) sums both sides' answers per (model, question,
   fine group) into fixed-width point columns; the fine groups are summed into
   each `--group-by` grouping and laid out as histogram pairs (`comparisons`);
2. one `applyInPandas` per (model, bucket of questions) computes, question by question,
   W1, JSD, TV, the bootstrap interval and the noise floor for all groups with numpy
   (wvb_spark.compute.metrics); batching questions keeps the number of Python calls small;
3. one `applyInPandas` per (model, grouping) turns the per-question results and their
   bootstrap replicates into the share of questions below each threshold, group by group.

Protocols (see README: evaluate): `paper` reproduces the published evaluation;
`default` drops a pair from both sides when its prediction is not usable.
"""

from __future__ import annotations

import argparse
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from wvb_spark.compute import metrics
from wvb_spark.core.config import split_list
from wvb_spark.core.errors import ConflictError, InputError
from wvb_spark.core.schemas import DISTANCES, SUMMARY
from wvb_spark.core.stage import Result
from wvb_spark.core.storage import new_run_id
from wvb_spark.transforms import histograms as hist
from wvb_spark.transforms.histograms import KEYS, OVERALL
from wvb_spark.transforms.histograms import names as _names
from wvb_spark.transforms.selection import check_group_columns

log = logging.getLogger(__name__)

PROTOCOLS = hist.PROTOCOLS
POPULATIONS = ("paired", "population")
RESERVED_COLUMNS = ("d_interview", "split", "weight", "question_id", "model")
QUESTION_BUCKETS = 16  # distance batches per model: few Python calls, still parallel
MAX_SCALE_POINTS = 100  # the histograms are fixed-width columns, one per scale point

# What the distance UDF returns (before the status map is joined back).
_DISTANCE_UDF_OUTPUT = T.StructType(
    [
        f
        for f in DISTANCES.fields
        if f.name not in ("representativeness", "within_noise_floor", "invalid_rate", "invalid_by_status")
    ]
    + [T.StructField("replicate_bins", T.BinaryType(), True)]
)


# --------------------------------------------------------------------------- options

SETTINGS = "evaluate"
OPTIONS = ("models", "protocol", "population", "split", "weights", "bootstrap", "seed", "group_by")


def add_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    parser.add_argument("--warehouse", required=True, metavar="DIR", help="warehouse root (tables at DIR/<table>)")
    parser.add_argument(
        "--models", metavar="A,B", help="comma list of models to score (default: every model in predictions)"
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        help="paper: the published evaluation exactly; default: drop unusable pairs from both sides "
        f"(default: {defaults['protocol']})",
    )
    parser.add_argument(
        "--population",
        choices=POPULATIONS,
        help="human side: the respondents the model answered (paired) "
        f"or every respondent of the split in the group (population) (default: {defaults['population']})",
    )
    parser.add_argument(
        "--split",
        help="split of the human population for --population population "
        "(default: the split most predicted respondents are in)",
    )
    parser.add_argument(
        "--weights",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="weight respondents by W_WEIGHT (participants.weight); not with --protocol paper "
        f"(default: {'on' if defaults['weights'] else 'off'})",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        metavar="B",
        help=f"bootstrap replicates (default: {defaults['bootstrap']}; 0 disables)",
    )
    parser.add_argument("--seed", type=int, help=f"bootstrap seed (default: {defaults['seed']})")
    parser.add_argument(
        "--group-by",
        dest="group_by",
        metavar="COLS",
        help=f"comma list of participants columns, 'overall' = everyone (default: {','.join(defaults['group_by'])})",
    )


def resolve_settings(config: dict) -> dict:
    """The `evaluate:` block, typed and checked."""
    block = config["evaluate"]
    settings: dict[str, Any] = {
        "models": split_list(block.get("models")),
        "protocol": str(block["protocol"]),
        "population": str(block["population"]),
        "split": block["split"] or None,
        "weights": bool(block["weights"]),
        "bootstrap": int(block["bootstrap"]),
        "seed": int(block["seed"]),
        "group_by": split_list(block["group_by"]),
        "thresholds": [float(t) for t in block["thresholds"]],
        "headline_threshold": float(block["headline_threshold"]),
        "noise_floor_draws": int(block["noise_floor_draws"]),
        "confidence": float(block["confidence"]),
        "join": str(block["join"]),
        "broadcast_prediction_rows": int(block["broadcast_prediction_rows"]),
        "broadcast_answer_rows": int(block["broadcast_answer_rows"]),
        "small_run_java_options": str(block["small_run_java_options"] or ""),
        "small_run_shuffle_partitions": int(block["small_run_shuffle_partitions"] or 0),
    }
    if not settings["group_by"]:
        raise InputError("--group-by needs at least one grouping (overall or a participants column)")
    if settings["protocol"] not in PROTOCOLS:
        raise InputError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {settings['protocol']!r}")
    if settings["population"] not in POPULATIONS:
        raise InputError(f"--population must be one of {', '.join(POPULATIONS)}, got {settings['population']!r}")
    if settings["protocol"] == "paper" and settings["weights"]:
        raise InputError("--weights is not part of the paper protocol (equal weights); use --protocol default")
    if settings["bootstrap"] < 0:
        raise InputError(f"--bootstrap must be 0 or more, got {settings['bootstrap']}")
    if len(set(settings["group_by"])) != len(settings["group_by"]):
        raise InputError(f"--group-by names a column twice: {','.join(settings['group_by'])}")
    thresholds = settings["thresholds"]
    if not thresholds or sorted(thresholds) != thresholds or len(thresholds) > 255:
        raise InputError("evaluate.thresholds must be 1 to 255 ascending numbers")
    if settings["join"] not in ("auto",) + hist.JOINS:
        raise InputError(f"evaluate.join must be auto or one of {', '.join(hist.JOINS)}, got {settings['join']!r}")
    if settings["small_run_shuffle_partitions"] < 0:
        raise InputError("evaluate.small_run_shuffle_partitions must be 0 (one per core) or more")
    if not 0 < settings["confidence"] < 1:
        raise InputError(f"evaluate.confidence must be between 0 and 1, got {settings['confidence']}")
    return settings


# --------------------------------------------------------------------------- distances


def _on_common_points(pdf: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points (K,), human (R, K), model (R, K)) for rows of one question.

    Under the paper protocol a group's points include its own out-of-scale model values,
    so rows may differ: their counts are laid on the union (a zero-mass point changes no
    distance)."""
    points = [np.asarray(p, dtype=float) for p in pdf["points"]]
    union = np.unique(np.concatenate(points))
    if all(len(p) == len(union) for p in points):
        return (
            union,
            np.stack([np.asarray(c, dtype=float) for c in pdf["human_counts"]]),
            np.stack([np.asarray(c, dtype=float) for c in pdf["model_counts"]]),
        )
    human = np.zeros((len(points), len(union)))
    model = np.zeros((len(points), len(union)))
    for row, (own, human_counts, model_counts) in enumerate(zip(points, pdf["human_counts"], pdf["model_counts"])):
        at = np.searchsorted(union, own)
        human[row, at] = human_counts
        model[row, at] = model_counts
    return union, human, model


def _distance_buckets(pdf: pd.DataFrame, **settings) -> pd.DataFrame:
    """`_distance_batch` for each question of a batch holding several."""
    parts = [_distance_batch(part, **settings) for _, part in pdf.groupby("question_id", sort=True)]
    return pd.concat(parts, ignore_index=True) if parts else pdf.iloc[0:0][_names(_DISTANCE_UDF_OUTPUT)]


def _distance_batch(
    pdf: pd.DataFrame, *, bootstrap: int, seed: int, noise_draws: int, thresholds: list[float], confidence: float
) -> pd.DataFrame:
    """All groups of one (model, question), vectorised: point estimates for every row, and
    one bootstrap call per grouping (seeded by model, question and grouping)."""
    pdf = pdf.sort_values(["group_by", "group_value"]).reset_index(drop=True)
    points, human, model = _on_common_points(pdf)
    first = pdf.iloc[0]
    steps = np.broadcast_to(
        metrics.normalised_steps(points, first["scale_min"], first["scale_max"]), (len(pdf), len(points) - 1)
    )
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
    for grouping in dict.fromkeys(group_by[scored]):
        rows = np.flatnonzero(scored & (group_by == grouping))
        rng = np.random.default_rng(metrics.row_seed(seed, first["model"], first["question_id"], grouping))
        replicates, noise_floor[rows] = metrics.bootstrap_batch(
            human[rows], n_human[rows], model[rows], n_model[rows], steps[rows], bootstrap, noise_draws, rng
        )
        if bootstrap > 0:
            ci_low[rows], ci_high[rows] = metrics.percentile_intervals(replicates, confidence)
            row_bins = metrics.threshold_bins(replicates, thresholds)
            bins[rows] = [row.tobytes() for row in row_bins]
    out = pdf[["model", "question_id", "group_by", "group_value", "n_human", "n_model", "n_listed", "n_invalid"]].copy()
    out["w1"], out["w1_ci_low"], out["w1_ci_high"] = w1, ci_low, ci_high
    out["jsd"], out["tv"], out["noise_floor"] = jsd, tv, noise_floor
    out["replicate_bins"] = bins
    return out[_names(_DISTANCE_UDF_OUTPUT)]


def distances_with_replicates(
    comparison_rows: DataFrame,
    *,
    bootstrap: int,
    seed: int,
    noise_draws: int,
    thresholds: list[float],
    confidence: float = 0.95,
) -> DataFrame:
    """The `distances` columns plus `replicate_bins` (per bootstrap replicate, how many
    thresholds the replicate's W1 reaches), which `summary` needs for its interval."""
    settings = dict(
        bootstrap=bootstrap, seed=seed, noise_draws=noise_draws, thresholds=list(thresholds), confidence=confidence
    )
    scored = hist.scored_groups(comparison_rows)
    # An explicit partition count: adaptive execution would merge these partitions (small in
    # bytes) into one or two tasks, leaving cores idle during the CPU-heavy bootstrap.
    tasks = int(cast(str, comparison_rows.sparkSession.conf.get("spark.sql.shuffle.partitions")))
    computed = (
        scored.select(
            *KEYS,
            "scale_min",
            "scale_max",
            "points",
            "human_counts",
            "n_human",
            "model_counts",
            "n_model",
            "n_listed",
            "n_invalid",
            F.pmod(F.xxhash64("question_id"), F.lit(QUESTION_BUCKETS)).alias("bucket"),
        )
        .repartition(tasks, "model", "bucket")
        .groupBy("model", "bucket")
        .applyInPandas(
            lambda pdf: _distance_buckets(pdf.drop(columns="bucket"), **settings), schema=_DISTANCE_UDF_OUTPUT
        )
    )
    statuses = scored.select(*KEYS, "invalid_by_status")
    result = computed.join(statuses, on=KEYS, how="inner")
    return result.select(
        *KEYS,
        "n_human",
        "n_model",
        "n_listed",
        "n_invalid",
        "w1",
        "w1_ci_low",
        "w1_ci_high",
        "jsd",
        "tv",
        (1.0 - F.col("w1")).alias("representativeness"),
        "noise_floor",
        (F.col("w1") <= F.col("noise_floor")).alias("within_noise_floor"),
        F.when(F.col("n_listed") > 0, F.col("n_invalid") / F.col("n_listed")).alias("invalid_rate"),
        "invalid_by_status",
        "replicate_bins",
    )


def distances(distance_rows: DataFrame) -> DataFrame:
    """The `distances` table columns."""
    return distance_rows.select(*_names(DISTANCES))


def _summary_groups(pdf: pd.DataFrame, *, thresholds: list[float], confidence: float) -> pd.DataFrame:
    """Every group of one (model, grouping) in one Python call: numpy slices of the rows
    sorted by group, no DataFrame per group."""
    pdf = pdf.sort_values(["group_value", "question_id"], kind="stable")
    values = pdf["group_value"].to_numpy()
    w1 = pdf["w1"].to_numpy(dtype=float)
    listed = pdf["n_listed"].to_numpy(dtype=float)
    invalid = pdf["n_invalid"].to_numpy(dtype=float)
    bins = pdf["replicate_bins"].to_numpy()
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if len(values) else np.empty(0, int)
    ends = np.r_[starts[1:], len(values)]
    count = len(thresholds)
    columns: dict[str, list[np.ndarray]] = {
        name: [] for name in ("pct_questions_below", "ci_low", "ci_high", "mean_w1", "invalid_rate", "n_questions")
    }
    for start, end in zip(starts, ends):
        group = slice(start, end)
        has_w1 = ~np.isnan(w1[group])
        group_w1 = w1[group][has_w1]
        columns["pct_questions_below"].append(metrics.share_below(group_w1, thresholds))
        group_bins = bins[group][has_w1]
        if len(group_bins) and all(b is not None for b in group_bins):
            stacked = np.stack([np.frombuffer(b, dtype=np.uint8) for b in group_bins])
            low, high = metrics.percentile_intervals(metrics.share_below_replicates(stacked, count).T, confidence)
        else:
            low, high = np.full(count, np.nan), np.full(count, np.nan)
        columns["ci_low"].append(low)
        columns["ci_high"].append(high)
        columns["mean_w1"].append(np.full(count, group_w1.mean() if len(group_w1) else np.nan))
        total = listed[group].sum()
        columns["invalid_rate"].append(np.full(count, invalid[group].sum() / total if total > 0 else np.nan))
        columns["n_questions"].append(np.full(count, len(group_w1), dtype=np.int64))
    if not len(starts):
        return pd.DataFrame(columns=_names(SUMMARY))
    first = pdf.iloc[0]
    return pd.DataFrame(
        {
            "model": first["model"],
            "group_by": first["group_by"],
            "group_value": np.repeat(values[starts], count),
            "threshold": np.tile(np.asarray(thresholds, dtype=float), len(starts)),
            **{name: np.concatenate(parts) for name, parts in columns.items()},
        }
    )[_names(SUMMARY)]


def summary(distance_rows: DataFrame, *, thresholds: list[float], confidence: float = 0.95) -> DataFrame:
    """Per (model, group): % of questions with W1 < τ for each τ (strict), with a percentile
    interval over bootstrap replicates (replicate b counts each question's replicate b)."""
    settings: dict[str, Any] = dict(thresholds=list(thresholds), confidence=confidence)
    return (
        distance_rows.select(
            "model", "question_id", "group_by", "group_value", "w1", "n_listed", "n_invalid", "replicate_bins"
        )
        .groupBy("model", "group_by")
        .applyInPandas(lambda pdf: _summary_groups(pdf, **settings), schema=SUMMARY)
        .select(*_names(SUMMARY))
    )


# --------------------------------------------------------------------------- command


def predicted_coverage(predictions: DataFrame, participants: DataFrame) -> tuple[dict[str, int], list[str]]:
    """(split -> prediction rows whose respondent is in it, predicted question ids), in one
    small aggregation: the splits prune `examples`, the questions prune the population."""
    people = F.broadcast(participants.select("d_interview", "split"))
    counts = (
        predictions.select("question_id", "d_interview")
        .join(people, on="d_interview", how="left")
        .groupBy("split", "question_id")
        .count()
        .collect()
    )
    splits: dict[str, int] = {}
    for row in counts:
        if row["split"] is not None:
            splits[row["split"]] = splits.get(row["split"], 0) + int(row["count"])
    return splits, sorted({row["question_id"] for row in counts if row["question_id"] is not None})


def indexed_questions(spark, questions: DataFrame) -> tuple[DataFrame, int]:
    """(questions with a `question_index`, as a local relation; the widest scale's points).

    The questions table is small (a few hundred rows): reading it once on the driver saves
    Spark jobs later, and gives the width of the fixed point columns."""
    rows = sorted(questions.select("question_id", "scale_min", "scale_max").collect(), key=lambda r: r["question_id"])
    if len(rows) >= hist.MAX_QUESTIONS:
        raise InputError(f"the questions table has {len(rows)} rows; evaluate handles fewer than {hist.MAX_QUESTIONS}")
    widths = [
        r["scale_max"] - r["scale_min"] + 1 for r in rows if r["scale_min"] is not None and r["scale_max"] is not None
    ]
    widest = max(widths, default=1)
    if widest > MAX_SCALE_POINTS:
        raise InputError(f"a question's scale has {widest} points; evaluate handles up to {MAX_SCALE_POINTS}")
    indexed = spark.createDataFrame(
        [(r["question_id"], r["scale_min"], r["scale_max"], i + 1) for i, r in enumerate(rows)],
        "question_id string, scale_min int, scale_max int, question_index int",
    )
    return indexed, max(int(widest), 1)


def run_settings(spark, small_run: bool, partitions: int = 0) -> dict[str, str]:
    """The SQL settings of an evaluate run.

    * Parquet gets the predicted questions as a list of equalities (up to MAX_QUESTIONS)
      rather than Spark's default min-max range above 10 values, so the pages of other
      questions in `examples` (sorted by question inside its files) are skipped: a probe
      reads about a quarter of its split.
    * A small run (a probe) shuffles into `partitions` partitions (0 = one per core) that
      adaptive execution does not coalesce: coalesced, each small stage would become one
      task on one core while the others wait.
    """
    from wvb_spark.core.session import default_parallelism

    wanted = {"spark.sql.parquet.pushdown.inFilterThreshold": str(hist.MAX_QUESTIONS)}
    if small_run:
        wanted["spark.sql.shuffle.partitions"] = str(partitions or default_parallelism(spark))
        wanted["spark.sql.adaptive.coalescePartitions.enabled"] = "false"
    return wanted


def choose_join(settings: dict, prediction_rows: int | None, answer_rows: int | None) -> str:
    """How predictions meet examples: the setting, or by size (row counts from the Delta
    log; None = unknown): broadcast whichever side is small enough, else shuffle both."""
    if settings["join"] != "auto":
        return settings["join"]
    if prediction_rows is not None and prediction_rows <= settings["broadcast_prediction_rows"]:
        return "broadcast-predictions"
    if answer_rows is not None and answer_rows <= settings["broadcast_answer_rows"]:
        return "broadcast-answers"
    return "shuffle"


def headline_table(summary_rows: list, threshold: float) -> str:
    """The printed headline: one line per model (overall group, τ = threshold); the model
    column as wide as the longest name, so the columns stay aligned."""
    cells = []
    for row in sorted(summary_rows, key=lambda r: r["model"]):
        pct = "-" if row["pct_questions_below"] is None else f"{row['pct_questions_below']:.1f}"
        ci = "-" if row["ci_low"] is None else f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}]"
        mean = "-" if row["mean_w1"] is None else f"{row['mean_w1']:.3f}"
        invalid = "-" if row["invalid_rate"] is None else f"{100 * row['invalid_rate']:.1f}%"
        cells.append((str(row["model"]), pct, ci, mean, invalid, str(row["n_questions"])))
    width = max([len("model")] + [len(c[0]) for c in cells])
    header = ("model", "% W1<" + format(threshold, "g"), "95% CI", "mean W1", "invalid", "questions")
    widths = (width, 9, 17, 8, 8, 9)
    return "\n".join(
        " ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
        for line in [header, *cells]
    )


def run(args, config: dict) -> Result:
    from wvb_spark.core.session import get_spark, temporary_settings
    from wvb_spark.core.warehouse import Warehouse

    settings = resolve_settings(config)
    warehouse = args.warehouse
    offline_view = Warehouse(None, warehouse, config)
    offline_view.require("predictions", "examples", "participants", "questions")
    # rows per model from the Delta log (no Spark needed): a small run starts its JVM tuned for it
    predicted_rows = offline_view.partition_rows("predictions", "model") or {}
    wanted = settings["models"] or list(predicted_rows)
    small_run = (
        bool(wanted)
        and all(m in predicted_rows for m in wanted)
        and (sum(predicted_rows[m] for m in wanted) <= settings["broadcast_prediction_rows"])
    )
    spark = get_spark(config, extra_java_options=settings["small_run_java_options"] if small_run else "")
    with temporary_settings(spark, run_settings(spark, small_run, settings["small_run_shuffle_partitions"])):
        return _score(spark, Warehouse(spark, warehouse, config), settings, predicted_rows)


def _chosen_models(tables, settings: dict) -> list[str]:
    """The models to score: --models, or every model in predictions (from the Delta log's
    partition values, not the data)."""
    partitions = tables.partition_values("predictions", "model")
    if partitions is None:  # not partitioned by model: scan
        partitions = [row["model"] for row in tables.read("predictions").select("model").distinct().collect()]
    available = sorted(m for m in partitions if m is not None)
    if not available:
        raise InputError(f"the predictions table in {tables.root} is empty")
    models = settings["models"] or available
    unknown = [m for m in models if m not in available]
    if unknown:
        raise InputError(f"unknown model(s) {', '.join(unknown)}; predictions has: {', '.join(available)}")
    return models


def _population_split(settings: dict, splits: dict[str, int], participants: DataFrame) -> str | None:
    """The split of the human population (--population population): --split, else the
    split most predicted respondents are in; None for paired runs."""
    if settings["population"] != "population":
        return None
    split = settings["split"]
    if split is None:
        if not splits:
            raise InputError("no predicted respondent is in participants; give --split")
        split = max(sorted(splits), key=lambda s: splits[s])
    known_splits = {row["split"] for row in participants.select("split").distinct().collect()}
    if split not in known_splits:
        raise InputError(f"--split {split!r} is not a split of participants ({', '.join(sorted(known_splits))})")
    return split


def _score(spark, tables, settings: dict, predicted_rows: dict[str, int]) -> Result:
    """Everything of `wvb evaluate` after the session: choose, compare, write, report."""
    participants = tables.read("participants")
    models = _chosen_models(tables, settings)
    group_by = settings["group_by"]
    check_group_columns(participants, group_by, RESERVED_COLUMNS, also=(OVERALL,))
    predictions = tables.read("predictions").where(F.col("model").isin(models))
    splits, question_ids = predicted_coverage(predictions, participants)
    split = _population_split(settings, splits, participants)
    answer_rows = tables.partition_rows("examples", "split") or {}
    join = choose_join(
        settings,
        sum(predicted_rows[m] for m in models) if all(m in predicted_rows for m in models) else None,
        sum(answer_rows[s] for s in splits) if all(s in answer_rows for s in splits) else None,
    )
    recorded = {
        "protocol": settings["protocol"],
        "population": settings["population"],
        "split": split,
        "weights": settings["weights"],
        "bootstrap": settings["bootstrap"],
        "seed": settings["seed"],
        "group_by": group_by,
        "models": models,
        "thresholds": settings["thresholds"],
        "noise_floor_draws": settings["noise_floor_draws"],
        "confidence": settings["confidence"],
    }
    log.info(
        f"{len(models)} model(s), protocol {settings['protocol']}, "
        f"population {settings['population']}{' (' + split + ')' if split else ''}, "
        f"weights {'on' if settings['weights'] else 'off'}, bootstrap {settings['bootstrap']}, "
        f"seed {settings['seed']}, group-by {','.join(group_by)}"
    )
    cells = hist.cell_groups(participants, [c for c in group_by if c != OVERALL]).cache()
    comparison_rows = _comparison_rows(
        spark, tables, settings, predictions, participants, cells, splits, question_ids, split, join
    ).persist(StorageLevel.MEMORY_AND_DISK)
    skipped = hist.skipped_groups(comparison_rows).count()
    # --models replaces only those models' partitions; without it, the tables are rewritten
    # (results of models no longer in predictions go).
    replace = {"model": models} if settings["models"] else None
    result, summary_rows = _write_tables(tables, settings, comparison_rows, recorded, replace)
    headline_group = OVERALL if OVERALL in group_by else group_by[0]
    headline = (
        summary_rows.where(
            (F.col("group_by") == headline_group) & (F.abs(F.col("threshold") - settings["headline_threshold"]) < 1e-9)
        )
        .orderBy("model", "group_value")
        .collect()
    )
    for frame in (summary_rows, comparison_rows, cells):
        frame.unpersist()
    result.say(
        f"wvb evaluate: {result.counts['scored']} (model, question, group) rows scored; {skipped} skipped "
        f"(no human answers); tables histograms v{result.tables['histograms']}, "
        f"distances v{result.tables['distances']}, summary v{result.tables['summary']} in {tables.root}"
    )
    result.say(
        f"headline ({headline_group}, W1 < {settings['headline_threshold']:g}, "
        f"{int(round(100 * settings['confidence']))}% bootstrap CI):"
    )
    result.say(headline_table([row.asDict() for row in headline], settings["headline_threshold"]))
    return result


def _comparison_rows(
    spark,
    tables,
    settings: dict,
    predictions: DataFrame,
    participants: DataFrame,
    cells: DataFrame,
    splits: dict[str, int],
    question_ids: list[str],
    split: str | None,
    join: str,
) -> DataFrame:
    """One row per (model, question, group): the model's and the humans' histograms."""
    examples = tables.read("examples")
    group_by = settings["group_by"]
    group_columns = [c for c in group_by if c != OVERALL]
    # partition pruning on split, page skipping on question_id (see run_settings)
    paired_examples = examples.where(F.col("split").isin(sorted(splits)) & F.col("question_id").isin(question_ids))
    questions, width = indexed_questions(spark, tables.read("questions"))
    rows = hist.pair_rows(
        predictions,
        paired_examples,
        participants,
        questions,
        cells,
        protocol=settings["protocol"],
        weights=settings["weights"],
        group_columns=group_columns,
        join=join,
    )
    groups = hist.paired_groups(rows, cells, group_by, width)
    human_population = None
    if split is not None:
        human_population = hist.population_groups(
            examples,
            participants,
            questions,
            question_ids,
            cells,
            split=split,
            weights=settings["weights"],
            group_columns=group_columns,
            group_by=group_by,
            width=width,
        )
    return hist.comparisons(
        groups, questions, protocol=settings["protocol"], width=width, human_population=human_population
    )


def _write_tables(
    tables, settings: dict, comparison_rows: DataFrame, recorded: dict, replace: dict | None
) -> tuple[Result, DataFrame]:
    """histograms, distances and summary, written under one run id; the summary rows
    stay cached for the headline."""
    run_id = new_run_id()
    result = Result()

    def write(name: str, frame, expected_rows: int | None = None) -> int:
        return tables.write(
            name,
            frame,
            stage="wvb evaluate",
            options=recorded,
            replace=replace,
            expected_rows=expected_rows,
            run_id=run_id,
        )

    # The histograms write is small jobs waiting on each other; run it beside the
    # distances (CPU-bound Python) instead of before them. The commits land in one fixed
    # order (histograms, distances, summary), so two runs at once meet at the first
    # table, where one is refused before it has committed anything.
    with ThreadPoolExecutor(max_workers=1) as background:
        histogram_write = background.submit(write, "histograms", hist.histograms(hist.scored_groups(comparison_rows)))
        distance_rows = distances_with_replicates(
            comparison_rows,
            bootstrap=settings["bootstrap"],
            seed=settings["seed"],
            noise_draws=settings["noise_floor_draws"],
            thresholds=settings["thresholds"],
            confidence=settings["confidence"],
        ).persist(StorageLevel.MEMORY_AND_DISK)
        result.counts["scored"] = distance_rows.count()
        summary_rows = summary(
            distance_rows, thresholds=settings["thresholds"], confidence=settings["confidence"]
        ).persist(StorageLevel.MEMORY_AND_DISK)
        summary_count = summary_rows.count()
        result.tables["histograms"] = histogram_write.result()
    _check_still_standing(tables, result.tables, replace, ("distances", "summary"))
    result.tables["distances"] = write("distances", distances(distance_rows), result.counts["scored"])
    _check_still_standing(tables, result.tables, replace, ("summary",))
    result.tables["summary"] = write("summary", summary_rows, summary_count)
    distance_rows.unpersist()
    return result, summary_rows


def _check_still_standing(tables, written: dict[str, int], replace: dict | None, unwritten: tuple) -> None:
    """Refuse to go on once another run has rewritten a table this run committed: the
    three tables then come from that run, never from two."""
    for name, version in written.items():
        other = tables.overwritten_since(name, version, replace)
        if other is not None:
            raise ConflictError(
                f"{tables.location(name)} was changed by another writer ({other}) after this run "
                f"committed version {version}; this run stopped before writing {' and '.join(unwritten)} "
                f"- rerun when it has finished"
            )
