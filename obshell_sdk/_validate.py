"""Checks of caller input shared by the client and the task helper; all raise before I/O."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from typing import Any, Optional

from ._dag import Operator
from ._exceptions import InvalidArgumentError

__all__ = [
    "check_dag_id",
    "check_host",
    "check_language",
    "check_operator",
    "check_port",
    "check_seconds",
    "check_timeout",
    "check_tls",
]

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


def check_operator(value: Any) -> Operator:
    """Return the DAG operator named by ``value`` (RETRY, ROLLBACK, CANCEL or PASS)."""
    if isinstance(value, Operator):
        op = value
    elif isinstance(value, str) and value.strip().upper() in Operator.__members__:
        op = Operator[value.strip().upper()]
    else:
        raise InvalidArgumentError(
            "operator", f"{value!r} is not one of RETRY, ROLLBACK, CANCEL, PASS"
        )
    if op is Operator.RUN:
        raise InvalidArgumentError("operator", "RUN cannot be applied; use RETRY to run again")
    return op


_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9\-_.]*[A-Za-z0-9])?\Z")


def check_host(host: Any) -> str:
    """Return ``host`` as it goes in a URL (IPv6 bracketed), or raise InvalidArgumentError."""
    if not isinstance(host, str):
        raise InvalidArgumentError("host", f"must be a string, got {type(host).__name__}")
    bare = host.strip()
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    if not bare:
        raise InvalidArgumentError("host", "must not be empty")
    if "://" in bare:
        raise InvalidArgumentError(
            "host", f"{host!r} looks like a URL; pass the bare host and port=, https= instead"
        )
    if ":" in bare:
        try:
            ipaddress.IPv6Address(bare.split("%", 1)[0])
        except ValueError:
            raise InvalidArgumentError(
                "host", f"{host!r} is neither a host name nor an IP address; pass the port "
                "as port=, not inside host"
            ) from None
        return f"[{bare}]"
    if not _HOSTNAME.match(bare):
        raise InvalidArgumentError("host", f"{host!r} is not a valid host name or IPv4 address")
    return bare


def check_port(port: Any) -> int:
    """Return a TCP port number, or raise InvalidArgumentError."""
    if isinstance(port, bool) or not isinstance(port, int):
        raise InvalidArgumentError("port", f"must be an integer, got {type(port).__name__}")
    if not 1 <= port <= 65535:
        raise InvalidArgumentError("port", f"must be between 1 and 65535, got {port}")
    return port


def check_tls(https: Any, verify: Any, cert: Any) -> None:
    """Check the TLS options: ``verify`` a bool or CA bundle path, ``cert`` existing file(s)."""
    if not isinstance(https, bool):
        raise InvalidArgumentError("https", "must be True or False")
    if not isinstance(verify, (bool, str)):
        raise InvalidArgumentError("verify", "must be True, False or the path of a CA bundle")
    if isinstance(verify, str) and not os.path.exists(verify):
        raise InvalidArgumentError("verify", f"CA bundle {verify!r} does not exist")
    if cert is None:
        return
    paths = (cert,) if isinstance(cert, str) else cert
    if not (isinstance(paths, tuple) and len(paths) in (1, 2)
            and all(isinstance(p, str) for p in paths)):
        raise InvalidArgumentError("cert", "must be a path or a (certificate, key) pair of paths")
    for path in paths:
        if not os.path.isfile(path):
            raise InvalidArgumentError("cert", f"{path!r} is not a file")
    if not https:
        raise InvalidArgumentError("cert", "a client certificate needs https=True")


_LANGUAGE = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*\Z")


def check_language(value: Any) -> Optional[str]:
    """Return one BCP 47 tag (obshell ignores lists such as ``zh-CN,zh;q=0.9``) or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not _LANGUAGE.match(value):
        raise InvalidArgumentError(
            "accept_language", f"{value!r} is not one language tag such as 'en' or 'zh-CN'"
        )
    return value
