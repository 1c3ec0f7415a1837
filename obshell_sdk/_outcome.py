"""What a finished DAG means for its caller: the DAG itself, or the :class:`TaskError` it is.

``DagTask.result()`` judges the ending its wait saw here: a DAG that did its work is
returned (and one skipped with PASS, with a warning: its failed step and every later one
were marked passed, unrun); one that failed, was cancelled or rolled back raises the error
that says so.
"""

from __future__ import annotations

import logging

from ._dag import DagDetail, DagOutcome
from ._render import cancelled_message, failure_message, rolled_back_message
from ._task_errors import TaskCancelledError, TaskFailedError, TaskRolledBackError

__all__ = ["judged"]

log = logging.getLogger("obshell_sdk")


def judged(task_id: str, detail: DagDetail, agent: str) -> DagDetail:
    """``detail``, a finished DAG of ``agent``, if it did its work; else its error."""
    outcome = detail.outcome
    label = f"task {task_id} {detail.name!r}"
    if outcome is DagOutcome.SUCCEEDED:
        return detail
    if outcome is DagOutcome.PASSED:
        log.warning("%s on %s was skipped (PASS): its failed step and every later one were "
                    "marked passed, never run", label, agent)
        return detail
    if outcome is DagOutcome.ROLLED_BACK:
        raise TaskRolledBackError(rolled_back_message(label), task_id=task_id, detail=detail)
    if outcome is DagOutcome.CANCELLED:  # FAILED + CANCEL: an upgrade's lock is still held
        raise TaskCancelledError(cancelled_message(label, detail), task_id=task_id,
                                 detail=detail)
    raise TaskFailedError(failure_message(label, detail), task_id=task_id, detail=detail,
                          failed_sub_tasks=detail.failed_sub_tasks())
