"""The simulated biased model: draws follow the source distribution, shifted and clipped."""

from __future__ import annotations

from scipy import stats

from wvb_spark.stages.simulate import biased_answers

QUESTIONS = [("Q1", 1, 4), ("Q2", 1, 10)]


def _frames(spark, rows):
    source = spark.createDataFrame(rows, "question_id string, d_interview long, distribution array<double>")
    questions = spark.createDataFrame(QUESTIONS, "question_id string, scale_min int, scale_max int")
    return source, questions


def test_one_hot_draws_are_shifted_and_clipped(spark):
    rows = [("Q1", i, [0.0, 1.0, 0.0, 0.0]) for i in range(50)] + [
        ("Q1", 100 + i, [0.0, 0.0, 0.0, 1.0]) for i in range(50)
    ]
    source, questions = _frames(spark, rows)
    got = {r.d_interview: r.score for r in biased_answers(source, questions, shift=1, spoil_rate=0.0, seed=3).collect()}
    assert all(got[i] == "3" for i in range(50))  # 2 + 1
    assert all(got[100 + i] == "4" for i in range(50))  # 4 + 1, clipped at the top


def test_draws_follow_the_distribution(spark):
    probabilities = [0.1, 0.2, 0.3, 0.4]
    rows = [("Q1", i, probabilities) for i in range(4000)]
    source, questions = _frames(spark, rows)
    scores = [int(r.score) for r in biased_answers(source, questions, shift=0, spoil_rate=0.0, seed=5).collect()]
    observed = [scores.count(point) for point in (1, 2, 3, 4)]
    expected = [p * len(scores) for p in probabilities]
    assert stats.chisquare(observed, expected).pvalue > 0.001


def test_spoiled_rows_take_the_three_documented_forms_and_seed_decides(spark):
    rows = [("Q2", i, [0.1] * 10) for i in range(900)]
    source, questions = _frames(spark, rows)
    first = {
        r.d_interview: r.score for r in biased_answers(source, questions, shift=1, spoil_rate=1.0, seed=1).collect()
    }
    assert set(first.values()) == {"", "I cannot say", "12"}
    shares = {v: list(first.values()).count(v) / 900 for v in set(first.values())}
    assert all(abs(share - 1 / 3) < 0.06 for share in shares.values())
    again = {
        r.d_interview: r.score for r in biased_answers(source, questions, shift=1, spoil_rate=0.03, seed=1).collect()
    }
    same = {
        r.d_interview: r.score for r in biased_answers(source, questions, shift=1, spoil_rate=0.03, seed=1).collect()
    }
    other = {
        r.d_interview: r.score for r in biased_answers(source, questions, shift=1, spoil_rate=0.03, seed=2).collect()
    }
    assert again == same and again != other
