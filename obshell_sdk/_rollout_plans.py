"""The plans a rollout runs on each target: the agent upgrade (and the OceanBase upgrade)."""

from __future__ import annotations

from typing import Optional

from ._endpoints import AGENT_UPGRADE, AGENT_UPGRADE_CHECK, UpgradeAgentRequest
from ._models import AgentInfo
from ._rollout_steps import Plan, Step

__all__ = ["agent_plan"]


def agent_plan(version: str, release: str, package: Optional[str],
               upgrade_dir: Optional[str], check: bool) -> Plan:
    """Upload (when a package is given), pre-check (when ``check``), upgrade, confirm."""
    request = UpgradeAgentRequest(version, release, upgrade_dir)  # refuse bad input first
    steps = []
    if package is not None:
        steps.append(Step("upload", "upload", path=package))
    if check:
        steps.append(Step(
            "check", "task", path=AGENT_UPGRADE_CHECK.path,
            dag_name=AGENT_UPGRADE_CHECK.dag_name(request),
            create=lambda c: c.check_agent_upgrade(version, release, upgrade_dir)))
    steps.append(Step(
        "upgrade", "task", path=AGENT_UPGRADE.path, dag_name=AGENT_UPGRADE.dag_name(request),
        create=lambda c: c.upgrade_agent(version, release, upgrade_dir)))
    wanted = f"{version}-{release.split('.', 1)[0]}"

    def confirm(info: AgentInfo) -> Optional[str]:
        if info.version == wanted:
            return None
        return f"the upgrade succeeded but the agent reports obshell {info.version!r}, " \
               f"not {wanted!r}"

    steps.append(Step("confirm", "confirm", confirm=confirm))
    # What makes two runs the same rollout (the package file may be named differently).
    describe: dict[str, object] = {"kind": "agent", "version": version, "release": release,
                                   "upgrade_dir": upgrade_dir, "check": check}
    return Plan("agent", describe, tuple(steps))
