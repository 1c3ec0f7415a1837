"""Task-creating endpoints, each declared once, with the request model it takes.

A :class:`TaskEndpoint` says everything the client needs to create a task safely: the path,
the request model (checked when built, so bad input never reaches the wire), the name of
the DAG it creates (how a lost reply is looked up) and whether the DAG takes the cluster's
maintenance lock. The agent upgrade and its pre-check are declared here; every endpoint to
come goes through the same mechanism.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Generic, Optional, Protocol, TypeVar, cast

import attrs

from ._dag import DagDetail
from ._exceptions import (
    ApiError,
    ConnectError,
    DecodeError,
    InvalidArgumentError,
    ObshellError,
    PackageMissingError,
    TransportError,
    WeakKeyError,
)
from ._validate import brief_repr, control_character

__all__ = [
    "AGENT_UPGRADE",
    "AGENT_UPGRADE_CHECK",
    "OB_UPGRADE",
    "OB_UPGRADE_CHECK",
    "OB_UPGRADE_MODES",
    "TaskEndpoint",
    "TaskRequest",
    "UpgradeAgentRequest",
    "UpgradeObRequest",
    "holds_global_lock",
    "holds_lock",
]

#: The longest version and release accepted (real ones are about 8 and 25 characters).
MAX_VERSION_LENGTH = 64
MAX_RELEASE_LENGTH = 128
#: The longest upgrade directory accepted (Linux's PATH_MAX).
MAX_PATH_LENGTH = 4096
# ASCII digits only: Python's \d and str.isdigit() also take Arabic-Indic and other digits,
# which obshell's strconv.Atoi refuses. Four numbers, as every obshell and OceanBase 4.x
# version has: obshell checks a target only against its own version (not whether a package
# exists), so "4.2" would start an upgrade DAG that fails inside, holding the cluster's lock.
_VERSION = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)){3}\Z")
_BUILD_NUMBER = re.compile(r"[0-9]+\Z")
# What follows the release in a package's file name (NAME-VERSION-RELEASE.ARCH.rpm).
_FILE_NAME_TAILS = ("rpm", "x86_64", "aarch64", "noarch", "i686", "ppc64le", "loongarch64",
                    "sw_64", "src")
# PROTOCOL §7.1 (obshell's CheckPathValid): letters, digits, CJK, and - _ : @ / . (its CJK
# range ends at U+9FA5, not U+9FFF: ob/utils/path.go)
_PATH_CHARS = re.compile(r"[A-Za-z0-9\u4e00-\u9fa5\-_:@/.]+\Z")


def _string(name: str, value: Any, limit: int) -> str:
    """``value`` if it is a string of at most ``limit`` characters without control characters."""
    if not isinstance(value, str):
        raise InvalidArgumentError(name, f"must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidArgumentError(
            name, f"{brief_repr(value)} is {len(value)} characters long, more than {limit}"
        )
    bad = control_character(value)
    if bad is not None:
        raise InvalidArgumentError(name, f"{brief_repr(value)} contains {bad}")
    return value


def _check_version(_: Any, attribute: attrs.Attribute[str], value: Any) -> None:
    text = _string(attribute.name, value, MAX_VERSION_LENGTH)
    if not _VERSION.match(text):
        raise InvalidArgumentError(
            attribute.name, f"{text!r} is not a version of four dotted numbers (no leading "
            "zeros) such as '4.2.1.1'"
        )


def _check_release(_: Any, attribute: attrs.Attribute[str], value: Any) -> None:
    name = attribute.name
    text = _string(name, value, MAX_RELEASE_LENGTH)
    if not text.strip():
        raise InvalidArgumentError(name, "must not be empty")
    if any(c.isspace() for c in text):
        raise InvalidArgumentError(name, f"{text!r} contains white space")
    if not text.isascii():
        raise InvalidArgumentError(name, f"{text!r} is not ASCII")
    for bad in ("/", ".."):
        if bad in text:
            raise InvalidArgumentError(name, f"{text!r} must not contain {bad!r}")
    if "-" in text:  # RPM forbids it in a release: a VERSION-RELEASE copied from a file name
        raise InvalidArgumentError(
            name, f"{text!r} contains '-', which no RPM release does; in a package's file "
            "name (obshell-4.2.1.1-101000062023110109.el7.x86_64.rpm) the release is the part "
            "after the version: '101000062023110109.el7'")
    tail = text.rpartition(".")[2]
    if tail.lower() in _FILE_NAME_TAILS:  # e.g. 101000062023110109.el7.x86_64(.rpm)
        raise InvalidArgumentError(
            name, f"{text!r} ends with {tail!r}, which is part of a package's file name, not of "
            "its release; in obshell-4.2.1.1-101000062023110109.el7.x86_64.rpm the release is "
            "'101000062023110109.el7'")
    build, _, dist = text.partition(".")
    if not dist or text.endswith("."):
        raise InvalidArgumentError(
            name, f"{text!r} is not '<build number>.<distribution>', e.g. '101000062023110109.el7'",
        )
    if not _BUILD_NUMBER.match(build):
        raise InvalidArgumentError(
            name, f"{text!r}: the build number before the first '.' must be ASCII digits, "
            "e.g. '101000062023110109.el7'",
        )


def _check_upgrade_dir(_: Any, attribute: attrs.Attribute[Optional[str]], value: Any) -> None:
    if value is None:
        return
    text = _string(attribute.name, value, MAX_PATH_LENGTH)
    if not text.startswith("/"):
        raise InvalidArgumentError(attribute.name, f"{brief_repr(text)} must be an absolute path")
    if not _PATH_CHARS.match(text):
        raise InvalidArgumentError(
            attribute.name,
            f"{brief_repr(text)} may hold only letters, digits, - _ : @ / . and the Chinese "
            "characters U+4E00 to U+9FA5 (as obshell checks it)",
        )
    if ".." in text.split("/"):
        raise InvalidArgumentError(attribute.name, f"{brief_repr(text)} must not contain '..'")


def _empty_as_none(value: Any) -> Any:
    return None if isinstance(value, str) and value == "" else value


@attrs.frozen
class UpgradeAgentRequest:
    """Parameters of ``POST /api/v1/agent/upgrade`` (and ``/upgrade/check``), checked on creation.

    ``upgrade_dir`` None, ``""`` or omitted lets the agent use ``<obshell home>/upgrade``.
    Bad values raise :class:`~obshell_sdk.InvalidArgumentError` here, before anything is sent.
    """

    version: str = attrs.field(validator=_check_version)
    release: str = attrs.field(validator=_check_release)
    upgrade_dir: Optional[str] = attrs.field(
        default=None, converter=_empty_as_none, validator=_check_upgrade_dir
    )

    def to_json(self) -> dict[str, Any]:
        """The JSON body obshell expects."""
        body = {"version": self.version, "release": self.release}
        if self.upgrade_dir is not None:
            body["upgradeDir"] = self.upgrade_dir
        return body


def _check_mode(_: Any, attribute: attrs.Attribute[str], value: Any) -> None:
    if value not in OB_UPGRADE_MODES:
        raise InvalidArgumentError(
            attribute.name, f"{brief_repr(value)} is not one of {', '.join(OB_UPGRADE_MODES)}")


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) and value.isascii() else value


def _check_bool(_: Any, attribute: attrs.Attribute[bool], value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidArgumentError(attribute.name, "must be True or False")


#: The modes of ``POST /api/v1/ob/upgrade`` (obshell upper-cases what it is sent).
OB_UPGRADE_MODES = ("ROLLING", "STOPSERVICE")


@attrs.frozen
class UpgradeObRequest:
    """Parameters of ``POST /api/v1/ob/upgrade``, checked on creation.

    ``mode`` is ``ROLLING`` (zone by zone; 3 zones, 2 on shared storage) or ``STOPSERVICE``, in any
    case; ``freeze_server`` adds a minor freeze before each server stops. The release is
    ``<build>.<dist>`` as for the agent upgrade.
    """

    version: str = attrs.field(validator=_check_version)
    release: str = attrs.field(validator=_check_release)
    mode: str = attrs.field(default="ROLLING", converter=_upper, validator=_check_mode)
    upgrade_dir: Optional[str] = attrs.field(
        default=None, converter=_empty_as_none, validator=_check_upgrade_dir
    )
    freeze_server: bool = attrs.field(default=False, validator=_check_bool)

    def to_json(self) -> dict[str, Any]:
        """The JSON body obshell expects (``upgradeDir`` camelCase, ``freeze_server`` snake)."""
        body: dict[str, Any] = {"version": self.version, "release": self.release,
                                "mode": self.mode, "freeze_server": self.freeze_server}
        if self.upgrade_dir is not None:
            body["upgradeDir"] = self.upgrade_dir
        return body


class TaskRequest(Protocol):
    """What a task-creating endpoint's request model offers: its JSON body."""

    def to_json(self) -> dict[str, Any]:
        """The JSON body obshell expects."""
        ...


