"""Typed, frozen models of what obshell sends and takes. No HTTP, no I/O.

Build them from JSON with the named constructors (``DagDetail.from_json(obj)``); keys the
model does not know are kept in ``extra``. Ids stay strings: obshell's ids outgrow 64 bits.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any, Optional

import attrs

from ._wire import (
    decode,
    p_any,
    p_bool,
    p_enum,
    p_int,
    p_list,
    p_model,
    p_object,
    p_optional,
    p_str,
    p_time,
    shared_repr,
    wire,
)

__all__ = [
    "AgentAddress",
    "AgentInfo",
    "AgentSecret",
    "DagDetail",
    "DagOutcome",
    "DagState",
    "Envelope",
    "ErrorInfo",
    "NodeDetail",
    "Operator",
    "Progress",
    "TaskDetail",
]



def _extra() -> Any:
    """The field that keeps the JSON keys a model does not know."""
    return attrs.field(factory=dict, repr=False, eq=False)



class DagState(str, Enum):
    """State of a DAG, node or sub-task (obshell spells it ``SUCCEED``)."""

    PENDING = "PENDING"
    READY = "READY"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    SUCCEED = "SUCCEED"

    def __str__(self) -> str:
        return self.value


class Operator(str, Enum):
    """The operator applied to a DAG: ``RUN`` normally, or what a user asked for."""

    RUN = "RUN"
    RETRY = "RETRY"
    ROLLBACK = "ROLLBACK"
    CANCEL = "CANCEL"
    PASS = "PASS"

    def __str__(self) -> str:
        return self.value


class DagOutcome(str, Enum):
    """What a DAG's state and operator mean together (PROTOCOL §9.4)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ROLLED_BACK = "rolled back"
    PASSED = "passed"

    def __str__(self) -> str:
        return self.value


@shared_repr
@attrs.frozen(repr=False)
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


@shared_repr
@attrs.frozen(repr=False)
class ErrorInfo:
    """The ``error`` object of an envelope: branch on ``err_code`` (or ``code`` on old agents)."""

    err_code: str = wire("errCode", p_str, required=False, default="")
    code: int = wire("code", p_int, required=False, default=0)
    message: str = wire("message", p_str, required=False, default="")
    sub_errors: tuple[Any, ...] = wire(
        "subErrors", p_list(p_any, null_as_empty=True), required=False, default=()
    )
    extra: dict[str, Any] = _extra()

    @classmethod
    def from_json(cls, obj: Any, where: str = "error") -> ErrorInfo:
        """Build from the envelope's ``error`` object."""
        return decode(cls, obj, where)


@shared_repr
@attrs.frozen(repr=False)
class Envelope:
    """obshell's response envelope. ``data`` is the raw payload (None when absent)."""

    successful: bool = wire("successful", p_bool)
    status: int = wire("status", p_int)
    timestamp: Optional[datetime] = wire("timestamp", p_time, required=False)
    duration: int = wire("duration", p_int, required=False, default=0)
    trace_id: str = wire("traceId", p_str, required=False, default="")
    data: Any = wire("data", p_any, required=False, repr=False)
    error: Optional[ErrorInfo] = wire(
        "error", p_optional(p_model(ErrorInfo)), required=False
    )
    extra: dict[str, Any] = _extra()

    @classmethod
    def from_json(cls, obj: Any, where: str = "") -> Envelope:
        """Build from the whole decoded JSON reply."""
        return decode(cls, obj, where)


@shared_repr
@attrs.frozen(repr=False)
class AgentAddress:
    """An agent's address as obshell writes it in ``execute_agent``."""

    ip: str = wire("ip", p_str)
    port: int = wire("port", p_int)
    extra: dict[str, Any] = _extra()

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


_state = p_enum(DagState)
_operator = p_enum(Operator)


@shared_repr
@attrs.frozen(repr=False)
class TaskDetail:
    """A sub-task: one agent's share of a node, with its log lines."""

    id: str = wire("id", p_str)
    task_id: int = wire("task_id", p_int)
    name: str = wire("name", p_str)
    state: DagState = wire("state", _state)
    operator: Operator = wire("operator", _operator)
    start_time: Optional[datetime] = wire("start_time", p_time, required=False)
    end_time: Optional[datetime] = wire("end_time", p_time, required=False)
    additional_data: Optional[dict[str, Any]] = wire(
        "additional_data", p_object, required=False, repr=False
    )
    execute_times: int = wire("execute_times", p_int, required=False, default=0)
    execute_agent: Optional[AgentAddress] = wire(
        "execute_agent", p_optional(p_model(AgentAddress)), required=False
    )
    task_logs: tuple[str, ...] = wire(
        "task_logs", p_list(p_str, null_as_empty=True), required=False, default=(), repr=False
    )
    extra: dict[str, Any] = _extra()

    @classmethod
    def from_json(cls, obj: Any, where: str = "data") -> TaskDetail:
        """Build from a TaskDetailDTO JSON object."""
        return decode(cls, obj, where)


