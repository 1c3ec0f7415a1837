"""DAG, node and sub-task objects of the fake agent and their obshell JSON form."""

from __future__ import annotations

from typing import Any, Optional

from ._golike import ZERO_TIME, rfc3339

OPERATORS = ("RETRY", "ROLLBACK", "CANCEL", "PASS")


def _t(ts: Optional[float]) -> str:
    return ZERO_TIME if ts is None else rfc3339(ts)


class FakeSubTask:
    """The single sub-task of a node (run by this agent)."""

    def __init__(self, task_id: int, name: str) -> None:
        self.task_id = task_id
        self.name = name
        self.state = "PENDING"
        self.operator = "RUN"
        self.start: Optional[float] = None
        self.end: Optional[float] = None
        self.execute_times = 0
        self.logs: Optional[list[str]] = None  # obshell sends null until the task has run

    @property
    def generic_id(self) -> str:
        """Generic id of the sub-task (cluster prefix ``1``)."""
        return f"1{self.task_id}"

    def to_json(self, ip: str, port: int) -> dict[str, Any]:
        """TaskDetailDTO as obshell serialises it inside a DAG view."""
        return {
            "id": self.generic_id, "task_id": self.task_id, "name": self.name,
            "state": self.state, "operator": self.operator,
            "start_time": _t(self.start), "end_time": _t(self.end),
            "additional_data": None, "execute_times": self.execute_times,
            "execute_agent": {"ip": ip, "port": port},
            "task_logs": None if self.logs is None else list(self.logs),
        }


class FakeNode:
    """One node (stage) of a DAG."""

    def __init__(self, node_id: int, name: str) -> None:
        self.node_id = node_id
        self.name = name
        self.state = "PENDING"
        self.operator = "RUN"
        self.start: Optional[float] = None
        self.end: Optional[float] = None
        self.sub_task: FakeSubTask = FakeSubTask(node_id, name)

    def to_json(self, ip: str, port: int) -> dict[str, Any]:
        """NodeDetailDTO as obshell serialises it inside a DAG view."""
        return {
            "id": f"1{self.node_id}", "node_id": self.node_id, "name": self.name,
            "state": self.state, "operator": self.operator,
            "start_time": _t(self.start), "end_time": _t(self.end),
            "additional_data": None, "sub_tasks": [self.sub_task.to_json(ip, port)],
        }


