"""`wvb simulate-model`: a model-output file from a predictor with a known bias.

The demo needs a non-baseline row whose result can be predicted: for each target
(question, respondent) it draws an answer from a baseline's distribution (default
`group-prior`), moves it `--shift` points toward the top of the scale (clipped at
the top), and spoils a small share of rows the way real model outputs are spoiled
(blank, prose, out of range). It writes the published TSV format, to be imported
with `wvb predictions import` like any user file.
"""

from __future__ import annotations

import argparse

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from wvb_spark.core.errors import InputError, MissingTableError
from wvb_spark.core.session import get_spark
from wvb_spark.core.stage import Result
from wvb_spark.core.text_files import write_single_text_file
from wvb_spark.core.warehouse import Warehouse
from wvb_spark.transforms.columns import seeded_uniform

HEADER = "QUESTION_ID\tPARTICIPANT_ID\tSCORE"


def biased_answers(source: DataFrame, questions: DataFrame, *, shift: int, spoil_rate: float, seed: int) -> DataFrame:
    """source(question_id, d_interview, distribution) -> (question_id, d_interview, score text).

    The draw: the smallest scale point whose cumulative probability exceeds u. Spoiled
    rows (share `spoil_rate`, split evenly): empty score, the text "I cannot say", or
    scale_max + 2.
    """
    draw = seeded_uniform(seed, "draw", ["question_id", "d_interview"])
    spoil = seeded_uniform(seed, "spoil", ["question_id", "d_interview"])
    cumulative = F.transform(
        "distribution", lambda _, i: F.aggregate(F.slice("distribution", 1, i + 1), F.lit(0.0), lambda acc, p: acc + p)
    )
    scales = questions.select("question_id", "scale_min", "scale_max")
    drawn = (
        source.select("question_id", "d_interview", "distribution")
        .join(F.broadcast(scales), on="question_id", how="inner")
        .withColumn("_point", F.col("scale_min") + F.size(F.filter(cumulative, lambda c: c <= draw)))
        .withColumn("_answer", F.least(F.col("_point") + F.lit(shift), F.col("scale_max")))
    )
    score = (
        F.when(spoil < spoil_rate / 3, F.lit(""))
        .when(spoil < 2 * spoil_rate / 3, F.lit("I cannot say"))
        .when(spoil < spoil_rate, (F.col("scale_max") + 2).cast("string"))
        .otherwise(F.col("_answer").cast("string"))
    )
    return drawn.select("question_id", "d_interview", score.alias("score"))


SETTINGS = None
OPTIONS = ()


def add_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    parser.add_argument("--warehouse", required=True, metavar="DIR", help="warehouse with predictions of --from-model")
    parser.add_argument(
        "--out", required=True, metavar="FILE", help="TSV to write (QUESTION_ID, PARTICIPANT_ID, SCORE)"
    )
    parser.add_argument(
        "--from-model", default="group-prior", help="baseline whose distributions are drawn from (default: %(default)s)"
    )
    parser.add_argument(
        "--shift",
        type=int,
        default=1,
        help="points added to every drawn answer, clipped at the scale's top (default: %(default)s)",
    )
    parser.add_argument(
        "--spoil-rate",
        type=float,
        default=0.03,
        help="share of rows made blank, prose or out of range (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws (default: %(default)s)")


def run(args: argparse.Namespace, config: dict) -> Result:
    if not 0 <= args.spoil_rate <= 1:
        raise InputError("--spoil-rate must be between 0 and 1")
    Warehouse(None, args.warehouse, config).require("predictions", "questions")
    spark = get_spark(config)
    tables = Warehouse(spark, args.warehouse, config)
    predictions = tables.read("predictions")
    source = predictions.where((F.col("model") == args.from_model) & F.col("distribution").isNotNull())
    if source.limit(1).count() == 0:
        raise MissingTableError(
            f"no distributions of model {args.from_model!r} in {args.warehouse}/predictions; run `wvb baselines` first"
        )
    questions = tables.read("questions")
    answers = biased_answers(source, questions, shift=args.shift, spoil_rate=args.spoil_rate, seed=args.seed)
    rows = answers.select(
        F.lit(1).alias("_order"),
        "question_id",
        "d_interview",
        F.concat_ws("\t", "question_id", F.col("d_interview").cast("string"), "score").alias("value"),
    )
    header = spark.createDataFrame(
        [(0, "", 0, HEADER)], "_order int, question_id string, d_interview long, value string"
    )
    lines = header.unionByName(rows).orderBy("_order", "question_id", "d_interview").select("value")
    write_single_text_file(spark, lines, args.out)
    return Result(
        lines=[
            f"wrote {args.out}: draws from {args.from_model} shifted +{args.shift}, "
            f"{args.spoil_rate:.0%} spoiled, seed {args.seed}"
        ]
    )
