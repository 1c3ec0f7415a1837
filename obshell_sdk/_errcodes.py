"""obshell's error codes, each mapped to the exception class that says what it means.

The one place that knows them: errCodes of obshell 4.3.1 and later, the numeric codes of
older agents (PROTOCOL.md §2.2), then the HTTP status.
"""

from __future__ import annotations

import re
from typing import Optional

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

__all__ = ["error_class_for"]

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
}

#: The raw Go error of a package lookup that found none, e.g. ``oceanbase-ce-4.3.5.1-1.el7.
#: x86_64.rpm: record not found``: obshell sends it as ``Common.Unexpected``, a 500
#: (PROTOCOL-upgrade-family §2 step 8; before the DAG is made).
_NO_PACKAGE = re.compile(r"\.rpm: record not found\s*\Z")

#: An uploaded RPM that fails ``rpm.MD5Check`` (truncated, damaged): the library's plain error,
#: a 500 ``Common.Unexpected`` (PROTOCOL-upgrade-family §6 step 1).
_DAMAGED = re.compile(r"MD5 checksum validation failed\s*\Z")

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
