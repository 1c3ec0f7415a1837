"""One run of a rollout: the schedule, the workers that carry it out, and the live board.

:class:`Run` revisits the targets that failed on a task, then runs the canaries one at a
time, then the rest ``parallel`` at once, each in a worker thread (which Ctrl-C never
reaches). An error of the rollout's own stops it (:class:`RolloutStoppedError`); Ctrl-C
stops it at once (:meth:`Run.let_go`), and the journal stays locked until the workers still
sending have let go.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Callable, Optional

from ._auth import PasswordAuth
from ._client import ObshellClient
from ._config import PASSWORD_NAMES, empty_note, empty_refused
from ._dag import DagDetail
from ._exceptions import (
    ApiError,
    ConnectError,
    DecodeError,
    InvalidArgumentError,
    ObshellError,
    OutcomeUnknownError,
    TransportError,
    WeakKeyError,
)
from ._journal import Journal, TargetRecord, under_way
from ._package_calls import probe_lost
from ._render_live import RolloutBoard
from ._rollout_report import (
    RolloutReport,
    RolloutStoppedError,
    TargetResult,
    ended_result,
    not_run,
    result_of,
    target_said,
)
from ._rollout_revisit import failed_task, revisit
from ._rollout_steps import (
    Abandoned,
    Ended,
    Plan,
    TargetOutcome,
    TargetRun,
)
from ._runner_lock import AgentClaims
from ._task_errors import TaskTimeoutError, TaskUnreachableError
from ._transport_errors import lost_read

if TYPE_CHECKING:  # pragma: no cover - annotations only; the rollout imports this module
    from ._rollout import Rollout

__all__ = ["EMPTY_REFUSED", "Run", "split_target", "uploads_left"]

log = logging.getLogger("obshell_sdk")


class Run:
    """One run of a rollout: the schedule, the workers and the live board."""

    def __init__(self, rollout: Rollout, journal: Journal, plan: Plan, timeout: float) -> None:
        self.rollout, self.journal, self.plan, self.timeout = rollout, journal, plan, timeout
        self.stop = threading.Event()
        self.lock = threading.Lock()
        ours = set(rollout.targets)  # a journal may hold more: a rerun over part of the fleet
        self.records = {r.target: r for r in journal.targets() if r.target in ours}
        self.results: dict[str, TargetResult] = {}
        self.failures = 0
        self.stopped_by: Optional[tuple[str, BaseException]] = None  # (target, error)
        self.started: set[str] = set()  # targets this run worked on
        self.ends: list[threading.Event] = []  # each worker's that began, set when it let go
        self.interrupted = False  # Ctrl-C: the journal is closed under the workers
        self.abandon = threading.Event()  # set with it: the followers let go of their tasks
        self.claims = AgentClaims()  # each agent is one target, however it is named
        self.board = RolloutBoard(rollout.targets, rollout.progress, rollout._words)
        self.revisit: list[tuple[TargetRecord, tuple[str, str]]] = []  # failed on a task
        for record in self.records.values():
            if (failed := failed_task(record, plan)) is not None:
                self.revisit.append((record, failed))
            elif (ended := ended_result(record)) is not None:
                self._done(ended)

    def all(self) -> None:
        """Revisit the failed targets, then the canaries, then the rest in parallel.

        An error of the rollout's own (the journal, a bug) stops it: no new target starts,
        those running are followed to their end, then :class:`RolloutStoppedError` says so.
        """
        try:
            self._claim_resumed()
            self._in_parallel([(r.target, functools.partial(self._revisit_one, r, failed))
                               for r, failed in self.revisit], self.rollout.parallel)
            todo = [(t, functools.partial(self._one, t)) for t in self.rollout.targets
                    if t not in self.results]
            self._in_parallel(todo[:self.rollout.canary], 1)  # the canaries, one at a time
            self._in_parallel(todo[self.rollout.canary:], self.rollout.parallel)
            if self.stopped_by is not None:
                self._unfinished()
        finally:
            self.board.close()
        if self.stopped_by is not None:
            target, exc = self.stopped_by
            if not isinstance(exc, Exception):  # SystemExit, say: not ours to reword
                raise exc
            raise RolloutStoppedError.of(exc, target, self.report()) from exc

    def _claim_resumed(self) -> None:
        """Note the agents of the targets an earlier run sent to, before any new target starts.

        A resumed target follows its task without reading ``/info`` first: a new target naming
        its agent another way would make its own tasks there. Noted first, its agent refuses
        that target (see :class:`AgentClaims`); read only when the run has a new target.
        """
        left = [t for t in self.rollout.targets if t not in self.results]
        resumed = [t for t in left if self.records[t].steps]
        if len(resumed) < len(left):
            self._in_parallel([(t, functools.partial(self._claim, t)) for t in resumed],
                              self.rollout.parallel)

    def _claim(self, target: str) -> None:
        try:
            with self._client(target, auth=None) as client:
                self.claims.claim(target, client.info())
        except ObshellError as exc:  # its own turn says what is wrong
            log.info("%s: its agent could not be read (%s)", target, exc)

    def _revisit_one(self, record: TargetRecord, failed: tuple[str, str]) -> None:
        """:func:`revisit` a target that failed on a task: followed on (opened again) or not."""
        with self.lock:
            self.started.add(record.target)
        try:
            with self._client(record.target, auth=self._auth(record.target)) as client:
                still = revisit(TargetRun(record, client, self.journal, self.timeout,
                                          lambda *_: None), self.plan, *failed)
        except ObshellError as exc:  # a client that could not be made: nothing was sent
            log.info("%s: it stays failed (%s)", record.target, exc)
            still = record.error
        if still is not None:
            self._done(result_of(record, TargetOutcome.FAILED, still))
        else:  # followed on: open again, so that a runner stopped meanwhile resumes it
            self.journal.reopen(record.target)
            self.records[record.target] = self.journal.target(record.target)

    def _in_parallel(self, jobs: Sequence[tuple[str, Callable[[], None]]], at_once: int
                     ) -> None:
        """Do the jobs (target, work), ``at_once`` at a time, until an error stops the run."""
        queue = list(reversed(jobs))

        def work() -> None:
            end = threading.Event()  # not is_alive(): a join cut by Ctrl-C marks a thread
            try:  # stopped (< 3.13); and a thread Ctrl-C kept from starting sets none
                with self.lock:
                    self.ends.append(end)
                while True:
                    with self.lock:
                        if not queue or self.stopped_by is not None or self.stop.is_set():
                            return
                        target, job = queue.pop()
                    if not self._run_or_stop(target, job):
                        return
            finally:
                end.set()

        workers = [threading.Thread(target=work, daemon=True, name=f"obshell-rollout-{i}")
                   for i in range(min(at_once, len(queue)))]
        for worker in workers:
            worker.start()
        for worker in workers:  # Ctrl-C reaches the main thread at once: short joins
            while worker.is_alive():
                worker.join(0.2)

    def let_go(self) -> list[threading.Event]:
        """Stop at once (Ctrl-C): no new cluster, followers let go; the busy workers' ends.

        The stop comes first: a worker that begins after the ends are read takes no job.
        """
        self.interrupted = True  # the journal is closed under the workers
        self.abandon.set()
        self.stop.set()
        with self.lock:
            return [end for end in self.ends if not end.is_set()]

    def _run_or_stop(self, target: str, work: Callable[[], None]) -> bool:
        """``work()`` for ``target`` in a worker thread (which Ctrl-C never reaches).

        False when it stopped the run: an error of the rollout's own, or Ctrl-C meanwhile.
        """
        try:
            work()
            return True
        except BaseException as exc:  # a bug, the journal unwritable: stop, tell all()
            if self.interrupted:  # Ctrl-C closed the journal under this worker
                log.info("%s: how it ended is not journaled (the rollout was interrupted); "
                         "run it again to follow it", target)
                return False
            log.error("rollout stopped: %s failed with %s (no new cluster starts; the "
                      "running ones are followed to their end first)", target,
                      type(exc).__name__, exc_info=exc)
            with self.lock:
                self.stopped_by = self.stopped_by or (target, exc)  # the first one stopped the run
            self.stop.set()
            return False

    def _unfinished(self) -> None:
        """Results for the targets a stopped run did not end, from what the journal holds."""
        for t in [t for t in self.rollout.targets if t not in self.results]:
            with contextlib.suppress(Exception):  # what this run journaled, if readable
                self.records[t] = self.journal.target(t)
            record = self.records[t]
            outcome, why = not_run(record, _STOPPED, t in self.started)
            self._done(ended_result(record) or result_of(record, outcome, why))

    def _one(self, target: str) -> None:
        with self.lock:
            blocked = self.stop.is_set() or self.failures >= self.rollout.max_failures
        if blocked:
            outcome, why = not_run(self.records[target], (
                _STOPPED if self.stopped_by is not None else
                "the rollout was interrupted" if self.stop.is_set() else
                f"{self.failures} target(s) failed (max_failures={self.rollout.max_failures})"))
            self.journal.end(target, outcome.value, why)
            self._done(result_of(self.records[target], outcome, why))
            return
        outcome, error, run = self._attempt(target)
        self.journal.end(target, outcome.value, error)
        if outcome is not TargetOutcome.SUCCEEDED and not (run and run.alias_of):
            with self.lock:  # a second name of an agent is no cluster's failure
                self.failures += 1  # only this run's: a rerun starts afresh
        record = self.journal.target(target)
        self._done(result_of(record, outcome, error, run.dag_ids if run else ()))

    def _attempt(self, target: str) -> tuple[TargetOutcome, Optional[str], Optional[TargetRun]]:
        run = None
        with self.lock:
            self.started.add(target)
        record = self.records[target]
        if record.outcome is not None:  # an earlier run's: this one is open (a new attempt's
            self.journal.reopen(target, again=not under_way(record))  # time, if none runs)
        auth = None
        try:
            auth = self._auth(target)
            with self._client(target, auth=auth) as client:
                run = TargetRun(record, client, self.journal, self.timeout,
                                lambda step, d: self._show(target, step, d), self.abandon,
                                self.claims)
                try:
                    run.run(self.plan)
                except ApiError as exc:
                    if not run.there_anyway(self.plan, exc):
                        raise
            return TargetOutcome.SUCCEEDED, run.note, run
        except Ended as exc:
            return exc.outcome, target_said(str(exc), run.client if run else None), run
        except ObshellError as exc:
            said = f"{type(exc).__name__}: {exc}{_empty_said(auth, exc)}"
            return judge(exc), target_said(said, run.client if run else None), run

    def _client(self, target: str, *, auth: Optional[PasswordAuth]) -> ObshellClient:
        """A client of ``target``'s agent with the rollout's options (``auth`` None: unsigned)."""
        return ObshellClient(*split_target(target), auth=auth, **self.rollout.client_options)

    def _auth(self, target: str) -> PasswordAuth:
        auth = self.rollout.auth
        if isinstance(auth, PasswordAuth):
            return auth
        try:
            return auth(target)
        except Exception as exc:  # the caller's own code (a vault lookup, say): nothing sent
            raise InvalidArgumentError("auth", f"auth({target!r}) raised {type(exc).__name__}: "
                                       f"{exc}") from exc

    def _show(self, target: str, step: str, detail: Optional[DagDetail]) -> None:
        if self.interrupted:  # Ctrl-C: stop following (the journal says where it stands)
            raise Abandoned(target)
        self.board.update(target, step, detail)

    def _done(self, result: TargetResult) -> None:
        with self.lock:
            self.results[result.target] = result
        self.board.finish(result.target, result.outcome.value, result.error or result.note)

    def report(self) -> RolloutReport:
        return RolloutReport({t: self.results[t] for t in self.rollout.targets}, self.journal.path)


_STOPPED = "the rollout stopped on an error of its own"  # why a target was not (all) run


def _empty_said(auth: Optional[PasswordAuth], exc: ObshellError) -> str:
    """`` (the root@sys password given for this target is empty: ...)``, when it was refused.

    The refusal alone reads like a typo; an empty password is sent as given all the same.
    An agent before 4.3.1 does not say what it refused: then the note says so (:func:`empty_note`).
    """
    empty = () if auth is None else empty_refused(auth, exc)
    return empty_note([EMPTY_REFUSED.format(PASSWORD_NAMES[name]) for name in empty], exc)


#: What a target's error says of an empty password the agent refused (``{}``: which one).
EMPTY_REFUSED = ("the {} given for this target is empty: give auth= its password, then run the "
                 "rollout again")


def uploads_left(plan: Plan, records: Iterable[TargetRecord], targets: Sequence[str]
                 ) -> set[str]:
    """The plan's upload steps that a run over ``targets`` may still send (by name).

    A target's that are not journaled done, unless it ended for good (a target that failed
    on a task is revisited, and may be given what it lacks), as :class:`Run` sees it; every
    upload for a target the journal (``records``) does not know yet.
    """
    known = {record.target: record for record in records}
    left: set[str] = set()
    for target in targets:
        record = known.get(target)
        if record is not None and failed_task(record, plan) is None and ended_result(record):
            continue  # ended for good: not visited
        done = {} if record is None else record.steps
        left.update(step.name for step in plan.steps if step.kind == "upload" and (
            step.name not in done or done[step.name].status != "done"))
    return left


def split_target(target: str) -> tuple[str, int]:
    """``(host, port)`` of a ``"host:port"`` target as :func:`parse_targets` writes it."""
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


def judge(exc: ObshellError) -> TargetOutcome:
    """A failure's outcome: unknown when the agent may be doing the work (not after a read)."""
    if isinstance(exc, ConnectError) or lost_read(exc) or probe_lost(exc):  # never sent, or
        return TargetOutcome.UNREACHABLE  # a read or the upload's empty probe: nothing done
    if isinstance(exc, (OutcomeUnknownError, TaskTimeoutError, TaskUnreachableError,
                        TransportError)):
        return TargetOutcome.UNKNOWN
    if isinstance(exc, DecodeError):
        return TargetOutcome.REFUSED if exc.refusal_page else TargetOutcome.UNKNOWN
    if isinstance(exc, (ApiError, InvalidArgumentError, WeakKeyError)):
        # Refused, by the agent or before signing: an upload, a confirmation, or a create that
        # made no DAG (journaled unsent). Refusals that may hide a DAG end as Ended(UNKNOWN).
        return TargetOutcome.REFUSED
    return TargetOutcome.FAILED
