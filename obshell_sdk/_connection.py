"""Below the SDK's HTTP connections: connecting within a call's time, reading past 1xx replies.

:func:`connect_within` opens a connection's socket as urllib3's ``HTTPConnection._new_conn``
does (each of the host's addresses in turn, with the connection's socket options and source
address, and urllib3's errors), except that no attempt outlasts the call: urllib3 gives every
address the whole connect timeout, so a hung host with six addresses made a 2 s call last six
connect timeouts. A failed connect sent nothing, so trying the next address sends nothing twice.

:class:`FinalResponse` is http.client's response read past every interim (1xx) reply to the
final one: http.client skips only ``100 Continue``, and took a ``102 Processing`` or ``103 Early
Hints`` for the reply, giving its connection back to the pool with the real reply still to come,
there to answer the next request sent on it. RFC 9110 (15.2) asks a client to read past interim
replies it did not expect; ``101 Switching Protocols``, never asked for, stays final (the
transport refuses it and closes its connection).
"""

from __future__ import annotations

import http.client
import math
import socket
import sys
import time
from typing import Any, Optional

import urllib3.exceptions
from urllib3.exceptions import ConnectTimeoutError, LocationParseError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

__all__ = ["FinalResponse", "connect_within"]

#: urllib3 2.x says so of a host no resolver knows; 1.26 wraps it in NewConnectionError.
_NameResolutionError: Any = getattr(urllib3.exceptions, "NameResolutionError", None)


class FinalResponse(http.client.HTTPResponse):
    """http.client's response, whose :meth:`begin` reads past interim (1xx) replies but 101.

    Installed as ``response_class`` of the SDK's connections, the hook http.client gives for
    it. Each interim reply's headers are read as a final reply's are (at most 100 lines of
    64 KiB each); a flood of interim replies ends at the call's deadline, whose watchdog cuts
    the socket.
    """

    def begin(self) -> None:
        """Read the status line and headers of the final reply (after any interim ones)."""
        super().begin()
        while 100 <= self.status < 200 and self.status != 101:
            # begin() reads a reply only while ``headers`` is None (it is set once read):
            # cleared, the next call reads the next status line and headers afresh.
            self.headers = self.msg = None  # type: ignore[assignment]
            super().begin()
            if self.headers is None:  # a begin() that would not read again: never spin
                raise http.client.HTTPException("cannot read past an interim reply")


def connect_within(conn: Any, until: float) -> socket.socket:
    """A connected socket for urllib3 connection ``conn``, no attempt lasting past ``until``.

    ``until`` is a :func:`time.monotonic` time (``math.inf`` for none). The errors are
    urllib3's: ``ConnectTimeoutError`` once out of time (or the connect timeout passed),
    ``NewConnectionError`` (2.x: ``NameResolutionError`` for an unknown host) otherwise.
    """
    # urllib3 keeps the host to resolve in ``_dns_host`` (a trailing dot kept, in 1.26 and
    # 2.x alike; ``host`` drops it, for TLS): the public ``host`` when it has none.
    host: str = getattr(conn, "_dns_host", None) or conn.host
    timeout = conn.timeout if isinstance(conn.timeout, (int, float)) else (
        socket.getdefaulttimeout())  # urllib3's "default" sentinel: the socket module's
    try:
        sock = _connect(host, conn.port, timeout, until, conn.source_address,
                        conn.socket_options)
    except UnicodeError:
        raise LocationParseError(f"'{host}', label empty or too long") from None
    except socket.gaierror as exc:
        if _NameResolutionError is not None:
            raise _NameResolutionError(conn.host, conn, exc) from exc
        raise NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc
    except socket.timeout as exc:
        raise ConnectTimeoutError(
            conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})",
        ) from exc
    except OSError as exc:
        raise NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc
    sys.audit("http.client.connect", conn, conn.host, conn.port)
    return sock


def _connect(host: str, port: int, timeout: Optional[float], until: float,
             source_address: Optional[tuple[str, int]],
             options: Optional[list[tuple[int, int, Any]]]) -> socket.socket:
    """urllib3's ``create_connection``, each address's attempt cut to the time left."""
    host = host.strip("[]") if host.startswith("[") else host
    host.encode("idna")  # a label empty or too long: UnicodeError, as urllib3 checks
    error: Optional[OSError] = None
    for family, kind, proto, _, address in socket.getaddrinfo(
            host, port, allowed_gai_family(), socket.SOCK_STREAM):
        left = until - time.monotonic()
        if left <= 0:
            raise socket.timeout(f"the call's time ran out before connecting to {address[0]}")
        sock = socket.socket(family, kind, proto)
        try:
            for option in options or ():
                sock.setsockopt(*option)
            attempt = min(left, math.inf if timeout is None else timeout)
            sock.settimeout(None if math.isinf(attempt) else attempt)
            if source_address:
                sock.bind(source_address)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        sock.settimeout(timeout)  # the connect timeout, as urllib3 leaves it (TLS, a tunnel)
        return sock
    raise error if error is not None else OSError("getaddrinfo returns an empty list")
