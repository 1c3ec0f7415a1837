"""obshell_sdk: a typed Python SDK for obshell, the HTTP agent beside every OceanBase node.

::

    from obshell_sdk import ObshellClient, PasswordAuth

    with ObshellClient("10.0.0.1", 2886, auth=PasswordAuth("root@sys password")) as client:
        task = client.upgrade_agent("4.2.1.1", "101000062023110109.el7")
        detail = task.result(timeout=1800, on_progress=print)

Everything public is importable from here; the modules behind it are private (how they
are laid out: CONTRIBUTING.md). ``obshell_sdk.testing`` holds a fake agent for tests and is
never imported by this package.
"""

from __future__ import annotations

import logging as _logging
import sys as _sys
import typing as _typing

from ._auth import PasswordAuth
from ._client import DEFAULT_TIMEOUT, ObshellClient
from ._config import DEFAULT_PORT
from ._dag import (
    AgentAddress,
    DagDetail,
    DagOutcome,
    DagState,
    NodeDetail,
    Operator,
    Progress,
    TaskDetail,
)
from ._endpoints import UpgradeAgentRequest, UpgradeObRequest
from ._errcodes import OperatorRefusedError
from ._exceptions import (
    ApiError,
    AuthDialectError,
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
    PackageChangedError,
    PackageDamagedError,
    PackageMissingError,
    PasswordKindError,
    ReadTimeoutError,
    ServerError,
    TaskNotFoundError,
    TransportError,
    UnderMaintenanceError,
    UriMismatchError,
    WeakKeyError,
    WrongPasswordError,
)
from ._journal import TargetOutcome
from ._models import (
    AgentInfo,
    ErrorInfo,
    ObParameter,
    ObUpgradeResult,
    UpgradePackageInfo,
    UpgradeResult,
)
from ._polling import PollPolicy
from ._render_live import register_notebook_formatters as _register_notebook_formatters
from ._rollout import AuthSource, Rollout, RolloutTarget
from ._rollout_report import RolloutReport, RolloutStoppedError, TargetResult
from ._task import DEFAULT_WAIT, DagTask, ProgressCallback
from ._task_errors import (
    TaskCancelledError,
    TaskError,
    TaskFailedError,
    TaskRolledBackError,
    TaskStateError,
    TaskTimeoutError,
    TaskUnreachableError,
    UpgradeNotConfirmedError,
)
from ._transport import Cert, Timeout
from ._version import __version__
from ._workflow import UploadCallback

_logging.getLogger("obshell_sdk").addHandler(_logging.NullHandler())
_register_notebook_formatters()

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WAIT",
    "AgentAddress",
    "AgentInfo",
    "ApiError",
    "AuthDialectError",
    "AuthError",
    "AuthExpiredError",
    "AuthSource",
    "BadRequestError",
    "Cert",
    "ConnectError",
    "ConnectionLostError",
    "DagDetail",
    "DagOutcome",
    "DagState",
    "DagTask",
    "DecodeError",
    "DecryptFailedError",
    "ErrorInfo",
    "InvalidArgumentError",
    "NodeDetail",
    "NotFoundError",
    "ObParameter",
    "ObUpgradeResult",
    "ObshellClient",
    "ObshellError",
    "Operator",
    "OperatorRefusedError",
    "OutcomeUnknownError",
    "PackageChangedError",
    "PackageDamagedError",
    "PackageMissingError",
    "PasswordAuth",
    "PasswordKindError",
    "PollPolicy",
    "Progress",
    "ProgressCallback",
    "ReadTimeoutError",
    "Rollout",
    "RolloutReport",
    "RolloutStoppedError",
    "RolloutTarget",
    "ServerError",
    "TargetOutcome",
    "TargetResult",
    "TaskCancelledError",
    "TaskDetail",
    "TaskError",
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskRolledBackError",
    "TaskStateError",
    "TaskTimeoutError",
    "TaskUnreachableError",
    "Timeout",
    "TransportError",
    "UnderMaintenanceError",
    "UpgradeAgentRequest",
    "UpgradeNotConfirmedError",
    "UpgradeObRequest",
    "UpgradePackageInfo",
    "UpgradeResult",
    "UploadCallback",
    "UriMismatchError",
    "WeakKeyError",
    "WrongPasswordError",
    "__version__",
]

# Public classes say they come from here, in reprs, tracebacks and the docs. Their
# annotations are resolved first, in the modules that wrote them: typing.get_type_hints
# (and attrs.resolve_types, cattrs, typeguard) looks names up in ``__module__``, and this
# package has no ``Optional``.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("obshell_sdk._"):
        _own = vars(_obj).get("__annotations__", {})  # its own, not its bases'
        _hints = _typing.get_type_hints(_obj, vars(_sys.modules[_obj.__module__]), globals())
        _obj.__annotations__ = {key: _hints[key] for key in _own}
        _obj.__module__ = __name__
del _name, _obj, _own, _hints, _sys, _typing
