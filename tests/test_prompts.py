"""Prompts: the full text for a known respondent, the JSON request shape, custom ids, order."""

from __future__ import annotations

import json

import pytest

from wvb_spark.core import schemas
from wvb_spark.core.errors import WvbError
from wvb_spark.stages.prompts import (
    custom_id,
    default_demographics,
    in_question_order,
    load_template,
    parse_custom_id,
    render_prompts,
    write_single_text_file,
)

Q1_TEXT = (
    "On a scale of 1 to 4, 1 meaning 'Very important' and 4 meaning 'Not at all important', "
    "how important is family in your life?"
)

EXPECTED_WITH = """Person X provided the following demographic information in an interview:
1. Question: In what country was the interview conducted?
 Answer: Mexico
2. Question: What is the type of settlement in which the interview was conducted? Urban or Rural?
 Answer: Urban
3. Question: What is the highest educational level that you have attained?
 Answer: Bachelor or equivalent (ISCED 6)
4. Question: What year was the survey conducted?
 Answer: 2018
5. Question: What is your sex?
 Answer: Female
6. Question: How old are you?
 Answer: 47

What would Person X answer to the following question and why?
Question: On a scale of 1 to 4, 1 meaning 'Very important' and 4 meaning 'Not at all important', how important is family in your life?

Your output should be in the following format:
{
  "thoughtful explanation": "... upto 30 words (keep their demographics in mind) ...",
  "answer as a score": "... score ..."
}"""

EXPECTED_WITHOUT = """What would Person X answer to the following question and why?
Question: On a scale of 1 to 4, 1 meaning 'Very important' and 4 meaning 'Not at all important', how important is family in your life?

Your output should be in the following format:
{
  "thoughtful explanation": "... upto 30 words ...",
  "answer as a score": "... score ..."
}"""


def participant(d_interview, **answers):
    schema = schemas.participants_schema()
    row = {f.name: None for f in schema.fields}
    row.update(d_interview=d_interview, split="valid", country_code=484, source_row=1)
    row.update(answers)
    return tuple(row[f.name] for f in schema.fields)


@pytest.fixture(scope="module")
def warehouse_frames(spark):
    people = spark.createDataFrame(
        [
            participant(
                484070001,
                B_COUNTRY="Mexico",
                H_URBRURAL="Urban",
                Q275="Bachelor or equivalent (ISCED 6)",
                A_YEAR="2018",
                Q260="Female",
                Q262="47",
                N_TOWN="MX: Mexico City",
                J_INTDATE="20180305",
                Q261="  ",
                Q263="",
            ),
            participant(36070002, B_COUNTRY="Australia"),
            participant(36070001, B_COUNTRY="Australia"),
        ],
        schemas.participants_schema(),
    )
    questions = spark.createDataFrame(
        [
            ("Q1", Q1_TEXT, 1, 4),
            ("Q2", "How important are friends?", 1, 4),
            ("Q10", "Ten?", 1, 10),
        ],
        "question_id string, text string, scale_min int, scale_max int",
    )
    return people, questions


def test_default_demographics_order_and_exclusions():
    names = default_demographics()
    assert names[:4] == ["B_COUNTRY", "H_URBRURAL", "Q275", "A_YEAR"]
    assert not {"D_INTERVIEW", "J_INTDATE", "N_TOWN"} & set(names)
    assert len(names) == 43 - 3


def test_prompt_for_known_respondent(spark, warehouse_frames):
    people, questions = warehouse_frames
    rows = spark.createDataFrame([("Q1", 484070001)], "question_id string, d_interview long")
    out = render_prompts(
        rows,
        people,
        questions,
        template=load_template(),
        variant="with-demographics",
        demographics=default_demographics(),
        model="my-model",
    ).collect()
    assert len(out) == 1
    assert out[0]["prompt"] == EXPECTED_WITH
    assert out[0]["custom_id"] == "wvb-Q1-484070001-wd"
    assert json.loads(out[0]["request"]) == {
        "custom_id": "wvb-Q1-484070001-wd",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "my-model", "messages": [{"role": "user", "content": EXPECTED_WITH}]},
    }


