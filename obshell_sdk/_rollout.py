"""Rollouts: one upgrade over many clusters, resumable from its journal.

``Rollout(targets, auth=..., journal="rollout.db")`` runs a plan (the agent upgrade, the
OceanBase upgrade) on every target, one agent per cluster: a few canaries one at a time,
then at most ``parallel`` clusters at once, and no new cluster after ``max_failures``
failures. Every step is journaled before and after it happens (see :mod:`._journal`), so
running the same rollout again with the same journal resumes it: finished targets are
skipped, created DAGs are followed and never created again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Callable, Optional, Union

from ._address import parse_targets
from ._auth import PasswordAuth
from ._client import ObshellClient
from ._config import check_rollout_client_options
from ._exceptions import InvalidArgumentError
from ._journal import Journal
from ._render_rollout import rollout_repr
from ._rollout_plans import agent_plan, checked, ob_plan
from ._rollout_report import RolloutReport
from ._rollout_run import Run, split_target, uploads_left
from ._rollout_steps import Plan
from ._runner_lock import RunnerLock
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
            ObshellClient(*split_target(self.targets[0]), auth=None, **client_options).close()
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

    def __repr__(self) -> str:
        return rollout_repr(self)

    def upgrade_agent(
        self, version: str, release: str, *, package: Union[str, os.PathLike[str], None] = None,
        upgrade_dir: Optional[str] = None, check: bool = True, timeout: float = 3600.0,
        upload_timeout: Optional[float] = None,
    ) -> RolloutReport:
        """Upgrade obshell on every target, then confirm ``VERSION-BUILD`` through ``/info``.

        Each target: upload ``package`` (when given; one whose RPM header names another
        package, or cut short or damaged, raises InvalidArgumentError first: it is checked
        once, before any target), pre-check (when ``check``), upgrade, follow. ``timeout``
        bounds each DAG's wait; a DAG still running then is reported ``unknown`` and a rerun
        follows it on. ``upload_timeout`` is how long an upload may take (by default 600 s,
        or the file at 1 MiB/s).
        """
        path = None if package is None else check_package_path(package)
        timeout = check_seconds(timeout, "timeout")  # all input before the package is read
        return self._run(agent_plan(version, release, path, upgrade_dir,
                                    check_flag(check, "check"),
                                    check_upload_timeout(upload_timeout)), timeout)

    def upgrade_ob(
        self, version: str, release: str, *,
        packages: Sequence[Union[str, os.PathLike[str]]] = (), mode: str = "ROLLING",
        upgrade_dir: Optional[str] = None, freeze_server: bool = False, check: bool = True,
        timeout: float = 7200.0, upload_timeout: Optional[float] = None,
    ) -> RolloutReport:
        """Upgrade OceanBase on every target, then confirm the version through ``/info``.

        Each target: upload ``packages`` (every one the edition needs, e.g. ``oceanbase-ce``
        and ``oceanbase-ce-libs``; each within ``upload_timeout``; each checked once, before
        any target, as for :meth:`upgrade_agent`), pre-check (when ``check``), upgrade in
        ``mode``, follow.
        """
        paths = check_package_paths(packages)
        timeout = check_seconds(timeout, "timeout")  # all input before the packages are read
        return self._run(ob_plan(version, release, paths, mode, upgrade_dir, freeze_server,
                                 check_flag(check, "check"),
                                 check_upload_timeout(upload_timeout)), timeout)

    # -- running ---------------------------------------------------------------------------

    def _open(self, plan: Plan) -> tuple[Journal, Plan]:
        """The journal, its runner lock taken first; the plan, its uploads left checked.

        A second runner is refused, and a rerun with nothing left to upload goes on, before
        any package is read; a package that fails its check leaves no new journal behind.
        """
        runner = RunnerLock(self.journal)  # one journal, one runner: refused before any read
        journal = None
        try:
            if os.path.exists(self.journal):  # an earlier run's: what is left, and its plan
                journal = Journal(self.journal, plan.describe, self.targets, runner)
            plan = checked(plan, uploads_left(plan, journal.targets() if journal else (),
                                              self.targets))
            if journal is None:  # a new one: made once its packages passed
                journal = Journal(self.journal, plan.describe, self.targets, runner)
            return journal, plan
        except BaseException:  # a package that fails its check, Ctrl-C: nothing was sent
            if journal is not None:
                journal.close(refused=True)
            runner.release(refused=True)  # a second release does nothing
            raise

    def _run(self, plan: Plan, timeout: float) -> RolloutReport:
        journal, plan = self._open(plan)
        try:
            run = Run(self, journal, plan, timeout)
        except BaseException:  # a journal that cannot be read: nothing was sent
            journal.close(refused=True)
            raise
        busy: list[threading.Event] = []  # the ends of workers that may still be sending
        try:
            run.all()
        except BaseException as exc:  # Ctrl-C (or another exception raised in this thread)
            busy = run.let_go()
            if isinstance(exc, KeyboardInterrupt):
                msg = ("rollout interrupted: no new cluster is started; running tasks go on on "
                       f"their agents. Run it again with journal {self.journal!r} to resume"
                       + (" (it stays locked until this run's requests under way, an upload "
                          "say, have ended)" if busy else ""))
                log.warning("%s", msg)
                if hasattr(exc, "add_note"):  # Python 3.11+: the traceback says it too
                    exc.add_note(msg)
            raise
        finally:  # a rerun at once must not send again what a busy worker is sending
            journal.close(locked_until=busy)
        report = run.report()
        run.board.leave_to(report)  # a notebook cell showing the report shows one table
        return report
