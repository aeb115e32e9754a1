"""Tests of `wvb synth`: layout, codes, missing values, realism, determinism, faults.

Expected values are computed here from the codebook and the file itself with
pandas / scipy, never taken from the generator's own bookkeeping.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, ttest_ind

from wvb_spark import cli
from wvb_spark.core import metadata
from wvb_spark.stages import synth
from wvb_spark.stages.synth import SurveyModel, write_synthetic_wvs

N = 3_000
SEED = 7
VALUE = list(metadata.value_question_ids())
STRING_COLUMNS = [
    "B_COUNTRY_ALPHA",
    "C_COW_ALPHA",
    "LNGE_ISO",
    "X002_02B",
    "V002A_01",
    "V001A_01",
    "Q223_ABREV",
    "Q223_LOCAL",
    "O1_LONGITUDE",
    "O2_LATITUDE",
]
# Location codes the codebook lists for some countries only; the others get -4.
LOCATION_COLUMNS = ["N_TOWN", "N_REGION_ISO", "N_REGION_WVS", "N_REGION_NUTS2"]
# Identity codes of the real file that the v5.0 codebook does not list: Hong Kong's
# ISO alpha-3 and Uruguay's Correlates of War abbreviation.
NOT_IN_CODEBOOK = {"B_COUNTRY_ALPHA": {"HKG": "Hong Kong SAR"}, "C_COW_ALPHA": {"URU": "Uruguay"}}


@pytest.fixture(scope="module")
def synth_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "wvs.csv"
    summary = write_synthetic_wvs(path, respondents=N, seed=SEED)
    return path, summary


@pytest.fixture(scope="module")
def wvs(synth_file):
    path, _ = synth_file
    return pd.read_csv(path, dtype={c: str for c in STRING_COLUMNS}, keep_default_na=False)


@pytest.fixture(scope="module")
def adjusted(wvs):
    """Value answers after answer_adjustment.json; NaN where missing."""
    out = {}
    for qid in VALUE:
        mapping = metadata.answer_adjustments().get(qid, {})
        raw = wvs[qid]
        values = raw.map(lambda r, mapping=mapping: mapping.get(r, r) if r >= 0 else None).astype(float)
        out[qid] = values
    return pd.DataFrame(out)


@pytest.fixture(scope="module")
def groups(wvs):
    """Continent and education level per respondent, from the codebook labels."""
    country_name = wvs["B_COUNTRY"].astype(str).map(metadata.choices("B_COUNTRY"))
    continent = country_name.map(metadata.country_continents())
    labels = metadata.choices("Q275")
    education = wvs["Q275"].astype(str).map(lambda c: metadata.education_levels().get(labels.get(c, ""), "missing"))
    return pd.DataFrame({"country": wvs["B_COUNTRY"], "continent": continent, "education": education})


def _normalised(adjusted: pd.DataFrame) -> pd.DataFrame:
    questions = metadata.questions()
    low = np.array([questions[q].scale_min for q in VALUE], dtype=float)
    high = np.array([questions[q].scale_max for q in VALUE], dtype=float)
    return (adjusted[VALUE] - low) / (high - low)


# ---------------------------------------------------------------- layout and codes


def test_header_is_the_codebook_variable_list(synth_file):
    path, summary = synth_file
    with open(path, newline="") as handle:
        header = next(csv.reader(handle))
    assert header == list(metadata.codebook_variables())
    assert len(header) == 375 and summary.columns == 375


def test_row_count_and_every_line_complete(synth_file):
    path, summary = synth_file
    with open(path, newline="") as handle:
        lengths = [len(row) for row in csv.reader(handle)]
    assert len(lengths) == N + 1 and summary.rows == N
    assert set(lengths) == {375}


def test_ids_unique_and_built_from_country_and_running_number(wvs):
    assert wvs["D_INTERVIEW"].is_unique
    running = wvs.groupby("B_COUNTRY").cumcount() + 1
    assert (wvs["D_INTERVIEW"] == wvs["B_COUNTRY"] * 1_000_000 + 70_000 + running).all()
    # countries are contiguous blocks
    assert (wvs["B_COUNTRY"] != wvs["B_COUNTRY"].shift()).sum() == wvs["B_COUNTRY"].nunique()


def test_every_coded_value_is_a_codebook_choice(wvs):
    codebook = metadata.codebook()
    checked = 0
    for variable in metadata.codebook_variables():
        choices = set(codebook[variable]["choices"])
        valid = [c for c in choices if not c.startswith("-")]
        if len(valid) == 0:
            continue  # numeric variables (ages, dates, weights, ids): checked below
        values = set(wvs[variable].astype(str))
        if variable in LOCATION_COLUMNS:
            choices = choices | {"-4"}
        choices = choices | set(NOT_IN_CODEBOOK.get(variable, {}))
        assert values <= choices, (variable, sorted(values - choices)[:5])
        checked += 1
    assert checked > 300


def test_value_answers_inside_scale_after_adjustment(wvs, adjusted):
    questions = metadata.questions()
    for qid in VALUE:
        answers = adjusted[qid].dropna()
        assert answers.between(questions[qid].scale_min, questions[qid].scale_max).all(), qid
        assert set(wvs[qid][wvs[qid] < 0]) <= {-1, -2, -4, -5} | {
            r for r, a in metadata.answer_adjustments().get(qid, {}).items() if a is None
        }


@pytest.mark.parametrize(
    "qid,raw_codes",
    [
        ("Q56", {2, 3}),
        ("Q111", {3}),
        ("Q119", {0, 3, 4}),
        ("Q221", {4}),
        ("Q222", {4}),
        *[(f"Q{n}", {0}) for n in range(241, 250)],
        ("Q254", {5}),
    ],
)
def test_raw_codes_that_the_adjustment_remaps_occur(wvs, qid, raw_codes):
    assert raw_codes <= set(wvs[qid])


def test_country_identity_codes_agree(wvs):
    names = metadata.choices("B_COUNTRY")
    alpha_names = {"Macao": "Macao SAR", "Russian Federation": "Russia"}
    alpha_labels = metadata.choices("B_COUNTRY_ALPHA") | NOT_IN_CODEBOOK["B_COUNTRY_ALPHA"]
    for (number, alpha, year, s025), _ in wvs.groupby(["B_COUNTRY", "B_COUNTRY_ALPHA", "A_YEAR", "S025"]):
        label = alpha_labels[alpha]
        assert alpha_names.get(label, label) == names[str(number)]
        assert s025 == number * 10_000 + year and str(s025) in metadata.choices("S025")
    assert wvs.groupby("B_COUNTRY")["A_YEAR"].nunique().max() == 1
    cow_labels = metadata.choices("C_COW_ALPHA") | NOT_IN_CODEBOOK["C_COW_ALPHA"]
    cow_names = {
        "Hong Kong SAR PRC": "Hong Kong SAR",
        "United States of America": "United States",
        "United Kingdom": "Great Britain",
        "Russian Federation": "Russia",
        "Macau SAR": "Macao SAR",
        "Malasia": "Malaysia",
    }
    for (number, cow), _ in wvs.groupby(["B_COUNTRY", "C_COW_ALPHA"]):
        label = cow_labels[cow]
        assert cow_names.get(label, label) == names[str(number)], (number, cow)


def test_country_specific_codes_belong_to_the_country(wvs):
    for variable in ["N_TOWN", "Q290", "Q223"]:
        coded = wvs[wvs[variable] > 10_000]
        prefix_ok = [str(v).startswith(str(c)) for v, c in zip(coded[variable], coded["B_COUNTRY"])]
        assert len(coded) > N / 4 and all(prefix_ok), variable


def test_demographics_plausible(wvs):
    age = wvs["Q262"][wvs["Q262"] >= 0]
    assert age.between(16, 90).all() and age.min() <= 20 and age.max() >= 75
    known = wvs[wvs["Q262"] >= 0]
    assert (known["Q261"] == known["A_YEAR"] - known["Q262"]).all()
    bins = pd.cut(known["Q262"], [15, 24, 34, 44, 54, 64, 200], labels=[1, 2, 3, 4, 5, 6]).astype(int)
    assert (known["X003R"] == bins).all()
    assert (wvs.loc[wvs["Q262"] < 0, "X003R"] == wvs.loc[wvs["Q262"] < 0, "Q262"]).all()
    assert set(range(9)) <= set(wvs["Q275"])
    assert {1, 2} <= set(wvs["H_URBRURAL"]) and {1, 2} <= set(wvs["Q260"])
    for variable, at_least in [("Q273", 6), ("Q288", 10), ("Q289", 8), ("Q279", 8), ("Q274", 6)]:
        assert len({v for v in wvs[variable] if v >= 0}) >= at_least, variable
    dates = wvs["J_INTDATE"].astype(str)
    parsed = [datetime.date(int(d[:4]), int(d[4:6]), int(d[6:])) for d in dates]
    assert all(p.year == y for p, y in zip(parsed, wvs["A_YEAR"]))
    # older respondents are more often widowed, younger ones more often single
    assert (wvs.loc[wvs["Q262"] >= 65, "Q273"] == 5).mean() > (wvs.loc[wvs["Q262"].between(16, 40), "Q273"] == 5).mean()
    assert (wvs.loc[wvs["Q262"] < 25, "Q273"] == 6).mean() > 0.5


def test_weights(wvs):
    assert (wvs["W_WEIGHT"] > 0).all()
    per_country = wvs.groupby("B_COUNTRY")["W_WEIGHT"].mean()
    assert 0.95 < wvs["W_WEIGHT"].mean() < 1.05 and per_country.between(0.75, 1.3).all()
    size = wvs.groupby("B_COUNTRY")["W_WEIGHT"].transform("size")
    assert np.allclose(wvs["S018"], wvs["W_WEIGHT"] * 1000 / size, atol=2e-6 * 1000)


# ---------------------------------------------------------------- sizes


def test_default_size_uses_every_wave7_country():
    """All 64 countries of the real file, Hong Kong, Brazil and Uruguay included
    (their per-country sizes are checked against the real ones in
    test_synth_calibration.py)."""
    model = SurveyModel(94_728, SEED)
    assert len(model.sizes) == 64 and model.sizes.sum() == 94_728
    assert {"HKG", "BRA", "URY"} <= {c.alpha for c in model.countries}
    continents = {c.continent for c in model.countries}
    assert continents == set(metadata.CONTINENTS)


def test_small_file_uses_fewer_countries(tmp_path):
    summary = write_synthetic_wvs(tmp_path / "small.csv", respondents=500, seed=1)
    small = pd.read_csv(tmp_path / "small.csv", usecols=["B_COUNTRY", "D_INTERVIEW"])
    assert summary.rows == len(small) == 500
    assert small["B_COUNTRY"].nunique() == 25 and small.groupby("B_COUNTRY").size().min() >= 19
    assert small["D_INTERVIEW"].is_unique


# ---------------------------------------------------------------- missing values


def test_missing_code_shares_inside_bands(wvs, adjusted, synth_file):
    _, summary = synth_file
    cells = wvs[VALUE].to_numpy()
    answered = adjusted.notna().to_numpy().mean()
    assert 0.93 <= answered <= 0.97
    assert summary.answered_share == pytest.approx(answered)
    shares = {code: (cells == code).mean() for code in (-1, -2, -4, -5)}
    assert 0.005 <= shares[-1] <= 0.04
    assert 0.001 <= shares[-2] <= 0.02
    assert 0.005 <= shares[-4] <= 0.04
    assert 0 < shares[-5] <= 0.003


def test_not_asked_is_a_whole_country(wvs):
    per_pair = wvs[["B_COUNTRY"] + VALUE].melt(id_vars="B_COUNTRY")
    per_pair["not_asked"] = per_pair["value"] == -4
    share = per_pair.groupby(["B_COUNTRY", "variable"])["not_asked"].mean()
    assert set(share.unique()) == {0.0, 1.0}
    assert (share == 1.0).sum() >= 20


def test_demographic_missing_values(wvs):
    for variable, codes in [("Q275", {-1, -2}), ("Q262", {-1, -2}), ("Q288", {-1, -2})]:
        share = wvs[variable].isin(codes).mean()
        assert 0.002 <= share <= 0.06, variable
    assert 0 < (wvs["H_URBRURAL"] == -5).sum() < N * 0.01


# ---------------------------------------------------------------- realism


@pytest.mark.parametrize("qid", ["Q6", "Q22", "Q57", "Q164", "Q167", "Q182"])
def test_countries_answer_differently(adjusted, groups, qid):
    """Questions on which real countries differ most (religion, neighbours,
    trust, God, homosexuality) differ by country and continent even with
    about 50 respondents per country. (Questions such as Q1, importance of
    family, hardly differ between real countries, so they are not used here.)"""
    answered = adjusted[qid].notna()
    table = pd.crosstab(groups.loc[answered, "country"], adjusted.loc[answered, qid])
    assert chi2_contingency(table).pvalue < 1e-6
    by_continent = pd.crosstab(groups.loc[answered, "continent"], adjusted.loc[answered, qid])
    assert chi2_contingency(by_continent).pvalue < 1e-6


def test_education_shifts_answers_within_countries(adjusted, groups):
    """Tertiary vs primary-educated, answers centred on their country's mean,
    so the difference is not just that of the countries they live in."""
    normalised = _normalised(adjusted)
    centred = normalised - normalised.groupby(groups["country"]).transform("mean")
    tertiary = centred[groups["education"] == "Tertiary"]
    primary = centred[groups["education"] == "Primary or No Education"]
    pvalues = [ttest_ind(tertiary[q].dropna(), primary[q].dropna()).pvalue for q in VALUE]
    assert np.mean(np.array(pvalues) < 0.001) > 0.3


def test_urban_age_and_sex_shift_answers(wvs, adjusted, groups):
    normalised = _normalised(adjusted)
    centred = normalised - normalised.groupby(groups["country"]).transform("mean")
    for mask_a, mask_b in [
        (wvs["H_URBRURAL"] == 1, wvs["H_URBRURAL"] == 2),
        (wvs["Q262"].between(16, 30), wvs["Q262"] >= 60),
        (wvs["Q260"] == 1, wvs["Q260"] == 2),
    ]:
        pvalues = [ttest_ind(centred.loc[mask_a, q].dropna(), centred.loc[mask_b, q].dropna()).pvalue for q in VALUE]
        assert np.mean(np.array(pvalues) < 0.001) > 0.1


def test_answers_correlate_within_topic_blocks(adjusted, groups):
    normalised = _normalised(adjusted)
    centred = normalised - normalised.groupby(groups["country"]).transform("mean")
    corr = centred.corr().abs().to_numpy()
    category = np.array([metadata.questions()[q].category for q in VALUE])
    same = category[:, None] == category[None, :]
    off_diagonal = ~np.eye(len(VALUE), dtype=bool)
    within, across = corr[same & off_diagonal].mean(), corr[~same].mean()
    assert within > 0.15 and within > 3 * across


def test_demographic_predictor_beats_global_one(adjusted, groups):
    """Per-(continent, education level) answer distributions fitted on half of the
    respondents predict the other half's answers better (log-loss) than the
    global distribution does."""
    long = (
        adjusted.assign(continent=groups["continent"], education=groups["education"])
        .melt(id_vars=["continent", "education"], var_name="question_id", value_name="answer")
        .dropna()
    )
    rng = np.random.default_rng(0)
    respondent_half = rng.random(len(adjusted)) < 0.5
    long["train"] = np.tile(respondent_half, len(VALUE))[long.index]
    train, test = long[long["train"]], long[~long["train"]]

    def log_loss(keys):
        """Mean log-loss per question of add-one-smoothed distributions per `keys`."""
        counts = train.groupby(keys + ["answer"]).size().rename("count").reset_index()
        points = train.groupby("question_id")["answer"].nunique().rename("points")
        totals = train.groupby(keys).size().rename("total").reset_index()
        scored = test.merge(counts, on=keys + ["answer"], how="left").merge(totals, on=keys, how="left")
        scored = scored.merge(points, left_on="question_id", right_index=True)
        scored["loss"] = -np.log((scored["count"].fillna(0) + 1) / (scored["total"].fillna(0) + scored["points"]))
        return scored.groupby("question_id")["loss"].mean()

    aware = log_loss(["question_id", "continent", "education"])
    overall = log_loss(["question_id"])
    assert aware.mean() < overall.mean() * 0.985
    assert (aware < overall).mean() > 0.8


# ---------------------------------------------------------------- determinism


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    first = write_synthetic_wvs(tmp_path / "a.csv", respondents=700, seed=11)
    write_synthetic_wvs(tmp_path / "b.csv", respondents=700, seed=11)
    write_synthetic_wvs(tmp_path / "c.csv", respondents=700, seed=12)
    assert _sha256(tmp_path / "a.csv") == _sha256(tmp_path / "b.csv")
    assert _sha256(tmp_path / "a.csv") != _sha256(tmp_path / "c.csv")
    assert first.faults is None


def test_chunks_are_independent_draws(tmp_path, monkeypatch):
    """Each chunk has its own seeded generator: with 100-row chunks, no two
    respondents share their answers to the value questions."""
    monkeypatch.setattr(synth, "CHUNK_ROWS", 100)
    write_synthetic_wvs(tmp_path / "a.csv", respondents=400, seed=3)
    answers = pd.read_csv(tmp_path / "a.csv", usecols=VALUE)
    assert not answers.duplicated().any()


# ---------------------------------------------------------------- faults


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    clean = write_synthetic_wvs(folder / "clean.csv", respondents=600, seed=5)
    summary = write_synthetic_wvs(folder / "faulty.csv", respondents=600, seed=5, inject_faults=True)
    with open(folder / "clean.csv", newline="") as handle:
        clean_rows = list(csv.reader(handle))
    with open(folder / "faulty.csv", newline="") as handle:
        faulty_rows = list(csv.reader(handle))
    return clean, summary, clean_rows, faulty_rows, json.loads(summary.faults.read_text())


def test_fault_manifest_matches_the_file(faulty):
    _, summary, _, rows, manifest = faulty
    header, data = rows[0], rows[1:]
    assert summary.rows == len(data) == 602
    kinds = sorted(f["kind"] for f in manifest)
    assert kinds == [
        "duplicate_d_interview",
        "duplicate_d_interview",
        "missing_field",
        "non_numeric_code",
        "out_of_range_code",
    ]
    id_column = header.index("D_INTERVIEW")
    for fault in manifest:
        row = data[fault["row"] - 1]
        assert int(row[id_column]) == fault["d_interview"]
        if fault["kind"] == "missing_field":
            assert len(row) == len(header) - 1 and fault["column"] == header[-1]
        else:
            assert len(row) == len(header)
            assert row[header.index(fault["column"])] == fault["raw_value"]
        if fault["kind"] == "non_numeric_code":
            assert fault["column"] in VALUE and not fault["raw_value"].lstrip("-").isdigit()
        if fault["kind"] == "out_of_range_code":
            assert fault["column"] in VALUE and fault["raw_value"] not in metadata.choices(fault["column"])
    ids = pd.Series([int(r[id_column]) for r in data])
    duplicated = ids[ids.duplicated(keep=False)]
    assert sorted(duplicated.index + 1) == sorted(f["row"] for f in manifest if f["kind"] == "duplicate_d_interview")
    # every row not listed has the full number of fields
    assert [i + 1 for i, r in enumerate(data) if len(r) != len(header)] == [
        f["row"] for f in manifest if f["kind"] == "missing_field"
    ]


def test_faults_change_only_the_listed_rows(faulty):
    clean, _, clean_rows, faulty_rows, manifest = faulty
    changed = [i for i, (a, b) in enumerate(zip(clean_rows[1:], faulty_rows[1:])) if a != b]
    in_place = sorted(f["row"] - 1 for f in manifest if f["kind"] in ("non_numeric_code", "out_of_range_code"))
    assert changed == in_place
    assert len(faulty_rows) == len(clean_rows) + 2 and clean.rows == 600


def test_faults_need_four_respondents(tmp_path):
    assert cli.main(["synth", "--respondents", "3", "--out", str(tmp_path / "x.csv"), "--inject-faults"]) == 2


# ---------------------------------------------------------------- command line


def test_command_prints_summary(tmp_path, capsys):
    out = tmp_path / "nested" / "dir" / "wvs.csv"
    assert cli.main(["synth", "--respondents", "300", "--seed", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "rows: 300" in printed and "columns: 375" in printed
    assert "answered value-question cells:" in printed and "time:" in printed
    assert out.exists()


def test_command_rejects_bad_input(tmp_path, capsys):
    assert cli.main(["synth", "--respondents", "0", "--out", str(tmp_path / "x.csv")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "respondents" in error
