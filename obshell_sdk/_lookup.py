"""Finding the task a create call made when its reply was lost: a look, never a resend.

The agent's task lists are read (reads are safe to repeat) for a DAG with the name the
endpoint declares, started after the POST was sent by the agent's clock (judged by
:class:`._lookup_clock.Judge`, which will not when that clock moved or the times disagree
with it), for up to :data:`RECOVERY_SECONDS`; each read is cut to the time the lookup has
left, so a slow agent cannot stretch it. A task that takes no lock is listed only while it
runs, and an upgrade that ended stops being the last maintenance task once another one is
made: the agent's whole history is read once more, within the time left, when the lists
held nothing. This module reads the agent only through :class:`AgentReads`, which the
client is.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional, Protocol

from ._dag import DagDetail
from ._endpoints import TaskEndpoint
from ._exceptions import (
    ConnectionLostError,
    DecodeError,
    ObshellError,
    OutcomeUnknownError,
    ReadTimeoutError,
)
from ._lookup_clock import ClockDisagreesError, ClockReads, Judge
from ._polling import cut

__all__ = ["PROOF_SECONDS", "RECOVERY_SECONDS", "AgentReads", "find_created_dag", "follow_note",
           "listed", "made_none", "rerun_note"]

log = logging.getLogger("obshell_sdk")

#: How long to keep asking the agent whether a task was created when the reply was lost.
RECOVERY_SECONDS = 60.0
#: How long after a lock-taking create call was sent its absence may prove it made nothing
#: (:func:`made_none`): obshell checks the cluster (SQL, each host's Python) before the lock.
PROOF_SECONDS = 300.0


class AgentReads(ClockReads, Protocol):
    """The reads of one agent a lookup makes; each takes a per-call ``timeout``."""

    @property
    def timeout(self) -> tuple[float, float]:
        """The client's ``(connect, read)`` timeout."""

    def unfinished_dags(self, *, timeout: Optional[tuple[float, float]] = None
                        ) -> list[DagDetail]:
        """The agent's unfinished DAGs."""

    def last_maintenance_dag(self, *, timeout: Optional[tuple[float, float]] = None
                             ) -> Optional[DagDetail]:
        """The cluster's last maintenance DAG, or None."""

    def cluster_dags(self, *, timeout: Optional[tuple[float, float]] = None
                     ) -> list[DagDetail]:
        """Every DAG of the cluster, finished ones too."""


def listed(reads: AgentReads, endpoint: TaskEndpoint[Any],
           until: Optional[float] = None) -> list[DagDetail]:
    """Where a DAG that ``endpoint`` makes shows up, read by ``until`` (monotonic).

    ``until`` None reads each within the client's timeout. The agent's unfinished DAGs and, for
    an endpoint that takes the maintenance lock, its last maintenance DAG (a fast one may have
    ended already). obshell's last maintenance DAG is only ever one that took the lock
    (``is_maintenance``), so a pre-check's lookup does without that request.
    """
    found = reads.unfinished_dags(timeout=_by(reads, until))
    last = (reads.last_maintenance_dag(timeout=_by(reads, until)) if endpoint.maintenance
            else None)
    return found + ([last] if last is not None else [])


def _by(reads: AgentReads, until: Optional[float]) -> tuple[float, float]:
    """The client's timeout, cut to end by ``until`` (monotonic) when there is one."""
    return reads.timeout if until is None else cut(reads.timeout, until - time.monotonic())


def find_created_dag(
    reads: AgentReads,
    endpoint: TaskEndpoint[Any],
    name: str,
    sent_at: float,
    lost: ConnectionLostError,
    *,
    existed: Optional[frozenset[str]] = None,
    seconds: Optional[float] = None,
    before: Optional[tuple[float, float]] = None,
) -> DagDetail:
    """Look for the DAG named ``name`` that a create call to ``endpoint`` (reply lost) made.

    The agent's lists (:func:`listed`) and its clock are read through ``reads`` for up to
    ``seconds`` (:data:`RECOVERY_SECONDS` by default), each read cut to the time left;
    ``existed`` holds the ids listed before the POST (None if unknown), ``before`` the
    agent's clock read just before it (see :class:`Judge`). The whole history is read once
    when the lists held nothing (see :func:`_in_history`), within the time left. Returns the
    DAG the POST created or raises :class:`OutcomeUnknownError`, never one there before, nor
    one of several that may be it (a lockless task another caller made at the same time),
    nor any when the agent's clock moved or its tasks' times disagree with it.
    """
    seconds = RECOVERY_SECONDS if seconds is None else seconds
    log.warning("%s lost its reply (%s); looking for task %r", lost.path, lost, name)
    clock = Judge(reads, sent_at, existed, before)
    until = time.monotonic() + seconds
    # After a read timeout the agent may still be creating the task: keep looking until the
    # deadline. After a cut connection one clear "not there" a few seconds on is enough.
    settle = seconds if isinstance(lost, ReadTimeoutError) else min(5.0, seconds)
    try:
        return _find(reads, endpoint, clock, name, lost, until, settle)
    except ClockDisagreesError as why:
        log.warning("the lookup of task %r cannot go by time: %s", name, why)
        raise _clock_disagrees(lost, name, why, endpoint.maintenance) from lost


