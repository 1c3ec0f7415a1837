"""DagTask: follow an obshell DAG (an asynchronous task) to its end.

It needs only something that can "get a DAG" (:class:`DagSource`; the client is one), so it
knows nothing of HTTP or signing. Polling starts fast and backs off with the time the task
has been followed, up to a ceiling; a finished task is never polled again; the wait's
deadline and the budget for consecutive failed polls (an agent restarting during its own
upgrade) are separate knobs.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional, Protocol, Union

from ._exceptions import (
    DecodeError,
    ObshellError,
    ServerError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotFoundError,
    TaskRolledBackError,
    TaskStateError,
    TaskTimeoutError,
    TaskUnreachableError,
    TransportError,
)
from ._models import DagDetail, DagOutcome, DagState, Operator, Progress
from ._polling import PollPolicy, StageClock
from ._validate import check_seconds

__all__ = ["DEFAULT_WAIT", "DagSource", "DagTask", "ProgressCallback"]

log = logging.getLogger("obshell_sdk")

#: Seconds ``wait()``/``result()`` wait by default before raising TaskTimeoutError.
DEFAULT_WAIT = 3600.0

ProgressCallback = Callable[[DagDetail], object]


class DagSource(Protocol):
    """Anything that can fetch a DAG by id and apply an operator (``ObshellClient`` is one)."""

    def operate_dag(self, dag_id: Union[str, int], operator: Union[Operator, str]) -> None:
        """Apply ``operator`` to the DAG ``dag_id``."""
        ...

    def get_dag(
        self,
        dag_id: Union[str, int],
        show_details: bool = True,
        *,
        timeout: Optional[Union[float, tuple[float, float]]] = None,
    ) -> DagDetail:
        """Return the DAG ``dag_id``."""
        ...


def _is_failed(detail: DagDetail) -> bool:
    return detail.state is DagState.FAILED


def _key(detail: DagDetail) -> tuple[DagState, Operator, int]:
    return detail.state, detail.operator, detail.stage


class DagTask:
    """A handle on one obshell DAG: refresh it, wait for it, read how it ended.

    Build it with ``client.upgrade_agent(...)`` or ``client.task(id)``. ``snapshot`` is the
    last :class:`DagDetail` seen (None until the first fetch of a task picked up by id).
    """

    def __init__(
        self,
        source: DagSource,
        snapshot: Union[DagDetail, str],
        *,
        policy: Optional[PollPolicy] = None,
    ) -> None:
        self._source = source
        if isinstance(snapshot, DagDetail):
            self.id: str = snapshot.id
            self.snapshot: Optional[DagDetail] = snapshot
        else:
            self.id = snapshot
            self.snapshot = None
        self.policy = policy or PollPolicy()
        self._seen = self.snapshot is not None
        self._born = time.monotonic()
        #: Polls sent by this handle (successful or not), for the curious and for benchmarks.
        self.polls = 0

    def __repr__(self) -> str:
        snap = self.snapshot
        if snap is None:
            return f"<DagTask {self.id} (not fetched yet)>"
        return f"<DagTask {self.id} {snap.name!r} {snap.state} {snap.operator} {snap.progress}>"

    def _repr_html_(self) -> str:
        """An HTML card of the last snapshot, for notebooks."""
        from html import escape

        from ._display import dag_html

        if self.snapshot is None:
            return f"<div>task {escape(self.id)} (not fetched yet: call refresh())</div>"
        return dag_html(self.snapshot)

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
        """``stage`` of ``max_stage`` in the last snapshot."""
        return None if self.snapshot is None else self.snapshot.progress

    def done(self) -> bool:
        """True when the last snapshot shows the task ended. Never does I/O."""
        return self.snapshot is not None and self.snapshot.is_finished

    def refresh(self, *, force: bool = False) -> DagDetail:
        """Fetch the DAG again (GetDagDetails) and return it.

        A task already seen finished is not fetched again unless ``force`` is true (for
        instance after an operator revived it).
        """
        if self.snapshot is not None and self.snapshot.is_finished and not force:
            return self.snapshot
        return self._poll(None)

    def _poll(self, deadline: Optional[float]) -> DagDetail:
        timeout = None
        if deadline is not None:
            left = max(0.05, deadline - time.monotonic())
            timeout = (min(5.0, left), left)
        self.polls += 1
        detail = self._source.get_dag(self.id, True, timeout=timeout)
        self.snapshot = detail
        self._seen = True
        return detail

    def wait(
        self,
        timeout: Optional[float] = DEFAULT_WAIT,
        *,
        poll_interval: Optional[float] = None,
        on_progress: Optional[ProgressCallback] = None,
        progress: Optional[bool] = None,
    ) -> DagDetail:
        """Poll until the task ends (SUCCEED or FAILED) and return the final :class:`DagDetail`.

        ``timeout`` is the overall deadline in seconds (None: no deadline); when it passes,
        :class:`TaskTimeoutError` is raised and the task keeps running on the agent.
        ``poll_interval`` fixes the interval instead of the adaptive policy. ``on_progress`` is
        called with the snapshot whenever state, operator or stage changes. Failed polls are
        retried within the policy's ``failure_budget``; then :class:`TaskUnreachableError`.
        ``progress`` shows live progress: None (default) in Jupyter only, True also as a text
        line on stderr, False never. Does not judge the ending: see :meth:`result`.
        """
        if timeout is not None:
            timeout = check_seconds(timeout, "timeout", allow_zero=True)
        if poll_interval is not None:
            poll_interval = check_seconds(poll_interval, "poll_interval")
        if progress is not False:
            from ._display import with_display

            on_progress = with_display(on_progress, progress)
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        last_key = None
        if self.snapshot is not None and on_progress is not None:
            last_key = _key(self.snapshot)
            on_progress(self.snapshot)
        failures = 0
        failing_since = 0.0
        last_error: Optional[ObshellError] = None
        polled = False
        clock = StageClock()
        try:
            while not self.done():
                now = time.monotonic()
                if deadline is not None and now >= deadline and polled:
                    raise self._timeout(timeout, last_error)
                polled = True
                try:
                    detail = self._poll(deadline)
                except ObshellError as exc:
                    if not self._transient(exc):
                        raise
                    failures += 1
                    last_error = exc
                    if failures == 1:
                        failing_since = now
                    if now - failing_since > self.policy.failure_budget:
                        raise TaskUnreachableError(
                            f"task {self.id}: {failures} polls failed over "
                            f"{now - failing_since:.0f} s "
                            f"(budget {self.policy.failure_budget:g} s); "
                            f"last error: {exc}. The task may still be running: check it later "
                            f"with client.task({self.id!r}).refresh()",
                            task_id=self.id, detail=self.snapshot, last_error=exc,
                            failures=failures,
                        ) from exc
                    log.info("task %s: poll failed (%s); retrying", self.id, exc)
                    self._sleep(self.policy.retry_interval(failures), deadline)
                    continue
                if failures:
                    log.info("task %s: reachable again after %d failed polls", self.id, failures)
                failures = 0
                last_error = None
                if on_progress is not None and _key(detail) != last_key:
                    last_key = _key(detail)
                    on_progress(detail)
                if detail.is_finished:
                    break
                pause = poll_interval or self._next_pause(detail, clock)
                self._sleep(pause, deadline)
        except KeyboardInterrupt as exc:
            msg = (
                f"stopped waiting for task {self.id}; it keeps running on the agent. "
                f"Pick it up again with client.task({self.id!r}).wait()"
            )
            log.warning("%s", msg)
            if hasattr(exc, "add_note"):
                exc.add_note(msg)
            raise
        assert self.snapshot is not None
        return self.snapshot

    def _next_pause(self, detail: DagDetail, clock: StageClock) -> float:
        """The policy's interval, shortened to just after the predicted end of the last stage."""
        now = time.monotonic()
        pause = self.policy.interval(now - self._born)
        end = clock.observe(detail, now)
        if end is not None and end > now:
            pause = min(pause, end - now + 0.05)
        return pause

    def _transient(self, exc: ObshellError) -> bool:
        """Is a failed poll worth repeating? Reads are safe to repeat."""
        if isinstance(exc, (TransportError, ServerError)):
            return True
        if isinstance(exc, DecodeError):
            return exc.status >= 500
        # A DAG seen before that is "not found" is an agent that has not reconnected yet.
        return isinstance(exc, TaskNotFoundError) and self._seen

    def _timeout(
        self, timeout: Optional[float], last_error: Optional[ObshellError]
    ) -> TaskTimeoutError:
        where = "" if self.snapshot is None else (
            f" (last seen {self.snapshot.state} at stage {self.snapshot.progress})"
        )
        failing = f"; the last polls failed: {last_error}" if last_error is not None else ""
        error = TaskTimeoutError(
            f"task {self.id} did not end within {timeout:g} s{where}{failing}. It keeps running "
            f"on the agent: wait again with client.task({self.id!r}).wait()",
            task_id=self.id, detail=self.snapshot,
        )
        error.last_error = last_error
        return error

    @staticmethod
    def _sleep(seconds: float, deadline: Optional[float]) -> None:
        if deadline is not None:
            seconds = min(seconds, max(0.0, deadline - time.monotonic()))
        if seconds > 0:
            time.sleep(seconds)

    # -- operators ----------------------------------------------------------------------

    def retry(self) -> DagTask:
        """Run a FAILED task again from its failed step; returns self: ``task.retry().result()``."""
        return self._operate(Operator.RETRY, "a FAILED task can be retried", _is_failed)

    def rollback(self) -> DagTask:
        """Undo a FAILED task's finished steps; it then ends SUCCEED with operator ROLLBACK."""
        return self._operate(Operator.ROLLBACK, "a FAILED task can be rolled back", _is_failed)

    def skip(self) -> DagTask:
        """Mark a FAILED task's failed step as passed (PASS); the task ends SUCCEED/PASS."""
        return self._operate(Operator.PASS, "a FAILED task's step can be skipped", _is_failed)

    def cancel(self) -> DagTask:
        """Stop an unfinished task; it ends FAILED with operator CANCEL."""
        return self._operate(
            Operator.CANCEL, "an unfinished task can be cancelled", lambda d: not d.is_finished
        )

    def _operate(
        self, operator: Operator, rule: str, allowed: Callable[[DagDetail], bool]
    ) -> DagTask:
        detail = self.snapshot if self.snapshot is not None else self._poll(None)
        if not allowed(detail):
            raise TaskStateError(
                f"task {self.id} is {detail.state} (operator {detail.operator}); only {rule}. "
                "Refresh it if it may have changed",
                task_id=self.id, detail=detail,
            )
        self._source.operate_dag(self.id, operator)
        self.snapshot = None  # the old ending no longer holds: wait() will poll again
        self._born = time.monotonic()
        try:
            self._poll(None)
        except ObshellError as exc:
            if not self._transient(exc):
                raise
            log.info("task %s: %s applied; could not refresh it yet (%s)", self.id,
                     operator.value, exc)
        return self

    def result(
        self,
        timeout: Optional[float] = DEFAULT_WAIT,
        *,
        poll_interval: Optional[float] = None,
        on_progress: Optional[ProgressCallback] = None,
        progress: Optional[bool] = None,
    ) -> DagDetail:
        """Wait like :meth:`wait`, then return the DAG only if it did its work.

        Raises :class:`TaskFailedError` (with the failing sub-tasks and their last log lines),
        :class:`TaskCancelledError` or :class:`TaskRolledBackError`. A DAG whose failed step
        was skipped with PASS is returned, with a warning logged.
        """
        detail = self.wait(
            timeout, poll_interval=poll_interval, on_progress=on_progress, progress=progress
        )
        outcome = detail.outcome
        label = f"task {self.id} {detail.name!r}"
        if outcome is DagOutcome.SUCCEEDED:
            return detail
        if outcome is DagOutcome.PASSED:
            log.warning("%s succeeded with a failed step skipped (PASS)", label)
            return detail
        if outcome is DagOutcome.ROLLED_BACK:
            raise TaskRolledBackError(
                f"{label} was rolled back: what it was to do did not happen",
                task_id=self.id, detail=detail,
            )
        if outcome is DagOutcome.CANCELLED:
            raise TaskCancelledError(f"{label} was cancelled", task_id=self.id, detail=detail)
        from ._display import failure_message

        failed = detail.failed_sub_tasks()
        raise TaskFailedError(
            failure_message(label, detail), task_id=self.id, detail=detail,
            failed_sub_tasks=failed,
        )
