"""obshell_sdk: a typed Python SDK for obshell, the HTTP agent beside every OceanBase node.

::

    from obshell_sdk import ObshellClient, PasswordAuth

    with ObshellClient("10.0.0.1", 2886, auth=PasswordAuth("root@sys password")) as client:
        task = client.upgrade_agent("4.2.1.1", "101000062023110109.el7")
        detail = task.result(timeout=1800, on_progress=print)

Everything public is importable from here; the modules behind it are private.
``obshell_sdk.testing`` holds a fake agent for tests and is never imported by this package.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from ._auth import PasswordAuth, SignedRequest
from ._client import DEFAULT_PORT, DEFAULT_TIMEOUT, ObshellClient
from ._exceptions import (
    ApiError,
    AuthError,
    AuthExpiredError,
    BadRequestError,
    ConnectError,
    ConnectionLostError,
    DecodeError,
    DecryptFailedError,
    InvalidArgumentError,
    NotFoundError,
    ObshellError,
    OutcomeUnknownError,
    PasswordKindError,
    ReadTimeoutError,
    ServerError,
    TaskCancelledError,
    TaskError,
    TaskFailedError,
    TaskNotFoundError,
    TaskRolledBackError,
    TaskStateError,
    TaskTimeoutError,
    TaskUnreachableError,
    TransportError,
    UnderMaintenanceError,
    UpgradeNotConfirmedError,
    UriMismatchError,
    WrongPasswordError,
)
from ._models import (
    AgentAddress,
    AgentInfo,
    AgentSecret,
    DagDetail,
    DagOutcome,
    DagState,
    Envelope,
    ErrorInfo,
    NodeDetail,
    Operator,
    Progress,
    TaskDetail,
)
from ._params import UpgradeAgentRequest
from ._polling import PollPolicy
from ._task import DEFAULT_WAIT, DagSource, DagTask
from ._version import __version__

logging.getLogger("obshell_sdk").addHandler(logging.NullHandler())

_LAZY = {"UpgradePackageInfo": "._upload", "UpgradeResult": "._workflow"}

if TYPE_CHECKING:  # pragma: no cover
    from ._upload import UpgradePackageInfo
    from ._workflow import UpgradeResult


def __getattr__(name: str) -> Any:
    """Load the rarely used names on first access, to keep ``import obshell_sdk`` fast."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'obshell_sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WAIT",
    "AgentAddress",
    "AgentInfo",
    "AgentSecret",
    "ApiError",
    "AuthError",
    "AuthExpiredError",
    "BadRequestError",
    "ConnectError",
    "ConnectionLostError",
    "DagDetail",
    "DagOutcome",
    "DagSource",
    "DagState",
    "DagTask",
    "DecodeError",
    "DecryptFailedError",
    "Envelope",
    "ErrorInfo",
    "InvalidArgumentError",
    "NodeDetail",
    "NotFoundError",
    "ObshellClient",
    "ObshellError",
    "Operator",
    "OutcomeUnknownError",
    "PasswordAuth",
    "PasswordKindError",
    "PollPolicy",
    "Progress",
    "ReadTimeoutError",
    "ServerError",
    "SignedRequest",
    "TaskCancelledError",
    "TaskDetail",
    "TaskError",
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskRolledBackError",
    "TaskStateError",
    "TaskTimeoutError",
    "TaskUnreachableError",
    "TransportError",
    "UnderMaintenanceError",
    "UpgradeAgentRequest",
    "UpgradeNotConfirmedError",
    "UpgradePackageInfo",
    "UpgradeResult",
    "UriMismatchError",
    "WrongPasswordError",
    "__version__",
]
