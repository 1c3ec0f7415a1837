"""The knobs of following a task, kept apart as google-api-core keeps them.

Three things are independent: the overall deadline of a wait (:class:`WaitDeadline`), the
cadence of polls (:class:`PollPolicy`), and each poll's own RPC timeout (the client's
``(connect, read)`` timeout, cut to the time left by :meth:`WaitDeadline.cut`). The failure
budget (how long polls may keep failing in a row, kept by :class:`FailureStreak`) decides
whether a failed poll is retried.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from typing import Any, Optional

import attrs

from ._dag import DagDetail
from ._deadline import cut_when
from ._exceptions import (
    ConnectError,
    DecodeError,
    InvalidArgumentError,
    ObshellError,
    ServerError,
    TaskNotFoundError,
    TransportError,
)
from ._render import unreachable_message
from ._task_errors import TaskUnreachableError
from ._validate import MAX_SECONDS, brief_repr, check_seconds

__all__ = ["FailureStreak", "PollPolicy", "WaitDeadline", "cut", "worth_repeating"]

#: No default cadence polls one task more often than this (seconds between polls).
MIN_INTERVAL = 0.5
#: Seconds a task seen before may fail its polls (its agent restarting) before a warning.
QUIET_RESTART = 30.0


def _seconds(_: object, attribute: attrs.Attribute[float], value: Any) -> None:
    check_seconds(value, f"PollPolicy.{attribute.name}")


def _period(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not 0.05 <= value <= MAX_SECONDS):
        raise InvalidArgumentError(
            f"PollPolicy.{attribute.name}",
            f"must be None or a number of seconds from 0.05 up, got {brief_repr(value)}")


def _ratio(_: object, attribute: attrs.Attribute[float], value: Any) -> None:
    """``fraction`` in (0, 1], ``jitter`` in [0, 1): plain numbers, not seconds."""
    name = f"PollPolicy.{attribute.name}"
    jitter = attribute.name == "jitter"
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not (0 <= value < 1 if jitter else 0 < value <= 1)):
        bounds = "from 0 up to (not including) 1" if jitter else "above 0 and at most 1"
        raise InvalidArgumentError(name, f"must be a number {bounds}, got {brief_repr(value)}")


@attrs.frozen
class PollPolicy:
    """How often a :class:`DagTask` polls. Immutable: ``policy.evolve(ceiling=10)`` is a copy.

    The interval is ``fraction`` of the time the task has been followed, at least ``initial``
    and at most ``ceiling`` seconds, spread by +-``jitter`` (never below ``initial`` nor past
    ``ceiling``). So a short task is noticed soon after it ends and a long one costs few
    requests: with the defaults, at most 2 polls a second, a 1 s task is seen ending within
    about 0.5 s, a 5 s one within 1 s, anything longer within 3 s. After a failed poll the
    interval doubles from ``initial`` up to ``ceiling``; ``failure_budget`` is how long polls
    may keep failing in a row (the agent restarts itself during its own upgrade) before
    the wait gives up: timed from when the first failed poll was sent, with each poll cut
    to what is left of it, so a hung agent cannot stretch it.

    obshell's task scheduler moves DAGs on only when it runs, about every
    ``scheduler_period`` seconds (1 s), and a task's times show when it last did. So each
    poll is moved, up to half a period earlier or one period later, to land 0.12-0.17 s after
    a run of the scheduler: a poll between two runs would learn nothing new. ``initial``
    stays the least a poll waits; an interval may end up to a period (plus about 0.2 s) past
    ``ceiling``. Polls keep the plain interval until the task's times show two runs in a row
    of a scheduler at this pace, and again when they stop fitting one or its last run is
    more than six periods old. None: always the plain interval.
    """

    #: The shortest interval between polls, in seconds (0.5: at most two polls a second).
    initial: float = attrs.field(default=MIN_INTERVAL, validator=_seconds)
    #: The interval as a share of the time the task has been followed.
    fraction: float = attrs.field(default=0.2, validator=_ratio)
    #: The longest interval between polls, in seconds.
    ceiling: float = attrs.field(default=3.0, validator=_seconds)
    #: Each interval is spread by +-this share, so many waits do not poll in step.
    jitter: float = attrs.field(default=0.1, validator=_ratio)
    #: How long, in seconds, polls may keep failing in a row before the wait gives up.
    failure_budget: float = attrs.field(default=300.0, validator=_seconds)
    #: Seconds between two runs of the agent's task scheduler (obshell: 1, at least 0.05);
    #: None ignores the scheduler.
    scheduler_period: Optional[float] = attrs.field(default=1.0, validator=_period)

    def __attrs_post_init__(self) -> None:
        if self.ceiling < self.initial:
            raise InvalidArgumentError("PollPolicy.ceiling", "must not be below initial")

    def interval(self, followed_for: float) -> float:
        """Seconds to sleep before the next poll of a task followed for ``followed_for`` s."""
        return self._spread(min(self.ceiling, max(self.initial, self.fraction * followed_for)))

    def retry_interval(self, failures: int) -> float:
        """Seconds to sleep after ``failures`` failed polls in a row."""
        return self._spread(min(self.ceiling, self.initial * (2 ** min(failures - 1, 16))))

    def _spread(self, base: float) -> float:
        spread = base * random.uniform(1 - self.jitter, 1 + self.jitter)  # noqa: S311
        return min(self.ceiling, max(self.initial, spread))

    def evolve(self, **changes: Optional[float]) -> PollPolicy:
        """A copy with some knobs changed (each checked as when built)."""
        knobs = attrs.fields_dict(PollPolicy)
        for name in changes:
            if name not in knobs:
                raise InvalidArgumentError(
                    name, f"is not a PollPolicy knob (knobs: {', '.join(knobs)})"
                )
        given: dict[str, Any] = dict(changes)
        return attrs.evolve(self, **given)


def cut(timeout: tuple[float, float], seconds: float) -> tuple[float, float]:
    """A ``(connect, read)`` timeout no longer than ``seconds`` (but 0.05 s at least)."""
    seconds = max(0.05, seconds)
    return min(timeout[0], seconds), min(timeout[1], seconds)


class WaitDeadline:
    """The overall deadline of a wait (None: none), on the monotonic clock.

    ``stop``, an event another thread may set, ends its pauses at once.
    """

    def __init__(self, seconds: Optional[float], stop: Optional[threading.Event] = None) -> None:
        self.seconds = seconds
        self._at = None if seconds is None else time.monotonic() + seconds
        self._stop = stop

    def stopped(self) -> bool:
        """True once the ``stop`` event is set."""
        return self._stop is not None and self._stop.is_set()

    def left(self) -> Optional[float]:
        """Seconds left (never below 0), or None without a deadline."""
        return None if self._at is None else max(0.0, self._at - time.monotonic())

    def passed(self) -> bool:
        """True once the deadline is reached."""
        return self._at is not None and time.monotonic() >= self._at

    def cut(self, timeout: tuple[float, float]) -> tuple[float, float]:
        """A poll's ``(connect, read)`` timeout: the client's, but no longer than what is left."""
        left = self.left()
        return timeout if left is None else cut(timeout, left)

    def cutting(self) -> contextlib.AbstractContextManager[None]:
        """Calls made inside are cut once ``stop`` is set (a poll to an agent that hangs)."""
        return cut_when(self._stop)

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, but not past the deadline."""
        left = self.left()
        if left is not None:
            seconds = min(seconds, left)
        if seconds > 0 and self._stop is not None:
            self._stop.wait(seconds)
        elif seconds > 0:
            time.sleep(seconds)


