"""Predictions import: published TSVs, messy JSONL answers, distributions, statuses, re-import."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from warehouse_helpers import write_build

from wvb_spark import cli
from wvb_spark.core import metadata, schemas
from wvb_spark.core.errors import WvbError
from wvb_spark.core.warehouse import Warehouse
from wvb_spark.stages.predictions import number_records, read_records, score_predictions

PROBE_IDS = list(metadata.probe_questions())


def participant_rows(ids):
    schema = schemas.participants_schema()
    rows = []
    for i, d_interview in enumerate(ids):
        row = {f.name: None for f in schema.fields}
        row.update(d_interview=int(d_interview), split="valid", country_code=484, source_row=i + 1)
        rows.append(tuple(row[f.name] for f in schema.fields))
    return rows


def question_rows(ids):
    qs = metadata.questions()
    return [
        (
            q,
            qs[q].text,
            qs[q].category,
            qs[q].use_case,
            qs[q].scale_min,
            qs[q].scale_max,
            qs[q].data_type,
            None,
            q in PROBE_IDS,
        )
        for q in ids
    ]


@pytest.fixture(scope="module")
def fixture_mapping(fixtures_dir):
    """Each distinct fixture PARTICIPANT_ID -> a synthetic respondent id; every 40th left unmapped."""
    ids = sorted(
        set(pd.read_csv(f"{fixtures_dir}/alpaca.tsv", sep="\t", dtype=str)["PARTICIPANT_ID"])
        | set(pd.read_csv(f"{fixtures_dir}/gpt-3.5.tsv", sep="\t", dtype=str)["PARTICIPANT_ID"])
    )
    return {old: str(900000 + i) for i, old in enumerate(ids) if i % 40 != 7}


@pytest.fixture(scope="module")
def frames(spark, fixture_mapping):
    participants = spark.createDataFrame(
        participant_rows(sorted(fixture_mapping.values(), key=int) + ["484070001", "36070002"]),
        schemas.participants_schema(),
    )
    # the 36 probe questions (Q106 has scale 1..10), one more value question (Q94, scale 0..2)
    # and a demographic one (Q288)
    questions = spark.createDataFrame(question_rows(PROBE_IDS + ["Q94", "Q288"]), schemas.QUESTIONS)
    return questions, participants


def independent_counts(path, sep, participants_ids, questions):
    """Status counts computed with pandas, independently of the Spark code."""
    df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    scale = {q: (metadata.questions()[q].scale_min, metadata.questions()[q].scale_max) for q in questions}
    known_q = df["QUESTION_ID"].isin(list(scale))
    known_p = df["PARTICIPANT_ID"].isin(participants_ids)
    dup = df.duplicated(["QUESTION_ID", "PARTICIPANT_ID"], keep="first") & known_q & known_p
    numeric = pd.to_numeric(df["SCORE"].str.strip(), errors="coerce")
    low = df["QUESTION_ID"].map(lambda q: scale.get(q, (np.nan, np.nan))[0])
    high = df["QUESTION_ID"].map(lambda q: scale.get(q, (np.nan, np.nan))[1])
    status = np.select(
        [
            ~known_q,
            ~known_p,
            dup,
            df["SCORE"].str.strip() == "",
            numeric.isna(),
            numeric % 1 != 0,
            (numeric < low) | (numeric > high),
        ],
        [
            "unknown_question",
            "unknown_participant",
            "duplicate",
            "missing",
            "non_numeric",
            "non_integer",
            "out_of_range",
        ],
        default="valid",
    )
    return pd.Series(status).value_counts().to_dict()


def mapped_copy(src, dst, mapping, sep, extra_rows=()):
    df = pd.read_csv(src, sep="\t", dtype=str, keep_default_na=False)
    df["PARTICIPANT_ID"] = df["PARTICIPANT_ID"].map(lambda p: mapping.get(p, p))
    df = pd.concat([df, pd.DataFrame(list(extra_rows), columns=df.columns)], ignore_index=True)
    df.to_csv(dst, sep=sep, index=False)
    return df


def spark_counts(predictions):
    return {r["status"]: r["count"] for r in predictions.groupBy("status").count().collect()}


@pytest.mark.parametrize("fixture,sep,suffix", [("alpaca", "\t", "tsv"), ("gpt-3.5", ",", "csv")])
def test_published_files_counts_match_pandas(
    spark, frames, fixture_mapping, fixtures_dir, tmp_path, fixture, sep, suffix
):
    questions, participants = frames
    mapped_q1 = fixture_mapping[
        pd.read_csv(f"{fixtures_dir}/{fixture}.tsv", sep="\t", dtype=str)
        .query("QUESTION_ID == 'Q1'")["PARTICIPANT_ID"]
        .iloc[0]
    ]
    extra = [
        ("Q1", mapped_q1, "2"),  # duplicate of the file's first Q1 row
        ("Q2", "484070001", "abc"),
        ("Q3", "484070001", "2.5"),
        ("Q46", "484070001", " 3 "),
        ("Q999", "484070001", "3"),
        ("Q288", "484070001", "3"),
        ("Q47", "not-an-id", "1"),
        ("Q94", "36070002", "0"),
        ("Q94", "36070002.0", "2"),
    ]
    path = tmp_path / f"{fixture}.{suffix}"
    mapped_copy(f"{fixtures_dir}/{fixture}.tsv", path, fixture_mapping, sep, extra)
    ids = set(fixture_mapping.values()) | {"484070001", "36070002"}
    expected = independent_counts(path, sep, ids, PROBE_IDS + ["Q94"])
    # pandas compares ids as text; "36070002.0" is the same respondent as "36070002", so it is a duplicate
    expected["duplicate"] = expected.get("duplicate", 0) + 1
    expected["unknown_participant"] -= 1

    raw, parse = read_records(spark, str(path), "auto")
    predictions = score_predictions(raw, questions, participants, fixture, parse_payloads=parse).cache()
    counts = spark_counts(predictions)
    assert counts == expected
    assert sum(counts.values()) == 8280 + len(extra)
    by_source = {
        r["source"]: r
        for r in predictions.where(
            predictions.source.endswith(":8283") | predictions.source.endswith(":8284")
        ).collect()
    }
    assert by_source[f"{fixture}.{suffix}:8283"]["status"] == "non_integer"
    assert by_source[f"{fixture}.{suffix}:8283"]["score"] == 2.5
    assert by_source[f"{fixture}.{suffix}:8284"]["raw_score"] == " 3 "
    assert by_source[f"{fixture}.{suffix}:8284"]["status"] == "valid"
    predictions.unpersist()


def test_fixture_with_unknown_ids_uses_real_values(spark, frames, fixtures_dir):
    """The unmapped fixture file: every participant id is a real WVS id, unknown here."""
    questions, participants = frames
    raw, parse = read_records(spark, f"{fixtures_dir}/alpaca.tsv", "tsv")
    counts = spark_counts(score_predictions(raw, questions, participants, "alpaca", parse_payloads=parse))
    assert counts == {"unknown_participant": 8280}


MESSY = [
    # (json line, expected status, score, parse_method, raw_score)
    (
        {
            "custom_id": "wvb-Q1-484070001-wd",
            "content": '```json\n{"thoughtful explanation": "Family first.", "answer as a score": "1"}\n```',
        },
        "valid",
        1.0,
        "json",
        '```json\n{"thoughtful explanation": "Family first.", "answer as a score": "1"}\n```',
    ),
    (
        {"custom_id": "wvb-Q2-484070001-wd", "content": "{'thoughtful explanation': 'ok', 'answer as a score': '3'}"},
        "valid",
        3.0,
        "json_repaired",
        "{'thoughtful explanation': 'ok', 'answer as a score': '3'}",
    ),
    (
        {"custom_id": "wvb-Q3-484070001-nd", "text": "I would say 2, because work matters."},
        "valid",
        2.0,
        "number_in_text",
        "I would say 2, because work matters.",
    ),
    (
        {"custom_id": "wvb-Q46-484070001-wd", "response": "I refuse to guess."},
        "non_numeric",
        None,
        "none",
        "I refuse to guess.",
    ),
    (
        {"custom_id": "wvb-Q106-484070001-wd", "content": '{"answer as a score": 11} and some prose'},
        "out_of_range",
        11.0,
        "json",
        '{"answer as a score": 11} and some prose',
    ),
    (
        {"custom_id": "wvb-Q106-36070002-wd", "content": '{"answer as a score": "7.5"}'},
        "non_integer",
        7.5,
        "json",
        '{"answer as a score": "7.5"}',
    ),
    (
        {"custom_id": "wvb-Q47-484070001-wd", "response": None, "error": {"message": "rate limited"}},
        "missing",
        None,
        "none",
        "request failed: rate limited",
    ),
    (
        {"custom_id": "wvb-Q1-484070001-wd", "content": '{"answer as a score": 4}'},
        "duplicate",
        4.0,
        "json",
        '{"answer as a score": 4}',
    ),
    (
        {"custom_id": "wvb-Q1-123-wd", "content": '{"answer as a score": 4}'},
        "unknown_participant",
        4.0,
        "json",
        '{"answer as a score": 4}',
    ),
    ({"custom_id": "request-17", "content": "3"}, "unknown_question", None, "none", "3"),
    (
        {"question_id": "Q48", "participant_id": "36070002", "content": "Score: 0 ... no, 4"},
        "valid",
        4.0,
        "number_in_text",
        "Score: 0 ... no, 4",
    ),
    ("this line is not json", "unknown_question", None, "none", "this line is not json"),
]


def test_messy_jsonl_parses_to_expected_values(spark, frames, tmp_path):
    questions, participants = frames
    path = tmp_path / "answers.jsonl"
    lines = [entry if isinstance(entry, str) else json.dumps(entry) for entry, *_ in MESSY]
    path.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n", encoding="utf-8")
    raw, parse = read_records(spark, str(path), "auto")
    rows = sorted(
        score_predictions(raw, questions, participants, "m", parse_payloads=parse).collect(),
        key=lambda r: int(r["source"].split(":")[1]),
    )
    assert len(rows) == len(MESSY)  # the blank line is not a record
    for row, (entry, status, score, method, raw_score) in zip(rows, MESSY):
        assert (row["status"], row["score"], row["parse_method"], row["raw_score"]) == (
            status,
            score,
            method,
            raw_score,
        ), entry
    # line numbers, counting the blank line
    assert [r["source"] for r in rows[2:4]] == ["answers.jsonl:3", "answers.jsonl:5"]
    assert rows[0]["question_id"] == "Q1" and rows[0]["d_interview"] == 484070001


def test_distribution_columns_and_logprobs(spark, frames, tmp_path):
    questions, participants = frames
    csv = tmp_path / "dist.csv"
    # Q1 has scale 1..4 (P0 blank); Q94 has 0..2 (P3, P4 blank)
    csv.write_text(
        "QUESTION_ID,PARTICIPANT_ID,P0,P1,P2,P3,P4\n"
        "Q1,484070001,,1,1,2,0\n"  # valid: [.25,.25,.5,0], lower median 2 (cum .25,.5)
        "Q2,484070001,0.3,0.2,0.8,,\n"  # mass on 0, outside 1..4
        "Q3,484070001,,,,,\n"  # nothing given
        "Q46,484070001,,0.5,-0.5,1,0\n"  # negative
        "Q94,36070002,0.1,0.1,0.8,,\n",
        encoding="utf-8",
    )
    raw, parse = read_records(spark, str(csv), "auto")
    rows = {
        r["question_id"]: r
        for r in score_predictions(raw, questions, participants, "d", parse_payloads=parse).collect()
    }
    assert rows["Q1"]["status"] == "valid"
    assert rows["Q1"]["distribution"] == pytest.approx([0.25, 0.25, 0.5, 0.0])
    assert rows["Q1"]["score"] == 2.0
    assert rows["Q1"]["parse_method"] == "probabilities"
    assert [rows[q]["status"] for q in ("Q2", "Q3", "Q46")] == ["out_of_range", "missing", "non_numeric"]
    assert rows["Q2"]["distribution"] is None and rows["Q2"]["score"] is None
    assert rows["Q94"]["distribution"] == pytest.approx([0.1, 0.1, 0.8])
    assert rows["Q94"]["score"] == 2.0

    jsonl = tmp_path / "dist.jsonl"
    jsonl.write_text(
        json.dumps({"custom_id": "wvb-Q1-484070001-wd", "logprobs": {"1": -0.1, "2": -2.0, "4": -3.0}})
        + "\n"
        + json.dumps({"question_id": "Q2", "participant_id": 484070001, "distribution": [0.7, 0.1, 0.1]})
        + "\n",
        encoding="utf-8",
    )
    raw, parse = read_records(spark, str(jsonl), "auto")
    rows = {
        r["question_id"]: r
        for r in score_predictions(raw, questions, participants, "d", parse_payloads=parse).collect()
    }
    weights = [math.exp(-0.1), math.exp(-2.0), 0.0, math.exp(-3.0)]
    assert rows["Q1"]["distribution"] == pytest.approx([w / sum(weights) for w in weights])
    assert rows["Q1"]["score"] == 1.0 and rows["Q1"]["parse_method"] == "logprobs"
    assert rows["Q2"]["status"] == "out_of_range"  # 3 entries for a 4-point scale


def test_record_numbers_are_line_numbers_across_partitions(spark, tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"n": i, "pad": "x" * 40}) + "\n" for i in range(1, 401)), encoding="utf-8")
    previous = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "2000")
    try:
        lines = spark.read.text(str(path))
        assert lines.rdd.getNumPartitions() > 3
        numbered = number_records(lines).collect()
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", previous)
    assert sorted((r["record"], json.loads(r["value"])["n"]) for r in numbered) == [(i, i) for i in range(1, 401)]


def test_bad_files_are_one_line_errors(spark, tmp_path):
    with pytest.raises(WvbError, match="file not found"):
        read_records(spark, str(tmp_path / "nope.tsv"), "auto")
    bad = tmp_path / "bad.tsv"
    bad.write_text("QUESTION_ID\tPARTICIPANT\tSCORE\nQ1\t1\t2\n", encoding="utf-8")
    with pytest.raises(WvbError, match="missing column.*PARTICIPANT_ID"):
        read_records(spark, str(bad), "auto")


@pytest.fixture(scope="module")
def warehouse(spark, frames, tmp_path_factory):
    questions, participants = frames
    root = str(tmp_path_factory.mktemp("warehouse"))
    config = {"storage": {"writer": "offline"}}
    write_build(spark, root, config, questions=questions, participants=participants)
    return root


def _predictions(spark, warehouse):
    df = Warehouse(spark, warehouse, {"storage": {"writer": "offline"}}).read("predictions")
    return {(r["model"], r["question_id"], r["d_interview"], r["status"]) for r in df.collect()}


def test_reimport_replaces_only_that_model(spark, warehouse, tmp_path, capsys):
    first = tmp_path / "a.tsv"
    first.write_text("QUESTION_ID\tPARTICIPANT_ID\tSCORE\nQ1\t484070001\t2\nQ2\t484070001\t\n", encoding="utf-8")
    other = tmp_path / "b.csv"
    other.write_text("QUESTION_ID,PARTICIPANT_ID,SCORE\nQ1,36070002,9\n", encoding="utf-8")
    base = ["--set", "storage.writer=offline", "predictions", "import", "--warehouse", warehouse]
    assert cli.main(base[2:4] + base[:2] + base[4:] + ["--model", "a", "--file", str(first)]) == 0
    assert "2 rows read; valid 1, missing 1," in capsys.readouterr().out
    assert (
        cli.main(
            [
                "predictions",
                "import",
                "--warehouse",
                warehouse,
                "--model",
                "b",
                "--file",
                str(other),
                "--set",
                "storage.writer=offline",
            ]
        )
        == 0
    )
    assert _predictions(spark, warehouse) == {
        ("a", "Q1", 484070001, "valid"),
        ("a", "Q2", 484070001, "missing"),
        ("b", "Q1", 36070002, "out_of_range"),
    }
    first.write_text("QUESTION_ID\tPARTICIPANT_ID\tSCORE\nQ3\t484070001\t4\n", encoding="utf-8")
    assert (
        cli.main(
            [
                "predictions",
                "import",
                "--warehouse",
                warehouse,
                "--model",
                "a",
                "--file",
                str(first),
                "--set",
                "storage.writer=offline",
            ]
        )
        == 0
    )
    assert _predictions(spark, warehouse) == {("a", "Q3", 484070001, "valid"), ("b", "Q1", 36070002, "out_of_range")}


def test_cli_errors_exit_2(warehouse, tmp_path, capsys):
    code = cli.main(
        [
            "predictions",
            "import",
            "--warehouse",
            warehouse,
            "--model",
            "x",
            "--file",
            str(tmp_path / "missing.tsv"),
            "--set",
            "storage.writer=offline",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "file not found" in err
