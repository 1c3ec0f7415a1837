"""DAG templates of the fake agent: names, node lists and node capabilities, per endpoint.

The agent upgrade and its check (PROTOCOL.md §7.3) and the OceanBase upgrade and its check
(PROTOCOL-upgrade-family.md §2.1, §3), flattened as obshell's ``AddTemplate`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

DOWNLOAD_NODE = "Download all required packages"
_PACKAGE_NODES = (
    "Create upgrade dir",
    DOWNLOAD_NODE,
    "Check all required packages",
    "Unpack all required packages",
)
_OBSHELL_NODES = (
    "Backup for upgrade",
    "Install new obshell",
    "Restart obshell",
    "Upgrade post table maintain",
)
REMOVE_NODE = "Remove upgrade check task dir"
UPGRADE_NODES = (*_PACKAGE_NODES, *_OBSHELL_NODES, REMOVE_NODE)
CHECK_NODES = (*_PACKAGE_NODES, REMOVE_NODE)
PYTHON_NODE = "Check the python environment"
OB_CHECK_NODES = (PYTHON_NODE, *_PACKAGE_NODES, REMOVE_NODE)

#: Package names by edition: the ones an upload may carry, and the ones an OB upgrade needs.
SUPPORTED_NAMES = {
    "community": ("obshell", "oceanbase-ce", "oceanbase-ce-libs"),
    "business": ("obshell", "oceanbase"),
    "standalone": ("obshell", "oceanbase-standalone"),
}
REQUIRED_NAMES = {
    "community": ("oceanbase-ce", "oceanbase-ce-libs"),
    "business": ("oceanbase",),
    "standalone": ("oceanbase-standalone",),
}
EDITIONS = tuple(SUPPORTED_NAMES)

_ALL = frozenset({"RETRY", "ROLLBACK", "PASS", "CANCEL"})
_RETRY = frozenset({"RETRY"})
_CAPABILITIES = {
    # RestartAgentTask, UpgradePostTableMaintainTask: retry, continue and cancel only
    "Restart obshell": frozenset({"RETRY", "CANCEL"}),
    "Upgrade post table maintain": frozenset({"RETRY", "CANCEL"}),
    "Backup parameters": frozenset({"RETRY", "CANCEL"}),
    "Restore parameters": _RETRY,
    "Execute upgrade checker script": _RETRY,
    "Execute upgrade pre script": _RETRY,
    "Execute upgrade health checker script": _RETRY,
    "Execute upgrade zone health checker script": _RETRY,
    "Execute upgrade post script": _RETRY,
    "Reinstall and restart observer": _RETRY,
    REMOVE_NODE: frozenset({"RETRY", "PASS", "CANCEL"}),
}


def capabilities(node_name: str) -> frozenset[str]:
    """The DAG operators a node allows (§2.1); nodes not listed there allow all four."""
    if node_name.startswith(("Stop ", "Start ")):
        return _RETRY
    return _CAPABILITIES.get(node_name, _ALL)


def zone_names(zones: int) -> list[str]:
    """``DBA_OB_ZONES`` of the fake cluster: ``zone1`` .. ``zoneN``."""
    return [f"zone{i}" for i in range(1, zones + 1)]


def ob_upgrade_nodes(edition: str, mode: str, zones: Sequence[str], *, freeze: bool,
                     steps: int = 1) -> tuple[str, ...]:
    """The flattened node list of an OB upgrade DAG (``mode``: ROLLING or STOPSERVICE)."""
    nodes = [PYTHON_NODE, *_PACKAGE_NODES]
    if edition != "business":
        nodes += _OBSHELL_NODES
    freeze_node = ["Minor freeze before stop server"] if freeze else []
    for _ in range(steps):
        nodes += ["Backup parameters", "Execute upgrade checker script"]
        if mode == "STOPSERVICE":
            nodes += [*freeze_node, "Execute upgrade pre script",
                      "Execute upgrade health checker script", "Reinstall and restart observer",
                      "Execute upgrade health checker script"]
        else:
            nodes.append("Execute upgrade pre script")
            for zone in zones:
                nodes += ["Execute upgrade health checker script", f"Stop {zone}", *freeze_node,
                          "Reinstall and restart observer",
                          "Execute upgrade zone health checker script", f"Start {zone}"]
        nodes += ["Execute upgrade post script", "Restore parameters"]
    nodes.append(REMOVE_NODE)
    return tuple(nodes)


@dataclass(frozen=True)
class DagSpec:
    """What a task-creating endpoint asks the DAG store to create.

    ``kind``: ``agent-upgrade``, ``agent-check``, ``ob-upgrade`` or ``ob-check``; ``lock``: the
    DAG takes the cluster maintenance lock (``maintenance_type`` 2, else 1); ``version`` and
    ``release`` as sent; ``required_packages``: the names its download node looks up.
    """

    name: str
    nodes: tuple[str, ...]
    kind: str
    lock: bool
    version: str
    release: str
    upgrade_dir: str = ""
    required_packages: tuple[str, ...] = ("obshell",)


def agent_spec(version: str, release: str, *, check: bool, upgrade_dir: str = "") -> DagSpec:
    """The agent upgrade (or check) DAG for ``version``-``release``."""
    target = f"{version}-{release}"
    if check:
        return DagSpec(f"Upgrade check obshell {target}", CHECK_NODES, "agent-check", False,
                       version, release, upgrade_dir)
    return DagSpec(f"Upgrade obshell {target}", UPGRADE_NODES, "agent-upgrade", True,
                   version, release, upgrade_dir)


def ob_spec(version: str, release: str, *, edition: str, mode: Optional[str] = None,
            zones: Sequence[str] = (), freeze: bool = False, upgrade_dir: str = "") -> DagSpec:
    """The OB upgrade DAG (``mode`` given) or the OB upgrade-check DAG (``mode`` None)."""
    target = f"{version}-{release}"
    required = REQUIRED_NAMES[edition]
    if mode is None:
        return DagSpec(f"Upgrade check OB {target}", OB_CHECK_NODES, "ob-check", False,
                       version, release, upgrade_dir, required)
    label = "rolling" if mode == "ROLLING" else "stop service"
    return DagSpec(f"OB {label} upgrade {target}",
                   ob_upgrade_nodes(edition, mode, zones, freeze=freeze), "ob-upgrade", True,
                   version, release, upgrade_dir, required)
