"""Import of every answer shape: batch output with top log-probabilities (chat and legacy
completions), sampled and verbalised answers, Anthropic / Bedrock / Together batches,
lm-evaluation-harness samples, inspect_ai eval logs. Expected distributions are computed here with numpy from
the numbers in the fixture, never taken from the code under test.

Fixtures under tests/fixtures/batch/ follow the JSONL shapes of the vendors' documentation
and were written by hand (see that folder's README); the lm-evaluation-harness file under
tests/fixtures/lm_eval/ was produced by the real harness, the logs under
tests/fixtures/inspect/ by inspect_ai itself (mockllm/model).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from test_predictions import participant_rows, question_rows
from warehouse_helpers import write_build

from wvb_spark import cli
from wvb_spark.core import metadata, schemas
from wvb_spark.core.errors import InputError, WvbError
from wvb_spark.core.warehouse import Warehouse
from wvb_spark.stages.predictions import read_records, score_predictions

PEOPLE = ["484070001", "36070002"]
QUESTIONS = list(metadata.probe_questions()) + ["Q94"]
BATCH = os.path.join(os.path.dirname(__file__), "fixtures", "batch")


@pytest.fixture(scope="module")
def frames(spark):
    participants = spark.createDataFrame(participant_rows(PEOPLE), schemas.participants_schema())
    questions = spark.createDataFrame(question_rows(QUESTIONS), schemas.QUESTIONS)
    return questions, participants


def scored(spark, frames, path, fmt="auto", **files):
    questions, participants = frames
    raw, parse = read_records(spark, str(path), fmt, **files)
    rows = score_predictions(raw, questions, participants, "m", parse_payloads=parse).collect()
    return sorted(rows, key=lambda r: r["source"] or "")


def by_hand(pairs, low, high):
    """Distribution over low..high and off-scale mass from (token, logprob) pairs, by hand."""
    weights = np.zeros(high - low + 1)
    for token, logprob in pairs:
        text = token.strip()
        if text.isdigit() and low <= int(text) <= high:
            weights[int(text) - low] += np.exp(logprob)
    return weights / weights.sum(), 1.0 - weights.sum()


def test_openai_chat_logprobs_with_error_file(spark, frames):
    rows = scored(spark, frames, f"{BATCH}/openai_chat_logprobs.jsonl", errors=f"{BATCH}/openai_errors.jsonl")
    assert len(rows) == 7  # 6 lines + 1 error-file line: every record a row
    got = {r["source"]: r for r in rows}
    q1 = got["openai_chat_logprobs.jsonl:1"]
    dist, off = by_hand([("1", -0.3), ("2", -1.9), (" 1", -3.5), ("I", -4.0), ("3", -5.0)], 1, 4)
    assert q1["status"] == "valid" and q1["parse_method"] == "chat_logprobs"
    assert q1["distribution"] == pytest.approx(dist.tolist())
    assert q1["off_scale_mass"] == pytest.approx(off)
    assert q1["score"] == 1.0  # lower median: P(1) > 1/2
    refusal = got["openai_chat_logprobs.jsonl:2"]
    assert (refusal["status"], refusal["distribution"], refusal["parse_method"]) == (
        "non_numeric",
        None,
        "chat_logprobs",
    )
    assert refusal["off_scale_mass"] == pytest.approx(1.0)
    failed = got["openai_chat_logprobs.jsonl:3"]
    assert failed["status"] == "missing" and failed["parse_method"] == "chat_logprobs"
    assert "server_error" in failed["raw_score"]
    ten = got["openai_chat_logprobs.jsonl:4"]  # Q106: scale 1..10; "11" and "0" are off the scale
    dist, off = by_hand([("10", -0.7), ("1", -1.8), ("9", -2.3), ("11", -3.0), ("0", -3.5)], 1, 10)
    assert ten["distribution"] == pytest.approx(dist.tolist()) and ten["off_scale_mass"] == pytest.approx(off)
    assert got["openai_chat_logprobs.jsonl:5"]["status"] == "duplicate"
    zero_based = got["openai_chat_logprobs.jsonl:6"]  # Q94: scale 0..2
    dist, off = by_hand([("0", -1.2), ("2", -0.7), ("1", -2.3)], 0, 2)
    assert zero_based["distribution"] == pytest.approx(dist.tolist())
    assert zero_based["score"] == 2.0  # cumulative 0.30, 0.40, 1.0
    error_line = got["openai_errors.jsonl:1"]
    assert (error_line["question_id"], error_line["status"]) == ("Q46", "missing")
    assert "rate_limit_exceeded" in error_line["raw_score"]


def test_legacy_completions_logprobs(spark, frames):
    [row] = scored(spark, frames, f"{BATCH}/completions_logprobs.jsonl")
    dist, off = by_hand([(" 2", -0.5), (" 3", -1.5), (" 1", -3.0), (" The", -3.3)], 1, 4)
    assert (row["status"], row["parse_method"], row["d_interview"]) == ("valid", "completion_logprobs", 36070002)
    assert row["distribution"] == pytest.approx(dist.tolist())
    assert row["off_scale_mass"] == pytest.approx(off)


def _chat_line(custom_id, top=None, content="3"):
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    if top is not None:
        choice["logprobs"] = {
            "content": [
                {
                    "token": top[0][0],
                    "logprob": top[0][1],
                    "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top],
                }
            ]
        }
    return json.dumps({"custom_id": custom_id, "response": {"status_code": 200, "body": {"choices": [choice]}}})


def test_a_file_mixing_formats_is_an_error_naming_the_line(spark, frames, tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        "\n".join(
            [
                _chat_line("wvb-Q1-484070001-wd", [("2", -0.1)]),
                _chat_line("wvb-Q2-484070001-wd", [("3", -0.1)]),
                _chat_line("wvb-Q3-484070001-wd"),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    with pytest.raises(
        WvbError,
        match=r"mixed\.jsonl:3 holds model text, but mixed\.jsonl:1 holds top "
        r"log-probabilities: a file must hold one format",
    ):
        read_records(spark, str(path), "auto")
    # forced: the line without log-probabilities is a record without an answer
    rows = scored(spark, frames, path, "logprobs")
    assert [r["status"] for r in rows] == ["valid", "valid", "missing"]
    # forced the other way: the texts are read
    rows = scored(spark, frames, path, "jsonl")
    assert [(r["status"], r["parse_method"], r["score"]) for r in rows] == [("valid", "openai_number_in_text", 3.0)] * 3


def _fixture_line(name, number):
    with open(f"{BATCH}/{name}", encoding="utf-8") as handle:
        return handle.read().splitlines()[number - 1]


@pytest.mark.parametrize(
    "lines, message",
    [
        (  # an Anthropic result among OpenAI-format (Together) output
            [_fixture_line("together_output.jsonl", 1), "not json", _fixture_line("anthropic_results.jsonl", 5)],
            r"envelopes\.jsonl:3 holds an Anthropic Message Batches result, but envelopes\.jsonl:1 holds "
            r"OpenAI / vLLM / Together batch output: a file must hold one format \(split it\)",
        ),
        (  # a failed request is still in its service's envelope: an errored Anthropic line
            [_fixture_line("anthropic_results.jsonl", 1), _fixture_line("anthropic_results.jsonl", 2)]
            + [_fixture_line("bedrock_output.jsonl.out", 2)],
            r"envelopes\.jsonl:3 holds Bedrock batch output, but envelopes\.jsonl:1 holds an Anthropic",
        ),
        (  # a plain line among OpenAI output
            [_chat_line("wvb-Q1-484070001-wd"), json.dumps({"custom_id": "wvb-Q2-484070001-wd", "content": "2"})],
            r"envelopes\.jsonl:2 holds a plain line \(key and answer as fields\), but envelopes\.jsonl:1 holds "
            r"OpenAI / vLLM / Together batch output",
        ),
        (  # free-text and verbalised answers in one plain file
            [
                json.dumps({"custom_id": "wvb-Q1-484070001-wd", "content": "2"}),
                json.dumps({"custom_id": "wvb-Q2-484070001-wd", "content": "3"}),
                json.dumps({"custom_id": "wvb-Q3-484070001-wd-vd", "content": '{"1": 0.5, "2": 0.5}'}),
            ],
            r"envelopes\.jsonl:3 holds a verbalised distribution \(custom_id ending -vd\), but envelopes\.jsonl:1 "
            r"holds a free-text answer: a file must hold one format \(split it\)",
        ),
        (  # one sampled answer after free-text answers
            [_chat_line("wvb-Q1-484070001-wd"), _chat_line("wvb-Q1-484070001-wd-s2")],
            r"envelopes\.jsonl:2 holds one sampled answer \(custom_id ending -s<k>\), but envelopes\.jsonl:1 "
            r"holds a free-text answer",
        ),
    ],
)
def test_a_file_mixing_envelopes_or_elicitations_is_a_one_line_error(spark, tmp_path, lines, message):
    path = tmp_path / "envelopes.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=message) as raised:
        read_records(spark, str(path), "auto")
    assert "\n" not in str(raised.value) and raised.value.exit_code == 2


def test_a_uniform_file_with_error_and_unreadable_lines_imports(spark, frames, tmp_path):
    """Lines that belong to no envelope (an error-file line, a line that is not JSON, a plain
    line with no answer) fit any file: OpenAI output holding them imports, every line a row."""
    path = _write_lines(
        tmp_path / "uniform.jsonl",
        [
            _chat_line("wvb-Q1-484070001-wd", content='{"answer as a score": "2"}'),
            {"custom_id": "wvb-Q2-484070001-wd", "response": None, "error": {"message": "rate limited"}},
            "not json",
            {"custom_id": "wvb-Q3-484070001-wd"},
            _chat_line("wvb-Q46-484070001-wd", content="I'd say 3"),
        ],
    )
    rows = scored(spark, frames, path)
    assert [(r["source"], r["status"], r["parse_method"]) for r in rows] == [
        ("uniform.jsonl:1", "valid", "openai_json"),
        ("uniform.jsonl:2", "missing", "openai_none"),  # the error line belongs to the file it sits in
        ("uniform.jsonl:3", "unknown_question", "none"),
        ("uniform.jsonl:4", "missing", "none"),
        ("uniform.jsonl:5", "valid", "openai_number_in_text"),
    ]


def test_letters_and_forced_token_rules(spark, frames, tmp_path):
    path = tmp_path / "letters.jsonl"
    path.write_text(
        _chat_line("wvb-Q1-484070001-wd-lpl", [("B", -0.4), (" A", -1.9), ("D", -2.6), ("1", -3.0)]) + "\n",
        encoding="utf-8",
    )
    [row] = scored(spark, frames, path)
    weights = np.array([np.exp(-1.9), np.exp(-0.4), 0.0, np.exp(-2.6)])  # A=1, B=2, C=3, D=4; "1" is no letter
    assert row["distribution"] == pytest.approx((weights / weights.sum()).tolist())
    assert row["off_scale_mass"] == pytest.approx(1 - weights.sum())


def test_cli_import_prints_counts_that_add_up(spark, frames, tmp_path, capsys):
    questions, participants = frames
    root = str(tmp_path / "warehouse")
    write_build(spark, root, {"storage": {"writer": "offline"}}, questions=questions, participants=participants)
    code = cli.main(
        [
            "predictions",
            "import",
            "--warehouse",
            root,
            "--model",
            "gpt-lp",
            "--file",
            f"{BATCH}/openai_chat_logprobs.jsonl",
            "--errors",
            f"{BATCH}/openai_errors.jsonl",
            "--set",
            "storage.writer=offline",
            "--set",
            "spark.master=local[1]",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert (
        "7 rows read; valid 3, missing 2, non_numeric 1, non_integer 0, out_of_range 0, unknown_question 0, "
        "unknown_participant 0, duplicate 1; parse_method chat_logprobs 7;"
    ) in out
    table = Warehouse(spark, root, {"storage": {"writer": "offline"}}).read("predictions")
    assert table.count() == 7
    code = cli.main(
        [
            "predictions",
            "import",
            "--warehouse",
            root,
            "--model",
            "x",
            "--file",
            f"{BATCH}/openai_chat_logprobs.jsonl",
            "--format",
            "lm-eval",
            "--set",
            "storage.writer=offline",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "openai_chat_logprobs.jsonl:1 holds top log-probabilities" in err


def test_an_older_predictions_table_gets_the_new_columns_once(spark, frames, tmp_path, capsys):
    """A table written before off_scale_mass / n_samples / n_unusable existed keeps its rows
    (nulls in the new columns) and takes the new model beside them."""
    from wvb_spark.core import storage

    questions, participants = frames
    root = str(tmp_path / "warehouse")
    config = {"storage": {"writer": "offline"}}
    write_build(spark, root, config, questions=questions, participants=participants)
    old_columns = [f for f in schemas.PREDICTIONS.fields if f.name not in ("off_scale_mass", "n_samples", "n_unusable")]
    from pyspark.sql import types as T

    old = spark.createDataFrame(
        [("old", "Q1", 484070001, "2", 2.0, "valid", None, "score_column", "a.tsv:1")], T.StructType(old_columns)
    )
    location = Warehouse(spark, root, config).location("predictions")
    storage.write(spark, old, location, native=False, layout=storage.Layout(partition_by=("model",)))
    assert (
        cli.main(
            [
                "predictions",
                "import",
                "--warehouse",
                root,
                "--model",
                "new",
                "--file",
                f"{BATCH}/completions_logprobs.jsonl",
                "--set",
                "storage.writer=offline",
            ]
        )
        == 0
    )
    rows = {r["model"]: r for r in Warehouse(spark, root, config).read("predictions").collect()}
    assert set(rows) == {"old", "new"}
    assert (rows["old"]["score"], rows["old"]["off_scale_mass"], rows["old"]["n_samples"]) == (2.0, None, None)
    assert rows["new"]["off_scale_mass"] is not None


def _write_lines(path, objects):
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objects), encoding="utf-8")
    return path


def test_sampled_answers_become_one_distribution(spark, frames, tmp_path):
    texts = ['{"answer as a score": "2"}', "I'd say 3.", "N/A", None, '{"answer as a score": 2}']
    lines = [{"custom_id": f"wvb-Q1-484070001-wd-s{k}", "content": t} for k, t in enumerate(texts, 1) if t]
    lines.insert(
        3,
        {"custom_id": "wvb-Q1-484070001-wd-s4", "response": None, "error": {"code": "server_error", "message": "boom"}},
    )
    lines.append({"custom_id": "wvb-Q2-484070001-wd-s1", "content": "nothing here"})
    path = _write_lines(tmp_path / "samples.jsonl", lines)
    rows = {r["question_id"]: r for r in scored(spark, frames, path)}
    assert len(rows) == 2
    q1 = rows["Q1"]
    usable = np.array([2, 3, 2])
    expected = np.bincount(usable - 1, minlength=4) / len(usable)
    assert (q1["status"], q1["parse_method"], q1["n_samples"], q1["n_unusable"]) == ("valid", "samples", 5, 2)
    assert q1["distribution"] == pytest.approx(expected.tolist())
    assert q1["off_scale_mass"] == pytest.approx(2 / 5)
    assert q1["source"] == "samples.jsonl:1,2,3,4,5"
    assert json.loads(q1["raw_score"])[3] is None  # the failed request
    assert (rows["Q2"]["status"], rows["Q2"]["n_samples"], rows["Q2"]["n_unusable"]) == ("non_numeric", 1, 1)


def test_n_choices_in_one_line_and_forced_samples(spark, frames, tmp_path):
    choices = [
        {"index": i, "message": {"role": "assistant", "content": c}} for i, c in enumerate(["1", "1", "4", "xyz"])
    ]
    path = _write_lines(
        tmp_path / "n.jsonl",
        [{"custom_id": "wvb-Q2-484070001-wd-s", "response": {"status_code": 200, "body": {"choices": choices}}}],
    )
    [row] = scored(spark, frames, path)
    assert row["distribution"] == pytest.approx([2 / 3, 0, 0, 1 / 3])
    assert (row["n_samples"], row["n_unusable"], row["parse_method"]) == (4, 1, "samples")
    # plain lines without our ids: --format samples groups them by question and respondent
    path = _write_lines(
        tmp_path / "plain.jsonl",
        [{"question_id": "Q46", "participant_id": "36070002", "text": t} for t in ("2", "2", "3", "4")],
    )
    [row] = scored(spark, frames, path, "samples")
    assert row["distribution"] == pytest.approx([0, 0.5, 0.25, 0.25]) and row["n_samples"] == 4
    # without --format samples they are one answer each, later ones duplicates
    assert [r["status"] for r in scored(spark, frames, path)] == ["valid", "duplicate", "duplicate", "duplicate"]


def test_verbalised_distributions(spark, frames, tmp_path):
    path = _write_lines(
        tmp_path / "vd.jsonl",
        [
            {
                "custom_id": "wvb-Q1-484070001-wd-vd",
                "content": 'Here:\n```json\n{"1": 0.1, "2": 0.6, "3": 0.2, "4": 0.1}\n```',
            },
            {
                "custom_id": "wvb-Q2-484070001-wd-vd",
                "content": '{"1. Very important": 50, "2. Rather important": 30, "3": 20}',
            },
            {"custom_id": "wvb-Q3-484070001-wd-vd", "content": "I cannot say."},
            {"custom_id": "wvb-Q46-484070001-wd-vd", "content": '{"distribution": {"5": 0.5, "1": 0.5}}'},
            {"custom_id": "wvb-Q94-36070002-wd-vd", "content": "[0.2, 0.3, 0.5]"},
        ],
    )
    rows = {r["question_id"]: r for r in scored(spark, frames, path)}
    assert rows["Q1"]["distribution"] == pytest.approx([0.1, 0.6, 0.2, 0.1])
    assert rows["Q2"]["distribution"] == pytest.approx([0.5, 0.3, 0.2, 0.0])
    assert {q: r["status"] for q, r in rows.items()} == {
        "Q1": "valid",
        "Q2": "valid",
        "Q3": "non_numeric",
        "Q46": "out_of_range",
        "Q94": "valid",
    }
    assert {r["parse_method"] for r in rows.values()} == {"verbalised"}
    assert rows["Q94"]["score"] == 1.0  # scale 0..2, cumulative 0.2, 0.5: the lower median is 1


def test_anthropic_message_batch_results(spark, frames):
    rows = {r["question_id"]: r for r in scored(spark, frames, f"{BATCH}/anthropic_results.jsonl")}
    assert (rows["Q1"]["status"], rows["Q1"]["score"], rows["Q1"]["parse_method"]) == ("valid", 1.0, "anthropic_json")
    assert [(rows[q]["status"], rows[q]["parse_method"]) for q in ("Q2", "Q3", "Q47")] == [
        ("missing", "anthropic_none")
    ] * 3
    assert rows["Q2"]["raw_score"] == "anthropic errored: invalid_request_error: max_tokens: Field required"
    assert (rows["Q3"]["raw_score"], rows["Q47"]["raw_score"]) == ("anthropic canceled", "anthropic expired")
    assert (rows["Q48"]["status"], rows["Q48"]["score"], rows["Q48"]["parse_method"]) == (
        "valid",
        3.0,
        "anthropic_number_in_text",
    )


def test_bedrock_batch_output_keyed_by_the_input_records(spark, frames):
    rows = scored(spark, frames, f"{BATCH}/bedrock_output.jsonl.out", inputs=f"{BATCH}/bedrock_input.jsonl")
    got = [(r["question_id"], r["d_interview"], r["status"], r["score"]) for r in rows]
    assert got == [
        ("Q1", 484070001, "valid", 2.0),
        ("Q2", 484070001, "missing", None),
        (None, None, "unknown_question", None),
    ]  # CALL0000009 is in no input record
    assert rows[1]["raw_score"] == "bedrock error: 400: Malformed input request"
    # the format, then how the number was found: {"answer as a score": "2"} is JSON; the failed
    # request and the "3" of an unknown question (no scale to find a number on) gave none
    assert [r["parse_method"] for r in rows] == ["bedrock_json", "bedrock_none", "bedrock_none"]
    assert rows[2]["raw_score"] == "3"  # the Llama body's generation, kept
    # without --inputs no line is keyed, and every line is still a row
    assert [r["status"] for r in scored(spark, frames, f"{BATCH}/bedrock_output.jsonl.out")] == ["unknown_question"] * 3


def test_together_batch_with_its_error_file(spark, frames):
    rows = scored(spark, frames, f"{BATCH}/together_output.jsonl", errors=f"{BATCH}/together_errors.jsonl")
    assert [(r["source"], r["question_id"], r["status"], r["score"]) for r in rows] == [
        ("together_errors.jsonl:1", "Q2", "missing", None),
        ("together_output.jsonl:1", "Q1", "valid", 4.0),
    ]
    assert rows[0]["raw_score"] == "request failed: timeout: Request timed out"
    # Together writes the OpenAI batch format; its error file's line belongs to the output it reports on
    assert [r["parse_method"] for r in rows] == ["openai_none", "openai_json"]


LM_EVAL = os.path.join(os.path.dirname(__file__), "fixtures", "lm_eval")


def test_lm_eval_samples_file_of_the_real_harness(spark, frames):
    """The samples file lm-evaluation-harness 0.4.13 wrote for the exported task: each
    option's log-likelihood in filtered_resps -> softmax, computed here with numpy."""
    [path] = [os.path.join(LM_EVAL, f) for f in os.listdir(LM_EVAL) if f.startswith("samples_")]
    rows = {(r["question_id"], r["d_interview"]): r for r in scored(spark, frames, path)}
    harness = [json.loads(line) for line in open(path, encoding="utf-8")]
    assert len(rows) == len(harness) == 6
    for sample in harness:
        loglik = np.array([float(value) for value, _ in sample["filtered_resps"]])
        expected = np.exp(loglik - loglik.max()) / np.exp(loglik - loglik.max()).sum()
        row = rows[(sample["doc"]["question_id"], sample["doc"]["d_interview"])]
        assert (row["status"], row["parse_method"]) == ("valid", "lm_eval")
        assert len(sample["doc"]["choices"]) == len(expected)
        assert row["distribution"] == pytest.approx(expected.tolist())
        assert row["off_scale_mass"] is None