def test_prompt_without_demographics(spark, warehouse_frames):
    people, questions = warehouse_frames
    rows = spark.createDataFrame([("Q1", 484070001)], "question_id string, d_interview long")
    out = render_prompts(
        rows,
        people,
        questions,
        template=load_template(),
        variant="without-demographics",
        demographics=default_demographics(),
        model="m",
    ).collect()
    assert out[0]["prompt"] == EXPECTED_WITHOUT
    assert out[0]["custom_id"] == "wvb-Q1-484070001-nd"


def test_custom_template_with_system_message(spark, warehouse_frames, tmp_path):
    people, questions = warehouse_frames
    path = tmp_path / "t.yaml"
    path.write_text(
        'system: "You answer surveys. Costs $$0."\n'
        'demographic_item: "${variable}=${answer}"\n'
        'demographic_separator: "; "\n'
        'with_demographics: "[${demographics}] ${question_id} (${scale_min}-${scale_max}): ${question}"\n'
        'without_demographics: "${question}"\n',
        encoding="utf-8",
    )
    rows = spark.createDataFrame([("Q2", 484070001)], "question_id string, d_interview long")
    out = render_prompts(
        rows,
        people,
        questions,
        template=load_template(str(path)),
        variant="with-demographics",
        demographics=["Q260", "Q261", "B_COUNTRY"],
        model="m",
        url="/v1/responses",
    ).collect()
    assert out[0]["prompt"] == "[Q260=Female; B_COUNTRY=Mexico] Q2 (1-4): How important are friends?"
    request = json.loads(out[0]["request"])
    assert request["url"] == "/v1/responses"
    assert request["body"]["messages"] == [
        {"role": "system", "content": "You answer surveys. Costs $0."},
        {"role": "user", "content": "[Q260=Female; B_COUNTRY=Mexico] Q2 (1-4): How important are friends?"},
    ]


@pytest.mark.parametrize(
    "text,message",
    [
        ('with_demographics: "${nope}"\nwithout_demographics: "x"\ndemographic_item: "y"\n', "unknown placeholder"),
        ('with_demographics: "x"\ndemographic_item: "y"\n', "missing text for without_demographics"),
        ('with_demographics: "cost $ 5"\nwithout_demographics: "x"\ndemographic_item: "y"\n', "lone '[$]'"),
    ],
)
def test_bad_templates_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(WvbError, match=message):
        load_template(str(path))


def test_custom_id_round_trip():
    assert custom_id("Q1", 156070594, "with-demographics") == "wvb-Q1-156070594-wd"
    assert parse_custom_id("wvb-Q1-156070594-wd") == ("Q1", 156070594, "with-demographics")
    assert parse_custom_id(custom_id("Q289CS9", 36070002, "without-demographics")) == (
        "Q289CS9",
        36070002,
        "without-demographics",
    )
    assert parse_custom_id("wvb-Q1-x-wd") is None
    assert parse_custom_id("request-1") is None
    from wvb_spark.compute.output_formats import elicitation_of

    for suffix, code in (("lp", "lp"), ("lpl", "lpl"), ("vd", "vd"), ("s12", "s"), ("s", "s")):
        assert parse_custom_id(f"wvb-Q1-156070594-nd-{suffix}") == ("Q1", 156070594, "without-demographics")
        assert elicitation_of(f"wvb-Q1-156070594-nd-{suffix}") == code
    assert elicitation_of("wvb-Q1-156070594-nd") is None
    assert parse_custom_id("wvb-Q1-156070594-nd-xx") is None


def test_single_file_is_in_question_then_respondent_order(spark, warehouse_frames, tmp_path):
    people, questions = warehouse_frames
    pairs = [
        ("Q10", 36070001),
        ("Q2", 484070001),
        ("Q1", 36070002),
        ("Q2", 36070001),
        ("Q1", 484070001),
        ("Q10", 36070002),
        ("Q1", 36070001),
    ]
    rows = spark.createDataFrame(pairs, "question_id string, d_interview long").repartition(3)
    requests = in_question_order(
        render_prompts(
            rows,
            people,
            questions,
            template=load_template(),
            variant="without-demographics",
            demographics=[],
            model="m",
        )
    )
    out = tmp_path / "sub" / "prompts.jsonl"
    write_single_text_file(spark, requests.select("request"), str(out))
    ids = [json.loads(line)["custom_id"] for line in out.read_text(encoding="utf-8").splitlines()]
    # metadata order is Q1, Q2, ..., Q10 (not string order), then respondent ascending
    assert ids == [
        "wvb-Q1-36070001-nd",
        "wvb-Q1-36070002-nd",
        "wvb-Q1-484070001-nd",
        "wvb-Q2-36070001-nd",
        "wvb-Q2-484070001-nd",
        "wvb-Q10-36070001-nd",
        "wvb-Q10-36070002-nd",
    ]
    assert [p.name for p in out.parent.iterdir()] == ["prompts.jsonl"]


