"""A tiny threaded HTTP/1.1 server on 127.0.0.1 that answers every request with a canned reply.

Tests use it to put exact bytes on a real socket (HTML pages, truncated JSON, redirects, huge
bodies) and see what the SDK makes of them::

    with RawServer() as server:
        server.set_reply(302, b'{"successful": true, "status": 200}', {"Location": "/y"})
        with ObshellClient(server.host, server.port, auth=None) as client:
            client.call("GET", "/x", signed=False)

It speaks just enough HTTP/1.1: keep-alive, ``Content-Length`` request bodies, replies with
a ``Content-Length`` (added unless the canned headers give one). A reply body may be bytes
or an iterable of byte chunks (a large body without holding it in memory). Leaving the
``with`` block stops the accept thread, closes the listening socket and every connection,
and joins the threads. Every request seen is kept in :attr:`RawServer.requests`.

For faults below HTTP, a reply may instead give :attr:`RawReply.wire`, a script of exact
bytes to write and pauses (floats, in seconds) to make between them: a reply cut after its
status line, a status line trickled one byte at a time. ``RawServer(tls=context)`` serves
the same over TLS; ``RawServer(greeting=b"...")`` writes those bytes first on every
connection, before any request (a MySQL server's handshake). :func:`trickle` makes such
scripts, and :class:`RawAgent` answers the requests an SDK makes before the one under test
(``/info``, ``/secret``, ``/time``, the task lists) like an obshell agent, handing the rest
to per-path handlers.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Union

import attrs

Body = Union[bytes, Iterable[bytes]]
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently",
            302: "Found", 303: "See Other", 307: "Temporary Redirect",
            308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized",
            404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway"}
_MAX_HEAD = 64 * 1024
_POLL = 0.05


@attrs.frozen
class RawRequest:
    """One request as received: method, request-target, headers (names lower-cased), body."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    #: The client's ``(address, port)``: requests with the same peer came on one connection.
    peer: tuple[str, int] = ("", 0)


#: What :attr:`RawReply.wire` holds: bytes to write as they are, floats to pause (seconds).
Wire = Iterable[Union[bytes, float]]


@attrs.frozen
class RawReply:
    """A canned reply. ``close`` closes the connection after it.

    ``wire``, when given, replaces everything else: its bytes are written exactly as they are
    (no status line or header is added) and its floats are pauses, cut short when the server
    stops.
    """

    status: int
    body: Body = b""
    headers: dict[str, str] = attrs.field(factory=dict)
    close: bool = False
    wire: Optional[Wire] = None


Handler = Callable[[RawRequest], RawReply]


