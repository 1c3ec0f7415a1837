"""Injected faults of the fake agent (thread-safe one-shot counters)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional

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


class FaultPlan:
    """All pending faults; every method is thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset = 0
        self._truncate = 0
        self._rules: list[FailRule] = []
        self.drop_reply_after_create = False

    def reset_next(self, n: int) -> None:
        """Cut the next ``n`` connections after reading the request."""
        with self._lock:
            self._reset += n

    def truncate_next(self, n: int) -> None:
        """Send a too-large Content-Length on the next ``n`` answers, then close."""
        with self._lock:
            self._truncate += n

    def fail_next(self, n: int, status: int, err_code: Optional[str], path_prefix: str,
                  message: Optional[str]) -> None:
        """Queue a :class:`FailRule`."""
        with self._lock:
            self._rules.append(FailRule(n, status, err_code, path_prefix, message))

    def take_reset(self) -> bool:
        """Consume one reset if pending."""
        with self._lock:
            if self._reset > 0:
                self._reset -= 1
                return True
            return False

    def take_truncate(self) -> bool:
        """Consume one truncation if pending."""
        with self._lock:
            if self._truncate > 0:
                self._truncate -= 1
                return True
            return False

    def take_fail(self, path: str) -> Optional[FailRule]:
        """Consume one failure whose prefix matches ``path``."""
        with self._lock:
            for rule in self._rules:
                if rule.count > 0 and path.startswith(rule.path_prefix):
                    rule.count -= 1
                    if rule.count == 0:
                        self._rules.remove(rule)
                    return rule
            return None

    def take_drop_after_create(self) -> bool:
        """Consume the one-shot "drop the reply of the next upgrade POST"."""
        with self._lock:
            if self.drop_reply_after_create:
                self.drop_reply_after_create = False
                return True
            return False

    def clear(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._reset = self._truncate = 0
            self._rules.clear()
            self.drop_reply_after_create = False
