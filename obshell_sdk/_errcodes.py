"""obshell's error codes, each mapped to the exception class that says what it means.

The one place that knows them: errCodes of obshell 4.3.1 and later, the numeric codes of
older agents (PROTOCOL.md §2.2), then the HTTP status. :class:`OperatorRefusedError` is
defined here, with obshell's refusals of a DAG operator: what it says (the operator, and
whether a step or the task's state refused it) is read from its code. :func:`own_finding`
builds one of these classes for what the SDK itself found (status 0: no agent sent it).
Refusals no class here names may still say what to do next: :data:`CODE_HINTS`, by errCode.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional, TypeVar

from ._dag import Operator
from ._exceptions import (
    ApiError,
    AuthDialectError,
    AuthError,
    AuthExpiredError,
    BadRequestError,
    DecryptFailedError,
    NotFoundError,
    PackageChangedError,
    PackageDamagedError,
    PackageMissingError,
    PasswordKindError,
    ServerError,
    TaskNotFoundError,
    UnderMaintenanceError,
    UriMismatchError,
    WrongPasswordError,
)

if TYPE_CHECKING:  # pragma: no cover
    from ._models import ErrorInfo

__all__ = ["CODE_HINTS", "OperatorRefusedError", "error_class_for", "own_finding",
           "unknown_route", "with_code_hint"]

_E = TypeVar("_E", bound=ApiError)


def own_finding(cls: type[_E], said: str, text: str, *, method: str, path: str, agent: str,
                err_code: str = "", hint: Optional[str] = None) -> _E:
    """A ``cls`` for what the SDK found itself (status 0, no trace id), not an agent's reply.

    ``said`` is its :attr:`~ApiError.message`, ``text`` its whole message (an agent's
    ``HTTP 0`` would read wrongly); ``hint``, when given, replaces the class's.
    """
    error = cls(status=0, err_code=err_code, code=0, message=said, trace_id="", method=method,
                path=path, agent=agent)
    if hint is not None:
        error.hint = hint
    Exception.__init__(error, text)  # sets args, the whole message
    return error

#: obshell's refusals of a DAG operator (PROTOCOL §2, ``service/task/dag.go``): the operator,
#: and whether a step of the DAG does not allow it (else its state does not: not FAILED, or
#: ended for CANCEL). Nothing was changed.
_REFUSALS: dict[str, tuple[Operator, bool]] = {
    "Task.Dag.Operator.RetryNotAllowed": (Operator.RETRY, True),
    "Task.Dag.Operator.RollbackNotAllowed": (Operator.ROLLBACK, True),
    "Task.Dag.Operator.PassNotAllowed": (Operator.PASS, True),
    "Task.Dag.Operator.CancelNotAllowed": (Operator.CANCEL, True),
    "Task.Dag.Operator.RetryNotFailedDag": (Operator.RETRY, False),
    "Task.Dag.Operator.RollbackNotFailedDag": (Operator.ROLLBACK, False),
    "Task.Dag.Operator.PassNotFailedDag": (Operator.PASS, False),
    "Task.Dag.Operator.CancelFinishedDag": (Operator.CANCEL, False),
}


class OperatorRefusedError(BadRequestError):
    """obshell refused a task's operator (retry, rollback, pass or cancel): nothing was changed.

    :attr:`operator` is the operator refused; :attr:`by_step` says why: True, a step of the
    task does not allow it (``Task.Dag.Operator.RollbackNotAllowed`` and its kin); False, the
    task's state does not take it: it is not FAILED, or (CANCEL) it has ended, so it changed
    since it was read (``...NotFailedDag``, ``CancelFinishedDag``). :attr:`hint` says what to
    do next. A :class:`BadRequestError`, as obshell's 400 made it before.
    """

    def __init__(self, *, status: int, err_code: str, code: int, message: str, trace_id: str,
                 method: str, path: str, error: Optional[ErrorInfo] = None,
                 agent: str = "") -> None:
        refused = _REFUSALS.get(err_code)
        #: The operator obshell refused (None for a code this SDK does not know).
        self.operator: Optional[Operator] = refused[0] if refused else None
        #: True: a step of the task does not allow it; False: the task's state does not.
        self.by_step: bool = bool(refused and refused[1])
        dag_id = re.fullmatch(r"/api/v1/task/dag/(\w+)", path)
        task = f"client.task({dag_id.group(1)!r})" if dag_id else "client.task(ID)"
        self.hint: str = _refusal_hint(self.operator, self.by_step, task)
        super().__init__(status=status, err_code=err_code, code=code, message=message,
                         trace_id=trace_id, method=method, path=path, error=error, agent=agent)


def _refusal_hint(operator: Optional[Operator], by_step: bool, task: str) -> str:
    """What to do after obshell refused ``operator`` on ``task`` (the call that reads it)."""
    if by_step and operator is Operator.CANCEL:  # obshell cancels an unfinished task only
        return ("A step of the task does not allow CANCEL while it runs; nothing was changed: "
                f"wait for it to end ({task}.wait()); if it fails, retry, roll back or skip it, "
                "where its steps allow")
    if by_step and operator is not None:
        name = "PASS (skip)" if operator is Operator.PASS else operator.value
        return (f"A step of the task does not allow {name}; nothing was changed: read the task "
                f"({task}.refresh()) and apply an operator its steps allow instead")
    state = " (it has ended)" if operator is Operator.CANCEL else " (it is not FAILED)"
    return (f"The task changed since it was read{state if operator else ''}; nothing was "
            f"changed: read it again ({task}.refresh()) to see where it stands")


_BY_ERR_CODE: dict[str, type[ApiError]] = {
    "Security.Authentication.IncorrectOceanbasePassword": WrongPasswordError,
    "Security.Authentication.IncorrectAgentPassword": WrongPasswordError,
    "Security.Authentication.WithAgentPassword": PasswordKindError,
    "Security.Authentication.WithOceanBasePassword": PasswordKindError,
    "Security.Authentication.AgentPasswordNotInitialized": PasswordKindError,
    "Security.Authentication.Expired": AuthExpiredError,
    "Security.Authentication.Timestamp.Invalid": AuthExpiredError,
    "Security.Authentication.Header.UriMismatch": UriMismatchError,
    "Security.Authentication.Header.DecryptFailed": DecryptFailedError,
    "Request.Header.NotFound": AuthDialectError,
    "Common.Unauthorized": AuthError,
    "Task.NotFound": TaskNotFoundError,
    "OB.Cluster.UnderMaintenanceWithDag": UnderMaintenanceError,
    "OB.Cluster.UnderMaintenance": UnderMaintenanceError,
    "OB.Package.NotExist": PackageMissingError,
    # The newer upload's file digest (VerifyFile), not a credential: never re-signed and sent
    # again as an auth refusal may be (PROTOCOL-upgrade-family §6.2 step 5).
    "Security.Authentication.File.Sha256Mismatch": PackageChangedError,
    **dict.fromkeys(_REFUSALS, OperatorRefusedError),
}

#: The raw Go error of a package lookup that found none, e.g. ``oceanbase-ce-4.3.5.1-1.el7.
#: x86_64.rpm: record not found``: obshell sends it as ``Common.Unexpected``, a 500
#: (PROTOCOL-upgrade-family §2 step 8; before the DAG is made).
_NO_PACKAGE = re.compile(r"\.rpm: record not found\s*\Z")

#: An uploaded RPM that fails ``rpm.MD5Check`` (truncated, damaged): the library's plain error,
#: a 500 ``Common.Unexpected`` (PROTOCOL-upgrade-family §6 step 1).
_DAMAGED = re.compile(r"MD5 checksum validation failed\s*\Z")

#: What to do after obshell's refusals that no class names, by errCode: the error's
#: :attr:`~ApiError.hint` (its class has none), in Python words (the CLI says ``client.info()``
#: its way). The SDK's calls that meet ``Agent.Identify.NotSupportOperation`` all want a
#: CLUSTER AGENT (upgrades, their pre-checks, packages; PROTOCOL §7.2, §8.1).
CODE_HINTS: dict[str, str] = {
    "Agent.Upgrade.ToLowerVersion": (
        "Give a target newer than the obshell the agent runs: client.info() shows its version"),
    "OB.Upgrade.ToLowerVersion": (
        "Give a target newer than the OceanBase the cluster runs (a later version, or a later "
        "build of it): client.info() shows its version"),
    "Agent.Identify.NotSupportOperation": (
        "Use an agent of a deployed cluster instead (identity CLUSTER AGENT): client.info() "
        "shows an agent's identity"),
}


def with_code_hint(error: _E) -> _E:
    """``error``, its message ended by its errCode's hint (:data:`CODE_HINTS`), if it has one.

    Only when its class has no hint: a class's says more of what the error is.
    """
    hint = CODE_HINTS.get(error.err_code)
    if hint and not error.hint:
        error.hint = hint
        error._prefix_message("", ". " + hint)
    return error


# Numeric codes of agents older than 4.3.1 (PROTOCOL.md §2.2).
_BY_LEGACY_CODE: dict[int, type[ApiError]] = {
    1: DecryptFailedError,
    10008: AuthError,
    10000: AuthError,
    2300: TaskNotFoundError,
}


def error_class_for(status: int, err_code: str, code: int, message: str = "") -> type[ApiError]:
    """Pick the exception class for an error envelope: errCode first, then code, then status.

    The one errCode read with its message: ``Common.Unexpected`` is a package not found when
    the message is gorm's plain error for an RPM, a damaged package when it is the RPM
    library's failed MD5 check (neither has a code of its own, nor is localised).

    An auth class only ever comes with obshell's auth statuses (401; 400 for a missing
    header): the SDK mends those refusals by sending the request again, which is safe only
    because obshell refuses before anything runs. Another status with an auth code (a proxy,
    a broken agent) may come after the agent acted, so the status decides then.
    """
    cls: Optional[type[ApiError]] = None
    if err_code == "Common.Unexpected" and _NO_PACKAGE.search(message):
        return PackageMissingError
    if err_code == "Common.Unexpected" and _DAMAGED.search(message):
        return PackageDamagedError
    if err_code:
        cls = _BY_ERR_CODE.get(err_code)
        if cls is None and err_code.startswith("Security."):
            cls = AuthError
    elif code in _BY_LEGACY_CODE:
        cls = _BY_LEGACY_CODE[code]
    auth_status = status == 401 or (status == 400 and err_code == "Request.Header.NotFound")
    if cls is not None and (auth_status or not issubclass(cls, AuthError)):
        return cls
    if status == 401:
        return AuthError
    if status == 404:
        return NotFoundError
    if 400 <= status < 500:
        return BadRequestError
    return ServerError


def unknown_route(exc: ApiError) -> bool:
    """Whether ``exc`` is how obshell answers a route it does not have (an older agent).

    A 404, or a 400 with code 1000 and no errCode before obshell 4.2.4 (PROTOCOL §1): not a
    refusal of the call itself, which a route the agent has answers with a code of its own.
    """
    return isinstance(exc, NotFoundError) or (
        exc.status, exc.code, exc.err_code) == (400, 1000, "")
