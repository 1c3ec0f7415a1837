"""Telling the DAG a lost create POST made from the others, on the agent's clock.

A DAG the agent listed before the POST is never it. Otherwise obshell stamps a started DAG's
``start_time`` (with OceanBase's clock for a cluster task, the agent's for a local one; the
two normally agree), so the judgement is made on the agent's clock, read after the loss: the
DAG must have started no earlier than the POST was sent, give or take the measurement's
uncertainty. That holds only while the agent's clock keeps the pace of ours: one set back
after the POST (a restart with the hardware clock in local time, NTP stepping it) would date
an earlier run after the POST. So the clock read after the loss must agree with the one read
just before the POST (the timestamps of the agent's replies to the listing), and no DAG of
the name may be dated after the agent's present; else a DAG of the name whose times must be
judged raises :class:`ClockDisagreesError`: the times cannot tell, and the lookup says so
instead of taking a task. (A DAG not listed before the POST and not started yet needs no
clock.)
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Optional, Protocol

from ._dag import DagDetail
from ._exceptions import DecodeError

__all__ = ["CLOCK_MARGIN", "ClockDisagreesError", "ClockReads", "Judge"]

#: Seconds of slack when judging a DAG's times against the agent's clock: obshell's own
#: time-stamping (OceanBase's clock for a cluster task) and our measurement's rounding.
CLOCK_MARGIN = 1.0


class ClockReads(Protocol):
    """The read of the agent's clock a lookup makes."""

    @property
    def agent(self) -> str:
        """``host:port``, for messages."""

    def server_time(self, *, timeout: Optional[tuple[float, float]] = None
                    ) -> Optional[datetime]:
        """The agent's clock."""


class ClockDisagreesError(Exception):
    """The agent's clock and the times its tasks show cannot tell which DAG the POST made.

    Not an ObshellError: the lookup does not read again after it. Its message says why.
    """


class Judge:
    """Tells a DAG the lost POST created from one that was there before (see the module).

    ``sent_at``: when the POST was sent (our wall clock); ``existed``: the ids listed before
    it (None if unknown); ``before``: how far the agent's clock was ahead of ours just before
    it and how far that may be off (``AgentClock.reading``; None if unknown).
    """

    def __init__(self, reads: ClockReads, sent_at: float, existed: Optional[frozenset[str]],
                 before: Optional[tuple[float, float]] = None) -> None:
        self._reads = reads
        self._sent_at = sent_at
        self._existed = existed
        self._before = before
        self.earliest: Optional[float] = None  # agent time before which no new DAG started
        self._now = (0.0, 0.0)  # the agent's clock as read, our monotonic time it was asked
        self._moved: Optional[str] = None  # how the clock moved since the POST, if it did

    def measure(self, timeout: tuple[float, float]) -> None:
        """Read the agent's clock within ``timeout`` (ObshellError if it cannot be read).

        Notes whether it moved against ours since it was read before the POST.
        """
        asked, before = time.monotonic(), time.time()
        now = self._reads.server_time(timeout=timeout)
        after = time.time()
        if now is None:
            raise DecodeError("the agent's clock reads as unset", where="data", method="GET",
                              path="/api/v1/time", agent=self._reads.agent)
        error = (after - before) / 2
        offset = now.timestamp() - (before + after) / 2
        if self._before is not None:
            moved = offset - self._before[0]
            if abs(moved) > self._before[1] + error + CLOCK_MARGIN:
                self._moved = (
                    f"the agent's clock, against this machine's, moved {_span(moved)} "
                    f"{'forward' if moved > 0 else 'back'} between the call and the lookup "
                    f"(it now reads {now.isoformat()}: restarted with a clock set otherwise, "
                    "or stepped by NTP?)")
        self.earliest = self._sent_at + offset - error - CLOCK_MARGIN
        self._now = (now.timestamp(), asked)

    def created_by_us(self, dag: DagDetail, name: str) -> bool:
        """Same name, not there before, and started after the POST was sent (agent clock).

        One not started yet (no start time) needs no clock: it counts when the lists before
        the POST are known. :class:`ClockDisagreesError` for one whose times must be judged
        when the agent's clock moved, or that is dated after the agent's present.
        """
        if dag.name != name or self.earliest is None:
            return False
        if self._existed is not None and dag.id in self._existed:
            return False
        if dag.start_time is None:
            return self._existed is not None
        if self._moved is not None:
            raise ClockDisagreesError(self._moved)
        self._not_after_now(dag)
        return dag.start_time.timestamp() >= self.earliest

    def ran_for_us(self, dag: DagDetail, name: str) -> bool:
        """:meth:`created_by_us`, for a DAG of the agent's whole history (finished ones too).

        The history holds the same call's earlier runs, one of which may have ended just
        before the POST, within the clock's uncertainty. So only a DAG that started, and that
        (if it ended) ended more than that uncertainty after the POST counts: a real
        pre-check runs for seconds.
        """
        if dag.start_time is None or self.earliest is None or not self.created_by_us(dag, name):
            return False
        ended = dag.end_time if dag.is_finished else None  # a running DAG's is its creation
        return ended is None or ended.timestamp() >= self.earliest + 2 * CLOCK_MARGIN

    def _not_after_now(self, dag: DagDetail) -> None:
        """:class:`ClockDisagreesError` if ``dag`` started or ended after the agent's present.

        Its times were then written by another clock than the one measured (OceanBase's, or
        the agent's before it was set back): they cannot be judged on it.
        """
        latest = self._now[0] + (time.monotonic() - self._now[1]) + CLOCK_MARGIN
        for what, stamp in (("started", dag.start_time),
                            ("ended", dag.end_time if dag.is_finished else None)):
            if stamp is not None and stamp.timestamp() > latest:
                raise ClockDisagreesError(
                    f"task {dag.id} of that name {what} at {stamp.isoformat()}, "
                    f"{_span(stamp.timestamp() - latest)} after the agent's clock reads now "
                    "(its times were written by another clock: OceanBase's, or the agent's "
                    "before it was set back)")


def _span(seconds: float) -> str:
    """``seconds`` (either sign) as a person reads it: 8.0 h, 19 min, 3.2 s."""
    seconds = abs(seconds)
    if round(seconds / 60) >= 60:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.1f} s"
