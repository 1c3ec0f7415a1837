"""A task's operators (retry, rollback, skip, cancel), and what a failed one leaves known.

Each is checked against the task as last read, before it is sent (obshell would refuse it:
:class:`TaskStateError` says so first, nothing sent). Once its POST may have reached the
agent, that reading no longer says where the task stands: the agent may have applied the
operator though its reply was lost, timed out or never awaited (Ctrl-C), and the task may
have run on. Only a proof that nothing was applied keeps it (:func:`nothing_applied`);
otherwise the task is read again before its ending is believed. Nothing here sends an
operator again: that could apply it twice.
"""

from __future__ import annotations

from typing import Callable

from ._dag import DagDetail, DagState, Operator
from ._errcodes import OperatorRefusedError
from ._exceptions import (
    ApiError,
    ConnectError,
    DecodeError,
    InvalidArgumentError,
    ObshellError,
    TransportError,
    WeakKeyError,
)
from ._task_errors import TaskStateError
from ._transport_errors import reply_lost

__all__ = ["check_applies", "nothing_applied", "operator_path", "say_maybe_applied"]


def _is_failed(detail: DagDetail) -> bool:
    return detail.state is DagState.FAILED


def _can_cancel(detail: DagDetail) -> bool:
    return not detail.is_finished


#: Each operator: the ``DagTask`` method that sends it, the tasks it applies to, in words too.
_RULES: dict[Operator, tuple[str, Callable[[DagDetail], bool], str]] = {
    Operator.RETRY: ("retry", _is_failed, "a FAILED task can be retried"),
    Operator.ROLLBACK: ("rollback", _is_failed, "a FAILED task can be rolled back"),
    Operator.PASS: ("skip", _is_failed, "a FAILED task's step can be skipped"),
    Operator.CANCEL: ("cancel", _can_cancel, "a task not yet ended can be cancelled"),
}


def operator_path(task_id: str) -> str:
    """Where an operator of task ``task_id`` is POSTed (``ObshellClient.operate_dag`` sends it)."""
    return f"/api/v1/task/dag/{task_id}"


def check_applies(task_id: str, operator: Operator, detail: DagDetail) -> None:
    """Refuse ``operator`` for task ``task_id`` as ``detail`` shows it (nothing is sent)."""
    _, allowed, rule = _RULES[operator]
    if not allowed(detail):
        raise TaskStateError(
            f"task {task_id} is {detail.state} (operator {detail.operator}); only {rule}. "
            "Refresh it (refresh(force=True)) if it may have changed",
            task_id=task_id, detail=detail,
        )


def nothing_applied(exc: BaseException, task_id: str) -> bool:
    """Whether ``exc``, raised by an operator's POST, proves that the agent applied nothing.

    Task ``task_id`` then stands as it was read before. So it does when the POST was never
    sent: the agent not reached (:class:`ConnectError`), the SDK refusing to sign it, another
    request of the call failing (the auth flow's). So it does when the agent refused it with
    a 4xx of its own (obshell's operator handler answers an error only for what it did not
    do), or a proxy with a 3xx or 4xx page (no handler ran), but for an
    :class:`OperatorRefusedError` for the task's state: that state changed since it was read.
    Anything else (a lost reply, a 5xx, Ctrl-C) may come after the operator was applied.
    """
    if isinstance(exc, OperatorRefusedError):
        return exc.by_step
    if isinstance(exc, (ConnectError, InvalidArgumentError, WeakKeyError)):
        return True
    if not isinstance(exc, (TransportError, DecodeError, ApiError)):
        return False
    if exc.path != operator_path(task_id):  # the POST was not sent
        return True
    if isinstance(exc, DecodeError):
        return exc.refusal_page
    return isinstance(exc, ApiError) and 400 <= exc.status < 500


def say_maybe_applied(exc: BaseException, task_id: str, operator: Operator) -> None:
    """When ``exc`` is the operator's POST's lost reply or a 5xx, end its message with what to do.

    Either may come after the agent applied it (:func:`nothing_applied`): a reply lost, timed
    out or a gateway's 5xx page in its place, or obshell's own 5xx (``Common.Unexpected``).
    Both are said alike: the agent may have applied it, it was not sent again, and where to
    look. Another request of the call that failed (the auth flow's) sent no operator.
    """
    if not isinstance(exc, ObshellError) or getattr(exc, "path", "") != operator_path(task_id):
        return
    if reply_lost(exc) or (isinstance(exc, ApiError) and exc.status >= 500):
        exc._prefix_message("", f". The agent may have applied {_RULES[operator][0]}; it "
                                "was not sent again (that could apply it twice). See where the "
                                f"task stands before trying again: client.task('{task_id}')"
                                f".refresh(), or follow it: client.task('{task_id}').wait()")
