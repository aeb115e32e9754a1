"""`wvb export lm-eval-task` / `wvb export inspect-task`: the probe as a task an eval harness runs.

EleutherAI's lm-evaluation-harness scores a multiple-choice task by the log-likelihood
the model gives each option after the prompt; its `--log_samples` file keeps those
numbers per document, and `wvb predictions import` turns them into a distribution (their
softmax). The export writes the documents (one per probe row: the same persona block and
numbered options as `wvb prompts --elicit logprobs`, ending in "Answer:", the options'
numbers as the choices) and a task YAML pointing at them, so `lm_eval --include_path DIR
--tasks wvb_probe --log_samples` runs the probe on any model the harness can load.

UK AISI's inspect_ai runs a task file (Python) over a dataset of samples and writes an eval
log holding each sample's output. The inspect export writes the samples (the sample id is
our custom_id, the key also in its metadata; the input is the free-text persona prompt of
`wvb prompts`, or with `--elicit logprobs` the numbered options) and a task file that asks
for one token with its top log-probabilities in the logprobs case, so `inspect eval
DIR/wvb_probe.py --model ...` runs the probe and `wvb predictions import` reads its log.
"""

from __future__ import annotations

import argparse
import os
import re

from pyspark.sql import functions as F

from wvb_spark.core.errors import InputError
from wvb_spark.core.stage import Result, common_options
from wvb_spark.core.text_files import write_single_text_file
from wvb_spark.transforms.prompt_render import (
    Elicitation,
    add_selection_options,
    default_demographics,
    in_question_order,
    load_template,
    render_prompts,
)
from wvb_spark.transforms.selection import selected_rows

TASK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
ANSWER_CUE = "\nAnswer:"

TASK_YAML = """\
# lm-evaluation-harness task written by `wvb export lm-eval-task` ({count} documents).
# Run:    lm_eval --model <model> --model_args ... --include_path {folder} --tasks {task} --log_samples --output_path OUT
# Import: wvb predictions import --warehouse WAREHOUSE --model NAME --file OUT/<model>/samples_{task}_<date>.jsonl
# Each choice is an option's number on the question's scale, in scale order; the log-likelihoods the
# harness logs per choice are what wvb imports. doc_to_target is a placeholder (the harness needs one):
# the accuracy it reports means nothing here.
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {docs}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{prompt}}}}"
doc_to_choice: choices
doc_to_target: 0
target_delimiter: " "
metric_list:
  - metric: acc
metadata:
  version: 1.0
"""


def task_documents(requests):
    """Rendered `--elicit logprobs` prompts -> one JSON document per row: the key, the prompt
    ending in the answer cue, the options' numbers as choices."""
    choices = F.transform(F.sequence(F.col("scale_min"), F.col("scale_max")), lambda k: k.cast("string"))
    return requests.select(
        "question_id",
        "d_interview",
        F.to_json(
            F.struct(
                F.col("custom_id"),
                F.col("question_id"),
                F.col("d_interview"),
                F.col("scale_min"),
                F.concat(F.col("prompt"), F.lit(ANSWER_CUE)).alias("prompt"),
                choices.alias("choices"),
            )
        ).alias("document"),
    )


def task_yaml(task: str, docs_path: str, count: int) -> str:
    return TASK_YAML.format(task=task, docs=docs_path, folder=os.path.dirname(docs_path), count=count)


INSPECT_TASK = '''"""inspect_ai task written by `wvb export inspect-task` ({count} samples, {how}).

Run:    inspect eval {path} --model <provider/model> --log-dir LOGS
Import: wvb predictions import --warehouse WAREHOUSE --model NAME --file LOGS/<log>.eval

The sample id is wvb's key of the (question, respondent); there is no scorer: wvb scores
the answers after import.
"""

import os

from inspect_ai import Task, task
from inspect_ai.dataset import json_dataset
from inspect_ai.model import GenerateConfig
from inspect_ai.solver import generate

DATASET = os.path.join(os.path.dirname(os.path.abspath(__file__)), {dataset!r})


@task
def {task}():
    return Task(dataset=json_dataset(DATASET), solver=generate(), config=GenerateConfig({config}))
'''

# GenerateConfig per elicitation: one token and its alternatives for log-probabilities.
INSPECT_CONFIGS = {"free-text": "", "logprobs": "max_tokens=1, logprobs=True, top_logprobs={top}, temperature=0.0"}
INSPECT_ELICITATIONS = tuple(INSPECT_CONFIGS)


def inspect_samples(requests):
    """Rendered prompts -> one inspect sample per row: id (our custom_id), input (the
    prompt; system + user messages when the template has a system message), metadata (the
    key and the scale)."""
    metadata = F.struct("question_id", "d_interview", "scale_min", "scale_max", "variant").alias("metadata")
    messages = F.array(
        F.struct(F.lit("system").alias("role"), F.col("system").alias("content")),
        F.struct(F.lit("user").alias("role"), F.col("prompt").alias("content")),
    )
    as_text = F.to_json(
        F.struct(F.col("custom_id").alias("id"), F.col("prompt").alias("input"), F.lit("").alias("target"), metadata)
    )
    as_messages = F.to_json(
        F.struct(F.col("custom_id").alias("id"), messages.alias("input"), F.lit("").alias("target"), metadata)
    )
    document = F.when(F.coalesce(F.col("system"), F.lit("")) == "", as_text).otherwise(as_messages)
    return requests.select("question_id", "d_interview", document.alias("document"))


