"""Injected faults of the fake agent (thread-safe one-shot counters)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

_PROXY_PAGES = {
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}

_DEFAULT_MESSAGES = {
    "Task.NotFound": "Task not found: record not found",
    "Common.Unexpected": "Unexpected error: injected fault",
    "Agent.NoMaster": "Master agent is not found",
}


@dataclass
class FailRule:
    """``fail_next``: answer ``count`` matching requests with ``status``."""

    count: int
    status: int
    err_code: Optional[str]
    path_prefix: str
    message: Optional[str]
    method: str = ""  # any, when empty

    def body(self) -> tuple[str, str]:
        """(content type, text) of a proxy error page (used when ``err_code`` is None)."""
        title = _PROXY_PAGES.get(self.status, "Error")
        html = (f"<html>\r\n<head><title>{self.status} {title}</title></head>\r\n<body>\r\n"
                f"<center><h1>{self.status} {title}</h1></center>\r\n"
                "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
        return "text/html", html

    def error_message(self) -> str:
        """Message used in the obshell envelope."""
        if self.message is not None:
            return self.message
        assert self.err_code is not None
        return _DEFAULT_MESSAGES.get(self.err_code, f"injected {self.err_code}")


@dataclass
class CountedRule:
    """A one-shot fault for the next ``count`` requests whose path starts with ``path_prefix``.

    ``seconds`` is how long a hang lasts, ``edit`` what an edited reply's data becomes
    (each unused by the other kinds).
    """

    count: int
    path_prefix: str
    seconds: float = 0.0
    method: str = ""  # "" matches every method (used by the lost and edited replies)
    edit: Optional[Callable[[Any], Any]] = None


class FaultPlan:
    """All pending faults; every method is thread-safe.

    Faults that hit "the next requests" (reset, hang, fail, truncate, drop, edit) are queued
    rules with a path prefix (``""`` matches every path); the one-shot
    ``drop_reply_after_create`` hits the next successful request to a route that creates a
    task (see ``_routes.py``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counted: dict[str, list[CountedRule]] = {"reset": [], "truncate": [], "hang": [],
                                                       "drop": [], "edit": []}
        self._rules: list[FailRule] = []
        self._drop_after_create = False

    def reset_next(self, n: int, path_prefix: str = "") -> None:
        """Cut the next ``n`` matching connections after reading the request."""
        self._queue("reset", CountedRule(n, path_prefix))

    def truncate_next(self, n: int, path_prefix: str = "") -> None:
        """Send a too-large Content-Length on the next ``n`` matching answers, then close."""
        self._queue("truncate", CountedRule(n, path_prefix))

    def hang_next(self, n: int, seconds: float, path_prefix: str) -> None:
        """Leave the next ``n`` matching requests unanswered for ``seconds``, then close."""
        self._queue("hang", CountedRule(n, path_prefix, seconds))

    def drop_reply_after_next(self, n: int, path_prefix: str, method: str) -> None:
        """Act on the next ``n`` matching requests that succeed, then close unanswered."""
        self._queue("drop", CountedRule(n, path_prefix, method=method.upper()))

    def edit_data_next(self, n: int, edit: Callable[[Any], Any], path_prefix: str,
                       method: str) -> None:
        """Send ``edit(data)`` as the data of the next ``n`` matching requests that succeed."""
        self._queue("edit", CountedRule(n, path_prefix, method=method.upper(), edit=edit))

    def fail_next(self, n: int, status: int, err_code: Optional[str], path_prefix: str,
                  message: Optional[str], method: str = "") -> None:
        """Queue a :class:`FailRule`."""
        if n > 0:
            with self._lock:
                self._rules.append(FailRule(n, status, err_code, path_prefix, message,
                                            method.upper()))

    def _queue(self, kind: str, rule: CountedRule) -> None:
        if rule.count > 0:
            with self._lock:
                self._counted[kind].append(rule)

    def _take(self, kind: str, path: str, method: str = "") -> Optional[CountedRule]:
        with self._lock:
            rules = self._counted[kind]
            for rule in rules:
                if path.startswith(rule.path_prefix) and rule.method in ("", method):
                    rule.count -= 1
                    if rule.count <= 0:
                        rules.remove(rule)
                    return rule
            return None

    def take_reset(self, path: str) -> bool:
        """Consume one reset matching ``path`` if pending."""
        return self._take("reset", path) is not None

    def take_truncate(self, path: str) -> bool:
        """Consume one truncation matching ``path`` if pending."""
        return self._take("truncate", path) is not None

    def take_hang(self, path: str) -> Optional[float]:
        """Consume one hang matching ``path``; its length in seconds, or ``None``."""
        rule = self._take("hang", path)
        return None if rule is None else rule.seconds

    def take_drop(self, method: str, path: str) -> bool:
        """Consume one lost reply matching ``method`` and ``path`` if pending."""
        return self._take("drop", path, method) is not None

    def take_edit(self, method: str, path: str) -> Optional[Callable[[Any], Any]]:
        """Consume one edited reply matching ``method`` and ``path``; its edit, or ``None``."""
        rule = self._take("edit", path, method)
        return None if rule is None else rule.edit

    def take_fail(self, path: str, method: str = "") -> Optional[FailRule]:
        """Consume one failure whose prefix matches ``path`` (and its method, ``method``)."""
        with self._lock:
            for rule in self._rules:
                if rule.count > 0 and path.startswith(rule.path_prefix) and \
                        rule.method in ("", method):
                    rule.count -= 1
                    if rule.count == 0:
                        self._rules.remove(rule)
                    return rule
            return None

    @property
    def drop_reply_after_create(self) -> bool:
        """Whether the next task-creating request loses its reply."""
        with self._lock:
            return self._drop_after_create

    @drop_reply_after_create.setter
    def drop_reply_after_create(self, value: bool) -> None:
        with self._lock:
            self._drop_after_create = bool(value)

    def take_drop_after_create(self) -> bool:
        """Consume the one-shot "drop the reply of the next task-creating request"."""
        with self._lock:
            pending, self._drop_after_create = self._drop_after_create, False
            return pending

    def clear(self) -> None:
        """Forget every pending fault (hangs already in progress are not cut short)."""
        with self._lock:
            for rules in self._counted.values():
                rules.clear()
            self._rules.clear()
            self._drop_after_create = False
