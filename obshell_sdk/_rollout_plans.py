"""The plans a rollout runs on each target: the agent upgrade and the OceanBase upgrade."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Optional

import attrs

from ._endpoints import (
    AGENT_UPGRADE,
    AGENT_UPGRADE_CHECK,
    OB_UPGRADE,
    OB_UPGRADE_CHECK,
    UpgradeAgentRequest,
    UpgradeObRequest,
)
from ._journal import TargetOutcome
from ._models import AgentInfo
from ._rollout_steps import Ended, Plan, Step
from ._targets import (
    check_ob_packages,
    check_target_package,
    not_newer,
    not_the_target,
    ob_not_newer,
)
from ._text import printable
from ._upload import check_package_digest, package_label

__all__ = ["agent_plan", "checked", "ob_plan", "upload_steps"]


def agent_plan(version: str, release: str, package: Optional[str],
               upgrade_dir: Optional[str], check: bool,
               upload_timeout: Optional[float] = None) -> Plan:
    """Upload (when a package is given), pre-check (when ``check``), upgrade, confirm.

    The package's RPM header is read here; its digest is checked later, once for every
    target (:func:`checked`).
    """
    request = UpgradeAgentRequest(version, release, upgrade_dir)  # refuse bad input first
    steps = []
    if package is not None:
        check_target_package(package, version, release)  # its header, before any journal
        steps.append(Step("upload", "upload", path=package, upload_timeout=upload_timeout,
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

    def already(info: AgentInfo) -> Optional[str]:
        if info.version == wanted:
            return f"already runs obshell {printable(info.version)}: nothing was done"
        problem = not_newer(info.version, version, release)  # newer: obshell would refuse
        if problem:  # after the upload: refused here, before it
            raise Ended(TargetOutcome.REFUSED, f"{problem}; no upgrade was sent to it")
        return None

    steps.append(Step("confirm", "confirm", confirm=confirm))
    # What makes two runs the same rollout (the package file may be named differently).
    describe: dict[str, object] = {"kind": "agent", "version": version, "release": release,
                                   "upgrade_dir": upgrade_dir, "check": check}
    return Plan("agent", describe, tuple(steps), already)


def ob_plan(version: str, release: str, packages: Sequence[str], mode: str,
            upgrade_dir: Optional[str], freeze_server: bool, check: bool,
            upload_timeout: Optional[float] = None) -> Plan:
    """Upload the packages, pre-check (when ``check``), upgrade OceanBase, confirm the version.

    ``/info`` reports the OceanBase version without its build, so that is what is confirmed.
    Each package's RPM header is read here; its digest is checked later (:func:`checked`).
    """
    request = UpgradeObRequest(version, release, mode, upgrade_dir, freeze_server)
    check_ob_packages(packages, version, release)  # their headers, before any journal
    steps = [Step(name, "upload", path=p, upload_timeout=upload_timeout)
             for name, p in upload_steps(packages)]
    if check:
        steps.append(Step("check", "task", endpoint=OB_UPGRADE_CHECK,
                          request=UpgradeAgentRequest(version, release, upgrade_dir)))
    steps.append(Step("upgrade", "task", endpoint=OB_UPGRADE, request=request))

    def confirm(info: AgentInfo) -> Optional[str]:
        if info.ob_version.split("-", 1)[0] == version:
            return None
        return (f"the upgrade task ended (succeeded or skipped) but the agent reports "
                f"OceanBase {info.ob_version!r}, not {version!r}")

    def already(info: AgentInfo) -> Optional[str]:
        problem = ob_not_newer(info.ob_version, version)  # obshell would refuse, after the
        if problem:  # uploads: refused here, before them
            raise Ended(TargetOutcome.REFUSED, f"{problem}; nothing was sent to it")
        return None  # the same version tells nothing: a newer build is an upgrade

    steps.append(Step("confirm", "confirm", confirm=confirm))
    describe: dict[str, object] = {"kind": "ob", "version": version, "release": release,
                                   "mode": request.mode, "upgrade_dir": upgrade_dir,
                                   "freeze_server": freeze_server, "check": check}
    def there(info: AgentInfo) -> Optional[str]:  # obshell refused the upgrade as not newer
        if info.ob_version.split("-", 1)[0] != version:
            return None
        return (f"already runs OceanBase {version}: obshell refused the upgrade as not newer "
                "(OB.Upgrade.ToLowerVersion: this agent's observer runs the target's build "
                "or a later one); "
                "nothing was done")

    return Plan("ob", describe, tuple(steps), already,
                refused_there=("OB.Upgrade.ToLowerVersion", there))


def upload_steps(packages: Sequence[str]) -> list[tuple[str, str]]:
    """``(step name, path)`` per package, named by what the package is, not where it sits.

    A rerun with a corrected list then uploads a package it has not uploaded yet and skips
    one it has, whatever their order: ``upload oceanbase-ce-4.3.5.1-101000012025052815.el7.
    x86_64`` by the RPM header, or ``upload`` and the file's name when the header cannot be
    read. Each package comes once (:func:`check_package_paths` saw to it).
    """
    return [("upload " + package_label(path), path) for path in packages]


def checked(plan: Plan, uploads: Collection[str]) -> Plan:
    """``plan`` with the packages of its upload steps named in ``uploads`` checked, once each.

    Each is read once (:func:`check_package_digest`: obshell's MD5 check, and the SHA-256
    every target's upload then reuses), however many targets it goes to; a file cut short or
    damaged raises :class:`InvalidArgumentError`. A rollout checks only the uploads a target
    still lacks, after its runner lock is taken and before any target is reached.
    """
    return attrs.evolve(plan, steps=tuple(
        attrs.evolve(step, sha256=check_package_digest(step.path, sha256=True))
        if step.kind == "upload" and step.name in uploads else step for step in plan.steps))
