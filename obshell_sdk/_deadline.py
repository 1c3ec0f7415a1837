"""Wall-clock deadlines for calls, which requests' timeouts alone are not.

requests' read timeout bounds each socket read: an agent that trickles one byte a second
(in the status line, the headers or the body) never trips it. Here a call runs under a
:class:`CallDeadline`; the sockets the call uses register with it, and one watchdog thread
per process shuts them down when the deadline passes, so the blocked read returns at once
and the call ends. The transport then reports the call as timed out.

Sockets register through the connection classes of our own adapter (:class:`DeadlineAdapter`),
which requests mounts on the sessions the SDK makes; a socket cannot be cut while it connects,
so those classes connect to each of a host's addresses only for what is left of the call
(:mod:`._connection`). The same classes note when a call's request starts going out
(:attr:`CallDeadline.sent`): a failure before that, even a TLS error, cannot have reached the
agent; one after it may have.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Optional

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ._connection import FinalResponse, connect_within

__all__ = ["CallDeadline", "DeadlineAdapter", "cut_when", "new_session"]

log = logging.getLogger("obshell_sdk")

_current = threading.local()
#: How often the watchdog looks at the stop events of the calls under way that have one.
STOP_CHECK = 0.05


class CallDeadline:
    """The wall-clock deadline of one call, on this thread, while it is entered.

    ``with CallDeadline(seconds) as deadline: ...``; afterwards ``deadline.fired`` tells
    whether the watchdog had to cut the call's sockets.
    """

    def __init__(self, seconds: float) -> None:
        self.expires = time.monotonic() + seconds
        self.fired = False
        #: True once a byte of the request was handed to a socket (our adapter only).
        self.sent = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        #: Once set (by another thread), the call is cut as at its deadline: see cut_when.
        self.stop: Optional[threading.Event] = getattr(_current, "stop", None)

    def __enter__(self) -> CallDeadline:
        _current.deadline = self
        _WATCHDOG.arm(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _WATCHDOG.disarm(self)
        _current.deadline = None
        with self._lock:
            self._sockets.clear()

    def watch(self, sock: Optional[socket.socket]) -> None:
        """Cut ``sock`` when the deadline passes (at once if it already has)."""
        if sock is None:
            return
        with self._lock:
            if not self.fired:
                self._sockets.append(sock)
                return
        _cut(sock)

    def unwatch(self, sock: Optional[socket.socket]) -> None:
        """Leave ``sock`` alone from now on: its connection goes back to the pool."""
        with self._lock:  # watched once per step of making the connection
            self._sockets = [watched for watched in self._sockets if watched is not sock]

    def fire(self) -> None:
        """The deadline passed: shut down every socket the call uses."""
        with self._lock:  # never one given back to the pool meanwhile (unwatch)
            self.fired = True
            for sock in self._sockets:
                _cut(sock)
            self._sockets = []


@contextlib.contextmanager
def cut_when(stop: Optional[threading.Event]) -> Iterator[None]:
    """Calls this thread makes inside are cut once ``stop`` is set, as at their deadline.

    A wait's stop then ends a poll under way (an agent that hangs) within
    :data:`STOP_CHECK` seconds, not the read timeout.
    """
    before = getattr(_current, "stop", None)
    _current.stop = stop
    try:
        yield
    finally:
        _current.stop = before


def _cut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for an SSLSocket: a blocked read (even mid-TLS)
    # sees the connection end, and the TLS object is left alone for its own thread. TLS
    # through an HTTPS proxy is urllib3's SSLTransport, no socket: its socket is cut.
    sock = getattr(sock, "socket", sock)
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed or never connected


def _watch_current(sock: Optional[socket.socket]) -> None:
    deadline: Optional[CallDeadline] = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


def _unwatch_current(sock: Optional[socket.socket]) -> None:
    deadline: Optional[CallDeadline] = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.unwatch(sock)


def _sending() -> None:
    deadline: Optional[CallDeadline] = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.sent = True


class _Watchdog:
    """One daemon thread that fires the deadlines that pass (started on first use)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: set[CallDeadline] = set()
        self._thread: Optional[threading.Thread] = None
        self._wakes_at = float("inf")  # when the thread wakes next by itself

    def arm(self, deadline: CallDeadline) -> None:
        with self._cond:
            self._armed.add(deadline)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="obshell-sdk-deadlines",
                                                daemon=True)
                self._thread.start()
            if deadline.expires < self._wakes_at or deadline.stop is not None:
                self._cond.notify()  # else the thread is up before it anyway

    def disarm(self, deadline: CallDeadline) -> None:
        with self._cond:
            self._armed.discard(deadline)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [d for d in self._armed
                       if d.expires <= now or (d.stop is not None and d.stop.is_set())]
                self._armed.difference_update(due)
                self._wakes_at = min((d.expires if d.stop is None else min(d.expires, now +
                                      STOP_CHECK) for d in self._armed), default=float("inf"))
                if not due:
                    self._cond.wait(min(self._wakes_at - now, 3600.0))
            for deadline in due:
                log.debug("a call passed its deadline or was stopped; cutting its connection")
                deadline.fire()


