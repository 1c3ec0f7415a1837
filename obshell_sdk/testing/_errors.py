"""Error values and the JSON envelope of the fake agent."""

from __future__ import annotations

import secrets
from typing import Any, Optional

from ._golike import rfc3339

#: legacy numeric ``code`` per errCode (only auth-type errors carry one)
_LEGACY_CODES = {
    "Security.Authentication.Header.DecryptFailed": 1,
    "Common.Unauthorized": 10008,
}
_NO_LEGACY = {
    "Security.Authentication.File.Sha256Mismatch",
}

#: The numeric codes of obshell 4.2.3 to 4.3.0, which sent no errCode (``agent/errors/
#: errorcode.go`` before 43a4c2b; PROTOCOL.md §2.2), for the errCodes that had one of their own.
_NUMERIC = {"Common.BadRequest": 1000, "Common.IllegalArgument": 1001, "Common.Unexpected": 1002,
            "Common.NotFound": 1003, "Task.NotFound": 2300, "Task.CreateFailed": 2301}

#: Refusals those agents sent as 401 code 10008 (``Verification failed``), as every auth one.
_UNAUTHORIZED_THEN = ("Request.Header.NotFound", "Request.Body.Decrypt.")

_MISSING = object()


class ApiError(Exception):
    """An obshell error answer: HTTP status, errCode, English message.

    ``data_null`` adds ``"data": null`` to the envelope (handlers that pass a
    nil pointer); ``trace`` False sends ``traceId: ""`` (rejected before the
    trace middleware ran).
    """

    def __init__(self, status: int, err_code: str, message: str, *,
                 data_null: bool = False, trace: bool = True) -> None:
        super().__init__(f"{status} {err_code}: {message}")
        self.status = status
        self.err_code = err_code
        self.message = message
        self.data_null = data_null
        self.trace = trace

    @property
    def legacy_code(self) -> Optional[int]:
        """The ``code`` key (``None`` = omitted)."""
        if self.err_code in _LEGACY_CODES:
            return _LEGACY_CODES[self.err_code]
        if self.err_code.startswith("Security.Authentication.") and self.err_code not in _NO_LEGACY:
            return 10008
        return None

    def numeric(self) -> tuple[int, dict[str, Any]]:
        """The status and ``error`` object obshell 4.2.3 to 4.3.0 sent instead: no errCode.

        Every auth refusal was 401 code 10008 (a missing header, an undecryptable one, a
        wrong password alike); other errors had their code (1001 for another 400, 1003 for
        another 404, 1010 for another 5xx).
        """
        if self.status == 401 or self.err_code.startswith(_UNAUTHORIZED_THEN):
            inner = self.message[len("Unauthorized: "):] if self.message.startswith(
                "Unauthorized: ") else self.message
            return 401, {"code": 10008, "message": f"Verification failed: {inner}"}
        code = _NUMERIC.get(self.err_code) or {400: 1001, 404: 1003}.get(self.status, 1010)
        return self.status, {"code": code, "message": self.message}

    def error_json(self) -> dict[str, Any]:
        """The ``error`` object."""
        out: dict[str, Any] = {}
        code = self.legacy_code
        if code is not None:
            out["code"] = code
        out["errCode"] = self.err_code
        out["message"] = self.message
        return out


class NoRouteError(ApiError):
    """A route the agent does not have: 404 ``Common.NotFound`` (gin's ``NoRoute``).

    Before 4.3.1 (43a4c2b) ``NoRoute`` sent ``ErrBadRequest``: with :meth:`numeric` it is a
    400 with code 1000, ``Bad request: 404 not found`` (PROTOCOL.md §1).
    """

    def __init__(self) -> None:
        super().__init__(404, "Common.NotFound", "Element not found: 404 not found")

    def numeric(self) -> tuple[int, dict[str, Any]]:
        """400, code 1000: as obshell 4.2.3 to 4.3.0 answered an unknown route."""
        return 400, {"code": 1000, "message": "Bad request: 404 not found"}


class PanicError(Exception):
    """The handler would panic: answer with the recovery envelope."""


def unauthorized(err_code: str, inner: str) -> ApiError:
    """Retain-wrapped ``Common.Unauthorized`` (status 401, message ``Unauthorized: inner``)."""
    return ApiError(401, err_code, f"Unauthorized: {inner}")


def new_trace_id() -> str:
    """Random 16-hex-digit trace id."""
    return secrets.token_hex(8)


def envelope(*, now: float, status: int, trace_id: str, duration_ms: int = 0,
             data: Any = _MISSING, error: Optional[ApiError] = None,
             numeric: bool = False) -> dict[str, Any]:
    """Build ``OcsAgentResponse`` with obshell's key order (``numeric``: as before 4.3.1)."""
    out: dict[str, Any] = {
        "successful": error is None and status < 400,
        "timestamp": rfc3339(now),
        "duration": duration_ms,
        "status": status,
        "traceId": trace_id,
    }
    if error is not None:
        if error.data_null:
            out["data"] = None
        out["error"] = error.numeric()[1] if numeric else error.error_json()
    elif data is not _MISSING and data is not None:
        out["data"] = {"contents": data} if isinstance(data, list) else data
    return out


NO_DATA: Any = _MISSING


def panic_envelope(frozen_ts: float, numeric: bool = False) -> dict[str, Any]:
    """The pre-built recovery answer (500, traceId "", duration 0, timestamp frozen).

    ``numeric``: as obshell 4.2.3 to 4.3.0 sent it (code 1002, no errCode).
    """
    error = {"errCode": "Common.Unexpected", "message": "Unexpected error: Internal Server Error"}
    return {
        "successful": False,
        "timestamp": rfc3339(frozen_ts),
        "duration": 0,
        "status": 500,
        "traceId": "",
        "error": {"code": 1002, "message": error["message"]} if numeric else error,
    }
