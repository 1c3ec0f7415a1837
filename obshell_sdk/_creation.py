"""Creating a task exactly once: one POST, and when its reply is lost, a look, not a resend.

The POST of a task-creating endpoint is never sent again (that could start the operation
twice). What the agent lists is noted before it; when its reply is lost, :mod:`._lookup`
looks for the DAG it made.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable, Optional, Union

from ._dag import DagDetail
from ._endpoints import R, TaskEndpoint
from ._exceptions import (
    AuthError,
    ConnectionLostError,
    DecodeError,
    InvalidArgumentError,
    ObshellError,
    ReadTimeoutError,
    WeakKeyError,
)
from ._lookup import AgentReads, find_created_dag, listed
from ._passes import AgentClock
from ._request import Request
from ._transport import read_reply
from ._validate import brief_repr, check_dag_id

__all__ = ["create_dag"]

log = logging.getLogger("obshell_sdk")


def create_dag(
    send: Callable[[Request], Any],
    endpoint: TaskEndpoint[R],
    request: R,
    reads: AgentReads,
    on_send: Optional[Callable[[Optional[frozenset[str]], float], None]] = None,
    clock: Optional[AgentClock] = None,
) -> Union[DagDetail, str]:
    """POST ``request`` to ``endpoint`` once; the DAG it created (or its id only).

    ``send`` sends a request and returns the reply's data; ``reads`` reads the agent's task
    lists and clock (the client). The DAGs listed are noted before the POST, and the
    agent's clock as ``clock`` read it from the replies then (the client's), so that a lost
    reply is only ever recovered with a DAG the POST created. Only the id comes back when
    the agent's reply names the new task but does not parse otherwise.
    ``on_send(existed, sent_at)`` hears what was noted right before the POST goes out (a
    rollout journals it, to look the task up after a crash). A proxy's page may be a lost
    reply too (:func:`_lost`).
    """
    if not isinstance(request, endpoint.request_type):  # a model of another endpoint
        raise InvalidArgumentError("request", f"{endpoint.path} takes a "
                                   f"{endpoint.request_type.__name__}, not a "
                                   f"{type(request).__name__}; nothing was sent")
    body = json.dumps(request.to_json(), separators=(",", ":")).encode()
    existed = _listed(reads, endpoint)
    sent_at = time.time()
    before = None if clock is None else clock.reading(sent_at)
    if on_send is not None:
        on_send(existed, sent_at)
    try:
        data = send(Request("POST", endpoint.path, body))
    except (ConnectionLostError, DecodeError) as exc:
        if (lost := _lost(exc, endpoint, reads.agent)) is None:
            raise
    else:
        created = _read_created(data, endpoint.path, reads.agent)
        odd = _foreign(created, data, endpoint.dag_name(request), existed)
        if created is not None and odd is None:
            return created
        lost = ConnectionLostError(  # obshell said it made a task but not which: look
            "the agent answered that it made the task, but its reply does not say which"
            if odd is None else f"the agent's reply describes {odd}, not the task it made",
            method="POST", path=endpoint.path, agent=reads.agent)
        if odd is not None:
            log.warning("%s: %s; looking for the task it made", endpoint.path, lost)
    return find_created_dag(reads, endpoint, endpoint.dag_name(request), sent_at, lost,
                            existed=existed, before=before)


def _listed(reads: AgentReads, endpoint: TaskEndpoint[Any]) -> Optional[frozenset[str]]:
    """The ids of the DAGs there before a create POST; None when they could not be listed."""
    try:
        return frozenset(d.id for d in listed(reads, endpoint))
    except (AuthError, WeakKeyError, InvalidArgumentError) as exc:  # the POST would be too
        exc._prefix_message(f"POST {endpoint.path} was not sent: ")  # alike: once
        raise
    except ObshellError as exc:  # the POST may still go through; judge by time alone then
        log.info("could not list the agent's tasks before %s (%s)", endpoint.path, exc)
        return None


def _read_created(data: Any, path: str, agent: str) -> Union[DagDetail, str, None]:
    """The DAG a create call's successful reply (to ``POST path`` on ``agent``) describes.

    Its id alone when only the id parses; None when the reply does not name the task.
    """
    try:
        return read_reply(DagDetail.from_json, data, "POST", path, agent)
    except DecodeError as exc:
        dag_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(dag_id, str):
            log.warning("the agent's reply names no task (%s)", exc)
            return None
        try:
            dag_id = check_dag_id(dag_id)
        except InvalidArgumentError:  # the agent's fault, not the caller's
            raise DecodeError(f"{brief_repr(dag_id)} is not a task id", where="data.id",
                              method="POST", path=path, agent=agent) from None
        log.warning("%s on %s named task %s, but its reply did not parse; following it by id "
                    "(the task's name is checked when it is read)", path, agent, dag_id)
        return dag_id


def _foreign(created: Union[DagDetail, str, None], data: Any, name: str,
             existed: Optional[frozenset[str]]) -> Optional[str]:
    """What is wrong when a create reply describes a DAG this POST cannot have made, or None.

    A new DAG has the name the endpoint gives it, was not there before the POST, and has not
    ended yet (obshell answers as it creates it; its scheduler runs it later). A reply read
    for its id only is judged by the raw name and state it holds; one without a name is
    judged when the task is read (its ``DagTask`` is given the name to check).
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
    said = (f"HTTP {exc.status} reply that is not obshell's (a proxy's error page?)" if
            exc.status else "reply that is not HTTP (garbled on the way?)")  # not_http
    lost = kind(f"{said}: the agent may have got the request", method="POST",
                path=endpoint.path, agent=agent)
    lost.__cause__ = exc  # the page's excerpt stays in the traceback
    return lost