R = TypeVar("R", bound=TaskRequest)


@attrs.frozen
class TaskEndpoint(Generic[R]):
    """A POST that creates a DAG: everything the client needs to call it and recover from it."""

    #: The path, e.g. ``/api/v1/agent/upgrade``.
    path: str
    #: The request model the endpoint takes (a create call checks it before sending).
    request_type: type[R]
    #: The name obshell gives the DAG it creates, from the request: lost replies look it up.
    dag_name: Callable[[R], str]
    #: True when the DAG takes the cluster's maintenance lock (a failed one keeps it).
    maintenance: bool

    def never_ran(self, exc: ObshellError) -> bool:
        """True when ``exc``, raised by a create call, proves the POST created no DAG.

        So it is when the agent was never reached (:class:`ConnectError`), when the failed
        request was another of the call's (the auth flow's ``/info``, ``/secret``, ``/time``),
        when the SDK refused to sign it (a forced dialect the agent lacks, a weak agent key),
        and when the agent answered with an obshell error of its own: a 4xx (credentials,
        parameters), or a 5xx with an errCode (its lock held, a check failed, the insert
        rolled back). obshell's create handlers make the DAG as their last fallible step,
        so those errors come before it or instead of it. So it is too when a proxy answered
        the POST with a 3xx or 4xx page of its own; not when the reply was not HTTP at all
        (an agent's reply garbled on the way looks the same). ``Common.Unexpected`` (a panic, a
        follower's failed forward, a raw Go error) and a reply lost on the way may both
        hide a DAG: they prove nothing, except a package not found
        (:class:`PackageMissingError`), which the OceanBase upgrade and its pre-check look up
        before making the DAG (PROTOCOL-upgrade-family §2 step 8).
        """
        if isinstance(exc, (ConnectError, InvalidArgumentError, WeakKeyError)):
            return True
        if isinstance(exc, DecodeError) and exc.path == self.path:  # a page, not obshell's
            return exc.refusal_page
        if not isinstance(exc, (TransportError, ApiError)):
            return False
        if exc.path != self.path:
            return True
        if isinstance(exc, PackageMissingError):  # looked up before the DAG is made
            return True
        return isinstance(exc, ApiError) and (400 <= exc.status < 500 or (
            exc.status >= 500 and exc.err_code not in ("", "Common.Unexpected")))



