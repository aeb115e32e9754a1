"""The `wvb` command, and the one stage runner: it loads the settings once, lays the
command's options over them, runs the stage (wvb_spark/stages/<command>.py, see
core/stage.py for what a stage provides), prints the stage's result on stdout and
turns a WvbError into one line on stderr and its exit code. jobs/*.py and the
Databricks tasks run every stage through here too.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from wvb_spark.core import config, logs, runtime, stage
from wvb_spark.core.errors import WvbError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("wvb_spark.stages.synth", "write a synthetic WVS Wave 7 CSV in the official layout"),
    "build": (
        "wvb_spark.stages.build",
        "raw WVS Wave 7 CSV -> questions, participants, examples, quarantine Delta tables",
    ),
    "probe": ("wvb_spark.stages.probe", "stratified probe sample: questions x demographic groups x k respondents"),
    "prompts": (
        "wvb_spark.stages.prompts",
        "chat requests (JSONL) for the probe or selected examples, with or without demographics",
    ),
    "export": (
        "wvb_spark.stages.export",
        "the probe as an lm-evaluation-harness or inspect_ai task (task file + JSONL documents)",
    ),
    "predictions": (
        "wvb_spark.stages.predictions",
        "import a model's predictions (TSV/CSV, JSONL answers, distributions) with a status per row",
    ),
    "baselines": (
        "wvb_spark.stages.baselines",
        "baseline models (uniform, majority-leaky, global-prior, group-prior) into predictions",
    ),
    "evaluate": (
        "wvb_spark.stages.evaluate",
        "score models: human vs model histograms, W1/JSD/TV with bootstrap CIs, headline summary",
    ),
    "report": (
        "wvb_spark.stages.report",
        "report.md, self-contained report.html and PNG figures from summary and distances",
    ),
    "simulate-model": (
        "wvb_spark.stages.simulate",
        "a model-output TSV from a predictor with a known bias (for demos and tests)",
    ),
    "vacuum": ("wvb_spark.stages.vacuum", "delete table files no version inside the retention needs (Delta's rules)"),
    "delta-jars": (
        "wvb_spark.stages.delta_jars",
        "fetch Delta's JVM jars once (Maven Central) so local runs write native Delta",
    ),
    "bench": ("wvb_spark.stages.bench", "time whole stages (median of repeats, peak memory)"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only` (a command name), only that command's module is imported and
    given its options — the others still appear in `wvb --help` — which keeps start-up short."""
    parser = argparse.ArgumentParser(prog="wvb", description="WorldValuesBench on Spark.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parent = stage.common_options()
    defaults = config.defaults()
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text, parents=[parent])
        if only is None or name == only:
            module = _stage_module(module_name, needed=name == only)
            if module is None:
                command.set_defaults(run=_pyspark_missing)
                continue
            module.add_arguments(command, defaults.get(module.SETTINGS) or {})
            command.set_defaults(run=_runner(module))
    return parser


def _stage_module(module_name: str, needed: bool):
    """The stage's module; None when it needs pyspark and pyspark is absent, so `wvb --help`
    and the commands without Spark (synth) still work where no runtime is installed. A
    command that needs it stops with one line (runtime.MISSING)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if not runtime.is_missing_pyspark(error):
            raise
        if needed:
            raise runtime.missing_pyspark_error() from None
        return None


def _pyspark_missing(args) -> int:
    raise runtime.missing_pyspark_error()


def _runner(module):
    """Run one stage: settings once (one precedence), the stage, its result on stdout."""

    def run(args) -> int:
        settings = config.load(args.conf, args.overrides)
        if module.SETTINGS:
            settings = config.with_options(settings, module.SETTINGS, args, module.OPTIONS)
        result = module.run(args, settings)
        for line in result.lines:
            print(line, flush=True)
        return result.exit_code

    return run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    try:
        parser = build_parser(chosen if chosen in COMMANDS else None)
    except WvbError as exc:
        print(f"wvb {chosen}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    args = parser.parse_args(argv)
    logs.setup(args.command, args.verbosity)
    try:
        return int(args.run(args) or 0)
    except WvbError as exc:
        print(f"wvb {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"wvb {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
