"""The human renderings of tasks, agents and rollouts as text: lines, CLI blocks, messages.

Failure messages, the one-line progress of a terminal, the multi-line view of the CLI, its
lines for an agent and a package and the JSON form of ``--json`` live here; the HTML cards
and their style in :mod:`._render_html` and :mod:`._render_style`, a rollout's renderings
(text and HTML) in :mod:`._render_rollout` (its text ones named here too, as the CLI reads
them), and the live displays that show them (notebook cards, redrawn terminal lines) in
:mod:`._render_live`. The models and the task helper know nothing of how they look.
"""

from __future__ import annotations

import os
from datetime import datetime
from enum import Enum
from typing import Any, Optional

import attrs

from ._dag import DagDetail, DagOutcome, DagState, Operator, TaskDetail
from ._dag_steps import failed_task_operators
from ._endpoints import holds_lock
from ._models import AgentInfo, UpgradePackageInfo
from ._render_html import cancelled_node, dag_html, duration_text, task_html, undone_node
from ._render_rollout import rollout_plan_text, rollout_table_text, rollout_text
from ._text import printable

__all__ = [
    "DONE", "agent_line", "cancelled_message", "dag_html", "dag_line", "dag_text", "failure_line",
    "failure_message", "foreign_message", "interrupted_message", "package_line", "printable",
    "progress_line", "rolled_back_message", "rollout_plan_text", "rollout_table_text",
    "rollout_text", "size_text", "state_text",
    "stored_line", "task_html", "task_repr", "timeout_message", "to_jsonable",
    "unreachable_message", "upload_line",
]

# -- text ------------------------------------------------------------------------------

#: The outcomes a DAG's state alone would misstate (a cancelled DAG is FAILED, a rolled-back
#: or skipped one SUCCEED): where only the state is shown, they are added in parentheses.
_NOT_THE_STATE = (DagOutcome.CANCELLED, DagOutcome.ROLLED_BACK, DagOutcome.PASSED)


def _meaning(detail: DagDetail) -> str:
    return f" ({detail.outcome})" if detail.outcome in _NOT_THE_STATE else ""


def state_text(detail: DagDetail) -> str:
    """The DAG's state, and its outcome where the state misstates it: ``FAILED (cancelled)``."""
    return f"{detail.state}{_meaning(detail)}"


#: A DAG not started yet (READY: obshell's scheduler starts it within a second or so; after an
#: operator, for what the operator asked), in words a newcomer reads.
_WAITING = {Operator.ROLLBACK: "waiting for the agent to roll it back",
            Operator.CANCEL: "waiting for the agent to stop it"}


def _said(detail: DagDetail) -> str:
    """The DAG's outcome, or what a READY (or PENDING) one waits for: ``running`` misleads."""
    if detail.state in (DagState.READY, DagState.PENDING):
        return _WAITING.get(detail.operator, "waiting for the agent to start it")
    return str(detail.outcome)


def dag_line(detail: DagDetail) -> str:
    """One line: id, name, stage of max, state and the step running now."""
    node = detail.current_node
    step = f": {printable(node.name)}" if node is not None and not detail.is_finished else ""
    return (f"task {detail.id} {printable(detail.name)} [{detail.progress}] {detail.state}"
            f" ({_said(detail)}){step}")


def progress_line(detail: DagDetail) -> str:
    """The command line's progress line: id, stage of max, the step running now, state."""
    node = detail.current_node
    step = f" {printable(node.name)}" if node is not None and not detail.is_finished else ""
    return f"task {detail.id} stage {detail.progress}{step} {state_text(detail)}"


def dag_text(detail: DagDetail) -> str:
    """The CLI's view of a DAG: name, state and stage, each node, failing sub-tasks' logs.

    A rolled-back DAG's stages show the states obshell shows; those it ran are marked rolled
    back, and a failure logged is said to be from before the rollback.
    """
    rolled_back = detail.outcome is DagOutcome.ROLLED_BACK
    lines = [f"task {detail.id}: {printable(detail.name)}",
             f"  {detail.state} ({_said(detail)}), stage {detail.progress}"
             + (": every step it had run was undone" if rolled_back else "")]
    for i, node in enumerate(detail.nodes or (), start=1):
        undone = undone_node(detail, node)
        lines.append(f"  {i}. {node.state:<8} {printable(node.name)}"
                     + (" (cancelled)" if cancelled_node(node) else "")
                     + (" (rolled back)" if undone else ""))
        for task in node.sub_tasks:
            if task.state is DagState.FAILED and task.task_logs:
                lines.append(f"       {printable(str(task.execute_agent))}"
                             f"{' (before the rollback)' if undone else ''}: "
                             f"{printable(task.task_logs[-1])}")
    return "\n".join(lines) + "\n"


