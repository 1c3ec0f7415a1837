"""Live displays: a task's progress and a rollout's table, in a notebook or on a terminal.

The text and HTML they show come from :mod:`._render`, :mod:`._render_html` and
:mod:`._render_rollout`; this module only decides where (a notebook card, a line or table
redrawn on a terminal, plain lines in a pipe) and when. IPython is used when it is there,
never required.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import threading
import time
from typing import Any, Callable, Optional, TextIO

from ._dag import DagDetail
from ._models import UpgradePackageInfo
from ._render import dag_html, dag_line, state_text, stored_line, upload_line
from ._render_html import show_live_card
from ._render_rollout import rollout_table_html, rollout_table_text
from ._text import is_terminal, printable

__all__ = [
    "LiveProgress", "LiveUploads", "RolloutBoard", "StatusLine", "clock_text", "in_notebook",
    "live_display", "register_notebook_formatters", "upload_display",
]


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


def clock_text(seconds: float) -> str:
    """Elapsed time as a clock shows it: ``M:SS``, or ``H:MM:SS`` from an hour."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _columns(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):  # not a terminal after all, or no fileno
        columns = 0
    return columns if columns > 0 else shutil.get_terminal_size().columns  # 0: size unknown


class StatusLine:
    """One line of status on ``stream``: redrawn in place on a terminal, else appended.

    On a terminal the line is cut to its width, since a wrapped line cannot be redrawn;
    a ``suffix`` (time elapsed) is kept whole. Elsewhere each :meth:`show` is a plain line.
    """

    def __init__(self, stream: TextIO, tty: bool) -> None:
        self.stream = stream
        self.tty = tty
        self.shown = False  # a terminal line is drawn and not ended

    def show(self, text: str, suffix: str = "") -> None:
        """Show ``text`` (and ``suffix`` after two spaces), replacing the line shown."""
        if not self.tty:
            self.stream.write(text + "\n")
            self.stream.flush()
            return
        tail = f"  {suffix}" if suffix else ""
        width = _columns(self.stream) - 1
        if len(text) + len(tail) > width:
            text = text[:max(0, width - len(tail) - 1)] + "…"
        self.stream.write(f"\r\x1b[K{text}{tail}")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        """Take the line off a terminal (before a note); the next :meth:`show` draws it."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.shown = False

    def end(self) -> None:
        """End the line on a terminal, keeping what it shows."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


class LiveProgress:
    """Shows a task's progress in place.

    In a notebook one HTML card per ``owner`` (the waiting DagTask) and cell is updated, and
    the cell ends with one card (see :func:`~obshell_sdk._render_html.show_live_card`);
    elsewhere a :class:`StatusLine` on stderr: rewritten on a terminal, a line per change
    in a file or a pipe (a log, never control codes).
    """

    def __init__(self, owner: object = None) -> None:
        self._owner = self if owner is None else owner
        self._notebook = in_notebook()
        self._line = StatusLine(sys.stderr, is_terminal(sys.stderr))

    def __call__(self, detail: DagDetail) -> None:
        """Show ``detail``, replacing what was shown before."""
        if self._notebook:
            show_live_card(self._owner, detail, dag_line(detail))
            return
        self._line.show(dag_line(detail))
        if detail.is_finished:
            self._line.end()

    def close(self) -> None:
        """End the text line, if one is shown (a wait stopped before the task ended)."""
        self._line.end()


def live_display(progress: Optional[bool], owner: object = None) -> Optional[LiveProgress]:
    """The live display a wait asked for: None (default) in notebooks only, True always.

    ``owner`` (the waiting DagTask) keeps one live card per notebook cell across its waits.
    """
    if progress is False or (progress is None and not in_notebook()):
        return None
    return LiveProgress(owner)


class LiveUploads:
    """Shows a workflow's package uploads: each file as it is sent, then what was stored.

    An ``on_upload`` callback. In a notebook each upload is one line of output, updated in
    place once the package is stored; elsewhere a :class:`StatusLine` on stderr, as a task's
    progress is shown (rewritten on a terminal, a line per change in a file or a pipe).
    """

    def __init__(self, agent: str) -> None:
        self._agent = agent
        self._notebook = in_notebook()
        self._line = StatusLine(sys.stderr, is_terminal(sys.stderr))
        self._handle: Any = None  # the notebook output of the upload under way
        self._since = time.monotonic()

    def __call__(self, path: str, stored: Optional[UpgradePackageInfo]) -> None:
        """``stored`` None: ``path`` is about to be sent; else the agent has stored it."""
        if stored is None:
            self._since = time.monotonic()
            text = upload_line(path, self._agent)
        else:
            text = stored_line(stored, time.monotonic() - self._since)
        if self._notebook:
            bundle = {"text/plain": text}
            if stored is None or self._handle is None:
                shown = importlib.import_module("IPython.display")
                self._handle = shown.display(bundle, raw=True, display_id=True)
            else:
                self._handle.update(bundle, raw=True)
            return
        self._line.show(text)
        if stored is not None:
            self._line.end()

    def close(self) -> None:
        """End the text line, if one is shown (an upload that failed)."""
        self._line.end()


def upload_display(progress: Optional[bool], agent: str) -> Optional[LiveUploads]:
    """The live display of uploads to ``agent``, on the terms of :func:`live_display`."""
    if progress is False or (progress is None and not in_notebook()):
        return None
    return LiveUploads(agent)


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
            state = "running" if detail is None else state_text(detail)
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

    def leave_to(self, report: object) -> None:
        """In a notebook: blank the table when the cell ends showing ``report`` as its result.

        The report's own card then is the one table left, in the usual ``Out[n]`` place, as a
        task's live card gives way to its result's; in any other cell the table stays.
        """
        shell, handle = _ipython_shell(), self._handle
        if shell is None or handle is None:
            return

        def settle(result: Any) -> None:
            shell.events.unregister("post_run_cell", settle)
            if getattr(result, "result", None) is report:
                handle.update({"text/plain": ""}, raw=True)

        shell.events.register("post_run_cell", settle)

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