class RawServer:
    """A threaded HTTP/1.1 server answering each request through :attr:`handler`.

    ``tls`` (a server ``ssl.SSLContext``) serves HTTPS instead; ``greeting`` is written on
    every connection as soon as it is accepted, as a server of another protocol does.
    """

    def __init__(self, tls: Optional[ssl.SSLContext] = None, greeting: bytes = b"") -> None:
        self.tls = tls
        self.greeting = greeting
        self.handler: Handler = lambda request: RawReply(404, b"")
        self.requests: list[RawRequest] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener: Optional[socket.socket] = None
        self.host = "127.0.0.1"
        self.port = 0

    def set_reply(
        self, status: int, body: Body = b"", headers: Optional[dict[str, str]] = None,
        *, close: bool = False,
    ) -> None:
        """Answer every following request with this reply."""
        reply = RawReply(status, body, dict(headers or {}), close)
        self.handler = lambda request: reply

    # -- lifetime -------------------------------------------------------------------------

    def __enter__(self) -> RawServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((self.host, 0))
        listener.listen(64)
        listener.settimeout(_POLL)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._start(self._accept_loop)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._threads:
            self._threads[0].join(timeout=5)  # the accept loop: no new connection after this
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        for thread in list(self._threads):
            thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        alive = [t for t in self._threads if t.is_alive()]
        assert not alive, f"RawServer threads still running: {alive}"

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name=f"rawserver-{self.port}")
        self._threads.append(thread)
        thread.start()

    # -- serving --------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(_POLL)
            with self._lock:
                if self._stop.is_set():
                    conn.close()
                    return
                self._conns.append(conn)
            self._start(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            peer = conn.getpeername()
            if self.tls is not None:
                conn = self._handshake(conn)
            if self.greeting:
                self._write_wire(conn, [self.greeting])
            while not self._stop.is_set():
                request, buffer = self._read_request(conn, buffer)
                if request is None:
                    return
                request = attrs.evolve(request, peer=(peer[0], peer[1]))
                self.requests.append(request)
                reply = self.handler(request)
                if reply.wire is not None:
                    self._write_wire(conn, reply.wire)
                else:
                    self._write(conn, reply)
                if reply.close or request.headers.get("connection", "").lower() == "close":
                    return
        except OSError:  # the client went away (e.g. it stopped reading a huge reply)
            return
        finally:
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _handshake(self, conn: socket.socket) -> socket.socket:
        """Wrap an accepted connection in TLS (the wrapped socket replaces it in the list)."""
        assert self.tls is not None
        conn.settimeout(5)
        wrapped = self.tls.wrap_socket(conn, server_side=True)
        with self._lock:
            self._conns = [wrapped if c is conn else c for c in self._conns]
        if self._stop.is_set():
            raise OSError("stopping")
        wrapped.settimeout(_POLL)
        return wrapped

    def _write_wire(self, conn: socket.socket, wire: Wire) -> None:
        conn.settimeout(10)
        for item in wire:
            if self._stop.is_set():
                raise OSError("stopping")
            if isinstance(item, bytes):
                conn.sendall(item)
            else:
                self._stop.wait(item)
        conn.settimeout(_POLL)

    def _recv(self, conn: socket.socket) -> Optional[bytes]:
        """Some bytes, or None once the peer closed or the server stops."""
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            except ssl.SSLWantReadError:
                continue
            return data or None
        return None

    def _read_request(
        self, conn: socket.socket, buffer: bytes
    ) -> tuple[Optional[RawRequest], bytes]:
        while b"\r\n\r\n" not in buffer:
            if len(buffer) > _MAX_HEAD:
                return None, b""
            data = self._recv(conn)
            if data is None:
                return None, b""
            buffer += data
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise OSError("RawServer does not read chunked request bodies")
        length = int(headers.get("content-length", "0") or "0")
        while len(buffer) < length:
            data = self._recv(conn)
            if data is None:
                return None, b""
            buffer += data
        body, buffer = buffer[:length], buffer[length:]
        return RawRequest(method, target, headers, body), buffer

    @staticmethod
    def _write(conn: socket.socket, reply: RawReply) -> None:
        headers = dict(reply.headers)
        names = {name.lower() for name in headers}
        if isinstance(reply.body, bytes) and "content-length" not in names:
            headers["Content-Length"] = str(len(reply.body))
        if reply.close and "connection" not in names:
            headers["Connection"] = "close"
        reason = _REASONS.get(reply.status, "Whatever")
        head = f"HTTP/1.1 {reply.status} {reason}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        ) + "\r\n"
        conn.settimeout(10)
        if isinstance(reply.body, bytes):
            conn.sendall(head.encode("latin-1") + reply.body)
        else:
            conn.sendall(head.encode("latin-1"))
            for chunk in reply.body:
                conn.sendall(chunk)
        conn.settimeout(_POLL)


# -- scripts of bytes and pauses ----------------------------------------------------------


def http_reply(status: int, body: bytes, headers: Optional[dict[str, str]] = None) -> bytes:
    """The exact bytes of an HTTP/1.1 reply (``Content-Length`` added unless given)."""
    fields = dict(headers or {})
    if not any(name.lower() == "content-length" for name in fields):
        fields["Content-Length"] = str(len(body))
    head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Whatever')}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in fields.items()) + "\r\n"
    return head.encode("latin-1") + body


def trickle(data: bytes, *, start: int = 0, gap: float = 0.2,
            give_up: float = 8.0) -> Iterator[Union[bytes, float]]:
    """A :attr:`RawReply.wire` script: ``data[:start]`` at once, then one byte per ``gap`` s.

    After ``give_up`` seconds of trickling the script ends (close the connection with
    ``RawReply(..., close=True)``), so that a client that waits for the whole reply is bounded
    too.
    """
    if start:
        yield data[:start]
    ends = time.monotonic() + give_up
    for i in range(start, len(data)):
        if time.monotonic() >= ends:
            return
        yield data[i:i + 1]
        yield gap


# -- an obshell-like agent on a raw server --------------------------------------------------


def envelope(data: Any = None, *, status: int = 200, error: Optional[dict[str, Any]] = None,
             successful: Optional[bool] = None) -> bytes:
    """An obshell envelope's JSON bytes (successful unless an error is given)."""
    obj: dict[str, Any] = {
        "successful": (error is None) if successful is None else successful,
        "status": status, "traceId": "raw", "timestamp": _now_text(), "duration": 1,
    }
    if data is not None:
        obj["data"] = data
    if error is not None:
        obj["error"] = error
    return json.dumps(obj).encode()


def json_reply(data: Any = None, *, status: int = 200,
               error: Optional[dict[str, Any]] = None) -> RawReply:
    """A reply carrying :func:`envelope` with ``Content-Type: application/json``."""
    return RawReply(status, envelope(data, status=status, error=error),
                    {"Content-Type": "application/json"})


def _now_text(offset: float = 0.0) -> str:
    moment = datetime.fromtimestamp(time.time() + offset, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_KEY: list[str] = []


def agent_public_key() -> str:
    """A 1024-bit RSA public key, base64 DER, as ``/api/v1/secret`` gives it (made once)."""
    if not _KEY:
        from Crypto.PublicKey import RSA

        _KEY.append(base64.b64encode(
            RSA.generate(1024).publickey().export_key("DER")).decode())
    return _KEY[0]


def dag_json(dag_id: str = "11", *, name: str = "Upgrade obshell 4.3.1.0-1.el7",
             stage: int = 1, max_stage: int = 9, state: str = "RUNNING",
             operator: str = "RUN", nodes: bool = False) -> dict[str, Any]:
    """A DagDetailDTO as obshell sends it (``nodes``: one node per stage, with a sub-task)."""
    dag: dict[str, Any] = {
        "id": dag_id, "dag_id": int(dag_id[1:] or 0), "name": name, "stage": stage,
        "max_stage": max_stage, "maintenance_type": 2, "maintenance_key": "", "state": state,
        "operator": operator, "start_time": _now_text(), "end_time": "0001-01-01T00:00:00Z",
        "additional_data": {},
    }
    if nodes:
        dag["nodes"] = [
            {"id": f"{dag_id}{i:02d}", "node_id": 100 + i, "name": f"stage {i}",
             "state": "SUCCEED" if i < stage else (state if i == stage else "PENDING"),
             "operator": operator, "additional_data": None, "sub_tasks": []}
            for i in range(1, max_stage + 1)
        ]
    return dag


class RawAgent:
    """A :class:`RawServer` handler that answers like obshell around the call under test.

    ``GET /api/v1/info`` (auth v2), ``/api/v1/secret`` (:func:`agent_public_key`),
    ``/api/v1/time`` (our clock), ``/api/v1/task/dag/unfinish`` (no task) and
    ``/api/v1/task/dag/maintain/ob`` (none) are answered; signed headers are not checked.
    :meth:`route` sets the handler of one method and path (query excluded); anything else is
    a 404 envelope.
    """

    def __init__(self, server: RawServer, *, version: str = "4.3.0.0") -> None:
        self.version = version
        self.routes: dict[tuple[str, str], Handler] = {}
        server.handler = self.handle

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Answer ``method path`` (query excluded) through ``handler``."""
        self.routes[(method, path)] = handler

    def handle(self, request: RawRequest) -> RawReply:
        """Answer one request."""
        path = request.target.partition("?")[0]
        found = self.routes.get((request.method, path))
        if found is not None:
            return found(request)
        if request.method == "GET":
            if path == "/api/v1/info":
                return json_reply({"identity": "CLUSTER AGENT", "version": self.version,
                                   "ip": "127.0.0.1", "port": 2886, "security": False,
                                   "supportedAuth": ["v2"]})
            if path == "/api/v1/secret":
                return json_reply({"ip": "127.0.0.1", "port": 2886,
                                   "public_key": agent_public_key()})
            if path == "/api/v1/time":
                return json_reply(_now_text())
            if path == "/api/v1/task/dag/unfinish":
                return json_reply({"contents": []})
        return json_reply(status=404, error={"errCode": "Task.NotFound", "code": 2300,
                                             "message": f"nothing at {path}"})