def _find(reads: AgentReads, endpoint: TaskEndpoint[Any], clock: Judge, name: str,
          lost: ConnectionLostError, until: float, settle: float) -> DagDetail:
    """:func:`find_created_dag`'s lookup, by ``until`` (monotonic)."""
    dags, last = _look(reads, endpoint, clock, name, until, settle)
    if len(dags) == 1:
        return dags[0]
    if dags:
        raise _ambiguous(lost, name, dags) from lost
    # Ended (a lockless one), or an upgrade no longer the last maintenance DAG: the history
    # holds it. Not after a hung read for an upgrade: its lookup keeps to its time.
    found = _in_history(reads, clock, name, until) \
        if last is None or not endpoint.maintenance else None
    if found is not None and len(found) == 1:
        log.warning("found task %s %r in the agent's history: the agent did create it",
                    found[0].id, name)
        return found[0]
    raise _not_found(lost, name, last, endpoint.maintenance, found) from lost


def made_none(reads: AgentReads, endpoint: TaskEndpoint[Any],
              existed: Optional[frozenset[str]], sent_at: Optional[float]) -> bool:
    """Whether a lock-taking create call, sent at ``sent_at`` (wall clock), made no DAG.

    Such a DAG becomes the cluster's last maintenance DAG (obshell's newest by id). So when
    that is still one of ``existed`` (listed before the call), or there is none and none was
    listed then, the call made none. Only :data:`PROOF_SECONDS` or more after the send: an
    agent that got the call has passed its checks and made its DAG by then. False whenever
    this cannot be told.
    """
    if not endpoint.maintenance or existed is None or sent_at is None or \
            time.time() - sent_at < PROOF_SECONDS:
        return False
    try:
        last = reads.last_maintenance_dag()
    except ObshellError as exc:
        log.info("could not read the agent's last maintenance task (%s)", exc)
        return False
    return not existed if last is None else last.id in existed


def rerun_note(endpoint: TaskEndpoint[Any], existed: Optional[frozenset[str]],
               sent_at: Optional[float], *, looked: bool = True) -> str:
    """What a rerun does about a create call whose task is not known (see :func:`made_none`).

    The one wording of it: a step left ``sending``, its task not found (``looked``: this run
    looked for it, and asked :func:`made_none`), or followed before a read showed its name.
    """
    new_journal = "once sure no such task runs there, run this cluster alone with a new journal"
    looks = "A rerun looks for it again" if looked else "A rerun looks for it by its name"
    if not endpoint.maintenance:
        why = "this task takes no lock, so the agent's last maintenance task cannot tell"
    elif existed is None or sent_at is None:
        why = "what the agent listed before the call is not known"
    else:
        when = time.strftime("%H:%M:%S UTC", time.gmtime(sent_at + PROOF_SECONDS))
        now = "" if not looked or time.time() < sent_at + PROOF_SECONDS else (
            " (it did not now, or could not be read)")
        return (f"{looks} and, from {when} ({PROOF_SECONDS:.0f} s after "
                "the call), sends it if the agent's last maintenance task "
                f"shows the call made none{now}; else, {new_journal}")
    return (f"{looks}, but cannot prove the call made no task ({why}), so "
            f"never sends it: {new_journal}")


def follow_note(exc: ObshellError, endpoint: TaskEndpoint[Any],
                sent: Optional[tuple[Optional[frozenset[str]], Optional[float]]], *,
                journaled: bool) -> str:
    """What a rerun does with a task whose follow failed with ``exc`` (unknown outcome).

    ``sent``: the call's ``(existed, sent_at)`` while its id is not yet journaled as the
    step's (no read showed the step's name): the step is still ``sending``, and a rerun does
    what :func:`rerun_note` says. None once it is (a rerun follows it); ``journaled``: that id
    was read from the journal.
    """
    if sent is not None:
        return ". " + rerun_note(endpoint, *sent, looked=False)
    if journaled and isinstance(exc, DecodeError) and exc.where == "data.name":
        return ". The journal names that id as the step's task: is this the agent it was " \
            "written with? Check it; a new journal starts afresh, sending the call again"
    return ""


