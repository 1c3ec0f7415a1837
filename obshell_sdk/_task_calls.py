"""The task calls of the API (DAGs, nodes, sub-tasks and their lists), a part of the client."""

from __future__ import annotations

import logging
from typing import Any, Optional, Union

from ._caller import CallsBase, contents
from ._dag import DagDetail, NodeDetail, Operator
from ._decode import at, decode_contents, p_list, p_str
from ._exceptions import DecodeError, InvalidArgumentError, ObshellError, TaskNotFoundError
from ._operators import operator_path, say_maybe_applied
from ._transport import Timeout
from ._validate import check_dag_id, check_operator

__all__ = ["TaskCalls"]

log = logging.getLogger("obshell_sdk")


class TaskCalls(CallsBase):
    """GetDagDetails, operators, nodes, sub-task logs and the task lists of one agent."""

    def get_dag(
        self, dag_id: Union[str, int], show_details: bool = True, *,
        timeout: Optional[Timeout] = None,
    ) -> DagDetail:
        """``GET /api/v1/task/dag/{id}`` (GetDagDetails): the DAG with its nodes and sub-tasks.

        A reply about another DAG than the one asked for is a :class:`DecodeError`.
        """
        dag_id = check_dag_id(dag_id)
        if not isinstance(show_details, bool):
            raise InvalidArgumentError("show_details", "must be True or False")
        query = "show_details=true" if show_details else "show_details=false"

        def read(data: Any) -> DagDetail:
            detail = DagDetail.from_json(data)
            if detail.id != dag_id:
                raise DecodeError(f"asked for task {dag_id}, the agent answered about "
                                  f"{detail.id}", where="data.id")
            return detail

        try:
            return self._read(read, "GET", f"/api/v1/task/dag/{dag_id}", query=query,
                              timeout=timeout)
        except DecodeError as exc:  # a reply that is not this DAG: still about this task
            exc.task_id = dag_id
            raise

    def operate_dag(self, dag_id: Union[str, int], operator: Union[Operator, str]) -> None:
        """``POST /api/v1/task/dag/{id}``: apply RETRY, ROLLBACK, CANCEL or PASS to a DAG.

        The agent answers as soon as the operator is recorded; follow the DAG to see its effect.
        Prefer the checked forms ``DagTask.retry()``, ``rollback()``, ``cancel()``, ``skip()``.
        It is sent once: a lost reply or a 5xx may come after the agent applied it, and the
        error then says so, and where to see the task.
        """
        dag_id = check_dag_id(dag_id)
        op = check_operator(operator)
        try:
            self.call("POST", operator_path(dag_id), body={"operator": op.value})
        except ObshellError as exc:  # never sent again: a lost reply or a 5xx says where to look
            say_maybe_applied(exc, dag_id, op)
            raise
        log.info("agent %s: %s applied to task %s", self.agent, op.value, dag_id)

    def get_node(self, node_id: Union[str, int]) -> NodeDetail:
        """``GET /api/v1/task/node/{id}``: one node (stage) of a DAG with its sub-tasks.

        Always asks with details: obshell fails (500) on ``show_details=false`` here.
        """
        node_id = check_dag_id(node_id, "node_id")
        return self._read(NodeDetail.from_json, "GET", f"/api/v1/task/node/{node_id}",
                          query="show_details=true")

    def sub_task_logs(self, sub_task_id: Union[str, int]) -> list[str]:
        """``GET /api/v1/task/sub_task/{id}/logs``: every log line of one sub-task."""
        sub_task_id = check_dag_id(sub_task_id, "sub_task_id")
        return self._read(_logs, "GET", f"/api/v1/task/sub_task/{sub_task_id}/logs")

    def unfinished_dags(self, *, timeout: Optional[Timeout] = None) -> list[DagDetail]:
        """``GET /api/v1/task/dag/unfinish``: DAGs not finished (a FAILED upgrade stays here).

        ``timeout``, as every call's here, stands in for the client's for this call alone.
        """
        return self._read(_DAGS, "GET", "/api/v1/task/dag/unfinish", timeout=timeout)

    def last_maintenance_dag(
        self, *, timeout: Optional[Timeout] = None
    ) -> Optional[DagDetail]:
        """``GET /api/v1/task/dag/maintain/ob``: the cluster's last maintenance DAG, or None."""
        try:
            return self._read(DagDetail.from_json, "GET", "/api/v1/task/dag/maintain/ob",
                              timeout=timeout)
        except TaskNotFoundError:
            return None

    def cluster_dags(self, *, timeout: Optional[Timeout] = None) -> list[DagDetail]:
        """``GET /api/v1/task/dags/ob``: every task the cluster ever ran, finished ones too.

        Without nodes (agents before 4.3.1 send them anyway); obshell 4.2.6 and later (older
        agents refuse the route). A long-lived cluster holds many: read it to find a past
        task, never to poll one (``client.task(id)`` does that).
        """
        return self._read(_DAGS, "GET", "/api/v1/task/dags/ob", query="show_details=false",
                          timeout=timeout)


#: A task list's data: its DAGs.
_DAGS = contents(DagDetail.from_json)


def _logs(data: Any) -> list[str]:
    """A sub-task's log lines, from its ``{"contents": [...]}``."""
    return list(at(p_list(p_str), decode_contents(data), "data.contents"))