def test_lm_eval_wrong_option_count_is_out_of_range(spark, frames, tmp_path):
    [path] = [os.path.join(LM_EVAL, f) for f in os.listdir(LM_EVAL) if f.startswith("samples_")]
    sample = json.loads(open(path, encoding="utf-8").readline())
    sample["filtered_resps"] = sample["filtered_resps"][:-1]
    [row] = scored(spark, frames, _write_lines(tmp_path / "samples_x.jsonl", [sample]))
    assert (row["status"], row["distribution"]) == ("out_of_range", None)


def test_lm_eval_resps_without_filtered_resps(spark, frames, tmp_path):
    """A samples file without filtered_resps (a harness run without filters, or an older
    version) is read from resps, [[log-likelihood, is_greedy]] per option; the softmax is
    computed here with numpy from log-likelihoods unlike the fixture's."""
    [path] = [os.path.join(LM_EVAL, f) for f in os.listdir(LM_EVAL) if f.startswith("samples_")]
    sample = json.loads(open(path, encoding="utf-8").readline())
    assert sample["doc"]["question_id"] == "Q1" and len(sample["doc"]["choices"]) == 4  # scale 1..4
    del sample["filtered_resps"]
    loglik = np.array([-1.5, -0.25, -3.0, -0.75])
    sample["resps"] = [[[str(value), "False"]] for value in loglik]
    [row] = scored(spark, frames, _write_lines(tmp_path / "samples_resps.jsonl", [sample]))
    expected = np.exp(loglik) / np.exp(loglik).sum()
    assert (row["status"], row["parse_method"]) == ("valid", "lm_eval")
    assert row["distribution"] == pytest.approx(expected.tolist())
    assert row["score"] == 2.0  # cumulative 0.15, 0.66: the lower median is 2


