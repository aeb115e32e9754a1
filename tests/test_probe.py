"""`wvb probe`: per-group counts against an independent pandas count, seeds, eligibility."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from wvb_spark.core import config as wvb_config
from wvb_spark.core.errors import WvbError
from wvb_spark.core.warehouse import Warehouse
from wvb_spark.stages import probe
from wvb_spark.transforms import selection

GROUP_BY = ["continent", "urban_rural", "education_level"]
QUESTIONS = ["Q1", "Q2", "Q3"]
# valid-split respondents per group; groups of 5 or fewer must be skipped with k = 5
VALID_GROUP_SIZES = {
    ("Asia", "Urban", "Tertiary"): 12,
    ("Asia", "Urban", "Lower Secondary"): 7,
    ("Asia", "Rural", "Tertiary"): 5,
    ("Asia", "Rural", "Lower Secondary"): 3,
    ("Europe", "Urban", "Tertiary"): 9,
    ("Europe", "Urban", "Lower Secondary"): 1,
    ("Europe", "Rural", "Tertiary"): 6,
    ("Europe", "Rural", "Lower Secondary"): 20,
}
PARTICIPANT_SCHEMA = (
    "d_interview long, split string, continent string, urban_rural string, education_level string, sex string"
)
EXAMPLE_SCHEMA = "d_interview long, question_id string, answer int, split string"


def make_people_and_answers() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Valid respondents in the groups above (each answers each question with p=0.8),
    plus train/test respondents in the same groups, valid ones with a null group value,
    an answer to an unchosen question, and an answer with no participant row."""
    rng = np.random.default_rng(11)
    people, answers = [], []
    next_id = 1000

    def add(split, continent, urban, education, sex="Female", answer_prob=0.8):
        nonlocal next_id
        next_id += 1
        people.append((next_id, split, continent, urban, education, sex))
        for q in QUESTIONS + ["Q4"]:
            if rng.random() < answer_prob:
                answers.append((next_id, q, int(rng.integers(1, 5)), split))
        return next_id

    for (continent, urban, education), size in VALID_GROUP_SIZES.items():
        for _ in range(size):
            if (continent, urban, education) == ("Europe", "Urban", "Lower Secondary"):
                # its only member answers Q1 alone: for Q2 and Q3 the group has 0 eligible
                pid = add("valid", continent, urban, education, answer_prob=0.0)
                answers.append((pid, "Q1", 2, "valid"))
            else:
                add("valid", continent, urban, education)
        for split in ("train", "test"):
            for _ in range(8):
                add(split, continent, urban, education)
    add("valid", "Asia", "Urban", None)
    add("valid", None, "Rural", "Tertiary")
    add("valid", "Europe", None, "Tertiary", answer_prob=1.0)
    answers.append((999_999, "Q1", 3, "valid"))  # no participant row
    return (
        pd.DataFrame(people, columns=["d_interview", "split", *GROUP_BY, "sex"]),
        pd.DataFrame(answers, columns=["d_interview", "question_id", "answer", "split"]),
    )


@pytest.fixture(scope="module")
def tables(spark):
    people, answers = make_people_and_answers()
    participants = spark.createDataFrame(list(people.itertuples(index=False, name=None)), PARTICIPANT_SCHEMA)
    examples = spark.createDataFrame(list(answers.itertuples(index=False, name=None)), EXAMPLE_SCHEMA)
    return people, answers, participants, examples


def expected_eligible(people: pd.DataFrame, answers: pd.DataFrame, split="valid") -> pd.DataFrame:
    chosen = answers[(answers["split"] == split) & answers["question_id"].isin(QUESTIONS)]
    merged = chosen.merge(people[people["split"] == split], on="d_interview", suffixes=("", "_p"))
    return merged.dropna(subset=GROUP_BY)


def run(participants, examples, *, per_group=5, min_group_size=6, seed=0):
    answers = probe.answers_with_groups(examples, participants, QUESTIONS, "valid", GROUP_BY)
    sample = probe.sample_probe(
        answers, split="valid", group_by=GROUP_BY, per_group=per_group, min_group_size=min_group_size, seed=seed
    )
    report = probe.group_report(
        answers,
        participants,
        QUESTIONS,
        split="valid",
        group_by=GROUP_BY,
        per_group=per_group,
        min_group_size=min_group_size,
    )
    return answers, sample.toPandas(), report.toPandas()


@pytest.mark.parametrize("per_group,min_group_size", [(5, 6), (2, 1), (3, 9)])
def test_per_group_counts_match_an_independent_count(tables, per_group, min_group_size):
    people, answers, participants, examples = tables
    _, sample, report = run(participants, examples, per_group=per_group, min_group_size=min_group_size)

    eligible = expected_eligible(people, answers)
    sizes = eligible.groupby(["question_id", *GROUP_BY]).size()
    expected = {key: min(per_group, n) for key, n in sizes.items() if n >= min_group_size}
    got = sample.groupby(["question_id", *GROUP_BY]).size().to_dict()
    assert got == expected
    # group_size on every probe row is the group's eligible count
    for row in sample.itertuples(index=False):
        assert row.group_size == sizes[(row.question_id, row.continent, row.urban_rural, row.education_level)]
    assert sorted(sample["rank"].unique()) == list(range(1, min(per_group, sizes.max()) + 1))

    # the report: every question x every group present in the split, kept or skipped
    assert len(report) == len(QUESTIONS) * len(VALID_GROUP_SIZES)
    for row in report.itertuples(index=False):
        key = (row.question_id, row.continent, row.urban_rural, row.education_level)
        n = int(sizes.get(key, 0))
        assert row.group_size == n
        assert row.status == ("kept" if n >= min_group_size else "skipped")
        assert row.sampled == (min(per_group, n) if n >= min_group_size else 0)
    assert report["sampled"].sum() == len(sample)


