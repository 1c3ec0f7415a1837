"""The upgrade calls of the API (obshell's and OceanBase's, their pre-checks, each in one call).

A part of the client. The four task-creating calls go through the client's ``_create_task``
(one POST, see :mod:`._creation`); the one-call upgrades are :mod:`._workflow`'s, on this
client.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Optional, Union

from ._caller import CallsBase
from ._endpoints import (
    AGENT_UPGRADE,
    AGENT_UPGRADE_CHECK,
    OB_UPGRADE,
    OB_UPGRADE_CHECK,
    UpgradeAgentRequest,
    UpgradeObRequest,
)
from ._models import ObUpgradeResult, UpgradeResult
from ._task import DagTask, ProgressCallback
from ._workflow import UploadCallback, run_agent_upgrade, run_ob_upgrade

__all__ = ["UpgradeCalls"]


class UpgradeCalls(CallsBase):
    """The agent and OceanBase upgrades and their pre-checks, step by step or in one call."""

    def upgrade_agent(
        self, version: str, release: str, upgrade_dir: Optional[str] = None
    ) -> DagTask:
        """Start upgrading obshell on every agent of the cluster (``POST /api/v1/agent/upgrade``).

        ``version`` like ``4.2.1.1``, ``release`` like ``101000062023110109.el7``; the package
        must have been uploaded to the cluster before. Returns a :class:`DagTask` built from the
        reply; follow it with ``task.result()``. Bad arguments raise
        :class:`InvalidArgumentError` before anything is sent.
        """
        return self._create_task(AGENT_UPGRADE, UpgradeAgentRequest(version, release, upgrade_dir))

    def check_agent_upgrade(
        self, version: str, release: str, upgrade_dir: Optional[str] = None
    ) -> DagTask:
        """Start the upgrade pre-check (``POST /api/v1/agent/upgrade/check``), a 5-stage DAG."""
        request = UpgradeAgentRequest(version, release, upgrade_dir)
        return self._create_task(AGENT_UPGRADE_CHECK, request)

    def run_agent_upgrade(
        self,
        version: str,
        release: str,
        *,
        package: Union[str, os.PathLike[str], None] = None,
        upgrade_dir: Optional[str] = None,
        check: bool = True,
        timeout: float = 3600.0,
        on_progress: Optional[ProgressCallback] = None,
        progress: Optional[bool] = None,
        upload_timeout: Optional[float] = None,
        on_upload: Optional[UploadCallback] = None,
    ) -> UpgradeResult:
        """Upgrade in one call: upload, pre-check, upgrade, follow, confirm the new version.

        ``package`` (an RPM path) is uploaded first when given; the pre-check DAG runs when
        ``check`` is true; the new version is confirmed through ``/api/v1/info``. Returns an
        :class:`UpgradeResult`; raises ``TaskFailedError`` and friends when a step fails, or
        ``UpgradeNotConfirmedError`` when the agent reports another version after.
        ``upload_timeout``: how long the upload may take (600 s, or the file at 1 MiB/s).
        ``on_upload`` (an :data:`UploadCallback`) is called with ``(path, None)`` just before
        the package is sent and ``(path, stored)`` once the agent has stored it (not after a
        failed upload). ``on_progress`` and ``progress`` are as for :meth:`DagTask.wait`; the
        live display ``progress`` asks for also shows the upload (the file, its size; then
        what the agent stored). With ``package``, before it is sent: a target not newer
        than the agent's version raises :class:`InvalidArgumentError`; a ``SINGLE`` agent (of
        no cluster) raises :class:`BadRequestError` (``Agent.Identify.NotSupportOperation``,
        ``status`` 0); a wrong password is refused; and a FAILED (or cancelled) task holding
        the cluster's maintenance lock raises :class:`UnderMaintenanceError` naming it, with
        ``status`` 0 (no reply refused anything: obshell would refuse the upgrade only after
        the upload and the pre-check).
        A package whose header cannot be read here, which the agent reads as another than the
        target, raises :class:`InvalidArgumentError` after it was stored: the message says
        how to delete it.
        """
        return run_agent_upgrade(
            self, version, release, package=package, upgrade_dir=upgrade_dir, check=check,
            timeout=timeout, on_progress=on_progress, progress=progress,
            upload_timeout=upload_timeout, on_upload=on_upload)

    def upgrade_ob(self, version: str, release: str, *, mode: str = "ROLLING",
                   upgrade_dir: Optional[str] = None, freeze_server: bool = False) -> DagTask:
        """Start upgrading OceanBase (``POST /api/v1/ob/upgrade``): obshell first, then OB.

        ``mode`` ``ROLLING`` (zone by zone; 3 zones, 2 on shared storage) or ``STOPSERVICE``;
        ``freeze_server`` adds a minor freeze before each server stops. Every required package
        (``oceanbase-ce`` and ``oceanbase-ce-libs`` for the community edition) must have been
        uploaded for every architecture; bad arguments raise before anything is sent.
        """
        return self._create_task(OB_UPGRADE, UpgradeObRequest(
            version, release, mode, upgrade_dir, freeze_server))

    def check_ob_upgrade(
        self, version: str, release: str, upgrade_dir: Optional[str] = None
    ) -> DagTask:
        """Start the OceanBase upgrade pre-check (``POST /api/v1/ob/upgrade/check``), 6 stages."""
        request = UpgradeAgentRequest(version, release, upgrade_dir)
        return self._create_task(OB_UPGRADE_CHECK, request)

    def run_ob_upgrade(
        self, version: str, release: str, *,
        packages: Sequence[Union[str, os.PathLike[str]]] = (), mode: str = "ROLLING",
        upgrade_dir: Optional[str] = None, freeze_server: bool = False, check: bool = True,
        timeout: float = 7200.0, on_progress: Optional[ProgressCallback] = None,
        progress: Optional[bool] = None, upload_timeout: Optional[float] = None,
        on_upload: Optional[UploadCallback] = None,
    ) -> ObUpgradeResult:
        """Upgrade OceanBase in one call: upload ``packages``, pre-check, upgrade, follow, confirm.

        The new version is confirmed through ``/api/v1/info`` (its ``obVersion`` carries no
        build number). Raises ``TaskFailedError`` and friends, or ``UpgradeNotConfirmedError``.
        ``upload_timeout`` bounds each package's upload, and ``on_upload`` is told of each
        package, as for :meth:`run_agent_upgrade` (``progress`` shows the uploads there too).
        With ``packages``, before the first is sent: a cluster past the target version raises
        :class:`InvalidArgumentError`, a ``SINGLE`` agent raises :class:`BadRequestError`, a
        wrong password is refused, and a FAILED (or cancelled) task holding the lock raises
        :class:`UnderMaintenanceError`, as there.
        """
        return run_ob_upgrade(
            self, version, release, packages=packages, mode=mode, upgrade_dir=upgrade_dir,
            freeze_server=freeze_server, check=check, timeout=timeout, on_progress=on_progress,
            progress=progress, upload_timeout=upload_timeout, on_upload=on_upload)
