"""The errors of a followed task: it did not end as hoped (:class:`TaskError` and its family).

They sit in the one tree drawn in :mod:`._exceptions`' docstring, under
:class:`~obshell_sdk.ObshellError`; unlike an :class:`~obshell_sdk.ApiError` they are no
agent's reply but what the SDK read from a task's DAG (its state, its operator) or how
following it went. Like the rest of the tree, they need the standard library only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ._exceptions import ObshellError

if TYPE_CHECKING:  # pragma: no cover
    from ._dag import DagDetail, TaskDetail

__all__ = ["TaskCancelledError", "TaskError", "TaskFailedError", "TaskRolledBackError",
           "TaskStateError", "TaskTimeoutError", "TaskUnreachableError",
           "UpgradeNotConfirmedError"]


class TaskError(ObshellError):
    """A followed task did not end as hoped. ``task_id`` says which; ``detail`` is the last view."""

    def __init__(self, message: str, *, task_id: str, detail: Optional[DagDetail] = None) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.detail = detail


class TaskStateError(TaskError):
    """An operator (retry, rollback, skip, cancel) does not apply in the task's state.

    Raised before anything is sent, from the last snapshot; refresh the task to re-check.
    """


class TaskTimeoutError(TaskError, TimeoutError):
    """The wait's deadline passed before the task ended. The task itself keeps running.

    ``last_error`` is the error of the last poll when polls were failing at the deadline.
    """

    last_error: Optional[BaseException] = None


class TaskUnreachableError(TaskError):
    """Polling the task failed for longer than the failure budget; ``last_error`` says why."""

    def __init__(self, message: str, *, task_id: str, detail: Optional[DagDetail] = None,
                 last_error: Optional[BaseException] = None, failures: int = 0) -> None:
        super().__init__(message, task_id=task_id, detail=detail)
        self.last_error = last_error
        self.failures = failures


class TaskFailedError(TaskError):
    """The task ended FAILED. ``failed_sub_tasks`` holds the failing steps with their logs."""

    def __init__(self, message: str, *, task_id: str, detail: Optional[DagDetail] = None,
                 failed_sub_tasks: tuple[TaskDetail, ...] = ()) -> None:
        super().__init__(message, task_id=task_id, detail=detail)
        self.failed_sub_tasks = failed_sub_tasks


class TaskCancelledError(TaskError):
    """The task was cancelled (FAILED with operator CANCEL)."""


class TaskRolledBackError(TaskError):
    """The task was rolled back (SUCCEED with operator ROLLBACK): its change did not happen."""


class UpgradeNotConfirmedError(TaskError):
    """The upgrade task succeeded but the agent does not report the new version."""

