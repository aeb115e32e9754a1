"""One log format for every stage: progress and warnings on stderr as
``wvb <command>: message``; results go to stdout through the runner."""

from __future__ import annotations

import logging
import sys

ROOT = "wvb_spark"
LEVELS = {"quiet": logging.WARNING, "normal": logging.INFO, "verbose": logging.DEBUG}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of the record (tests and notebooks
    replace it), not the stream of the moment the handler was made."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup(command: str, verbosity: str = "normal") -> None:
    """Send the package's log records to stderr, prefixed with the command's name.
    Called once per command by the runner; a later call replaces the handler."""
    logger = logging.getLogger(ROOT)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(f"wvb {command}: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(LEVELS[verbosity])
    logger.propagate = False
