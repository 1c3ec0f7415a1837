"""Creating a task exactly once: one POST, and when its reply is lost, a look, not a resend.

The POST of a task-creating endpoint is never sent again (that could start the operation
twice). When its reply is lost, the agent's task lists are read (reads are safe to repeat)
for a DAG with the name the endpoint declares, started around the time the POST was sent.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any, Callable, Optional, Union

from ._dag import DagDetail
from ._endpoints import R, TaskEndpoint
from ._exceptions import (
    AuthError,
    ConnectionLostError,
    DecodeError,
    InvalidArgumentError,
    ObshellError,
    OutcomeUnknownError,
    ReadTimeoutError,
    WeakKeyError,
)
from ._request import Request
from ._validate import brief_repr, check_dag_id

__all__ = ["RECOVERY_SECONDS", "create_dag", "dags_to_search", "find_created_dag"]

log = logging.getLogger("obshell_sdk")

#: How long to keep asking the agent whether a task was created when the reply was lost.
RECOVERY_SECONDS = 60.0
#: Seconds of slack when judging a DAG's start against the POST's (agent clock): obshell's
#: own time-stamping and our measurement's rounding.
_CLOCK_MARGIN = 1.0


def dags_to_search(
    unfinished: Callable[[], list[DagDetail]],
    last_maintenance: Callable[[], Optional[DagDetail]],
    endpoint: TaskEndpoint[Any],
) -> Callable[[], list[DagDetail]]:
    """Where a DAG that ``endpoint`` makes shows up, as a function that lists them.

    The agent's unfinished DAGs and, for an endpoint that takes the maintenance lock, its
    last maintenance DAG (a fast one may have ended already). obshell's last maintenance DAG
    is only ever one that took the lock (``is_maintenance``), so a pre-check's lookup does
    without that request.
    """

    def search() -> list[DagDetail]:
        found = unfinished()
        last = last_maintenance() if endpoint.maintenance else None
        return found + ([last] if last is not None else [])

    return search


def create_dag(
    send: Callable[[Request], Any],
    endpoint: TaskEndpoint[R],
    request: R,
    candidates: Callable[[], list[DagDetail]],
    agent_clock: Callable[[], Optional[datetime]],
    on_send: Optional[Callable[[Optional[frozenset[str]], float], None]] = None,
    agent: str = "",
    history: Optional[Callable[[], list[DagDetail]]] = None,
) -> Union[DagDetail, str]:
    """POST ``request`` to ``endpoint`` once; the DAG it created (or its id only).

    ``send`` sends a request and returns the reply's data; ``candidates`` lists the DAGs
    where a new one shows up (the unfinished ones, the last maintenance one) and
    ``agent_clock`` reads the agent's clock. The candidates are noted before the POST, so
    that a lost reply is only ever recovered with a DAG the POST created. Only the id comes
    back when the agent's reply names the new task but does not parse otherwise.
    ``on_send(existed, sent_at)`` hears what was noted right before the POST goes out (a
    rollout journals it, to look the task up after a crash). A proxy's page may be a lost
    reply too (:func:`_lost`); ``agent`` (``host:port``) names the agent in its error.
    ``history`` lists every DAG, finished ones too (see :func:`find_created_dag`).
    """
    if not isinstance(request, endpoint.request_type):  # a model of another endpoint
        raise InvalidArgumentError("request", f"{endpoint.path} takes a "
                                   f"{endpoint.request_type.__name__}, not a "
                                   f"{type(request).__name__}; nothing was sent")
    body = json.dumps(request.to_json(), separators=(",", ":")).encode()
    existed = _listed(candidates, endpoint.path)
    sent_at = time.time()
    if on_send is not None:
        on_send(existed, sent_at)
    try:
        data = send(Request("POST", endpoint.path, body))
    except (ConnectionLostError, DecodeError) as exc:
        if (lost := _lost(exc, endpoint, agent)) is None:
            raise
    else:
        created = _read_created(data, endpoint.path)
        odd = _foreign(created, data, endpoint.dag_name(request), existed)
        if created is not None and odd is None:
            return created
        lost = ConnectionLostError(  # obshell said it made a task but not which: look
            "the agent answered that it made the task, but its reply does not say which"
            if odd is None else f"the agent's reply describes {odd}, not the task it made",
            method="POST", path=endpoint.path, agent=agent)
        if odd is not None:
            log.warning("%s: %s; looking for the task it made", endpoint.path, lost)
    return find_created_dag(candidates, agent_clock, endpoint.dag_name(request), sent_at,
                            lost, existed=existed, maintenance=endpoint.maintenance,
                            history=history)


def _listed(candidates: Callable[[], list[DagDetail]], path: str
            ) -> Optional[frozenset[str]]:
    """The ids of the DAGs there before a create POST; None when they could not be listed."""
    try:
        return frozenset(d.id for d in candidates())
    except (AuthError, WeakKeyError) as exc:  # the POST, signed alike, would be refused
        exc.args = (f"POST {path} was not sent: {exc.args[0]}",)  # alike: one refusal, not two
        raise
    except ObshellError as exc:  # the POST may still go through; judge by time alone then
        log.info("could not list the agent's tasks before %s (%s)", path, exc)
        return None


def _read_created(data: Any, path: str) -> Union[DagDetail, str, None]:
    """The DAG a create call's successful reply describes.

    Its id alone when only the id parses; None when the reply does not name the task.
    """
    try:
        return DagDetail.from_json(data)
    except DecodeError as exc:
        dag_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(dag_id, str):
            log.warning("%s: the agent's reply names no task (%s)", path, exc)
            return None
        try:
            dag_id = check_dag_id(dag_id)
        except InvalidArgumentError:  # the agent's fault, not the caller's
            raise DecodeError(f"{brief_repr(dag_id)} is not a task id", where="data.id") from None
        log.warning("%s created task %s, but its reply did not parse; following it by id",
                    path, dag_id)
        return dag_id


def _foreign(created: Union[DagDetail, str, None], data: Any, name: str,
             existed: Optional[frozenset[str]]) -> Optional[str]:
    """What is wrong when a create reply describes a DAG this POST cannot have made, or None.

    A new DAG has the name the endpoint gives it, was not there before the POST, and has not
    ended yet (obshell answers as it creates it; its scheduler runs it later). A reply read
    for its id only is judged by the raw name and state it holds, where they are strings.
    """
    dag_id = created.id if isinstance(created, DagDetail) else created
    if dag_id is not None and existed is not None and dag_id in existed:
        return f"task {dag_id}, which was there before the request"
    if isinstance(created, DagDetail):
        said, state = created.name, created.state.value
    else:
        raw = data if isinstance(data, dict) else {}
        said, state = raw.get("name", name), raw.get("state", "READY")
    if said != name or state in ("SUCCEED", "FAILED"):
        return f"task {dag_id} {said!r} ({state})"
    return None


def _lost(exc: ObshellError, endpoint: TaskEndpoint[Any], agent: str
          ) -> Optional[ConnectionLostError]:
    """The create POST's lost reply, as ``exc`` tells of one; None when it tells of none.

    None: another request of the call failed (the auth flow's), or the reply proves the POST
    made nothing (:meth:`TaskEndpoint.never_ran`).

    A proxy in front of the agent answers with a page of its own when the agent answered it
    too late or not at all (504, 502): the agent may have got the request.
    """
    if isinstance(exc, ConnectionLostError):
        return None if endpoint.never_ran(exc) else exc
    if not isinstance(exc, DecodeError) or (exc.method, exc.path) != ("POST", endpoint.path):
        return None
    if endpoint.never_ran(exc):
        return None
    # a gateway timing out (504; Cloudflare's 524) leaves the agent at work: look longer
    kind = ReadTimeoutError if exc.status in (504, 524) else ConnectionLostError
    lost = kind(f"HTTP {exc.status} reply that is not obshell's (a proxy's error page?): the "
                "agent may have got the request", method="POST", path=endpoint.path, agent=agent)
    lost.__cause__ = exc  # the page's excerpt stays in the traceback
    return lost


class _Judge:
    """Tells a DAG the lost POST created from one that was there before.

    A DAG the agent listed before the POST is never it. Otherwise obshell stamps a started
    DAG's ``start_time`` (with OceanBase's clock for a cluster task, the agent's for a local
    one; the two normally agree), so the judgement is made on the agent's clock (measured
    once, after the loss): the DAG must have started no earlier than the POST was sent,
    give or take the measurement's uncertainty. A DAG not started yet (no start time)
    counts only when the lists before the POST are known and did not hold it.
    """

    def __init__(self, read: Callable[[], Optional[datetime]], sent_at: float,
                 existed: Optional[frozenset[str]]) -> None:
        self._read = read
        self._sent_at = sent_at
        self._existed = existed
        self.earliest: Optional[float] = None  # agent time before which no new DAG started

    def measure(self) -> None:
        """Read the agent's clock (ObshellError if it cannot be read)."""
        before = time.time()
        now = self._read()
        after = time.time()
        if now is None:
            raise DecodeError("the agent's clock reads as unset", where="data")
        offset = now.timestamp() - (before + after) / 2
        self.earliest = self._sent_at + offset - (after - before) / 2 - _CLOCK_MARGIN

    def created_by_us(self, dag: DagDetail, name: str) -> bool:
        """Same name, not there before, and started after the POST was sent (agent clock)."""
        if dag.name != name or self.earliest is None:
            return False
        if self._existed is not None and dag.id in self._existed:
            return False
        if dag.start_time is None:
            return self._existed is not None
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
        return ended is None or ended.timestamp() >= self.earliest + 2 * _CLOCK_MARGIN


