"""Request parameters as obshell checks them: gin binding, paths, versions, releases, identity.

Shared by the handler modules; pure functions of their arguments, raising
:class:`~._errors.ApiError` with obshell's codes and texts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Optional

from ._errors import ApiError
from ._golike import GoField, decode_struct, parse_go_json

# ``CheckPathValid``'s pattern as its message quotes it (its CJK range ends at U+9FA5).
_PATH_PATTERN = "^[a-zA-Z0-9\u4e00-\u9fa5\\-_:@/\\.]*$"
_PATH_CHARS = re.compile(r"[A-Za-z0-9\u4e00-\u9fa5\-_:@/.]*\Z")

#: The oldest OceanBase (and obshell) version an upgrade may target (``constant/agent.go``).
MIN_VERSION = "4.2.0.0"


def bind(body: bytes, struct: str, type_path: str, fields: Sequence[GoField],
         required: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Gin's ``BindJSON``: decode ``body`` into ``fields``, then the ``required`` validators.

    ``required`` holds (Go field name, validator namespace) pairs in struct order, e.g.
    ``("Mode", "ObUpgradeParam.Mode")``; a zero value fails the ``required`` tag.

    Raises:
        ApiError: 400 ``Common.BindJsonFailed``.

    """
    def fail(text: str) -> ApiError:
        return ApiError(400, "Common.BindJsonFailed", f"Bind JSON failed: {text}")

    try:
        parsed = parse_go_json(body)
    except ValueError as exc:
        raise fail(str(exc)) from None
    values, error = decode_struct(parsed, struct, fields, type_path=type_path)
    if error is not None:
        raise fail(error)
    missing = [
        f"Key: '{namespace}' Error:Field validation for '{name}' failed on the 'required' tag"
        for name, namespace in required if not values[name]
    ]
    if missing:
        raise fail("\n".join(missing))
    return values


def check_path(path: str) -> Optional[str]:
    """``utils.CheckPathValid``: the problem with ``path``, or ``None`` when it is valid."""
    if not path.startswith("/"):
        return "should start with '/'"
    if not _PATH_CHARS.match(path):
        return f"should match pattern {_PATH_PATTERN}"
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return ("should not lead to directory traversal issues when joined with a "
                        "generated parent path")
        elif part not in ("", "."):
            depth += 1
    return None


def check_upgrade_dir(upgrade_dir: str) -> None:
    """An ``upgradeDir`` that is not blank must be a valid path (checked untrimmed).

    Raises:
        ApiError: 400 ``Common.InvalidPath`` (with ``"data": null``).

    """
    if not upgrade_dir.strip():
        return
    problem = check_path(upgrade_dir)
    if problem is not None:
        raise ApiError(400, "Common.InvalidPath",
                       f"Path '{upgrade_dir}' is not valid: {problem}", data_null=True)


def version_key(text: str) -> tuple[tuple[int, ...], int]:
    """``pkg.CompareVersion`` order of ``VERSION[-BUILD]`` (non-numbers count as 0).

    As in Go, the numbers are compared in turn, then the longer version is the newer
    (``4.3.1.0`` > ``4.3.1``), then the build numbers.
    """
    version, *rest = text.split("-")
    build = rest[0] if rest else ""
    nums = tuple(int(p) if p.isdigit() else 0 for p in version.split("."))
    return nums, int(build) if build.isdigit() else 0


def split_release(release: str) -> tuple[str, str]:
    """``pkg.SplitRelease``: (build number before the first dot, distribution after the last).

    Raises:
        ApiError: 400 ``Package.ReleaseFormat.Invalid`` (with ``"data": null``).

    """
    if "." not in release:
        raise ApiError(400, "Package.ReleaseFormat.Invalid",
                       f"Release format {release} is illegal", data_null=True)
    return release.split(".", 1)[0], release.rsplit(".", 1)[1]


def below_minimum(version: str) -> bool:
    """Whether ``version`` (``VERSION[-BUILD]``) is older than :data:`MIN_VERSION`."""
    return version_key(version)[0] < version_key(MIN_VERSION)[0]


def require_cluster_agent(identity: str, address: str, *, data_null: bool = True) -> None:
    """Only a ``CLUSTER AGENT`` may do this (``address``: the agent's ``host:port``).

    Raises:
        ApiError: 400 ``Agent.Identify.NotSupportOperation``.

    """
    if identity != "CLUSTER AGENT":
        raise ApiError(400, "Agent.Identify.NotSupportOperation",
                       f"'{address}' is '{identity}', instead of 'CLUSTER AGENT', "
                       "does not support this operation", data_null=data_null)
