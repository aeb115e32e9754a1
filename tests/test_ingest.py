"""Parsing raw lines: official-file variants and refused lines, without Spark."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from wvb_spark.core import metadata
from wvb_spark.stages.synth import write_synthetic_wvs
from wvb_spark.transforms import ingest


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("ingest") / "wvs.csv"
    write_synthetic_wvs(str(path), respondents=40, seed=3)
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:6]]


def _parse(header, rows, separator=","):
    lines = [separator.join(fields) for fields in rows]
    batch = ingest.parse_batch(np.arange(2, len(lines) + 2), lines, header, separator)
    return pa.Table.from_batches([batch]).to_pylist()


def test_v6_like_layout_semicolons_quotes_and_extra_columns(sample):
    header, rows = sample
    # the official download starts with quoted version/doi columns and quotes its strings
    wide_header = ["version", "doi", *header, "Y001"]
    wide_rows = [
        [
            '"6-0-0 (2024-01-01)"',
            '"doi.org/10.14281/18241.24"',
            *[f'"{v}"' if not v.lstrip("-").replace(".", "").isdigit() else v for v in fields],
            "3",
        ]
        for fields in rows
    ]
    parsed = _parse(wide_header, wide_rows, separator=";")
    expected = _parse(header, rows)
    assert [r["reject_reason"] for r in parsed] == [None] * len(rows)
    assert [r["d_interview"] for r in parsed] == [int(f[header.index("D_INTERVIEW")]) for f in rows]
    for got, want in zip(parsed, expected):
        assert got["answers"] == want["answers"] and got["Q275"] == want["Q275"] and got["W_WEIGHT"] == want["W_WEIGHT"]


def test_answers_follow_the_adjustments_and_scales(sample):
    header, rows = sample
    q56, q111, q1 = (header.index(q) for q in ("Q56", "Q111", "Q1"))
    rows = [list(fields) for fields in rows[:3]]
    rows[0][q56], rows[0][q111], rows[0][q1] = "2", "3", "-2"  # 2 -> 3; 3 -> no answer; -2 missing
    rows[1][q56], rows[1][q111], rows[1][q1] = "3", "1", "7"  # 3 -> 2; 1 kept; 7 off Q1's 1..4 scale
    parsed = _parse(header, rows)
    position = {q: i for i, q in enumerate(metadata.value_question_ids())}
    assert parsed[0]["answers"][position["Q56"]] == 3
    assert parsed[0]["answers"][position["Q111"]] is None and parsed[0]["n_adjusted_to_missing"] >= 1
    assert parsed[0]["answers"][position["Q1"]] is None and parsed[0]["n_code_m2"] >= 1
    assert parsed[1]["answers"][position["Q56"]] == 2 and parsed[1]["answers"][position["Q111"]] == 1
    assert parsed[1]["out_of_range_positions"] == [position["Q1"]] and parsed[1]["out_of_range_codes"] == ["7"]
    for row in parsed:
        counted = sum(row[c] for c in ingest.COUNT_COLUMNS)
        assert counted == len(metadata.value_question_ids())


def test_refused_lines_carry_their_reason(sample):
    header, rows = sample
    rows = [list(fields) for fields in rows]
    rows[0][header.index("D_INTERVIEW")] = ""
    rows[1][header.index("Q10")] = "1.5"
    rows[2][header.index("W_WEIGHT")] = "heavy"
    rows[3] = rows[3][:-1]
    parsed = _parse(header, rows)
    assert [r["reject_reason"] for r in parsed] == [
        "bad_d_interview",
        "non_numeric_code",
        "non_numeric_weight",
        "wrong_field_count",
        None,
    ]
    assert parsed[1]["reject_value"] == "Q10=1.5"
    assert parsed[2]["reject_value"] == "W_WEIGHT=heavy"
    assert parsed[3]["reject_value"] == f"{len(header) - 1} fields, header has {len(header)}"
    assert parsed[3]["d_interview"] == int(rows[3][header.index("D_INTERVIEW")])
    assert all(r["answers"] is None for r in parsed[:4]) and parsed[4]["answers"] is not None
