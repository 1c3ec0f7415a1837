"""A rerun's second look at the targets that failed on a task, before anything else runs.

Someone may have retried, skipped or rolled back the failed task by hand since: a retried
or skipped one is followed on, a rolled-back or cancelled one left alone, and a task still
failed gets the uploads its plan has not done yet (the package it lacked, given now), so
that a retry by hand can pass.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

from ._dag import DagOutcome, Operator
from ._exceptions import ObshellError
from ._journal import TargetOutcome, TargetRecord
from ._rollout_report import target_said
from ._rollout_steps import Ended, Plan, TargetRun

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ._client import ObshellClient

__all__ = ["failed_task", "look_again", "revisit"]

log = logging.getLogger("obshell_sdk")


def look_again(client: ObshellClient, target: str, dag_id: str, name: str) -> str:
    """A failed target's task, read again: ``"follow"``, ``"failed"`` or ``"leave"``.

    ``follow`` when it was retried (it runs or succeeded) or skipped by hand: a rerun
    follows it on. ``failed`` when it is still failed and nothing acts on it: a package it
    lacked may be uploaded for a retry by hand. ``leave`` otherwise: a rollback or a
    cancel, done or under way, or a task of another name under that id (the agent is not
    the journal's any more).
    """
    detail = client.get_dag(dag_id, show_details=False)
    if detail.name != name:
        log.warning("%s: task %s is %r, not the failed %r: another agent than the journal's? "
                    "It stays failed", target, dag_id, detail.name, name)
        return "leave"
    log.info("%s: its failed task %s is %s now (operator %s)", target, dag_id, detail.outcome,
             detail.operator.value)
    by_hand = detail.operator in (Operator.RUN, Operator.RETRY)
    if detail.outcome is DagOutcome.RUNNING:
        return "follow" if by_hand else "leave"
    if detail.outcome in (DagOutcome.SUCCEEDED, DagOutcome.PASSED):
        return "follow"
    return "failed" if detail.outcome is DagOutcome.FAILED and by_hand else "leave"


def revisit(run: TargetRun, plan: Plan, dag_id: str, name: str) -> Optional[str]:
    """A rerun's visit to a target that failed on ``dag_id``: a look, then missing uploads.

    :func:`look_again` reads the task: None when the rerun follows it on. Still failed and
    left alone, the plan's uploads not done yet are done (the package the task lacked,
    given now, so that a retry by hand can pass). Else what the target's result says: the
    journal's text, and what was uploaded now or why the task could not be read.
    """
    record, sent, doing = run.record, [], "its task not read again"
    try:
        seen = look_again(run.client, record.target, dag_id, name)
        if seen == "follow":
            return None
        doing = "an upload failed"
        if seen == "failed":
            sent = run.upload_missing(plan)
    except (ObshellError, Ended) as exc:
        log.info("%s: %s (%s); it stays failed", record.target, doing, exc)
        return target_said(f"{record.error or 'failed'}; in this run {doing}: {exc}", run.client)
    if not sent:
        return record.error
    text = (f"{record.error or 'failed'}; {', '.join(sent)} done now: if the task failed for "
            f"want of it, retry task {dag_id} by hand (obshell-sdk task retry {dag_id}) and run "
            "the rollout again")
    run.journal.end(record.target, TargetOutcome.FAILED.value, text)
    return text


def failed_task(record: TargetRecord, plan: Plan) -> Optional[tuple[str, str]]:
    """The id of the task a failed target failed on, and that step's task name (or None)."""
    if record.outcome != TargetOutcome.FAILED.value:
        return None
    for step in plan.steps:
        done = record.steps.get(step.name)
        if done is not None and done.dag_id and done.status != "done" and step.endpoint:
            return done.dag_id, step.endpoint.dag_name(step.request)
    return None
