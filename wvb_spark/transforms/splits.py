"""Train / test / valid assignment of respondents.

`paper` reproduces the published split exactly (it depends on the respondents'
order in the file, so it changes when the file changes); `hash` derives the split
from d_interview alone, so a respondent keeps its split when the file grows.
"""

from __future__ import annotations

import random

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from wvb_spark.core.errors import InputError

SPLITS = ("train", "test", "valid")


def check_ratios(ratios) -> tuple[float, float, float]:
    values = tuple(float(r) for r in ratios)
    if len(values) != 3 or any(r < 0 for r in values) or abs(sum(values) - 1.0) > 1e-9:
        raise InputError(f"split ratios must be three non-negative numbers summing to 1, got {list(ratios)}")
    return values


def paper_split_labels(n: int, seed: int = 0, ratios=(0.7, 0.15, 0.15)) -> list[str]:
    """Split label of the respondent at each file position 0..n-1, as the published code
    assigns them: shuffle the positions with random.Random(seed), the first int(0.7n) are
    train, the next int(0.15n) test, the rest valid."""
    train_ratio, test_ratio, _ = check_ratios(ratios)
    positions = list(range(n))
    random.Random(seed).shuffle(positions)
    n_train, n_test = int(train_ratio * n), int(test_ratio * n)
    labels = [""] * n
    for rank, position in enumerate(positions):
        labels[position] = "train" if rank < n_train else "test" if rank < n_train + n_test else "valid"
    return labels


def assign_paper_split(spark: SparkSession, participants: DataFrame, n: int, seed: int, ratios) -> DataFrame:
    """Add `split` by file position (order of source_row) among the accepted respondents.
    Positions are numbered on the narrow (source_row) column alone, then joined back with
    the position -> label lookup (n small rows, broadcast)."""
    labels = spark.createDataFrame(list(enumerate(paper_split_labels(n, seed, ratios))), "position long, split string")
    positions = participants.select("source_row").withColumn(
        "position", F.row_number().over(Window.orderBy("source_row")).cast("long") - 1
    )
    by_row = positions.join(F.broadcast(labels), on="position", how="inner").select("source_row", "split")
    return participants.join(F.broadcast(by_row), on="source_row", how="inner").select(*participants.columns, "split")


def assign_hash_split(participants: DataFrame, salt: str, ratios) -> DataFrame:
    """Add `split` from a salted hash of d_interview: stable for a respondent across files."""
    train_ratio, test_ratio, _ = check_ratios(ratios)
    bucket = F.pmod(F.xxhash64(F.lit(salt), F.col("d_interview")), F.lit(1_000_000)) / F.lit(1_000_000.0)
    split = F.when(bucket < train_ratio, "train").when(bucket < train_ratio + test_ratio, "test").otherwise("valid")
    return participants.select(*participants.columns, split.alias("split"))
