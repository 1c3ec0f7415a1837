"""The :class:`FakeAgent` facade: configuration, lifecycle, DAG helpers and fault controls."""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Optional

from ._auth import AuthConfig
from ._crypto import ServerKey
from ._dagmodel import FakeDag
from ._dags import DagStore
from ._faults import FaultPlan
from ._record import RecordedRequest
from ._server import IncomingRequest, Listener, Reply

if TYPE_CHECKING:
    from ._app import Context


class FakeAgent:
    """An in-process HTTP server that answers like an obshell agent.

    Use it as a context manager (``with FakeAgent() as agent: ...``) or call
    :meth:`start`/:meth:`stop`. See the package docstring for an example. ``tls`` (a server
    ``ssl.SSLContext``) makes it serve HTTPS on the same port, as obshell does when it finds a
    certificate; set ``verify_mode = ssl.CERT_REQUIRED`` on it for mutual TLS.
    """

    def __init__(
        self, *,
        password: str = "root-password",  # noqa: S107 - a test default, not a secret
        agent_password: Optional[str] = None,
        identity: str = "CLUSTER AGENT", version: str = "4.3.0.0", release: str = "",
        supported_auth: Optional[Sequence[str]] = ("v2",), legacy_v1: bool = False,
        key_bits: int = 1024, private_key: Optional[bytes] = None, clock_offset: float = 0.0,
        stage_seconds: Optional[float] = None, stages_per_poll: int = 1,
        fail_stage: Optional[int] = None, fail_times: int = 1,
        fail_message: str = "injected failure at stage {stage}",
        restart_at_stage: Optional[int] = None, restart_seconds: float = 1.0,
        restart_new_key_bits: Optional[int] = None, root_password_known: bool = True,
        host: str = "127.0.0.1", port: int = 0, tls: Optional[ssl.SSLContext] = None,
        adopt_target_version: bool = True,
    ) -> None:
        self.password = password
        self.adopt_target_version = adopt_target_version
        self.tls = tls
        self.agent_password = agent_password
        self.identity = identity
        self.version = version
        self.release = release
        self.supported_auth: Optional[tuple[str, ...]] = (
            None if supported_auth is None else tuple(supported_auth))
        self.legacy_v1 = legacy_v1
        self.root_password_known = root_password_known
        self.host = host
        self.port = port
        self.pid = os.getpid()
        self.restart_seconds = restart_seconds
        self.restart_new_key_bits = restart_new_key_bits
        self.packages: list[tuple[str, bytes]] = []
        self._log = logging.getLogger("obshell_sdk.testing")
        self._clock_offset = clock_offset
        self._key = ServerKey(bits=key_bits, private_der=private_key)
        self._faults = FaultPlan()
        self._dags = DagStore(self.now)
        self._dags.stages_per_poll = stages_per_poll
        self._dags.stage_seconds = stage_seconds
        self._dags.fail_stage = fail_stage
        self._dags.fail_times = fail_times
        self._dags.fail_message = fail_message
        self._dags.restart_at_stage = restart_at_stage
        self._requests: list[RecordedRequest] = []
        self._req_lock = threading.Lock()
        self._state_lock = threading.RLock()
        self._listener: Optional[Listener] = None
        self._resume_timer: Optional[threading.Timer] = None
        self._ticker: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self._helpers: list[threading.Thread] = []
        self._paused = False
        self._running = False
        self.started_at = self.now()

    # -- lifecycle ------------------------------------------------------
    def start(self) -> FakeAgent:
        """Bind and serve in background threads; returns ``self``."""
        with self._state_lock:
            if self._running:
                return self
            self._listener = Listener(self.host, self.port, self._app, self.tls)
            self.port = self._listener.port
            self._running = True
            self._stopping.clear()
            self.started_at = self.now()
            self._paused = False
            self._ticker = threading.Thread(target=self._tick_loop, name="fake-obshell-ticker",
                                            daemon=True)
            self._ticker.start()
        return self

    def stop(self) -> None:
        """Stop serving: close the socket and every connection, join all threads."""
        with self._state_lock:
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
        with self._state_lock:
            helpers, self._helpers = self._helpers, []
        for helper in helpers:
            if helper is not threading.current_thread():
                helper.join()
        with self._state_lock:  # a helper may have resumed while we were stopping
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def __enter__(self) -> FakeAgent:
        return self.start()

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.stop()

    def _app(self, req: IncomingRequest) -> Reply:
        from ._app import handle

        return handle(self, req)

    def _tick_loop(self) -> None:
        while not self._stopping.wait(0.02):
            self._dags.tick()
            self._drain_restarts()

    # -- properties -----------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (``https`` with ``tls``; IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls is not None else 'http'}://{host}:{self.port}"

    @property
    def public_key_b64(self) -> str:
        """Current public key as ``/api/v1/secret`` returns it (base64 PKCS#1 DER)."""
        return self._key.public_key_b64

    @property
    def private_key_der(self) -> bytes:
        """Current private key (PKCS#1 DER)."""
        return self._key.private_der

    def sync_version(self) -> str:
        """Take on the version of the last upgrade DAG that ended SUCCEED/RUN; return it.

        A real agent runs the new binary once its upgrade DAG succeeded; so does this one,
        whether or not it was told to restart at a stage (unless ``adopt_target_version`` is
        false, as the recorded vectors' agent behaved).
        """
        if not self.adopt_target_version:
            return self.version
        done = [d for d in self._dags.all() if d.maintenance_type == 2 and d.target_version
                and d.state == "SUCCEED" and d.operator == "RUN" and not d.version_applied]
        for dag in done:
            dag.version_applied = True
            self.version = dag.target_version
        return self.version

    @property
    def version_release_display(self) -> str:
        """``/info.version``: ``VERSION-RELEASE`` (just ``VERSION`` when release is empty)."""
        self.sync_version()
        return f"{self.version}-{self.release}" if self.release else self.version

    @property
    def clock_offset(self) -> float:
        """Seconds added to ``time.time()`` to get the server clock."""
        return self._clock_offset

    def now(self) -> float:
        """The server clock (Unix seconds, float)."""
        return time.time() + self._clock_offset

    def set_clock_offset(self, seconds: float) -> None:
        """Move the server clock to ``time.time() + seconds``."""
        self._clock_offset = seconds

    def rotate_key(self, bits: int = 1024) -> None:
        """Replace the RSA key pair; headers made for the old key fail with DecryptFailed."""
        self._key.replace(bits=bits)

    def _auth_config(self) -> AuthConfig:
        return AuthConfig(self.identity, self.password, self.root_password_known,
                          self.agent_password)

    # -- recorded requests ----------------------------------------------
    def _record(self, rec: RecordedRequest) -> None:
        with self._req_lock:
            self._requests.append(rec)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received so far (oldest first)."""
        with self._req_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._req_lock:
            self._requests.clear()

    def requests_to(self, path: str, method: Optional[str] = None) -> list[RecordedRequest]:
        """Recorded requests whose path (query excluded) equals ``path``."""
        return [r for r in self.requests
                if r.path == path and (method is None or r.method == method)]

    # -- DAG control ----------------------------------------------------
    @property
    def dags(self) -> Mapping[str, FakeDag]:
        """Live DAG objects by generic id (read them; drive them with the methods below)."""
        return {d.generic_id: d for d in self._dags.all()}

    def dag(self, dag_id: str) -> FakeDag:
        """The DAG with generic id ``dag_id`` (``KeyError`` if unknown)."""
        found = self.dags.get(dag_id)
        if found is None:
            raise KeyError(dag_id)
        return found

    def create_upgrade_dag(self, version: str = "4.3.1.0", release: str = "1.el7", *,
                           check: bool = False) -> str:
        """Create an upgrade (or check) DAG without HTTP; returns its generic id."""
        return self._dags.create(version, release, check=check).generic_id

    def advance_dag(self, dag_id: str, steps: int = 1) -> None:
        """Advance a DAG by ``steps`` steps (same as that many polls with 1 stage per poll)."""
        dag = self.dag(dag_id)
        for _ in range(steps):
            self._dags.step(dag)
        self._drain_restarts()

    def set_dag_stage(self, dag_id: str, stage: int) -> None:
        """Put a DAG in RUNNING at ``stage`` (earlier nodes SUCCEED, later PENDING)."""
        self._dags.set_stage(self.dag(dag_id), stage)
        self._drain_restarts()

    def finish_dag(self, dag_id: str) -> None:
        """Run a DAG to SUCCEED now (skips any injected failure)."""
        self._dags.finish(self.dag(dag_id))
        self._drain_restarts()

    def fail_dag(self, dag_id: str, message: Optional[str] = None) -> None:
        """Fail the DAG's current node now (sub-task gets an ERROR log line)."""
        self._dags.fail(self.dag(dag_id), message)

    def set_dag_progression(self, *, stages_per_poll: Optional[int] = None,
                            stage_seconds: Optional[float] = None,
                            dag_id: Optional[str] = None) -> None:
        """Change how DAGs progress: defaults for new DAGs, or one DAG if ``dag_id``.

        ``stages_per_poll=0`` freezes poll-driven DAGs; passing ``stage_seconds``
        switches to time-driven progression from now on.
        """
        targets = [self.dag(dag_id)] if dag_id is not None else []
        with self._dags.lock:
            if dag_id is None:
                if stages_per_poll is not None:
                    self._dags.stages_per_poll = stages_per_poll
                if stage_seconds is not None:
                    self._dags.stage_seconds = stage_seconds
            for dag in targets:
                if stages_per_poll is not None:
                    dag.stages_per_poll = stages_per_poll
                if stage_seconds is not None:
                    dag.stage_seconds = stage_seconds
                    dag.next_step_at = self.now() + stage_seconds

    def _after_dag_change(self, ctx: Context) -> None:
        if self._dags.pending_restarts:
            ctx.after_send.append(self._drain_restarts)

    def _drain_restarts(self) -> None:
        with self._dags.lock:
            pending, self._dags.pending_restarts = self._dags.pending_restarts, []
        for dag in pending:
            self._log.info("fake agent restarting at stage %s of DAG %s", dag.stage, dag.generic_id)
            version = dag.target_version or self.version

            def restart(target: str = version) -> None:
                self.pause(self.restart_seconds, new_key_bits=self.restart_new_key_bits)
                self.version = target

            self._spawn(restart)

    def _spawn(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name="fake-obshell-helper", daemon=True)
        with self._state_lock:
            self._helpers = [t for t in self._helpers if t.is_alive()]
            self._helpers.append(thread)
        thread.start()

    # -- fault controls ---------------------------------------------------
    def pause(self, seconds: float, *, new_key_bits: Optional[int] = None,
              clock_offset: Optional[float] = None) -> None:
        """Stop listening now; listen again on the same port after ``seconds``.

        New connections are refused and open ones are cut meanwhile; optionally the
        agent comes back with a new RSA key and/or clock offset (an obshell restart).
        """
        with self._state_lock:
            if not self._running:
                return
            listener, self._listener = self._listener, None
            if self._resume_timer is not None:
                self._resume_timer.cancel()
        if listener is not None:
            listener.close()
        with self._state_lock:
            self._paused = self._listener is None and self._running
        if new_key_bits is not None:
            self._key.replace(bits=new_key_bits)
        if clock_offset is not None:
            self._clock_offset = clock_offset
        timer = threading.Timer(seconds, self.resume)
        timer.daemon = True
        with self._state_lock:
            if not self._running:
                return
            self._resume_timer = timer
            self._helpers.append(timer)
        timer.start()

    def resume(self) -> None:
        """Listen again (same port) after :meth:`pause`; no-op if already listening."""
        with self._state_lock:
            self._resume_timer = None
            if not self._running or self._listener is not None:
                return
            try:
                self._listener = Listener(self.host, self.port, self._app, self.tls)
            except OSError:
                self._log.exception("fake agent could not listen again on port %s", self.port)
                return
            self.started_at = self.now()
            self._paused = False

    @property
    def paused(self) -> bool:
        """True while the agent is started but not listening (socket closed)."""
        with self._state_lock:
            return self._running and self._paused

    def wait_listening(self, timeout: float = 10.0) -> bool:
        """Block until the agent listens again (after a pause); returns success."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.paused:
                return True
            time.sleep(0.01)
        return not self.paused

    def reset_next(self, n: int = 1) -> None:
        """The next ``n`` requests are read, then their connection is reset (no answer)."""
        self._faults.reset_next(n)

    def fail_next(self, n: int = 1, *, status: int = 503, err_code: Optional[str] = None,
                  path_prefix: str = "/api/v1/task/", message: Optional[str] = None) -> None:
        """Answer the next ``n`` requests under ``path_prefix`` with ``status``.

        A proxy-style HTML page when ``err_code`` is None, else an obshell envelope
        with that errCode (and ``message`` or a default text).
        """
        self._faults.fail_next(n, status, err_code, path_prefix, message)

    def truncate_next(self, n: int = 1) -> None:
        """The next ``n`` answers announce a longer Content-Length than sent, then close."""
        self._faults.truncate_next(n)

    @property
    def drop_reply_after_create(self) -> bool:
        """If True, the next upgrade POST creates its DAG, then the connection closes unanswered."""
        return self._faults.drop_reply_after_create

    @drop_reply_after_create.setter
    def drop_reply_after_create(self, value: bool) -> None:
        self._faults.drop_reply_after_create = value

    def clear_faults(self) -> None:
        """Cancel every pending injected fault."""
        self._faults.clear()
