"""Task-creating endpoints, each declared once, with the request model it takes.

A :class:`TaskEndpoint` says everything the client needs to create a task safely: the path,
the request model (checked when built, so bad input never reaches the wire), the name of
the DAG it creates (how a lost reply is looked up) and whether the DAG takes the cluster's
maintenance lock. The agent upgrade and its pre-check are declared here; every endpoint to
come goes through the same mechanism.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Generic, Optional, Protocol, TypeVar

import attrs

from ._exceptions import InvalidArgumentError

__all__ = [
    "AGENT_UPGRADE",
    "AGENT_UPGRADE_CHECK",
    "TaskEndpoint",
    "TaskRequest",
    "UpgradeAgentRequest",
]

_VERSION = re.compile(r"\d+(\.\d+)+\Z")
# PROTOCOL §7.1 (obshell's CheckPathValid): letters, digits, CJK, and - _ : @ / .
_PATH_CHARS = re.compile(r"[A-Za-z0-9\u4e00-\u9fff\-_:@/.]+\Z")


def _check_version(_: Any, attribute: attrs.Attribute[str], value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidArgumentError(attribute.name, f"must be a string, got {type(value).__name__}")
    if not _VERSION.match(value):
        raise InvalidArgumentError(
            attribute.name, f"{value!r} is not a dotted version such as '4.2.1.1'"
        )


def _check_release(_: Any, attribute: attrs.Attribute[str], value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidArgumentError(attribute.name, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgumentError(attribute.name, "must not be empty")
    if value != value.strip() or any(c.isspace() for c in value):
        raise InvalidArgumentError(attribute.name, f"{value!r} contains white space")
    build, _, dist = value.rpartition(".")
    if not build or not dist:
        raise InvalidArgumentError(
            attribute.name,
            f"{value!r} is not '<build number>.<distribution>', e.g. '101000062023110109.el7'",
        )


def _check_upgrade_dir(_: Any, attribute: attrs.Attribute[Optional[str]], value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidArgumentError(attribute.name, f"must be a string, got {type(value).__name__}")
    if not value.startswith("/"):
        raise InvalidArgumentError(attribute.name, f"{value!r} must be an absolute path")
    if not _PATH_CHARS.match(value):
        raise InvalidArgumentError(
            attribute.name,
            f"{value!r} may hold only letters, digits, CJK characters and - _ : @ / .",
        )
    if ".." in value.split("/"):
        raise InvalidArgumentError(attribute.name, f"{value!r} must not contain '..'")


def _empty_as_none(value: Any) -> Any:
    return None if value == "" else value


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
    #: The request model the endpoint takes (checked when built).
    request_type: type[R]
    #: The name obshell gives the DAG it creates, from the request: lost replies look it up.
    dag_name: Callable[[R], str]
    #: True when the DAG takes the cluster's maintenance lock (a failed one keeps it).
    maintenance: bool


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
