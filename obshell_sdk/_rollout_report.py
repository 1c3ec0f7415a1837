"""What a rollout reports: how each target ended, and the whole; and a rollout that stopped."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Optional, Union

import attrs

from ._exceptions import ObshellError
from ._journal import FINAL, TargetOutcome, TargetRecord, under_way
from ._render_rollout import report_repr, rollout_report_html, rollout_text

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ._client import ObshellClient

__all__ = ["HINT_CALLS", "RolloutReport", "RolloutStoppedError", "TargetResult", "ended_result",
           "not_run", "python_client", "result_of", "target_said", "utc_time"]

#: The client's calls the library's texts name in what to do next: only those are a hint's
#: (an agent's own words, ``http client.do(``, are never rewritten).
HINT_CALLS = (r"(?:task|info|packages|upload_package|delete_package|unfinished_dags|"
              r"last_maintenance_dag|cluster_dags|get_dag|operate_dag|upgrade_agent|upgrade_ob|"
              r"check_agent_upgrade|check_ob_upgrade|run_agent_upgrade|run_ob_upgrade)\(")
#: A call on ``client`` in what a library text says to do next (``client.task('11').wait()``).
_CLIENT_CALL = re.compile(rf"(?<![\w./])client\.(?={HINT_CALLS})")


@attrs.frozen
class TargetResult:
    """How one target of a rollout ended (as far as this run or an earlier one saw)."""

    #: ``"host:port"``.
    target: str
    #: succeeded, failed, rolled_back, cancelled, skipped, unknown, unreachable or refused.
    outcome: TargetOutcome
    #: The DAGs created on the target, oldest first (pre-check, then upgrade).
    dag_ids: tuple[str, ...] = ()
    started_at: Optional[datetime] = None
    ended_at: Optional[datetime] = None
    #: What went wrong, when something did.
    error: Optional[str] = None
    #: What is worth knowing about a success, e.g. that the target was already there.
    note: Optional[str] = None


@attrs.frozen
class RolloutReport:
    """What a rollout did: ``results`` maps each ``"host:port"`` to its :class:`TargetResult`."""

    #: Each target's result, in the rollout's order (left out of the hash: a dict has none).
    results: dict[str, TargetResult] = attrs.field(hash=False)
    #: The journal file, to resume with or to read with ``obshell-sdk rollout status``.
    journal: str

    @property
    def ok(self) -> bool:
        """True only when every target succeeded."""
        return all(r.outcome is TargetOutcome.SUCCEEDED for r in self.results.values())

    def count(self, outcome: Union[TargetOutcome, str]) -> int:
        """How many targets ended with ``outcome``."""
        return sum(1 for r in self.results.values() if r.outcome == outcome)

    def __str__(self) -> str:
        return rollout_text(self)

    def __repr__(self) -> str:
        return report_repr(self)

    def _repr_html_(self) -> str:
        """The report as a notebook card: a row per target, its outcome and task ids."""
        return rollout_report_html(self)


def result_of(record: TargetRecord, outcome: TargetOutcome, text: Optional[str],
              dag_ids: Sequence[str] = ()) -> TargetResult:
    """A target's result; ``text`` is the word on its ending: a success's note, else the error."""
    ids = tuple(dag_ids) or tuple(s.dag_id for s in record.steps.values() if s.dag_id)
    ok = outcome is TargetOutcome.SUCCEEDED
    return TargetResult(record.target, outcome, ids, utc_time(record.started_at),
                        utc_time(record.ended_at or time.time()), None if ok else text,
                        text if ok else None)


def python_client(client: ObshellClient) -> str:
    """How Python reaches a rollout target's agent: ``ObshellClient('h', 2886, auth=...)``."""
    tls = ", https=True, ..." if client.base_url.startswith("https") else ""
    return f"ObshellClient({client.host!r}, {client.port}{tls}, auth=...)"


def target_said(text: str, client: Optional[ObshellClient]) -> str:
    """A target's error, ``text``, its hints' calls on ``client`` made on the target's own.

    The library's errors say what to do next as calls on the caller's ``client``; a rollout
    has none: its target's error names :func:`python_client` instead (``client`` None: no
    client was made, so none is named). The one place that does it, for every error a target
    reports; the CLI says them as commands (its ``cli_words``).
    """
    return text if client is None else _CLIENT_CALL.sub(python_client(client) + ".", text)


def ended_result(record: TargetRecord) -> Optional[TargetResult]:
    """How the journal says ``record``'s target ended, if it ended for good."""
    if record.outcome is None or TargetOutcome(record.outcome) not in FINAL:
        return None
    return result_of(record, TargetOutcome(record.outcome), record.error)


def not_run(record: TargetRecord, why: str, started: bool = False
            ) -> tuple[TargetOutcome, str]:
    """How a target a run did not follow to its end, for ``why``, ends in that run.

    Skipped; unknown when a task of it may be under way (an earlier run's, or this run's
    when it ``started`` the target).
    """
    if started or under_way(record):
        return TargetOutcome.UNKNOWN, (f"its task may be under way, not followed to its end in "
                                       f"this run ({why}): a rerun does")
    return TargetOutcome.SKIPPED, why


def utc_time(value: Optional[float]) -> Optional[datetime]:
    """A journal's time (seconds since the epoch) as an aware datetime in UTC."""
    return None if value is None else datetime.fromtimestamp(value, tz=timezone.utc)


class RolloutStoppedError(ObshellError):
    """A rollout stopped before its end on an error of its own, not a cluster's.

    Its journal could not be written or read (a full disk, a row changed by hand), or the
    SDK has a bug: ``__cause__`` is that error. The targets running then were followed to
    their end; a task of ``target``, the one whose turn hit the error, may still be running
    on its agent. ``report`` says where each target stood, as far as the journal says:
    ``unknown`` for those whose task may be under way, ``skipped`` for those not started.
    Running the rollout again resumes it from its journal.
    """

    def __init__(self, message: str, *, report: RolloutReport, target: str) -> None:
        super().__init__(message)
        self.report = report
        self.target = target

    @classmethod
    def of(cls, exc: BaseException, target: str, report: RolloutReport) -> RolloutStoppedError:
        """The error for a rollout that ``exc``, raised in ``target``'s turn, stopped."""
        return cls(f"the rollout stopped in {target}'s turn on {type(exc).__name__}: {exc}. "
                   "This is no cluster's failure: the journal could not be written or read, or "
                   f"the SDK has a bug. A task of {target}'s may still run on its agent. Mend "
                   f"the cause, then run the rollout again with journal {report.journal!r} to "
                   "resume it; the error's .report says where each target stood",
                   report=report, target=target)