def agent_line(agent: str, info: AgentInfo) -> str:
    """The CLI's line for an agent (``info``): identity, versions, whether it has a password."""
    ob = f"OceanBase {info.ob_version}, " if info.ob_version else ""
    password = "agent password set" if info.security else "no agent password"
    return printable(f"{agent}: {info.identity}, obshell {info.version}, {ob}{password}")


def size_text(size: int) -> str:
    """A size in bytes as read: ``775 bytes``, ``1.2 KiB``, ``301.4 MiB``, ``2.1 GiB``."""
    if size < 1024:
        return f"{size} byte" + ("" if size == 1 else "s")
    value, units = size / 1024, ["KiB", "MiB", "GiB"]
    while value >= 1023.95 and len(units) > 1:  # 1023.95 would show as 1024.0
        value, units = value / 1024, units[1:]
    return f"{value:.1f} {units[0]}"


def package_line(row: UpgradePackageInfo, uploaded_in: Optional[float] = None) -> str:
    """One package on one line: id, name, version-release, architecture, size, stored when.

    The size is said as what it is, ``installed size 1.8 GiB``: obshell stores the RPM
    header's installed size (its files once installed), not the size of the file uploaded.
    ``uploaded_in``: the seconds an upload of it just took, said with the time it was stored
    (which an upload's answer leaves out: obshell sends it in the package list only).
    """
    when = row.gmt_modify.strftime("%Y-%m-%d %H:%M:%S %Z") if row.gmt_modify else ""
    took = "" if uploaded_in is None else f"uploaded in {duration_text(uploaded_in)}"
    when = f"{when} ({took})" if when and took else when or took or "-"
    release = row.release_distribution or row.release or "?"
    return printable(f"{row.pkg_id:>5}  {row.name} {row.version}-{release} "
                     f"{row.architecture or '?'}  installed size {size_text(row.size)}  {when}")


def upload_line(path: str, agent: str) -> str:
    """A package upload about to start: the file, its size and the agent it goes to."""
    try:
        size = size_text(os.path.getsize(path))
    except OSError:  # gone since it was checked: the upload says why
        size = "size unknown"
    return f"uploading {printable(path)} ({size}) to {agent}"


def stored_line(row: UpgradePackageInfo, seconds: float) -> str:
    """A package upload done: the agent's row for it, and the ``seconds`` the upload took."""
    return f"stored {package_line(row, seconds)}"


def task_repr(task_id: str, detail: Optional[DagDetail]) -> str:
    """The repr of a :class:`DagTask`."""
    if detail is None:
        return f"<DagTask {task_id} (not fetched yet)>"
    return (f"<DagTask {task_id} {detail.name!r} {detail.state} {detail.operator}"
            f"{_meaning(detail)} {detail.progress}>")


def _failed_where(detail: DagDetail) -> str:
    node = detail.current_node
    return f" at stage {detail.progress}" + (f" {printable(node.name)!r}" if node else "")


def _last_log(task: TaskDetail) -> str:
    """A sub-task's last log line on one line, escaped, cut at 1000 characters."""
    last = printable(task.task_logs[-1]) if task.task_logs else "(no log)"
    return last if len(last) <= 1000 else last[:1000] + "..."


def failure_line(label: str, detail: DagDetail) -> str:
    """One line: where a DAG failed, and the first failing sub-task's last log line."""
    text = f"{label} failed{_failed_where(detail)}"
    for task in detail.failed_sub_tasks()[:1]:
        text += f": {printable(task.name)}: {_last_log(task)}"
    return printable(text)


def rolled_back_message(label: str) -> str:
    """Say that a DAG was rolled back (SUCCEED after ROLLBACK): its change did not happen."""
    return f"{label} was rolled back: what it was to do did not happen"


def cancelled_message(label: str, detail: DagDetail) -> str:
    """Say that a DAG was cancelled (FAILED after CANCEL), and that an upgrade's lock stays."""
    held = ("" if not holds_lock(detail) else "; it holds the cluster's lock, as a failed "
            "task does, until it is retried (or rolled back or skipped, where its steps allow "
            "it)")
    return f"{label} was cancelled{held}"