def test_published_rule_skips_groups_of_five_or_fewer(tables):
    people, answers, participants, examples = tables
    _, sample, report = run(participants, examples, per_group=5, min_group_size=6)
    skipped = report[report["status"] == "skipped"]
    assert (skipped["group_size"] <= 5).all() and (report[report["status"] == "kept"]["group_size"] >= 6).all()
    # the one-member group has nobody for Q2 and Q3: reported with size 0, not missing
    lonely = report[
        (report["continent"] == "Europe")
        & (report["urban_rural"] == "Urban")
        & (report["education_level"] == "Lower Secondary")
    ].set_index("question_id")
    assert lonely.loc["Q1", "group_size"] == 1 and lonely.loc["Q2", "group_size"] == 0
    assert set(lonely["status"]) == {"skipped"}
    # kept groups yield exactly 5 rows each
    assert (sample.groupby(["question_id", *GROUP_BY]).size() == 5).all()


def test_only_valid_split_respondents_who_answered(tables):
    people, answers, participants, examples = tables
    _, sample, _ = run(participants, examples, per_group=50, min_group_size=1)
    valid_ids = set(people.loc[people["split"] == "valid", "d_interview"])
    answered = set(zip(answers["question_id"], answers["d_interview"]))
    assert set(sample["d_interview"]) <= valid_ids
    assert all((q, d) in answered for q, d in zip(sample["question_id"], sample["d_interview"]))
    assert set(sample["split"]) == {"valid"}
    assert not sample[GROUP_BY].isna().any().any()
    # with k above every group size, the probe is exactly the eligible set
    eligible = expected_eligible(people, answers)
    assert set(zip(sample["question_id"], sample["d_interview"])) == set(
        zip(eligible["question_id"], eligible["d_interview"])
    )
    assert not sample.duplicated(["question_id", "d_interview"]).any()


def test_counts_reconcile_and_null_groups_are_reported(tables):
    people, answers, participants, examples = tables
    answer_rows, _, _ = run(participants, examples)
    counts = probe.answer_counts(answer_rows, GROUP_BY)
    in_split = answers[(answers["split"] == "valid") & answers["question_id"].isin(QUESTIONS)]
    merged = in_split.merge(people[people["split"] == "valid"], on="d_interview", how="left", indicator=True)
    has_person = merged["_merge"] == "both"
    null_group = has_person & merged[GROUP_BY].isna().any(axis=1)
    assert counts["answers"] == len(in_split)
    assert counts["no_participant"] == int((~has_person).sum()) == 1
    assert counts["null_group"] == int(null_group.sum()) > 0
    assert counts["null_group_respondents"] == merged.loc[null_group, "d_interview"].nunique() == 3
    assert counts["eligible"] + counts["null_group"] + counts["no_participant"] == counts["answers"]


def test_same_seed_same_sample_other_seed_other_sample(tables):
    _, _, participants, examples = tables

    def pairs(seed):
        _, sample, _ = run(participants, examples, seed=seed)
        return sorted(zip(sample["question_id"], sample["d_interview"], sample["rank"]))

    first, again, other = pairs(0), pairs(0), pairs(1)
    assert first == again
    assert {p[:2] for p in first} != {p[:2] for p in other}
    assert len(first) == len(other)  # same design, different people


def test_ranks_follow_input_order_nowhere(tables, spark):
    """The sample does not depend on how the input is partitioned or ordered."""
    _, _, participants, examples = tables
    _, sample, _ = run(participants, examples)
    shuffled = examples.orderBy("answer", "d_interview").repartition(3)
    _, again, _ = run(participants.repartition(2), shuffled)
    key = ["question_id", "d_interview", "rank"]
    assert sample.sort_values(key)[key].values.tolist() == again.sort_values(key)[key].values.tolist()


# --------------------------------------------------------------------------- options


@pytest.fixture(scope="module")
def questions_df(spark):
    rows = [
        ("Q1", "Social Values", "value", True),
        ("Q2", "Social Values", "value", False),
        ("Q3", "Ethical Values", "value", True),
        ("Q260", "Demographics", "demographic", False),
    ]
    return spark.createDataFrame(rows, "question_id string, category string, use_case string, is_probe boolean")


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("probe", ["Q1", "Q3"]),
        ("all", ["Q1", "Q2", "Q3"]),
        ("social values", ["Q1", "Q2"]),
        ("Q3,Q1", ["Q1", "Q3"]),
        ("Q2", ["Q2"]),
    ],
)
def test_question_specs(questions_df, spec, expected):
    assert selection.resolve_questions(questions_df, spec) == expected


