"""Tests that `wvb synth` reproduces the real WVS-7 country marginals.

One full-size file (94,728 respondents, the size the bound is stated for) is
generated once for the module and read back with pandas; every expected value
is worked out here from the shipped aggregates CSV and the metadata JSON files,
read directly — the W1 distances with scipy, never with the package's metrics.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

from wvb_spark.stages.synth import write_synthetic_wvs

N = 94_728
SEED = 7
W1_BOUND = 0.03
RESOURCES = resources.files("wvb_spark").joinpath("resources")
QUESTIONS = json.loads(RESOURCES.joinpath("question_metadata.json").read_text(encoding="utf-8"))
ADJUSTMENT = json.loads(RESOURCES.joinpath("answer_adjustment.json").read_text(encoding="utf-8"))
CODEBOOK = json.loads(RESOURCES.joinpath("codebook.json").read_text(encoding="utf-8"))
VALUE = [q for q, entry in QUESTIONS.items() if entry["use_case"] == "value"]
# Codebook country labels that the aggregates spell differently.
ALIASES = {"Hong Kong SAR PRC": "Hong Kong SAR", "Macau SAR": "Macao SAR", "Macao": "Macao SAR"}


def _scale(qid: str) -> np.ndarray:
    entry = QUESTIONS[qid]
    return np.arange(int(entry["answer_scale_min"]), int(entry["answer_scale_max"]) + 1)


def _adjusted(qid: str, code: int) -> int | None:
    """A raw code after answer_adjustment.json (None: treated as missing)."""
    target = ADJUSTMENT.get(qid, {}).get(str(code), str(code))
    return None if target == "" else int(target)


@pytest.fixture(scope="module")
def aggregates() -> pd.DataFrame:
    return pd.read_csv(RESOURCES.joinpath("wvs7_country_distributions.csv"))


@pytest.fixture(scope="module")
def published(aggregates) -> dict[tuple[str, str], np.ndarray]:
    """(country, question) -> published shares over the question's scale points after adjustment."""
    out = {}
    for (country, qid), rows in aggregates.groupby(["country", "qid"]):
        points = _scale(qid)
        shares = np.zeros(len(points))
        for code, share in zip(rows["answer_code"], rows["share"]):
            value = _adjusted(qid, int(code))
            if value is not None:
                shares[value - points[0]] += share
        out[(country, qid)] = shares / shares.sum()
    return out


@pytest.fixture(scope="module")
def full_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth_full") / "wvs.csv"
    summary = write_synthetic_wvs(path, respondents=N, seed=SEED)
    frame = pd.read_csv(path, usecols=["B_COUNTRY", "B_COUNTRY_ALPHA", "C_COW_ALPHA", "S025"] + VALUE, engine="pyarrow")
    labels = CODEBOOK["B_COUNTRY"]["choices"]
    frame["country"] = frame["B_COUNTRY"].astype(str).map(labels).map(lambda name: ALIASES.get(name, name))
    return summary, frame


@pytest.fixture(scope="module")
def synthetic(full_file) -> dict[tuple[str, str], np.ndarray]:
    """(country, question) -> synthetic answers after adjustment (the country's answered cells)."""
    _, frame = full_file
    out = {}
    for qid in VALUE:
        mapping = {int(k): v for k, v in ADJUSTMENT.get(qid, {}).items()}
        raw = frame[qid].to_numpy()
        keep = (raw >= 0) & ~np.isin(raw, [k for k, v in mapping.items() if v == ""])
        adjusted = np.array([int(mapping.get(r, r)) for r in raw[keep]]) if mapping else raw[keep]
        for country, answers in pd.Series(adjusted).groupby(frame["country"].to_numpy()[keep]):
            out[(country, qid)] = answers.to_numpy()
    return out


def _w1(qid: str, answers: np.ndarray, shares: np.ndarray) -> float:
    """W1 between synthetic answers and published shares on the [0, 1]-normalised scale."""
    points = _scale(qid)
    normalised = (points - points[0]) / (points[-1] - points[0])
    counts = np.array([(answers == p).sum() for p in points], dtype=float)
    return wasserstein_distance(normalised, normalised, u_weights=counts, v_weights=shares)


def test_sampled_real_pairs_within_w1_bound(published, synthetic):
    """400 (country, question) pairs drawn from those with a published aggregate."""
    ours = sorted(pair for pair in published if pair in synthetic)
    assert len(ours) > 8_000
    rng = np.random.default_rng(16)
    sample = [ours[i] for i in rng.choice(len(ours), size=400, replace=False)]
    distances = {pair: _w1(pair[1], synthetic[pair], published[pair]) for pair in sample}
    worst = max(distances, key=distances.get)
    assert distances[worst] <= W1_BOUND, (worst, distances[worst])