def _look(reads: AgentReads, endpoint: TaskEndpoint[Any], clock: Judge, name: str,
          until: float, settle: float) -> tuple[list[DagDetail], Optional[ObshellError]]:
    """Read the lists for the DAG, pausing longer each time, until ``until`` (monotonic).

    Each read is cut to the time left. Stops once the agent answered ``settle`` seconds on
    without it. Returns the DAGs that may be it (none, it, or several that cannot be told
    apart) and the error of the last read when it failed.
    """
    started, delay = time.monotonic(), 0.25
    last: Optional[ObshellError] = None
    while True:
        try:
            if clock.earliest is None:
                clock.measure(_by(reads, until))
            found = {d.id: d for d in listed(reads, endpoint, until)
                     if clock.created_by_us(d, name)}  # a DAG may be listed twice
            if len(found) == 1:
                (dag,) = found.values()
                log.warning("found task %s %r: the agent did create it", dag.id, dag.name)
            if found:
                return list(found.values()), None
            last = None
            if time.monotonic() - started >= settle:
                return [], None  # the agent answered, long enough after: no such task
        except ObshellError as exc:  # the agent may be restarting; reads may be repeated
            last = exc
        if time.monotonic() + delay > until:
            return [], last
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def _in_history(reads: AgentReads, clock: Judge, name: str, until: float
                ) -> Optional[list[DagDetail]]:
    """The DAGs of the agent's whole history the POST may have made (see ``ran_for_us``).

    One read, cut to end by ``until`` (monotonic), the lookup's end. None when it was not
    read (no clock) or failed.
    """
    if clock.earliest is None:
        return None
    try:
        past = reads.cluster_dags(timeout=_by(reads, until))
    except ObshellError as exc:
        log.info("could not read the agent's task history (%s)", exc)
        return None
    return [d for d in past if clock.ran_for_us(d, name)]


def _ambiguous(lost: ConnectionLostError, name: str, dags: list[DagDetail]
               ) -> OutcomeUnknownError:
    """The error for a lost create call when several new DAGs may be the one it made."""
    return OutcomeUnknownError(
        f"the call's outcome is unknown ({lost}): the agent lists {len(dags)} tasks {name!r} "
        f"new since it was sent ({', '.join(d.id for d in dags)}), and which one it made "
        "cannot be told (another caller's may be among them). It was not sent again: look "
        "at them before sending it again",
        method=lost.method, path=lost.path, agent=lost.agent, dag_name=name)


def _clock_disagrees(lost: ConnectionLostError, name: str, why: ClockDisagreesError,
                     maintenance: bool) -> OutcomeUnknownError:
    """The error for a lost create call whose task cannot be told by time (``why``)."""
    lists = "client.unfinished_dags() and client.last_maintenance_dag(), and in " \
        if maintenance else ""
    return OutcomeUnknownError(
        f"the call's outcome is unknown ({lost}), and which task {name!r}, if any, it made "
        f"cannot be told by the tasks' times: {why}. It was not sent again. Before sending "
        f"it again, look for one started since the call in {lists}the agent's whole task "
        "history (client.cluster_dags(), or its dashboard), and have the clocks of the "
        "agent's hosts and of this machine checked (NTP)",
        method=lost.method, path=lost.path, agent=lost.agent, dag_name=name)


def _not_found(lost: ConnectionLostError, name: str, last: Optional[ObshellError],
               maintenance: bool, in_history: Optional[list[DagDetail]]) -> OutcomeUnknownError:
    """The error for a lost create call's task not found (``in_history``: see _in_history)."""
    why = f" (the lookups failed too: {last})" if last is not None else ""
    if maintenance:
        advice = ("Before retrying, look for it in client.unfinished_dags() and "
                  "client.last_maintenance_dag()" + (
                      f", and at the tasks of the agent's history started since: "
                      f"{', '.join(d.id for d in in_history)}" if in_history else ""))
    elif in_history is None:
        advice = ("A task that takes no lock, like a pre-check, is listed only while it runs, "
                  "so this one may have run and ended already: before sending it again, look "
                  "for it in the agent's task history (client.cluster_dags(), or its dashboard)")
    elif in_history:
        advice = (f"The agent's task history holds {len(in_history)} such tasks started since "
                  f"({', '.join(d.id for d in in_history)}), and which one it made cannot be "
                  "told: look at them before sending it again")
    else:
        advice = ("Nor does the agent's whole task history (finished tasks too) hold one "
                  "that may be it (running, or ended seconds after the call), so it seems to "
                  "have made none (one that ended within seconds of the call cannot be told "
                  "from an earlier run): check the agent's log before sending it again")
    return OutcomeUnknownError(
        f"the call's outcome is unknown ({lost}) and no task {name!r} it created was found"
        f"{why}. It was not sent again. {advice}",
        method=lost.method, path=lost.path, agent=lost.agent, dag_name=name)
