"""HTTP/1.1 plumbing of the fake agent (stdlib ``http.server``, keep-alive, one write per reply)."""

from __future__ import annotations

import email.utils
import logging
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

_log = logging.getLogger("obshell_sdk.testing")

_REASONS = {
    200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


@dataclass
class IncomingRequest:
    """A parsed request handed to the application."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    chunked: bool
    header_lookup: Callable[[str], Optional[str]]


@dataclass
class Reply:
    """What to send back.

    ``mode``: ``"normal"``, ``"reset"`` (RST, no answer), ``"close"`` (FIN, no
    answer), ``"truncate"`` (Content-Length too large, then close) or ``"hang"`` (no
    answer for ``hang_seconds``, or until the listener closes, then FIN).
    """

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    mode: str = "normal"
    hang_seconds: float = 0.0
    after_send: list[Callable[[], None]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeHTTPServer

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover - not a TCP socket
            pass

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s - %s", self.address_string(), format % args)

    def _read_body(self) -> tuple[bytes, bool]:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out), True
                out += self.rfile.read(size)
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return (self.rfile.read(length) if length > 0 else b""), False

    def _dispatch(self) -> None:
        try:
            body, chunked = self._read_body()
        except (ValueError, ConnectionError):
            self.close_connection = True
            self._write(Reply(400, b'{"error":"bad request body"}'))
            return
        headers = {k: v for k, v in self.headers.items()}
        req = IncomingRequest(self.command, self.path, headers, body, chunked, self.headers.get)
        reply = self.server.app(req)
        self._write(reply)
        for callback in reply.after_send:
            callback()

    def _write(self, reply: Reply) -> None:
        if reply.mode == "hang":
            # Say nothing; stop()/pause() set ``closing`` so a hang never delays them.
            self.server.closing.wait(reply.hang_seconds)
            self.close_connection = True
            return
        if reply.mode in ("reset", "close"):
            self.close_connection = True
            if reply.mode == "reset":
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                except OSError:  # pragma: no cover
                    pass
            return
        length = len(reply.body) + (64 if reply.mode == "truncate" else 0)
        if reply.mode == "truncate":
            self.close_connection = True
        reason = _REASONS.get(reply.status, "Status")
        lines = [
            f"HTTP/1.1 {reply.status} {reason}",
            f"Content-Type: {reply.content_type}",
            f"Date: {email.utils.formatdate(usegmt=True)}",
            f"Content-Length: {length}",
        ]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        payload = head if self.command == "HEAD" else head + reply.body
        try:
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = _dispatch  # noqa: N815
    do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch  # noqa: N815


class FakeHTTPServer(ThreadingHTTPServer):
    """Threading HTTP server that tracks its connections so they can be cut."""

    daemon_threads = True
    block_on_close = True
    allow_reuse_address = True
    # Go's listener takes the system's backlog; socketserver's default of 5 makes bursts of
    # connections (32 threads at once) get reset after the kernel dropped their handshake.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], app: Callable[[IncomingRequest], Reply],
                 tls: Optional[ssl.SSLContext] = None) -> None:
        self.app = app
        self.tls = tls
        self.closing = threading.Event()  # set when the listener closes: ends every hang
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._handler_threads: list[threading.Thread] = []
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection; with TLS, wrap it (the handshake runs in the handler thread)."""
        conn, addr = super().get_request()
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        """Track the connection and handle it in a (tracked, daemon) thread."""
        thread = threading.Thread(target=self.process_request_thread,
                                  args=(request, client_address),
                                  name=f"fake-obshell-conn-{client_address[1]}", daemon=True)
        with self._conns_lock:
            self._conns.add(request)
            self._handler_threads = [t for t in self._handler_threads if t.is_alive()]
            self._handler_threads.append(thread)
        thread.start()

    def join_handlers(self) -> None:
        """Wait for every connection thread (call after :meth:`close_connections`)."""
        with self._conns_lock:
            threads, self._handler_threads = self._handler_threads, []
        for thread in threads:
            thread.join()

    def shutdown_request(self, request: Any) -> None:
        """Forget and close a finished connection."""
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection (their handler threads then exit)."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log (not print) errors of handler threads."""
        _log.debug("error while handling %s", client_address, exc_info=True)


class Listener:
    """One listening period: a server plus its ``serve_forever`` thread."""

    def __init__(self, host: str, port: int, app: Callable[[IncomingRequest], Reply],
                 tls: Optional[ssl.SSLContext] = None) -> None:
        self.server = FakeHTTPServer((host, port), app, tls)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"fake-obshell-{self.port}", daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop accepting, end hangs, cut all connections, close the socket, join every thread."""
        self.server.closing.set()
        self.server.shutdown()
        self.server.close_connections()
        self.server.server_close()
        self.server.join_handlers()
        self.thread.join()
