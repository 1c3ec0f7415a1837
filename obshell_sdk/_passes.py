"""When the agent's task scheduler runs, so that polls land just after it did.

obshell moves a DAG on only in a pass of its task scheduler, which handles every unfinished
DAG and then sleeps a second (``ob/agent/engine/scheduler/scheduler.go: run``, with
``constant.SCHEDULER_INTERVAL``). A DAG starts, a node starts or ends and the DAG ends only in
a pass, and each is stamped with the time it was written (``service/task: StartDag``,
``StartNode``, ``FinishNode``, ``updateDagState``). So the times a DAG shows tell when its
scheduler's passes fell, and the next passes follow about a period apart (the period plus
the time a pass takes). A poll sent just after a pass sees everything that pass did; a poll
sent between two passes learns nothing new.

:class:`Passes` collects those stamps (on the clock they were written by: OceanBase's, for a
cluster DAG) and says when the next poll should go out: just after the pass it predicts
nearest to when the poll was due, never before a given earliest time. It predicts nothing
before it has seen two passes in a row (a few passes apart fit some period by chance), when
the last passes it saw do not fit the period (an agent whose DAGs move at any time, as the
fake agent's time-driven DAGs do by default; an agent restarted with a new phase, until it
has shown a few passes again), or when the last pass it saw is too long ago to predict
from. :class:`AgentClock` maps the agent's clock to ours, from the timestamps of its
replies.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Optional

from ._dag import DagDetail, DagState

__all__ = ["AgentClock", "Passes"]

#: Stamps closer than this (seconds) were written in one pass: a pass writes a node's end and
#: the DAG's end, or the DAG's start and its first node's, a few milliseconds apart. (At 0.1,
#: four steps 25 ms apart of a DAG moving at any time made one "pass" a second after the
#: start, and the next poll went a second late.)
ONE_PASS = 0.05
#: A poll goes out this long after the pass it waits for (the pass's writes take a moment),
#: plus up to ``SPREAD`` more at random, so the waiters of one agent do not poll in step.
MARGIN = 0.1
SPREAD = 0.05
#: And this much later again for every period it predicts ahead: passes come a little
#: irregularly, so a prediction drifts.
DRIFT_PER_PASS = 0.02
#: Two passes fit when they are a whole number of learnt periods apart, give or take this
#: much (plus ``DRIFT_PER_PASS`` per period, for up to three).
FIT = 0.05
#: A pass takes its own time on top of the scheduler's sleep: two passes in a row come at
#: least the period (less ``FIT``) and at most this many periods apart.
LONGEST = 1.5
#: Predict at most this many periods past the last pass seen.
HORIZON = 6
#: Keep this many of the latest passes: all must fit the period (after a restart, the
#: scheduler's new passes are trusted once the old ones have left these).
KEEP = 4
#: Group only this many of a snapshot's newest stamps into passes: the latest ``KEEP`` passes
#: are made of them (a pass writes a few stamps), and a DAG of thousands of nodes then costs
#: a poll no more than a small one.
RECENT = 64

_RAN = frozenset((DagState.RUNNING, DagState.SUCCEED, DagState.FAILED))
_ENDED = frozenset((DagState.SUCCEED, DagState.FAILED))


def _stamps(detail: DagDetail) -> list[float]:
    """The times the scheduler wrote in ``detail``, where its state says they are set.

    Sub-task times are left out: the executor writes them, outside the passes.
    """
    found: list[Optional[datetime]] = []
    if detail.state in _RAN:
        found.append(detail.start_time)
    if detail.state in _ENDED:
        found.append(detail.end_time)
    for node in detail.nodes or ():
        if node.state in _RAN:
            found.append(node.start_time)
        if node.state in _ENDED:
            found.append(node.end_time)
    return sorted(t.timestamp() for t in found if t is not None)


def _learnt_period(ends: list[float], period: float) -> Optional[float]:
    """The time between two passes here, from passes in a row; None if the passes misfit.

    At least two passes in a row must have been seen (obshell writes a node's end in one
    pass and starts the next node in the following one): gaps of several periods alone fit
    some period by chance. The slack a gap is allowed stops growing after three periods.
    """
    gaps = [after - before for before, after in zip(ends, ends[1:])]
    in_a_row = sorted(g for g in gaps if period - FIT <= g <= LONGEST * period)
    if not in_a_row:
        return None
    learnt = in_a_row[len(in_a_row) // 2]
    for gap in gaps:
        periods = round(gap / learnt)
        if periods < 1 or abs(gap - periods * learnt) > FIT + DRIFT_PER_PASS * min(periods, 3):
            return None
    return learnt


class Passes:
    """The scheduler passes one DAG's stamps show, and when to poll after them.

    Not thread-safe: one per :class:`~obshell_sdk.DagTask`.
    """

    def __init__(self) -> None:
        self._passes: list[tuple[float, float]] = []  # first and last stamp of each, ascending
        self._known: set[float] = set()
        self._asked: Optional[float] = None  # our clock when the last poll was sent
        #: The most the stamps' clock can be ahead of ours (None: not known yet).
        self.clock_bound: Optional[float] = None

    def observe(self, detail: DagDetail, sent: float) -> None:
        """Take in a snapshot fetched by a poll sent at ``sent`` (our clock, Unix seconds).

        A stamp the previous poll did not show was written after that poll was sent: the
        stamps' clock is at most that far ahead of ours (a bound on the agent's clock
        offset, which DAG times may not share: a cluster's come from OceanBase's clock).
        """
        new = [stamp for stamp in _stamps(detail) if stamp not in self._known]
        if self._asked is not None and new:
            bound = min(new) - self._asked
            if self.clock_bound is None or bound < self.clock_bound:
                self.clock_bound = bound
        self._asked = sent
        self._known.update(new)
        for stamp in new[-RECENT:]:  # ascending: the newest
            for i, (first, last) in enumerate(self._passes):
                if max(last, stamp) - min(first, stamp) < ONE_PASS:
                    self._passes[i] = (min(first, stamp), max(last, stamp))
                    break
            else:
                self._passes.append((stamp, stamp))
                self._passes.sort()
        del self._passes[:-KEEP]

    def next_poll(self, target: float, earliest: float, period: float) -> Optional[float]:
        """When (stamps' clock) to poll: just after a predicted pass, nearest to ``target``.

        Never before ``earliest``. None when there is nothing to predict from (see the
        module's docstring).
        """
        ends = [last for _, last in self._passes]
        learnt = _learnt_period(ends, period)  # None before two passes in a row
        if learnt is None:
            return None
        best: Optional[float] = None
        for ahead in range(1, HORIZON + 1):
            at = ends[-1] + ahead * learnt + MARGIN + DRIFT_PER_PASS * ahead
            if at < earliest:
                continue
            if best is not None and abs(at - target) >= abs(best - target):
                break
            best = at
        if best is None or abs(best - target) > learnt:  # due beyond the horizon
            return None
        return best + random.uniform(0, SPREAD)  # noqa: S311 - spreading load, not a secret

    def pause(self, pause: float, soonest: float, period: Optional[float],
              offset: Optional[float], now: float) -> float:
        """Seconds from ``now`` (our clock) to the next poll, due in about ``pause``.

        Just after a predicted pass, never sooner than ``soonest`` seconds. ``period`` is the
        scheduler's (None: not known); ``offset`` how far the agent's clock is ahead of ours
        (None: not known yet), which the stamps' clock may not share (:attr:`clock_bound`).
        ``pause`` itself when nothing predicts a pass.
        """
        if period is None or offset is None:
            return pause
        bound = self.clock_bound  # the DAG's times may run on another clock
        now += offset if bound is None else min(offset, bound)  # on the stamps' clock
        at = self.next_poll(now + pause, now + soonest, period)
        return pause if at is None else at - now


#: An older reading counts as this much less precise per second of its age (clocks drift).
_AGEING = 1e-3


class AgentClock:
    """How far the agent's clock is ahead of ours, read from the timestamps of its replies.

    Each reply says when the agent built it; the agent's clock then read that while ours
    read somewhere between sending and receiving. The reading with the shortest round trip
    is kept, unless a newer one is about as precise.
    """

    def __init__(self) -> None:
        self._best: Optional[tuple[float, float, float]] = None  # offset, error, taken at

    def note(self, stamp: Optional[datetime], sent: float, received: float) -> None:
        """Take a reply built at ``stamp`` (agent clock), sent and received at our times."""
        if stamp is None:
            return
        error = (received - sent) / 2
        best = self._best
        if best is None or error <= best[1] + (received - best[2]) * _AGEING:
            self._best = (stamp.timestamp() - (sent + received) / 2, error, received)

    @property
    def offset(self) -> Optional[float]:
        """Seconds the agent's clock is ahead of ours (None before any reply)."""
        best = self._best
        return None if best is None else best[0]

    def reading(self, now: float) -> Optional[tuple[float, float]]:
        """:attr:`offset` and how far it may be off at ``now`` (our clock), or None.

        Half the round trip of the reply it was read from, aged as :meth:`note` ages it.
        """
        best = self._best
        if best is None:
            return None
        return best[0], best[1] + max(0.0, now - best[2]) * _AGEING
