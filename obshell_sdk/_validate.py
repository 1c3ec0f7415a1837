"""Checks of caller input shared by the client and the task helper; all raise before I/O."""

from __future__ import annotations

import math
from typing import Any

from ._exceptions import InvalidArgumentError

__all__ = ["check_dag_id", "check_seconds", "check_timeout"]

# PROTOCOL §9.2: the first digit says where a task lives; each kind has a minimum length.
_MIN_LEN = {"1": 2, "2": 17, "4": 17, "3": 46, "5": 46}


def check_dag_id(value: Any, argument: str = "dag_id") -> str:
    """Return an obshell generic task id as a string, or raise InvalidArgumentError.

    Ids are decimal strings whose first digit is 1-5 (1 = cluster task, such as an agent
    upgrade). An ``int`` is accepted and turned into its decimal string.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidArgumentError(
            argument, f"must be a task id string such as '1123', got {type(value).__name__}"
        )
    text = str(value) if isinstance(value, int) else value
    if not text or not text.isascii() or not text.isdigit():
        raise InvalidArgumentError(
            argument, f"{text!r} is not a task id: ids are decimal digits, such as '1123'"
        )
    need = _MIN_LEN.get(text[0])
    if need is None:
        raise InvalidArgumentError(
            argument, f"{text!r} is not a task id: the first digit must be 1 to 5"
        )
    if len(text) < need:
        raise InvalidArgumentError(
            argument, f"{text!r} is too short for a task id starting with {text[0]}"
        )
    return text


def check_seconds(value: Any, argument: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a finite positive number of seconds, or raise InvalidArgumentError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(argument, f"must be a number of seconds, got {value!r}")
    number = float(value)
    if math.isnan(number) or math.isinf(number) or number < 0 or (number == 0 and not allow_zero):
        raise InvalidArgumentError(argument, f"must be a positive number of seconds, got {value!r}")
    return number


def check_timeout(value: Any, argument: str) -> tuple[float, float]:
    """Return a ``(connect, read)`` timeout pair from a number or a pair of numbers."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise InvalidArgumentError(argument, "must be seconds or a (connect, read) pair")
        return check_seconds(value[0], argument), check_seconds(value[1], argument)
    seconds = check_seconds(value, argument)
    return seconds, seconds
