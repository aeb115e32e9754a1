"""Errors a user can act on: the CLI prints them as one line and exits non-zero."""


class WvbError(Exception):
    """Unusable input or settings. ``exit_code`` 2 means bad input, 1 a failed run."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
