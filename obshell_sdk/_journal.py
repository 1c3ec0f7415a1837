"""The journal of a rollout: one SQLite file (WAL), written before and after every step.

A rollout reads its journal when it starts: targets that ended are not touched again (but
for a failed task, read once to see whether someone retried it by hand), a target whose DAG
was created is followed (never created again), and a target whose create
call may or may not have reached the agent is looked up. Every write is its own committed
transaction, so a runner killed at any moment (SIGKILL included) leaves a journal that
says exactly how far each target got. Nothing here talks to an agent.
"""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any, Optional

from ._exceptions import InvalidArgumentError
from ._journal_records import (
    FINAL,
    StepRecord,
    TargetOutcome,
    TargetRecord,
    records,
    under_way,
)
from ._runner_lock import RunnerLock

__all__ = ["FINAL", "Journal", "StepRecord", "TargetOutcome", "TargetRecord", "read_targets",
           "under_way"]


def _unusable(path: str, exc: sqlite3.Error) -> InvalidArgumentError:
    return InvalidArgumentError("journal", f"{path!r} cannot hold a rollout journal ({exc}); "
                                "give the path of a new file, or of an earlier journal, in a "
                                "writable directory")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS targets (
    target TEXT PRIMARY KEY, position INTEGER NOT NULL, outcome TEXT,
    started_at REAL, ended_at REAL, error TEXT);
CREATE TABLE IF NOT EXISTS steps (
    target TEXT NOT NULL, step TEXT NOT NULL, status TEXT NOT NULL, dag_id TEXT,
    sent_at REAL, existed TEXT, at REAL NOT NULL, PRIMARY KEY (target, step));
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, target TEXT, step TEXT,
    what TEXT NOT NULL);
