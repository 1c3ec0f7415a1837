"""The notebook side of rendering: HTML cards of DAGs and tasks, the live card, their pieces.

A card is one ``div.obshell-card`` carrying its own scoped style sheet (see
:mod:`obshell_sdk._render_style`), so it reads the same in JupyterLab, VS Code, the classic
notebook and an exported HTML page, in light and dark themes. Everything the agent sent
(names, agents, log lines) is HTML-escaped. A rollout's cards (:mod:`._render_rollout`) are
built of the same pieces (``_card``, ``_chip``, ``_esc``...). IPython is imported only when
a live card is shown, never required.
"""

from __future__ import annotations

import html
import importlib
import sys
import threading
from datetime import datetime, timezone
from typing import Any, Optional

from ._dag import DagDetail, DagOutcome, DagState, NodeDetail, Operator
from ._render_style import CARD_CSS, state_class
from ._text import printable

__all__ = ["cancelled_node", "dag_html", "duration_text", "show_live_card", "task_html",
           "undone_node"]


def cancelled_node(node: NodeDetail) -> bool:
    """True for a stage a CANCEL stopped: obshell ends it FAILED with operator CANCEL."""
    return node.state is DagState.FAILED and node.operator is Operator.CANCEL


def undone_node(detail: DagDetail, node: NodeDetail) -> bool:
    """True for a stage of a rolled-back DAG that had run, so was rolled back (undone).

    A DAG ends SUCCEED with operator ROLLBACK once each stage it ran, from the failed one
    back to the first, was rolled back (PROTOCOL §9.4). Its stages keep whatever state obshell
    shows (their earlier one, or SUCCEED once rolled back): any not PENDING, or with
    operator ROLLBACK, was rolled back.
    """
    return detail.outcome is DagOutcome.ROLLED_BACK and (
        node.state is not DagState.PENDING or node.operator is Operator.ROLLBACK)


def _esc(text: str) -> str:
    """HTML-escaped, control characters shown as escapes (an agent's ESC is not passed on)."""
    return html.escape(printable(text, keep_newlines=True))

_HEADS = ("", "#", "stage", "state", "started", "ended", "took")


