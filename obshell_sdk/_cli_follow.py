"""A task at the command line: one a command just created, or one it follows to its end.

Shared by the commands that start tasks (``upgrade``, ``upgrade-ob``) and ``task``: a new
task is announced on stderr the moment it exists (its id, how to follow it again), then
written to stdout as it stands or followed; a followed task's last DAG goes to stdout,
a failed one's too before its error is said.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Optional

from ._cli_errors import EXIT_OK, EXIT_OUTCOME_UNKNOWN
from ._cli_next import next_line
from ._cli_output import Output, Progress
from ._dag import DagDetail, DagOutcome
from ._endpoints import holds_lock
from ._exceptions import DecodeError, ObshellError
from ._task import DagTask
from ._task_errors import TaskCancelledError, TaskError, TaskRolledBackError

__all__ = ["ending_shown", "follow", "show_created"]


def show_created(task: DagTask, out: Output, progress: Progress, *, wait: bool,
                 timeout: float) -> int:
    """A task the command created: announced, then written as it stands, or followed (``wait``).

    A task whose create reply named only its id is read once first: one named otherwise than
    the call names its task is another, refused (:class:`DecodeError`, as every reply about
    it that is not obshell's). Exit 8 when it could not be read: its id is written, and how
    to follow it.
    """
    created = task.snapshot if task.snapshot is not None else _read_back(task)
    if created is None:
        progress.current = task.id
        out.note(f"the agent named task {task.id} as the one it created, but neither its reply "
                 f"nor the task could be read; follow it with: obshell-sdk task wait {task.id} "
                 "--exists")
        out.task_id(task.id)
        return EXIT_OUTCOME_UNKNOWN
    progress.announce(created, followed=wait)
    if not wait:
        out.dag(created)
        return EXIT_OK
    return follow(task, timeout, out, progress)


def _read_back(task: DagTask) -> Optional[DagDetail]:
    """Read a task its create reply named by id only; None when it could not be read."""
    try:
        return task.refresh()
    except DecodeError:  # another task under that id (its name), or a reply not obshell's
        raise
    except ObshellError:
        return None


#: How a task ends when the operator a ``task`` action sent did what it asked for.
_ASKED = {"rollback": DagOutcome.ROLLED_BACK, "cancel": DagOutcome.CANCELLED}


def follow(task: DagTask, timeout: float, out: Output, progress: Progress,
           asked: str = "") -> int:
    """Follow ``task`` to its end (at most ``timeout`` seconds); its last DAG to stdout.

    ``asked`` is the ``task`` action whose operator was just sent: a task rolled back after
    ``rollback``, or cancelled after ``cancel``, ended as asked (exit 0, a note says so);
    any other ending that is not success is the error it is.
    """
    try:
        with ending_shown(out, progress):
            detail = task.result(timeout, on_progress=progress)
    except (TaskRolledBackError, TaskCancelledError) as exc:
        if exc.detail is None or exc.detail.outcome is not _ASKED.get(asked):
            raise
        out.note(_as_asked(exc.task_id, exc.detail))
        return EXIT_OK
    out.dag(detail)
    return EXIT_OK


def _as_asked(task_id: str, detail: DagDetail) -> str:
    """A task rolled back or cancelled, as the command asked: what that leaves."""
    locks = holds_lock(detail)  # the upgrades; their pre-checks take no lock
    if detail.outcome is DagOutcome.ROLLED_BACK:
        return (f"task {task_id} was rolled back, as asked: what it was to do did not happen"
                + ("; the cluster's lock is free" if locks else ""))
    if not locks:
        return f"task {task_id} was cancelled, as asked"
    return (f"task {task_id} was cancelled, as asked; it holds the cluster's lock, as a failed "
            "task does, until it is retried, rolled back or skipped"
            + next_line(task_id, detail))


@contextlib.contextmanager
def ending_shown(out: Output, progress: Progress) -> Iterator[None]:
    """Follow a task; a task error's DAG (failed, or the last seen) goes to stdout too."""
    try:
        yield
    except TaskError as exc:
        progress.close()
        if exc.detail is not None:
            out.dag(exc.detail)
        raise
    progress.close()
