"""A journal's runner lock: one runner per journal, held until its last sender has ended.

Two runners on one journal could each send a step's create call: the journal is what keeps
a second DAG from being made. The lock is an ``flock`` on a file beside the journal
(``PATH.lock``), not on the database itself: closing another descriptor of the database would
drop SQLite's own locks. A runner that cannot take it is refused, never run unlocked; deleting
the file while a runner holds it lets a second one in (never delete it by hand). ``PATH`` is
the journal's real path, symbolic links resolved, as SQLite resolves them: one journal
reached through two names is still one journal. (A hard link is two names SQLite itself
cannot tell apart; its documentation says never to make one.) A runner whose journal is
refused removes the lock file it made, while it holds it; so a runner that takes a lock
checks that its file is still the one at the path, and takes the new one if not. POSIX
only; on Windows one runner per journal is the caller's care. Within a run, one target per
agent: :class:`AgentClaims`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

from ._exceptions import InvalidArgumentError

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ._models import AgentInfo

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["AgentClaims", "RunnerLock"]


class RunnerLock:
    """The runner lock of the journal at ``path``, taken at once; a journal in use is refused."""

    def __init__(self, path: str) -> None:
        self._lock = os.path.realpath(path) + ".lock"
        self._fd, self._made = _take(path, self._lock)

    def release(self, *, after: Sequence[threading.Event] = (), refused: bool = False) -> None:
        """Let another runner have the journal, once every event in ``after`` is set.

        ``after``: set when a thread that may still send what the journal was to record (a
        rollout's worker after Ctrl-C) has let go; a background thread waits for them, so
        this never blocks. ``refused``: the journal was refused, nothing was sent; a lock
        file this runner made is removed (still held: see the module's docstring).
        """
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if refused and self._made and _same_file(fd, self._lock):
            with contextlib.suppress(OSError):
                os.unlink(self._lock)
        if not after:
            os.close(fd)  # closing the descriptor releases its flock
            return

        def release_later() -> None:
            for event in after:
                event.wait()
            os.close(fd)

        threading.Thread(target=release_later, name="obshell-journal-lock", daemon=True).start()


def _take(path: str, lock: str) -> tuple[Optional[int], bool]:
    """The lock's descriptor, held, and whether this runner made its file."""
    if fcntl is None:  # pragma: no cover - Windows
        return None, False
    for _ in range(_TRIES):
        fd, made = _held(path, lock)
        if _same_file(fd, lock):
            return fd, made
        os.close(fd)  # removed by a refused runner since it was opened: the new one
    raise InvalidArgumentError("journal", f"its runner lock {lock} was a new file at each of "
                               f"{_TRIES} tries; leave that file alone while runners start")


#: How often a runner opens the lock file again when it was replaced under it.
_TRIES = 100


def _held(path: str, lock: str) -> tuple[int, bool]:
    """The lock file at ``lock`` opened (made if missing) and flocked; a refusal if in use."""
    folder = os.path.dirname(lock)
    if not os.path.isdir(folder):
        raise InvalidArgumentError("journal", f"{path!r}: its directory {folder} does not "
                                   "exist; create it, or give a journal path in one that does")
    try:
        fd, made = _open(lock)
    except OSError as exc:  # never run without it: two runners could each send a step
        raise InvalidArgumentError("journal", f"cannot open its runner lock {lock} "
                                   f"({exc.strerror}); a runner without it could send what "
                                   "another runner sends: let this user read that file "
                                   "(and write where the journal is)") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InvalidArgumentError("journal", f"{path!r} is in use by another runner, or by "
                                   "one interrupted whose requests under way have not ended (it "
                                   f"holds {lock}); one journal has one runner at a time: "
                                   "wait for it, or split the fleet between journals") from None
    except OSError as exc:  # NFS emulates flock with POSIX locks, which need write access
        os.close(fd)
        raise InvalidArgumentError("journal", f"cannot lock its runner lock {lock} "
                                   f"({exc.strerror}): let this user write that file") from None
    return fd, made


def _open(lock: str) -> tuple[int, bool]:
    """The lock file, made as SQLite makes the journal (0644 less the umask); whether made.

    Another user's (a group sharing one journal) is opened for reading: ``flock`` needs
    only a descriptor, so its runners still exclude each other. One there already is opened
    as the SDK always did: one removed since (a refused runner's) is made, not said made;
    a dangling symbolic link, which ``O_EXCL`` sees as a file, makes its target.
    """
    try:
        return os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
    except FileExistsError:
        pass
    except PermissionError:
        return os.open(lock, os.O_RDONLY), False
    try:
        return os.open(lock, os.O_RDWR | os.O_CREAT, 0o644), False
    except PermissionError:
        return os.open(lock, os.O_RDONLY), False


def _same_file(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open at ``fd``."""
    try:
        there = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (there.st_dev, there.st_ino) == (held.st_dev, held.st_ino)


class AgentClaims:
    """Which target of a run each agent is, by its ``/info`` (address, process, start time).

    Targets are known by their names: ``localhost:2886`` and ``127.0.0.1:2886`` would be two
    targets of one agent, each making its own tasks there. A target that has sent nothing
    yet is refused when its agent answers as another target's already did (a run notes the
    agents of the targets it resumes first). An agent that restarted in between (its own
    upgrade) answers as another process: not caught then.
    """

    def __init__(self) -> None:
        self._targets: dict[tuple[str, int, int, int], str] = {}
        self._lock = threading.Lock()

    def claim(self, target: str, info: AgentInfo) -> Optional[str]:
        """Note ``target``'s agent; the other target that noted it first, or None."""
        if not (info.ip and info.port):  # an agent that does not say where it is
            return None
        with self._lock:
            other = self._targets.setdefault((info.ip, info.port, info.pid, info.start_at),
                                             target)
        return None if other == target else other