def _card(classes: str, body: list[str], dag_id: Optional[str] = None) -> str:
    data = "" if dag_id is None else f' data-dag-id="{_esc(dag_id)}"'
    return "\n".join([f'<div class="obshell-card {classes}"{data}>',
                      f"<style>{CARD_CSS}</style>", *body, "</div>"])


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def _stamp(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def _clock(moment: datetime, day: Optional[datetime]) -> str:
    """``HH:MM:SS`` (UTC), with the date in front when it is not ``day``'s."""
    utc = _utc(moment)
    same = day is not None and _utc(day).date() == utc.date()
    text = utc.strftime("%H:%M:%S" if same else "%m-%d %H:%M:%S")
    return f'<span title="{_esc(utc.isoformat())}">{text}</span>'


def duration_text(seconds: float) -> str:
    """A duration as read: ``0.2 s``, ``12 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _chip(state: str, text: str) -> str:
    return f'<span class="obshell-chip obshell-s-{state_class(state)}">{_esc(text)}</span>'


def _muted(text: str) -> str:
    return f'<span class="obshell-muted">{text}</span>'


def _times(start: Optional[datetime], end: Optional[datetime], running: bool,
           now: datetime) -> str:
    """Start, end and elapsed of a DAG, as one line of text."""
    if start is None:
        return "not started"
    parts = [f"started {_stamp(start)}"]
    if running:
        parts.append(f"elapsed {duration_text((now - start).total_seconds())} so far")
    elif end is not None:
        parts += [f"ended {_stamp(end)}",
                  f"elapsed {duration_text((end - start).total_seconds())}"]
    return " · ".join(parts)


def _node_row(index: int, node: NodeDetail, mark: str, day: Optional[datetime],
              now: datetime, undone: bool = False) -> str:
    """One stage of the timeline: mark, number, name, state, started, ended, took.

    ``undone``: the stage of a rolled-back DAG, rolled back since the state it shows.
    """
    state = str(node.state) + ("" if node.operator is Operator.RUN else f" ({node.operator})")
    chip = "cancelled" if cancelled_node(node) else str(node.state)
    if undone:
        state, chip = f"{node.state} (rolled back)", "rolled back"
    running = node.state in (DagState.RUNNING, DagState.READY)
    if node.start_time is None:
        cells = [_muted("not started"), "", ""]
    elif running or node.end_time is None:
        took = duration_text((now - node.start_time).total_seconds())
        cells = [_clock(node.start_time, day), _muted("&ndash;"),
                 f"{took} so far" if running else ""]
    else:
        took = duration_text((node.end_time - node.start_time).total_seconds())
        cells = [_clock(node.start_time, day), _clock(node.end_time, day), took]
    glyph = {"running": "&#9654;", "failed": "&#10006;", "cancelled": "&#9632;"}.get(mark, "")
    current = ' class="obshell-current" aria-current="step"' if mark else ""
    mark_cell = f'<td class="obshell-mark obshell-m-{mark or "pending"}">{glyph}</td>'
    return (f"<tr{current}>{mark_cell}<td>{index}</td>"
            f'<td class="obshell-wrap">{_esc(node.name)}</td><td>{_chip(chip, state)}'
            "</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")


def _timeline(detail: DagDetail, now: datetime) -> list[str]:
    """Every stage with its state and times; the one running (or failed, cancelled) is marked."""
    if detail.nodes is None:
        note = _muted("stage list not fetched yet (this snapshot came without it)")
        return [f'<div class="obshell-timeline">{note}</div>']
    if not detail.nodes:
        return []
    marked = detail.state in (DagState.RUNNING, DagState.FAILED)
    current = detail.current_node if marked else None
    mark = ("cancelled" if detail.outcome is DagOutcome.CANCELLED else
            "failed" if detail.state is DagState.FAILED else "running")
    head = "".join(f"<th>{h}</th>" for h in _HEADS)
    rows = [_node_row(i, node, mark if node is current else "", detail.start_time, now,
                      undone_node(detail, node))
            for i, node in enumerate(detail.nodes, start=1)]
    return ['<table class="obshell-table obshell-timeline">'
            f"<thead><tr>{head}</tr></thead><tbody>", *rows, "</tbody></table>"]


def _failures(detail: DagDetail) -> list[str]:
    """The failing sub-tasks (or those a CANCEL stopped), each with its agent and last log."""
    rows = []
    for node in detail.nodes or ():
        how = ("cancelled", "&#9632;") if cancelled_node(node) else ("failed", "&#10006;")
        said = "failed before the rollback" if undone_node(detail, node) else how[0]
        for task in node.sub_tasks:
            if task.state is not DagState.FAILED:
                continue
            last = task.task_logs[-1] if task.task_logs else "(no log)"
            rows.append(
                f'<div class="obshell-failure"><span class="obshell-m-{how[0]}">{how[1]} '
                f"{said}:</span> {_esc(task.name)} on {_esc(str(task.execute_agent or '?'))}: "
                f'<code class="obshell-log">{_esc(last)}</code></div>'
            )
    return rows


def dag_html(detail: DagDetail, title: Optional[str] = None, *,
             now: Optional[datetime] = None) -> str:
    """An HTML card of a DAG: name and state, times, a stage bar, a stage timeline, failures.

    The timeline lists every stage with its state, start and end times and duration, and
    marks the stage running now (or the one that failed, or where a CANCEL stopped the DAG).
    Times are UTC; stages not started yet (obshell's zero time) say so. ``now`` (default: the
    current time) is what the elapsed time of a running DAG or stage is counted to.
    """
    now = now or datetime.now(timezone.utc)
    waiting = detail.state in (DagState.READY, DagState.PENDING)
    outcome = str(detail.state).lower() if waiting else str(detail.outcome)
    pct = round(detail.progress.fraction * 100)
    node = detail.current_node
    state = (f'<span class="obshell-state">{_chip(outcome, outcome)} '
             f"{_muted(_esc(f'{detail.state}, operator {detail.operator}'))}</span>")
    body = [
        f'<div class="obshell-head"><span class="obshell-name">{_esc(title or detail.name)}'
        f"</span>{state}</div>",
        f'<div class="obshell-meta obshell-muted">task {_esc(detail.id)} · '
        f"{_times(detail.start_time, detail.end_time, not detail.is_finished, now)}</div>",
        f'<div class="obshell-bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" '
        f'aria-valuenow="{pct}"><div class="obshell-fill obshell-f-{state_class(outcome)}" '
        f'style="width:{pct}%"></div></div>',
        f'<div class="obshell-stage">stage {detail.progress}'
        + (f": {_esc(node.name)}" if node is not None else "") + "</div>",
        *_timeline(detail, now),
        *_failures(detail),
    ]
    return _card("obshell-dag", body, detail.id)


def task_html(task_id: str, detail: Optional[DagDetail]) -> str:
    """The card of a :class:`DagTask`: its last snapshot, or a note that it was not read yet."""
    if detail is not None:
        return dag_html(detail)
    return _card("obshell-task-unread", [
        f'<div class="obshell-head"><span class="obshell-name">task {_esc(task_id)}</span>'
        f'{_chip("pending", "not fetched yet")}</div>',
        '<div class="obshell-muted">Nothing has been read from the agent for this task yet. '
        "Call <code>.refresh()</code> on it to read it once, or <code>.wait()</code> to "
        "follow it to its end; then show it again.</div>",
    ], task_id)


# -- the live card ----------------------------------------------------------------------


def _shell() -> Any:
    ipython = sys.modules.get("IPython")
    return None if ipython is None else ipython.get_ipython()


class _LiveCards:
    """The live cards of the cell running now: one display per waiting owner (a DagTask).

    Each wait of an owner in a cell updates that owner's one display in place
    (``display_id``), so ``task.wait(); task.result()`` in one cell still shows one card.
    When the cell ends (IPython's ``post_run_cell``), a live card whose DAG is also the
    cell's result (``task.result()`` or ``task`` as the last expression) blanks itself: the
    result's own card is then the one card left, in the usual ``Out[n]`` place. Otherwise the
    live card, which shows the last snapshot, stays as the final card. Blanking the live card
    (rather than keeping the result from rendering) leaves the returned DagDetail and the
    task rendering as usual everywhere else, e.g. in a later cell or with ``display()``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cards: dict[int, tuple[object, Any, DagDetail]] = {}  # owner, handle, last
        self._shell: Any = None  # the shell whose post_run_cell is listened to

    def show(self, owner: object, detail: DagDetail, plain: str) -> None:
        """Show ``detail`` in ``owner``'s live card of this cell, replacing what it showed."""
        display = importlib.import_module("IPython.display")
        bundle = {"text/html": dag_html(detail), "text/plain": plain}
        with self._lock:
            card = self._cards.get(id(owner))
            if card is None:
                handle = display.display(bundle, raw=True, display_id=True)
                self._listen()
            else:
                handle = card[1]
                handle.update(bundle, raw=True)
            self._cards[id(owner)] = (owner, handle, detail)

    def _listen(self) -> None:
        shell = _shell()
        if shell is not None and self._shell is None:
            shell.events.register("post_run_cell", self._settle)
            self._shell = shell

    def _settle(self, result: Any) -> None:
        """At the end of a cell: blank the live cards that its result shows again."""
        with self._lock:
            shell, self._shell = self._shell, None
            cards, self._cards = self._cards, {}
        if shell is not None:
            shell.events.unregister("post_run_cell", self._settle)
        value = getattr(result, "result", None)
        for owner, handle, last in cards.values():
            if value is owner or (isinstance(value, DagDetail) and value == last):
                handle.update({"text/plain": ""}, raw=True)


_LIVE = _LiveCards()


def show_live_card(owner: object, detail: DagDetail, plain: str) -> None:
    """Show ``detail`` in the one live card ``owner`` has in the running notebook cell.

    ``plain`` is the text shown where HTML is not. See :class:`_LiveCards` for how a wait
    whose result is also the cell's result still leaves one card.
    """
    _LIVE.show(owner, detail, plain)
