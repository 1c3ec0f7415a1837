"""The whole agent upgrade in one call: upload, check, upgrade, follow, confirm."""

from __future__ import annotations

import logging
import os
from typing import Optional, Protocol, Union

from ._endpoints import UpgradeAgentRequest
from ._exceptions import UpgradeNotConfirmedError
from ._models import AgentInfo, UpgradePackageInfo, UpgradeResult
from ._task import DagTask, ProgressCallback
from ._upload import check_package_path
from ._validate import check_seconds

__all__ = ["run_agent_upgrade"]

log = logging.getLogger("obshell_sdk")


class _Agent(Protocol):
    """The calls the workflow makes (``ObshellClient`` has them)."""

    agent: str

    def upload_package(self, path: Union[str, os.PathLike[str]]) -> UpgradePackageInfo: ...

    def check_agent_upgrade(
        self, version: str, release: str, upgrade_dir: Optional[str] = None
    ) -> DagTask: ...

    def upgrade_agent(
        self, version: str, release: str, upgrade_dir: Optional[str] = None
    ) -> DagTask: ...

    def info(self) -> AgentInfo: ...


def run_agent_upgrade(
    client: _Agent,
    version: str,
    release: str,
    *,
    package: Union[str, os.PathLike[str], None] = None,
    upgrade_dir: Optional[str] = None,
    check: bool = True,
    timeout: float = 3600.0,
    on_progress: Optional[ProgressCallback] = None,
    progress: Optional[bool] = None,
) -> UpgradeResult:
    """Upload, pre-check, upgrade, follow to the end, confirm the version through ``/info``.

    ``package`` is uploaded when given, the pre-check runs when ``check`` is true.
    Everything the caller gave is checked before the first request. Raises what the steps
    raise (``TaskFailedError`` for a failed check or upgrade, ...), or
    :class:`UpgradeNotConfirmedError` when the agent still reports another version.
    """
    UpgradeAgentRequest(version, release, upgrade_dir)  # refuse bad input before any I/O
    path = None if package is None else check_package_path(package)
    timeout = check_seconds(timeout, "timeout")
    uploaded = None if path is None else client.upload_package(path)
    checked = None
    if check:
        checked = client.check_agent_upgrade(version, release, upgrade_dir).result(
            timeout, on_progress=on_progress, progress=progress
        )
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
    log.info("agent %s now runs obshell %s", client.agent, info.version)
    return UpgradeResult(uploaded, checked, detail, info)
