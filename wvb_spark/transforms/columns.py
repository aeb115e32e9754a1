"""Column expressions two stages compute the same way (baselines and predictions turn a
distribution into one point with the same rule)."""

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
