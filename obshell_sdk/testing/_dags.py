"""DAG simulation of the fake agent (agent upgrade and upgrade-check DAGs)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Optional

from ._dagmodel import FakeDag, FakeNode, FakeSubTask
from ._dagops import apply_operator, check_operator, current_node, end_node, fail_node, finish
from ._errors import ApiError
from ._templates import DOWNLOAD_NODE, DagSpec, agent_spec

#: Looks a DAG's packages up when its download node ends: (log lines, error text or None).
DownloadCheck = Callable[[FakeDag], tuple[list[str], Optional[str]]]


class DagStore:
    """Thread-safe collection of DAGs plus their progression rules."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.lock = threading.RLock()
        self._clock = clock
        self._dags: dict[int, FakeDag] = {}
        self._next_id = 1
        self.pending_restarts: list[FakeDag] = []
        # defaults copied into every new DAG
        self.stages_per_poll = 1
        self.stage_seconds: Optional[float] = None
        self.stage_durations: Optional[tuple[float, ...]] = None
        self.fail_stage: Optional[int] = None
        self.fail_times = 1
        self.fail_message = "injected failure at stage {stage}"
        self.restart_at_stage: Optional[int] = None
        self.download_check: Optional[DownloadCheck] = None
        self.sends_maintenance: Callable[[], bool] = lambda: True  # obshell 4.3.0 on
        # None: time-driven DAGs step when their time is up; else only in scheduler passes
        # this many seconds apart, stamped with the pass's time, as obshell's scheduler does
        self.scheduler_period: Optional[float] = None
        self._next_pass = 0.0

    # -- lookup ---------------------------------------------------------
    def all(self) -> list[FakeDag]:
        """All DAGs in creation order."""
        with self.lock:
            return list(self._dags.values())

    def lookup(self, generic_id: str) -> FakeDag:
        """Resolve a generic DAG id as obshell does (raises :class:`ApiError`)."""
        row = parse_generic_id(generic_id)
        with self.lock:
            dag = self._dags.get(row) if row is not None else None
        if dag is None:
            raise ApiError(404, "Task.NotFound", "Task not found: record not found")
        if dag.generic_id != generic_id:
            raise ApiError(404, "Task.NotFound", "Task not found: dag id not match")
        return dag

    def find_sub_task(self, generic_id: str) -> FakeSubTask:
        """Resolve a sub-task id (raises :class:`ApiError`)."""
        row = parse_generic_id(generic_id)
        with self.lock:
            for dag in self._dags.values():
                for node in dag.nodes:
                    if row is not None and node.sub_task.task_id == row:
                        return node.sub_task
        raise ApiError(404, "Task.NotFound", "Task not found: record not found")

    def find_node(self, generic_id: str) -> FakeNode:
        """Resolve a node id (raises :class:`ApiError`)."""
        row = parse_generic_id(generic_id)
        with self.lock:
            for dag in self._dags.values():
                for node in dag.nodes:
                    if row is not None and node.node_id == row:
                        return node
        raise ApiError(404, "Task.NotFound", "Task not found: record not found")

    # -- creation -------------------------------------------------------
    def create(self, version: str, release: str, *, check: bool,
               upgrade_dir: str = "") -> FakeDag:
        """Create an agent upgrade (or upgrade-check) DAG, honouring the maintenance lock."""
        return self.create_from(agent_spec(version, release, check=check,
                                           upgrade_dir=upgrade_dir))

    def lock_holder(self) -> Optional[FakeDag]:
        """The unfinished maintenance DAG holding the cluster lock, if any."""
        with self.lock:
            return next((d for d in self._dags.values()
                         if d.maintenance_type == 2 and d.unfinished), None)

    def create_from(self, spec: DagSpec) -> FakeDag:
        """Create the DAG ``spec`` describes (raises 500 ``UnderMaintenanceWithDag`` if locked)."""
        with self.lock:
            holder = self.lock_holder() if spec.lock else None
            if holder is not None:
                raise ApiError(
                    500, "OB.Cluster.UnderMaintenanceWithDag",
                    f"Create task '{spec.name}' failed: OceanBase cluster is under maintenance "
                    f"by DAG: {holder.name}, please try again later", data_null=True)
            dag = FakeDag(self._next_id, spec.name, spec.nodes, 2 if spec.lock else 1,
                          self._clock())
            self._next_id += 1
            dag.fail_stage = self.fail_stage
            dag.fails_left = self.fail_times if self.fail_stage is not None else 0
            dag.fail_message = self.fail_message
            dag.stages_per_poll = self.stages_per_poll
            dag.stage_seconds = self.stage_seconds
            dag.stage_durations = self.stage_durations
            dag.restart_at_stage = self.restart_at_stage if spec.lock else None
            dag.kind, dag.target_version = spec.kind, spec.version
            dag.target_release = spec.release.split(".", 1)[0]  # the build number, as obshell
            dag.release_full, dag.upgrade_dir = spec.release, spec.upgrade_dir
            dag.required_packages = spec.required_packages
            dag.sends_maintenance = self.sends_maintenance()
            self._dags[dag.dag_id] = dag
            return dag

    # -- progression ----------------------------------------------------
    def on_poll(self, dag: FakeDag) -> None:
        """A GET of the DAG: advance ``stages_per_poll`` steps (poll-driven DAGs)."""
        with self.lock:
            if not dag.time_driven:
                for _ in range(dag.stages_per_poll):
                    self.step(dag)
            else:
                self.tick()

    def tick(self) -> None:
        """Advance time-driven DAGs whose next step is due (in a pass, with a scheduler)."""
        with self.lock:
            now = self._clock()
            period = self.scheduler_period
            if period is not None:  # on the monotonic clock: the agent's clock may be moved
                if time.monotonic() < self._next_pass:
                    return
                self._next_pass = time.monotonic() + period
            for dag in self._dags.values():
                if not dag.time_driven or dag.restart_held:
                    continue
                while dag.state in ("READY", "RUNNING") and now >= dag.next_step_at:
                    self.step(dag, at=dag.next_step_at if period is None else now)
                    dag.next_step_at += max(dag.seconds_for_stage(dag.position), 1e-6)

    def step(self, dag: FakeDag, *, at: Optional[float] = None) -> None:
        """Advance one step: start the DAG / finish the current node / end an operator."""
        with self.lock:
            now = self._clock() if at is None else at
            if dag.state == "READY":
                if dag.start is None:  # startDag: RUNNING from now, whatever comes next
                    dag.start = now
                if dag.operator == "ROLLBACK":
                    finish(dag, "SUCCEED", now, stage=1)
                elif dag.operator == "CANCEL":
                    node = current_node(dag)
                    if node is not None and node.state in ("RUNNING", "PENDING"):
                        end_node(node, "FAILED", now, operator="CANCEL")
                    finish(dag, "FAILED", now)
                else:
                    dag.state = "RUNNING"
                    self._start_node(dag, dag.position + 1, now)
            elif dag.state == "RUNNING":
                node = current_node(dag)
                if node is None:
                    self._start_node(dag, dag.position + 1, now)
                    return
                if dag.restart_held:  # the restart stage ends once the agent went down
                    return
                if dag.position == dag.fail_stage and dag.fails_left > 0:
                    dag.fails_left -= 1
                    fail_node(dag, node, dag.fail_message.format(
                        stage=dag.position, name=node.name), now)
                    return
                if node.name == DOWNLOAD_NODE and self._download_fails(dag, node, now):
                    return
                end_node(node, "SUCCEED", now)
                if dag.position >= dag.max_stage:
                    finish(dag, "SUCCEED", now)
                else:
                    self._start_node(dag, dag.position + 1, now)

    def _download_fails(self, dag: FakeDag, node: FakeNode, now: float) -> bool:
        """Run the download node's package lookup; fail the node if a package is missing."""
        check = self.download_check
        if check is None:
            return False
        logs, error = check(dag)
        node.sub_task.logs = [*(node.sub_task.logs or []), *logs]
        if error is None:
            return False
        fail_node(dag, node, error, now)
        return True

    def _start_node(self, dag: FakeDag, index: int, now: float) -> None:
        dag.position = index
        node = dag.nodes[index - 1]
        node.state = node.sub_task.state = "RUNNING"
        node.start = node.sub_task.start = now
        node.end = node.sub_task.end = None
        node.sub_task.execute_times += 1
        if node.sub_task.logs is None:
            node.sub_task.logs = []
        if (dag.restart_at_stage == index and not dag.restarted
                and dag.maintenance_type == 2):
            dag.restarted = dag.restart_held = True
            self.pending_restarts.append(dag)

    # -- operators ------------------------------------------------------
    def operate(self, dag: FakeDag, operator: str) -> None:
        """Apply a DAG operator with obshell's state rules (raises :class:`ApiError`)."""
        op = operator.upper()
        with self.lock:
            self.tick()
            check_operator(dag, op)
            apply_operator(dag, op, self._clock())

    # -- test helpers ---------------------------------------------------
    def set_stage(self, dag: FakeDag, stage: int) -> None:
        """Force the DAG to RUNNING at ``stage`` (earlier nodes succeeded)."""
        with self.lock:
            now = self._clock()
            dag.state, dag.stage_override, dag.end = "RUNNING", None, None
            dag.finished_at = None
            if dag.start is None:
                dag.start = now
            for i, node in enumerate(dag.nodes, 1):
                if i < stage and node.state != "SUCCEED":
                    if node.start is None:
                        node.start = node.sub_task.start = now
                        node.sub_task.execute_times += 1
                        node.sub_task.logs = node.sub_task.logs or []
                    end_node(node, "SUCCEED", now)
                elif i > stage:
                    node.state = node.sub_task.state = "PENDING"
            self._start_node(dag, stage, now)
            dag.next_step_at = now + dag.seconds_for_stage(stage)

    def set_progression(self, dag: Optional[FakeDag], *, stages_per_poll: Optional[int],
                        stage_seconds: Optional[float],
                        stage_durations: Optional[Sequence[float]]) -> None:
        """Change the pace of one DAG, or (``dag`` None) the defaults for new DAGs.

        ``stage_durations`` overrides ``stage_seconds``; ``stage_seconds`` alone drops any
        earlier ``stage_durations``. A DAG given a new pace runs its current stage from now.
        """
        check_pace(stages_per_poll, stage_seconds)
        durations = check_durations(stage_durations)
        with self.lock:
            target = self if dag is None else dag
            if stages_per_poll is not None:
                target.stages_per_poll = stages_per_poll
            if durations is not None or stage_seconds is not None:
                if stage_seconds is not None:
                    target.stage_seconds = stage_seconds
                target.stage_durations = durations
                if dag is not None:
                    dag.next_step_at = self._clock() + dag.seconds_for_stage(dag.position)

    def finish(self, dag: FakeDag) -> None:
        """Run the DAG to ``SUCCEED`` right now (no injected failure)."""
        with self.lock:
            dag.fails_left = 0
            guard = 0
            while dag.state in ("READY", "RUNNING") and guard < 1000:
                self.step(dag)
                guard += 1

    def fail(self, dag: FakeDag, message: Optional[str] = None) -> None:
        """Fail the current node now (the DAG ends ``FAILED``)."""
        with self.lock:
            now = self._clock()
            if dag.state == "READY":
                self.step(dag)
            node = current_node(dag) or dag.nodes[0]
            text = message or dag.fail_message.format(stage=dag.stage, name=node.name)
            fail_node(dag, node, text, now)


