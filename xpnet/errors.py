"""The exceptions that end a command, their exit codes, and how a message names a setting.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``; anything else
that escapes is an internal bug and keeps its traceback. A message names a setting in its
caller's words: ``named("batch_size")`` is ``--batch-size`` on the command line (the default)
and ``batch_size`` inside ``parameter_words()``, which the Python API enters.
"""

from __future__ import annotations

import contextlib
import contextvars

_PARAMETER_WORDS = contextvars.ContextVar("xpnet_parameter_words", default=False)


def flag(name: str) -> str:
    """The command-line flag of a setting: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def named(name: str) -> str:
    """A setting as the caller says it: its flag, or its parameter name inside ``parameter_words()``."""
    return name if _PARAMETER_WORDS.get() else flag(name)


@contextlib.contextmanager
def parameter_words():
    """Messages made inside name settings as Python parameters (``lr``), not flags (``--lr``)."""
    token = _PARAMETER_WORDS.set(True)
    try:
        yield
    finally:
        _PARAMETER_WORDS.reset(token)


class UserError(Exception):
    """A problem with the user's input or machine, reported as one line (exit code 2)."""

    exit_code = 2


class OutputFailed(UserError):
    """Standard output cannot be written (a full disk, a closed file); a closed pipe is
    BrokenPipeError instead, which the command line ends quietly."""


def print_line(text: str) -> None:
    """``text`` and a newline on standard output, flushed: a command's result. OutputFailed
    when it cannot be written; BrokenPipeError when its reader has gone."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OutputFailed(f"cannot write to standard output ({e.strerror or e})") from None


class Diverged(Exception):
    """The loss became NaN or infinite (exit code 1)."""

    exit_code = 1


class Stopped(Exception):
    """Training stopped on a signal; exit_code is 128 + the signal: 130 (SIGINT), 143 (SIGTERM)."""

    def __init__(self, exit_code: int):
        super().__init__(exit_code)
        self.exit_code = exit_code
