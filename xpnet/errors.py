"""The one exception type for problems the user can fix (bad flags, bad files, no GPU).

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``;
anything else that escapes is an internal bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input or machine, reported as one line (exit code 2)."""

    exit_code = 2
