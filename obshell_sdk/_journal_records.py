"""What a journal says of its targets: their records, read back from its rows and checked.

A row no rollout writes (a file changed by hand, a damaged copy) is refused, naming the
target, rather than taken for a step that was or was not sent. Nothing here writes.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Optional

import attrs

from ._dag import TextEnum, task_id_problem
from ._exceptions import InvalidArgumentError

__all__ = ["FINAL", "StepRecord", "TargetOutcome", "TargetRecord", "records", "under_way"]


class TargetOutcome(TextEnum):
    """How one target of a rollout ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"
    #: The agent could not be reached, or a request that changes nothing lost its reply: a
    #: read (a GET), or the upload route's empty probe (it stores nothing). Nothing of the
    #: step under way was done. A rerun tries again.
    UNREACHABLE = "unreachable"
    #: A call was refused, by the agent (credentials, parameters, its lock) or by the SDK
    #: before signing, and made no task. Fix the cause; a rerun tries again.
    REFUSED = "refused"



@attrs.frozen
class StepRecord:
    """Where one step of one target stands.

    ``status`` is ``started``, ``sending`` (a create call may have reached the agent),
    ``unsent`` (it certainly did not), ``created`` (``dag_id`` known) or ``done``.
    """

    step: str
    status: str
    dag_id: Optional[str] = None
    sent_at: Optional[float] = None
    existed: Optional[frozenset[str]] = None

    @property
    def made_task(self) -> bool:
        """Whether this step made a task (its id is known) or may have (its reply was lost)."""
        return bool(self.dag_id) or self.status == "sending"


@attrs.frozen
class TargetRecord:
    """One target as the journal knows it; ``outcome`` None while it has not ended."""

    target: str
    position: int
    outcome: Optional[str]
    started_at: Optional[float]
    ended_at: Optional[float]
    error: Optional[str]
    steps: dict[str, StepRecord]


#: Outcomes a rerun of the rollout leaves alone: the target will not change by itself.
FINAL = frozenset({TargetOutcome.SUCCEEDED, TargetOutcome.FAILED, TargetOutcome.ROLLED_BACK,
                   TargetOutcome.CANCELLED})


def under_way(record: TargetRecord) -> bool:
    """Whether a task of the target's was made and has not ended here, or may have been."""
    return any(s.made_task and s.status != "done" for s in record.steps.values())


def records(db: sqlite3.Connection, path: str, only: Optional[str] = None) -> list[TargetRecord]:
    """Every target (or ``only`` that one), in the rollout's order, with its steps."""
    try:
        steps: dict[str, dict[str, StepRecord]] = {}
        for target, step, status, dag_id, sent_at, existed in db.execute(
                "SELECT target, step, status, dag_id, sent_at, existed FROM steps "
                "WHERE ?1 IS NULL OR target = ?1", (only,)):
            ids = None if existed is None else _ids(existed, target)
            if dag_id is not None and (not isinstance(dag_id, str) or task_id_problem(dag_id)):
                raise _tampered(target, f"task id {dag_id!r}")
            if status not in _STATUSES or not _time(sent_at):
                raise _tampered(target, f"step {step!r} as {status!r} sent at {sent_at!r}")
            steps.setdefault(target, {})[step] = StepRecord(step, status, dag_id, sent_at, ids)
        rows = db.execute("SELECT target, position, outcome, started_at, ended_at, error FROM "
                          "targets WHERE ?1 IS NULL OR target = ?1 ORDER BY position",
                          (only,)).fetchall()
        for target, position, outcome, started, ended, error in rows:
            if outcome is not None and outcome not in _OUTCOMES:
                raise _tampered(target, f"outcome {outcome!r}")
            if type(position) is not int or not (_time(started) and _time(ended)) or not (
                    error is None or isinstance(error, str)):
                raise _tampered(target, "a position, a time or an error")
        return [TargetRecord(t, p, o, s, e, err, steps.get(t, {})) for t, p, o, s, e, err in rows]
    except sqlite3.DatabaseError as exc:  # SQLite opens a damaged file (a bad page, a copy)
        raise InvalidArgumentError("journal", f"{path!r} cannot be read ({exc}): restore it "
                                   "from a copy (a new one knows none of its tasks)") from None


#: The outcomes a rollout writes.
_OUTCOMES = frozenset(outcome.value for outcome in TargetOutcome)
#: The statuses of a step (see StepRecord).
_STATUSES = frozenset({"started", "sending", "unsent", "created", "done"})


def _time(value: object) -> bool:
    """Whether a journaled time is one (or none): a number of seconds, not a boolean."""
    return value is None or (type(value) in (int, float))

def _ids(text: str, target: str) -> frozenset[str]:
    try:
        ids = json.loads(text)
    except ValueError:
        ids = None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise _tampered(target, "a task listing")
    return frozenset(ids)


def _tampered(target: str, what: str) -> InvalidArgumentError:
    return InvalidArgumentError("journal", f"its row for {target} holds {what} that no rollout "
                                "writes (was the file changed by hand?); give a new journal")
