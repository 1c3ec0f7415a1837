"""Errors at the command line: the exit code of each error class, and hints in CLI words.

The library's messages end with what to do next in Python (``client.task('11').wait()``);
a person at a shell is told the ``obshell-sdk`` command instead. :data:`HINTS` is the one
table of those translations; every Python hint the library writes has a row here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ._exceptions import (
    ApiError,
    AuthError,
    DecodeError,
    InvalidArgumentError,
    ObshellError,
    OutcomeUnknownError,
    TaskError,
    TaskFailedError,
    TaskStateError,
    TaskTimeoutError,
    TaskUnreachableError,
    TransportError,
)
from ._render import printable

__all__ = ["EXIT_STATE", "HINTS", "cli_message", "exit_code"]

(EXIT_OK, EXIT_TASK, EXIT_USAGE, EXIT_AUTH, EXIT_UNREACHABLE, EXIT_API, EXIT_TIMEOUT,
 EXIT_DECODE, EXIT_OUTCOME_UNKNOWN, EXIT_STATE) = range(10)
EXIT_INTERRUPTED = 130

#: Python hints in the library's messages and the command that does the same.
HINTS: Sequence[tuple[str, str]] = (
    (r"client\.task\('([^']*)'\)\.wait\(\)", r"obshell-sdk task wait \1"),
    (r"client\.task\('([^']*)'\)\.refresh\(\)", r"obshell-sdk task show \1"),
    (r"client\.unfinished_dags\(\) and client\.last_maintenance_dag\(\)",
     "obshell-sdk task list"),
    (r"client\.info\(\)", "obshell-sdk info"),
    (r"use PasswordAuth\(\.\.\., min_key_bits=512\)",
     "pass --min-key-bits 512 (or set OBSHELL_MIN_KEY_BITS=512)"),
)

_OPTIONS = {"OBSHELL_HOST": "--host", "OBSHELL_PORT": "--port", "OBSHELL_HTTPS": "--https",
            "OBSHELL_CA_BUNDLE": "--ca-bundle", "OBSHELL_MIN_KEY_BITS": "--min-key-bits"}


def exit_code(exc: ObshellError) -> int:
    """The exit code for an error (``obshell-sdk --help`` lists them)."""
    table: Sequence[tuple[type[ObshellError], int]] = (
        (InvalidArgumentError, EXIT_USAGE), (AuthError, EXIT_AUTH),
        (OutcomeUnknownError, EXIT_OUTCOME_UNKNOWN), (TaskStateError, EXIT_STATE),
        (TaskTimeoutError, EXIT_TIMEOUT), (TaskUnreachableError, EXIT_UNREACHABLE),
        (TaskError, EXIT_TASK), (TransportError, EXIT_UNREACHABLE), (DecodeError, EXIT_DECODE),
        (ApiError, EXIT_API),
    )
    for cls, code in table:
        if isinstance(exc, cls):
            return code
    return EXIT_API


def cli_message(exc: ObshellError) -> str:
    """The error as the CLI prints it: escaped, with hints naming CLI commands and options."""
    text = str(exc)
    for pattern, command in HINTS:
        text = re.sub(pattern, command, text)
    if isinstance(exc, TaskStateError):
        text = text.replace("Refresh it if it may have changed",
                            f"See where it stands: obshell-sdk task show {exc.task_id}")
    if isinstance(exc, TaskFailedError) and exc.detail is not None \
            and exc.detail.maintenance_type != 1:
        text += (f"\nNext: obshell-sdk task retry {exc.task_id} --wait (or rollback, skip, "
                 f"cancel)")
    option = _OPTIONS.get(getattr(exc, "argument", ""))
    if option:
        text += f" (or pass {option})"
    return printable(text, keep_newlines=True)