@shared_repr
@attrs.frozen(repr=False)
class NodeDetail:
    """A node (one stage) of a DAG and its sub-tasks."""

    id: str = wire("id", p_str)
    node_id: int = wire("node_id", p_int)
    name: str = wire("name", p_str)
    state: DagState = wire("state", _state)
    operator: Operator = wire("operator", _operator)
    start_time: Optional[datetime] = wire("start_time", p_time, required=False)
    end_time: Optional[datetime] = wire("end_time", p_time, required=False)
    additional_data: Optional[dict[str, Any]] = wire(
        "additional_data", p_object, required=False, repr=False
    )
    sub_tasks: tuple[TaskDetail, ...] = wire(
        "sub_tasks", p_list(p_model(TaskDetail), null_as_empty=True), required=False, default=()
    )
    extra: dict[str, Any] = _extra()

    @classmethod
    def from_json(cls, obj: Any, where: str = "data") -> NodeDetail:
        """Build from a NodeDetailDTO JSON object."""
        return decode(cls, obj, where)


@shared_repr
@attrs.frozen(repr=False)
class DagDetail:
    """A DAG (an asynchronous obshell task) as GetDagDetails returns it.

    ``nodes`` is None when the agent was asked without details (and in the create reply).
    """

    id: str = wire("id", p_str)
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
        "additional_data", p_object, required=False, repr=False
    )
    nodes: Optional[tuple[NodeDetail, ...]] = wire(
        "nodes", p_optional(p_list(p_model(NodeDetail))), required=False, repr=False
    )
    extra: dict[str, Any] = _extra()

    @classmethod
    def from_json(cls, obj: Any, where: str = "data") -> DagDetail:
        """Build from a DagDetailDTO JSON object."""
        return decode(cls, obj, where)

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

    def _repr_html_(self) -> str:
        """An HTML card for notebooks: name, state, stage bar, failing step and its log."""
        from ._display import dag_html

        return dag_html(self)

    def failed_sub_tasks(self) -> tuple[TaskDetail, ...]:
        """Sub-tasks in state FAILED, in DAG order (empty without details)."""
        return tuple(
            task
            for node in self.nodes or ()
            for task in node.sub_tasks
            if task.state is DagState.FAILED
        )


@shared_repr
@attrs.frozen(repr=False)
class AgentInfo:
    """What ``GET /api/v1/info`` says about an agent."""

    identity: str = wire("identity", p_str)
    version: str = wire("version", p_str)
    ip: str = wire("ip", p_str, required=False, default="")
    port: int = wire("port", p_int, required=False, default=0)
    pid: int = wire("pid", p_int, required=False, default=0)
    state: int = wire("state", p_int, required=False, default=0)
    start_at: int = wire("startAt", p_int, required=False, default=0)
    home_path: str = wire("homePath", p_str, required=False, default="")
    ob_version: str = wire("obVersion", p_str, required=False, default="")
    architecture: str = wire("architecture", p_str, required=False, default="")
    zone: str = wire("zone", p_str, required=False, default="")
    is_obproxy_agent: bool = wire("isObproxyAgent", p_bool, required=False, default=False)
    security: bool = wire("security", p_bool, required=False, default=False)
    supported_auth: Optional[tuple[str, ...]] = wire(
        "supportedAuth", p_optional(p_list(p_str)), required=False
    )
    extra: dict[str, Any] = _extra()

    @classmethod
    def from_json(cls, obj: Any, where: str = "data") -> AgentInfo:
        """Build from the ``data`` of ``/api/v1/info``."""
        return decode(cls, obj, where)

    @property
    def version_number(self) -> str:
        """The obshell version without its ``-release`` suffix, e.g. ``4.2.3.0``."""
        return self.version.split("-", 1)[0]

    @property
    def has_agent_password(self) -> bool:
        """True when an agent password is set (obshell calls this ``security``)."""
        return self.security

    @property
    def started_at(self) -> Optional[datetime]:
        """Process start time (``startAt`` is in nanoseconds)."""
        if self.start_at <= 0:
            return None
        return datetime.fromtimestamp(self.start_at / 1e9, tz=timezone.utc)


@shared_repr
@attrs.frozen(repr=False)
class AgentSecret:
    """What ``GET /api/v1/secret`` returns: the agent's RSA public key (base64 PKCS#1 DER)."""

    public_key: str = wire("public_key", p_str, repr=False)
    ip: str = wire("ip", p_str, required=False, default="")
    port: int = wire("port", p_int, required=False, default=0)
    extra: dict[str, Any] = _extra()

    @classmethod
    def from_json(cls, obj: Any, where: str = "data") -> AgentSecret:
        """Build from the ``data`` of ``/api/v1/secret``."""
        return decode(cls, obj, where)
