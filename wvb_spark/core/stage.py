"""What every stage gives the command-line runner, and what it gets back.

A stage module (wvb_spark/stages/<command>.py) provides:

* ``SETTINGS`` — the block of the settings it reads (``"probe"``), or None;
* ``OPTIONS`` — the command-line options that are settings of that block: the runner
  lays each one given over ``settings[SETTINGS]`` (one precedence for every stage:
  built-in defaults < ``--conf`` file < ``--set`` < command-line options);
* ``add_arguments(parser, defaults)`` — its options; ``defaults`` is its block of the
  built-in settings, for help texts (a default is written once, in defaults.yaml);
* ``run(args, settings) -> Result`` — the work. It returns what it wrote and the
  lines to show; the runner prints them. Progress and warnings go to the log.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Any

# A settings file for every command of a run (a Databricks job sets it once per job
# cluster, so each task need not repeat --conf); --conf on the command line wins.
CONF_VARIABLE = "WVB_CONF"


@dataclass
class Result:
    """What a stage did: the lines for stdout, the tables it wrote (name -> Delta
    version), its counts, and the exit code (0 unless the stage reports a partial
    outcome, as `wvb delta-jars --check` does)."""

    lines: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    exit_code: int = 0

    def say(self, line: str) -> None:
        self.lines.append(line)


def common_options(after_action: bool = False) -> argparse.ArgumentParser:
    """Options every command takes: a settings file, key=value overrides, how much to log.
    `after_action`: the same options again after a sub-action (`wvb predictions import
    --conf ...`), defaulting to what was given before it."""
    parent = argparse.ArgumentParser(add_help=False)
    keep: dict[str, Any] = {"default": argparse.SUPPRESS} if after_action else {}
    parent.add_argument(
        "--conf",
        metavar="YAML",
        **(keep or {"default": os.environ.get(CONF_VARIABLE) or None}),
        help=f"settings file, e.g. conf/local.yaml (default: ${CONF_VARIABLE} if set, else built-in)",
    )
    parent.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="KEY=VALUE",
        **(keep or {"default": []}),
        help="override one setting, e.g. --set spark.master=local[2] or --set storage.writer=offline",
    )
    loudness = parent.add_mutually_exclusive_group()
    loudness.add_argument(
        "--quiet",
        "-q",
        dest="verbosity",
        action="store_const",
        const="quiet",
        **(keep or {"default": "normal"}),
        help="log warnings and errors only (results still go to stdout)",
    )
    loudness.add_argument(
        "--verbose",
        "-v",
        dest="verbosity",
        action="store_const",
        const="verbose",
        **(keep or {"default": "normal"}),
        help="log debugging detail too",
    )
    return parent
