"""How a DagTask paces its polls: the policy knobs, and the last stage's predicted end."""

from __future__ import annotations

from typing import Optional

import attrs

from ._models import DagDetail
from ._validate import check_seconds
from ._wire import shared_repr

__all__ = ["PollPolicy", "StageClock"]


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    check_seconds(value, attribute.name)


@shared_repr
@attrs.frozen(repr=False)
class PollPolicy:
    """How a :class:`DagTask` polls. Immutable: ``policy.evolve(ceiling=10)`` returns a copy.

    The interval is ``fraction`` of the time the task has been followed, at least ``initial``
    and at most ``ceiling`` seconds, with +-``jitter`` spread (never past the ceiling). When
    the DAG is on its last stage, one poll is moved to just after its predicted end. See
    ``benchmarks/RESULTS.md`` for what the defaults cost and how fast they notice the end.
    After a failed poll the interval doubles from ``initial`` up to ``ceiling``;
    ``failure_budget`` is how long polls may keep failing in a row (the agent restarts itself
    during its own upgrade) before giving up.
    """

    initial: float = attrs.field(default=0.3, validator=_positive)
    fraction: float = attrs.field(default=0.28, validator=_positive)
    ceiling: float = attrs.field(default=3.0, validator=_positive)
    jitter: float = attrs.field(default=0.1)
    failure_budget: float = attrs.field(default=300.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.ceiling < self.initial:
            raise ValueError("PollPolicy: ceiling must not be below initial")
        if not 0 <= self.jitter < 1:
            raise ValueError("PollPolicy: jitter must be in [0, 1)")

    def interval(self, followed_for: float) -> float:
        """Seconds to sleep before the next poll of a task followed for ``followed_for`` s."""
        base = min(self.ceiling, max(self.initial, self.fraction * followed_for))
        return self._spread(base)

    def retry_interval(self, failures: int) -> float:
        """Seconds to sleep after ``failures`` failed polls in a row."""
        base = min(self.ceiling, self.initial * (2 ** min(failures - 1, 16)))
        return self._spread(base)

    def _spread(self, base: float) -> float:
        if not self.jitter:
            return base
        import random  # here, not at import time: only polling needs it

        spread = base * random.uniform(1 - self.jitter, 1 + self.jitter)  # noqa: S311
        return min(self.ceiling, spread)

    def evolve(self, **changes: float) -> PollPolicy:
        """A copy with some knobs changed."""
        return attrs.evolve(self, **changes)


class StageClock:
    """Watches stage changes to predict when a DAG on its last stage will end.

    A stage change is dated halfway between the poll before it and the poll that saw it; with
    two changes seen, the mean stage length gives the last stage's expected end. This adds at
    most one poll per task, right where the end is most likely.
    """

    def __init__(self) -> None:
        self._stage = 0
        self._last_poll = 0.0
        self._changes: list[tuple[float, int]] = []

    def observe(self, detail: DagDetail, now: float) -> Optional[float]:
        """Note a poll's result at ``now``; the predicted end of the last stage, if known."""
        if self._stage and detail.stage > self._stage:
            self._changes.append(((self._last_poll + now) / 2, detail.stage))
        self._stage, self._last_poll = detail.stage, now
        if len(self._changes) < 2 or detail.stage != detail.max_stage:
            return None
        (t0, s0), (t1, s1) = self._changes[0], self._changes[-1]
        return t1 + (t1 - t0) / (s1 - s0)