@pytest.fixture(scope="module")
def warehouse(spark, warehouse_frames, tmp_path_factory):
    from warehouse_helpers import conform, write_build

    from wvb_spark.core.warehouse import Warehouse

    people, questions = warehouse_frames
    questions = questions.selectExpr(
        "question_id",
        "text",
        "'c' as category",
        "'value' as use_case",
        "scale_min",
        "scale_max",
        "'ordinal' as data_type",
        "cast(null as map<int,string>) as labels",
        "true as is_probe",
    )
    root = str(tmp_path_factory.mktemp("warehouse"))
    config = {"storage": {"writer": "offline"}}
    examples = spark.createDataFrame(
        [
            (36070001, "Q10", 3, "train"),
            (36070001, "Q1", 2, "train"),
            (36070002, "Q1", 1, "test"),
            (484070001, "Q2", 4, "train"),
        ],
        schemas.EXAMPLES,
    )
    write_build(spark, root, config, participants=people, questions=questions, examples=examples)
    probe = spark.createDataFrame(
        [("Q2", 484070001, "valid"), ("Q1", 36070002, "valid"), ("Q1", 484070001, "valid")],
        "question_id string, d_interview long, split string",
    )
    Warehouse(spark, root, config).write("probe", conform(probe, "probe"), stage="test")
    return root


def test_cli_probe_and_examples(warehouse, tmp_path, capsys):
    from wvb_spark import cli

    out = tmp_path / "probe.jsonl"
    assert (
        cli.main(
            [
                "prompts",
                "--warehouse",
                warehouse,
                "--out",
                str(out),
                "--model",
                "gpt-x",
                "--set",
                "storage.writer=offline",
            ]
        )
        == 0
    )
    assert "wrote 3 with-demographics requests from probe" in capsys.readouterr().out
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["custom_id"] for r in lines] == ["wvb-Q1-36070002-wd", "wvb-Q1-484070001-wd", "wvb-Q2-484070001-wd"]
    assert lines[1]["body"] == {"model": "gpt-x", "messages": [{"role": "user", "content": EXPECTED_WITH}]}

    out = tmp_path / "examples.jsonl"
    assert (
        cli.main(
            [
                "prompts",
                "--warehouse",
                warehouse,
                "--out",
                str(out),
                "--source",
                "examples",
                "--split",
                "train",
                "--variant",
                "without-demographics",
                "--limit",
                "2",
                "--set",
                "storage.writer=offline",
            ]
        )
        == 0
    )
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["custom_id"] for r in lines] == ["wvb-Q1-36070001-nd", "wvb-Q2-484070001-nd"]

    code = cli.main(
        ["prompts", "--warehouse", str(tmp_path / "empty"), "--out", str(out), "--set", "storage.writer=offline"]
    )
    assert code == 2 and "no probe table" in capsys.readouterr().err


# --------------------------------------------------------------------------- --elicit

EXPECTED_OPTIONS = """Which answer would Person X give to the following question?
Question: On a scale of 1 to 4, 1 meaning 'Very important' and 4 meaning 'Not at all important', how important is family in your life?
Options:
1. Very important
2. Rather important
3. Not very important
4. Not at all important

Answer with the number of one option only."""


@pytest.fixture(scope="module")
def labelled(spark, warehouse_frames):
    people, _ = warehouse_frames
    questions = spark.createDataFrame(
        [
            (
                "Q1",
                Q1_TEXT,
                1,
                4,
                {1: "Very important", 2: "Rather important", 3: "Not very important", 4: "Not at all important"},
            ),
            ("Q106", "Incomes?", 1, 10, {1: "Incomes more equal", 2: "2", 10: "Larger income differences"}),
        ],
        "question_id string, text string, scale_min int, scale_max int, labels map<int,string>",
    )
    return people, questions


