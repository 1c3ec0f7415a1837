"""Handlers of the OceanBase upgrade, its check, parameter backup/restore and the env check.

PROTOCOL-upgrade-family.md §2, §3 and §7, checks in the documented order. Not simulated: the
agent/observer availability (§2 step 3) and the cluster-health refusals (§2 step 7); the
upgrade route is always one step (the target itself).
"""

from __future__ import annotations

from typing import Any

from ._context import Context
from ._errors import NO_DATA, ApiError
from ._golike import GoField
from ._params import (
    MIN_VERSION,
    below_minimum,
    bind,
    check_upgrade_dir,
    require_cluster_agent,
    split_release,
    version_key,
)
from ._state import AgentState
from ._templates import REQUIRED_NAMES, ob_spec, zone_names

_CHECK_FIELDS = (
    GoField("Version", "version", "string"),
    GoField("Release", "release", "string"),
    GoField("UpgradeDir", "upgradeDir", "string"),
)
_UPGRADE_FIELDS = (
    *_CHECK_FIELDS,
    GoField("Mode", "mode", "string"),
    GoField("FreezeServer", "freeze_server", "bool"),
)
_CHECK_REQUIRED = (("Version", "UpgradeCheckParam.Version"),
                   ("Release", "UpgradeCheckParam.Release"))
_UPGRADE_REQUIRED = (("Version", "ObUpgradeParam.UpgradeCheckParam.Version"),
                     ("Release", "ObUpgradeParam.UpgradeCheckParam.Release"),
                     ("Mode", "ObUpgradeParam.Mode"))
_MODULE_MISSING = "Please check if Python module 'mysql.connector' is installed"
_PARAMETERS = (("server_permanent_offline_time", "3600s"), ("enable_rebalance", "True"),
               ("enable_rereplication", "True"))


def _check_python(a: AgentState) -> None:
    """§2 step 5 (the agents' Python and ``mysql.connector``), with the agent named."""
    if not a.python_ok:
        raise ApiError(500, "Environment.WithoutModule",
                       f"python environment check failed on agent {a.host}:{a.port}: "
                       f"{_MODULE_MISSING}", data_null=True)


def _check_target(a: AgentState, version: str, release: str) -> None:
    """``checkForAllRequiredPkgs``: release, minimum, higher than now, the packages."""
    build, dist = split_release(release)
    target = f"{version}-{build}"
    if below_minimum(target):
        raise ApiError(400, "Agent.OBVersionNotSupported",
                       f"Unsupported OB version '{target}', the minimum supported version is "
                       f"'{MIN_VERSION}'", data_null=True)
    a.sync_version()
    current = a.ob_version
    if current and version_key(target) <= version_key(current):
        raise ApiError(400, "OB.Upgrade.ToLowerVersion",
                       f"Target version {target} is not greater than current version "
                       f"{current}. Please verify if the parameters have been filled out "
                       "correctly", data_null=True)
    if a.require_packages:
        _check_packages(a, version, release, build, dist)


def _check_packages(a: AgentState, version: str, release: str, build: str, dist: str) -> None:
    names, arch = REQUIRED_NAMES[a.edition], a.architecture
    row = a.inventory.find(names[0], version, arch, release=release)
    if row is None:
        raise ApiError(500, "Common.Unexpected",
                       f"{names[0]}-{version}-{release}.{arch}.rpm: record not found",
                       data_null=True)
    if version != a.ob_version.partition("-")[0] and not row.upgrade_dep_yaml:
        raise ApiError(500, "OB.Upgrade.DepYamlMissing",
                       "Target package upgrade dependency YAML is empty", data_null=True)
    # by build number and the release's last part, matched against the stored first part
    missing = [f"{n}-{version}-{build}.{dist}.{arch}.rpm" for n in names
               if a.inventory.find(n, version, arch, build=build, dist=dist) is None]
    if missing:
        raise ApiError(400, "OB.Package.NotExist",
                       f"These packages are missing: '[{' '.join(missing)}]'", data_null=True)


def ob_upgrade(ctx: Context) -> Any:
    """``POST /api/v1/ob/upgrade``: the OB upgrade DAG (task-creating, takes the lock)."""
    a = ctx.state
    values = bind(ctx.body, "ObUpgradeParam", "param.ObUpgradeParam", _UPGRADE_FIELDS,
                  _UPGRADE_REQUIRED)
    require_cluster_agent(a.identity, f"{a.host}:{a.port}")
    mode = values["Mode"].upper()
    if mode not in ("ROLLING", "STOPSERVICE"):
        raise ApiError(400, "OB.Upgrade.Mode.NotSupported",
                       f"Upgrade mode '{mode}' is not supported", data_null=True)
    if mode == "ROLLING" and a.zones < 3:
        raise ApiError(400, "OB.Upgrade.UnableToRollingUpgrade",
                       "Rolling upgrade requires at least 3 zones (or 2 zones for shared "
                       "storage mode)", data_null=True)
    _check_python(a)
    check_upgrade_dir(values["UpgradeDir"])
    version, release = values["Version"], values["Release"]
    _check_target(a, version, release)
    spec = ob_spec(version, release, edition=a.edition, mode=mode, zones=zone_names(a.zones),
                   freeze=values["FreezeServer"], upgrade_dir=values["UpgradeDir"].strip())
    return a.dags.create_from(spec).to_json(a.host, a.port, details=False, fresh=True)


def ob_upgrade_check(ctx: Context) -> Any:
    """``POST /api/v1/ob/upgrade/check``: the 6-stage check DAG (task-creating, no lock)."""
    a = ctx.state
    values = bind(ctx.body, "UpgradeCheckParam", "param.UpgradeCheckParam", _CHECK_FIELDS,
                  _CHECK_REQUIRED)
    require_cluster_agent(a.identity, f"{a.host}:{a.port}")
    check_upgrade_dir(values["UpgradeDir"])
    version, release = values["Version"], values["Release"]
    _check_target(a, version, release)
    _check_python(a)
    spec = ob_spec(version, release, edition=a.edition,
                   upgrade_dir=values["UpgradeDir"].strip())
    return a.dags.create_from(spec).to_json(a.host, a.port, details=False, fresh=True)


def params_backup(ctx: Context) -> Any:
    """``POST /api/v1/upgrade/params/backup``: one row per server and parameter (Go names)."""
    a = ctx.state
    return [
        {"SvrIp": a.host, "SvrPort": 2882 + 10 * i, "Zone": zone, "Scope": "CLUSTER",
         "Name": name, "Value": value, "TenantId": 0, "EditLevel": "", "DefaultValue": "",
         "Section": "", "Info": "", "DataType": ""}
        for name, value in _PARAMETERS for i, zone in enumerate(zone_names(a.zones))
    ]


def params_restore(ctx: Context) -> Any:
    """``POST /api/v1/upgrade/params/restore``: never binds its body; restores nothing."""
    return NO_DATA


def env_check(ctx: Context) -> Any:
    """``POST /api/v1/upgrade/env/check``: this agent's Python (no agent prefix)."""
    if not ctx.state.python_ok:
        raise ApiError(500, "Environment.WithoutModule", _MODULE_MISSING)
    return NO_DATA
