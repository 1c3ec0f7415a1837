"""The record kept for every request the fake agent received."""

from __future__ import annotations

import threading
from typing import Any, Optional

import attrs


@attrs.frozen
class RecordedRequest:
    """One request as the fake agent saw it, and what it answered.

    Attributes:
        method: HTTP method.
        uri: raw request-target (path plus ``?query`` exactly as sent).
        headers: request headers as received (original case).
        auth_kind: ``None``, ``"v1"`` (X-OCS-Auth), ``"v2"`` (X-OCS-Header) or
            ``"v2-agent"`` (X-OCS-Agent-Header) -- only set when the header decrypted.
        header_json: the decrypted auth-header JSON object, or ``None``.
        body_bytes: the raw body bytes (still encrypted for v2).
        body_json: the decrypted (or plain) body parsed as JSON, or ``None``.
        status: HTTP status sent; ``0`` when no answer was sent (reset/dropped).
        err_code: ``errCode`` sent, or ``None``.

    """

    method: str
    uri: str
    headers: dict[str, str]
    auth_kind: Optional[str]
    header_json: Optional[dict[str, Any]]
    body_bytes: bytes
    body_json: Any
    status: int
    err_code: Optional[str]

    @property
    def path(self) -> str:
        """The request-target without its query string."""
        return self.uri.partition("?")[0]


class RequestLog:
    """Thread-safe list of :class:`RecordedRequest`, oldest first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def append(self, rec: RecordedRequest) -> None:
        """Record one request."""
        with self._lock:
            self._items.append(rec)

    def snapshot(self) -> list[RecordedRequest]:
        """A copy of every record so far."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._items.clear()

    def take(self) -> list[RecordedRequest]:
        """Every record so far, forgotten in the same step (none is lost in between)."""
        with self._lock:
            items, self._items = self._items, []
            return items
