"""The whole upgrade in one call, of the agents or of OceanBase: upload, check, upgrade.

Then follow it and confirm the new version. What a target and its packages must be is
in :mod:`._targets`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Callable, Optional, Protocol, Union

from ._dag import DagDetail, DagState, Operator
from ._endpoints import UpgradeAgentRequest, UpgradeObRequest, holds_global_lock
from ._errcodes import CODE_HINTS, own_finding
from ._exceptions import (
    AuthError,
    BadRequestError,
    InvalidArgumentError,
    UnderMaintenanceError,
    WeakKeyError,
)
from ._models import AgentInfo, ObUpgradeResult, UpgradePackageInfo, UpgradeResult
from ._render_live import upload_display
from ._targets import (
    check_ob_packages,
    check_target_package,
    not_newer,
    not_the_target,
    ob_not_newer,
    stored_said,
)
from ._task import DagTask, ProgressCallback
from ._task_errors import UpgradeNotConfirmedError
from ._text import printable
from ._upload import check_package_digest, check_package_paths
from ._validate import check_flag, check_progress, check_seconds, check_upload_timeout

__all__ = ["UploadCallback", "log_in", "run_agent_upgrade", "run_ob_upgrade", "upload_packages"]

log = logging.getLogger("obshell_sdk")

#: The ``on_upload`` of ``client.run_agent_upgrade(...)`` and ``client.run_ob_upgrade(...)``,
#: told of each package they upload (all checked first: one refused, none is sent or told):
#: ``(path, None)`` just before it is sent, then ``(path, stored)`` with the
#: :class:`UpgradePackageInfo` the agent stored, once it has (not after a failed upload).
#: What it returns is ignored; what it raises ends the upgrade there.
UploadCallback = Callable[[str, Optional[UpgradePackageInfo]], object]


class _Agent(Protocol):
    """The calls the workflow makes (``ObshellClient`` has them)."""

    @property
    def agent(self) -> str:
        """``host:port`` as messages show it."""
        ...

    #: Whether the agent has the newer upload; None until the first upload asked.
    _new_upload: Optional[bool]

    def _upload_checked(self, file: str, sha256: Optional[str],
                        lifetime: Optional[float] = None) -> UpgradePackageInfo: ...

    def check_agent_upgrade(
        self, version: str, release: str, upgrade_dir: Optional[str] = None
    ) -> DagTask: ...

    def upgrade_agent(
        self, version: str, release: str, upgrade_dir: Optional[str] = None
    ) -> DagTask: ...

    def info(self) -> AgentInfo: ...

    def unfinished_dags(self) -> list[DagDetail]: ...

    def check_ob_upgrade(
        self, version: str, release: str, upgrade_dir: Optional[str] = None
    ) -> DagTask: ...

    def upgrade_ob(self, version: str, release: str, *, mode: str = "ROLLING",
                   upgrade_dir: Optional[str] = None, freeze_server: bool = False) -> DagTask: ...


def run_agent_upgrade(
    client: _Agent, version: str, release: str, *,
    package: Union[str, os.PathLike[str], None] = None, upgrade_dir: Optional[str] = None,
    check: bool = True, timeout: float = 3600.0, on_progress: Optional[ProgressCallback] = None,
    progress: Optional[bool] = None, upload_timeout: Optional[float] = None,
    on_upload: Optional[UploadCallback] = None,
) -> UpgradeResult:
    """Upload, pre-check, upgrade, follow to the end, confirm the version through ``/info``.

    ``package`` is uploaded when given and must then be the target's (``obshell``, same
    version and release: :class:`InvalidArgumentError` before anything starts otherwise);
    the pre-check runs when ``check`` is true. ``upload_timeout`` is how long the upload
    may take (and its signed header lives): by default 600 s, or the file at 1 MiB/s.
    Everything the caller gave is checked before the first request, the package by its RPM
    header (if that cannot be read, by what the agent reads on upload); with a package, what
    obshell refuses only after the upload: a target not newer, a SINGLE agent (by ``/info``:
    :func:`_check_target`); a FAILED task holding the lock (:func:`log_in`).
    ``on_upload`` (an :data:`UploadCallback`) and ``progress``'s display hear of the upload.
    Raises what the steps raise (``TaskFailedError``, ...), or :class:`UpgradeNotConfirmedError`.
    """
    UpgradeAgentRequest(version, release, upgrade_dir)  # refuse bad input before any I/O
    path = None if package is None else check_target_package(package, version, release)
    timeout = check_seconds(timeout, "timeout")
    upload_seconds = check_upload_timeout(upload_timeout)
    check = check_flag(check, "check")
    check_progress(progress, on_progress, on_upload)
    uploaded = None
    if path is not None:  # obshell would refuse it only after the upload
        _check_target(client, version, release)
        (uploaded,) = _upload(client, [path], upload_seconds, on_upload, progress)
        _check_uploaded(uploaded, version, release)
    checked = None
    if check:
        checked = client.check_agent_upgrade(version, release, upgrade_dir).result(
            timeout, on_progress=on_progress, progress=progress)
    task = client.upgrade_agent(version, release, upgrade_dir)
    detail = task.result(timeout, on_progress=on_progress, progress=progress)
    info = client.info()
    # /info.version is VERSION-BUILD, the build number being the release before its first
    # dot (obshell's pkg.SplitRelease). A same-version rebuild that did not take shows only
    # in the build number: both count.
    wanted = f"{version}-{release.split('.', 1)[0]}"
    if info.version != wanted:
        raise UpgradeNotConfirmedError(
            f"task {detail.id} succeeded but the agent reports obshell {info.version!r}, not "
            f"{wanted!r}; check the agent's log and client.info() again after it restarts",
            task_id=detail.id, detail=detail,
        )
    log.info("agent %s now runs obshell %s", client.agent, printable(info.version))
    return UpgradeResult(uploaded, checked, detail, info)


def log_in(client: _Agent, *, upgrading: bool = False) -> None:
    """One signed read (the unfinished tasks) before a package goes out.

    obshell's newer upload route checks no password: without this a wrong one is found only
    after the package was sent, to every cluster of a rollout. A refusal says so: the read
    is not a call the user made. ``upgrading`` (an upgrade's uploads): a FAILED task holding
    the cluster's global lock raises :class:`UnderMaintenanceError`, as obshell refuses the
    upgrade after the uploads; only an operator frees that lock. Agents from 4.3.0 on say
    which tasks hold it (``maintenance_type`` 2); on older ones the upgrades are known by
    their names (:func:`holds_global_lock`). A running one may end meanwhile.
    """
    try:
        dags = client.unfinished_dags()
    except (AuthError, WeakKeyError) as exc:
        exc._prefix_message("the package upload was not sent: ")
        raise
    held = next((d for d in dags if d.state is DagState.FAILED and holds_global_lock(d)), None)
    if upgrading and held is not None:
        how = "was cancelled" if held.operator is Operator.CANCEL else "failed"
        said = (f"task {held.id} {held.name!r} {how} and holds the cluster's maintenance lock: "
                "obshell refuses an upgrade until it is retried to success, rolled back or "
                "skipped")
        raise own_finding(
            UnderMaintenanceError, said, f"the upgrade was not started and nothing was "
            f"uploaded: {said}. If it failed for a package it lacked, upload it "
            f"(client.upload_package(path)), then retry the task. {UnderMaintenanceError.hint}",
            err_code="OB.Cluster.UnderMaintenanceWithDag", method="GET",
            path="/api/v1/task/dag/unfinish", agent=client.agent)


def _upload(client: _Agent, paths: Sequence[str], lifetime: Optional[float],
            on_upload: Optional[UploadCallback], progress: Optional[bool]
            ) -> tuple[UpgradePackageInfo, ...]:
    """Log in (:func:`log_in`), then :func:`upload_packages`, telling ``on_upload``.

    And the live display ``progress`` asks for, as a wait's (:func:`upload_display`).
    """
    if not paths:
        return ()
    log_in(client, upgrading=True)
    display = upload_display(progress, client.agent)
    try:
        return tuple(upload_packages(client, paths, lifetime,
                                     [s for s in (display, on_upload) if s is not None]))
    finally:
        if display is not None:
            display.close()


def upload_packages(client: _Agent, paths: Sequence[str], lifetime: Optional[float],
                    told: Sequence[UploadCallback]) -> list[UpgradePackageInfo]:
    """Check every one of ``paths``, then upload each in turn, telling each of ``told``.

    The paths passed :func:`check_package_path`. Each file is read once for obshell's MD5
    check (:func:`check_package_digest`) and its SHA-256, before anything is sent: one
    refused raises :class:`InvalidArgumentError` with none uploaded. Then each is told
    ``(path, None)``, sent (read again, the SHA-256 reused) and told ``(path, stored)``.
    """
    sha256 = client._new_upload is not False
    digests = [check_package_digest(path, sha256=sha256) for path in paths]
    stored: list[UpgradePackageInfo] = []
    for path, digest in zip(paths, digests):
        for tell in told:
            tell(path, None)
        stored.append(client._upload_checked(path, digest, lifetime))
        for tell in told:
            tell(path, stored[-1])
    return stored


def _check_target(client: _Agent, version: str, release: str) -> None:
    """Refuse by ``/info``, before uploading, what obshell refuses only after the upload.

    A SINGLE agent (:func:`_refuse_single`); a target not newer than the agent's
    (``Agent.Upgrade.ToLowerVersion``): :class:`InvalidArgumentError`.
    """
    info = client.info()
    _refuse_single(client.agent, info)
    problem = not_newer(info.version, version, release)
    if problem:
        raise InvalidArgumentError("version", f"{problem}; nothing was uploaded")


def _check_target_ob(client: _Agent, version: str) -> None:
    """:func:`_check_target` of OceanBase: a target behind the cluster (``OB.Upgrade...``)."""
    info = client.info()
    _refuse_single(client.agent, info)
    problem = ob_not_newer(info.ob_version, version)
    if problem:
        raise InvalidArgumentError("version", f"{problem}; nothing was uploaded")


#: obshell's refusal of a call an agent of no deployed cluster cannot take.
_NOT_CLUSTER = "Agent.Identify.NotSupportOperation"


def _refuse_single(agent: str, info: AgentInfo) -> None:
    """A SINGLE agent raises :class:`BadRequestError` (status 0), as obshell would refuse it.

    obshell takes uploads and upgrades on a CLUSTER AGENT only (``pkgUploadHandler``,
    ``newPkgUploadHandler``, ``preCheckForAgentUpgrade``, ``ObUpgradeCheck``): a SINGLE one
    (no cluster) would refuse the upload, after it was sent. Other identities are left to the
    agent: a cluster's agents pass through them while it is built or resized.
    """
    if info.identity != "SINGLE":
        return
    said = (f"{agent} is a SINGLE agent (it belongs to no cluster): obshell takes packages and "
            f"upgrades only on an agent of a deployed cluster ({_NOT_CLUSTER})")
    raise own_finding(
        BadRequestError, said, f"the upgrade was not started and nothing was uploaded: {said}. "
        f"{CODE_HINTS[_NOT_CLUSTER]}", err_code=_NOT_CLUSTER, method="GET",
        path="/api/v1/info", agent=agent, hint=CODE_HINTS[_NOT_CLUSTER])


def _check_uploaded(uploaded: UpgradePackageInfo, version: str, release: str) -> None:
    """The package just uploaded must be the target's: obshell would run its pre-check anyway.

    It was stored all the same: the refusal says how to delete it.
    """
    problem = not_the_target(uploaded, version, release)
    if problem is not None:
        raise InvalidArgumentError("package", f"{problem}. {stored_said(uploaded.pkg_id)}")


def run_ob_upgrade(
    client: _Agent, version: str, release: str, *,
    packages: Sequence[Union[str, os.PathLike[str]]] = (), mode: str = "ROLLING",
    upgrade_dir: Optional[str] = None, freeze_server: bool = False, check: bool = True,
    timeout: float = 7200.0, on_progress: Optional[ProgressCallback] = None,
    progress: Optional[bool] = None, upload_timeout: Optional[float] = None,
    on_upload: Optional[UploadCallback] = None,
) -> ObUpgradeResult:
    """Upload, pre-check, upgrade OceanBase, follow to the end, confirm through ``/info``.

    ``/api/v1/info`` reports ``obVersion`` (``select ob_version()``: the version, no build
    number), so the version is what can be confirmed; a same-version rebuild is confirmed by
    its DAG's success alone. ``upload_timeout`` bounds each package's upload, as for
    :func:`run_agent_upgrade`. With packages, a cluster past the target version raises
    :class:`InvalidArgumentError` before any upload (obshell refuses it only after them); a
    SINGLE agent and a FAILED task holding the lock are refused then too, as there.
    ``on_upload`` is told of each upload, as for :func:`run_agent_upgrade`. Every package is
    checked (obshell's MD5 check, :func:`upload_packages`) before the first is sent.
    """
    UpgradeObRequest(version, release, mode, upgrade_dir, freeze_server)  # before any I/O
    paths = check_package_paths(packages)
    check_ob_packages(paths, version, release)
    timeout = check_seconds(timeout, "timeout")
    upload_seconds = check_upload_timeout(upload_timeout)
    check = check_flag(check, "check")
    check_progress(progress, on_progress, on_upload)
    if paths:  # obshell would refuse a target behind the cluster only after the uploads
        _check_target_ob(client, version)
    uploaded = _upload(client, paths, upload_seconds, on_upload, progress)
    checked = None
    if check:
        checked = client.check_ob_upgrade(version, release, upgrade_dir).result(
            timeout, on_progress=on_progress, progress=progress)
    task = client.upgrade_ob(version, release, mode=mode, upgrade_dir=upgrade_dir,
                             freeze_server=freeze_server)
    detail = task.result(timeout, on_progress=on_progress, progress=progress)
    info = client.info()
    if info.ob_version.split("-", 1)[0] != version:
        raise UpgradeNotConfirmedError(
            f"task {detail.id} succeeded but the agent reports OceanBase "
            f"{info.ob_version!r}, not {version!r}; check the cluster and client.info() again",
            task_id=detail.id, detail=detail)
    log.info("agent %s: the cluster now runs OceanBase %s", client.agent,
             printable(info.ob_version))
    return ObUpgradeResult(uploaded, checked, detail, info)