class FakeDag:
    """State of one simulated cluster DAG; mutate only through :class:`DagStore`.

    Timing attributes a test or benchmark may read:

    * ``start`` / ``end``: the server-clock times the DAG reports (for a time-driven DAG these
      are the *scheduled* step times);
    * ``finished_at``: wall-clock ``time.time()`` at the moment the agent marked the DAG
      finished (``SUCCEED`` or ``FAILED``), ``None`` before (an operator that sets it going
      again, e.g. RETRY, makes it ``None`` until it finishes again);
    * ``stage_seconds`` / ``stage_durations``: its pace when time-driven (see
      :meth:`seconds_for_stage`).

    What it is: ``kind`` (``agent-upgrade``, ``agent-check``, ``ob-upgrade`` or ``ob-check``),
    ``target_version`` and ``target_release`` (the build number), ``release_full`` (as sent),
    ``upgrade_dir`` and ``required_packages`` (the names its download node looks up).
    """

    def __init__(self, dag_id: int, name: str, node_names: tuple[str, ...],
                 maintenance_type: int, created: float) -> None:
        self.dag_id = dag_id
        self.name = name
        self.maintenance_type = maintenance_type
        #: False on an agent before 4.3.0: its JSON lacks ``maintenance_type`` and ``_key``.
        self.sends_maintenance = True
        self.state = "READY"
        self.operator = "RUN"
        self.created = created
        self.start: Optional[float] = None
        self.end: Optional[float] = None
        self.nodes: list[FakeNode] = [
            FakeNode(dag_id * 100 + i, n) for i, n in enumerate(node_names, 1)]
        self.position = 0  # index (1-based) of the node being run; 0 = not started
        self.stage_override: Optional[int] = None
        self.fail_stage: Optional[int] = None
        self.fails_left = 0
        self.fail_message = "injected failure at stage {stage}"
        self.stages_per_poll = 1
        self.stage_seconds: Optional[float] = None
        self.stage_durations: Optional[tuple[float, ...]] = None
        self.next_step_at = created
        self.finished_at: Optional[float] = None
        self.restart_at_stage: Optional[int] = None
        self.restarted = False
        #: Its restart is queued, the agent not down yet: the restart stage does not end (as
        #: obshell's cannot end before its agent restarts), however fast the DAG moves.
        self.restart_held = False
        self.target_version = ""
        self.target_release = ""  # the build number (the release before its first dot)
        self.version_applied = False  # the agent took on target_version and target_release
        self.kind = "agent-upgrade"  # agent-upgrade, agent-check, ob-upgrade or ob-check
        self.release_full = ""  # the release as sent (build.distribution)
        self.upgrade_dir = ""
        self.required_packages: tuple[str, ...] = ("obshell",)

    @property
    def generic_id(self) -> str:
        """Generic id (``"1"`` + row id)."""
        return f"1{self.dag_id}"

    @property
    def max_stage(self) -> int:
        """Number of nodes."""
        return len(self.nodes)

    @property
    def stage(self) -> int:
        """1-based current stage as reported by obshell."""
        if self.stage_override is not None:
            return self.stage_override
        return min(max(self.position, 1), self.max_stage)

    @property
    def time_driven(self) -> bool:
        """True when the DAG advances with time (``stage_durations`` or ``stage_seconds``)."""
        return self.stage_durations is not None or self.stage_seconds is not None

    def seconds_for_stage(self, stage: int) -> float:
        """How long stage ``stage`` (1-based) lasts when time-driven.

        ``stage_durations[stage - 1]`` (its last value repeats for later stages) when set,
        else ``stage_seconds``; ``0.0`` for a poll-driven DAG.
        """
        if self.stage_durations:
            index = min(max(stage, 1), len(self.stage_durations)) - 1
            return self.stage_durations[index]
        return self.stage_seconds or 0.0

    @property
    def unfinished(self) -> bool:
        """True while obshell's ``is_finished`` would be false.

        ``updateDagState`` sets it for a FAILED DAG only when that is no maintenance DAG
        (``maintenance_type`` 1, a check): a failed upgrade stays unfinished, a check does not.
        A cancelled upgrade too: it ends through ``FinishDagAsFailed``, which keeps the lock
        (no ``FAILURE_EXIT_MAINTENANCE`` in an upgrade's context).
        """
        if self.state in ("READY", "RUNNING", "PENDING"):
            return True
        return self.state == "FAILED" and self.maintenance_type != 1

    def to_json(self, ip: str, port: int, *, details: bool, fresh: bool = False) -> dict[str, Any]:
        """DagDetailDTO (``fresh`` = the create response: zero times, no details)."""
        if fresh:
            start = end = ZERO_TIME
        else:
            start = _t(self.start)
            end = _t(self.end) if self.end is not None else (
                rfc3339(self.created) if self.start is not None else ZERO_TIME)
        data = {
            "id": self.generic_id, "dag_id": self.dag_id, "name": self.name,
            "stage": self.stage, "max_stage": self.max_stage,
            "maintenance_type": self.maintenance_type, "maintenance_key": "",
            "state": self.state, "operator": self.operator,
            "start_time": start, "end_time": end,
            "additional_data": {} if details and not fresh else None,
            "nodes": [n.to_json(ip, port) for n in self.nodes] if details and not fresh else None,
        }
        if not self.sends_maintenance:  # obshell added them in 4.3.0 (PROTOCOL.md)
            del data["maintenance_type"], data["maintenance_key"]
        return data