"""
_VERSION = "1"

class Journal:
    """A rollout's journal in the SQLite file ``path`` (created when missing).

    ``plan`` says what the rollout does (kind, version, release, options): a journal holds
    one plan, and opening it with another is refused, so two rollouts never mix.
    ``runner``: the journal's runner lock when taken already (a rollout takes it before it
    reads its packages); a journal refused here lets it go, as one taken here.
    """

    def __init__(self, path: str, plan: dict[str, Any], targets: Sequence[str],
                 runner: Optional[RunnerLock] = None) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._runner = runner or RunnerLock(self.path)  # given: taken already, held from now
        try:  # a directory or an unwritable place fails here, another kind of file below
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                       check_same_thread=False)
        except sqlite3.Error as exc:
            self._runner.release(refused=True)
            raise _unusable(self.path, exc) from None
        self.writes = 0
        try:
            self._prepare(plan, targets)
        except BaseException:
            self.close(refused=True)
            raise

    def _prepare(self, plan: dict[str, Any], targets: Sequence[str]) -> None:
        """Set the database up as this rollout's journal, or refuse a file that is not one."""
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a committed step survives a power cut
            tables = {row[0] for row in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "meta" not in tables:  # never add ours to another program's file
                raise sqlite3.DatabaseError(f"it holds other tables: {', '.join(sorted(tables))}")
            self._db.executescript(_SCHEMA)
            self._adopt(plan, targets)
        except sqlite3.Error as exc:
            raise _unusable(self.path, exc) from None

    def close(self, *, locked_until: Sequence[threading.Event] = (),
              refused: bool = False) -> None:
        """Close the database, and let another runner have the journal.

        ``locked_until``: set when the threads that may still send what this journal was to
        record (a rollout's workers after Ctrl-C) have let go; it stays locked until then.
        ``refused``: nothing was sent; a lock file this runner made goes (``RunnerLock``).
        """
        with self._lock:
            self._db.close()
        self._runner.release(after=locked_until, refused=refused)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self.writes += 1

    def _adopt(self, plan: dict[str, Any], targets: Sequence[str]) -> None:
        text = json.dumps(plan, sort_keys=True)
        with self._tx() as db:
            found = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if not found:
                db.executemany("INSERT INTO meta VALUES (?, ?)",
                               [("version", _VERSION), ("plan", text),
                                ("created_at", repr(time.time()))])
            elif found.get("plan") != text:
                raise InvalidArgumentError(
                    "journal", f"{self.path} holds another rollout ({_differs(found, plan)}); "
                    "resume that one, or name a new journal file for this one")
            known = {row[0] for row in db.execute("SELECT target FROM targets")}
            db.executemany(
                "INSERT INTO targets (target, position) VALUES (?, ?)",
                [(t, i) for i, t in enumerate(targets) if t not in known])

    @staticmethod
    def read_plan(path: str) -> dict[str, Any]:
        """The plan a journal file holds (for ``rollout status``), without changing it."""
        if not os.path.isfile(path):
            why = "is not a file" if os.path.exists(path) else "does not exist"
            raise InvalidArgumentError("journal", f"{path!r} {why}")
        with closing(_read_only(path)) as db:
            try:
                row = db.execute("SELECT value FROM meta WHERE key = 'plan'").fetchone()
            except sqlite3.DatabaseError as exc:
                raise InvalidArgumentError("journal", f"{path!r} is not a journal ({exc})"
                                           ) from None
        if row is None:
            raise InvalidArgumentError("journal", f"{path!r} holds no rollout")
        try:
            plan = json.loads(row[0])
        except (TypeError, ValueError):
            plan = None
        if not isinstance(plan, dict):
            raise InvalidArgumentError("journal", f"{path!r} holds a plan no rollout writes (was "
                                       "the file changed by hand?); give a new journal")
        return plan

    # -- writing --------------------------------------------------------------------------

    def step(self, target: str, step: str, status: str, *, dag_id: Optional[str] = None,
             sent_at: Optional[float] = None, existed: Optional[frozenset[str]] = None,
             note: Optional[str] = None) -> None:
        """Record where ``step`` of ``target`` stands now (committed before returning).

        ``note``: how it got there, in its event (``done (found stored as package 3, ...)``).
        """
        now = time.time()
        ids = None if existed is None else json.dumps(sorted(existed))
        what = status if dag_id is None else f"{status} {dag_id}"
        with self._tx() as db:
            db.execute(
                "INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target, step) DO "
                "UPDATE SET status = excluded.status, at = excluded.at, "
                "dag_id = COALESCE(excluded.dag_id, dag_id), "
                "sent_at = COALESCE(excluded.sent_at, sent_at), "
                # a new send's listing replaces the old one's, even when it failed (NULL)
                "existed = CASE WHEN excluded.status = 'sending' THEN excluded.existed "
                "ELSE COALESCE(excluded.existed, existed) END",
                (target, step, status, dag_id, sent_at, ids, now))
            db.execute("UPDATE targets SET started_at = COALESCE(started_at, ?) "
                       "WHERE target = ?", (now, target))
            db.execute("INSERT INTO events (at, target, step, what) VALUES (?, ?, ?, ?)",
                       (now, target, step, what if note is None else f"{what} ({note})"))

    def end(self, target: str, outcome: str, error: Optional[str] = None) -> None:
        """Record how ``target`` ended."""
        now = time.time()
        started = None if outcome == TargetOutcome.SKIPPED.value else now  # not started
        with self._tx() as db:
            db.execute("UPDATE targets SET outcome = ?, error = ?, ended_at = ?, "
                       "started_at = COALESCE(started_at, ?) WHERE target = ?",
                       (outcome, error, now, started, target))
            db.execute("INSERT INTO events (at, target, what) VALUES (?, ?, ?)",
                       (now, target, f"ended {outcome}"))

    def reopen(self, target: str, *, again: bool = False) -> None:
        """``target`` is being worked on again: its task followed on (retried by hand).

        ``again``: tried anew after an earlier run's outcome; its time starts anew too.
        """
        with self._tx() as db:
            db.execute("UPDATE targets SET outcome = NULL, error = NULL, ended_at = NULL, "
                       "started_at = CASE WHEN ? THEN NULL ELSE started_at END "
                       "WHERE target = ?", (again, target))
            db.execute("INSERT INTO events (at, target, what) VALUES (?, ?, ?)",
                       (time.time(), target, "tried again" if again else "reopened"))

    # -- reading --------------------------------------------------------------------------

    def targets(self) -> list[TargetRecord]:
        """Every target, in the rollout's order, with its steps."""
        with self._lock:
            return records(self._db, self.path)

    def target(self, target: str) -> TargetRecord:
        """One target, with its steps."""
        with self._lock:
            return records(self._db, self.path, target)[0]


def read_targets(path: str) -> list[TargetRecord]:
    """The targets of the journal at ``path``, read only (for ``rollout status``)."""
    Journal.read_plan(path)
    with closing(_read_only(path)) as db:
        return records(db, path)


def _read_only(path: str) -> sqlite3.Connection:
    """The journal at ``path``, opened read only (a ``#``, ``?`` or ``%`` in it escaped)."""
    return sqlite3.connect(pathlib.Path(os.path.abspath(path)).as_uri() + "?mode=ro", uri=True)



def _differs(found: dict[str, str], plan: dict[str, Any]) -> str:
    """What the journal's rollout has that ``plan`` does not: ``check: true, not false``."""
    try:
        held = json.loads(found.get("plan", ""))
    except ValueError:
        held = None
    if not isinstance(held, dict):
        return f"its plan is {found.get('plan')!r}"
    keys = sorted(set(held) | set(plan), key=str)
    return "; ".join(f"{k}: {json.dumps(held.get(k))}, not {json.dumps(plan.get(k))}"
                     for k in keys if held.get(k) != plan.get(k))