def two_row_probe_warehouse(spark, frames, tmp_path) -> str:
    """A built warehouse whose probe asks Q94 of 36070002 and Q1 of 484070001."""
    from warehouse_helpers import conform

    questions, participants = frames
    root = str(tmp_path / "warehouse")
    config = {"storage": {"writer": "offline"}}
    write_build(spark, root, config, questions=questions, participants=participants)
    probe = spark.createDataFrame(
        [("Q94", 36070002, "valid"), ("Q1", 484070001, "valid")], "question_id string, d_interview long, split string"
    )
    Warehouse(spark, root, config).write("probe", conform(probe, "probe"), stage="test")
    return root


def fixture_warehouse(spark, tmp_path) -> str:
    """The warehouse the committed lm-eval and inspect fixtures were exported from, built by
    their regenerate.py (2 respondents; Q1 on 1..4, Q106 on 1..10, Q94 on 0..2)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("lm_eval_regenerate", os.path.join(LM_EVAL, "regenerate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = str(tmp_path / "fixture-warehouse")
    module.tiny_warehouse(root, spark)
    return root


def test_export_lm_eval_task_and_the_committed_harness_fixtures(spark, tmp_path, capsys):
    """`wvb export lm-eval-task`: one document per probe row, the logprobs prompt ending in
    'Answer:', the options' numbers as choices, a task YAML pointing at the documents. From
    the fixtures' warehouse, today's lm-eval documents and inspect samples are byte for byte
    the ones the committed harness outputs were run on: a change to the prompts or the
    exports shows here, and then the fixtures need regenerating (their regenerate.py)."""
    import yaml

    root = fixture_warehouse(spark, tmp_path)
    out = tmp_path / "task"
    offline = ["--set", "storage.writer=offline"]
    export = ["export", "lm-eval-task", "--warehouse", root, "--out", str(out), "--variant", "without-demographics"]
    assert cli.main(export + offline) == 0
    assert "wrote 6 documents" in capsys.readouterr().out
    written = (out / "wvb_probe.jsonl").read_bytes()
    docs = {d["custom_id"]: d for d in map(json.loads, written.decode("utf-8").splitlines())}
    scales = {"Q1": ["1", "2", "3", "4"], "Q106": [str(k) for k in range(1, 11)], "Q94": ["0", "1", "2"]}
    assert {custom_id: (d["question_id"], d["d_interview"], d["choices"]) for custom_id, d in docs.items()} == {
        f"wvb-{q}-{person}-nd-lp": (q, person, choices)
        for q, choices in scales.items()
        for person in (484070001, 36070002)
    }
    assert docs["wvb-Q1-484070001-nd-lp"]["prompt"].endswith("Answer with the number of one option only.\nAnswer:")
    task = yaml.safe_load((out / "wvb_probe.yaml").read_text(encoding="utf-8"))
    assert task["task"] == "wvb_probe" and task["output_type"] == "multiple_choice"
    assert task["dataset_kwargs"]["data_files"]["test"] == str(out / "wvb_probe.jsonl")
    assert (task["doc_to_text"], task["doc_to_choice"]) == ("{{prompt}}", "choices")
    with open(os.path.join(LM_EVAL, "wvb_probe.jsonl"), "rb") as committed:
        assert written == committed.read()
    # the inspect tasks, exported as tests/fixtures/inspect/regenerate.py does
    for elicit in ("free-text", "logprobs"):
        target = tmp_path / f"inspect-{elicit}"
        export = ["export", "inspect-task", "--warehouse", root, "--out", str(target), "--elicit", elicit]
        assert cli.main(export + offline) == 0
        with open(os.path.join(INSPECT, f"{elicit}_samples.jsonl"), "rb") as committed:
            assert (target / "wvb_probe.jsonl").read_bytes() == committed.read(), elicit


INSPECT = os.path.join(os.path.dirname(__file__), "fixtures", "inspect")


def _zstd_readable() -> bool:
    import importlib.util
    import sys

    return sys.version_info >= (3, 14) or importlib.util.find_spec("zstandard") is not None


def _inspect_samples(path):
    """The samples of an inspect log, read here without the code under test."""
    import zipfile

    if path.endswith(".json"):
        return json.load(open(path, encoding="utf-8"))["samples"]
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.startswith("samples/")]
        return [json.loads(_member(archive, n, path)) for n in names]


def _member(archive, name, path):
    try:
        return archive.read(name)
    except NotImplementedError:  # zstandard on Python < 3.14
        import zstandard

        info = archive.getinfo(name)
        with open(path, "rb") as handle:
            handle.seek(info.header_offset)
            header = handle.read(30)
            handle.seek(
                info.header_offset
                + 30
                + int.from_bytes(header[26:28], "little")
                + int.from_bytes(header[28:30], "little")
            )
            data = handle.read(info.compress_size)
        return zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True).read()


def _as_deflate(source, target):
    """The same members in a DEFLATE zip (what inspect_ai wrote before zstandard)."""
    import zipfile

    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for name in archive.namelist():
            out.writestr(name, _member(archive, name, source))
    return str(target)


def _text_logs(tmp_path):
    logs = [os.path.join(INSPECT, "text.json")]
    if _zstd_readable():
        logs.append(os.path.join(INSPECT, "text.eval"))
        logs.append(_as_deflate(os.path.join(INSPECT, "text.eval"), tmp_path / "text_deflate.eval"))
    return logs


def test_inspect_text_logs_of_mockllm(spark, frames, tmp_path):
    """mockllm/model answers 'Default output from mockllm/model' to every sample: no score
    in it, so every sample is non_numeric, keyed by the sample id, read as inspect_text."""
    expected = sorted((q, d) for q in ("Q1", "Q94", "Q106") for d in (484070001, 36070002))
    for path in _text_logs(tmp_path):
        rows = scored(spark, frames, path)
        assert sorted((r["question_id"], r["d_interview"]) for r in rows) == expected, path
        assert {(r["status"], r["parse_method"], r["raw_score"]) for r in rows} == {
            ("non_numeric", "inspect_text", "Default output from mockllm/model")
        }, path
        assert all(r["source"].startswith(os.path.basename(path) + ":") for r in rows)


@pytest.mark.parametrize("name", ["logprobs.json", "logprobs.eval"])
def test_inspect_logprobs_logs(spark, frames, name):
    """The first token's top log-probabilities the log holds (set through inspect's own
    ModelOutput / Logprobs classes, see the fixture's README) -> a distribution over the
    scale, renormalised here with numpy; the refusal is non_numeric, the failed sample
    missing."""
    path = os.path.join(INSPECT, name)
    if name.endswith(".eval") and not _zstd_readable():
        pytest.skip("reading a zstandard .eval needs Python 3.14 or the zstandard package")
    rows = {(r["question_id"], r["d_interview"]): r for r in scored(spark, frames, path)}
    samples = _inspect_samples(path)
    assert len(rows) == len(samples) == 6
    scales = {"Q1": (1, 4), "Q94": (0, 2), "Q106": (1, 10)}
    statuses = {}
    for sample in samples:
        key = (sample["metadata"]["question_id"], sample["metadata"]["d_interview"])
        row = rows[key]
        assert row["parse_method"] == "inspect_logprobs"
        statuses[key] = row["status"]
        if sample.get("error") is not None:
            assert row["status"] == "missing" and "mock model failure" in row["raw_score"]
            continue
        top = sample["output"]["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        low, high = scales[key[0]]
        pairs = [(t["token"], t["logprob"]) for t in top]
        if not any(t.strip().isdigit() and low <= int(t.strip()) <= high for t, _ in pairs):
            assert row["status"] == "non_numeric" and row["distribution"] is None
            continue
        dist, off = by_hand(pairs, low, high)
        assert row["status"] == "valid"
        assert row["distribution"] == pytest.approx(dist.tolist())
        assert row["off_scale_mass"] == pytest.approx(off)
    # by hand from run_inspect.py: Q94/Australia is the refusal, Q106/Australia failed
    assert statuses == {
        ("Q1", 484070001): "valid",
        ("Q1", 36070002): "valid",
        ("Q94", 484070001): "valid",
        ("Q94", 36070002): "non_numeric",
        ("Q106", 484070001): "valid",
        ("Q106", 36070002): "missing",
    }
    q1 = rows[("Q1", 484070001)]  # 1: e^-.3 + e^-3.5, 2: e^-1.75, 4: e^-5.5, over their sum
    weights = np.array([np.exp(-0.3) + np.exp(-3.5), np.exp(-1.75), 0.0, np.exp(-5.5)])
    assert q1["distribution"] == pytest.approx((weights / weights.sum()).tolist())
    assert q1["score"] == 1.0


def test_inspect_sample_keyed_by_metadata_and_text_answer(spark, frames, tmp_path):
    """A log whose sample ids are not ours (inspect's auto ids) is keyed by the metadata
    our task sets; a text answer holding the score is valid; --format inspect reads it;
    --format inspect on a JSONL file is a one-line error."""
    log = json.load(open(os.path.join(INSPECT, "text.json"), encoding="utf-8"))
    log["samples"] = log["samples"][:2]
    log["samples"][0]["id"] = 1
    log["samples"][0]["output"]["choices"][0]["message"]["content"] = '{"answer as a score": "3"}'
    log["samples"][1]["output"] = {"model": "m", "choices": []}
    path = tmp_path / "renamed.json"
    path.write_text(json.dumps(log, indent=2), encoding="utf-8")
    rows = scored(spark, frames, path, "inspect")
    first, second = (s["metadata"] for s in log["samples"])
    assert sorted((r["question_id"], r["d_interview"], r["status"], r["score"]) for r in rows) == sorted(
        [
            (first["question_id"], first["d_interview"], "valid", 3.0),
            (second["question_id"], second["d_interview"], "missing", None),
        ]
    )
    with pytest.raises(WvbError, match=r"--format inspect: .* is not an inspect_ai log"):
        read_records(spark, f"{BATCH}/together_output.jsonl", "inspect")
    log["samples"] = []
    path.write_text(json.dumps(log), encoding="utf-8")
    with pytest.raises(WvbError, match=r"renamed\.json holds no samples \(log status success\)"):
        read_records(spark, str(path), "auto")


def test_inspect_zstd_eval_without_a_reader_is_a_one_line_error(monkeypatch):
    import builtins
    import sys
    import zipfile

    from wvb_spark.compute import output_formats

    if sys.version_info >= (3, 14):
        pytest.skip("Python 3.14's zipfile reads zstandard itself")
    real_import = builtins.__import__
    monkeypatch.setattr(
        builtins,
        "__import__",
        lambda name, *a, **k: (
            (_ for _ in ()).throw(ImportError(name)) if name == "zstandard" else real_import(name, *a, **k)
        ),
    )
    path = os.path.join(INSPECT, "text.eval")
    assert zipfile.ZipFile(path).getinfo("header.json").compress_type == 93
    with pytest.raises(ValueError, match=r"zstandard-compressed .*pip install zstandard.*inspect log convert"):
        output_formats.read_inspect_log(path, "eval")


def test_export_inspect_task(spark, frames, tmp_path, capsys):
    """`wvb export inspect-task`: one sample per probe row keyed by our custom_id, the
    free-text prompt or the numbered options, a task file asking for one token's top
    log-probabilities in the logprobs case."""
    import ast

    root = two_row_probe_warehouse(spark, frames, tmp_path)
    for elicit, suffix in (("free-text", ""), ("logprobs", "-lp")):
        out = tmp_path / elicit
        assert (
            cli.main(
                [
                    "export",
                    "inspect-task",
                    "--warehouse",
                    root,
                    "--out",
                    str(out),
                    "--elicit",
                    elicit,
                    "--task",
                    "probe_x",
                    "--top-logprobs",
                    "5",
                    "--set",
                    "storage.writer=offline",
                ]
            )
            == 0
        )
        assert "wrote 2 samples" in capsys.readouterr().out
        samples = [json.loads(line) for line in (out / "probe_x.jsonl").read_text(encoding="utf-8").splitlines()]
        assert [s["id"] for s in samples] == [f"wvb-Q1-484070001-wd{suffix}", f"wvb-Q94-36070002-wd{suffix}"]
        assert [
            (
                s["metadata"]["question_id"],
                s["metadata"]["d_interview"],
                s["metadata"]["scale_min"],
                s["metadata"]["scale_max"],
            )
            for s in samples
        ] == [("Q1", 484070001, 1, 4), ("Q94", 36070002, 0, 2)]
        source = (out / "probe_x.py").read_text(encoding="utf-8")
        tree = ast.parse(source)
        assert [f.name for f in tree.body if isinstance(f, ast.FunctionDef)] == ["probe_x"]
        assert "'probe_x.jsonl'" in source
        if elicit == "logprobs":
            assert "Options:\n0" in samples[1]["input"] and "number of one option only" in samples[1]["input"]
            assert "GenerateConfig(max_tokens=1, logprobs=True, top_logprobs=5, temperature=0.0)" in source
        else:
            assert "answer as a score" in samples[0]["input"] and "Options:" not in samples[0]["input"]
            assert "GenerateConfig()" in source
    with pytest.raises(SystemExit):
        cli.main(["export", "inspect-task", "--warehouse", root, "--out", str(tmp_path / "x"), "--elicit", "sample"])
