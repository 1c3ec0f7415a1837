"""Finding a task again: list replies, and the task a lost create reply may have made."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Optional

from ._exceptions import (
    ConnectionLostError,
    ObshellError,
    OutcomeUnknownError,
    ReadTimeoutError,
)
from ._models import DagDetail
from ._wire import decode_contents

if TYPE_CHECKING:  # pragma: no cover
    from ._client import ObshellClient

__all__ = ["RECOVERY_SECONDS", "find_created_dag", "parse_contents"]

log = logging.getLogger("obshell_sdk")

#: How long to keep asking the agent whether a task was created when the reply was lost.
RECOVERY_SECONDS = 60.0
#: Clock disagreement tolerated when comparing a found task's start with our send time.
_SKEW = 300.0


def parse_contents(data: Any) -> list[DagDetail]:
    """Parse ``{"contents": [...]}`` (``contents`` may be null) into DagDetails."""
    return [DagDetail.from_json(item, f"data.contents[{i}]")
            for i, item in enumerate(decode_contents(data))]


def _match(dag: DagDetail, name: str, sent_at: float) -> bool:
    """Same name, and started around our send time (a DAG not started yet has no time)."""
    if dag.name != name:
        return False
    if dag.start_time is None:
        return not dag.is_finished
    return dag.start_time.timestamp() >= sent_at - _SKEW


def find_created_dag(
    client: ObshellClient, name: str, sent_at: float, lost: ConnectionLostError, *, path: str
) -> DagDetail:
    """Look for the DAG named ``name`` that a create call (reply lost) may have made.

    Asks the unfinished DAG list and the last maintenance DAG (reads, safe to repeat) for up to
    :data:`RECOVERY_SECONDS`; returns the DAG, or raises :class:`OutcomeUnknownError`.
    """
    log.warning("POST %s lost its reply (%s); looking for task %r on %s", path, lost, name,
                client.agent)
    started = time.monotonic()
    deadline = started + RECOVERY_SECONDS
    # After a read timeout the agent may still be creating the task: keep looking until the
    # deadline. After a cut connection one clear "not there" a few seconds on is enough.
    settle = RECOVERY_SECONDS if isinstance(lost, ReadTimeoutError) else min(5.0,
                                                                             RECOVERY_SECONDS)
    delay = 0.25
    last: Optional[BaseException] = None
    while True:
        try:
            candidates = client.unfinished_dags()
            maintenance = client.last_maintenance_dag()
            if maintenance is not None:
                candidates.append(maintenance)
            for dag in candidates:
                if _match(dag, name, sent_at):
                    log.warning("found task %s %r: the agent did create it", dag.id, dag.name)
                    return dag
            last = None
            if time.monotonic() - started >= settle:
                break  # the agent answered, long enough after, and has no such task
        except ObshellError as exc:  # the agent may be restarting; reads may be repeated
            last = exc
        if time.monotonic() + delay > deadline:
            break
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
    why = f" (the lookups failed too: {last})" if last is not None else ""
    raise OutcomeUnknownError(
        f"the reply was lost ({lost}) and no task {name!r} was found{why}. It was not sent "
        "again. Before retrying, check client.unfinished_dags() and "
        "client.last_maintenance_dag() for it",
        method="POST", path=path, agent=client.agent, dag_name=name,
    ) from lost
