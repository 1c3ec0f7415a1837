"""Creating a task exactly once: one POST, and when its reply is lost, a look, not a resend.

The POST of a task-creating endpoint is never sent again (that could start the operation
twice). When its reply is lost, the agent's task lists are read (reads are safe to repeat)
for a DAG with the name the endpoint declares, started around the time the POST was sent.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable, Optional, Union

from ._dag import DagDetail
from ._endpoints import R, TaskEndpoint
from ._exceptions import (
    ConnectionLostError,
    DecodeError,
    ObshellError,
    OutcomeUnknownError,
    ReadTimeoutError,
)
from ._request import Request
from ._validate import check_dag_id

__all__ = ["RECOVERY_SECONDS", "create_dag", "find_created_dag"]

log = logging.getLogger("obshell_sdk")

#: How long to keep asking the agent whether a task was created when the reply was lost.
RECOVERY_SECONDS = 60.0
#: Clock disagreement tolerated when comparing a found task's start with our send time.
_SKEW = 300.0


def create_dag(
    send: Callable[[Request], Any],
    endpoint: TaskEndpoint[R],
    request: R,
    candidates: Callable[[], list[DagDetail]],
) -> Union[DagDetail, str]:
    """POST ``request`` to ``endpoint`` once; the DAG it created (or its id only).

    ``send`` sends a request and returns the reply's data; ``candidates`` lists the DAGs
    where a new one shows up, for when the reply is lost. Only the id comes back when the
    agent's reply names the new task but does not parse otherwise.
    """
    body = json.dumps(request.to_json(), separators=(",", ":")).encode()
    sent_at = time.time()
    try:
        data = send(Request("POST", endpoint.path, body))
    except ConnectionLostError as exc:
        return find_created_dag(candidates, endpoint.dag_name(request), sent_at, exc)
    try:
        return DagDetail.from_json(data)
    except DecodeError:
        # The task exists; keep its id even if the rest of the reply is unreadable.
        dag_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(dag_id, str):
            raise
        log.warning("%s created task %s, but its reply did not parse; following it by id",
                    endpoint.path, dag_id)
        return check_dag_id(dag_id)


def _match(dag: DagDetail, name: str, sent_at: float) -> bool:
    """Same name, and started around our send time (a DAG not started yet has no time)."""
    if dag.name != name:
        return False
    if dag.start_time is None:
        return not dag.is_finished
    return dag.start_time.timestamp() >= sent_at - _SKEW


def find_created_dag(
    candidates: Callable[[], list[DagDetail]],
    name: str,
    sent_at: float,
    lost: ConnectionLostError,
    *,
    seconds: Optional[float] = None,
) -> DagDetail:
    """Look for the DAG named ``name`` that a create call (reply lost) may have made.

    ``candidates`` reads the DAGs the agent shows; it is asked for up to ``seconds``
    (:data:`RECOVERY_SECONDS` by default). Returns the DAG, or raises
    :class:`OutcomeUnknownError`.
    """
    seconds = RECOVERY_SECONDS if seconds is None else seconds
    log.warning("%s lost its reply (%s); looking for task %r", lost.path, lost, name)
    started = time.monotonic()
    # After a read timeout the agent may still be creating the task: keep looking until the
    # deadline. After a cut connection one clear "not there" a few seconds on is enough.
    settle = seconds if isinstance(lost, ReadTimeoutError) else min(5.0, seconds)
    delay = 0.25
    last: Optional[ObshellError] = None
    while True:
        try:
            for dag in candidates():
                if _match(dag, name, sent_at):
                    log.warning("found task %s %r: the agent did create it", dag.id, dag.name)
                    return dag
            last = None
            if time.monotonic() - started >= settle:
                break  # the agent answered, long enough after, and has no such task
        except ObshellError as exc:  # the agent may be restarting; reads may be repeated
            last = exc
        if time.monotonic() + delay > started + seconds:
            break
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
    why = f" (the lookups failed too: {last})" if last is not None else ""
    raise OutcomeUnknownError(
        f"the reply was lost ({lost}) and no task {name!r} was found{why}. It was not sent "
        "again. Before retrying, look for it in client.unfinished_dags() and "
        "client.last_maintenance_dag()",
        method=lost.method, path=lost.path, agent=lost.agent, dag_name=name,
    ) from lost
