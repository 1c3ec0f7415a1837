"""The transport: one agent's connection pool, sending, bounded reads, replies to envelopes.

:class:`Transport` owns the ``requests.Session``, sends every request through ``Session.request``
under a wall-clock deadline, reads replies up to a cap, and turns them into an :class:`Envelope`
or the right :class:`~obshell_sdk.ApiError`. It drives the auth flow without knowing what the
auth keeps. :func:`read_reply` reads a reply's data for the calls above it, so that what does
not fit names its request and agent, as the transport's own errors do. Only this module and
:mod:`._transport_errors`, which maps what an exchange raised to the SDK's errors, know
``requests``' exception types; none of them, nor any other exception of the exchange, leaks
past them except as the ``__cause__`` of an SDK error.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Optional, TypeVar, Union

import attrs
import requests

from ._auth import PasswordAuth
from ._deadline import CallDeadline, new_session
from ._decode import load_json, nested_deeper
from ._errcodes import error_class_for, with_code_hint
from ._exceptions import (
    ApiError,
    ConnectError,
    ConnectionLostError,
    DecodeError,
    InvalidArgumentError,
    ObshellError,
)
from ._models import Envelope
from ._request import Request
from ._transport_errors import REPLY_EXCERPT, exchange_error, resending, through_proxy

__all__ = ["MAX_REPLY_BYTES", "MAX_REPLY_DEPTH", "TRACE_HEADER", "Cert", "Timeout", "Transport",
           "read_reply"]

log = logging.getLogger("obshell_sdk")

TRACE_HEADER = "X-OBSHELL-Trace-ID"
#: Seconds, or a ``(connect, read)`` pair of seconds.
Timeout = Union[float, tuple[float, float]]
#: A client certificate: one PEM file, or a ``(certificate, key)`` pair of files.
Cert = Union[str, tuple[str, str]]
#: Replies larger than this (counted as read, after any decompression) are refused without
#: reading them whole. obshell's largest replies, DAG details with every sub-task's logs,
#: are a few MiB; the JSON of 16 MiB stays well under 300 MB in memory.
MAX_REPLY_BYTES = 16 * 1024 * 1024
#: JSON nested deeper than this is refused (obshell's replies nest fewer than 10 levels).
MAX_REPLY_DEPTH = 64
T = TypeVar("T")


class _ReplyTooLargeError(Exception):
    """A reply past the cap (mapped to a DecodeError where the status is known)."""


class Transport:
    """Requests to one agent (``base_url``) through one connection pool.

    ``session`` None makes a pool of our own, which reads proxy and CA settings from the
    environment once (unless ``trust_env`` is false) and is closed with the transport; a
    given session is used as it is and never closed. A call and the requests its auth flow
    adds run under one wall-clock deadline, the larger of its two timeouts: on our own pool
    a trickling agent cannot stretch it (a given session's adapter has per-read timeouts).
    """

    def __init__(
        self,
        base_url: str,
        agent: str,
        *,
        auth: Optional[PasswordAuth],
        session: Optional[requests.Session],
        verify: Union[bool, str],
        cert: Optional[Cert],
        accept_language: Optional[str],
        trust_env: bool = True,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        if session is not None and not isinstance(session, requests.Session):
            raise InvalidArgumentError("session", "must be a requests.Session")
        if not isinstance(trust_env, bool):
            raise InvalidArgumentError("trust_env", "must be True or False")
        if isinstance(max_reply_bytes, bool) or not isinstance(max_reply_bytes, int) or not (
                1024 <= max_reply_bytes <= 2**31):
            raise InvalidArgumentError("max_reply_bytes", "must be a whole number of bytes "
                                       f"from 1024 to 2**31, got {max_reply_bytes!r}")
        self.base_url, self.agent, self.auth = base_url, agent, auth
        self.accept_language, self.max_reply_bytes = accept_language, max_reply_bytes
        self._owns_session, self._pid = session is None, os.getpid()
        self._session = session if session is not None else new_session()
        self._verify, self._cert = verify, cert
        self._proxies: Optional[dict[str, str]] = None
        if self._owns_session:
            if trust_env:
                env = self._session.merge_environment_settings(base_url, {}, None, verify, cert)
                self._proxies = dict(env["proxies"])
                self._verify = verify if env["verify"] is None else env["verify"]
            self._session.trust_env = False  # read once, above; no ~/.netrc auth per call
        else:
            self._refuse_resending()
        self.closed = False

    def close(self) -> None:
        """Close the pool if it is ours; afterwards every request is refused."""
        if not self.closed:
            self.closed = True
            if self._owns_session:
                self._session.close()

    def send(self, request: Request, timeout: tuple[float, float]) -> Envelope:
        """Send ``request`` (signed through the auth flow when it says so); its envelope."""
        if self.closed:
            raise InvalidArgumentError("client", "this ObshellClient is closed; make a new one")
        if os.getpid() != self._pid:
            self._after_fork()
        request = attrs.evolve(request, method=request.method.upper(),
                               target=self._wire_target(request.target))
        if request.method != "GET" and not self._owns_session:
            self._refuse_resending()  # again: an adapter may have been mounted since
        expires = time.monotonic() + max(timeout)  # the whole call, auth requests included
        if not request.signed:
            return self._exchange(request, timeout, expires)
        if self.auth is None:
            raise InvalidArgumentError("auth", f"{request.method} {request.path} needs "
                                       "credentials: ObshellClient(..., auth=PasswordAuth(...)),"
                                       " or OBSHELL_PASSWORD for ObshellClient.from_env()")
        flow = self.auth._auth_flow(request, self.agent, expires=expires)
        try:
            outgoing = next(flow)
            while True:
                try:
                    reply = self._exchange(outgoing, timeout, expires)
                except ObshellError as exc:
                    outgoing = flow.throw(exc)  # the flow re-raises what it cannot mend
                    continue
                try:  # the flow reads the replies to its own requests (/info, /secret)
                    outgoing = read_reply(flow.send, reply, outgoing.method, outgoing.path,
                                          self.agent)
                except StopIteration:
                    return reply
        finally:
            flow.close()

    def _refuse_resending(self) -> None:
        """Refuse a given session whose retries may send a task-creating request twice."""
        why = resending(self._session, self.base_url)
        if why:
            raise InvalidArgumentError(
                "session", f"its adapter for {self.base_url} may send a request twice "
                f"({why}): the agent may have acted on the first, and obshell would start a "
                "second task. Mount an adapter that retries only failed connections, "
                "HTTPAdapter(max_retries=Retry(connect=3, read=False, status=0, other=0)), or "
                "none (max_retries=0)")

    def _after_fork(self) -> None:
        """In a forked child, never share the parent's pooled connections."""
        if not self._owns_session:
            raise InvalidArgumentError("session", "this client's session was made in another "
                                       "process, and its pooled connections would be shared with "
                                       "it: make the client (and the session) in this process")
        log.info("new process (fork): %s gets a connection pool of its own", self.agent)
        self._session = new_session()  # the parent's pool is left alone, not closed
        self._session.trust_env = False
        self._pid = os.getpid()

    def _wire_target(self, target: str) -> str:
        """The request-target exactly as ``requests`` will send it: that is what gets signed."""
        prepared = requests.PreparedRequest()
        prepared.prepare_url(self.base_url + target, None)
        return prepared.path_url

    def _exchange(self, request: Request, timeout: tuple[float, float],
                  expires: float) -> Envelope:
        """One exchange of a call that ends at ``expires``: send, read capped, decode."""
        method, path, seconds = request.method, request.path, max(timeout)
        left = expires - time.monotonic()
        if left <= 0:  # the call's earlier exchanges (the auth flow's) used it all
            raise ConnectError(f"the call's {round(seconds, 2):g} s ran out before this request "
                               "was sent (the agent answered the call's earlier requests too "
                               "slowly); it was not sent: give it a longer timeout",
                               method=method, path=path, agent=self.agent)
        headers = {**request.headers, TRACE_HEADER: os.urandom(8).hex(),
                   "Accept-Encoding": "identity"}  # no compressed replies to inflate
        if self.accept_language:
            headers["Accept-Language"] = self.accept_language
        started = time.monotonic()
        with CallDeadline(left) as deadline:
            try:
                resp = self._session.request(
                    method, self.base_url + request.target, data=request.body, headers=headers,
                    timeout=(min(timeout[0], left), min(timeout[1], left)), verify=self._verify,
                    cert=self._cert, proxies=self._proxies, allow_redirects=False, stream=True)
                try:  # an interim reply is left unread: closed, its connection never reused
                    content = (_read_capped(resp, self.max_reply_bytes)
                               if resp.status_code >= 200 else None)
                finally:
                    resp.close()
            except _ReplyTooLargeError as exc:
                raise DecodeError(str(exc), status=resp.status_code, method=method,
                                  path=path, agent=self.agent) from None
            except Exception as exc:  # out of time: the watchdog's or the (cut) socket's timer
                out_of_time = deadline.fired or time.monotonic() >= expires
                raise exchange_error(exc, out_of_time, seconds, method, path, self.agent,
                                     maybe_sent=deadline.sent or not self._owns_session) from exc
        if deadline.fired:  # the cut reply may even look complete (a close-delimited one)
            raise exchange_error(TimeoutError(), True, seconds, method, path, self.agent,
                                 maybe_sent=True)
        lost = _lost_reply(resp.status_code, content)
        if lost or content is None:  # whether the agent acted is unknown
            raise ConnectionLostError(lost, method=method, path=path, agent=self.agent)
        log.debug("%s %s on %s -> %d in %.0f ms (trace %s)", method, request.target, self.agent,
                  resp.status_code, (time.monotonic() - started) * 1000, headers[TRACE_HEADER])
        return _envelope(resp, content, method, path, self.agent, self._proxy_for)

    def _proxy_for(self, url: str) -> str:
        """What to say of the proxy a request to ``url`` went through (:func:`through_proxy`).

        Our own pool's, read from the environment once; a given session's as requests picks
        it (the session's ``proxies``, and the environment's if it trusts it).
        """
        proxies = (self._proxies or {}) if self._owns_session else (
            self._session.merge_environment_settings(url, {}, None, None, None)["proxies"])
        return through_proxy(requests.utils.select_proxy(url, proxies))


def read_reply(read: Callable[[Any], T], reply: Any, method: str, path: str, agent: str) -> T:
    """``read(reply)``, the reply (or its data) to ``method path`` from ``agent``.

    A :class:`DecodeError` raised for what does not fit names that request and agent, as
    the transport's own do: in a run over many agents, which one sent it. Nothing is added
    to a reply that fits.
    """
    try:
        return read(reply)
    except DecodeError as exc:
        exc._name_exchange(method, path, agent)
        raise


def _lost_reply(status: int, content: Optional[bytes]) -> str:
    """Why a reply read is not the agent's answer to the request ("" when it is one)."""
    if status < 200:  # 101, never asked for; any 1xx through a given session's adapter
        return (f"HTTP {status} interim reply where the final one was due (its connection "
                "was closed, never to be reused)")
    if content is None:
        return "reply shorter than its Content-Length (connection cut)"
    if not content and 200 <= status < 300 and status != 204:
        # obshell answers with an envelope (or a 204, bodiless by definition): a 2xx with
        # no body was cut after the status line or inside the headers (a close-delimited
        # reply looks complete then).
        return f"HTTP {status} reply with no body (connection cut?)"
    return ""


def _read_capped(resp: requests.Response, cap: int) -> Optional[bytes]:
    """Read a streamed reply, at most ``cap`` bytes as read (after any decompression).

    Returns None when the body is shorter than its ``Content-Length`` (urllib3 1.x does not
    notice a cut connection by itself). The cap never trusts the ``Content-Length``.
    """
    chunks: list[bytes] = []
    total = 0
    for chunk in resp.iter_content(64 * 1024):
        total += len(chunk)
        if total > cap:
            raise _ReplyTooLargeError(
                f"reply of more than {cap} bytes is larger than any obshell reply "
                "(raise ObshellClient(max_reply_bytes=...) if this one is genuine)")
        chunks.append(chunk)
    content = b"".join(chunks)
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and total < int(declared) and resp.request.method != "HEAD":
        return None
    return content


def _envelope(resp: requests.Response, body: bytes, method: str, path: str, agent: str,
              proxy_for: Callable[[str], str]) -> Envelope:
    """Decode a reply into an :class:`Envelope`, or raise the right :class:`ApiError`.

    Only a 2xx reply is a success, whatever its body says (a redirect is never followed).
    A reply that is not obshell's names the proxy it came through, if any (``proxy_for``).
    """
    status = resp.status_code
    if status == 204:  # No Content (SendNoContentResponse): success, no data
        return Envelope(successful=True, status=204)
    try:
        obj = load_json(body)
        if nested_deeper(obj, MAX_REPLY_DEPTH):
            raise RecursionError
    except RecursionError:
        raise DecodeError(f"HTTP {status} reply nests JSON more than "
                          f"{MAX_REPLY_DEPTH} levels deep", status=status, method=method,
                          path=path, agent=agent) from None
    except ValueError as exc:
        kind = resp.headers.get("Content-Type", "no content type")
        hint = proxy_for(resp.url) or "is this an obshell agent, and is https= right?"
        raise DecodeError(f"HTTP {status} reply is not JSON ({kind}): {exc}; {hint}",
                          status=status, excerpt=body[:REPLY_EXCERPT].decode("utf-8", "replace"),
                          method=method, path=path, agent=agent) from None
    try:
        envelope = Envelope.from_json(obj)
    except DecodeError as exc:
        proxy = proxy_for(resp.url)
        error = DecodeError(f"HTTP {status} reply is not an obshell envelope: {exc}"
                            + (f"; {proxy}" if proxy else ""), status=status, method=method,
                            path=path, agent=agent)
        error.where = exc.where  # the JSON path; the message names it already
        raise error from None
    if envelope.successful and 200 <= status < 300:
        return envelope
    raise _api_error(envelope, status, method, path, agent)


def _api_error(envelope: Envelope, status: int, method: str, path: str, agent: str) -> ApiError:
    """The exception for an error reply (the HTTP status wins over the envelope's)."""
    err = envelope.error
    err_code, code = (err.err_code, err.code) if err else ("", 0)
    message = ("a redirect, which is never followed nor taken for the agent's answer"
               if 300 <= status < 400 else
               (err.message if err else "") or "the agent reported a failure without details")
    cls = error_class_for(status, err_code, code, message)
    return with_code_hint(cls(status=status, err_code=err_code, code=code, message=message,
                              trace_id=envelope.trace_id, method=method, path=path, error=err,
                              agent=agent))

