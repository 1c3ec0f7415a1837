"""From ``requests`` to the SDK: transport errors mapped, replies turned into envelopes.

This is the only module that knows ``requests``' exception types; nothing of them leaks
past it except as the ``__cause__`` of an SDK error.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import requests
import urllib3.exceptions

from ._exceptions import (
    ApiError,
    ConnectError,
    ConnectionLostError,
    DecodeError,
    ReadTimeoutError,
    TransportError,
    error_class_for,
)
from ._models import Envelope

__all__ = [
    "MAX_REPLY_BYTES",
    "ReplyTooLargeError",
    "envelope_from_response",
    "read_capped",
    "transport_error",
]

#: Replies larger than this are refused without reading them whole: no obshell answer comes
#: near it.
MAX_REPLY_BYTES = 64 * 1024 * 1024
_EXCERPT = 120

_CONNECT_REASONS: tuple[type[BaseException], ...] = tuple(
    cls for cls in (
        urllib3.exceptions.NewConnectionError,
        getattr(urllib3.exceptions, "NameResolutionError", None),  # urllib3 2.x only
        urllib3.exceptions.ConnectTimeoutError,
    ) if cls is not None
)


class ReplyTooLargeError(Exception):
    """A reply grew past :data:`MAX_REPLY_BYTES`; it was not read further."""


def read_capped(resp: requests.Response) -> Optional[bytes]:
    """Read a streamed reply, at most :data:`MAX_REPLY_BYTES`.

    Returns None when the body is shorter than its ``Content-Length`` (urllib3 1.x does not
    notice a cut connection by itself); raises :class:`ReplyTooLargeError` past the limit.
    """
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit():
        size = int(declared)
        if size > MAX_REPLY_BYTES:
            raise ReplyTooLargeError(f"reply of {size} bytes is larger than any obshell reply")
        content = resp.content
        if len(content) < size and resp.request.method != "HEAD":
            return None
        return content
    chunks: list[bytes] = []
    total = 0
    for chunk in resp.iter_content(64 * 1024):
        total += len(chunk)
        if total > MAX_REPLY_BYTES:
            raise ReplyTooLargeError(
                f"reply of more than {MAX_REPLY_BYTES} bytes is larger than any obshell reply"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def transport_error(
    exc: requests.RequestException, *, method: str, path: str, agent: str
) -> TransportError:
    """Map a ``requests`` exception to the SDK's transport errors."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ConnectError(
            "timed out connecting; is the agent up and the port right?",
            method=method, path=path, agent=agent,
        )
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return ReadTimeoutError(
            "no reply within the read timeout; the request may still have been carried out",
            method=method, path=path, agent=agent,
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return ConnectError(
            f"TLS failed ({_reason(exc)}); check https=, verify= (CA bundle) and cert=",
            method=method, path=path, agent=agent,
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = _root(exc)
        if isinstance(reason, _CONNECT_REASONS) or isinstance(
            reason, (ConnectionRefusedError,)
        ):
            return ConnectError(
                f"cannot connect ({_reason(exc)}); is the agent running and reachable?",
                method=method, path=path, agent=agent,
            )
        return ConnectionLostError(
            f"connection lost before the reply was complete ({_reason(exc)})",
            method=method, path=path, agent=agent,
        )
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError,
                        requests.exceptions.ContentDecodingError)):
        return ConnectionLostError(
            f"reply cut short ({_reason(exc)})", method=method, path=path, agent=agent
        )
    return TransportError(_reason(exc), method=method, path=path, agent=agent)


def _root(exc: BaseException) -> Any:
    """The underlying reason of a requests ConnectionError (through urllib3's MaxRetryError)."""
    arg = exc.args[0] if exc.args else None
    if isinstance(arg, urllib3.exceptions.MaxRetryError):
        return arg.reason
    return arg


def _reason(exc: BaseException) -> str:
    root = _root(exc)
    text = str(root if root is not None else exc)
    # urllib3 prefixes reasons with a connection object's repr; keep the useful tail.
    if ">: " in text:
        text = text.split(">: ", 1)[1]
    return text.strip("()'\" ") or type(exc).__name__


def envelope_from_response(
    resp: requests.Response, content: bytes, *, method: str, path: str
) -> Envelope:
    """Decode a reply into an :class:`Envelope`, raising the right :class:`ApiError` on errors."""
    status = resp.status_code
    if status == 204 or (not content and 200 <= status < 300):
        return Envelope(successful=True, status=status)
    if len(content) > MAX_REPLY_BYTES:
        raise DecodeError(
            f"{method} {path}: reply of {len(content)} bytes is larger than any obshell reply",
            status=status,
        )
    try:
        obj = json.loads(content)
    except ValueError:
        kind = resp.headers.get("Content-Type", "no content type")
        raise DecodeError(
            f"{method} {path}: HTTP {status} reply is not JSON ({kind}); "
            "is this an obshell agent, and is https= right?",
            excerpt=content[:_EXCERPT].decode("utf-8", "replace"),
            status=status,
        ) from None
    try:
        envelope = Envelope.from_json(obj)
    except DecodeError as exc:
        raise DecodeError(
            f"{method} {path}: HTTP {status} reply is not an obshell envelope: {exc}",
            status=status,
        ) from None
    if envelope.successful and status < 400:
        return envelope
    raise api_error(envelope, status=status, method=method, path=path)


def api_error(envelope: Envelope, *, status: int, method: str, path: str) -> ApiError:
    """Build the exception for an error envelope (HTTP status wins over the envelope's)."""
    err = envelope.error
    err_code = err.err_code if err else ""
    code = err.code if err else 0
    message = (err.message if err else "") or "the agent reported a failure without details"
    cls = error_class_for(status, err_code, code)
    return cls(
        status=status,
        err_code=err_code,
        code=code,
        message=message,
        trace_id=envelope.trace_id,
        method=method,
        path=path,
        error=err,
    )
