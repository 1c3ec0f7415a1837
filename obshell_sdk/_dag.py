"""The DAG models: an obshell task (DAG), its nodes (stages) and sub-tasks, and their enums.

Typed, frozen attrs classes built with named constructors (``DagDetail.from_json(obj)``);
keys a model does not know are kept in ``extra``. Ids stay strings: obshell's ids outgrow
64 bits. No HTTP, no I/O.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Any, Optional

import attrs

from ._decode import (
    MisfitError,
    decode,
    p_enum,
    p_int,
    p_list,
    p_model,
    p_object,
    p_optional,
    p_str,
    p_time,
    wire,
)
from ._exceptions import DecodeError

__all__ = [
    "AgentAddress",
    "DagDetail",
    "DagOutcome",
    "DagState",
    "NodeDetail",
    "Operator",
    "Progress",
    "TaskDetail",
    "extra_field",
]


def extra_field() -> Any:
    """The field that keeps the JSON keys a model does not know."""
    return attrs.field(factory=dict, repr=False, eq=False)


class TextEnum(str, Enum):
    """An enum of wire strings that prints as its value (``str(DagState.FAILED) == "FAILED"``)."""

    def __str__(self) -> str:
        return str(self.value)


class DagState(TextEnum):
    """State of a DAG, node or sub-task (obshell spells it ``SUCCEED``)."""

    PENDING = "PENDING"
    READY = "READY"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    SUCCEED = "SUCCEED"


class Operator(TextEnum):
    """The operator applied to a DAG: ``RUN`` normally, or what a user asked for."""

    RUN = "RUN"
    RETRY = "RETRY"
    ROLLBACK = "ROLLBACK"
    CANCEL = "CANCEL"
    PASS = "PASS"


class DagOutcome(TextEnum):
    """What a DAG's state and operator mean together (PROTOCOL §9.4)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ROLLED_BACK = "rolled back"
    PASSED = "passed"


@attrs.frozen
class Progress:
    """How far a DAG is: ``stage`` of ``max_stage`` (1-based)."""

    stage: int
    max_stage: int
    #: True once the DAG succeeded (then every stage is done, the last one included).
    succeeded: bool = False

    @property
    def fraction(self) -> float:
        """Share of the stages done, from 0.0 to 1.0 (the stage running now is not done)."""
        if self.succeeded:
            return 1.0
        if self.max_stage <= 0:
            return 0.0
        return min(1.0, max(0.0, (self.stage - 1) / self.max_stage))

    def __str__(self) -> str:
        return f"{self.stage}/{self.max_stage}"


@attrs.frozen
class AgentAddress:
    """An agent's address as obshell writes it in ``execute_agent``."""

    ip: str = wire("ip", p_str)
    port: int = wire("port", p_int)
    extra: dict[str, Any] = extra_field()

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


#: The longest task id accepted (obshell's longest are 46 digits).
MAX_ID_LENGTH = 200
# PROTOCOL §9.2: the first digit says where a task lives; each kind has a minimum length.
_MIN_ID_LENGTH = {"1": 2, "2": 17, "4": 17, "3": 46, "5": 46}
_ID_DIGITS = re.compile(r"[0-9]+\Z")


def task_id_problem(text: str, short_hint: str = "") -> Optional[str]:
    """What makes ``text`` no obshell generic id of a DAG, node or sub-task, or None.

    ``short_hint`` ends the message of an id too short for its kind (the caller's typo?).
    """
    if len(text) > MAX_ID_LENGTH:
        return f"is not a task id: {len(text)} characters, more than {MAX_ID_LENGTH}"
    if not _ID_DIGITS.match(text):
        return "is not a task id: ids are decimal digits, such as '1123'"
    need = _MIN_ID_LENGTH.get(text[0])
    if need is None:
        return ("is not a task id: obshell's start with 1 to 5 (the kind of task; an "
                "upgrade's with 1, such as '11')")
    if len(text) < need:
        return (f"is too short for a task id starting with {text[0]}: those have {need} "
                f"digits or more{short_hint}")
    return None


def _p_id(value: Any) -> str:
    text = p_str(value)
    problem = task_id_problem(text)
    if problem is not None:  # never printed raw nor taken for the caller's mistake later
        raise MisfitError(f"{text[:60]!r} {problem}")
    return text


_state = p_enum(DagState)
_operator = p_enum(Operator)


@attrs.frozen
class TaskDetail:
    """A sub-task: one agent's share of a node, with its log lines."""

    id: str = wire("id", _p_id)
    task_id: int = wire("task_id", p_int)
    name: str = wire("name", p_str)
    state: DagState = wire("state", _state)
    operator: Operator = wire("operator", _operator)
    start_time: Optional[datetime] = wire("start_time", p_time, required=False)
    end_time: Optional[datetime] = wire("end_time", p_time, required=False)
    additional_data: Optional[dict[str, Any]] = wire(
        "additional_data", p_object, required=False, repr=False, hash=False
    )
    execute_times: int = wire("execute_times", p_int, required=False, default=0)
    execute_agent: Optional[AgentAddress] = wire(
        "execute_agent", p_optional(p_model(AgentAddress)), required=False
    )
    task_logs: tuple[str, ...] = wire(
        "task_logs", p_list(p_str, null_as_empty=True), required=False, default=(), repr=False
    )
    extra: dict[str, Any] = extra_field()

    @classmethod
    def from_json(cls, obj: Any, where: str = "data") -> TaskDetail:
        """Build from a TaskDetailDTO JSON object."""
        return decode(cls, obj, where)


