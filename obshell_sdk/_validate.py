"""Checks of caller input shared by the client and the task helper; all raise before I/O."""

from __future__ import annotations

import math
import os
import re
from typing import Any, Optional, overload

from ._dag import MAX_ID_LENGTH, Operator, task_id_problem
from ._exceptions import InvalidArgumentError

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_LIFETIME",
    "MAX_SECONDS",
    "brief_repr",
    "check_auth_options",
    "check_dag_id",
    "check_language",
    "check_operator",
    "check_random_bytes",
    "check_seconds",
    "check_timeout",
    "check_tls",
    "check_upload_timeout",
    "control_character",
]

#: The most seconds any timeout, wait, lifetime or interval may be (about 115 days).
MAX_SECONDS = 10**7
#: The longest lifetime of a signed header (a day): uploads' included.
MAX_LIFETIME = 24 * 3600.0
# C0 controls (NUL included), DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def brief_repr(value: Any, limit: int = 60) -> str:
    """A short ``repr`` of caller input for error messages; never raises, never huge."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = repr(value)
    except Exception:  # a caller's object whose repr fails still gets a message
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def control_character(text: str) -> Optional[str]:
    """The name of the first NUL or other control character (C0, DEL, C1) in ``text``, or None."""
    found = _CONTROL.search(text)
    if found is None:
        return None
    return "NUL" if found.group() == "\x00" else f"control character {found.group()!r}"


def check_dag_id(value: Any, argument: str = "dag_id") -> str:
    """Return an obshell generic task id as a string, or raise InvalidArgumentError.

    Ids are ASCII decimal strings whose first digit is 1-5 (1 = cluster task, such as an
    agent upgrade), at most :data:`MAX_ID_LENGTH` long. An ``int`` is accepted and turned
    into its decimal string.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidArgumentError(
            argument, f"must be a task id string such as '1123', got {type(value).__name__}"
        )
    if isinstance(value, int) and not 0 <= value < 10**MAX_ID_LENGTH:
        raise InvalidArgumentError(argument, f"{brief_repr(value)} is not a task id")
    text = str(value) if isinstance(value, int) else value
    problem = task_id_problem(  # the caller's: a typo, or a node's id for its DAG's
        text, " (a typo? client.unfinished_dags() lists the running tasks' ids)")
    if problem is not None:
        raise InvalidArgumentError(argument, f"{brief_repr(text)} {problem}")
    return text


