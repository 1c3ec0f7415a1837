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
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable
from typing import Callable, Optional, Union

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


@attrs.frozen
class RawReply:
    """A canned reply. ``close`` closes the connection after it."""

    status: int
    body: Body = b""
    headers: dict[str, str] = attrs.field(factory=dict)
    close: bool = False


Handler = Callable[[RawRequest], RawReply]


class RawServer:
    """A threaded HTTP/1.1 server answering each request through :attr:`handler`."""

    def __init__(self) -> None:
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
            while not self._stop.is_set():
                request, buffer = self._read_request(conn, buffer)
                if request is None:
                    return
                self.requests.append(request)
                reply = self.handler(request)
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

    def _recv(self, conn: socket.socket) -> Optional[bytes]:
        """Some bytes, or None once the peer closed or the server stops."""
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except socket.timeout:
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
