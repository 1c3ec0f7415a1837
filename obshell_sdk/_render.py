"""Every human rendering of a task in one place: text lines, CLI blocks, notebook HTML.

Failure messages, the one-line progress of a terminal, the multi-line view of the CLI,
the JSON form of ``--json`` and the notebook card all live here (the HTML cards and their
style in :mod:`._render_html` and :mod:`._render_style`); the models and the task helper
know nothing of how they look. IPython is used when it is there, never required.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from datetime import datetime
from enum import Enum
from typing import Any, Callable, Optional

import attrs

from ._dag import DagDetail, DagState, TaskDetail
from ._render_html import dag_html, rollout_table_html, show_live_card, task_html
from ._text import is_terminal, printable

__all__ = [
    "LiveProgress", "RolloutBoard", "dag_html", "dag_line", "dag_text", "failure_line",
    "failure_message", "in_notebook", "interrupted_message", "live_display", "printable",
    "progress_line", "register_notebook_formatters", "rollout_table_html", "rollout_table_text",
    "rollout_text", "task_html", "task_repr", "timeout_message", "to_jsonable",
]

# -- text ------------------------------------------------------------------------------

def dag_line(detail: DagDetail) -> str:
    """One line: id, name, stage of max, state and the step running now."""
    node = detail.current_node
    step = f": {printable(node.name)}" if node is not None and not detail.is_finished else ""
    return (f"task {detail.id} {printable(detail.name)} [{detail.progress}] {detail.state}"
            f" ({detail.outcome}){step}")


def progress_line(detail: DagDetail) -> str:
    """The command line's progress line: id, stage of max, the step running now, state."""
    node = detail.current_node
    step = f" {printable(node.name)}" if node is not None and not detail.is_finished else ""
    return f"task {detail.id} stage {detail.progress}{step} {detail.state}"


def dag_text(detail: DagDetail) -> str:
    """The CLI's view of a DAG: name, state and stage, each node, failing sub-tasks' logs."""
    lines = [f"task {detail.id}: {printable(detail.name)}",
             f"  {detail.state} ({detail.outcome}), stage {detail.progress}"]
    for i, node in enumerate(detail.nodes or (), start=1):
        lines.append(f"  {i}. {node.state:<8} {printable(node.name)}")
        for task in node.sub_tasks:
            if task.state is DagState.FAILED and task.task_logs:
                lines.append(f"       {printable(str(task.execute_agent))}: "
                             f"{printable(task.task_logs[-1])}")
    return "\n".join(lines) + "\n"


def task_repr(task_id: str, detail: Optional[DagDetail]) -> str:
    """The repr of a :class:`DagTask`."""
    if detail is None:
        return f"<DagTask {task_id} (not fetched yet)>"
    return (f"<DagTask {task_id} {detail.name!r} {detail.state} {detail.operator} "
            f"{detail.progress}>")


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
    if detail.maintenance_type == 1:  # the upgrade check and other lock-free tasks
        return text
    return (
        text + "\nThe cluster stays locked until the task is retried (or rolled back, skipped "
        "or cancelled, where its steps allow it)."
    )


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


def interrupted_message(task_id: str, seen: bool, exists: bool) -> str:
    """Say that Ctrl-C stopped a wait, not the task, and how to follow it again."""
    state = "it keeps running on the agent" if seen else "it was not read yet"
    return f"stopped waiting for task {task_id}; {state}. Follow it again with " + _pick_up(
        task_id, exists)


def to_jsonable(value: Any) -> Any:
    """Turn models, enums and times into plain JSON values (``--json`` output)."""
    if attrs.has(type(value)):
        return {f.name: to_jsonable(getattr(value, f.name))
                for f in attrs.fields(type(value)) if f.name != "extra"}
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


