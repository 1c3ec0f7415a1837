"""Lifecycle of a fake agent: the listener, the DAG ticker, pauses (restarts) and helper threads.

Everything this module starts ends in :meth:`AgentRunner.stop`: the listener (and with it every
connection, hung ones included), the ticker, the resume timer and the restart helpers.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Optional

from ._dagmodel import FakeDag
from ._server import IncomingRequest, Listener, Reply
from ._state import AgentState

_log = logging.getLogger("obshell_sdk.testing")

App = Callable[[IncomingRequest], Reply]


class AgentRunner:
    """Serves one :class:`AgentState` through ``app`` on ``state.host:state.port``."""

    def __init__(self, state: AgentState, app: App, tls: Optional[ssl.SSLContext]) -> None:
        self.state = state
        self.app = app
        self.tls = tls
        self._lock = threading.RLock()
        self._listener: Optional[Listener] = None
        self._resume_timer: Optional[threading.Timer] = None
        self._ticker: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        # held while a pause goes down and applies its changes: resume() waits for them
        self._going_down = threading.Lock()
        self._helpers: list[threading.Thread] = []
        self._paused = False
        self._running = False

    # -- start / stop -----------------------------------------------------------------
    def start(self) -> None:
        """Bind (taking the port the system gave when ``port`` is 0) and serve; idempotent."""
        with self._lock:
            if self._running:
                return
            self._listener = Listener(self.state.host, self.state.port, self.app, self.tls)
            self.state.port = self._listener.port
            self._running = True
            self._stopping.clear()
            self.state.started_at = self.state.now()
            self._paused = False
            self._ticker = threading.Thread(target=self._tick_loop, name="fake-obshell-ticker",
                                            daemon=True)
            self._ticker.start()

    def stop(self) -> None:
        """Stop serving: close the socket and every connection, join all threads."""
        with self._lock:
            self._running = False
            self._stopping.set()
            if self._resume_timer is not None:
                self._resume_timer.cancel()
                self._resume_timer = None
            listener, self._listener = self._listener, None
            ticker, self._ticker = self._ticker, None
        if listener is not None:
            listener.close()
        if ticker is not None:
            ticker.join()
        with self._lock:
            helpers, self._helpers = self._helpers, []
        for helper in helpers:
            if helper is not threading.current_thread():
                helper.join()
        with self._lock:  # a helper may have resumed while we were stopping
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def _tick_loop(self) -> None:
        while not self._stopping.wait(0.02):
            self.state.dags.tick()
            self.state.drain_restarts()

    # -- pause / resume -----------------------------------------------------------------
    def pause(self, seconds: float, *, new_key_bits: Optional[int] = None,
              clock_offset: Optional[float] = None,
              while_down: Optional[Callable[[], None]] = None) -> None:
        """Stop listening now (cutting every connection); listen again after ``seconds``.

        ``while_down`` runs once the agent is down (or already stopped), before it can listen
        again: what a restart changes is there when the first request after it comes.
        """
        with self._going_down:  # a resume() by hand meanwhile comes back with the changes
            with self._lock:
                running = self._running
                if running:
                    listener, self._listener = self._listener, None
                    if self._resume_timer is not None:
                        self._resume_timer.cancel()
            if not running:
                if while_down is not None:
                    while_down()
                return
            if listener is not None:
                listener.close()
            with self._lock:
                self._paused = self._listener is None and self._running
            if new_key_bits is not None:
                self.state.key.replace(bits=new_key_bits)
            if clock_offset is not None:
                self.state.clock_offset = clock_offset
            if while_down is not None:
                while_down()

            def on_time() -> None:
                self._resume(timer)

            # registered before a resume() by hand can run, so that it cancels this timer too
            timer = threading.Timer(seconds, on_time)
            timer.daemon = True
            with self._lock:
                if not self._running:
                    return
                self._resume_timer = timer
                self._helpers.append(timer)
            timer.start()

    def resume(self) -> None:
        """Listen again on the same port; no-op if listening or stopped."""
        self._resume(None)

    def _resume(self, timer: Optional[threading.Timer]) -> None:
        """:meth:`resume`, or (``timer``) a pause's timer that fired: stale once replaced."""
        with self._going_down, self._lock:
            if timer is not None and timer is not self._resume_timer:
                return  # a later pause, or a resume() by hand, took over: it must not end it
            pending, self._resume_timer = self._resume_timer, None
            if pending is not None:  # by hand: the pause's timer must not keep stop() waiting
                pending.cancel()
            if not self._running or self._listener is not None:
                return
            try:
                self._listener = Listener(self.state.host, self.state.port, self.app, self.tls)
            except OSError:
                _log.exception("fake agent could not listen again on port %s", self.state.port)
                return
            self.state.started_at = self.state.now()
            self._paused = False

    @property
    def paused(self) -> bool:
        """True while started but not listening."""
        with self._lock:
            return self._running and self._paused

    def wait_listening(self, timeout: float) -> bool:
        """Block until listening again (after a pause); returns success."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.paused:
                return True
            time.sleep(0.01)
        return not self.paused

    # -- restarts -------------------------------------------------------------------------
    def restart(self, dag: FakeDag) -> None:
        """A DAG reached its restart stage: pause as an obshell restart does, in a helper."""
        new_obshell = dag.kind.startswith("agent") and bool(dag.target_version)
        target = dag.target_version if new_obshell else self.state.version
        release = dag.target_release if new_obshell else self.state.release
        with self._lock:
            running = self._running
        if not running:  # nothing to pause; the "restarted" agent runs the new version
            self.state.run_obshell(target, release)
            self.state.restart_done(dag)
            return

        def down() -> None:  # the new version answers from the first request after it
            self.state.run_obshell(target, release)
            self.state.restart_done(dag)

        def run() -> None:
            self.pause(self.state.restart_seconds, new_key_bits=self.state.restart_new_key_bits,
                       while_down=down)

        self.spawn(run)

    def spawn(self, target: Callable[[], None]) -> None:
        """Run ``target`` in a helper thread that :meth:`stop` joins (not at all once stopped)."""
        thread = threading.Thread(target=target, name="fake-obshell-helper", daemon=True)
        with self._lock:
            if not self._running:
                return  # stopped: start nothing that stop() would not join
            self._helpers = [t for t in self._helpers if t.is_alive()]
            self._helpers.append(thread)
        thread.start()
