"""The parts of the :class:`~obshell_sdk.testing.FakeAgent` facade that only delegate.

``AgentControls`` holds the recorded-request views and the fault controls (requests and
lifecycle); ``_StateAttr`` exposes an :class:`~._state.AgentState` attribute on the facade, and
``_RouteAttr`` a route the agent serves or not, by its version unless pinned.
"""

from __future__ import annotations

from typing import Any, Callable, Generic, Optional, TypeVar, Union, cast, overload

from ._lifecycle import AgentRunner
from ._record import RecordedRequest
from ._state import AgentState

T = TypeVar("T")


class _StateAttr(Generic[T]):
    """A public :class:`AgentControls` attribute kept in its :class:`AgentState` (read/write)."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self.name: str = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _StateAttr[T]: ...
    @overload
    def __get__(self, obj: AgentControls, owner: type) -> T: ...
    def __get__(self, obj: Optional[AgentControls], owner: type) -> Union[T, _StateAttr[T]]:
        if obj is None:
            return self
        return cast(T, getattr(obj._state, self.name))

    def __set__(self, obj: AgentControls, value: T) -> None:
        setattr(obj._state, self.name, value)


class _RouteAttr(_StateAttr[bool]):
    """Whether the agent serves a route now; assigning True/False pins it, None follows the version.

    Reads the state's property of the same name; writes its ``<name>_pin``.
    """

    def __set__(self, obj: AgentControls, value: Optional[bool]) -> None:
        setattr(obj._state, f"{self.name}_pin", value)


class AgentControls:
    """Request log and fault controls of a fake agent (the base of ``FakeAgent``)."""

    _state: AgentState
    _runner: AgentRunner

    # -- recorded requests ----------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received so far (oldest first)."""
        return self._state.request_log.snapshot()

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._state.request_log.clear()

    def take_requests(self) -> list[RecordedRequest]:
        """The requests recorded so far, forgotten at once: a log read this way never grows."""
        return self._state.request_log.take()

    def requests_to(self, path: str, method: Optional[str] = None) -> list[RecordedRequest]:
        """Recorded requests whose path (query excluded) equals ``path``."""
        return [r for r in self.requests
                if r.path == path and (method is None or r.method == method)]

    # -- lifecycle faults -----------------------------------------------
    def pause(self, seconds: float, *, new_key_bits: Optional[int] = None,
              clock_offset: Optional[float] = None) -> None:
        """Stop listening now; listen again on the same port after ``seconds``.

        New connections are refused and open ones are cut meanwhile (hung ones too);
        optionally the agent comes back with a new RSA key and/or clock offset (an obshell
        restart).
        """
        self._runner.pause(seconds, new_key_bits=new_key_bits, clock_offset=clock_offset)

    def resume(self) -> None:
        """Listen again (same port) after :meth:`pause`; no-op if already listening."""
        self._runner.resume()

    @property
    def paused(self) -> bool:
        """True while the agent is started but not listening (socket closed)."""
        return self._runner.paused

    def wait_listening(self, timeout: float = 10.0) -> bool:
        """Block until the agent listens again (after a pause); returns success."""
        return self._runner.wait_listening(timeout)

    # -- request faults -------------------------------------------------
    def reset_next(self, n: int = 1, *, path_prefix: str = "") -> None:
        """The next ``n`` requests are read, then their connection is reset (no answer).

        ``path_prefix`` limits it to requests whose path starts with it (default: any).
        """
        self._state.faults.reset_next(n, path_prefix)

    def fail_next(self, n: int = 1, *, status: int = 503, err_code: Optional[str] = None,
                  path_prefix: str = "/api/v1/task/", message: Optional[str] = None,
                  method: str = "") -> None:
        """Answer the next ``n`` requests under ``path_prefix`` with ``status``.

        A proxy-style HTML page when ``err_code`` is None, else an obshell envelope
        with that errCode (and ``message`` or a default text). Nothing is carried out.
        ``method`` (e.g. ``"POST"``, an operator's) limits it (default: any).
        """
        self._state.faults.fail_next(n, status, err_code, path_prefix, message, method)

    def drop_reply_after_next(self, n: int = 1, *, path_prefix: str = "",
                              method: str = "") -> None:
        """The next ``n`` requests that succeed are carried out, then closed unanswered.

        A reply lost after the agent acted: an operator applied, a package stored, a task
        made. ``path_prefix`` and ``method`` (e.g. ``"POST"``) limit it (default: any).
        """
        self._state.faults.drop_reply_after_next(n, path_prefix, method)

    def edit_data_next(self, n: int = 1, *, edit: Callable[[Any], Any], path_prefix: str = "",
                       method: str = "") -> None:
        """The next ``n`` requests that succeed are carried out, and answered with other data.

        Their envelope's ``data`` is ``edit(data)``, given a copy of the data as it would have
        been sent (None when there was none): a reply of obshell's that does not fit what the
        SDK reads (``lambda d: {**d, "public_key": 42}``). ``path_prefix`` and ``method``
        limit it (default: any).
        """
        if not callable(edit):
            raise TypeError(f"edit must be a callable taking the data, not {type(edit).__name__}")
        self._state.faults.edit_data_next(n, edit, path_prefix, method)

    def truncate_next(self, n: int = 1, *, path_prefix: str = "") -> None:
        """The next ``n`` answers announce a longer Content-Length than sent, then close.

        ``path_prefix`` limits it to requests whose path starts with it (default: any).
        """
        self._state.faults.truncate_next(n, path_prefix)

    def hang_next(self, n: int = 1, *, seconds: float = 30.0,
                  path_prefix: str = "/api/v1/task/") -> None:
        """The next ``n`` requests under ``path_prefix`` get no answer: a hung agent.

        Each is read completely, not acted on, and left unanswered for ``seconds``; then its
        connection is closed without a reply. :meth:`stop` (and :meth:`pause`) end hangs at
        once; :meth:`clear_faults` cancels hangs not started yet.
        """
        self._state.faults.hang_next(n, seconds, path_prefix)

    @property
    def drop_reply_after_create(self) -> bool:
        """If True, the next task-creating POST creates its task, then closes unanswered.

        Task-creating: ``POST /api/v1/agent/upgrade``, ``/api/v1/agent/upgrade/check``,
        ``/api/v1/ob/upgrade`` and ``/api/v1/ob/upgrade/check`` (every route declared
        ``creates_task`` in the route table). One-shot: it resets to False once used.
        """
        return self._state.faults.drop_reply_after_create

    @drop_reply_after_create.setter
    def drop_reply_after_create(self, value: bool) -> None:
        self._state.faults.drop_reply_after_create = value

    def clear_faults(self) -> None:
        """Cancel every pending fault (resets, hangs, failures, truncations, drops, edits)."""
        self._state.faults.clear()
