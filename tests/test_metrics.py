"""wvb_spark.compute.metrics against independent computations (scipy, by hand, exact binomial sums)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import binom, wasserstein_distance

from wvb_spark.compute import metrics


def _histogram(sample, points):
    return np.array([np.sum(np.asarray(sample) == p) for p in points], dtype=float)


@pytest.mark.parametrize("scale", [(1, 2), (1, 4), (1, 10), (0, 5)])
def test_w1_equals_scipy_on_normalised_samples(scale):
    low, high = scale
    rng = np.random.default_rng(low * 100 + high)
    points = np.arange(low, high + 1, dtype=float)
    for _ in range(25):
        human = rng.integers(low, high + 1, size=rng.integers(1, 60))
        model = rng.integers(low, high + 1, size=rng.integers(1, 60))
        expected = wasserstein_distance((human - low) / (high - low), (model - low) / (high - low))
        got = metrics.wasserstein_1(
            _histogram(human, points), _histogram(model, points), metrics.normalised_steps(points, low, high)
        )
        assert got == pytest.approx(expected, abs=1e-12)


def test_w1_on_a_support_wider_than_the_scale_equals_scipy():
    # model values outside [1, 4] (not clipped): points are the union of observed values
    human = np.array([1, 2, 2, 3, 4, 4])
    model = np.array([0, 2, 9, 4, 4, -3, 12])
    points = np.unique(np.concatenate([np.arange(1, 5), human, model])).astype(float)
    expected = wasserstein_distance((human - 1) / 3, (model - 1) / 3)
    got = metrics.wasserstein_1(
        _histogram(human, points), _histogram(model, points), metrics.normalised_steps(points, 1, 4)
    )
    assert got == pytest.approx(expected, abs=1e-12)


def test_w1_of_a_batch_equals_row_by_row_and_weighted_counts_equal_scipy_weights():
    rng = np.random.default_rng(3)
    points = np.arange(1, 6, dtype=float)
    human = rng.random((7, 5)) * 10
    model = rng.random((7, 5)) * 10
    model[2, 1:] = 0  # a point mass
    steps = metrics.normalised_steps(np.tile(points, (7, 1)), np.full(7, 1), np.full(7, 5))
    batch = metrics.wasserstein_1(human, model, steps)
    for i in range(7):
        normalised = (points - 1) / 4
        expected = wasserstein_distance(normalised, normalised, human[i], model[i])
        assert batch[i] == pytest.approx(expected, abs=1e-12)


def test_jsd_equals_scipy_base_2_and_tv_by_hand():
    rng = np.random.default_rng(11)
    for size in (2, 4, 10):
        for _ in range(20):
            p = rng.integers(0, 6, size=size).astype(float)
            q = rng.integers(0, 6, size=size).astype(float)
            p[0] += 1  # never empty
            q[-1] += 1
            assert metrics.jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
            tv = 0.0
            for a, b in zip(p / p.sum(), q / q.sum()):
                tv += abs(a - b)
            assert metrics.total_variation(p, q) == pytest.approx(tv / 2, abs=1e-12)
    # disjoint supports: JSD distance 1 (base 2), TV 1; identical: 0
    assert metrics.jensen_shannon([1, 0], [0, 3]) == pytest.approx(1.0)
    assert metrics.total_variation([1, 0], [0, 3]) == pytest.approx(1.0)
    assert metrics.jensen_shannon([2, 2], [5, 5]) == pytest.approx(0.0)


def test_empty_histogram_gives_nan_not_an_error():
    steps = metrics.normalised_steps(np.arange(1, 4), 1, 3)
    assert np.isnan(metrics.wasserstein_1([0, 0, 0], [1, 2, 3], steps))
    assert np.isnan(metrics.jensen_shannon([0, 0, 0], [1, 2, 3]))
    assert np.isnan(metrics.total_variation([1, 2, 3], [0, 0, 0]))


def _bootstrap_row(human_counts, human_n, model_counts, model_n, steps, replicates, noise_draws, rng):
    """metrics.bootstrap_batch for one row: (W1 replicates, noise floor)."""
    w1_replicates, noise_floor = metrics.bootstrap_batch(
        np.asarray(human_counts, dtype=float)[None, :],
        [int(human_n)],
        np.asarray(model_counts, dtype=float)[None, :],
        [int(model_n)],
        np.asarray(steps, dtype=float)[None, :],
        replicates,
        noise_draws,
        rng,
    )
    return w1_replicates[0], float(noise_floor[0])


def _bootstrap(human, model, seed, replicates=400, noise_draws=200):
    points = np.arange(1, len(human) + 1)
    steps = metrics.normalised_steps(points, 1, len(human))
    rng = np.random.default_rng(metrics.row_seed(seed, "m", "Q1", "overall", "all"))
    return _bootstrap_row(
        np.asarray(human, float),
        int(np.sum(human)),
        np.asarray(model, float),
        int(np.sum(model)),
        steps,
        replicates,
        noise_draws,
        rng,
    )


def test_bootstrap_interval_contains_the_estimate_and_is_reproducible_by_seed():
    human = [30, 20, 10, 40]
    model = [5, 15, 50, 30]
    steps = metrics.normalised_steps(np.arange(1, 5), 1, 4)
    estimate = metrics.wasserstein_1(human, model, steps)
    replicates, noise = _bootstrap(human, model, seed=0)
    (low,), (high,) = metrics.percentile_intervals(replicates[None, :])
    assert low < estimate < high
    again, noise_again = _bootstrap(human, model, seed=0)
    np.testing.assert_array_equal(replicates, again)
    assert noise == noise_again
    other, _ = _bootstrap(human, model, seed=1)
    assert not np.array_equal(replicates, other)
    # percentile interval = numpy quantiles of the replicates
    assert (low, high) == pytest.approx(tuple(np.quantile(replicates, [0.025, 0.975])))


def test_bootstrap_interval_narrows_with_more_respondents():
    small, _ = _bootstrap([3, 2, 1, 4], [1, 2, 5, 2], seed=0)
    large, _ = _bootstrap([300, 200, 100, 400], [100, 200, 500, 200], seed=0)
    width = lambda r: np.subtract(*reversed(metrics.percentile_intervals(r[None, :])))[0]  # noqa: E731
    assert width(large) < width(small) / 3


def _exact_noise_floor(probabilities, n1, n2, scale_width):
    """E[W1] between two independent samples (sizes n1, n2) of a distribution: by linearity,
    Σ_k gap · E|X_k/n1 - Y_k/n2| with X_k ~ Bin(n1, F_k), Y_k ~ Bin(n2, F_k) (the CDF counts)."""
    cdf = np.cumsum(probabilities)[:-1]
    total = 0.0
    for f in cdf:
        x = np.arange(n1 + 1)
        y = np.arange(n2 + 1)
        joint = np.outer(binom.pmf(x, n1, f), binom.pmf(y, n2, f))
        total += np.sum(joint * np.abs(x[:, None] / n1 - y[None, :] / n2)) / scale_width
    return total


@pytest.mark.parametrize("n_human, n_model", [(25, 25), (25, 60), (400, 400), (400, 150)])
def test_noise_floor_matches_the_exact_expectation(n_human, n_model):
    """Both resampling schemes: multinomial (n < POISSON_MIN_N) and Poisson (n >= it)."""
    human = np.array([5.0, 10.0, 3.0, 7.0])
    points = np.arange(1, 5)
    steps = metrics.normalised_steps(points, 1, 4)
    rng = np.random.default_rng(metrics.row_seed(5, "noise", n_human, n_model))
    _, noise = _bootstrap_row(human, n_human, human, n_model, steps, 0, 20000, rng)
    expected = _exact_noise_floor(human / human.sum(), n_human, n_model, 3)
    assert noise == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("n", [40, metrics.POISSON_MIN_N, 2000])
def test_resampled_cdfs_have_the_multinomial_mean_and_variance(n):
    """Each resampled CDF value F*(k) has mean F(k) and variance F(k)(1 - F(k)) / n, as a
    multinomial bootstrap of n respondents (the Poisson scheme within its 1 + 1/n)."""
    shares = np.array([0.1, 0.45, 0.05, 0.4])
    rng = np.random.default_rng(11)
    draws = 40_000
    cdfs = metrics.resample_cdfs(shares[None, :] * 7.0, [n], draws, rng)[0]
    cdf = np.cumsum(shares)
    variance = cdf * (1 - cdf) / n
    np.testing.assert_allclose(cdfs[:, -1], 1.0)
    standard_error = np.sqrt(variance[:-1] / draws)
    assert np.all(np.abs(cdfs.mean(axis=0)[:-1] - cdf[:-1]) <= 4 * standard_error)
    np.testing.assert_allclose(cdfs.var(axis=0)[:-1], variance[:-1], rtol=0.04)


def test_small_resamples_with_empty_points_follow_the_multinomial_law():
    """Rows of one batch with empty points in different places (first, middle, last, none):
    every outcome's frequency matches scipy's multinomial pmf, and empty points stay empty."""
    from scipy.stats import chisquare, multinomial

    counts = np.array([[0.0, 2.0, 0.0, 2.0], [1.0, 1.0, 2.0, 0.0], [0.0, 0.0, 3.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    n = 3  # fewer respondents than observed: still a multinomial of n draws from the shares
    draws = 30_000
    cdfs = metrics.resample_cdfs(counts, [n] * len(counts), draws, np.random.default_rng(4))
    outcomes = np.rint(np.diff(np.concatenate([np.zeros((*cdfs.shape[:2], 1)), cdfs * n], axis=2), axis=2))
    for row, observed in zip(counts, outcomes):
        shares = row / row.sum()
        assert np.all(observed[:, shares == 0] == 0)
        values, frequency = np.unique(observed, axis=0, return_counts=True)
        expected = multinomial.pmf(values, n, shares) * draws
        assert expected.sum() == pytest.approx(draws)  # every possible outcome occurred
        assert chisquare(frequency, expected).pvalue > 0.001


def test_noise_floor_of_a_large_identical_sample_is_small_and_decreases_with_n():
    shape = np.array([0.1, 0.2, 0.4, 0.2, 0.1])
    floors = []
    for n in (50, 500, 5000):
        counts = shape * n
        _, noise = _bootstrap(counts, counts, seed=0, replicates=200)
        floors.append(noise)
    assert floors[0] > floors[1] > floors[2]
    assert floors[2] < 0.02


def test_threshold_bins_and_replicate_shares_equal_direct_counts():
    thresholds = [0.0, 0.1, 0.2, 0.3]
    rng = np.random.default_rng(2)
    w1 = rng.random((6, 50)) * 0.4  # 6 questions x 50 replicates
    w1[0, 0] = 0.2  # exactly on a threshold: not below it
    bins = np.stack([metrics.threshold_bins(row, thresholds) for row in w1])
    shares = metrics.share_below_replicates(bins, len(thresholds))
    for b in range(50):
        for j, tau in enumerate(thresholds):
            assert shares[b, j] == pytest.approx(100 * np.mean(w1[:, b] < tau))
    assert list(metrics.share_below([0.05, 0.2, 0.3], thresholds)) == pytest.approx([0, 100 / 3, 100 / 3, 200 / 3])
    assert np.all(np.isnan(metrics.share_below([], thresholds)))
