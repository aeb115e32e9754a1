"""`wvb baselines`: each baseline against pandas/numpy on the same input, the back-off
level on a crafted input, and group-prior beating global-prior where groups differ."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

from wvb_spark.core import config as wvb_config
from wvb_spark.core import schemas
from wvb_spark.core.errors import WvbError
from wvb_spark.core.warehouse import Warehouse
from wvb_spark.stages import baselines

SCALES = {"Q1": (1, 4), "Q2": (1, 10), "Q3": (0, 2)}
GROUP_BY = ["continent", "urban_rural", "education_level"]
GROUPS = [(c, u, e) for c in ("Asia", "Europe") for u in ("Urban", "Rural") for e in ("Low", "High")]
QUESTION_SCHEMA = "question_id string, category string, use_case string, scale_min int, scale_max int"
PARTICIPANT_SCHEMA = "d_interview long, split string, continent string, urban_rural string, education_level string"
EXAMPLE_SCHEMA = "d_interview long, question_id string, answer int, split string"


def questions_df(spark, extra=()):
    rows = [(q, "Test", "value", lo, hi) for q, (lo, hi) in SCALES.items()] + list(extra)
    return spark.createDataFrame(rows, QUESTION_SCHEMA)


def lower_median(probabilities, scale_min) -> float:
    """Smallest scale point whose cumulative probability reaches 1/2."""
    return float(scale_min + int(np.argmax(np.cumsum(probabilities) >= 0.5 - 1e-9)))


def make_survey(seed=3, train_per_group=60, valid_per_group=15):
    """Respondents whose answers depend strongly on their group: each (group, question)
    has its own Dirichlet-drawn answer distribution."""
    rng = np.random.default_rng(seed)
    truth = {(g, q): rng.dirichlet(np.full(hi - lo + 1, 0.4)) for g in GROUPS for q, (lo, hi) in SCALES.items()}
    people, answers = [], []
    pid = 0
    for split, per_group in (("train", train_per_group), ("valid", valid_per_group)):
        for g in GROUPS:
            for _ in range(per_group):
                pid += 1
                people.append((pid, split, *g))
                for q, (lo, hi) in SCALES.items():
                    answers.append((pid, q, int(lo + rng.choice(hi - lo + 1, p=truth[(g, q)])), split))
    return (
        pd.DataFrame(people, columns=["d_interview", "split", *GROUP_BY]),
        pd.DataFrame(answers, columns=["d_interview", "question_id", "answer", "split"]),
    )


@pytest.fixture(scope="module")
def survey(spark):
    people, answers = make_survey()
    answers.loc[len(answers)] = (1, "Q1", 99, "train")  # off the scale: must not enter any prior
    participants = spark.createDataFrame(list(people.itertuples(index=False, name=None)), PARTICIPANT_SCHEMA)
    examples = spark.createDataFrame(list(answers.itertuples(index=False, name=None)), EXAMPLE_SCHEMA)
    targets = examples.where("split = 'valid'").select("question_id", "d_interview")
    train = examples.where("split = 'train'")
    return people, answers, participants, examples, targets, train


def as_pandas(predictions) -> pd.DataFrame:
    assert predictions.columns == schemas.columns(schemas.PREDICTIONS)
    return predictions.toPandas()


def test_uniform(spark, survey):
    _, answers, _, _, targets, _ = survey
    got = as_pandas(baselines.uniform(targets, questions_df(spark)))
    assert len(got) == int((answers["split"] == "valid").sum())
    assert set(got["status"]) == {"valid"} and set(got["model"]) == {"uniform"}
    assert set(got["parse_method"]) == {"baseline"}
    for row in got.itertuples(index=False):
        lo, hi = SCALES[row.question_id]
        assert np.allclose(row.distribution, np.full(hi - lo + 1, 1 / (hi - lo + 1)))
    expected_score = {"Q1": 2.0, "Q2": 5.0, "Q3": 1.0}  # lower medians, by hand
    assert got.groupby("question_id")["score"].unique().map(list).to_dict() == {
        q: [s] for q, s in expected_score.items()
    }


def test_global_prior_is_the_train_value_counts(spark, survey):
    _, answers, _, _, targets, train = survey
    got = as_pandas(baselines.global_prior(targets, train, questions_df(spark)))
    assert set(got["status"]) == {"valid"}
    train_answers = answers[answers["split"] == "train"]
    for q, (lo, hi) in SCALES.items():
        on_scale = train_answers[(train_answers["question_id"] == q) & train_answers["answer"].between(lo, hi)]
        expected = on_scale["answer"].value_counts(normalize=True).reindex(range(lo, hi + 1), fill_value=0.0)
        rows = got[got["question_id"] == q]
        assert len(rows) == 15 * len(GROUPS)
        for dist, score, source in zip(rows["distribution"], rows["score"], rows["source"]):
            assert np.allclose(dist, expected.to_numpy())
            assert score == lower_median(expected.to_numpy(), lo)
            assert f"({len(on_scale)} answers)" in source


def test_majority_is_the_pandas_mode_of_the_evaluated_answers(spark, survey):
    _, answers, _, examples, targets, _ = survey
    got = as_pandas(baselines.majority_leaky(targets, examples.where("split = 'valid'"), questions_df(spark)))
    assert set(got["model"]) == {"majority-leaky"}
    assert got["source"].str.startswith("LEAKY").all()
    valid = answers[answers["split"] == "valid"]
    for q, (lo, hi) in SCALES.items():
        mode = valid.loc[valid["question_id"] == q, "answer"].mode().min()
        one_hot = np.eye(hi - lo + 1)[mode - lo]
        rows = got[got["question_id"] == q]
        assert all(np.array_equal(d, one_hot) for d in rows["distribution"])
        assert set(rows["score"]) == {float(mode)}


def test_majority_breaks_ties_to_the_lowest_answer(spark):
    examples = spark.createDataFrame(
        [
            (1, "Q1", 3, "valid"),
            (2, "Q1", 2, "valid"),
            (3, "Q1", 3, "valid"),
            (4, "Q1", 2, "valid"),
            (5, "Q1", 4, "valid"),
        ],
        EXAMPLE_SCHEMA,
    )
    targets = examples.select("question_id", "d_interview")
    got = as_pandas(baselines.majority_leaky(targets, examples, questions_df(spark)))
    assert set(got["score"]) == {2.0}
    assert all(list(d) == [0.0, 1.0, 0.0, 0.0] for d in got["distribution"])


def test_group_prior_backs_off_to_the_right_level(spark):
    """min size 3, group by (continent, urban_rural). Train answers to Q1:
    Asia/Urban 3 people -> own group; Asia/Rural 1 -> Asia (4); Europe 2 in all -> global (6)."""
    people = [
        (1, "train", "Asia", "Urban"),
        (2, "train", "Asia", "Urban"),
        (3, "train", "Asia", "Urban"),
        (4, "train", "Asia", "Rural"),
        (5, "train", "Europe", "Urban"),
        (6, "train", "Europe", "Urban"),
        (11, "valid", "Asia", "Urban"),
        (12, "valid", "Asia", "Rural"),
        (13, "valid", "Europe", "Urban"),
        (14, "valid", "Europe", "Rural"),
        (15, "valid", "Asia", None),
        (16, "valid", None, "Urban"),
    ]
    train_answers = {1: 1, 2: 1, 3: 2, 4: 4, 5: 3, 6: 3}
    participants = spark.createDataFrame(people, "d_interview long, split string, continent string, urban_rural string")
    train = spark.createDataFrame([(p, "Q1", a, "train") for p, a in train_answers.items()], EXAMPLE_SCHEMA)
    targets = spark.createDataFrame(
        [("Q1", p) for p in (11, 12, 13, 14, 15, 16, 17)] + [("Q2", 11), ("Q9", 11)],
        "question_id string, d_interview long",
    )  # 17: no participant row; Q2: no train answer; Q9: unknown
    got = as_pandas(
        baselines.group_prior(targets, train, participants, questions_df(spark), ["continent", "urban_rural"], 3)
    ).set_index(["question_id", "d_interview"])
    asia_urban, asia, everyone = [2 / 3, 1 / 3, 0, 0], [2 / 4, 1 / 4, 0, 1 / 4], [2 / 6, 1 / 6, 2 / 6, 1 / 6]
    expected = {
        11: (asia_urban, "level 2: continent,urban_rural (3 "),
        12: (asia, "level 1: continent (4 "),
        13: (everyone, "level 0: global (6 "),
        14: (everyone, "level 0: global (6 "),
        15: (asia, "level 1: continent (4 "),
        16: (everyone, "level 0: global (6 "),
        17: (everyone, "level 0: global (6 "),
    }
    for pid, (dist, level) in expected.items():
        row = got.loc[("Q1", pid)]
        assert np.allclose(row["distribution"], dist), pid
        assert level in row["source"], (pid, row["source"])
        assert row["status"] == "valid" and row["score"] == lower_median(dist, 1)
    assert got.loc[("Q2", 11), "status"] == "missing" and got.loc[("Q2", 11), "distribution"] is None
    assert got.loc[("Q9", 11), "status"] == "unknown_question"
    assert len(got) == 9


def mean_w1_by_group(predictions: pd.DataFrame, people: pd.DataFrame, answers: pd.DataFrame) -> float:
    """Mean over (question, group) of W1 between the valid humans' answers and the model's
    distribution averaged over the same respondents, on the [0, 1]-normalised scale."""
    valid = answers[answers["split"] == "valid"].merge(people, on=["d_interview", "split"])
    merged = valid.merge(predictions, on=["question_id", "d_interview"])
    distances = []
    for (q, *_), rows in merged.groupby(["question_id", *GROUP_BY]):
        lo, hi = SCALES[q]
        points = (np.arange(lo, hi + 1) - lo) / (hi - lo)
        human = rows["answer"].value_counts().reindex(range(lo, hi + 1), fill_value=0).to_numpy()
        model = np.mean(np.stack(rows["distribution"].to_list()), axis=0)
        distances.append(wasserstein_distance(points, points, u_weights=human, v_weights=model))
    return float(np.mean(distances))


def test_group_prior_beats_global_prior_on_data_with_group_effects(spark, survey):
    people, answers, participants, _, targets, train = survey
    qs = questions_df(spark)
    group = as_pandas(baselines.group_prior(targets, train, participants, qs, GROUP_BY, 30))
    overall = as_pandas(baselines.global_prior(targets, train, qs))
    assert group["source"].str.startswith("group-prior level 3:").all()  # 60 train answers per group
    w1_group = mean_w1_by_group(group, people, answers)
    w1_global = mean_w1_by_group(overall, people, answers)
    assert w1_group < w1_global - 0.05, (w1_group, w1_global)


def test_distributions_sum_to_one(spark, survey):
    _, _, participants, examples, targets, train = survey
    qs = questions_df(spark)
    for predictions in (
        baselines.uniform(targets, qs),
        baselines.global_prior(targets, train, qs),
        baselines.group_prior(targets, train, participants, qs, GROUP_BY, 30),
        baselines.majority_leaky(targets, examples, qs),
    ):
        sums = predictions.selectExpr("aggregate(distribution, 0D, (a, p) -> a + p) AS s").toPandas()["s"]
        assert np.allclose(sums, 1.0)


def _with(args):
    """The built-in settings with these options laid over them, as the runner does."""
    return wvb_config.with_options(wvb_config.load(), baselines.SETTINGS, args, baselines.OPTIONS)


def test_settings():
    args = argparse.Namespace(targets=None, models=None, group_by=None, min_group_size=None, train_split=None)
    settings = baselines.resolve_settings(_with(args))
    assert settings == {
        "targets": "probe",
        "models": ["uniform", "majority-leaky", "global-prior", "group-prior"],
        "group_by": GROUP_BY,
        "min_group_size": 30,
        "train_split": "train",
    }
    args.models, args.targets = "majority,uniform", "split:test"
    settings = baselines.resolve_settings(_with(args))
    assert settings["models"] == ["majority-leaky", "uniform"] and settings["targets"] == "split:test"
    for bad in ({"models": "oracle"}, {"targets": "valid"}, {"targets": "split:"}, {"min_group_size": 0}):
        with pytest.raises(WvbError):
            baselines.resolve_settings(_with(argparse.Namespace(**{**vars(args), **bad})))


# --------------------------------------------------------------------------- the command


def test_command_writes_one_partition_per_model(spark, survey, tmp_path, capsys):
    from warehouse_helpers import write_build

    from wvb_spark import cli

    people, answers, participants, examples, _, _ = survey
    warehouse = str(tmp_path / "wh")
    offline = ["--set", "storage.writer=offline"]
    config = wvb_config.load(None, ["storage.writer=offline"])
    questions = spark.createDataFrame(
        [(q, f"text {q}", "Test", "value", lo, hi, "ordinal", None, True) for q, (lo, hi) in SCALES.items()],
        schemas.QUESTIONS,
    )
    write_build(spark, warehouse, config, questions=questions, participants=participants, examples=examples)

    assert cli.main(["baselines", "--warehouse", warehouse, *offline]) == 2
    assert "no probe table" in capsys.readouterr().err

    assert cli.main(["probe", "--warehouse", warehouse, *offline]) == 0
    assert cli.main(["baselines", "--warehouse", warehouse, "--min-group-size", "1000", *offline]) == 0
    out = capsys.readouterr().out
    probe = Warehouse(spark, warehouse, config).read("probe").toPandas()
    assert len(probe) == 3 * 8 * 5
    got = Warehouse(spark, warehouse, config).read("predictions").toPandas()
    assert got.groupby("model").size().to_dict() == {
        m: len(probe) for m in ("uniform", "majority-leaky", "global-prior", "group-prior")
    }
    assert set(got["status"]) == {"valid"}
    # no group reaches 1000 train answers: group-prior backs off to the global prior everywhere
    group, overall = (
        got[got["model"] == m].set_index(["question_id", "d_interview"]).sort_index()
        for m in ("group-prior", "global-prior")
    )
    assert all(np.allclose(a, b) for a, b in zip(group["distribution"], overall["distribution"]))
    assert f"global {len(probe)}" in out
    # majority is the mode of the probe sample's own answers
    sample = probe.merge(answers, on=["question_id", "d_interview"])
    majority = got[got["model"] == "majority-leaky"]
    for q in SCALES:
        mode = sample.loc[sample["question_id"] == q, "answer"].mode().min()
        assert set(majority.loc[majority["question_id"] == q, "score"]) == {float(mode)}

    # re-running one model replaces only its partition
    assert (
        cli.main(["baselines", "--warehouse", warehouse, "--models", "uniform", "--on", "split:valid", *offline]) == 0
    )
    after = Warehouse(spark, warehouse, config).read("predictions").toPandas()
    assert (after["model"] == "uniform").sum() == int((answers["split"] == "valid").sum())
    kept = ["majority-leaky", "global-prior", "group-prior"]
    key = ["model", "question_id", "d_interview"]
    before_rest = got[got["model"].isin(kept)].sort_values(key)[key + ["score", "source"]].values.tolist()
    after_rest = after[after["model"].isin(kept)].sort_values(key)[key + ["score", "source"]].values.tolist()
    assert before_rest == after_rest
