"""DagTask: follow an obshell DAG (an asynchronous task) to its end.

One polling loop (:meth:`DagTask._snapshots`) yields each snapshot it fetches; ``wait()``,
``result()`` and ``snapshots()`` are short consumers of it, and live displays are
subscribers of the changes it yields. The loop's knobs are independent (see
:mod:`obshell_sdk._polling`): the wait's deadline, the cadence, each poll's RPC timeout,
and the failure budget. A finished task is never polled again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Callable, Optional, Union

from ._dag import DagDetail, DagState, Operator, Progress
from ._exceptions import DecodeError, InvalidArgumentError, ObshellError
from ._operators import check_applies, nothing_applied
from ._outcome import judged
from ._passes import Passes
from ._polling import FailureStreak, PollPolicy, WaitDeadline, worth_repeating
from ._render import foreign_message, interrupted_message, task_html, task_repr, timeout_message
from ._render_live import live_display
from ._task_errors import TaskTimeoutError
from ._validate import check_dag_id, check_flag, check_progress, check_seconds

if TYPE_CHECKING:  # pragma: no cover - for annotations only; the client imports this module
    from ._client import ObshellClient

__all__ = ["DEFAULT_WAIT", "DagTask", "ProgressCallback"]

log = logging.getLogger("obshell_sdk")

#: Seconds ``wait()``/``result()`` wait by default before raising TaskTimeoutError.
DEFAULT_WAIT = 3600.0

#: Called with each new snapshot (state, operator or stage changed) while a task is followed.
ProgressCallback = Callable[[DagDetail], object]


class DagTask:
    """A handle on one obshell DAG: refresh it, wait for it, read how it ended.

    Get one from ``client.upgrade_agent(...)`` (or any call that starts a task) or
    ``client.task(id)``. ``snapshot`` is the last :class:`DagDetail` seen (None until the
    first fetch of a task picked up by id). ``policy`` is how often it polls. ``exists``: the
    DAG is known to exist, so "not found" or an agent out of reach is its agent restarting,
    retried like a failed poll (else both fail at once: a wrong id or address). ``name``: the
    name the DAG must have (the one its creating call gives it); a fetch that shows another
    is refused as another DAG's, as is one unlike the first name seen.
    """

    def __init__(
        self,
        client: ObshellClient,
        task: Union[DagDetail, str],
        *,
        policy: Optional[PollPolicy] = None,
        exists: bool = False,
        name: Optional[str] = None,
    ) -> None:
        self._client = client
        if isinstance(task, DagDetail):
            #: The DAG's generic id.
            self.id: str = task.id
            #: The last snapshot seen (None before the first fetch).
            self.snapshot: Optional[DagDetail] = task
        else:
            self.id = check_dag_id(task)
            self.snapshot = None
        #: How this task polls.
        self.policy: PollPolicy = policy or PollPolicy()
        self._exists = exists or self.snapshot is not None
        seen = None if self.snapshot is None else self.snapshot.name
        if name is not None and seen is not None and name != seen:
            raise InvalidArgumentError("name", f"task {self.id} is {seen!r}: give that or none")
        self._named = seen is None and name is not None  # a name not seen yet: the call's
        self._name = name if seen is None else seen  # the first one seen, else that one
        self._born = time.monotonic()
        self._passes = Passes()

    def __repr__(self) -> str:
        return task_repr(self.id, self.snapshot)

    def _repr_html_(self) -> str:
        """An HTML card of the last snapshot, for notebooks."""
        return task_html(self.id, self.snapshot)

    @property
    def name(self) -> Optional[str]:
        """The DAG's name, e.g. ``Upgrade obshell 4.2.1.1-...`` (None before the first fetch)."""
        return None if self.snapshot is None else self.snapshot.name

    @property
    def state(self) -> Optional[DagState]:
        """State in the last snapshot (None before the first fetch)."""
        return None if self.snapshot is None else self.snapshot.state

    @property
    def operator(self) -> Optional[Operator]:
        """Operator in the last snapshot (None before the first fetch)."""
        return None if self.snapshot is None else self.snapshot.operator

    @property
    def progress(self) -> Optional[Progress]:
        """``stage`` of ``max_stage`` in the last snapshot (None before the first fetch)."""
        return None if self.snapshot is None else self.snapshot.progress

    def done(self) -> bool:
        """True when the last snapshot shows the task ended. Never does I/O."""
        return self.snapshot is not None and self.snapshot.is_finished

    def refresh(self, *, force: bool = False) -> DagDetail:
        """Fetch the DAG again (GetDagDetails) and return it.

        A task already seen finished is not fetched again unless ``force`` is true (for
        instance after another caller's operator revived it).
        """
        force = check_flag(force, "force")
        if self.snapshot is not None and self.snapshot.is_finished and not force:
            return self.snapshot
        return self._fetch(None)

    def _fetch(self, timeout: Optional[tuple[float, float]]) -> DagDetail:
        sent = time.time()
        detail = self._client.get_dag(self.id, timeout=timeout)
        if self._name is not None and detail.name != self._name:  # a DAG never changes name
            said = foreign_message(self.id, self._name, detail.name, seen=not self._named)
            raise DecodeError(said, where="data.name", task_id=self.id, method="GET",
                              path=f"/api/v1/task/dag/{self.id}", agent=self._client.agent)
        self._name, self._named = detail.name, False
        self._passes.observe(detail, sent)
        self.snapshot = detail
        self._exists = True
        return detail

    # -- following --------------------------------------------------------------------

    def wait(self, timeout: Optional[float] = DEFAULT_WAIT, *,
             poll_interval: Optional[float] = None, on_progress: Optional[ProgressCallback] = None,
             progress: Optional[bool] = None, stop: Optional[threading.Event] = None
             ) -> DagDetail:
        """Poll until the task ends (SUCCEED or FAILED) and return the final :class:`DagDetail`.

        ``timeout`` is the overall deadline in seconds (None: no deadline); when it passes,
        :class:`TaskTimeoutError` is raised and the task keeps running on the agent. Each
        poll waits at most the client's read timeout, and never past the deadline.
        ``poll_interval`` fixes the interval instead of the adaptive policy. ``on_progress`` is
        called with the snapshot whenever state, operator or stage changes. Failed polls are
        retried within the policy's ``failure_budget``; then :class:`TaskUnreachableError`.
        ``progress`` shows live progress: None (default) in Jupyter only, True also on stderr
        (a line redrawn, or one per change to a file), False never. ``stop``, a
        ``threading.Event`` set from another thread, ends the wait at once as its deadline
        would (a poll under way is cut). Does not judge the ending: see :meth:`result`.
        """
        polls = self._polls(timeout, poll_interval, stop=stop, whole=True)
        check_progress(progress, on_progress)
        display = live_display(progress, self)
        subscribers = [s for s in (display, on_progress) if s is not None]
        last: Optional[tuple[DagState, Operator, int]] = None
        final: Optional[DagDetail] = None
        try:
            for final in polls:
                key = (final.state, final.operator, final.stage)
                if key != last:
                    last = key
                    for subscriber in subscribers:
                        subscriber(final)
        except KeyboardInterrupt as exc:
            msg = interrupted_message(self.id, self.snapshot is not None, self._exists)
            log.warning("%s", msg)
            if hasattr(exc, "add_note"):
                exc.add_note(msg)
            elif not exc.args:  # before Python 3.11: the traceback's last line says it
                exc.args = (msg,)
            raise
        finally:
            if display is not None:
                display.close()
        assert final is not None and final.is_finished  # else the whole loop raised
        return final

    def snapshots(self, timeout: Optional[float] = DEFAULT_WAIT, *,
                  poll_interval: Optional[float] = None, stop: Optional[threading.Event] = None
                  ) -> Iterator[DagDetail]:
        """Poll as :meth:`wait` does, yielding every snapshot fetched, the last one finished.

        Leave the loop to stop following (the task goes on), or set ``stop`` in another
        thread: the loop ends at once, even while polls fail or a poll hangs (it is cut).
        A task seen finished yields that snapshot, unfetched. Raises as ``wait()`` does.
        """
        return self._polls(timeout, poll_interval, stop=stop)

    def _polls(self, timeout: Optional[float], poll_interval: Optional[float], *,
               stop: Optional[threading.Event] = None, whole: bool = False
               ) -> Iterator[DagDetail]:
        if stop is not None and not isinstance(stop, threading.Event):
            raise InvalidArgumentError("stop", "must be a threading.Event")
        if timeout is not None:  # the polling loop, its knobs checked now
            timeout = check_seconds(timeout, "timeout", allow_zero=True)
        if poll_interval is not None:
            poll_interval = check_seconds(poll_interval, "poll_interval")
        return self._snapshots(timeout, poll_interval, stop, whole)

    def _snapshots(self, timeout: Optional[float], poll_interval: Optional[float],
                   stop: Optional[threading.Event], whole: bool) -> Iterator[DagDetail]:
        """The polling loop: fetch until a snapshot shows the end, yielding every one fetched.

        It ends on its own snapshots, not on ``self.snapshot``, which another thread's call
        may clear or change meanwhile. The snapshot held first is yielded (unfetched) when
        finished, or for a ``whole`` wait, whose stop also raises as its deadline does.
        """
        deadline = WaitDeadline(timeout, stop)  # from the first step on, as the loop runs
        streak = FailureStreak(self.policy.failure_budget)
        polled, detail = False, self.snapshot
        if detail is not None and (whole or detail.is_finished):
            yield detail
        while not (detail is not None and detail.is_finished) and not deadline.stopped():
            if polled and deadline.passed():
                raise self._timeout(timeout, streak.last, detail)
            polled, sent_at = True, time.monotonic()
            try:  # a poll outlasts neither the wait nor the failure budget, nor its stop
                with deadline.cutting():
                    detail = self._fetch(streak.cut(deadline.cut(self._client.timeout)))
            except ObshellError as exc:
                if deadline.stopped():  # cut short by it, most likely
                    break
                if not worth_repeating(exc, self._exists):
                    raise
                if streak.fail(exc, sent_at):
                    raise streak.exhausted(self.id, exc, detail) from exc
                warn = streak.worth_a_warning(self.snapshot is not None)
                log.log(logging.WARNING if warn else logging.INFO,
                        "task %s: %d poll(s) failed in %.0f s (last: %s); %s; retrying for up "
                        "to %.0f s more", self.id, streak.failures, streak.seconds, exc,
                        "the agent may be restarting" if self._exists else
                        "check the agent's address and the task id", streak.retrying_for(deadline))
                deadline.sleep(min(self.policy.retry_interval(streak.failures), streak.left()))
                continue
            if streak.failures:
                log.info("task %s on %s: reachable again after %d failed polls", self.id,
                         self._client.agent, streak.end())
            yield detail
            if not detail.is_finished:
                deadline.sleep(poll_interval or self._pause())
        if whole and not (detail is not None and detail.is_finished):  # stopped
            raise self._timeout(None, streak.last, detail)

    def _pause(self) -> float:
        """Seconds to the next poll: about the policy's interval, just after the scheduler ran."""
        policy, pause = self.policy, self.policy.interval(time.monotonic() - self._born)
        return self._passes.pause(pause, policy.initial, policy.scheduler_period,
                                  self._client.agent_clock_offset, time.time())

    def _timeout(self, timeout: Optional[float], last_error: Optional[ObshellError],
                 detail: Optional[DagDetail]) -> TaskTimeoutError:
        """The wait's deadline passed (``timeout`` None: its stop was set).

        ``detail`` is the last snapshot this wait saw (another thread may have changed the
        task's since).
        """
        said = timeout_message(self.id, timeout, detail, self._exists, last_error)
        error = TaskTimeoutError(said, task_id=self.id, detail=detail)
        error.last_error = last_error
        return error

    def result(
        self,
        timeout: Optional[float] = DEFAULT_WAIT,
        *,
        poll_interval: Optional[float] = None,
        on_progress: Optional[ProgressCallback] = None,
        progress: Optional[bool] = None,
        stop: Optional[threading.Event] = None,
    ) -> DagDetail:
        """Wait like :meth:`wait`, then return the DAG only if it did its work.

        Raises :class:`TaskFailedError` (with the failing sub-tasks and their last log lines),
        :class:`TaskCancelledError` or :class:`TaskRolledBackError`. A DAG skipped with PASS
        (its failed step and every later one marked passed, none run) is returned, with a
        warning logged. ``stop``: as for ``wait()``.
        """
        detail = self.wait(timeout, poll_interval=poll_interval, on_progress=on_progress,
                           progress=progress, stop=stop)
        return judged(self.id, detail, self._client.agent)

    # -- operators ----------------------------------------------------------------------

    def retry(self) -> DagTask:
        """Run a FAILED task again from its failed step; returns self: ``task.retry().result()``."""
        return self._operate(Operator.RETRY)

    def rollback(self) -> DagTask:
        """Undo a FAILED task's finished steps; it then ends SUCCEED with operator ROLLBACK."""
        return self._operate(Operator.ROLLBACK)

    def skip(self) -> DagTask:
        """Mark a FAILED task's failed step and every later one passed (PASS), none of them run.

        The task ends SUCCEED/PASS at once (obshell's ``txForPassDag``).
        """
        return self._operate(Operator.PASS)

    def cancel(self) -> DagTask:
        """Stop a task still running; it ends FAILED with operator CANCEL.

        A task that ended (SUCCEED or FAILED) cannot be cancelled: obshell refuses CANCEL for it
        (``getNodeCanCancel``: 400 ``Task.Dag.Operator.CancelFinishedDag``). A FAILED upgrade,
        cancelled ones included, holds the cluster's lock until it is retried, rolled back or
        skipped.
        """
        return self._operate(Operator.CANCEL)

    def _operate(self, operator: Operator) -> DagTask:
        """Send ``operator`` once (see :mod:`._operators`), then read the task again."""
        detail = self.snapshot if self.snapshot is not None else self._fetch(None)
        check_applies(self.id, operator, detail)
        try:
            self._client.operate_dag(self.id, operator)
        except BaseException as exc:  # Ctrl-C too: the agent may have applied it meanwhile
            if not nothing_applied(exc, self.id):  # its error says so (operate_dag)
                self._forget()
            raise
        self._forget()
        try:
            self._fetch(None)
        except ObshellError as exc:
            if not worth_repeating(exc, self._exists):
                raise
            log.info("task %s on %s: %s applied; could not refresh it yet (%s)", self.id,
                     self._client.agent, operator.value, exc)
        return self

    def _forget(self) -> None:
        """The old ending no longer holds (an operator revived the task): wait() polls again."""
        self.snapshot = None
        self._born = time.monotonic()  # a task run again is followed as a new one