#: ``POST /api/v1/agent/upgrade``: the 9-stage agent upgrade (PROTOCOL §7.3).
AGENT_UPGRADE: TaskEndpoint[UpgradeAgentRequest] = TaskEndpoint(
    "/api/v1/agent/upgrade", UpgradeAgentRequest,
    lambda r: f"Upgrade obshell {r.version}-{r.release}", maintenance=True,
)
#: ``POST /api/v1/agent/upgrade/check``: the 5-stage pre-check, which takes no lock.
AGENT_UPGRADE_CHECK: TaskEndpoint[UpgradeAgentRequest] = TaskEndpoint(
    "/api/v1/agent/upgrade/check", UpgradeAgentRequest,
    lambda r: f"Upgrade check obshell {r.version}-{r.release}", maintenance=False,
)
#: ``POST /api/v1/ob/upgrade``: the OceanBase upgrade (the agents first), under the lock.
OB_UPGRADE: TaskEndpoint[UpgradeObRequest] = TaskEndpoint(
    "/api/v1/ob/upgrade", UpgradeObRequest,
    lambda r: (f"OB {'rolling' if r.mode == 'ROLLING' else 'stop service'} upgrade "
               f"{r.version}-{r.release}"), maintenance=True,
)
#: ``POST /api/v1/ob/upgrade/check``: the 6-stage OceanBase pre-check, which takes no lock.
OB_UPGRADE_CHECK: TaskEndpoint[UpgradeAgentRequest] = TaskEndpoint(
    "/api/v1/ob/upgrade/check", UpgradeAgentRequest,
    lambda r: f"Upgrade check OB {r.version}-{r.release}", maintenance=False,
)


