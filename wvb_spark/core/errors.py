"""Errors a user can act on. The command-line runner prints each as one line on stderr
and exits with its `exit_code`; anything else is a bug and keeps its traceback."""


class WvbError(Exception):
    """The base of every error the runner turns into one line."""

    exit_code = 1


class InputError(WvbError):
    """Unusable input, options, settings or environment: fix it and run again."""

    exit_code = 2


class MissingTableError(InputError):
    """A table the stage reads is absent; the message names the command that writes it."""


class ConflictError(WvbError):
    """Another writer committed first; the input was fine and a rerun may succeed."""

    exit_code = 1


class RunError(WvbError):
    """The run itself failed (a write that does not reconcile, a step that crashed)."""

    exit_code = 1
