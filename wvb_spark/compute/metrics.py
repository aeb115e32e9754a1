"""Distances between answer histograms, their bootstrap intervals and the noise floor.

Pure numpy, no Spark: `wvb evaluate` calls these inside pandas UDFs on batches of
histograms, and tests call them directly. Every function works on the last axis
of its arrays, so one call handles a whole batch of (question, group) rows.

A histogram is a vector of counts (or weight sums) over *points*: the answer
values it counts, ascending. Points are normalised to [0, 1] by
(x - scale_min) / (scale_max - scale_min); a point outside the scale (possible
under the paper protocol, which does not range-check model scores) simply maps
outside [0, 1]. W1 is then Σ_k |P(k) - Q(k)| · (x_{k+1} - x_k), with P, Q the two
CDFs — exactly `scipy.stats.wasserstein_distance` on the normalised samples,
without sorting any sample.
"""

from __future__ import annotations

import hashlib

import numpy as np

DEFAULT_THRESHOLDS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)


def normalised_steps(points, scale_min, scale_max) -> np.ndarray:
    """Gaps between consecutive points on the [0, 1] scale: shape (..., K - 1).

    `points` is (..., K); scale_min/scale_max broadcast against its leading axes.
    """
    points = np.asarray(points, dtype=float)
    width = np.asarray(scale_max, dtype=float) - np.asarray(scale_min, dtype=float)
    return np.diff(points, axis=-1) / np.expand_dims(width, -1)


def probabilities(counts) -> np.ndarray:
    """Counts divided by their total along the last axis; NaN rows where the total is 0."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts / np.where(total > 0, total, 1.0), np.nan)


def wasserstein_1(p, q, steps) -> np.ndarray:
    """W1 between histograms p and q (any scale; normalised here) over points with gaps `steps`."""
    cdf_gap = np.abs(np.cumsum(probabilities(p), axis=-1) - np.cumsum(probabilities(q), axis=-1))
    return np.sum(cdf_gap[..., :-1] * np.asarray(steps, dtype=float), axis=-1)


def jensen_shannon(p, q) -> np.ndarray:
    """Jensen–Shannon *distance* (square root of the divergence), base 2, in [0, 1]."""
    p, q = probabilities(p), probabilities(q)
    m = (p + q) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0) / np.where(p > 0, m, 1.0)), 0.0)
        right = np.where(q > 0, q * np.log2(np.where(q > 0, q, 1.0) / np.where(q > 0, m, 1.0)), 0.0)
    divergence = (left.sum(axis=-1) + right.sum(axis=-1)) / 2.0
    invalid = np.isnan(p).any(axis=-1) | np.isnan(q).any(axis=-1)
    return np.where(invalid, np.nan, np.sqrt(np.clip(divergence, 0.0, None)))


def total_variation(p, q) -> np.ndarray:
    """½ Σ |p - q| on the two probability vectors."""
    return 0.5 * np.sum(np.abs(probabilities(p) - probabilities(q)), axis=-1)


def row_seed(seed: int, *keys) -> np.random.SeedSequence:
    """A seed from the run seed and keys, e.g. (model, question, grouping).

    `wvb evaluate` seeds each (model, question, grouping) batch of rows this way, so its
    replicates do not depend on how Spark batches rows or on which other groupings
    were requested.
    """
    digest = hashlib.sha256("\x1f".join(str(key) for key in keys).encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *words])


POISSON_MIN_N = 100  # samples of at least this many respondents use the Poisson bootstrap


def resample_cdfs(counts, n, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Empirical CDFs of `draws` bootstrap resamples per row: shape (R, draws, K).

    Row r resamples n[r] respondents from the proportions of counts[r] (R x K):

    * n < POISSON_MIN_N: the classic bootstrap, a multinomial of exactly n draws. Instead
      of a multinomial per row, the cumulative counts are drawn top-down for all rows and
      replicates at once: C_K = n and C_k ~ Binomial(C_{k+1}, F_k / F_{k+1}) — the same
      joint law as a multinomial's cumulative counts, in K - 1 vectorised calls (a ratio
      of exactly 0 or 1 needs no draw).
    * n >= POISSON_MIN_N: the Poisson bootstrap — each respondent counted Poisson(1)
      times, so point k's count is Poisson(n p_k), independently. Given its total N*
      (Poisson(n)) a replicate *is* a multinomial of N* draws; the normalised histogram's
      variance is that of n draws times E[n / N*] ~ 1 + 1/n, under 1% here. A Poisson
      draw costs a third of a binomial one with a varying n, and these rows dominate
      the cost of evaluating full splits.
    """
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    n = np.broadcast_to(np.asarray(n, dtype=np.int64), counts.shape[:1])
    rows, points = counts.shape
    total = counts.sum(axis=1, keepdims=True)
    shares = counts / np.where(total > 0, total, 1.0)
    cdfs = np.empty((rows, int(draws), points))
    large = n >= POISSON_MIN_N
    if large.any():
        resampled = np.cumsum(
            rng.poisson(
                shares[large][:, None, :] * n[large][:, None, None], size=(int(large.sum()), int(draws), points)
            ),
            axis=2,
        )
        cdfs[large] = resampled / np.maximum(resampled[:, :, -1:], 1)
    if not large.all():
        small = ~large
        cdf = np.cumsum(shares[small], axis=1)
        cumulative = np.empty((int(small.sum()), int(draws), points), dtype=np.int64)
        cumulative[:, :, points - 1] = n[small][:, None]
        for k in range(points - 2, -1, -1):
            upper = cdf[:, k + 1]
            ratio = np.clip(np.where(upper > 0, cdf[:, k] / np.where(upper > 0, upper, 1.0), 0.0), 0.0, 1.0)
            # Binomial(c, 1) = c and Binomial(c, 0) = 0: rows whose point k + 1 (or every point
            # up to k) is empty need no draw. Small groups leave many points empty.
            whole, empty = ratio >= 1.0, ratio <= 0.0
            drawn = ~(whole | empty)
            if drawn.all():
                cumulative[:, :, k] = rng.binomial(cumulative[:, :, k + 1], ratio[:, None])
                continue
            cumulative[whole, :, k] = cumulative[whole, :, k + 1]
            cumulative[empty, :, k] = 0
            if drawn.any():
                cumulative[drawn, :, k] = rng.binomial(cumulative[drawn, :, k + 1], ratio[drawn, None])
        cdfs[small] = cumulative / np.maximum(n[small], 1)[:, None, None].astype(float)
    return cdfs