class FailureStreak:
    """Polls failing in a row: since when, how many, and whether the budget is spent.

    A streak is worth one WARNING (its other failures are INFO): at once for a task never
    read (a wrong address, an agent that is down: a silent wait would last the whole
    budget), after :data:`QUIET_RESTART` seconds for a task read before, whose agent
    restarting is expected (it does during its own upgrade).
    """

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.failures = 0
        self.last: Optional[ObshellError] = None
        self._began = 0.0
        self._told = False

    @property
    def seconds(self) -> float:
        """How long polls have been failing (0 without a streak)."""
        return time.monotonic() - self._began if self.failures else 0.0

    def fail(self, exc: ObshellError, sent_at: float) -> bool:
        """Note a failed poll sent at ``sent_at`` (monotonic); True once the budget is spent.

        A streak is timed from when its first failed poll was sent: a poll that hung counts
        whole.
        """
        if not self.failures:
            self._began = sent_at
        self.failures, self.last = self.failures + 1, exc
        return self.seconds >= self.budget

    def left(self) -> float:
        """Seconds of the budget left (all of it without a streak, none once it is spent)."""
        return max(0.0, self.budget - self.seconds)

    def cut(self, timeout: tuple[float, float]) -> tuple[float, float]:
        """A poll's ``(connect, read)`` timeout: in a streak, no longer than the budget left.

        A poll outside a streak keeps the client's timeout: the budget bounds failing polls,
        not an agent that answers slowly.
        """
        return cut(timeout, self.left()) if self.failures else timeout

    def worth_a_warning(self, read: bool) -> bool:
        """True once a streak, when it is (see the class); ``read``: the task was read once."""
        if self._told or (read and self.seconds < QUIET_RESTART):
            return False
        self._told = True
        return True

    def retrying_for(self, deadline: WaitDeadline) -> float:
        """Seconds of retrying left: the rest of the budget, cut to the wait's deadline."""
        left, wait_left = self.left(), deadline.left()
        return left if wait_left is None else min(left, wait_left)

    def exhausted(self, task_id: str, exc: ObshellError, detail: Optional[DagDetail]
                  ) -> TaskUnreachableError:
        """The error when the budget is spent, ``exc`` the last failure."""
        return TaskUnreachableError(
            unreachable_message(task_id, self.failures, self.seconds, self.budget, exc),
            task_id=task_id, detail=detail, last_error=exc, failures=self.failures)

    def end(self) -> int:
        """A poll succeeded: the streak is over. Returns how many polls it had failed."""
        failures, self.failures, self.last, self._told = self.failures, 0, None, False
        return failures


def worth_repeating(exc: ObshellError, exists: bool) -> bool:
    """Tell whether a failed poll is worth repeating (the failure budget's retry predicate).

    Reads are safe to repeat. ``exists``: the task is known to be there, so an agent that
    cannot be reached, or says "not found", is restarting; otherwise either means an
    address or an id to fix, and fails at once. A proxy's 408 or 429 page asks for a retry.
    """
    if isinstance(exc, ConnectError):
        return exists
    if isinstance(exc, (TransportError, ServerError)):
        return True
    if isinstance(exc, DecodeError):
        return exc.status >= 500 or exc.status in (408, 429)
    return isinstance(exc, TaskNotFoundError) and exists
