"""The other models: the envelope, agent info and key, uploaded packages, upgrade results.

Typed, frozen attrs classes built with named constructors (``AgentInfo.from_json(obj)``);
keys a model does not know are kept in ``extra``. No HTTP, no I/O.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

import attrs

from ._dag import DagDetail, extra_field
from ._decode import (
    decode,
    p_any,
    p_bool,
    p_int,
    p_list,
    p_model,
    p_optional,
    p_str,
    p_time,
    wire,
)

__all__ = [
    "AgentInfo",
    "AgentSecret",
    "Envelope",
    "ErrorInfo",
    "ObParameter",
    "ObUpgradeResult",
    "UpgradePackageInfo",
    "UpgradeResult",
]


@attrs.frozen
class ErrorInfo:
    """The ``error`` object of an envelope: branch on ``err_code`` (or ``code`` on old agents)."""

    err_code: str = wire("errCode", p_str, required=False, default="")
    code: int = wire("code", p_int, required=False, default=0)
    message: str = wire("message", p_str, required=False, default="")
    sub_errors: tuple[Any, ...] = wire(
        "subErrors", p_list(p_any, null_as_empty=True), required=False, default=(), hash=False
    )
    extra: dict[str, Any] = extra_field()

    @classmethod
    def from_json(cls, obj: Any, where: str = "error") -> ErrorInfo:
        """Build from the envelope's ``error`` object."""
        return decode(cls, obj, where)


@attrs.frozen
class Envelope:
    """obshell's response envelope. ``data`` is the raw payload (None when absent)."""

    successful: bool = wire("successful", p_bool)
    status: int = wire("status", p_int)
    timestamp: Optional[datetime] = wire("timestamp", p_time, required=False)
    duration: int = wire("duration", p_int, required=False, default=0)
    trace_id: str = wire("traceId", p_str, required=False, default="")
    data: Any = wire("data", p_any, required=False, repr=False, hash=False)
    error: Optional[ErrorInfo] = wire(
        "error", p_optional(p_model(ErrorInfo)), required=False
    )
    extra: dict[str, Any] = extra_field()

    @classmethod
    def from_json(cls, obj: Any, where: str = "") -> Envelope:
        """Build from the whole decoded JSON reply."""
        return decode(cls, obj, where)


@attrs.frozen
class AgentInfo:
    """What ``GET /api/v1/info`` says about an agent."""

    identity: str = wire("identity", p_str)
    version: str = wire("version", p_str)
    ip: str = wire("ip", p_str, required=False, default="")
    port: int = wire("port", p_int, required=False, default=0)
    pid: int = wire("pid", p_int, required=False, default=0)
    state: int = wire("state", p_int, required=False, default=0)
    start_at: int = wire("startAt", p_int, required=False, default=0)
    home_path: str = wire("homePath", p_str, required=False, default="")
    ob_version: str = wire("obVersion", p_str, required=False, default="")
    architecture: str = wire("architecture", p_str, required=False, default="")
    zone: str = wire("zone", p_str, required=False, default="")
    is_obproxy_agent: bool = wire("isObproxyAgent", p_bool, required=False, default=False)
    security: bool = wire("security", p_bool, required=False, default=False)
    supported_auth: Optional[tuple[str, ...]] = wire(
        "supportedAuth", p_optional(p_list(p_str)), required=False
    )
    extra: dict[str, Any] = extra_field()

    @classmethod
    def from_json(cls, obj: Any, where: str = "data") -> AgentInfo:
        """Build from the ``data`` of ``/api/v1/info``."""
        return decode(cls, obj, where)

    @property
    def version_number(self) -> str:
        """The obshell version without its ``-release`` suffix, e.g. ``4.2.3.0``."""
        return self.version.split("-", 1)[0]

    @property
    def has_agent_password(self) -> bool:
        """True when an agent password is set (obshell calls this ``security``)."""
        return self.security

    @property
    def started_at(self) -> Optional[datetime]:
        """Process start time (``startAt`` is in nanoseconds)."""
        if self.start_at <= 0:
            return None
        return datetime.fromtimestamp(self.start_at / 1e9, tz=timezone.utc)