def _w1_of_cdfs(first, second, steps) -> np.ndarray:
    """W1 between CDF arrays (R, D, K) over gaps `steps` (R, K - 1): shape (R, D)."""
    return np.einsum("rdk,rk->rd", np.abs(first[..., :-1] - second[..., :-1]), np.asarray(steps, dtype=float))


def bootstrap_batch(
    human_counts, human_n, model_counts, model_n, steps, replicates: int, noise_draws: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap W1 replicates and the noise floor of a batch of (question, group) rows.

    All rows share one set of points (K); arrays are (R, K), sizes (R,), steps (R, K - 1).
    Replicate b resamples both histograms (`resample_cdfs`: the observed number of
    respondents / pairs from the observed — possibly weighted — proportions) and
    takes their W1. The noise floor is the mean W1 between two independent samples
    of sizes n_human and n_model drawn from the human histogram — what a perfect
    model would score. It reuses the human replicates as the first sample (they
    are exactly such samples); when n_model == n_human the second sample of draw
    b is human replicate b + 1, otherwise fresh draws of size n_model.
    Returns (W1 replicates (R, replicates), noise floors (R,)).
    """
    human_counts = np.atleast_2d(np.asarray(human_counts, dtype=float))
    model_counts = np.atleast_2d(np.asarray(model_counts, dtype=float))
    rows = human_counts.shape[0]
    human_n = np.broadcast_to(np.asarray(human_n, dtype=np.int64), (rows,))
    model_n = np.broadcast_to(np.asarray(model_n, dtype=np.int64), (rows,))
    steps = np.atleast_2d(np.asarray(steps, dtype=float))
    draws = max(int(replicates), int(noise_draws))
    humans = resample_cdfs(human_counts, human_n, draws, rng)
    if replicates > 0:
        models = resample_cdfs(model_counts, model_n, replicates, rng)
        w1_replicates = _w1_of_cdfs(humans[:, :replicates], models, steps)
    else:
        w1_replicates = np.empty((rows, 0))
    if draws < 2:
        return w1_replicates, np.full(rows, np.nan)
    second = np.roll(humans, -1, axis=1)
    fresh = np.flatnonzero(model_n != human_n)
    if fresh.size:
        second[fresh] = resample_cdfs(human_counts[fresh], model_n[fresh], draws, rng)
    noise_floor = _w1_of_cdfs(humans, second, steps).mean(axis=1)
    return w1_replicates, noise_floor


def percentile_intervals(replicates, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap intervals of each row of `replicates` (R, B): (low (R,), high (R,))."""
    replicates = np.atleast_2d(np.asarray(replicates, dtype=float))
    if replicates.shape[1] == 0:
        return np.full(replicates.shape[0], np.nan), np.full(replicates.shape[0], np.nan)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail], axis=1)
    return low, high


def threshold_bins(w1_values, thresholds=DEFAULT_THRESHOLDS) -> np.ndarray:
    """For each W1, how many thresholds are <= it (uint8). W1 < thresholds[j] iff bin <= j.

    A compact stand-in for a question's replicates in the headline-share bootstrap.
    """
    thresholds = np.asarray(thresholds, dtype=float)
    if len(thresholds) > 255:
        raise ValueError("at most 255 thresholds")
    return np.searchsorted(thresholds, np.asarray(w1_values, dtype=float), side="right").astype(np.uint8)


def share_below(w1_values, thresholds=DEFAULT_THRESHOLDS) -> np.ndarray:
    """% of the W1 values strictly below each threshold (NaN when there are none)."""
    w1_values = np.asarray(w1_values, dtype=float)
    if w1_values.size == 0:
        return np.full(len(thresholds), np.nan)
    return 100.0 * (w1_values[:, None] < np.asarray(thresholds, dtype=float)[None, :]).mean(axis=0)


def share_below_replicates(bins, n_thresholds: int) -> np.ndarray:
    """From per-question replicate bins (questions x replicates), the % of questions
    below each threshold in each replicate: shape (replicates, n_thresholds)."""
    bins = np.asarray(bins)
    below = bins[:, :, None] <= np.arange(n_thresholds)[None, None, :]
    return 100.0 * below.mean(axis=0)
