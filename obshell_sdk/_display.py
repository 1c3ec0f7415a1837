"""How tasks look to people: HTML for notebooks, one text line for terminals.

IPython is used when it is there and never required.
"""

from __future__ import annotations

import html
import importlib
import sys
from typing import Any, Callable, Optional

from ._models import DagDetail, DagOutcome

__all__ = [
    "LiveProgress",
    "dag_html",
    "dag_line",
    "failure_message",
    "in_notebook",
    "with_display",
]

_COLOURS = {
    DagOutcome.SUCCEEDED: "#2e7d32",
    DagOutcome.RUNNING: "#1565c0",
    DagOutcome.FAILED: "#c62828",
    DagOutcome.CANCELLED: "#6d4c41",
    DagOutcome.ROLLED_BACK: "#ef6c00",
    DagOutcome.PASSED: "#9e9d24",
}


def dag_line(detail: DagDetail) -> str:
    """One line: id, name, stage of max, state and the step running now."""
    node = detail.current_node
    step = f": {node.name}" if node is not None and not detail.is_finished else ""
    return (f"task {detail.id} {detail.name} [{detail.progress}] {detail.state}"
            f" ({detail.outcome}){step}")


def dag_html(detail: DagDetail, title: Optional[str] = None) -> str:
    """An HTML card: name, state, a stage bar, and the failing step with its last log line."""
    esc = html.escape
    colour = _COLOURS[detail.outcome]
    pct = round(detail.progress.fraction * 100)
    node = detail.current_node
    rows = [
        f'<div class="obshell-dag" data-dag-id="{esc(detail.id)}" '
        f'style="font-family:sans-serif;border:1px solid #ccc;padding:8px;max-width:640px">',
        f'<div><b class="obshell-name">{esc(title or detail.name)}</b> '
        f'<span style="color:#666">task {esc(detail.id)}</span></div>',
        f'<div class="obshell-state" style="color:{colour}">{esc(str(detail.state))} '
        f'({esc(str(detail.outcome))}), operator {esc(str(detail.operator))}</div>',
        f'<div class="obshell-bar" style="background:#eee;height:10px;margin:4px 0">'
        f'<div style="background:{colour};width:{pct}%;height:10px"></div></div>',
        f'<div class="obshell-stage">stage {detail.progress}'
        + (f": {esc(node.name)}" if node is not None else "") + "</div>",
    ]
    for task in detail.failed_sub_tasks():
        last = task.task_logs[-1] if task.task_logs else "(no log)"
        rows.append(
            f'<div class="obshell-failure" style="color:{_COLOURS[DagOutcome.FAILED]}">'
            f'failed: {esc(task.name)} on {esc(str(task.execute_agent))}: '
            f'<code class="obshell-log">{esc(last)}</code></div>'
        )
    rows.append("</div>")
    return "\n".join(rows)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a kernel attached)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LiveProgress:
    """Shows a task's progress in place.

    In a notebook an HTML card is updated; elsewhere a text line on stderr is rewritten.
    """

    def __init__(self) -> None:
        self._handle: Any = None
        self._notebook = in_notebook()

    def __call__(self, detail: DagDetail) -> None:
        """Show ``detail``, replacing what was shown before."""
        if self._notebook:
            shown = importlib.import_module("IPython.display")
            card = shown.HTML(dag_html(detail))
            if self._handle is None:
                self._handle = shown.display(card, display_id=True)
            else:
                self._handle.update(card)
            return
        end = "\n" if detail.is_finished else ""
        sys.stderr.write("\r\x1b[K" + dag_line(detail) + end)
        sys.stderr.flush()


def with_display(
    callback: Optional[Callable[[DagDetail], object]], progress: Optional[bool]
) -> Optional[Callable[[DagDetail], object]]:
    """Add live display to ``callback`` when ``progress`` asks for it (None: notebooks only)."""
    if progress is False or (progress is None and not in_notebook()):
        return callback
    live = LiveProgress()
    if callback is None:
        return live

    def both(detail: DagDetail) -> None:
        live(detail)
        callback(detail)

    return both


def failure_message(label: str, detail: DagDetail) -> str:
    """Say where a DAG failed, with each failing sub-task's agent and last log line."""
    node = detail.current_node
    where = f" at stage {detail.progress}" + (f" {node.name!r}" if node else "")
    lines = []
    for task in detail.failed_sub_tasks()[:5]:
        agent = str(task.execute_agent) if task.execute_agent else "?"
        last = task.task_logs[-1] if task.task_logs else "(no log)"
        lines.append(f"  [{agent}] {task.name}: {last}")
    text = f"{label} failed{where}"
    if lines:
        text += ":\n" + "\n".join(lines)
    if detail.maintenance_type == 1:  # the upgrade check and other lock-free tasks
        return text
    return (
        text + "\nThe cluster stays locked until the task is retried, rolled back, skipped "
        "or cancelled."
    )
