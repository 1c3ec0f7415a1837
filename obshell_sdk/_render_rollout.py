"""The renderings of rollouts: its report, its live table and its plan.

As text (the report's lines, the live table's aligned lines, a journal's plan) and as
notebook HTML: the live table, a card drawn by :func:`_table_card`, with the cards' own
pieces from :mod:`._render_html` (everything in it escaped there). :mod:`._render_live`
shows the live table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._render_html import _card, _chip, _esc, _muted
from ._text import printable

if TYPE_CHECKING:  # annotations only: those modules render through this one
    from ._rollout_report import RolloutReport

__all__ = ["rollout_plan_text", "rollout_table_html", "rollout_table_text", "rollout_text"]

#: The live table's columns (its rows are tuples of these, as text).
_HEAD = ("target", "step", "stage", "state", "note", "elapsed")
#: A plan's fields in ``rollout status``'s words (others by their names, ``_`` as spaces).
_PLAN_WORDS = {"check": "pre-check"}


def _targets(count: int) -> str:
    return f"{count} target" + ("" if count == 1 else "s")


def _counts(words: Sequence[str], join: str) -> str:
    """``2 failed, 1 succeeded``: how many of each word, the words in alphabetical order."""
    counts: dict[str, int] = {}
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    return join.join(f"{n} {word}" for word, n in sorted(counts.items()))


# -- a journal's plan ------------------------------------------------------------------


def rollout_plan_text(plan: dict[str, Any]) -> str:
    """A journal's plan as one line: ``rollout agent 4.2.1.1 1.el7 (pre-check: yes, ...)``."""
    said = {True: "yes", False: "no", None: "default"}

    def word(value: Any) -> str:
        if isinstance(value, (bool, type(None))):
            return said[value]
        return value if isinstance(value, str) else json.dumps(value)

    head = ("kind", "version", "release")
    rest = ", ".join(f"{_PLAN_WORDS.get(k, k.replace('_', ' '))}: {word(v)}"
                     for k, v in sorted(plan.items()) if k not in head)
    return printable(" ".join(["rollout", *(word(plan[k]) for k in head if k in plan)])
                     + (f" ({rest})" if rest else ""))


# -- its report -------------------------------------------------------------------------


def _summary(report: RolloutReport) -> str:
    """``3 targets: 1 failed, 2 succeeded``."""
    outcomes = [str(r.outcome) for r in report.results.values()]
    return f"{_targets(len(outcomes))}: {_counts(outcomes, ', ')}"


def rollout_text(report: RolloutReport, words: Optional[Callable[[str, str], str]] = None
                 ) -> str:
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
    lines.append(f"{_summary(report)} (journal {report.journal})")
    return "\n".join(lines)


# -- the live table ---------------------------------------------------------------------


def rollout_table_text(rows: list[tuple[str, ...]]) -> list[str]:
    """The rollout table as aligned text lines (header first)."""
    table = [_HEAD, *[(r[0], r[1], r[2], r[3], r[4][:40], r[5]) for r in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEAD))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
            for row in table]


def rollout_table_html(rows: list[tuple[str, ...]]) -> str:
    """The rollout table (target, step, stage, state, note, elapsed) as a card."""
    return _table_card("obshell-rollout-card", "rollout", _HEAD, rows, _HEAD.index("state"))


def _table_card(kind: str, title: str, head: Sequence[str], rows: Sequence[Sequence[str]],
                state_at: int, foot: str = "") -> str:
    """A card of a table of targets: the column ``state_at`` as chips, counted in its head.

    Every cell is escaped; the ``note`` column wraps. ``foot`` is said after the counts.
    """
    summary = _counts([row[state_at] for row in rows], " · ")
    said = f"{_targets(len(rows))}: {summary}" + (f" · {foot}" if foot else "")

    def cell(at: int, text: str) -> str:
        if at == state_at:
            return f"<td>{_chip(text, text)}</td>"
        wrap = ' class="obshell-wrap"' if head[at] == "note" else ""
        return f"<td{wrap}>{_esc(text)}</td>"

    body = "".join("<tr>" + "".join(cell(at, text) for at, text in enumerate(row)) + "</tr>"
                   for row in rows)
    heads = "".join(f"<th>{_esc(h)}</th>" for h in head)
    return _card(kind, [
        f'<div class="obshell-head"><span class="obshell-name">{_esc(title)}</span>'
        f"{_muted(_esc(said))}</div>",
        f'<table class="obshell-table obshell-rollout"><thead><tr>{heads}</tr></thead>'
        f"<tbody>{body}</tbody></table>",
    ])
