"""Column expressions more than one stage computes the same way: a distribution's single
point (baselines, predictions), a seeded uniform draw (simulate-model, the bench's
generated predictions), a row's position in its file (build, predictions import)."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

# Cumulative sums of float shares may fall a hair short of 1/2.
MEDIAN_TOLERANCE = 1e-9


def median_point(distribution: Column, scale_min: Column) -> Column:
    """The lower median of a distribution on scale_min..: the smallest point whose
    cumulative probability reaches 1/2. It is always an integer on the scale and is
    the single answer with the smallest expected distance to a draw from the
    distribution; for a one-hot distribution it is the mode."""
    cumulative = F.transform(
        distribution, lambda _, i: F.aggregate(F.slice(distribution, 1, i + 1), F.lit(0.0), lambda acc, p: acc + p)
    )
    below_half = F.size(F.filter(cumulative, lambda c: c < F.lit(0.5 - MEDIAN_TOLERANCE)))
    return (scale_min + below_half).cast("double")


def seeded_uniform(seed: int, salt: str, keys: list[str], buckets: int = 1_000_000) -> Column:
    """A pseudo-random number in (0, 1) per row, fixed by the seed, the salt and the row's
    `keys` (the same on any cluster and partitioning): the middle of one of `buckets`
    equal bins chosen by a hash."""
    bucket = F.pmod(F.xxhash64(F.lit(seed), F.lit(salt), *keys), F.lit(buckets))
    return (bucket + F.lit(0.5)) / F.lit(float(buckets))


# monotonically_increasing_id() is (partition << 33) + position inside the partition, and
# a file scan is deterministic: per-partition row counts (a few numbers, collected) turn
# it into exact consecutive positions without a global sort.
PARTITION_SHIFT = 33


def scan_offsets(counts: dict[int, int]) -> dict[int, int]:
    """partition -> how many rows the partitions before it hold."""
    offsets, total = {}, 0
    for partition in sorted(counts):
        offsets[partition] = total
        total += counts[partition]
    return offsets


def scan_position(row_id: int, offsets: dict[int, int]) -> int:
    """The 1-based position in the file of the row with this monotonically_increasing_id."""
    return offsets[row_id >> PARTITION_SHIFT] + (row_id & ((1 << PARTITION_SHIFT) - 1)) + 1


def scan_position_column(row_id: Column, offsets: dict[int, int]) -> Column:
    """scan_position as a column (null when the file has no rows)."""
    if not offsets:
        return F.lit(None).cast("long")
    offset = F.create_map(
        *[item for p, o in offsets.items() for item in (F.lit(p).cast("long"), F.lit(o).cast("long"))]
    )[F.shiftright(row_id, PARTITION_SHIFT)]
    within = row_id.bitwiseAND(F.lit((1 << PARTITION_SHIFT) - 1))
    return (offset + within + 1).cast("long")