def check_seconds(value: Any, argument: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a number of seconds, or raise InvalidArgumentError.

    The number must be finite, positive (or zero with ``allow_zero``) and at most
    :data:`MAX_SECONDS`.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(
            argument, f"must be a number of seconds, got {brief_repr(value)}"
        )
    # Clamped before float(), which overflows on huge integers; the sign and bound stay.
    number = float(max(-1, min(value, MAX_SECONDS + 1)) if isinstance(value, int) else value)
    if math.isnan(number) or number < 0 or (number == 0 and not allow_zero):
        raise InvalidArgumentError(
            argument, f"must be a positive number of seconds, got {brief_repr(value)}"
        )
    if number > MAX_SECONDS:
        raise InvalidArgumentError(
            argument, f"must be at most {MAX_SECONDS} seconds, got {brief_repr(value)}"
        )
    return number


@overload
def check_upload_timeout(value: None, argument: str = ...) -> None: ...
@overload
def check_upload_timeout(value: Any, argument: str = ...) -> float: ...
def check_upload_timeout(value: Any, argument: str = "upload_timeout") -> Optional[float]:
    """How long an upload may take (its signed header lives as long): up to a day.

    None keeps ``upload_package``'s default.
    """
    if value is None:
        return None
    seconds = check_seconds(value, argument)
    if seconds > MAX_LIFETIME:
        raise InvalidArgumentError(argument, f"must be at most {int(MAX_LIFETIME)} seconds (a "
                                   "day: the upload's signed header lives as long), got "
                                   f"{brief_repr(value)}")
    return seconds


def check_timeout(value: Any, argument: str) -> tuple[float, float]:
    """Return a ``(connect, read)`` timeout pair from a number or a tuple of two numbers."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise InvalidArgumentError(
                argument, f"must be seconds or a (connect, read) pair, got {len(value)} items"
            )
        return check_seconds(value[0], argument), check_seconds(value[1], argument)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InvalidArgumentError(
            argument, f"must be seconds or a (connect, read) tuple, got {brief_repr(value)}"
        )
    seconds = check_seconds(value, argument)
    return seconds, seconds


def check_operator(value: Any) -> Operator:
    """Return the DAG operator named by ``value`` (RETRY, ROLLBACK, CANCEL or PASS)."""
    if isinstance(value, Operator):
        op = value
    elif (isinstance(value, str) and value.isascii()
          and value.strip().upper() in Operator.__members__):
        op = Operator[value.strip().upper()]
    else:
        raise InvalidArgumentError(
            "operator", f"{brief_repr(value)} is not one of RETRY, ROLLBACK, CANCEL, PASS"
        )
    if op is Operator.RUN:
        raise InvalidArgumentError("operator", "RUN cannot be applied; use RETRY to run again")
    return op


def check_call(method: Any, path: Any, query: Any, signed: Any) -> str:
    """The request-target of ``ObshellClient.call``, its arguments checked."""
    if not isinstance(method, str) or not (method.isascii() and method.isalpha()):
        raise InvalidArgumentError("method", f"{brief_repr(method)} is not an HTTP method")
    if not isinstance(path, str) or not path.startswith("/") or not path.isprintable():
        raise InvalidArgumentError("path", f"{brief_repr(path)} must start with / and be "
                                   "printable")
    if not isinstance(query, str) or not query.isprintable():
        raise InvalidArgumentError("query", f"{brief_repr(query)} must be a printable string")
    check_flag(signed, "signed")
    return f"{path}?{query}" if query else path


def check_flag(value: Any, argument: str, *, none: bool = False) -> Any:
    """``value`` when it is True or False (or None, with ``none``).

    A string such as "false" read from a config file would otherwise count as true.
    """
    if isinstance(value, bool) or (none and value is None):
        return value
    allowed = "True, False or None" if none else "True or False"
    raise InvalidArgumentError(argument, f"must be {allowed}, not {brief_repr(value)}")


def check_progress(progress: Any, on_progress: Any, on_upload: Any = None) -> None:
    """A wait's display options: ``progress`` True, False or None; ``on_progress`` callable.

    And a workflow's ``on_upload``: callable, or None.
    """
    check_flag(progress, "progress", none=True)
    if on_progress is not None and not callable(on_progress):
        raise InvalidArgumentError("on_progress", "must be a function taking a DagDetail, or "
                                   f"None, not {brief_repr(on_progress)}")
    if on_upload is not None and not callable(on_upload):
        raise InvalidArgumentError("on_upload", "must be a function taking a path and what "
                                   f"the agent stored, or None, not {brief_repr(on_upload)}")


def check_auth_options(lifetime: Any, version: Any, min_key_bits: Any, random: Any) -> None:
    """Check ``PasswordAuth``'s ``lifetime``, ``version``, ``min_key_bits`` and ``random``."""
    if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)):
        raise InvalidArgumentError("lifetime", "must be a number of seconds")
    if not 1 <= lifetime <= MAX_LIFETIME:
        raise InvalidArgumentError("lifetime", f"must be between 1 and {int(MAX_LIFETIME)} "
                                   f"seconds, got {brief_repr(lifetime)}")
    if version is not None and version not in ("v1", "v2"):
        raise InvalidArgumentError("version", f"must be 'v1', 'v2' or None, got "
                                   f"{brief_repr(version)}")
    if min_key_bits not in (512, 1024, 2048, 4096):
        raise InvalidArgumentError("min_key_bits", f"must be 512, 1024, 2048 or 4096, got "
                                   f"{brief_repr(min_key_bits)}")
    if not callable(random):
        raise InvalidArgumentError("random", "must be a function that returns n random bytes, "
                                   f"like os.urandom; got {brief_repr(random)}")


def check_random_bytes(value: Any, n: int) -> bytes:
    """``value``, what ``PasswordAuth``'s ``random`` returned when asked for ``n`` bytes."""
    if not isinstance(value, bytes) or len(value) != n:
        raise InvalidArgumentError("random", f"must return n random bytes when asked for n; "
                                   f"asked for {n}, it returned {brief_repr(value)} (nothing "
                                   "was sent)")
    return value


def check_tls(https: Any, verify: Any, cert: Any) -> None:
    """Check the TLS options: ``verify`` a bool or CA bundle path, ``cert`` existing file(s)."""
    if not isinstance(https, bool):
        raise InvalidArgumentError("https", "must be True or False")
    if not isinstance(verify, (bool, str)):
        raise InvalidArgumentError("verify", "must be True, False or the path of a CA bundle")
    if isinstance(verify, str) and not os.path.exists(verify):
        raise InvalidArgumentError("verify", f"CA bundle {brief_repr(verify)} does not exist")
    if isinstance(verify, str) and not https:  # else the password would go in plain HTTP
        raise InvalidArgumentError("verify", "a CA bundle verifies HTTPS: pass https=True too")
    if cert is None:
        return
    paths = (cert,) if isinstance(cert, str) else cert
    if not (isinstance(paths, tuple) and len(paths) in (1, 2)
            and all(isinstance(p, str) for p in paths)):
        raise InvalidArgumentError("cert", "must be a path or a (certificate, key) pair of paths")
    for path in paths:
        if not os.path.isfile(path):
            raise InvalidArgumentError("cert", f"{brief_repr(path)} is not a file")
    if not https:
        raise InvalidArgumentError("cert", "a client certificate needs https=True")


_LANGUAGE = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*\Z")


def check_language(value: Any) -> Optional[str]:
    """Return one BCP 47 tag (obshell ignores lists such as ``zh-CN,zh;q=0.9``) or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not _LANGUAGE.match(value):
        raise InvalidArgumentError(
            "accept_language",
            f"{brief_repr(value)} is not one language tag such as 'en' or 'zh-CN'",
        )
    return value
