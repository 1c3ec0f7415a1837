"""Request parameters, checked when built so that bad input never reaches the wire."""

from __future__ import annotations

import re
from typing import Any, Optional

import attrs

from ._exceptions import InvalidArgumentError
from ._wire import shared_repr

__all__ = ["UpgradeAgentRequest"]

# Patterns are strings: re compiles (and caches) them on first use, not at import.
_VERSION = r"\d+(\.\d+)+\Z"
# PROTOCOL §7.1 (obshell's CheckPathValid): letters, digits, CJK, and - _ : @ / .
_PATH_CHARS = r"[A-Za-z0-9\u4e00-\u9fff\-_:@/.]+\Z"


def _check_version(_: Any, attribute: attrs.Attribute[str], value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidArgumentError(attribute.name, f"must be a string, got {type(value).__name__}")
    if not re.match(_VERSION, value):
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
    if not re.match(_PATH_CHARS, value):
        raise InvalidArgumentError(
            attribute.name,
            f"{value!r} may hold only letters, digits, CJK characters and - _ : @ / .",
        )
    if ".." in value.split("/"):
        raise InvalidArgumentError(attribute.name, f"{value!r} must not contain '..'")


def _empty_as_none(value: Any) -> Any:
    return None if value == "" else value


@shared_repr
@attrs.frozen(repr=False)
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

    def to_json(self) -> dict[str, str]:
        """The JSON body obshell expects."""
        body = {"version": self.version, "release": self.release}
        if self.upgrade_dir is not None:
            body["upgradeDir"] = self.upgrade_dir
        return body

    @property
    def dag_name(self) -> str:
        """The name obshell gives the upgrade DAG it creates."""
        return f"Upgrade obshell {self.version}-{self.release}"