def failure_message(label: str, detail: DagDetail) -> str:
    """Say where a DAG failed, with each failing sub-task's agent and last log line.

    The agent's words stay on their own line each: a newline in them is escaped.
    """
    where = _failed_where(detail)
    lines = []
    for task in detail.failed_sub_tasks()[:5]:
        agent = printable(str(task.execute_agent)) if task.execute_agent else "?"
        lines.append(f"  [{agent}] {printable(task.name)}: {_last_log(task)}")
    text = f"{label} failed{where}"
    if lines:
        text += ":\n" + "\n".join(lines)
    downloads = [t.task_logs[-1] for t in detail.failed_sub_tasks()
                 if t.name == "Download all required packages" and t.task_logs]
    if any(log.endswith("record not found") for log in downloads):  # gorm's words: no such row
        text += ("\nThe agent has no package of this version: upload it "
                 "(client.upload_package(path)), then retry the task.")
    if not holds_lock(detail):  # the upgrade check and other lock-free tasks
        return text
    allowed = failed_task_operators(detail)
    if allowed is None:  # steps not known: what obshell may take
        return (text + "\nThe cluster stays locked until the task is retried (or rolled back "
                "or skipped, where its steps allow it; a FAILED task cannot be cancelled).")
    if not allowed:
        return (text + "\nThe cluster stays locked: the task's steps allow no retry, rollback "
                "or skip, and a FAILED task cannot be cancelled (see docs/tasks.md, \"When a "
                "task fails\").")
    done = " or ".join(DONE[op] for op in allowed)
    return (text + f"\nThe cluster stays locked until the task is {done} (what its steps "
            "allow; a FAILED task cannot be cancelled).")


#: A task's operators, as done to it (``retried``); the CLI says them so too.
DONE = {Operator.RETRY: "retried", Operator.ROLLBACK: "rolled back", Operator.PASS: "skipped",
        Operator.CANCEL: "cancelled"}


def _pick_up(task_id: str, exists: bool) -> str:
    """The call that follows a task again: with ``exists=True`` once it is known to exist."""
    return f"client.task({task_id!r}{', exists=True' if exists else ''}).wait()"


def timeout_message(task_id: str, timeout: Optional[float], detail: Optional[DagDetail],
                    exists: bool, last_error: Optional[Exception]) -> str:
    """Say that a wait ended before the task, what is known of it, and how to wait again.

    ``timeout`` None: the wait was stopped (its ``stop`` event), not timed out.
    """
    where = "" if detail is None else f" (last seen {detail.state} at stage {detail.progress})"
    failing = f"; the last polls failed ({last_error})" if last_error is not None else ""
    then = ("It keeps running on the agent:" if detail is not None else
            "Its agent never answered for it during this wait (it may still be restarting, or "
            "the id may be wrong):" if exists else
            "It was never seen, so whether it runs is not known: check the agent's address and "
            "the task id, then")
    ended = ": the wait was stopped before the task ended" if timeout is None else \
        f" did not end within {timeout:g} s"
    return f"task {task_id}{ended}{where}{failing}. {then} wait again with " + _pick_up(
        task_id, exists)


def unreachable_message(task_id: str, failures: int, seconds: float, budget: float,
                        last_error: Exception) -> str:
    """Say that polls of a task kept failing past the failure budget, and how to look again."""
    return (f"task {task_id}: {failures} polls failed over {seconds:.0f} s (budget {budget:g} s)"
            f"; last error: {last_error}. The task may still be running: check it later with "
            f"client.task({task_id!r}).refresh()")


def interrupted_message(task_id: str, seen: bool, exists: bool) -> str:
    """Say that Ctrl-C stopped a wait, not the task, and how to follow it again."""
    state = "it keeps running on the agent" if seen else "it was not read yet"
    return f"stopped waiting for task {task_id}; {state}. Follow it again with " + _pick_up(
        task_id, exists)


def foreign_message(task_id: str, name: str, said: str, *, seen: bool) -> str:
    """Say that task ``task_id``, ``name``, is now said to be ``said``: another DAG.

    ``seen``: ``name`` was seen in a reply about the task; else it is the name its creating
    call gives it, and the agent's reply to that call named another task.
    """
    if seen:
        return (f"task {task_id} was {name!r}; the agent now answers about {said!r}, another "
                "DAG under its id (a reinstalled agent?)")
    return (f"task {task_id} is {said!r}, not the {name!r} its creating call makes: the agent's "
            "reply to that call named another task. The call was not sent again and what it "
            "made is not known: look for it (client.unfinished_dags() and "
            "client.last_maintenance_dag(); a pre-check that ended is only in the agent's task "
            "history, client.cluster_dags(), or its dashboard) before sending it again")


def to_jsonable(value: Any) -> Any:
    """Turn models, enums and times into plain JSON values (``--json`` output).

    A DAG gets its ``outcome`` too, after its ``operator``: state and operator read together.
    """
    if attrs.has(type(value)):
        fields = {f.name: to_jsonable(getattr(value, f.name))
                  for f in attrs.fields(type(value)) if f.name != "extra"}
        if isinstance(value, DagDetail):
            at = list(fields).index("operator") + 1
            items = list(fields.items())
            fields = dict([*items[:at], ("outcome", value.outcome.value), *items[at:]])
        return fields
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((to_jsonable(v) for v in value), key=str)
    return value