def inspect_task_file(task: str, dataset: str, count: int, elicit: str, top_logprobs: int, path: str) -> str:
    config = INSPECT_CONFIGS[elicit].format(top=top_logprobs)
    how = "one token and its top log-probabilities" if elicit == "logprobs" else "free-text answers"
    return INSPECT_TASK.format(task=task, dataset=dataset, count=count, how=how, config=config, path=path)


def _common_arguments(task: argparse.ArgumentParser, files: str) -> None:
    task.add_argument(
        "--warehouse", required=True, metavar="DIR", help="warehouse root (needs probe, participants, questions)"
    )
    task.add_argument("--out", required=True, metavar="DIR", help=f"local folder for {files}")
    task.add_argument("--task", default="wvb_probe", help="task name (default: %(default)s)")
    add_selection_options(task, "document")


SETTINGS = None
OPTIONS = ()


def add_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    actions = parser.add_subparsers(dest="action", metavar="WHAT", required=True)
    lm_eval = actions.add_parser(
        "lm-eval-task",
        parents=[common_options(after_action=True)],
        help="the probe as an lm-evaluation-harness multiple-choice task",
        description="Write an lm-evaluation-harness task (YAML + JSONL documents) of the probe.",
    )
    _common_arguments(lm_eval, "<task>.yaml and <task>.jsonl")
    inspect = actions.add_parser(
        "inspect-task",
        parents=[common_options(after_action=True)],
        help="the probe as an inspect_ai task",
        description="Write an inspect_ai task (<task>.py + JSONL dataset) of the probe.",
    )
    _common_arguments(inspect, "<task>.py and <task>.jsonl")
    inspect.add_argument(
        "--elicit",
        choices=INSPECT_ELICITATIONS,
        default="free-text",
        help="free-text (default): the persona prompt of `wvb prompts`, one answer read as a "
        "point score; logprobs: the numbered options, one token with its top "
        "log-probabilities, read as a distribution",
    )
    inspect.add_argument(
        "--top-logprobs",
        dest="top_logprobs",
        type=int,
        default=20,
        metavar="K",
        help="--elicit logprobs: alternatives per token (default: %(default)s)",
    )


def run(args, config: dict) -> Result:
    from wvb_spark.core.session import get_spark
    from wvb_spark.core.warehouse import Warehouse

    inspect = args.action == "inspect-task"
    elicit = getattr(args, "elicit", "logprobs")
    if not TASK_NAME.match(args.task):
        raise InputError(f"--task {args.task!r}: use a letter, then letters, digits or _ (at most 64)")
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be at least 1, got {args.limit}")
    top_logprobs = getattr(args, "top_logprobs", 20)
    if not 1 <= top_logprobs <= 20:
        raise InputError(f"--top-logprobs must be 1..20, got {top_logprobs}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError(f"--out {args.out} is a file, not a folder")
    template = load_template(args.template)
    Warehouse(None, args.warehouse, config).require(args.source, "participants", "questions")
    spark = get_spark(config)
    tables = Warehouse(spark, args.warehouse, config)
    questions = tables.read("questions")
    rows = selected_rows(tables.read(args.source), questions, args.split, args.questions)
    how = Elicitation(how=elicit, top_logprobs=top_logprobs) if inspect else Elicitation(how="logprobs")
    requests = render_prompts(
        rows,
        tables.read("participants"),
        questions,
        template=template,
        variant=args.variant,
        demographics=default_demographics(),
        model="",
        elicit=how,
    )
    scales = questions.select("question_id", "scale_min", "scale_max")
    to_documents = inspect_samples if inspect else task_documents
    documents = in_question_order(to_documents(requests.join(F.broadcast(scales), on="question_id", how="inner")))
    if args.limit:
        documents = documents.limit(args.limit)
    count = documents.count()
    if count == 0:
        raise InputError(f"no {args.source} rows selected: nothing to export")
    folder = os.path.abspath(args.out)
    os.makedirs(folder, exist_ok=True)
    docs_path = os.path.join(folder, f"{args.task}.jsonl")
    write_single_text_file(spark, documents.select("document"), docs_path)
    if inspect:
        task_path = os.path.join(folder, f"{args.task}.py")
        with open(task_path, "w", encoding="utf-8") as handle:
            handle.write(
                inspect_task_file(args.task, os.path.basename(docs_path), count, elicit, top_logprobs, task_path)
            )
        return Result(
            lines=[
                f"wrote {count} samples to {docs_path} and the task {task_path}; "
                f"run: inspect eval {task_path} --model <provider/model> --log-dir LOGS"
            ],
            counts={"samples": count},
        )
    with open(os.path.join(folder, f"{args.task}.yaml"), "w", encoding="utf-8") as handle:
        handle.write(task_yaml(args.task, docs_path, count))
    return Result(
        lines=[
            f"wrote {count} documents to {docs_path} and the task "
            f"{os.path.join(folder, args.task + '.yaml')}; run: lm_eval --include_path {folder} "
            f"--tasks {args.task} --log_samples --output_path OUT ..."
        ],
        counts={"documents": count},
    )