def find_created_dag(
    candidates: Callable[[], list[DagDetail]],
    agent_clock: Callable[[], Optional[datetime]],
    name: str,
    sent_at: float,
    lost: ConnectionLostError,
    *,
    existed: Optional[frozenset[str]] = None,
    seconds: Optional[float] = None,
    maintenance: bool = True,
    history: Optional[Callable[[], list[DagDetail]]] = None,
) -> DagDetail:
    """Look for the DAG named ``name`` that a create call (reply lost) made, if it did.

    ``candidates`` reads the DAGs the agent shows and ``agent_clock`` its clock; they are
    asked for up to ``seconds`` (:data:`RECOVERY_SECONDS` by default). ``existed`` holds the
    ids listed before the POST (None if unknown); ``maintenance``, whether the DAG takes the
    lock (else obshell lists it only while it runs); ``history`` lists every DAG, finished
    ones too, read once when the rest found nothing (see :func:`_in_history`). Returns the
    DAG the POST created or raises :class:`OutcomeUnknownError`, never one there before.
    """
    seconds = RECOVERY_SECONDS if seconds is None else seconds
    log.warning("%s lost its reply (%s); looking for task %r", lost.path, lost, name)
    clock = _Judge(agent_clock, sent_at, existed)
    # After a read timeout the agent may still be creating the task: keep looking until the
    # deadline. After a cut connection one clear "not there" a few seconds on is enough.
    dag, last = _look(candidates, clock, name, seconds,
                      seconds if isinstance(lost, ReadTimeoutError) else min(5.0, seconds))
    if dag is not None:
        return dag
    found = None if maintenance else _in_history(history, clock, name)
    if found is not None and len(found) == 1:
        log.warning("found task %s %r in the agent's history: the agent did create it",
                    found[0].id, name)
        return found[0]
    raise _not_found(lost, name, last, maintenance, found) from lost


