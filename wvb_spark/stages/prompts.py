"""`wvb prompts`: one chat request per probe row (or per example), as a JSONL file.

The prompt follows the example published with WorldValuesBench: the respondent's
demographic answers as numbered question/answer pairs, then the value question and
the JSON answer format (or, with --elicit, the options and one token, several samples,
or a written distribution). Each line is a request in the shape batch-inference APIs
take (custom_id, method, url, body.model, body.messages), and its custom_id names
question, respondent, variant and elicitation so `wvb predictions import` can key and
read the answers.

The text is built in Spark (wvb_spark.transforms.prompt_render); the single output file is written
by one task after a global sort, so line order is (question in metadata order,
respondent, sample).
"""

from __future__ import annotations

import argparse
from typing import Any

from wvb_spark.core.errors import InputError
from wvb_spark.core.stage import Result
from wvb_spark.core.text_files import write_single_text_file  # noqa: F401
from wvb_spark.transforms.prompt_render import (  # noqa: F401 - the names tests and users import from here
    CUSTOM_ID_PREFIX,
    ELICITATIONS,
    EXCLUDED_DEMOGRAPHICS,
    LEADING_DEMOGRAPHICS,
    OPTION_STYLES,
    OUTPUT_COLUMNS,
    VARIANTS,
    Elicitation,
    PromptTemplate,
    add_selection_options,
    custom_id,
    custom_id_column,
    default_demographics,
    demographics_block,
    in_question_order,
    load_template,
    options_column,
    parse_custom_id,
    render_prompts,
    resolve_demographics,
    template_column,
    template_parts,
)
from wvb_spark.transforms.selection import selected_rows

# --------------------------------------------------------------------------- command

SETTINGS = None  # the options are the whole of its settings
OPTIONS = ()


def add_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    parser.add_argument("--warehouse", required=True, metavar="DIR", help="warehouse root (tables at DIR/<table>)")
    parser.add_argument("--out", required=True, metavar="FILE", help="JSONL file to write (replaced if it exists)")
    add_selection_options(parser, "request")
    parser.add_argument(
        "--demographics",
        metavar="VARS",
        help="comma list of demographic variables to list, in order (default: all but "
        "D_INTERVIEW, J_INTDATE, N_TOWN; B_COUNTRY, H_URBRURAL, Q275 first)",
    )
    parser.add_argument(
        "--model", default="gpt-3.5-turbo", help="model name put in each request body (default: %(default)s)"
    )
    parser.add_argument(
        "--url", default="/v1/chat/completions", help="endpoint put in each request (default: %(default)s)"
    )
    parser.add_argument(
        "--elicit",
        choices=ELICITATIONS,
        default="free-text",
        help="free-text (default: the published prompt), logprobs (the option number alone, "
        "one token with its top log-probabilities), sample (N free-text answers at a "
        "temperature), verbalised (a JSON distribution over the options)",
    )
    parser.add_argument(
        "--options",
        choices=OPTION_STYLES,
        default="numbers",
        help="--elicit logprobs: number the options as the scale (default) or letter them A, B, ...",
    )
    parser.add_argument(
        "--top-logprobs",
        dest="top_logprobs",
        type=int,
        default=20,
        metavar="K",
        help="--elicit logprobs: alternatives per token (default: %(default)s, the OpenAI maximum)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=10,
        metavar="N",
        help="--elicit sample: answers per question and respondent (default: %(default)s)",
    )
    parser.add_argument(
        "--sample-as",
        dest="sample_as",
        choices=("requests", "n"),
        default="requests",
        help="--elicit sample: N requests (default; any API) or one request with n: N",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        metavar="T",
        help="body temperature (default: 0 for logprobs, 1 for sample, none otherwise)",
    )


def resolve_elicitation(args) -> Elicitation:
    """--elicit and its options, checked (an option of another elicitation is an error)."""
    how = getattr(args, "elicit", "free-text") or "free-text"
    given: dict[str, Any] = {
        name: getattr(args, name, default)
        for name, default in (("options", "numbers"), ("top_logprobs", 20), ("samples", 10), ("sample_as", "requests"))
    }
    belongs = {"options": "logprobs", "top_logprobs": "logprobs", "samples": "sample", "sample_as": "sample"}
    defaults = Elicitation()
    for name, value in given.items():
        if value != getattr(defaults, name) and belongs[name] != how:
            raise InputError(f"--{name.replace('_', '-')} goes with --elicit {belongs[name]}, not {how}")
    if not 1 <= given["top_logprobs"] <= 20:
        raise InputError(f"--top-logprobs must be 1 to 20, got {given['top_logprobs']}")
    if given["samples"] < 1:
        raise InputError(f"--samples must be at least 1, got {given['samples']}")
    temperature = getattr(args, "temperature", None)
    if temperature is not None and not 0 <= temperature <= 2:
        raise InputError(f"--temperature must be between 0 and 2, got {temperature:g}")
    return Elicitation(how=how, temperature=temperature, **given)


def run(args, config: dict) -> Result:
    from wvb_spark.core.session import get_spark
    from wvb_spark.core.warehouse import Warehouse

    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be at least 1, got {args.limit}")
    template = load_template(args.template)
    elicit = resolve_elicitation(args)
    demographics = resolve_demographics(args.demographics)
    Warehouse(None, args.warehouse, config).require(args.source, "participants", "questions")
    spark = get_spark(config)
    tables = Warehouse(spark, args.warehouse, config)
    participants = tables.read("participants")
    questions = tables.read("questions")
    rows = selected_rows(tables.read(args.source), questions, args.split, args.questions)

    unknown_people = rows.join(participants.select("d_interview"), on="d_interview", how="left_anti").count()
    unknown_questions = rows.join(questions.select("question_id"), on="question_id", how="left_anti").count()
    if unknown_people or unknown_questions:
        raise InputError(
            f"{args.source} has {unknown_people} rows whose respondent is not in participants and "
            f"{unknown_questions} whose question is not in questions; rebuild it from this warehouse"
        )

    requests = in_question_order(
        render_prompts(
            rows,
            participants,
            questions,
            template=template,
            variant=args.variant,
            demographics=demographics,
            model=args.model,
            url=args.url,
            elicit=elicit,
        )
    )
    if args.limit:
        requests = requests.limit(args.limit)
    total = requests.count()
    write_single_text_file(spark, requests.select("request"), args.out)
    how = "" if elicit.how == "free-text" else f" {elicit.how}"
    return Result(
        lines=[f"wrote {total} {args.variant}{how} requests from {args.source} to {args.out}"],
        counts={"requests": total},
    )