@attrs.frozen
class AgentSecret:
    """What ``GET /api/v1/secret`` returns: the agent's RSA public key (base64 PKCS#1 DER)."""

    public_key: str = wire("public_key", p_str, repr=False)
    ip: str = wire("ip", p_str, required=False, default="")
    port: int = wire("port", p_int, required=False, default=0)
    extra: dict[str, Any] = extra_field()

    @classmethod
    def from_json(cls, obj: Any, where: str = "data") -> AgentSecret:
        """Build from the ``data`` of ``/api/v1/secret``."""
        return decode(cls, obj, where)


@attrs.frozen
class UpgradePackageInfo:
    """A package the cluster holds: what an upload stored, or a row of the inventory.

    obshell writes these keys in snake_case (the inventory, the new upload) or, for the old
    upload, as Go field names (``PkgId``, ``ReleaseDistribution``...): both are read.
    ``size`` is the installed size; ``payload_size`` the RPM's header and payload.
    """

    pkg_id: int = wire("pkg_id", p_int)
    name: str = wire("name", p_str)
    version: str = wire("version", p_str)
    release_distribution: str = wire("release_distribution", p_str, required=False, default="")
    distribution: str = wire("distribution", p_str, required=False, default="")
    release: str = wire("release", p_str, required=False, default="")
    architecture: str = wire("architecture", p_str, required=False, default="")
    size: int = wire("size", p_int, required=False, default=0)
    payload_size: int = wire("payload_size", p_int, required=False, default=0)
    chunk_count: int = wire("chunk_count", p_int, required=False, default=0)
    md5: str = wire("md5", p_str, required=False, default="")
    upgrade_dep_yaml: str = wire("upgrade_dep_yaml", p_str, required=False, default="",
                                 repr=False)
    gmt_modify: Optional[datetime] = wire("gmt_modify", p_time, required=False)
    extra: dict[str, Any] = extra_field()

    @classmethod
    def from_json(cls, obj: Any, where: str = "data") -> UpgradePackageInfo:
        """Build from an upload's ``data`` or an inventory row (either key style)."""
        if isinstance(obj, dict) and "PkgId" in obj:  # the old upload: Go field names
            obj = {_GO_NAMES.get(k, k): v for k, v in obj.items()}
        return decode(cls, obj, where)


_GO_NAMES = {
    "PkgId": "pkg_id", "Name": "name", "Version": "version",
    "ReleaseDistribution": "release_distribution", "Distribution": "distribution",
    "Release": "release", "Architecture": "architecture", "Size": "size",
    "PayloadSize": "payload_size", "ChunkCount": "chunk_count", "Md5": "md5",
    "UpgradeDepYaml": "upgrade_dep_yaml", "GmtModify": "gmt_modify",
}


@attrs.frozen
class ObParameter:
    """One parameter of one server, as ``POST /api/v1/upgrade/params/backup`` saves it."""

    name: str = wire("Name", p_str)
    svr_ip: str = wire("SvrIp", p_str, required=False, default="")
    svr_port: int = wire("SvrPort", p_int, required=False, default=0)
    zone: str = wire("Zone", p_str, required=False, default="")
    scope: str = wire("Scope", p_str, required=False, default="")
    value: str = wire("Value", p_str, required=False, default="")
    tenant_id: int = wire("TenantId", p_int, required=False, default=0)
    extra: dict[str, Any] = extra_field()

    @classmethod
    def from_json(cls, obj: Any, where: str = "data") -> ObParameter:
        """Build from one row of the backup's ``contents``."""
        return decode(cls, obj, where)


@attrs.frozen
class UpgradeResult:
    """What :meth:`ObshellClient.run_agent_upgrade` did, step by step."""

    #: The package uploaded first (None when none was given).
    package: Optional[UpgradePackageInfo]
    #: The finished pre-check DAG (None when the check was skipped).
    check: Optional[DagDetail]
    #: The finished upgrade DAG.
    upgrade: DagDetail
    #: What the agent reported through ``/api/v1/info`` afterwards.
    info: AgentInfo


@attrs.frozen
class ObUpgradeResult:
    """What :meth:`ObshellClient.run_ob_upgrade` did, step by step."""

    #: The packages uploaded first, in the order given.
    packages: tuple[UpgradePackageInfo, ...]
    #: The finished pre-check DAG (None when the check was skipped).
    check: Optional[DagDetail]
    #: The finished upgrade DAG.
    upgrade: DagDetail
    #: What the agent reported through ``/api/v1/info`` afterwards (``ob_version``).
    info: AgentInfo