def _look(candidates: Callable[[], list[DagDetail]], clock: _Judge, name: str, seconds: float,
          settle: float) -> tuple[Optional[DagDetail], Optional[ObshellError]]:
    """Read ``candidates`` for the DAG, pausing longer each time, for up to ``seconds``.

    Stops once the agent answered ``settle`` seconds on without it. Returns the DAG (or
    None) and the error of the last read when it failed.
    """
    started = time.monotonic()
    delay = 0.25
    last: Optional[ObshellError] = None
    while True:
        try:
            if clock.earliest is None:
                clock.measure()
            for dag in candidates():
                if clock.created_by_us(dag, name):
                    log.warning("found task %s %r: the agent did create it", dag.id, dag.name)
                    return dag, None
            last = None
            if time.monotonic() - started >= settle:
                return None, None  # the agent answered, long enough after: no such task
        except ObshellError as exc:  # the agent may be restarting; reads may be repeated
            last = exc
        if time.monotonic() + delay > started + seconds:
            return None, last
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def _in_history(history: Optional[Callable[[], list[DagDetail]]], clock: _Judge,
                name: str) -> Optional[list[DagDetail]]:
    """The DAGs of the agent's whole history the POST may have made (see ``ran_for_us``).

    None when the history was not read: none given, no clock, or the read failed.
    """
    try:
        past = None if history is None or clock.earliest is None else history()
    except ObshellError as exc:
        log.info("could not read the agent's task history (%s)", exc)
        return None
    return None if past is None else [d for d in past if clock.ran_for_us(d, name)]


def _not_found(lost: ConnectionLostError, name: str, last: Optional[ObshellError],
               maintenance: bool, in_history: Optional[list[DagDetail]]) -> OutcomeUnknownError:
    """The error for a lost create call's task not found (``in_history``: see _in_history)."""
    why = f" (the lookups failed too: {last})" if last is not None else ""
    if maintenance:
        advice = ("Before retrying, look for it in client.unfinished_dags() and "
                  "client.last_maintenance_dag()")
    elif in_history is None:
        advice = ("A task that takes no lock, like a pre-check, is listed only while it runs, "
                  "so this one may have run and ended already: before sending it again, look "
                  "for it in the agent's task history (its dashboard or log)")
    elif in_history:
        advice = (f"The agent's task history holds {len(in_history)} such tasks started since "
                  f"({', '.join(d.id for d in in_history)}), and which one it made cannot be "
                  "told: look at them before sending it again")
    else:
        advice = ("The agent's whole task history (finished tasks too) holds none either, so "
                  "it seems to have made none: check the agent's log before sending it again")
    return OutcomeUnknownError(
        f"the call's outcome is unknown ({lost}) and no task {name!r} it created was found"
        f"{why}. It was not sent again. {advice}",
        method=lost.method, path=lost.path, agent=lost.agent, dag_name=name)
