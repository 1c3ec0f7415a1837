"""What the command line writes: results on stdout, task news and progress on stderr.

Results (a DAG, a task list, the agent's info) go to stdout, as text or ``--json``. Everything
about the wait goes to stderr, so a pipe gets only the result: the id of a task the moment it
exists, and progress. On a terminal progress is one line redrawn in place (stage N/M, the
stage's name, the state, time elapsed since the task was first seen, ticking every second;
cut to the terminal's width so it never wraps); piped, one plain line per change. A package
upload is shown the same way, as a step before any task: what is sent, its size and to
which agent, then what the agent stored and how long it took.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import time
from typing import Any, Optional, TextIO

from ._dag import DagDetail
from ._models import UpgradePackageInfo
from ._render import dag_line, dag_text, progress_line, stored_line, to_jsonable, upload_line
from ._render_live import StatusLine, clock_text
from ._text import printable

__all__ = ["Output", "Progress", "Uploads", "agent_command", "aimed", "tls_words"]


class Output:
    """stdout for results (text or JSON), stderr for what happens meanwhile."""

    def __init__(self, as_json: bool, stdout: TextIO, stderr: TextIO,
                 command: str = "obshell-sdk") -> None:
        self.as_json = as_json
        self.stdout = stdout
        self.stderr = stderr
        #: How the commands that notes suggest start: with the agent options given on the
        #: command line, so that a pasted one reaches the same agent.
        self.command = command

    def dag(self, detail: DagDetail) -> None:
        """A DAG, whole."""
        if self.as_json:
            self.stdout.write(json.dumps(to_jsonable(detail)) + "\n")
        else:
            self.stdout.write(dag_text(detail))

    def value(self, value: Any, text: str) -> None:
        """Any model: ``text`` as is, or the value as JSON."""
        self.stdout.write((json.dumps(to_jsonable(value)) if self.as_json else text) + "\n")

    def task_id(self, task_id: str) -> None:
        """A task known by its id only (its reply, or its reading back, failed)."""
        self.value({"id": task_id}, task_id)

    def task_list(self, unfinished: list[DagDetail], last: Optional[DagDetail]) -> None:
        """``task list``: the unfinished tasks, then the last maintenance task."""
        if self.as_json:
            self.value({"unfinished": unfinished, "last_maintenance": last}, "")
            return
        lines = ["unfinished tasks:"]
        lines += [f"  {dag_line(d)}" for d in unfinished] or ["  none"]
        lines.append("last maintenance task (the one holding the cluster's lock, if "
                     "unfinished):")
        lines.append(f"  {dag_line(last)}" if last is not None else "  none")
        self.stdout.write("\n".join(lines) + "\n")

    def task_history(self, every: list[DagDetail]) -> None:
        """``task list --all``: every task of the cluster, finished ones too, as listed."""
        lines = [f"  {dag_line(d)}" for d in every] or ["  none"]
        self.value({"all": every}, "\n".join(["every task of the cluster, finished ones too:",
                                              *lines]))

    def note(self, text: str) -> None:
        """A line for the person at the terminal, on stderr."""
        text = aimed(text, self.command)
        self.stderr.write(f"obshell-sdk: {text}\n")
        self.stderr.flush()


def aimed(text: str, command: str) -> str:
    """``text`` with the commands it suggests for one agent started as ``command``.

    ``obshell-sdk task wait 11`` becomes ``obshell-sdk --host h --port p task wait 11``: a
    pasted one reaches that agent.
    """
    return _SUGGESTED.sub(command + " ", text) if command != "obshell-sdk" else text


_SUGGESTED = re.compile(r"\bobshell-sdk (?=(task|info|upgrade|package)\b)")


def agent_command(host: Optional[str], port: Optional[object], tls: str = "") -> str:
    """``obshell-sdk`` with the agent options a suggested command repeats (those given)."""
    given = [("--host", host), ("--port", port)]
    where = "".join(f" {name} {shlex.quote(str(value))}" for name, value in given
                    if value is not None)
    return f"obshell-sdk{where}{tls}"


def tls_words(args: Any) -> str:
    """The TLS options given on the command line, as a suggested command must repeat them.

    From ``args``: `` --https``, `` --ca-bundle F``, `` --min-key-bits N``, or ``""``.
    """
    bundle, bits = getattr(args, "ca_bundle", None), getattr(args, "min_key_bits", None)
    words = [f"--ca-bundle {shlex.quote(bundle)}" if bundle else
             "--https" if getattr(args, "https", None) else "",
             f"--min-key-bits {bits}" if bits else ""]
    return "".join(f" {w}" for w in words if w)


class Progress:
    """Follows the tasks of one command: announces each new task, then shows its progress.

    Call it with every snapshot (it is an ``on_progress`` callback); :meth:`close` ends the
    line on a terminal and stops the ticker. ``current`` is the id of the last task seen,
    ``name`` its name; ``ended`` its last snapshot if that showed its end. ``uploading`` is
    the package being sent (:class:`Uploads` says), ``uploaded`` how many the agent stored;
    ``uploads_begun`` that ``task retry --package``'s uploads began (its files are checked,
    then sent): no retry is sent before the last is stored. ``seen`` is the task an operator
    was sent to, as read before, once the operator failed.
    """

    def __init__(self, out: Output, *, tty: bool) -> None:
        self.out = out
        self.tty = tty
        self.current: Optional[str] = None
        self.name: Optional[str] = None
        self.ended: Optional[DagDetail] = None
        self.seen: Optional[DagDetail] = None
        self.uploading: Optional[str] = None
        self.uploaded = 0
        self.uploads_begun = False
        self._announced: set[str] = set()
        self._status = StatusLine(out.stderr, tty)
        self._line = ""
        self._since = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: Optional[threading.Thread] = None

    def announce(self, detail: DagDetail, followed: bool = True) -> None:
        """Say once that a task exists, with its id and how to follow it.

        ``followed``: the command follows it now, so the note says how to follow it again.
        """
        if detail.id != self.current:
            self.ended = None  # of the task before
        self.current, self.name = detail.id, detail.name
        if detail.id in self._announced:
            return
        self._announced.add(detail.id)
        with self._lock:
            self._status.clear()
            self._line = ""
            self._since = time.monotonic()  # this machine's clock: the agent's may be off
            how = "; follow it again with" if followed else " created; follow it with"
            self.out.note(f"task {detail.id} ({printable(detail.name)}){how}: "
                          f"obshell-sdk task wait {detail.id} --exists")

    def __call__(self, detail: DagDetail) -> None:
        """Show a snapshot."""
        self.announce(detail)
        self.ended = detail if detail.is_finished else None
        self._line = progress_line(detail)
        self._draw()
        self._start_ticking()

    def step(self, text: str) -> None:
        """Show ``text`` as the progress line, timed from now: a step that is no task."""
        with self._lock:
            self._status.end()  # a line shown before stays on a terminal
            self._line = text
            self._since = time.monotonic()
        self._draw()
        self._start_ticking()

    def step_done(self, text: str) -> None:
        """End the step's line (a terminal keeps it, its clock stopped), then note ``text``."""
        with self._lock:
            if self.tty and self._line:
                self._status.show(self._line, clock_text(time.monotonic() - self._since))
            self._status.end()
            self._line = ""
            self.out.note(text)

    def note(self, text: str) -> None:
        """A note on stderr that leaves the progress line whole (cleared, then drawn again)."""
        with self._lock:
            self._status.clear()
            self.out.note(text)
        if self.tty:
            self._draw()

    def close(self) -> None:
        """End the progress line (a terminal keeps the last one) and stop ticking."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        with self._lock:
            self._status.end()
            self._line = ""

    def _start_ticking(self) -> None:
        if self.tty and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="obshell-sdk-progress",
                                            daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self._draw()

    def _draw(self) -> None:
        with self._lock:
            if self._line:
                self._status.show(self._line, clock_text(time.monotonic() - self._since))


class Uploads:
    """Says each package upload on stderr (it is an ``on_upload`` callback).

    Before the upload, the file, its size and the agent, as the progress line; once the
    package is stored, the agent's row for it and how long the upload took; ``took``, the
    seconds each stored package's upload took, in turn.
    """

    def __init__(self, progress: Progress, agent: str) -> None:
        self.progress = progress
        self.agent = agent
        self.took: list[float] = []
        self._since = time.monotonic()

    def __call__(self, path: str, stored: Optional[UpgradePackageInfo]) -> None:
        """``stored`` None: ``path`` is about to be sent; else the agent has stored it."""
        if stored is None:
            self._since = time.monotonic()
            self.progress.uploading = path
            self.progress.step(upload_line(path, self.agent))
            return
        self.took.append(time.monotonic() - self._since)
        self.progress.uploaded += 1  # then no longer sending: never both unsaid
        self.progress.uploading = None
        self.progress.step_done(stored_line(stored, self.took[-1]))