class _AnyRequest:
    """Stands for every request: each field reads as a marker, widened to a pattern below.

    But ``mode``, which picks a name's words (an OceanBase upgrade's): each is tried.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def __getattr__(self, name: str) -> str:
        return "\0"


def _names(maintenance: bool) -> tuple[re.Pattern[str], ...]:
    """The names of the declared DAGs that take the lock (or, ``False``, that take none)."""
    names = {e.dag_name(cast(Any, _AnyRequest(mode)))
             for e in (AGENT_UPGRADE, AGENT_UPGRADE_CHECK, OB_UPGRADE, OB_UPGRADE_CHECK)
             if e.maintenance is maintenance for mode in OB_UPGRADE_MODES}
    return tuple(re.compile(".+".join(map(re.escape, n.split("\0"))) + r"\Z")
                 for n in sorted(names))


#: The names of the DAGs that take no lock (the pre-checks), from their declarations.
_LOCK_FREE = _names(False)
#: The names of the DAGs that take the global lock (the upgrades), from their declarations.
_GLOBAL_LOCK = _names(True)


def holds_lock(detail: DagDetail) -> bool:
    """Whether ``detail``, a DAG not ended or failed (or cancelled), holds the cluster's lock.

    obshell says so in ``maintenance_type`` (1: no lock) from 4.3.0 on; an older agent's DAG
    lacks it, and is known by its name: a pre-check (an endpoint declared ``maintenance=False``)
    takes no lock, any other DAG is taken to hold it.
    """
    if detail.maintenance_type is not None:
        return detail.maintenance_type != 1
    return not any(p.match(detail.name) for p in _LOCK_FREE)


def holds_global_lock(detail: DagDetail) -> bool:
    """Whether ``detail``, a FAILED (or cancelled) DAG, is known to keep an upgrade out.

    It holds the cluster's global lock, which an upgrade takes: from 4.3.0 on, a DAG of
    ``maintenance_type`` 2. An older agent's DAG lacks the field, and only the upgrades
    declared here are known (by their names) to take that lock. Other tasks may keep an
    upgrade out too (an older agent's scale-out; a tenant task, whose failure may or may not
    have released its lock): obshell refuses those itself. Narrower than :func:`holds_lock`,
    which counts every task that may hold any lock.
    """
    if detail.maintenance_type is not None:
        return detail.maintenance_type == 2
    return any(p.match(detail.name) for p in _GLOBAL_LOCK)
