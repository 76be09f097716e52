"""The exceptions that end a command, and their exit codes.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``; anything else
that escapes is an internal bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input or machine, reported as one line (exit code 2)."""

    exit_code = 2


class Diverged(Exception):
    """The loss became NaN or infinite (exit code 1)."""

    exit_code = 1


class Stopped(Exception):
    """Training stopped on a signal; exit_code is 128 + the signal: 130 (SIGINT), 143 (SIGTERM)."""

    def __init__(self, exit_code: int):
        super().__init__(exit_code)
        self.exit_code = exit_code