# -- notebooks -------------------------------------------------------------------------


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a kernel attached)."""
    shell = _ipython_shell()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _ipython_shell() -> Any:
    ipython = sys.modules.get("IPython")
    return None if ipython is None else ipython.get_ipython()


def register_notebook_formatters() -> None:
    """Show :class:`DagDetail` as a card in IPython/Jupyter (when IPython is running)."""
    shell = _ipython_shell()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(DagDetail, dag_html)


class LiveProgress:
    """Shows a task's progress in place.

    In a notebook one HTML card per ``owner`` (the waiting DagTask) and cell is updated, and
    the cell ends with one card (see :func:`~obshell_sdk._render_html.show_live_card`);
    elsewhere a text line on stderr is rewritten on a terminal, and a line per change is
    written to a file or a pipe (a log, never control codes).
    """

    def __init__(self, owner: object = None) -> None:
        self._owner = self if owner is None else owner
        self._notebook = in_notebook()
        self._tty = is_terminal(sys.stderr)
        self._open = False  # a text line is shown and not ended

    def __call__(self, detail: DagDetail) -> None:
        """Show ``detail``, replacing what was shown before."""
        if self._notebook:
            show_live_card(self._owner, detail, dag_line(detail))
            return
        if not self._tty:
            sys.stderr.write(dag_line(detail) + "\n")
            sys.stderr.flush()
            return
        self._open = not detail.is_finished
        sys.stderr.write("\r\x1b[K" + dag_line(detail) + ("" if self._open else "\n"))
        sys.stderr.flush()

    def close(self) -> None:
        """End the text line, if one is shown (a wait stopped before the task ended)."""
        if self._open:
            self._open = False
            sys.stderr.write("\n")
            sys.stderr.flush()


def live_display(progress: Optional[bool], owner: object = None) -> Optional[LiveProgress]:
    """The live display a wait asked for: None (default) in notebooks only, True always.

    ``owner`` (the waiting DagTask) keeps one live card per notebook cell across its waits.
    """
    if progress is False or (progress is None and not in_notebook()):
        return None
    return LiveProgress(owner)


# -- rollouts -------------------------------------------------------------------------


class RolloutBoard:
    """The live table of a rollout: target, step, stage N/M, state, elapsed, outcome.

    In a notebook one HTML table is updated in place; in a terminal (``progress=True`` and
    stderr a TTY) the table is redrawn in place; otherwise, with ``progress=True``, one
    plain line per change. Updates come from many threads; redraws are at most every 0.5 s.
    """

    def __init__(self, targets: list[str], progress: Optional[bool],
                 words: Optional[Callable[[str, str], str]] = None) -> None:
        self._rows = {t: ["", "", "waiting", ""] for t in targets}  # step, stage, state, end
        self._words = words  # (target, text) -> the text as shown, e.g. in CLI words
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()
        self._notebook = in_notebook() and progress is not False
        self._tty = bool(progress) and not self._notebook and is_terminal(sys.stderr)
        self._lines = bool(progress) and not self._notebook and not self._tty
        self._handle: Any = None
        self._drawn = 0  # lines of the last terminal drawing
        self._last = 0.0

    def update(self, target: str, step: str, detail: Optional[DagDetail]) -> None:
        """``target`` is at ``step`` (with its DAG's last snapshot when there is one)."""
        with self._lock:
            self._started.setdefault(target, time.monotonic())
            stage = "-" if detail is None else str(detail.progress)
            state = "running" if detail is None else str(detail.state)
            row = [step, stage, state]
            changed = self._rows[target][:3] != row
            self._rows[target][:3] = row
        if changed or not self._lines:  # a line per change; a table also shows elapsed time
            self._show(f"{target} {step} {stage} {state}".rstrip(), force=False)

    def finish(self, target: str, outcome: str, error: Optional[str]) -> None:
        """``target`` ended with ``outcome``."""
        if error and self._words is not None:
            error = self._words(target, error)
        with self._lock:
            self._rows[target][2:] = [outcome, printable(error or "")[:120]]
        self._show(f"{target} {outcome}" + (f": {printable(error)}" if error else ""), True)

    def close(self) -> None:
        """Draw the final table."""
        self._show("", force=True, final=True)

    def _show(self, line: str, force: bool, final: bool = False) -> None:
        if self._lines:
            if line:
                sys.stderr.write(line + "\n")
            return
        if not (self._notebook or self._tty):
            return
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < 0.5:
                return
            self._last = now
            rows = [(t, *r, self._elapsed(t, now)) for t, r in self._rows.items()]
        if self._notebook:
            self._draw_html(rows)
        else:
            self._draw_text(rows)

    def _elapsed(self, target: str, now: float) -> str:
        started = self._started.get(target)
        return "" if started is None else f"{now - started:.0f}s"

    def _draw_html(self, rows: list[tuple[str, ...]]) -> None:
        shown = importlib.import_module("IPython.display")
        card = {"text/html": rollout_table_html(rows),
                "text/plain": "\n".join(rollout_table_text(rows))}
        if self._handle is None:
            self._handle = shown.display(card, raw=True, display_id=True)
        else:
            self._handle.update(card, raw=True)

    def _draw_text(self, rows: list[tuple[str, ...]]) -> None:
        text = rollout_table_text(rows)
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        sys.stderr.write(up + "".join(f"\x1b[2K{line}\n" for line in text))
        sys.stderr.flush()
        self._drawn = len(text)


_HEAD = ("target", "step", "stage", "state", "note", "elapsed")


def rollout_table_text(rows: list[tuple[str, ...]]) -> list[str]:
    """The rollout table as aligned text lines (header first)."""
    table = [_HEAD, *[(r[0], r[1], r[2], r[3], r[4][:40], r[5]) for r in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEAD))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
            for row in table]


def rollout_text(report: Any, words: Optional[Callable[[str, str], str]] = None) -> str:
    """A rollout report as text: one line per target, then the counts.

    ``words(target, text)`` says each line's text as shown (the CLI's: hints as commands).
    """
    lines = []
    for result in report.results.values():
        ids = ",".join(result.dag_ids) or "-"
        said = result.error or result.note
        if said and words is not None:
            said = words(result.target, said)
        note = f"  {printable(said)}" if said else ""
        lines.append(f"{result.target}  {result.outcome}  tasks {ids}{note}")
    counts: dict[str, int] = {}
    for result in report.results.values():
        counts[str(result.outcome)] = counts.get(str(result.outcome), 0) + 1
    summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
    lines.append(f"{len(report.results)} targets: {summary} (journal {report.journal})")
    return "\n".join(lines)
