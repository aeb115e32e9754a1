"""Generated model predictions for `wvb bench --stages evaluate`.

Timing `wvb evaluate` at the sizes the issue names (8 models x the probe set, up to
10 models x the whole test split) needs prediction tables of those sizes without
running any model. This module writes them into an existing warehouse (built with
`wvb build` and `wvb probe`) as the `predictions` table, partitioned by model:

* `probe-00` .. `probe-NN`: one prediction per row of the `probe` table;
* `full-00` .. `full-NN`: one prediction per answered (question, respondent) of the
  test split in `examples` (~3.2M rows each at the published size).

Each model is a noisy copy of the human answer, so the distances are realistic
rather than 0 or 1: with a model-specific probability the respondent's own answer,
otherwise a uniform draw on the scale, and a model-specific share (0.5–3%) of
unusable rows (prose, status non_numeric). Every draw is a hash of (seed, model,
question, respondent): the same arguments always give the same table.

    python -m wvb_spark.benchmarks.data --warehouse DIR --probe-models 8 --full-models 10
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from wvb_spark.core import schemas
from wvb_spark.transforms.columns import seeded_uniform


def _uniform(seed: int, salt: str) -> F.Column:
    """A seeded pseudo-random number in (0, 1) per (model, question, respondent)."""
    return seeded_uniform(seed, salt, ["model", "question_id", "d_interview"], buckets=1_000_003)


def model_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:02d}" for i in range(count)]


def noisy_predictions(targets: DataFrame, questions: DataFrame, models: list[str], *, seed: int) -> DataFrame:
    """targets(question_id, d_interview, answer) x models -> rows of the `predictions` table.

    Model i keeps the human answer with probability 0.3 + 0.6 * i / (len(models) - 1 or 1)
    and spoils 0.5% + 2.5% * (i mod 3) / 2 of its rows.
    """
    spark = targets.sparkSession
    denominator = max(len(models) - 1, 1)
    model_rows = [(name, 0.3 + 0.6 * i / denominator, 0.005 + 0.0125 * (i % 3)) for i, name in enumerate(models)]
    model_frame = spark.createDataFrame(model_rows, "model string, keep double, spoil double")
    scales = questions.select("question_id", "scale_min", "scale_max").where(F.col("scale_min").isNotNull())
    rows = (
        targets.select("question_id", "d_interview", "answer")
        .join(F.broadcast(scales), on="question_id", how="inner")
        .crossJoin(F.broadcast(model_frame))
    )
    width = F.col("scale_max") - F.col("scale_min") + 1
    drawn = F.col("scale_min") + F.floor(_uniform(seed, "draw") * width).cast("int")
    point = F.when(_uniform(seed, "keep") < F.col("keep"), F.col("answer")).otherwise(drawn)
    spoiled = _uniform(seed, "spoil") < F.col("spoil")
    return rows.select(
        "model",
        "question_id",
        F.col("d_interview").cast("long"),
        F.when(spoiled, F.lit("I cannot say")).otherwise(point.cast("string")).alias("raw_score"),
        F.when(spoiled, F.lit(None).cast("double")).otherwise(point.cast("double")).alias("score"),
        F.when(spoiled, F.lit("non_numeric")).otherwise(F.lit("valid")).alias("status"),
        F.lit(None).cast(T.ArrayType(T.DoubleType())).alias("distribution"),
        F.lit("bench").alias("parse_method"),
        F.lit("wvb_spark.benchmarks.data").alias("source"),
        F.lit(None).cast("double").alias("off_scale_mass"),
        F.lit(None).cast("int").alias("n_samples"),
        F.lit(None).cast("int").alias("n_unusable"),
    ).select(*schemas.columns(schemas.PREDICTIONS))


def bench_predictions(
    examples: DataFrame,
    probe: DataFrame,
    questions: DataFrame,
    *,
    probe_models: int,
    full_models: int,
    split: str = "test",
    seed: int = 0,
) -> DataFrame:
    """The whole generated `predictions` table: probe-size models and full-split models."""
    answers = examples.select("question_id", "d_interview", "answer", "split")
    probe_targets = (
        probe.select("question_id", "d_interview")
        .distinct()
        .join(answers.drop("split"), on=["question_id", "d_interview"], how="inner")
    )
    full_targets = answers.where(F.col("split") == split).drop("split")
    return noisy_predictions(probe_targets, questions, model_names("probe", probe_models), seed=seed).unionByName(
        noisy_predictions(full_targets, questions, model_names("full", full_models), seed=seed)
    )


def main(argv: list[str] | None = None) -> int:
    from wvb_spark.core import config as wvb_config
    from wvb_spark.core.session import get_spark
    from wvb_spark.core.warehouse import Warehouse

    parser = argparse.ArgumentParser(prog="python -m wvb_spark.benchmarks.data", description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True, help="warehouse with questions, examples and probe tables")
    parser.add_argument("--probe-models", type=int, default=8, help="models predicting the probe set (default 8)")
    parser.add_argument("--full-models", type=int, default=10, help="models predicting the whole split (default 10)")
    parser.add_argument("--split", default="test", help="split of the full-size models (default test)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--conf", metavar="YAML")
    args = parser.parse_args(argv)
    config = wvb_config.load(args.conf, args.overrides)
    spark = get_spark(config)
    warehouse = Warehouse(spark, args.warehouse, config)
    tables = {name: warehouse.read(name) for name in ("examples", "probe", "questions")}
    predictions = bench_predictions(
        tables["examples"],
        tables["probe"],
        tables["questions"],
        probe_models=args.probe_models,
        full_models=args.full_models,
        split=args.split,
        seed=args.seed,
    )
    version = warehouse.write(
        "predictions",
        predictions,
        stage="wvb_spark.benchmarks.data",
        options={
            "seed": args.seed,
            "probe_models": args.probe_models,
            "full_models": args.full_models,
            "split": args.split,
        },
        sort_within=("question_id",),
    )
    print(
        f"wrote {args.warehouse}/predictions v{version}: {args.probe_models} probe-size and "
        f"{args.full_models} {args.split}-split models, seed {args.seed}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
