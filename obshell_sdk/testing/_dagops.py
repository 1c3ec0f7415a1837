"""State changes of one DAG: ending nodes, finishing, failing, and the DAG operators.

Pure functions of a :class:`~._dagmodel.FakeDag` (the caller holds the store's lock). The
operator rules follow obshell's ``service/task/dag.go``: the DAG state first, then the node
capabilities (``getNodeCanRetry``, ``getNodesCanRollback``, ``getNodesCanPass``,
``getNodeCanCancel``).
"""

from __future__ import annotations

import time
from typing import Optional

from ._dagmodel import OPERATORS, FakeDag, FakeNode
from ._errors import ApiError
from ._templates import capabilities

_NOT_FAILED = {
    "RETRY": ("RetryNotFailedDag", "Failed to set DAG retry: DAG state is not failed"),
    "ROLLBACK": ("RollbackNotFailedDag", "Failed to set DAG rollback: DAG state is not failed"),
    "PASS": ("PassNotFailedDag", "Failed to pass DAG: DAG is not failed"),
}
_NOT_ALLOWED = {
    "RETRY": ("RetryNotAllowed", "Failed to set DAG retry: node {} cannot retry"),
    "ROLLBACK": ("RollbackNotAllowed", "Failed to set DAG rollback: node {} cannot rollback"),
    "PASS": ("PassNotAllowed", "Failed to pass DAG: node {} cannot pass"),
    "CANCEL": ("CancelNotAllowed", "Failed to cancel DAG: node {} cannot cancel"),
}


def current_node(dag: FakeDag) -> Optional[FakeNode]:
    """The node being run (``None`` before the first and after the last)."""
    if 1 <= dag.position <= dag.max_stage:
        return dag.nodes[dag.position - 1]
    return None


def end_node(node: FakeNode, state: str, now: float, operator: Optional[str] = None) -> None:
    """End ``node`` (and its sub-task) in ``state``, optionally with a new operator."""
    node.state = node.sub_task.state = state
    node.end = node.sub_task.end = now
    if operator is not None:
        node.operator = node.sub_task.operator = operator


def finish(dag: FakeDag, state: str, now: float, stage: Optional[int] = None) -> None:
    """End the DAG in ``state`` (``stage`` overrides the reported stage)."""
    dag.state = state
    dag.end = now
    dag.finished_at = time.time()
    if state == "SUCCEED" and stage is None:
        dag.position = dag.max_stage
    dag.stage_override = stage


def fail_node(dag: FakeDag, node: FakeNode, message: str, now: float) -> None:
    """Fail ``node`` with obshell's engine log line for a plain error; the DAG ends FAILED."""
    end_node(node, "FAILED", now)
    if node.sub_task.logs is None:
        node.sub_task.logs = []
    node.sub_task.logs.append(f"ERROR: [Common.Unexpected]: Unexpected error: {message}")
    finish(dag, "FAILED", now)


def _not_allowed(op: str, node: FakeNode) -> ApiError:
    code, text = _NOT_ALLOWED[op]
    return ApiError(400, f"Task.Dag.Operator.{code}", text.format(node.name))


def check_operator(dag: FakeDag, op: str) -> None:
    """Refuse ``op`` (upper-cased) as obshell would: state first, then node capabilities.

    Raises:
        ApiError: 400 ``Task.Dag.Operator.*``.

    """
    if op not in OPERATORS:
        raise ApiError(400, "Task.Dag.Operator.NotSupport", f"Operator {op} is not supported")
    if op == "CANCEL":  # getNodeCanCancel: dag.IsFinished() is FAILED or SUCCEED, by state
        if dag.state in ("FAILED", "SUCCEED"):
            raise ApiError(400, "Task.Dag.Operator.CancelFinishedDag",
                           "Failed to cancel DAG: DAG is finished")
    elif dag.state != "FAILED":
        code, text = _NOT_FAILED[op]
        raise ApiError(400, f"Task.Dag.Operator.{code}", text)
    if op == "RETRY":
        node = dag.nodes[dag.stage - 1]
        if "RETRY" not in capabilities(node.name):
            raise _not_allowed(op, node)
        return
    if op == "PASS":  # getNodesCanPass (since 67128bc): every node not SUCCEED must allow it
        for node in dag.nodes:
            if node.state != "SUCCEED" and "PASS" not in capabilities(node.name):
                raise _not_allowed(op, node)
        return
    for node in dag.nodes:
        if op == "ROLLBACK" and node.state == "PENDING" and node.operator != "ROLLBACK":
            break
        if op not in capabilities(node.name):
            raise _not_allowed(op, node)
        if node.state == "FAILED" and op != "CANCEL":
            break
        if op == "CANCEL" and node.state not in ("SUCCEED", "FAILED"):
            break


def apply_operator(dag: FakeDag, op: str, now: float) -> None:
    """Apply an operator that :func:`check_operator` accepted.

    RETRY, ROLLBACK and CANCEL make the DAG READY with zero start and end times
    (``updateDagOperator``); it gets a new start time when the scheduler runs it again.
    """
    if op != "PASS":
        dag.start = dag.end = None
    if op == "CANCEL":
        dag.state, dag.operator = "READY", "CANCEL"
        dag.finished_at = None
    elif op == "RETRY":
        node = current_node(dag)
        dag.state, dag.operator = "READY", "RUN"
        dag.stage_override, dag.finished_at = None, None
        if node is not None:
            node.state = node.sub_task.state = "READY"
            node.operator = node.sub_task.operator = "RETRY"
            dag.position -= 1
    elif op == "ROLLBACK":
        dag.state, dag.operator = "READY", "ROLLBACK"
        dag.finished_at = None
    else:  # PASS (txForPassDag): the failed node and every one after it end SUCCEED + PASS
        failed = [i for i, node in enumerate(dag.nodes) if node.state == "FAILED"]
        for node in dag.nodes[failed[-1] if failed else len(dag.nodes):]:
            end_node(node, "SUCCEED", now, "PASS")
        dag.operator = "PASS"
        finish(dag, "SUCCEED", now, stage=dag.stage)
    dag.next_step_at = now
