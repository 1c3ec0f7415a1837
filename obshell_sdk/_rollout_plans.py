"""The plans a rollout runs on each target: the agent upgrade and the OceanBase upgrade."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from ._endpoints import (
    AGENT_UPGRADE,
    AGENT_UPGRADE_CHECK,
    OB_UPGRADE,
    OB_UPGRADE_CHECK,
    UpgradeAgentRequest,
    UpgradeObRequest,
)
from ._models import AgentInfo
from ._rollout_steps import Plan, Step
from ._workflow import check_target_package, not_the_target

__all__ = ["agent_plan", "ob_plan"]


def agent_plan(version: str, release: str, package: Optional[str],
               upgrade_dir: Optional[str], check: bool) -> Plan:
    """Upload (when a package is given), pre-check (when ``check``), upgrade, confirm."""
    request = UpgradeAgentRequest(version, release, upgrade_dir)  # refuse bad input first
    steps = []
    if package is not None:
        check_target_package(package, version, release)  # its header, before any journal
        steps.append(Step("upload", "upload", path=package,
                          confirm=lambda uploaded: not_the_target(uploaded, version, release)))
    if check:
        steps.append(Step("check", "task", endpoint=AGENT_UPGRADE_CHECK, request=request))
    steps.append(Step("upgrade", "task", endpoint=AGENT_UPGRADE, request=request))
    wanted = f"{version}-{release.split('.', 1)[0]}"

    def confirm(info: AgentInfo) -> Optional[str]:
        if info.version == wanted:
            return None
        return f"the upgrade task ended (succeeded or skipped) but the agent reports obshell " \
               f"{info.version!r}, not {wanted!r}"

    steps.append(Step("confirm", "confirm", confirm=confirm))
    # What makes two runs the same rollout (the package file may be named differently).
    describe: dict[str, object] = {"kind": "agent", "version": version, "release": release,
                                   "upgrade_dir": upgrade_dir, "check": check}
    return Plan("agent", describe, tuple(steps))


def ob_plan(version: str, release: str, packages: Sequence[str], mode: str,
            upgrade_dir: Optional[str], freeze_server: bool, check: bool) -> Plan:
    """Upload the packages, pre-check (when ``check``), upgrade OceanBase, confirm the version.

    ``/info`` reports the OceanBase version without its build, so that is what is confirmed.
    """
    request = UpgradeObRequest(version, release, mode, upgrade_dir, freeze_server)
    steps = [Step(f"upload {i + 1}", "upload", path=p) for i, p in enumerate(packages)]
    if check:
        steps.append(Step("check", "task", endpoint=OB_UPGRADE_CHECK,
                          request=UpgradeAgentRequest(version, release, upgrade_dir)))
    steps.append(Step("upgrade", "task", endpoint=OB_UPGRADE, request=request))

    def confirm(info: AgentInfo) -> Optional[str]:
        if info.ob_version.split("-", 1)[0] == version:
            return None
        return (f"the upgrade task ended (succeeded or skipped) but the agent reports "
                f"OceanBase {info.ob_version!r}, not {version!r}")

    steps.append(Step("confirm", "confirm", confirm=confirm))
    describe: dict[str, object] = {"kind": "ob", "version": version, "release": release,
                                   "mode": request.mode, "upgrade_dir": upgrade_dir,
                                   "freeze_server": freeze_server, "check": check}
    return Plan("ob", describe, tuple(steps))
