"""Model text -> score: each messy shape with its expected score text and method, by hand."""

from __future__ import annotations

import math

import pytest

from wvb_spark.compute.answer_parsing import first_number_on_scale, parse_answer, parse_distribution

CASES = [
    # (model text, scale, expected score_text, expected method)
    ('{"thoughtful explanation": "Family matters.", "answer as a score": "1"}', (1, 4), "1", "json"),
    ('{"thoughtful explanation": "x", "answer as a score": 3}', (1, 4), "3", "json"),
    ('```json\n{\n  "thoughtful explanation": "x",\n  "answer as a score": "2"\n}\n```', (1, 4), "2", "json"),
    (
        'Sure! Here is my answer:\n{"answer as a score": "7", "thoughtful explanation": "y"}\nHope it helps, 1 2 3',
        (1, 10),
        "7",
        "json",
    ),
    ('{"Answer_As_A_Score": 4}', (1, 4), "4", "json"),
    ('{"thoughtful explanation": "x", "answer as a score": "3 - Rather important"}', (1, 4), "3", "json"),
    ('{"thoughtful explanation": "x", "answer as a score": 2.5}', (1, 4), "2.5", "json"),
    ('{"thoughtful explanation": "x", "answer as a score": "N/A"}', (1, 4), "N/A", "json"),
    ('{"thoughtful explanation": "x", "answer as a score": ""}', (1, 4), "", "json"),
    ("{'thoughtful explanation': 'They value family.', 'answer as a score': '2'}", (1, 4), "2", "json_repaired"),
    ('{"thoughtful explanation": "x", "answer as a score": "9",}', (1, 10), "9", "json_repaired"),
    ('{"thoughtful explanation": "x", "answer as a score": "5"', (1, 10), "5", "json_repaired"),
    ('"thoughtful explanation": "cut off", "answer as a score": 8 and then', (1, 10), "8", "json_repaired"),
    ("I think Person X, aged 47 in Q1 terms, would answer 3 on this scale.", (1, 4), "3", "number_in_text"),
    ("On balance 11 is too high; I'd say 10.", (1, 10), "10", "number_in_text"),
    ("Score: 0", (0, 10), "0", "number_in_text"),
    ("I cannot answer that.", (1, 4), None, "none"),
    ("The answer is 12.", (1, 4), None, "none"),
    ("", (1, 4), None, "none"),
    (None, (1, 4), None, "none"),
]


@pytest.mark.parametrize("text,scale,score_text,method", CASES)
def test_parse_answer(text, scale, score_text, method):
    parsed = parse_answer(text, *scale)
    assert (parsed.score_text, parsed.parse_method) == (score_text, method)


def test_first_number_needs_a_scale():
    assert first_number_on_scale("3", None, None) is None
    assert first_number_on_scale("-1 or +2", 1, 4) == "2"


def test_distribution_list_is_normalised():
    parsed = parse_distribution("[1, 1, 2, 0]", "probabilities", 1, 4)
    assert parsed.status == "valid"
    assert parsed.distribution == pytest.approx([0.25, 0.25, 0.5, 0.0])


def test_distribution_object_of_logprobs():
    parsed = parse_distribution('{"0": -0.5, "2": -1.5}', "logprobs", 0, 2)
    total = math.exp(-0.5) + math.exp(-1.5)
    assert parsed.status == "valid"
    assert parsed.distribution == pytest.approx([math.exp(-0.5) / total, 0.0, math.exp(-1.5) / total])


def test_distribution_blank_entries_are_zero():
    parsed = parse_distribution('{"1": "0.2", "2": "", "3": "0.6", "9": ""}', "probabilities", 1, 3)
    assert parsed.status == "valid"
    assert parsed.distribution == pytest.approx([0.25, 0.0, 0.75])


@pytest.mark.parametrize(
    "payload,kind,status",
    [
        (None, "probabilities", "missing"),
        ("[]", "probabilities", "missing"),
        ('{"1": ""}', "probabilities", "missing"),
        ("[0.5, 0.5]", "probabilities", "out_of_range"),
        ('{"5": 0.3, "1": 0.7}', "probabilities", "out_of_range"),
        ("[0.5, -0.1, 0.6]", "probabilities", "non_numeric"),
        ('[0.5, "lots", 0.5]', "probabilities", "non_numeric"),
        ("[0, 0, 0]", "probabilities", "non_numeric"),
        ("[-0.1, 0.3, -2]", "logprobs", "non_numeric"),
        ("not json", "probabilities", "non_numeric"),
    ],
)
def test_distribution_bad_rows(payload, kind, status):
    parsed = parse_distribution(payload, kind, 1, 3)
    assert (parsed.distribution, parsed.status) == (None, status)