@attrs.frozen
class NodeDetail:
    """A node (one stage) of a DAG and its sub-tasks."""

    id: str = wire("id", _p_id)
    node_id: int = wire("node_id", p_int)
    name: str = wire("name", p_str)
    state: DagState = wire("state", _state)
    operator: Operator = wire("operator", _operator)
    start_time: Optional[datetime] = wire("start_time", p_time, required=False)
    end_time: Optional[datetime] = wire("end_time", p_time, required=False)
    additional_data: Optional[dict[str, Any]] = wire(
        "additional_data", p_object, required=False, repr=False, hash=False
    )
    sub_tasks: tuple[TaskDetail, ...] = wire(
        "sub_tasks", p_list(p_model(TaskDetail), null_as_empty=True), required=False, default=()
    )
    extra: dict[str, Any] = extra_field()

    @classmethod
    def from_json(cls, obj: Any, where: str = "data") -> NodeDetail:
        """Build from a NodeDetailDTO JSON object."""
        return decode(cls, obj, where)


@attrs.frozen
class DagDetail:
    """A DAG (an asynchronous obshell task) as GetDagDetails returns it.

    ``nodes`` is None when the agent was asked without details (and in the create reply).
    Times are the agent's as sent: ``start_time`` holds once the DAG runs, ``end_time``
    once it has ended (:attr:`is_finished`); before, obshell writes its creation time in
    them, or an unset time (None). The same goes for nodes and sub-tasks.
    """

    id: str = wire("id", _p_id)
    dag_id: int = wire("dag_id", p_int)
    name: str = wire("name", p_str)
    stage: int = wire("stage", p_int)
    max_stage: int = wire("max_stage", p_int)
    state: DagState = wire("state", _state)
    operator: Operator = wire("operator", _operator)
    maintenance_type: Optional[int] = wire("maintenance_type", p_int, required=False)
    maintenance_key: Optional[str] = wire("maintenance_key", p_str, required=False)
    start_time: Optional[datetime] = wire("start_time", p_time, required=False)
    end_time: Optional[datetime] = wire("end_time", p_time, required=False)
    additional_data: Optional[dict[str, Any]] = wire(
        "additional_data", p_object, required=False, repr=False, hash=False
    )
    nodes: Optional[tuple[NodeDetail, ...]] = wire(
        "nodes", p_optional(p_list(p_model(NodeDetail))), required=False, repr=False
    )
    extra: dict[str, Any] = extra_field()

    @classmethod
    def from_json(cls, obj: Any, where: str = "data") -> DagDetail:
        """Build from a DagDetailDTO JSON object.

        A DAG whose stage is outside ``0..max_stage`` (or whose nodes do not number
        ``max_stage``), or that succeeded (not rolled back nor passed) before its last stage
        or with a node that did not succeed, is impossible and raises
        :class:`~obshell_sdk.DecodeError`: it is never taken for progress, let alone for
        success.
        """
        dag = decode(cls, obj, where)
        if dag.max_stage < 0 or not 0 <= dag.stage <= dag.max_stage:
            raise DecodeError(f"stage {dag.stage} of {dag.max_stage} is impossible",
                              where=f"{where}.stage")
        if dag.nodes is not None and dag.nodes and len(dag.nodes) != dag.max_stage:
            raise DecodeError(f"{len(dag.nodes)} nodes for {dag.max_stage} stages",
                              where=f"{where}.nodes")
        if dag.state is DagState.SUCCEED and dag.operator not in (Operator.ROLLBACK,
                                                                  Operator.PASS):
            # obshell ends a run as SUCCEED only after its last node (PROTOCOL §9.4); a
            # cancelled one ends FAILED: SUCCEED + CANCEL is no more done before it
            unfinished = [n.name for n in dag.nodes or () if n.state is not DagState.SUCCEED]
            if dag.stage != dag.max_stage or unfinished:
                raise DecodeError(
                    f"SUCCEED at stage {dag.stage} of {dag.max_stage}"
                    + (f" with node(s) not succeeded: {', '.join(unfinished)}"
                       if unfinished else ""), where=f"{where}.state")
        return dag

    @property
    def progress(self) -> Progress:
        """Stage of max_stage."""
        return Progress(self.stage, self.max_stage, self.state is DagState.SUCCEED)

    @property
    def is_finished(self) -> bool:
        """True once the DAG ended (SUCCEED or FAILED); an operator may revive a FAILED one."""
        return self.state in (DagState.SUCCEED, DagState.FAILED)

    @property
    def outcome(self) -> DagOutcome:
        """State and operator read together: only ``SUCCEEDED`` means the work was done."""
        if self.state is DagState.SUCCEED:
            if self.operator is Operator.ROLLBACK:
                return DagOutcome.ROLLED_BACK
            if self.operator is Operator.PASS:
                return DagOutcome.PASSED
            return DagOutcome.SUCCEEDED
        if self.state is DagState.FAILED:
            if self.operator is Operator.CANCEL:
                return DagOutcome.CANCELLED
            return DagOutcome.FAILED
        return DagOutcome.RUNNING

    @property
    def current_node(self) -> Optional[NodeDetail]:
        """The node at ``stage`` when details were fetched, else None."""
        if not self.nodes or not 1 <= self.stage <= len(self.nodes):
            return None
        return self.nodes[self.stage - 1]

    def failed_sub_tasks(self) -> tuple[TaskDetail, ...]:
        """Sub-tasks in state FAILED, in DAG order (empty without details)."""
        return tuple(
            task
            for node in self.nodes or ()
            for task in node.sub_tasks
            if task.state is DagState.FAILED
        )