def test_every_real_pair_within_w1_bound(full_file, published, synthetic):
    """Every pair of a generated country that has a published aggregate was asked
    and matches it; a cumulative-share check (W1 = sum |F - G| / (points - 1))."""
    _, frame = full_file
    countries = set(frame["country"])
    pairs = [pair for pair in published if pair[0] in countries]
    assert len(pairs) > 8_000 and all(pair in synthetic for pair in pairs)
    worst = 0.0
    for country, qid in pairs:
        answers, points = synthetic[(country, qid)], _scale(qid)
        synthetic_cdf = np.cumsum([(answers == p).mean() for p in points])
        w1 = np.abs(synthetic_cdf - np.cumsum(published[(country, qid)]))[:-1].sum() / (len(points) - 1)
        worst = max(worst, w1)
    assert worst <= W1_BOUND


def test_borrowed_pairs_match_their_continent(aggregates, published, synthetic):
    """A pair without its own aggregate takes the mean shares of the same
    question over the countries of its continent that have one."""
    continent = pd.read_csv(RESOURCES.joinpath("country2continent.csv")).set_index("Country")["Continent"]
    checked = 0
    for country, qid in [
        ("Mexico", "Q7"),
        ("Czechia", "Q27"),
        ("Thailand", "Q150"),
        ("Peru", "Q164"),
        ("New Zealand", "Q46"),
        ("Malaysia", "Q69"),
        ("Northern Ireland", "Q131"),
    ]:
        assert (country, qid) not in published
        same = [
            published[(other, qid)]
            for other in aggregates.loc[aggregates["qid"] == qid, "country"].unique()
            if continent[other] == continent[country]
        ]
        assert same, (country, qid)
        assert _w1(qid, synthetic[(country, qid)], np.mean(same, axis=0)) <= W1_BOUND
        checked += 1
    assert checked == 7


@pytest.mark.parametrize("country,qid", [("Ethiopia", "Q1"), ("Kenya", "Q46"), ("Egypt", "Q164")])
def test_borrowed_pairs_without_continent_data_match_the_pooled_shares(aggregates, published, synthetic, country, qid):
    """No African country has an aggregate for these: they take the mean over all countries that have one."""
    continent = pd.read_csv(RESOURCES.joinpath("country2continent.csv")).set_index("Country")["Continent"]
    having = aggregates.loc[aggregates["qid"] == qid, "country"].unique()
    assert len(having) > 20 and not any(continent[other] == "Africa" for other in having)
    pooled = np.mean([published[(other, qid)] for other in having], axis=0)
    assert _w1(qid, synthetic[(country, qid)], pooled) <= W1_BOUND


def test_not_asked_where_the_full_tabulation_has_no_answers(aggregates, full_file):
    """Pairs the whole-country tabulation covers elsewhere but not in this country
    (e.g. 13 questions in China) are -4 for the whole country."""
    _, frame = full_file
    tabulated = aggregates[aggregates["source"] == "SimLLMCultureDist"]
    present = set(zip(aggregates["country"], aggregates["qid"]))
    gaps = [
        (c, q)
        for c in tabulated["country"].unique()
        for q in tabulated["qid"].unique()
        if (c, q) not in present and c in set(frame["country"])
    ]
    assert len(gaps) >= 60 and sum(c == "China" for c, _ in gaps) == 13
    for country, qid in gaps:
        assert (frame.loc[frame["country"] == country, qid] == -4).all(), (country, qid)


def test_country_sizes_are_the_real_ones_scaled(full_file):
    """All 64 countries of the real file, each with its real sample size scaled to N."""
    _, frame = full_file
    real = pd.read_csv(RESOURCES.joinpath("wvs7_country_sizes.csv")).set_index("B_COUNTRY")["respondents"]
    counts = frame["B_COUNTRY"].value_counts()
    assert set(counts.index) == set(real.index) and len(real) == 64
    expected = real * N / real.sum()
    assert (counts.reindex(real.index) - expected).abs().max() <= 2


def test_hong_kong_brazil_uruguay_carry_the_real_files_codes(full_file):
    _, frame = full_file
    codes = frame.drop_duplicates("B_COUNTRY").set_index("B_COUNTRY")
    assert (codes.loc[344, "B_COUNTRY_ALPHA"], codes.loc[344, "C_COW_ALPHA"], codes.loc[344, "S025"]) == (
        "HKG",
        "HGK",
        3442018,
    )
    assert (codes.loc[76, "B_COUNTRY_ALPHA"], codes.loc[76, "C_COW_ALPHA"], codes.loc[76, "S025"]) == (
        "BRA",
        "BRA",
        762018,
    )
    assert (codes.loc[858, "B_COUNTRY_ALPHA"], codes.loc[858, "C_COW_ALPHA"], codes.loc[858, "S025"]) == (
        "URY",
        "URU",
        8582022,
    )


def test_full_file_still_becomes_21_to_22_million_examples(full_file):
    """Answered value-question cells (non-negative after adjustment) = the build's examples."""
    summary, frame = full_file
    answered = 0
    for qid in VALUE:
        dropped = [int(k) for k, v in ADJUSTMENT.get(qid, {}).items() if v == ""]
        raw = frame[qid].to_numpy()
        answered += int(((raw >= 0) & ~np.isin(raw, dropped)).sum())
    assert 21_000_000 <= answered <= 22_000_000
    assert summary.answered_share == pytest.approx(answered / (N * len(VALUE)))
