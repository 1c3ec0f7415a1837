"""The renderings of rollouts: a rollout's repr, its report, its live table and its plan.

As text (reprs, the report's lines, the live table's aligned lines, a journal's plan) and
as notebook HTML: the live table and the report are one card, drawn by :func:`_table_card`,
with the cards' own pieces from :mod:`._render_html` (everything in it escaped there).
:mod:`._render_live` shows the live table; the report shows itself (``_repr_html_``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._auth import PasswordAuth
from ._render_html import _card, _chip, _esc, _muted, duration_text
from ._text import printable
from ._validate import brief_repr

if TYPE_CHECKING:  # annotations only: those modules render through this one
    from ._rollout import Rollout
    from ._rollout_report import RolloutReport, TargetResult

__all__ = ["report_repr", "rollout_plan_text", "rollout_report_html", "rollout_repr",
           "rollout_table_html", "rollout_table_text", "rollout_text"]

#: The live table's columns (its rows are tuples of these, as text).
_HEAD = ("target", "step", "stage", "state", "note", "elapsed")
#: The report's columns.
_REPORT_HEAD = ("target", "outcome", "tasks", "took", "note")
#: A plan's fields in ``rollout status``'s words (others by their names, ``_`` as spaces).
_PLAN_WORDS = {"check": "pre-check"}
#: How many targets a rollout's repr names before it says how many more there are.
_NAMED = 3


def _targets(count: int) -> str:
    return f"{count} target" + ("" if count == 1 else "s")


def _counts(words: Sequence[str], join: str) -> str:
    """``2 failed, 1 succeeded``: how many of each word, the words in alphabetical order."""
    counts: dict[str, int] = {}
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    return join.join(f"{n} {word}" for word, n in sorted(counts.items()))


# -- a rollout --------------------------------------------------------------------------


def rollout_repr(rollout: Rollout) -> str:
    """``<Rollout of 3 targets (a:2886, ...), journal 'r.db', parallel 4, ...>``.

    Its auth only by kind (one PasswordAuth, or one per target): never a password, nor a
    callable's own repr; the client options by name and a short repr of their values.
    """
    named = ", ".join(rollout.targets[:_NAMED])
    more = len(rollout.targets) - _NAMED
    shown = f"{named}, and {more} more" if more > 0 else named
    auth = "one PasswordAuth" if isinstance(rollout.auth, PasswordAuth) else \
        "a PasswordAuth per target"
    options = ", ".join(f"{name}={brief_repr(value, 40)}"
                        for name, value in sorted(rollout.client_options.items()))
    return printable(
        f"<Rollout of {_targets(len(rollout.targets))} ({shown}), journal {rollout.journal!r}, "
        f"canary {rollout.canary}, parallel {rollout.parallel}, max_failures "
        f"{rollout.max_failures}, {auth}" + (f", {options}" if options else "") + ">")


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


def report_repr(report: RolloutReport) -> str:
    """``<RolloutReport 3 targets: 1 failed, 2 succeeded; journal 'r.db'>``."""
    return printable(f"<RolloutReport {_summary(report)}; journal {report.journal!r}>")


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


def _report_row(result: TargetResult) -> tuple[str, ...]:
    took = ""
    if result.started_at is not None and result.ended_at is not None:
        took = duration_text((result.ended_at - result.started_at).total_seconds())
    return (result.target, str(result.outcome), ", ".join(result.dag_ids) or "-", took,
            result.error or result.note or "")


def rollout_report_html(report: RolloutReport) -> str:
    """A rollout report as a card, drawn as the live table is.

    One row per target (outcome, task ids, how long it took, what went wrong or the note on
    its success), then the counts and the journal in its head.
    """
    rows = [_report_row(result) for result in report.results.values()]
    return _table_card("obshell-rollout-report", "rollout report", _REPORT_HEAD, rows, 1,
                       f"journal {report.journal}")


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
