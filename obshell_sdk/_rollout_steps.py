"""One target of a rollout: its steps, each journaled before and after it happens.

A step that creates a DAG is written as ``sending`` (with the send time and the unfinished
DAGs the agent listed just before) before the POST, and as ``created`` with the DAG id
once the reply or a read of it shows the name the step gives (a reply of another task's id
leaves it ``sending``: a rerun looks it up by name, and follows a journaled id only while its
reads show that name), or ``unsent`` when the call failed in a way that proves the POST
created no DAG (:meth:`TaskEndpoint.never_ran`: the agent was never reached or refused it,
or the auth flow's own request failed). A rerun follows a created DAG, looks a ``sending`` one up
(sending it again only when the agent proves it made none: :func:`made_none`), sends an
``unsent`` one, and skips the steps that are ``done``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

import attrs

from ._dag import DagDetail, DagOutcome
from ._endpoints import TaskEndpoint, holds_lock
from ._exceptions import ApiError, ConnectionLostError, ObshellError, OutcomeUnknownError
from ._journal import Journal, StepRecord, TargetOutcome, TargetRecord, under_way
from ._lookup import find_created_dag, follow_note, made_none, rerun_note
from ._models import AgentInfo
from ._package_calls import SaidAs
from ._render import failure_line, state_text
from ._rollout_report import python_client
from ._runner_lock import AgentClaims
from ._targets import stored_copy, stored_said
from ._task import DagTask
from ._workflow import log_in

if TYPE_CHECKING:  # pragma: no cover - annotations only; the client never imports this
    from ._client import ObshellClient

__all__ = ["Ended", "Plan", "Step", "TargetOutcome", "TargetRun"]

log = logging.getLogger("obshell_sdk")

#: A create call as the journal has it while its step is ``sending``: (existed, sent_at).
Sent = tuple[Optional[frozenset[str]], Optional[float]]


_BY_DAG = {DagOutcome.FAILED: TargetOutcome.FAILED,
           DagOutcome.ROLLED_BACK: TargetOutcome.ROLLED_BACK,
           DagOutcome.CANCELLED: TargetOutcome.CANCELLED}


class Ended(Exception):  # noqa: N818 - not an error: how a target ended
    """A target ended before its last step (a DAG failed, the version did not change)."""

    def __init__(self, outcome: TargetOutcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class Abandoned(Exception):  # noqa: N818 - not an error: a worker let go after Ctrl-C
    """Raised in a worker following a task when the rollout was interrupted."""


@attrs.frozen
class Step:
    """One step of a plan: an upload, a DAG, or a confirmation.

    An upload sends ``path`` within ``upload_timeout`` (None: the client's default), checked
    once when the plan was made (``sha256``: its SHA-256, then read); a DAG is created
    through ``endpoint`` with ``request``.
    ``confirm`` says what is wrong (None: nothing) with an upload's package or ``/info``.
    """

    name: str
    kind: str  # "upload", "task" or "confirm"
    path: str = ""  # the package, for an upload
    upload_timeout: Optional[float] = None
    sha256: Optional[str] = None
    endpoint: Optional[TaskEndpoint[Any]] = attrs.field(default=None, eq=False)
    request: Any = None
    confirm: Optional[Callable[[Any], Optional[str]]] = attrs.field(default=None, eq=False)


@attrs.frozen
class Plan:
    """What a rollout does on every target: its steps, and how it is written in the journal."""

    kind: str
    describe: dict[str, object]
    steps: tuple[Step, ...]
    #: Says (a note) when ``/info`` shows a target already where the plan leads: nothing to do;
    #: raises :class:`Ended` when it shows one the plan cannot lead there (past it, say).
    already: Optional[Callable[[AgentInfo], Optional[str]]] = attrs.field(default=None,
                                                                          eq=False)
    #: (errCode, check): a refusal with that code by a target ``check(/info)`` finds already
    #: where the plan leads is a success with nothing done; ``check`` says the note.
    refused_there: Optional[tuple[str, Callable[[AgentInfo], Optional[str]]]] = attrs.field(
        default=None, eq=False)


class TargetRun:
    """Runs a plan's steps on one target through its client, journaling each."""

    def __init__(self, record: TargetRecord, client: ObshellClient, journal: Journal,
                 timeout: float, show: Callable[[str, Optional[DagDetail]], None],
                 stop: Optional[threading.Event] = None,
                 claims: Optional[AgentClaims] = None) -> None:
        self.target = record.target
        self.claims = claims  # the run's: one agent named two ways is one target
        #: The target this one's agent is already, under another name (refused, no failure).
        self.alias_of: Optional[str] = None
        self.stop = stop  # set: let go of the task followed (Ctrl-C), raising Abandoned
        self.record = record
        self.client = client
        self.journal = journal
        self.timeout = timeout
        self.show = show
        self.dag_ids: list[str] = [s.dag_id for s in record.steps.values() if s.dag_id]
        self.logged_in = False
        #: What is worth knowing about a success (the target was already there).
        self.note: Optional[str] = None

    def run(self, plan: Plan) -> None:
        """Every step not done yet; raises :class:`Ended` or an SDK error when one fails.

        A target already where the plan leads, with no upgrade made here (or maybe made),
        is left alone with a :attr:`note` saying so (obshell would refuse the upgrade as not
        newer); or refused, naming the task, while an unfinished one may hold its lock.
        Uploads wait while a task of the target's is under way (the agent may be restarting
        for it): they go before the next task is made, if one is.
        """
        if self._already_there(plan):
            return
        waiting: list[Step] = []
        for step in plan.steps:
            done = self.record.steps.get(step.name)
            if done is not None and done.status == "done":
                continue
            if step.kind == "upload" and under_way(self.record):
                waiting.append(step)
                continue
            self.show(step.name, None)
            if step.kind == "upload":
                self._upload(step)
                continue  # journaled done by _upload
            if step.kind == "task":
                self._task(step, done, waiting)
            else:
                assert step.confirm is not None
                problem = step.confirm(self.client.info())
                if problem:
                    raise Ended(TargetOutcome.FAILED, problem)
            self.journal.step(self.target, step.name, "done")

    def _already_there(self, plan: Plan) -> bool:
        """Whether the target already runs what the plan leads to, and nothing holds it."""
        if plan.already is None:
            return False
        for step in plan.steps:
            s = self.record.steps.get(step.name)
            if s is None or not s.made_task:
                continue  # no task made here
            lockless = step.endpoint is not None and not step.endpoint.maintenance
            if not (s.status == "done" and lockless):  # a pre-check that ended does not count
                return False
        info = self.client.info()
        other = None if self.claims is None else self.claims.claim(self.target, info)
        if other is not None and not self.record.steps:  # it has sent nothing yet
            self.alias_of = other
            raise Ended(TargetOutcome.REFUSED, (
                f"the same agent as target {other} (both answer as {info.ip}:{info.port}, "
                f"process {info.pid}): name each agent one way in the targets; nothing was "
                "sent to it"))
        return self._there(plan.already(info))

    def there_anyway(self, plan: Plan, exc: ApiError) -> bool:
        """Whether the agent refused a step because the target is where ``plan`` leads.

        ``plan.refused_there`` names the refusal and reads ``/info``: an OceanBase cluster
        at the target build is refused as not newer.
        """
        code, there = plan.refused_there or ("", None)
        return there is not None and exc.err_code == code and self._there(
            there(self.client.info()))

    def _there(self, note: Optional[str]) -> bool:
        """A target found where the plan leads (``note`` says so) is done, journaled so.

        Not while a task may hold the cluster's lock (any but a pre-check: :func:`holds_lock`):
        an upgrade that failed after the agent's restart (stage 7 of 9), or a rolling one after
        this agent's zone, leaves ``/info`` at the new version.
        A target held so is refused, naming the task (obshell would refuse it as not newer).
        """
        if not note:
            return False
        dag = next((d for d in self.client.unfinished_dags() if holds_lock(d)), None)
        if dag is not None:
            raise Ended(TargetOutcome.REFUSED, f"{note}; yet task {dag.id} {dag.name!r} is "
                        f"unfinished there, {state_text(dag)}, and may hold the cluster's lock: "
                        f"not taken for done. See it with {self._agent()}.task({dag.id!r})."
                        "refresh(); wait for it to end, or, if it failed (or was cancelled), "
                        "retry it (or roll back or skip it where its nodes allow); then run the "
                        "rollout again")
        self.note = note
        self.journal.step(self.target, "confirm", "done")
        return True

    def upload_missing(self, plan: Plan) -> list[str]:
        """The plan's uploads not done yet, done now; the steps' names.

        For a target that failed on a task: a rerun given the package it lacked uploads it,
        so that a retry by hand can pass (a retry before it would fail alike).
        """
        sent = []
        for step in plan.steps:
            done = self.record.steps.get(step.name)
            if step.kind == "upload" and (done is None or done.status != "done"):
                self._upload(step)
                sent.append(step.name)
        return sent

    def _upload(self, step: Step) -> None:
        """Upload ``step``'s package (journaled started, then done), or raise Ended (refused).

        One journaled started before (its reply lost, its runner stopped: it may be stored)
        is looked for in the target's package list first (:func:`stored_copy`), and uploaded
        only when the list lacks it: each upload stores another copy.
        """
        if not self.logged_in:  # a wrong password refused before any upload
            log_in(self.client)
            self.logged_in = True
        found = stored_copy(self.client.packages(), step.path) if (
            step.name in self.record.steps) else None  # a first run lists nothing
        if found is None:
            self.journal.step(self.target, step.name, "started")
            uploaded = self.client._upload_checked(step.path, step.sha256, step.upload_timeout,
                                                   said_as=SaidAs(rollout=True))
        else:
            log.info("%s: %s found stored as package %s: not uploaded again", self.target,
                     step.name, found.pkg_id)
            uploaded = found
        problem = step.confirm(uploaded) if step.confirm is not None else None
        if problem:  # nothing started: a rerun with the right package goes on
            raise Ended(TargetOutcome.REFUSED,
                        f"{problem}. {stored_said(uploaded.pkg_id, self._agent())}")
        self.journal.step(self.target, step.name, "done", note=None if found is None else
                          f"found stored as package {found.pkg_id}, not uploaded")

    def _task(self, step: Step, record: Optional[StepRecord], waiting: list[Step]) -> None:
        assert step.endpoint is not None
        task: Optional[DagTask] = None
        sent: Optional[Sent] = None  # a call whose id is not known to be the step's task yet
        if record is not None and record.dag_id:  # the agent gave us its id
            task = self._named(step, record.dag_id)  # another task's: refused at once
        elif record is not None and record.status == "sending":
            task = self._look_up(step, record)  # None: it proved the call made nothing
        if task is None:
            for late in waiting:  # a new task comes: it needs what was given
                self._upload(late)
            waiting.clear()
            task, sent = self._create(step)  # sent: a reply of an id only, not yet known
        try:
            for detail in task.snapshots(self.timeout, stop=self.stop):
                if sent is not None:  # a read showed the step's name: the id is the step's
                    self._created(step, task.id)
                    sent = None
                self.show(step.name, detail)
        except ObshellError as exc:  # the task exists and may still run: a rerun follows it
            note = follow_note(exc, step.endpoint, sent, journaled=bool(record and record.dag_id))
            said = str(exc).rstrip(".") if note else str(exc)  # the note starts a sentence
            raise Ended(TargetOutcome.UNKNOWN, f"{type(exc).__name__}: {said}{note}") from exc
        if not task.done() or task.snapshot is None:  # stopped: the journal says where it is
            raise Abandoned(self.target)
        detail = task.snapshot
        outcome = _BY_DAG.get(detail.outcome)
        label = f"{step.name} task {detail.id} {detail.name!r}"
        if outcome is TargetOutcome.FAILED:  # where, the failing sub-task's last log line, next
            raise Ended(outcome, f"{failure_line(label, detail)}; see it with {self._agent()}.task("
                        f"{detail.id!r}).refresh(), then retry it (or roll back or skip it where "
                        "its nodes allow) and run the rollout again")
        if outcome is not None:
            raise Ended(outcome, f"{label} ended {detail.state} ({detail.outcome})")

    def _named(self, step: Step, dag_id: str) -> DagTask:
        """Task ``dag_id``, known to exist, whose reads must show the name ``step`` gives."""
        assert step.endpoint is not None
        return DagTask(self.client, dag_id, policy=self.client.poll_policy, exists=True,
                       name=step.endpoint.dag_name(step.request))

    def _created(self, step: Step, dag_id: str) -> None:
        """Journal ``step`` created as task ``dag_id``, one of this target's tasks."""
        self.journal.step(self.target, step.name, "created", dag_id=dag_id)
        if dag_id not in self.dag_ids:
            self.dag_ids.append(dag_id)

    def _agent(self) -> str:
        """How Python reaches this target's agent, in the hints of its messages."""
        return python_client(self.client)

    def _create(self, step: Step) -> tuple[DagTask, Optional[Sent]]:
        """``step``'s task, made, and while its reply named no task, the call's ``Sent``."""
        assert step.endpoint is not None
        sent: Sent = (None, None)

        def journal_send(existed: Optional[frozenset[str]], sent_at: float) -> None:
            nonlocal sent
            sent = (existed, sent_at)
            self.journal.step(self.target, step.name, "sending", sent_at=sent_at,
                              existed=existed)

        try:
            task = self.client._create_task(step.endpoint, step.request, journal_send)
        except ObshellError as exc:
            if step.endpoint.never_ran(exc):  # a rerun may send it
                self.journal.step(self.target, step.name, "unsent")
            elif isinstance(exc, ApiError):  # a 5xx that may come after the DAG was made
                raise Ended(TargetOutcome.UNKNOWN, f"{type(exc).__name__}: {exc}; the "
                            "task may have been made: a rerun looks for it") from exc
            raise
        if task.snapshot is None:  # a reply of an id only: it stays sending until a read
            return task, sent  # shows its name (_task); a rerun looks it up
        self._created(step, task.id)
        return task, None

    def _look_up(self, step: Step, record: StepRecord) -> Optional[DagTask]:
        """A create call whose reply was never recorded: find what it made, or prove it none.

        None (journaled unsent) when the agent proves it made nothing (:func:`made_none`).
        """
        assert step.endpoint is not None
        lost = ConnectionLostError("the create call's outcome was never recorded (the runner "
                                   "stopped, or the agent's error reply did not prove it made "
                                   "nothing)",
                                   method="POST", path=step.endpoint.path, agent=self.client.agent)
        client = self.client
        try:
            detail = find_created_dag(client, step.endpoint, step.endpoint.dag_name(step.request),
                                      record.sent_at or 0.0, lost, existed=record.existed)
        except OutcomeUnknownError as exc:  # not "before retrying": a rerun resends only
            if made_none(client, step.endpoint, record.existed, record.sent_at):  # on proof
                log.warning("%s: its %s call made no task, as the agent's last maintenance "
                            "task shows: sending it now", self.target, step.name)
                self.journal.step(self.target, step.name, "unsent")
                return None
            raise Ended(TargetOutcome.UNKNOWN, f"{exc}. " + rerun_note(
                step.endpoint, record.existed, record.sent_at)) from exc
        self._created(step, detail.id)
        log.info("%s: found %s task %s, created before the runner stopped", self.target,
                 step.name, detail.id)
        return self._named(step, detail.id)