_WATCHDOG = _Watchdog()


def _after_fork_in_child() -> None:
    # The parent's watchdog thread does not exist in a child: start afresh on first use.
    global _WATCHDOG
    _WATCHDOG = _Watchdog()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _HTTPConnection(HTTPConnection):
    """A connection whose socket the current call's deadline watches (HTTPS below, too).

    Its connects end by the deadline (a socket is watched only once connected), and its
    replies are read past interim (1xx) ones: see :mod:`._connection`.
    """

    response_class = FinalResponse

    def _new_conn(self) -> Any:
        deadline: Optional[CallDeadline] = getattr(_current, "deadline", None)
        sock = connect_within(self, math.inf if deadline is None else deadline.expires)
        _watch_current(sock)  # watched at once: a proxy's CONNECT reply is read next
        return sock

    def connect(self) -> None:
        super().connect()
        _watch_current(self.sock)  # over TLS, the wrapped socket

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch_current(self.sock)  # a kept-alive connection already has its socket
        super().request(*args, **kwargs)

    def _tunnel(self) -> None:
        self._tunneling = True  # a proxy's CONNECT: the request itself is not sent yet
        try:
            super()._tunnel()
        finally:
            self._tunneling = False

    def send(self, data: Any) -> None:
        if self.sock is None:  # http.client connects inside send: not sent before that
            self.connect()
        if not getattr(self, "_tunneling", False):
            _sending()
        super().send(data)


class _HTTPSConnection(_HTTPConnection, HTTPSConnection):
    """The same, over TLS: ``super()`` in the methods above reaches HTTPSConnection first."""


class _Pooling:
    """A pool whose connections, given back once a reply is read, leave the call's deadline.

    Another call may take the connection at once: cutting it then would cut that call.
    """

    def _put_conn(self, conn: Any) -> None:
        _unwatch_current(getattr(conn, "sock", None))
        super()._put_conn(conn)  # type: ignore[misc]


class _HTTPPool(_Pooling, HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_Pooling, HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with connections whose sockets a :class:`CallDeadline` can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Make the pool manager, with our connection classes."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def build_connection_pool_key_attributes(
        self, request: Any, verify: Any, cert: Any = None
    ) -> Any:
        """The pool key requests builds, with a scoped IPv6 host (``fe80::1%25eth0``) in brackets.

        requests 2.32 hands urllib3 the host unbracketed with the URL's ``%25``, which no
        resolver reads (psf/requests#6735); bracketed, urllib3 reads the zone id right.
        """
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert)
        host: Any = host_params.get("host")
        if isinstance(host, str) and ":" in host and "%" in host and not host.startswith("["):
            host_params["host"] = f"[{host}]"
        return host_params, pool_kwargs

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        """Make (or reuse) a proxy's pool manager, with our connection classes."""
        manager = super().proxy_manager_for(*args, **kwargs)
        manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


def new_session() -> requests.Session:
    """A ``requests.Session`` whose connections a :class:`CallDeadline` can cut (no retries)."""
    session = requests.Session()
    adapter = DeadlineAdapter(pool_connections=1, pool_maxsize=64, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
