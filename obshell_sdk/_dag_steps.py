"""Which operators obshell takes on a FAILED DAG, read from the names of its steps.

obshell asks each step (node) of a DAG whether it can be retried, rolled back, passed
(skipped) or cancelled, and refuses an operator that a step in the way does not allow (a
400, PROTOCOL §2, raised as ``OperatorRefusedError``: :mod:`._errcodes`). A DAG's JSON
does not carry those capabilities: they belong to the step's kind (the agent upgrade's
steps, PROTOCOL §7.3; the OceanBase upgrade's, PROTOCOL-upgrade-family §2.1), known here by
name, as obshell 61ee147 sets them (the ``SetCan...`` calls of each step's constructor in
``ob/agent/executor/ob/upgrade_*.go``, ``minor_freeze.go``, ``upragde_env_check.go``). A step
of another name makes the answer unknown (None), never a guess.
"""

from __future__ import annotations

import re
from typing import Optional

from ._dag import DagDetail, DagState, NodeDetail, Operator

__all__ = ["failed_task_operators"]

_RETRY, _ROLLBACK, _PASS, _CANCEL = (Operator.RETRY, Operator.ROLLBACK, Operator.PASS,
                                     Operator.CANCEL)
_ALL = frozenset({_RETRY, _ROLLBACK, _PASS, _CANCEL})
_RETRY_ONLY = frozenset({_RETRY})
_STEPS: dict[str, frozenset[Operator]] = {
    **{name: _ALL for name in (
        "Check the python environment", "Create upgrade dir", "Download all required packages",
        "Check all required packages", "Unpack all required packages", "Backup for upgrade",
        "Install new obshell", "Minor freeze before stop server")},
    "Restart obshell": frozenset({_RETRY, _CANCEL}),
    "Upgrade post table maintain": frozenset({_RETRY, _CANCEL}),
    "Backup parameters": frozenset({_RETRY, _CANCEL}),
    **{name: _RETRY_ONLY for name in (
        "Restore parameters", "Execute upgrade checker script", "Execute upgrade pre script",
        "Execute upgrade health checker script", "Execute upgrade zone health checker script",
        "Execute upgrade post script", "Reinstall and restart observer")},
    "Remove upgrade check task dir": frozenset({_RETRY, _PASS, _CANCEL}),
}
_ZONE_STEP = re.compile(r"(?:Stop|Start) \S+\Z")  # a rolling upgrade's zone: retry only


def _allows(node: NodeDetail) -> Optional[frozenset[Operator]]:
    if _ZONE_STEP.match(node.name):
        return _RETRY_ONLY
    return _STEPS.get(node.name)


def failed_task_operators(detail: DagDetail) -> Optional[tuple[Operator, ...]]:
    """The operators obshell takes on ``detail``, a FAILED DAG: RETRY, ROLLBACK, PASS in order.

    As obshell decides (``getNodeCanRetry``, ``getNodesCanRollback``, ``getNodesCanPass``):
    retry, if the failed step allows it; roll back, if every step from the first to the
    failed one does; pass, if every step not succeeded does. None when the DAG has not
    failed, came without its steps, or has a step this module does not know.
    """
    nodes = detail.nodes or ()
    allows = [_allows(node) for node in nodes]
    if detail.state is not DagState.FAILED or not nodes or not 1 <= detail.stage <= len(nodes) \
            or any(a is None for a in allows):
        return None
    known = [a for a in allows if a is not None]
    verdicts = {
        _RETRY: _RETRY in known[detail.stage - 1],
        _ROLLBACK: all(_ROLLBACK in a for a in _to_undo(nodes, known)),
        _PASS: all(_PASS in a for node, a in zip(nodes, known)
                   if node.state is not DagState.SUCCEED),
    }
    return tuple(op for op, allowed in verdicts.items() if allowed)


def _to_undo(nodes: tuple[NodeDetail, ...],
             allows: list[frozenset[Operator]]) -> list[frozenset[Operator]]:
    """What the steps a rollback would undo allow, as obshell walks them.

    From the first step up to the failed one, or to the first never run (unless a rollback
    reached it already).
    """
    steps = []
    for node, allowed in zip(nodes, allows):
        if node.state is DagState.PENDING and node.operator is not Operator.ROLLBACK:
            break
        steps.append(allowed)
        if node.state is DagState.FAILED:
            break
    return steps
