"""What a rollout reports: how each target ended, and the whole."""

from __future__ import annotations

from datetime import datetime
from typing import Optional, Union

import attrs

from ._journal import TargetOutcome
from ._render import rollout_text

__all__ = ["RolloutReport", "TargetResult"]


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

    results: dict[str, TargetResult]
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