def check_durations(durations: Optional[Sequence[float]]) -> Optional[tuple[float, ...]]:
    """Validate ``stage_durations`` (non-empty, no negative value); ``None`` stays ``None``."""
    if durations is None:
        return None
    values = tuple(float(d) for d in durations)
    if not values or any(d < 0 for d in values):
        raise ValueError(f"stage_durations must be a non-empty list of seconds >= 0: {durations}")
    return values


def check_pace(stages_per_poll: Optional[int], stage_seconds: Optional[float]) -> None:
    """Refuse a pace no DAG can keep: ``stages_per_poll`` under 0, ``stage_seconds`` under 0."""
    if stages_per_poll is not None and not _whole(stages_per_poll, 0):
        raise ValueError(f"stages_per_poll must be a whole number >= 0 (0 freezes poll-driven "
                         f"DAGs), not {stages_per_poll!r}")
    if stage_seconds is not None and not 0 <= stage_seconds < float("inf"):
        raise ValueError(f"stage_seconds must be a number of seconds >= 0, not {stage_seconds!r}")


def check_faults(fail_stage: Optional[int], fail_times: int,
                 restart_at_stage: Optional[int]) -> None:
    """Refuse faults that could never fire: a test relying on one could not fail."""
    for name, stage in (("fail_stage", fail_stage), ("restart_at_stage", restart_at_stage)):
        if stage is not None and not _whole(stage, 1):
            raise ValueError(f"{name} must be a stage number from 1 (a DAG's first stage) or "
                             f"None, not {stage!r}")
    if not _whole(fail_times, 1):
        raise ValueError(f"fail_times must be a whole number >= 1, not {fail_times!r}")


def _whole(value: object, least: int) -> bool:
    return type(value) is int and value >= least


def parse_generic_id(generic_id: str) -> Optional[int]:
    """Validate a generic id (§9.2); return the row id for cluster ids, else ``None``.

    Raises:
        ApiError: 400 ``Task.GenericID.Invalid`` for malformed ids.

    """
    bad = ApiError(400, "Task.GenericID.Invalid", f"Invalid ID: {generic_id}: invalid generic id")
    if not generic_id or not generic_id.isdigit() or not generic_id.isascii():
        raise bad
    prefix = generic_id[0]
    if prefix == "1":
        if len(generic_id) < 2:
            raise bad
        return int(generic_id[1:])
    if prefix in "24":
        if len(generic_id) <= 16 or int(generic_id[1:11]) > 0xFFFFFFFF:
            raise bad
        if int(generic_id[11:16]) > 65535:
            raise bad
        return None
    if prefix in "35":
        if len(generic_id) <= 45 or int(generic_id[1:40]) >= 1 << 128:
            raise bad
        if int(generic_id[40:45]) > 65535:
            raise bad
        return None
    raise bad
