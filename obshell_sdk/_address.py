"""Where an agent is: its host and port, checked before any I/O, and targets spelt one way.

``LOCALHOST`` and ``localhost``, or ``[::1]`` and its long form, are one agent.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ._exceptions import InvalidArgumentError
from ._validate import brief_repr, control_character

__all__ = ["check_host", "check_port", "parse_targets"]

_ASCII_DIGITS = re.compile(r"[0-9]+\Z")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9\-_.]*[A-Za-z0-9])?\Z")
_SCOPE_ID = re.compile(r"[A-Za-z0-9_.\-]+\Z")
_MAX_HOST = 253  # RFC 1035: a name is at most 253 characters, each label at most 63


def check_host(host: Any, *, port_as: str = "port=", https_as: str = "https=") -> str:
    """Return ``host`` as it goes in a URL, or raise InvalidArgumentError.

    Host names are ASCII (give an IDN in its ``xn--`` form); IPv6 addresses are bracketed,
    and a scope id (``fe80::1%eth0``) is written ``[fe80::1%25eth0]`` as RFC 6874 says.
    ``port_as`` and ``https_as`` name where the caller's port and scheme go instead, in the
    caller's words (``OBSHELL_PORT``, ``--port``); a URL's scheme is named only when it is
    ``https://`` (plain http is the default).
    """
    if not isinstance(host, str):
        raise InvalidArgumentError("host", f"must be a string, got {type(host).__name__}")
    bare = host.strip()
    bracketed = bare.startswith("[") and bare.endswith("]")
    if bracketed:
        bare = bare[1:-1]
    if not bare:
        raise InvalidArgumentError("host", "must not be empty")
    if not bare.isascii() or control_character(bare):
        raise InvalidArgumentError(
            "host", f"{brief_repr(host)} is not an ASCII host name or IP address (give an "
            "international name in its xn-- form)"
        )
    if "://" in bare:  # https only when the URL says so: a plain agent refuses TLS
        scheme = bare.partition("://")[0].strip().lower()
        where = (f"the port and scheme as {port_as} and {https_as}" if scheme == "https" else
                 f"the port as {port_as}" + (" (http is the default)" if scheme == "http" else ""))
        raise InvalidArgumentError(
            "host", f"{brief_repr(host)} looks like a URL; give the bare host, and {where}")
    if ":" in bare:
        return _ipv6_url_host(host, bare, bracketed, port_as)
    labels = bare.split(".")
    if (len(bare) > _MAX_HOST or not _HOSTNAME.match(bare)
            or any(not 0 < len(label) <= 63 for label in labels)):
        raise InvalidArgumentError(
            "host", f"{brief_repr(host)} is not a valid host name or IPv4 address"
        )
    if _ASCII_DIGITS.match(labels[-1]):  # no top-level domain is numeric: an IPv4 address
        try:
            ipaddress.IPv4Address(bare)
        except ValueError:
            raise InvalidArgumentError(
                "host", f"{brief_repr(host)} is not a valid IPv4 address"
            ) from None
    return bare


def _ipv6_url_host(host: str, bare: str, bracketed: bool, port_as: str) -> str:
    """``[address]`` or ``[address%25scope]`` for an IPv6 host, else InvalidArgumentError."""
    address, percent, scope = bare.partition("%")
    if percent:
        if bracketed and scope.startswith("25") and len(scope) > 2:
            scope = scope[2:]  # already in the URL form, "%25" for "%"
        if not _SCOPE_ID.match(scope):
            raise InvalidArgumentError(
                "host", f"{brief_repr(host)} has a scope id other than letters, digits "
                "and _ . - (such as fe80::1%eth0)"
            )
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        raise InvalidArgumentError(
            "host", f"{brief_repr(host)} is neither a host name nor an IP address; give the "
            f"port as {port_as}, not inside the host"
        ) from None
    return f"[{address}%25{scope}]" if percent else f"[{address}]"


def check_port(port: Any) -> int:
    """Return a TCP port number, or raise InvalidArgumentError."""
    if isinstance(port, bool) or not isinstance(port, int):
        raise InvalidArgumentError("port", f"must be an integer, got {type(port).__name__}")
    if not 1 <= port <= 65535:
        raise InvalidArgumentError(
            "port", f"must be between 1 and 65535, got {brief_repr(port)}"
        )
    return port


def parse_targets(targets: Any) -> list[str]:
    """Rollout targets as ``"host:port"``, each checked; InvalidArgumentError names a bad one.

    Each is spelt one way (host names in lower case, IPv6 addresses compressed, IPv4-mapped
    ones as IPv4), so that no agent is listed twice under two spellings.
    """
    if isinstance(targets, (str, bytes)) or not hasattr(targets, "__iter__"):
        raise InvalidArgumentError("targets", "must be a list of 'host:port' or (host, port)")
    found: list[str] = []
    for item in targets:
        if isinstance(item, tuple) and len(item) == 2:
            host, port = item
        elif isinstance(item, str) and ":" in item:
            host, _, text = item.strip().rpartition(":")
            if not (text.isascii() and text.isdigit()):
                raise InvalidArgumentError("targets", f"{item!r} has no port number")
            port = int(text)
        else:
            raise InvalidArgumentError("targets", f"{item!r} is not 'host:port' or (host, port)")
        host = check_host(host, port_as="host:port", https_as="Rollout(..., https=True)")
        name = f"{_one_spelling(host)}:{check_port(port)}"
        if name in found:
            raise InvalidArgumentError("targets", f"{name} is listed twice")
        found.append(name)
    if not found:
        raise InvalidArgumentError("targets", "no target given")
    return found


def _one_spelling(url_host: str) -> str:
    """A URL host spelt one way: ``[0:0::1]`` is ``[::1]``, ``DB1.example`` ``db1.example``."""
    if not url_host.startswith("["):
        return url_host.lower()
    address, percent, scope = url_host[1:-1].partition("%25")
    ip = ipaddress.IPv6Address(address)
    if ip.ipv4_mapped is not None and not percent:
        return str(ip.ipv4_mapped)
    return f"[{ip.compressed}{percent}{scope}]"
