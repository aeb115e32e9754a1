"""`wvb evaluate` transforms on a tiny generated warehouse, checked against pandas/scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from wvb_spark.core import schemas
from wvb_spark.core.session import temporary_settings
from wvb_spark.core.warehouse import Warehouse
from wvb_spark.stages import evaluate as ev
from wvb_spark.transforms import histograms as hist

SCALES = {"Q1": (1, 4), "Q2": (1, 10), "Q3": (1, 2)}
THRESHOLDS = [0.0, 0.1, 0.2, 0.3]
GROUP_COLUMNS = ["continent"]
GROUP_BY = ["overall", "continent"]


def _tiny_warehouse():
    """pandas frames: questions, participants, examples, predictions (3 models)."""
    rng = np.random.default_rng(42)
    ids = np.arange(1, 41)
    participants = pd.DataFrame(
        {
            "d_interview": ids,
            "split": ["test" if i <= 30 else "train" for i in ids],
            "continent": [None if i % 10 == 0 else ("Africa" if i % 3 else "Europe") for i in ids],
            "weight": np.round(rng.uniform(0.5, 2.0, size=len(ids)), 3),
        }
    )
    examples = []
    for q, (low, high) in SCALES.items():
        for i in ids:
            if q == "Q2" and i == 5:
                continue  # respondent 5 did not answer Q2
            examples.append((int(i), q, int(rng.integers(low, high + 1)), "test" if i <= 30 else "train"))
    examples = pd.DataFrame(examples, columns=["d_interview", "question_id", "answer", "split"])

    rows = []

    def add(model, q, d, score, status, distribution=None):
        rows.append((model, q, d, None if score is None else str(score), score, status, distribution))

    for q, (low, high) in SCALES.items():
        for i in range(1, 31):
            add("alpha", q, i, float(rng.integers(low, high + 1)), "valid")
    # alpha's anomalies, each listed once more or replacing a valid row
    rows[:] = [r for r in rows if not (r[0] == "alpha" and r[1] == "Q1" and r[2] in (1, 2, 3, 4))]
    add("alpha", "Q1", 1, 7.0, "out_of_range")
    add("alpha", "Q1", 2, 2.6, "non_integer")
    add("alpha", "Q1", 3, None, "missing")
    add("alpha", "Q1", 4, None, "non_numeric")
    add("alpha", "Q1", 6, 1.0, "duplicate")  # respondent 6 listed twice
    add("alpha", "Q1", 999, 3.0, "unknown_participant")
    add("alpha", "Q2", 7, -2.0, "out_of_range")  # below the scale
    add("alpha", "Q9", 8, 3.0, "unknown_question")  # no such question: its groups have no humans
    rows[:] = [r for r in rows if not (r[0] == "alpha" and r[1] == "Q2" and r[2] == 7 and r[5] == "valid")]
    # beta: distributions on Q1, points on Q2
    for i in range(1, 31):
        p = rng.dirichlet(np.ones(4))
        add("beta", "Q1", i, None, "valid", [float(x) for x in p])
        add("beta", "Q2", i, float(rng.integers(1, 11)), "valid")
    # broken: nothing usable
    for q in ("Q1", "Q2"):
        for i in range(1, 31):
            add("broken", q, i, None, "non_numeric")
    predictions = pd.DataFrame(
        rows, columns=["model", "question_id", "d_interview", "raw_score", "score", "status", "distribution"]
    )
    predictions["parse_method"] = "test"
    predictions["source"] = "generated"
    questions = pd.DataFrame(
        [(q, lo, hi) for q, (lo, hi) in SCALES.items()], columns=["question_id", "scale_min", "scale_max"]
    )
    return questions, participants, examples, predictions


@pytest.fixture(scope="module")
def frames():
    return _tiny_warehouse()


@pytest.fixture(scope="module")
def tables(spark, frames):
    questions, participants, examples, predictions = frames
    q = spark.createDataFrame(questions, "question_id string, scale_min int, scale_max int")
    p = spark.createDataFrame(participants, "d_interview long, split string, continent string, weight double")
    e = spark.createDataFrame(examples, schemas.EXAMPLES)
    records = [
        tuple(None if (isinstance(v, float) and math.isnan(v)) else v for v in r)
        for r in predictions.itertuples(index=False)
    ]
    records = [
        (m, qid, int(d), raw, score, status, dist, pm, src, None, None, None)
        for m, qid, d, raw, score, status, dist, pm, src in records
    ]
    pr = spark.createDataFrame(records, schemas.PREDICTIONS)
    return {"questions": q, "participants": p, "examples": e, "predictions": pr}


WIDTH = 10  # widest scale of SCALES


def _comparisons(tables, predictions, *, protocol, population="paired", weights=False, join="shuffle"):
    cells = hist.cell_groups(tables["participants"], GROUP_COLUMNS)
    rows = hist.pair_rows(
        predictions,
        tables["examples"],
        tables["participants"],
        tables["questions"],
        cells,
        protocol=protocol,
        weights=weights,
        group_columns=GROUP_COLUMNS,
        join=join,
    )
    groups = hist.paired_groups(rows, cells, GROUP_BY, WIDTH)
    human_population = None
    if population == "population":
        human_population = hist.population_groups(
            tables["examples"],
            tables["participants"],
            tables["questions"],
            ["Q1", "Q2", "Q3", "Q9"],
            cells,
            split="test",
            weights=weights,
            group_columns=GROUP_COLUMNS,
            group_by=GROUP_BY,
            width=WIDTH,
        )
    return hist.comparisons(
        groups, tables["questions"], protocol=protocol, width=WIDTH, human_population=human_population
    )


def _evaluate(tables, *, protocol, population="paired", weights=False, bootstrap=40, seed=0, join="shuffle"):
    comparison = _comparisons(
        tables, tables["predictions"], protocol=protocol, population=population, weights=weights, join=join
    ).cache()
    distance_rows = ev.distances_with_replicates(
        comparison, bootstrap=bootstrap, seed=seed, noise_draws=50, thresholds=THRESHOLDS
    ).cache()
    summary = ev.summary(distance_rows, thresholds=THRESHOLDS)
    result = {
        "comparisons": comparison.toPandas(),
        "histograms": hist.histograms(hist.scored_groups(comparison)).toPandas(),
        "skipped": hist.skipped_groups(comparison).toPandas(),
        "distances": ev.distances(distance_rows).toPandas(),
        "summary": summary.toPandas(),
    }
    assert list(result["distances"].columns) == [f.name for f in ev.DISTANCES.fields]
    assert list(result["summary"].columns) == [f.name for f in ev.SUMMARY.fields]
    assert list(result["histograms"].columns) == [f.name for f in hist.HISTOGRAMS.fields]
    return result


@pytest.fixture(scope="module")
def paper(tables):
    # the paper fixture takes the broadcast join (a probe-size prediction set), default the shuffle join
    return _evaluate(tables, protocol="paper", join="broadcast-predictions")


@pytest.fixture(scope="module")
def default(tables):
    return _evaluate(tables, protocol="default")


def _row(df, model, question, group_by="overall", group_value="all"):
    hit = df[
        (df.model == model) & (df.question_id == question) & (df.group_by == group_by) & (df.group_value == group_value)
    ]
    assert len(hit) == 1, (model, question, group_by, group_value)
    return hit.iloc[0]


def _answers(examples):
    return {(r.question_id, r.d_interview): r.answer for r in examples.itertuples()}


# --------------------------------------------------------------------------- paper protocol


def test_paper_protocol_w1_and_jsd_equal_scipy_per_question(frames, paper):
    _, _, examples, predictions = frames
    answers = _answers(examples)
    alpha = predictions[predictions.model == "alpha"]
    for q, (low, high) in SCALES.items():
        listed = alpha[alpha.question_id == q]
        human = np.array([answers[(q, d)] for d in listed.d_interview if (q, d) in answers], dtype=float)
        model = np.array([math.trunc(s) for s in listed.score if s is not None and not math.isnan(s)], dtype=float)
        expected = wasserstein_distance((human - low) / (high - low), (model - low) / (high - low))
        row = _row(paper["distances"], "alpha", q)
        assert row.w1 == pytest.approx(expected, abs=1e-9)
        assert row.n_human == len(human) and row.n_model == len(model) and row.n_listed == len(listed)
        support = sorted(set(range(low, high + 1)) | set(model.astype(int)))
        h = [np.sum(human == v) for v in support]
        m = [np.sum(model == v) for v in support]
        assert row.jsd == pytest.approx(jensenshannon(h, m, base=2), abs=1e-9)
        assert row.representativeness == pytest.approx(1 - expected, abs=1e-9)
    # the widened support is in the histograms table, not clipped
    q1 = paper["histograms"]
    q1 = q1[(q1.model == "alpha") & (q1.question_id == "Q1") & (q1.group_by == "overall") & (q1.side == "model")]
    assert list(q1.iloc[0].points) == [1.0, 2.0, 3.0, 4.0, 7.0]


def test_paper_protocol_per_group_equals_scipy(frames, paper):
    _, participants, examples, predictions = frames
    answers = _answers(examples)
    continent = dict(zip(participants.d_interview, participants.continent))
    alpha = predictions[(predictions.model == "alpha") & (predictions.question_id == "Q2")]
    for value in ("Africa", "Europe"):
        listed = alpha[[continent.get(d) == value for d in alpha.d_interview]]
        human = np.array([answers[("Q2", d)] for d in listed.d_interview if ("Q2", d) in answers], dtype=float)
        model = np.array([math.trunc(s) for s in listed.score if not math.isnan(s)], dtype=float)
        expected = wasserstein_distance((human - 1) / 9, (model - 1) / 9)
        assert _row(paper["distances"], "alpha", "Q2", "continent", value).w1 == pytest.approx(expected, abs=1e-9)


# --------------------------------------------------------------------------- default protocol


def _kept_pairs(frames, model):
    _, participants, examples, predictions = frames
    merged = predictions[predictions.model == model].merge(
        examples[["question_id", "d_interview", "answer"]], on=["question_id", "d_interview"], how="left"
    )
    merged = merged.merge(participants, on="d_interview", how="left")
    kept = merged[(merged.status == "valid") & merged.answer.notna()]
    return merged, kept


def test_default_protocol_drops_invalid_pairs_from_both_sides(frames, default):
    merged, kept = _kept_pairs(frames, "alpha")
    for q, (low, high) in SCALES.items():
        pairs = kept[kept.question_id == q]
        expected = wasserstein_distance((pairs.answer - low) / (high - low), (pairs.score - low) / (high - low))
        row = _row(default["distances"], "alpha", q)
        assert row.w1 == pytest.approx(expected, abs=1e-9)
        assert row.n_human == row.n_model == len(pairs)
        listed = merged[merged.question_id == q]
        assert row.n_listed == len(listed)
        assert row.n_invalid == len(listed) - len(pairs)
        assert row.invalid_rate == pytest.approx((len(listed) - len(pairs)) / len(listed))
    q1 = _row(default["distances"], "alpha", "Q1")
    assert dict(q1.invalid_by_status) == {
        "out_of_range": 1,
        "non_integer": 1,
        "missing": 1,
        "non_numeric": 1,
        "duplicate": 1,
        "unknown_participant": 1,
    }
    q2 = _row(default["distances"], "alpha", "Q2")
    assert dict(q2.invalid_by_status) == {"out_of_range": 1, "no_human_answer": 1}


def test_default_protocol_per_group_matches_pandas(frames, default):
    _, kept = _kept_pairs(frames, "alpha")
    pairs = kept[(kept.question_id == "Q3") & (kept.continent == "Europe")]
    expected = wasserstein_distance(pairs.answer - 1, pairs.score - 1)
    assert _row(default["distances"], "alpha", "Q3", "continent", "Europe").w1 == pytest.approx(expected, abs=1e-9)
    # respondents without a continent form their own group
    missing = kept[(kept.question_id == "Q3") & kept.continent.isna()]
    row = _row(default["distances"], "alpha", "Q3", "continent", hist.MISSING_VALUE)
    assert row.n_human == len(missing) > 0


def test_distribution_predictions_add_their_probabilities(frames, default):
    _, kept = _kept_pairs(frames, "beta")
    kept = kept[kept.question_id == "Q1"]
    expected = np.sum([np.asarray(d) / np.sum(d) for d in kept.distribution], axis=0)
    hist = default["histograms"]
    row = hist[
        (hist.model == "beta") & (hist.question_id == "Q1") & (hist.side == "model") & (hist.group_by == "overall")
    ].iloc[0]
    np.testing.assert_allclose(row.counts, expected, atol=1e-12)
    assert row.n == len(kept)
    human = np.array([np.sum(kept.answer == v) for v in range(1, 5)], dtype=float)
    d = _row(default["distances"], "beta", "Q1")
    steps = np.full(3, 1 / 3)
    w1 = np.sum(np.abs(np.cumsum(human / human.sum()) - np.cumsum(expected / expected.sum()))[:-1] * steps)
    assert d.w1 == pytest.approx(w1, abs=1e-12)
    assert d.tv == pytest.approx(0.5 * np.sum(np.abs(human / human.sum() - expected / expected.sum())), abs=1e-12)


def test_all_invalid_model_gets_null_distances_and_invalid_rate_one(default):
    broken = default["distances"][default["distances"].model == "broken"]
    assert len(broken) > 0
    assert broken.w1.isna().all() and broken.jsd.isna().all() and broken.w1_ci_low.isna().all()
    assert (broken.invalid_rate == 1.0).all() and (broken.n_model == 0).all()
    summary = default["summary"]
    broken = summary[summary.model == "broken"]
    assert (broken.n_questions == 0).all() and broken.pct_questions_below.isna().all()
    assert (broken.invalid_rate == 1.0).all()


def test_group_without_human_answers_is_skipped_and_counted(default, paper):
    # alpha's row for the unknown question Q9 (respondent 8, Africa): no human answers
    expected = pd.DataFrame(
        {
            "model": ["alpha", "alpha"],
            "question_id": ["Q9", "Q9"],
            "group_by": ["continent", "overall"],
            "group_value": ["Africa", "all"],
        }
    )
    for result in (default, paper):
        skipped = result["skipped"][ev.KEYS].sort_values(ev.KEYS).reset_index(drop=True)
        pd.testing.assert_frame_equal(skipped, expected)
        assert (result["skipped"].n_listed == 1).all()
        scored = result["distances"][ev.KEYS]
        assert len(scored.merge(skipped, on=ev.KEYS)) == 0
        assert len(scored) + len(skipped) == len(result["comparisons"])


def test_unknown_respondent_group_is_skipped(spark, tables):
    """A model that only lists respondents unknown to participants: every group is skipped."""
    from pyspark.sql import functions as F

    ghost = (
        tables["predictions"]
        .where(F.col("model") == "alpha")
        .withColumn("model", F.lit("ghost"))
        .withColumn("d_interview", F.col("d_interview") + 10_000)
    )
    comparison = _comparisons(tables, ghost, protocol="paper")
    skipped = hist.skipped_groups(comparison).toPandas()
    # 4 questions (Q1-Q3 and the unknown Q9) x (overall + the (missing) continent)
    assert len(skipped) == 8
    assert set(skipped.group_value) == {"all", hist.MISSING_VALUE}
    assert hist.scored_groups(comparison).count() == 0


# --------------------------------------------------------------------------- weights, population


def test_weighted_histograms_equal_a_pandas_groupby_sum(frames, tables):
    result = _evaluate(tables, protocol="default", weights=True, bootstrap=0, join="broadcast-answers")
    _, kept = _kept_pairs(frames, "alpha")
    hist = result["histograms"]
    for q, (low, high) in SCALES.items():
        pairs = kept[kept.question_id == q]
        for side, column in (("human", "answer"), ("model", "score")):
            expected = pairs.groupby(column)["weight"].sum().reindex(range(low, high + 1), fill_value=0.0)
            row = hist[
                (hist.model == "alpha") & (hist.question_id == q) & (hist.side == side) & (hist.group_by == "overall")
            ].iloc[0]
            np.testing.assert_allclose(row.counts, expected.to_numpy(), atol=1e-9)
            assert row.n == len(pairs)
        expected_w1 = wasserstein_distance(pairs.answer, pairs.score, pairs.weight, pairs.weight) / (high - low)
        assert _row(result["distances"], "alpha", q).w1 == pytest.approx(expected_w1, abs=1e-9)
    # without bootstrap: no interval, but a noise floor
    assert result["distances"].w1_ci_low.isna().all()
    assert result["distances"][result["distances"].w1.notna()].noise_floor.notna().all()


def test_population_human_side_is_every_respondent_of_the_split(frames, tables):
    result = _evaluate(tables, protocol="default", population="population", bootstrap=0)
    _, participants, examples, _ = frames
    people = examples.merge(participants, on=["d_interview", "split"])
    population = people[people.split == "test"]
    _, kept = _kept_pairs(frames, "alpha")
    for q, (low, high) in SCALES.items():
        humans = population[population.question_id == q]
        pairs = kept[kept.question_id == q]
        row = _row(result["distances"], "alpha", q)
        assert row.n_human == len(humans) and row.n_model == len(pairs)
        expected = wasserstein_distance((humans.answer - low) / (high - low), (pairs.score - low) / (high - low))
        assert row.w1 == pytest.approx(expected, abs=1e-9)
    europe = population[(population.question_id == "Q1") & (population.continent == "Europe")]
    assert _row(result["distances"], "alpha", "Q1", "continent", "Europe").n_human == len(europe)


# --------------------------------------------------------------------------- bootstrap, summary


def test_bootstrap_reproducible_by_seed_and_interval_contains_estimate(tables, default):
    again = _evaluate(tables, protocol="default", seed=0)["distances"]
    other = _evaluate(tables, protocol="default", seed=1)["distances"]
    keys = ev.KEYS
    first = default["distances"].sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        first.drop(columns=["invalid_by_status"]),
        again.sort_values(keys).reset_index(drop=True).drop(columns=["invalid_by_status"]),
    )
    other = other.sort_values(keys).reset_index(drop=True)
    scored = first.w1.notna()
    assert not np.allclose(first.w1_ci_low[scored], other.w1_ci_low[scored])
    np.testing.assert_allclose(first.w1[scored], other.w1[scored])
    big = first[(first.group_by == "overall") & scored]
    assert ((big.w1_ci_low <= big.w1) & (big.w1 <= big.w1_ci_high)).all()
    assert (first.within_noise_floor[scored] == (first.w1 <= first.noise_floor)[scored]).all()


def test_summary_shares_equal_an_independent_count(default):
    distances = default["distances"]
    summary = default["summary"]
    for (model, group_by, value), group in distances.groupby(["model", "group_by", "group_value"]):
        w1 = group.w1.dropna().to_numpy()
        rows = summary[(summary.model == model) & (summary.group_by == group_by) & (summary.group_value == value)]
        assert sorted(rows.threshold) == THRESHOLDS
        for row in rows.itertuples():
            assert row.n_questions == len(w1)
            assert row.invalid_rate == pytest.approx(group.n_invalid.sum() / group.n_listed.sum())
            if len(w1):
                assert row.pct_questions_below == pytest.approx(100 * np.sum(w1 < row.threshold) / len(w1))
                assert row.mean_w1 == pytest.approx(w1.mean())
                assert 0 <= row.ci_low <= row.ci_high <= 100
    alpha = summary[(summary.model == "alpha") & (summary.group_by == "overall")]
    assert len(alpha) == len(THRESHOLDS)


# --------------------------------------------------------------------------- the command


def test_wvb_evaluate_writes_three_tables_with_settings_and_prints_the_headline(spark, tables, tmp_path, capsys):
    from pyspark.sql import functions as F
    from warehouse_helpers import write_build

    from wvb_spark import cli
    from wvb_spark.core import config as wvb_config
    from wvb_spark.core.warehouse import Warehouse as Tables

    config = wvb_config.load()
    warehouse = str(tmp_path / "warehouse")
    write_build(spark, warehouse, config, **{n: f for n, f in tables.items() if n != "predictions"})
    Tables(spark, warehouse, config).write("predictions", tables["predictions"], stage="test")

    code = cli.main(
        [
            "evaluate",
            "--warehouse",
            warehouse,
            "--models",
            "alpha,broken",
            "--bootstrap",
            "30",
            "--seed",
            "3",
            "--group-by",
            "overall,continent",
            "--protocol",
            "paper",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "2 skipped" in out  # alpha's unknown question Q9, overall and Africa
    headline = [line for line in out.splitlines() if line.startswith(("alpha", "broken"))]
    assert len(headline) == 2 and headline[1].split()[1] == "-"

    distances = Warehouse(spark, warehouse, config).read("distances")
    summary = Warehouse(spark, warehouse, config).read("summary")
    histograms = Warehouse(spark, warehouse, config).read("histograms")
    assert distances.columns == [f.name for f in ev.DISTANCES.fields]
    assert summary.columns == [f.name for f in ev.SUMMARY.fields]
    assert {r.model for r in distances.select("model").distinct().collect()} == {"alpha", "broken"}
    # nulls, not NaN, for the model without a usable prediction
    broken = distances.where(F.col("model") == "broken")
    assert broken.where(F.col("w1").isNull()).count() == broken.count() > 0
    assert histograms.count() == 2 * distances.count()
    info = Warehouse(None, warehouse, config).commit_info("distances")["options"]
    assert info["protocol"] == "paper" and info["bootstrap"] == 30 and info["seed"] == 3
    assert info["group_by"] == ["overall", "continent"] and info["models"] == ["alpha", "broken"]
    assert Warehouse(None, warehouse, config).commit_info("summary")["options"]["population"] == "paired"

    assert cli.main(["evaluate", "--warehouse", warehouse, "--models", "nope"]) == 2
    assert "unknown model(s) nope" in capsys.readouterr().err
    assert cli.main(["evaluate", "--warehouse", warehouse, "--group-by", "shoe_size"]) == 2
    assert cli.main(["evaluate", "--warehouse", warehouse, "--protocol", "paper", "--weights"]) == 2


def _rows_by_model(spark, warehouse: str, config: dict, name: str) -> dict[str, list]:
    """The table's rows per model, each row a comparable tuple of (column, value) pairs
    (arrays and maps made tuples), sorted."""

    def plain(value):
        if isinstance(value, dict):
            return tuple(sorted(value.items()))
        return tuple(value) if isinstance(value, list) else value

    rows: dict[str, list] = {}
    for row in Warehouse(spark, warehouse, config).read(name).collect():
        rows.setdefault(row["model"], []).append(tuple((k, plain(v)) for k, v in row.asDict().items()))
    return {model: sorted(found, key=repr) for model, found in rows.items()}


def test_evaluate_of_one_model_replaces_only_its_partitions(spark, tables, tmp_path, writer):
    """`--models beta` after a run of every model: beta's rows of histograms, distances and
    summary are the new run's, once; alpha's and broken's stay as they were (a rewrite of
    the whole tables would drop them)."""
    from pyspark.sql import functions as F
    from warehouse_helpers import settings, write_build

    from wvb_spark import cli

    config = settings(writer)
    warehouse = str(tmp_path / "warehouse")
    write_build(spark, warehouse, config, **{n: f for n, f in tables.items() if n != "predictions"})
    Warehouse(spark, warehouse, config).write("predictions", tables["predictions"], stage="test")
    command = ["evaluate", "--warehouse", warehouse, "--bootstrap", "20", "--group-by", "overall,continent"]
    assert cli.main([*command, "--set", f"storage.writer={writer}"]) == 0
    names = ("histograms", "distances", "summary")
    before = {name: _rows_by_model(spark, warehouse, config, name) for name in names}
    assert all(set(rows) == {"alpha", "beta", "broken"} for rows in before.values())

    # beta now answers 1 to every Q2 question
    beta = tables["predictions"].where(F.col("model") == "beta")
    q2 = F.col("question_id") == "Q2"
    beta = beta.withColumn("score", F.when(q2, F.lit(1.0)).otherwise(F.col("score")))
    beta = beta.withColumn("raw_score", F.when(q2, F.lit("1")).otherwise(F.col("raw_score")))
    Warehouse(spark, warehouse, config).write("predictions", beta, stage="test", replace={"model": ["beta"]})
    assert cli.main([*command, "--models", "beta", "--set", f"storage.writer={writer}"]) == 0
    after = {name: _rows_by_model(spark, warehouse, config, name) for name in names}

    for name in names:
        assert set(after[name]) == {"alpha", "beta", "broken"}, name
        for model in ("alpha", "broken"):
            assert after[name][model] == before[name][model], (name, model)
        # beta once: as many rows as before (same questions and groups), none twice
        assert len(after[name]["beta"]) == len(before[name]["beta"]) == len(set(after[name]["beta"])), name

    def beta_q2_all_ones(rows) -> bool:
        model_side = [dict(r) for r in rows]
        model_side = [r for r in model_side if r["side"] == "model" and r["question_id"] == "Q2"]
        assert model_side
        return all(r["counts"][r["points"].index(1.0)] == sum(r["counts"]) > 0 for r in model_side)

    assert not beta_q2_all_ones(before["histograms"]["beta"])
    assert beta_q2_all_ones(after["histograms"]["beta"])


def test_join_strategy_follows_the_row_counts_and_the_setting():
    settings = {"join": "auto", "broadcast_prediction_rows": 100, "broadcast_answer_rows": 1000}
    assert ev.choose_join(settings, 100, 10_000) == "broadcast-predictions"
    assert ev.choose_join(settings, 101, 1000) == "broadcast-answers"
    assert ev.choose_join(settings, 101, 1001) == "shuffle"
    assert ev.choose_join(settings, None, None) == "shuffle"  # counts unknown: the safe plan
    assert ev.choose_join({**settings, "join": "shuffle"}, 1, 1) == "shuffle"


def test_run_settings_apply_for_the_run_and_restore_the_session(spark):
    suite_partitions = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "7")
    spark.conf.unset("spark.sql.adaptive.coalescePartitions.enabled")
    try:
        with temporary_settings(spark, ev.run_settings(spark, small_run=True)):
            assert spark.conf.get("spark.sql.shuffle.partitions") == str(spark.sparkContext.defaultParallelism)
            assert spark.conf.get("spark.sql.adaptive.coalescePartitions.enabled") == "false"
            assert int(spark.conf.get("spark.sql.parquet.pushdown.inFilterThreshold")) >= 239  # every question
        assert spark.conf.get("spark.sql.shuffle.partitions") == "7"
        assert spark.conf.get("spark.sql.adaptive.coalescePartitions.enabled") == "true"  # unset again: default
        assert spark.conf.get("spark.sql.parquet.pushdown.inFilterThreshold") == "10"  # Spark's default
        with temporary_settings(spark, ev.run_settings(spark, small_run=True, partitions=3)):
            assert spark.conf.get("spark.sql.shuffle.partitions") == "3"
        with temporary_settings(spark, ev.run_settings(spark, small_run=False)):
            assert spark.conf.get("spark.sql.shuffle.partitions") == "7"
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", suite_partitions)


def _rows_read(spark, action, group: str) -> int:
    """Rows the scans of `action` read: the input records of the stages of its jobs."""
    context = spark.sparkContext
    context.setJobGroup(group, group)
    try:
        action()
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
    jsc = context._jsc.sc()
    jsc.listenerBus().waitUntilEmpty()
    stages = {
        stage
        for job in context.statusTracker().getJobIdsForGroup(group)
        for stage in context.statusTracker().getJobInfo(job).stageIds
    }
    return sum(jsc.statusStore().lastStageAttempt(stage).inputRecords() for stage in stages)


def test_the_examples_scan_skips_the_pages_of_unpredicted_questions(spark, tmp_path):
    """A file sorted by question, pages of 1,000 rows: with the run's settings a filter on
    12 of 200 questions reads those questions' pages; with Spark's default (a min-max
    range above 10 values) it reads nearly everything."""
    from pyspark.sql import functions as F

    path = str(tmp_path / "sorted")
    (
        spark.range(0, 400_000, numPartitions=1)
        .select(F.format_string("Q%03d", (F.col("id") / 2000).cast("int")).alias("question_id"), "id")
        .write.option("parquet.page.row.count.limit", "1000")
        .parquet(path)
    )
    wanted = [f"Q{i:03d}" for i in (3, 10, 50, 70, 90, 111, 120, 121, 150, 160, 180, 199)]

    def count_rows(settings, group):
        with temporary_settings(spark, settings):
            frame = spark.read.parquet(path).where(F.col("question_id").isin(wanted))
            return _rows_read(spark, lambda: frame.agg(F.sum("id")).collect(), group)

    with_run_settings = count_rows(ev.run_settings(spark, small_run=False), "run-settings")
    with_spark_default = count_rows({"spark.sql.parquet.pushdown.inFilterThreshold": "10"}, "spark-default")
    assert 2000 * len(wanted) <= with_run_settings <= 0.15 * 400_000
    assert with_spark_default >= 0.5 * 400_000


def test_printed_headline_stays_aligned_with_long_model_names():
    from wvb_spark.stages.evaluate import headline_table

    def row(model, pct):
        return {
            "model": model,
            "pct_questions_below": pct,
            "ci_low": 38.9,
            "ci_high": 47.2,
            "mean_w1": 0.236,
            "invalid_rate": 0.029,
            "n_questions": 36,
        }

    lines = headline_table(
        [row("a", 41.7), row("meta-llama--Llama-3.1-70B-Instruct-logprobs-wd", 5.0)], 0.2
    ).splitlines()
    assert len({len(line) for line in lines}) == 1  # every line as wide: the columns line up
    ends = [line.rindex("36") + 2 for line in lines[1:]]
    assert ends[0] == ends[1] == lines[0].index("questions") + len("questions")
