"""Rollouts: one upgrade over many clusters, resumable from its journal.

``Rollout(targets, auth=..., journal="rollout.db")`` runs a plan (the agent upgrade, the
OceanBase upgrade) on every target, one agent per cluster: a few canaries one at a time,
then at most ``parallel`` clusters at once, and no new cluster after ``max_failures``
failures. Every step is journaled before and after it happens (see :mod:`._journal`), so
running the same rollout again with the same journal resumes it: finished targets are
skipped, created DAGs are followed and never created again.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Callable, Optional, Union

from ._address import parse_targets
from ._auth import PasswordAuth
from ._client import ObshellClient
from ._config import check_rollout_client_options
from ._dag import DagDetail
from ._exceptions import InvalidArgumentError, ObshellError
from ._journal import Journal, TargetRecord
from ._render import RolloutBoard
from ._rollout_plans import agent_plan, ob_plan
from ._rollout_report import (
    RolloutReport,
    RolloutStoppedError,
    TargetResult,
    ended_result,
    not_run,
    result_of,
)
from ._rollout_steps import Ended, Plan, TargetOutcome, TargetRun, failed_task, judge, revisit
from ._upload import check_package_path, check_package_paths
from ._validate import brief_repr, check_flag, check_seconds, check_upload_timeout

__all__ = ["AuthSource", "Rollout", "RolloutTarget", "parse_targets"]

log = logging.getLogger("obshell_sdk")

#: A rollout's target: ``"host:port"`` or ``(host, port)``.
RolloutTarget = Union[str, tuple[str, int]]
#: One PasswordAuth for every target, or a callable giving one per ``"host:port"``.
AuthSource = Union[PasswordAuth, Callable[[str], PasswordAuth]]


class Rollout:
    """An upgrade over many clusters, journaled in the SQLite file ``journal``.

    ``targets`` are ``"host:port"`` strings or ``(host, port)`` pairs, one agent per
    cluster; ``auth`` a :class:`PasswordAuth` or a callable giving one per ``"host:port"``.
    ``canary`` targets go first, one at a time; then at most ``parallel`` at once. After
    ``max_failures`` targets did not succeed (in this run), no new one is started: those
    are reported ``skipped`` and a rerun starts them. ``progress`` shows a live table: None
    (default) in Jupyter only, True also in a terminal, False never. Other keywords
    (``timeout``, ``https``, ``verify``, ``poll_policy``, ...) go to each
    :class:`ObshellClient`.
    """

    def __init__(self, targets: Iterable[RolloutTarget], *, auth: AuthSource,
                 journal: Union[str, os.PathLike[str]], parallel: int = 4, canary: int = 0,
                 max_failures: int = 1, progress: Optional[bool] = None,
                 **client_options: Any) -> None:
        #: The targets, as ``"host:port"``.
        self.targets: list[str] = parse_targets(targets)
        if not (isinstance(auth, PasswordAuth) or callable(auth)):
            raise InvalidArgumentError("auth", "must be a PasswordAuth or a callable giving one")
        if not isinstance(journal, (str, os.PathLike)):
            raise InvalidArgumentError("journal", "must be the path of a journal file")
        for name, value, low in (("parallel", parallel, 1), ("canary", canary, 0),
                                 ("max_failures", max_failures, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidArgumentError(name, f"must be a whole number >= {low}, "
                                           f"got {brief_repr(value)}")
        check_rollout_client_options(client_options)
        if self.targets:  # the options' values too, before any journal or cluster (no I/O)
            ObshellClient(*_split(self.targets[0]), auth=None, **client_options).close()
        self.auth: AuthSource = auth
        #: The journal file.
        self.journal: str = os.fspath(journal)
        self.parallel: int = parallel
        self.canary: int = canary
        self.max_failures: int = max_failures
        self.progress: Optional[bool] = check_flag(progress, "progress", none=True)
        self.client_options: dict[str, Any] = client_options
        #: How the live table words a target's ending (the CLI's: hints as commands).
        self._words: Optional[Callable[[str, str], str]] = None

    def upgrade_agent(
        self, version: str, release: str, *, package: Union[str, os.PathLike[str], None] = None,
        upgrade_dir: Optional[str] = None, check: bool = True, timeout: float = 3600.0,
        upload_timeout: Optional[float] = None,
    ) -> RolloutReport:
        """Upgrade obshell on every target, then confirm ``VERSION-BUILD`` through ``/info``.

        Each target: upload ``package`` (when given; one whose RPM header names another
        package raises InvalidArgumentError first), pre-check (when ``check``), upgrade,
        follow. ``timeout`` bounds each DAG's wait; a DAG still running then is reported
        ``unknown`` and a rerun follows it on. ``upload_timeout`` is how long an upload may
        take (by default 600 s, or the file at 1 MiB/s).
        """
        path = None if package is None else check_package_path(package)
        return self._run(agent_plan(version, release, path, upgrade_dir,
                                    check_flag(check, "check"),
                                    check_upload_timeout(upload_timeout)),
                         check_seconds(timeout, "timeout"))

    def upgrade_ob(
        self, version: str, release: str, *,
        packages: Sequence[Union[str, os.PathLike[str]]] = (), mode: str = "ROLLING",
        upgrade_dir: Optional[str] = None, freeze_server: bool = False, check: bool = True,
        timeout: float = 7200.0, upload_timeout: Optional[float] = None,
    ) -> RolloutReport:
        """Upgrade OceanBase on every target, then confirm the version through ``/info``.

        Each target: upload ``packages`` (every one the edition needs, e.g. ``oceanbase-ce``
        and ``oceanbase-ce-libs``; each within ``upload_timeout``), pre-check (when
        ``check``), upgrade in ``mode``, follow.
        """
        paths = check_package_paths(packages)
        return self._run(ob_plan(version, release, paths, mode, upgrade_dir, freeze_server,
                                 check_flag(check, "check"),
                                 check_upload_timeout(upload_timeout)),
                         check_seconds(timeout, "timeout"))

    # -- running ---------------------------------------------------------------------------

    def _run(self, plan: Plan, timeout: float) -> RolloutReport:
        journal = Journal(self.journal, plan.describe, self.targets)
        try:
            run = _Run(self, journal, plan, timeout)
        except BaseException:
            journal.close()
            raise
        busy: list[threading.Event] = []  # the ends of workers that may still be sending
        try:
            run.all()
        except KeyboardInterrupt as exc:
            run.interrupted = True
            run.stop.set()  # no new cluster; running DAGs go on; the journal says where
            busy = [end for end in run.ends if not end.is_set()]
            msg = ("rollout interrupted: no new cluster is started; running tasks go on on "
                   f"their agents. Run it again with journal {self.journal!r} to resume" + (
                       " (it stays locked until this run's requests under way, an upload "
                       "say, have ended)" if busy else ""))
            log.warning("%s", msg)
            if hasattr(exc, "add_note"):  # Python 3.11+: the traceback says it too
                exc.add_note(msg)
            raise
        finally:  # a rerun at once must not send again what a busy worker is sending
            journal.close(locked_until=busy)
        return run.report()


class _Run:
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
        self.ends: list[threading.Event] = []  # each worker's, set when it has let go
        self.interrupted = False  # Ctrl-C: the journal is closed under the workers
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

    def _revisit_one(self, record: TargetRecord, failed: tuple[str, str]) -> None:
        """:func:`revisit` a target that failed on a task: followed on (opened again) or not."""
        with self.lock:
            self.started.add(record.target)
        try:
            with ObshellClient(*_split(record.target), auth=self._auth(record.target),
                               **self.rollout.client_options) as client:
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

        def work(end: threading.Event) -> None:
            try:
                while True:
                    with self.lock:
                        if not queue or self.stopped_by is not None:
                            return
                        target, job = queue.pop()
                    if not self._run_or_stop(target, job):
                        return
            finally:  # not is_alive(): a join cut by Ctrl-C marks the thread stopped (< 3.13)
                end.set()

        ends = [threading.Event() for _ in range(min(at_once, len(queue)))]
        self.ends += ends
        workers = [threading.Thread(target=work, args=(end,), daemon=True,
                                    name=f"obshell-rollout-{i}") for i, end in enumerate(ends)]
        for worker in workers:
            worker.start()
        for worker in workers:  # Ctrl-C reaches the main thread at once: short joins
            while worker.is_alive():
                worker.join(0.2)

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
        if outcome is not TargetOutcome.SUCCEEDED:
            with self.lock:
                self.failures += 1  # only this run's: a rerun starts afresh
        record = self.journal.target(target)
        self._done(result_of(record, outcome, error, run.dag_ids if run else ()))

    def _attempt(self, target: str) -> tuple[TargetOutcome, Optional[str], Optional[TargetRun]]:
        run = None
        with self.lock:
            self.started.add(target)
        try:
            client = ObshellClient(*_split(target), auth=self._auth(target),
                                   **self.rollout.client_options)
            with client:
                run = TargetRun(self.records[target], client, self.journal, self.timeout,
                                lambda step, d: self._show(target, step, d))
                run.run(self.plan)
            return TargetOutcome.SUCCEEDED, run.note, run
        except Ended as exc:
            return exc.outcome, str(exc), run
        except ObshellError as exc:
            return judge(exc), f"{type(exc).__name__}: {exc}", run

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
            raise _Abandoned(target)
        self.board.update(target, step, detail)

    def _done(self, result: TargetResult) -> None:
        with self.lock:
            self.results[result.target] = result
        self.board.finish(result.target, result.outcome.value, result.error or result.note)

    def report(self) -> RolloutReport:
        return RolloutReport({t: self.results[t] for t in self.rollout.targets}, self.journal.path)


_STOPPED = "the rollout stopped on an error of its own"  # why a target was not (all) run


class _Abandoned(Exception):  # noqa: N818 - not an error: a worker let go after Ctrl-C
    """Raised in a worker following a task when the rollout was interrupted."""


def _split(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)