@pytest.mark.parametrize("spec,message", [("Q9", "Q9"), ("Q1,Q260", "demographic"), ("nonsense", "nonsense")])
def test_bad_question_specs_are_one_line_errors(questions_df, spec, message):
    with pytest.raises(WvbError, match=message):
        selection.resolve_questions(questions_df, spec)


def test_defaults_reproduce_the_published_design():
    args = argparse.Namespace(questions=None, split=None, group_by=None, per_group=None, min_group_size=None, seed=None)
    settings = probe.resolve_settings(wvb_config.with_options(wvb_config.load(), probe.SETTINGS, args, probe.OPTIONS))
    assert settings == {
        "questions": "probe",
        "split": "valid",
        "group_by": GROUP_BY,
        "per_group": 5,
        "min_group_size": 6,
        "seed": 0,
    }
    args.per_group, args.group_by = 3, "continent,sex"
    settings = probe.resolve_settings(wvb_config.with_options(wvb_config.load(), probe.SETTINGS, args, probe.OPTIONS))
    assert settings["min_group_size"] == 4 and settings["group_by"] == ["continent", "sex"]


def test_unknown_group_column_is_a_one_line_error(tables):
    _, _, participants, _ = tables
    with pytest.raises(WvbError, match="no participants column colour"):
        selection.check_group_columns(participants, ["continent", "colour"], probe.RESERVED_COLUMNS)
    with pytest.raises(WvbError, match="rank"):
        selection.check_group_columns(participants, ["rank"], probe.RESERVED_COLUMNS)


# --------------------------------------------------------------------------- the command


def metadata_questions(spark):
    from wvb_spark.core import metadata, schemas

    probe_ids = set(metadata.probe_questions())
    rows = [
        (
            q.question_id,
            q.text,
            q.category,
            q.use_case,
            q.scale_min,
            q.scale_max,
            q.data_type,
            None,
            q.question_id in probe_ids,
        )
        for q in metadata.questions().values()
    ]
    return spark.createDataFrame(rows, schemas.QUESTIONS)


def test_command_writes_probe_and_group_report(spark, tables, tmp_path, capsys):
    from warehouse_helpers import write_build

    from wvb_spark import cli

    people, answers, participants, examples = tables
    warehouse = str(tmp_path / "wh")
    config = wvb_config.load(None, ["storage.writer=offline"])
    write_build(
        spark, warehouse, config, questions=metadata_questions(spark), participants=participants, examples=examples
    )

    # defaults: the 36 probe questions; only Q1..Q3 have answers here
    assert cli.main(["probe", "--warehouse", warehouse, "--set", "storage.writer=offline"]) == 0
    out = capsys.readouterr().out
    written = Warehouse(spark, warehouse, config).read("probe").toPandas()
    groups = Warehouse(spark, warehouse, config).read("probe_groups").toPandas()
    sizes = expected_eligible(people, answers).groupby(["question_id", *GROUP_BY]).size()
    expected = {key: 5 for key, n in sizes.items() if n >= 6}
    assert written.groupby(["question_id", *GROUP_BY]).size().to_dict() == expected
    assert list(written.columns) == ["question_id", "d_interview", "split", *GROUP_BY, "group_size", "rank"]
    assert len(groups) == 36 * len(VALID_GROUP_SIZES)
    kept = len(expected)
    assert (groups["status"] == "kept").sum() == kept
    assert f"{36 * 8} in all, {kept} kept ({5 * kept} rows), {36 * 8 - kept} skipped" in out
    info = Warehouse(None, warehouse, config).commit_info("probe")
    assert info["counts"]["skipped_groups"] == 36 * 8 - kept and info["options"]["seed"] == 0

    # the same command again gives the same table; another seed another one
    assert cli.main(["probe", "--warehouse", warehouse, "--set", "storage.writer=offline"]) == 0
    again = Warehouse(spark, warehouse, config).read("probe").toPandas()
    assert again.values.tolist() == written.values.tolist()
    assert (
        cli.main(
            [
                "probe",
                "--warehouse",
                warehouse,
                "--seed",
                "9",
                "--questions",
                "Q1,Q2",
                "--set",
                "storage.writer=offline",
            ]
        )
        == 0
    )
    other = Warehouse(spark, warehouse, config).read("probe").toPandas()
    assert set(other["question_id"]) == {"Q1", "Q2"}
    assert set(zip(other["question_id"], other["d_interview"])) != set(
        zip(
            written.loc[written["question_id"] != "Q3", "question_id"],
            written.loc[written["question_id"] != "Q3", "d_interview"],
        )
    )


def test_command_errors_are_one_line(spark, tables, tmp_path, capsys):
    from wvb_spark import cli

    assert cli.main(["probe", "--warehouse", str(tmp_path / "empty"), "--set", "storage.writer=offline"]) == 2
    err = capsys.readouterr().err
    assert "no questions table" in err and len(err.strip().splitlines()) == 1