def _render(spark, labelled, elicit, pairs=(("Q1", 484070001),), variant="without-demographics"):
    from wvb_spark.stages.prompts import Elicitation

    people, questions = labelled
    rows = spark.createDataFrame(list(pairs), "question_id string, d_interview long")
    return in_question_order(
        render_prompts(
            rows,
            people,
            questions,
            template=load_template(),
            variant=variant,
            demographics=[],
            model="m",
            elicit=Elicitation(**elicit),
        )
    ).collect()


def test_logprobs_prompt_lists_the_options_and_asks_for_one_token(spark, labelled):
    [row] = _render(spark, labelled, {"how": "logprobs"})
    assert row["prompt"] == EXPECTED_OPTIONS
    request = json.loads(row["request"])
    assert request["custom_id"] == "wvb-Q1-484070001-nd-lp"
    assert request["body"] == {
        "model": "m",
        "messages": [{"role": "user", "content": EXPECTED_OPTIONS}],
        "max_tokens": 1,
        "logprobs": True,
        "top_logprobs": 20,
        "temperature": 0.0,
    }
    # letters; a label that is just the number is not repeated; points without a label are listed
    [row] = _render(
        spark, labelled, {"how": "logprobs", "options": "letters", "top_logprobs": 5}, pairs=[("Q106", 484070001)]
    )
    assert (
        "Options:\nA. Incomes more equal\nB\nC\nD\nE\nF\nG\nH\nI\nJ. Larger income differences\n\n"
        "Answer with the letter of one option only." in row["prompt"]
    )
    assert json.loads(row["request"])["custom_id"] == "wvb-Q106-484070001-nd-lpl"
    [row] = _render(spark, labelled, {"how": "logprobs"}, pairs=[("Q106", 484070001)])
    assert (
        "Options:\n1. Incomes more equal\n2\n3\n" in row["prompt"]
        and "\n10. Larger income differences" in row["prompt"]
    )


def test_sample_prompts_are_n_requests_or_one_with_n(spark, labelled):
    rows = _render(
        spark,
        labelled,
        {"how": "sample", "samples": 11, "temperature": 0.7},
        pairs=[("Q1", 484070001), ("Q1", 36070002)],
    )
    ids = [json.loads(r["request"])["custom_id"] for r in rows]
    assert ids == [f"wvb-Q1-36070002-nd-s{k}" for k in range(1, 12)] + [
        f"wvb-Q1-484070001-nd-s{k}" for k in range(1, 12)
    ]
    body = json.loads(rows[0]["request"])["body"]
    assert body["temperature"] == 0.7 and "n" not in body
    assert body["messages"][0]["content"] == EXPECTED_WITHOUT  # the free-text prompt
    [row] = _render(spark, labelled, {"how": "sample", "samples": 5, "sample_as": "n"})
    request = json.loads(row["request"])
    assert request["custom_id"] == "wvb-Q1-484070001-nd-s"
    assert (request["body"]["n"], request["body"]["temperature"]) == (5, 1.0)


def test_verbalised_prompt(spark, labelled):
    [row] = _render(spark, labelled, {"how": "verbalised"}, variant="with-demographics")
    assert json.loads(row["request"])["custom_id"] == "wvb-Q1-484070001-wd-vd"
    assert row["prompt"].startswith("Person X provided the following demographic information in an interview:")
    assert "Options:\n1. Very important\n2. Rather important" in row["prompt"]
    assert row["prompt"].endswith("mapping each option's\nnumber to its probability, the probabilities summing to 1.")
    assert "temperature" not in json.loads(row["request"])["body"]


def test_elicit_options_of_another_elicitation_are_errors():
    from argparse import Namespace

    from wvb_spark.stages.prompts import resolve_elicitation

    with pytest.raises(WvbError, match="--samples goes with --elicit sample, not logprobs"):
        resolve_elicitation(Namespace(elicit="logprobs", samples=5))
    with pytest.raises(WvbError, match="--top-logprobs must be 1 to 20"):
        resolve_elicitation(Namespace(elicit="logprobs", top_logprobs=50))
    assert resolve_elicitation(Namespace(elicit="sample", samples=3)).samples == 3
