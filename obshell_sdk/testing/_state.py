"""The explicit state of a fake agent, shared by the request pipeline and the handlers.

:class:`AgentState` holds everything a request can read or change: the agent's configuration
(identity, passwords, version), its RSA key, clock, DAGs, injected faults, uploaded packages
and the request log. The pipeline (``_app.py``) and the handlers (``_handlers.py``) receive
it; they never see the :class:`~obshell_sdk.testing.FakeAgent` facade, which owns this object
plus the lifecycle (listener, ticker, helper threads).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Optional

from ._auth import AuthConfig, auth_profile
from ._crypto import ServerKey
from ._dagmodel import FakeDag
from ._dags import DagStore
from ._faults import FaultPlan
from ._packages import PackageStore, download_logs
from ._params import version_key
from ._record import RecordedRequest, RequestLog
from ._templates import EDITIONS

_log = logging.getLogger("obshell_sdk.testing")

#: The first obshell version with each route a version-dependent knob serves: ``POST
#: /api/v1/package`` (``newPkgUploadHandler``, obshell 80886dd) and ``GET /api/v1/task/dags/ob``
#: (``GetAllClusterDags``, 0e32aa5), both made while obshell's version was 4.2.6.0.
ROUTES_SINCE = {"new_upload": (4, 2, 6), "dag_history": (4, 2, 6)}

#: Called with a DAG that reached its ``restart_at_stage`` (the lifecycle restarts the agent).
RestartHook = Callable[[FakeDag], None]


class AgentState:
    """What one fake agent is and knows; plain attributes, safe to read from any thread.

    Configuration attributes (``password``, ``agent_password``, ``identity``, ``version``,
    ``release``, ``supported_auth``, ``legacy_v1``, ``root_password_known``, ``host``,
    ``port``, ``adopt_target_version``, ``restart_seconds``, ``restart_new_key_bits``) have
    the meaning of the :class:`~obshell_sdk.testing.FakeAgent` keyword arguments of the same
    name, and so do the OceanBase side's ``ob_version``, ``edition``, ``zones``, ``python_ok``,
    ``new_upload``, ``require_packages`` and ``strict_upload`` (``architecture`` is
    ``/info.architecture``). ``key``, ``dags``, ``faults``, ``request_log``, ``packages`` (the
    uploads) and ``inventory`` (the stored package rows) are the live collections.
    ``dag_history`` serves ``GET /api/v1/task/dags/ob``, ``numeric_errors`` sends errors as
    obshell 4.2.3 to 4.3.0 did (attributes of FakeAgent only). ``new_upload`` and
    ``dag_history`` are what the agent serves now: ``new_upload_pin`` and ``dag_history_pin``
    when set, else whether the version it runs has the route (:data:`ROUTES_SINCE`).
    """

    def __init__(
        self, *, password: str, agent_password: Optional[str], identity: str, version: str,
        release: str, supported_auth: Optional[Sequence[str]], legacy_v1: bool,
        root_password_known: bool, host: str, port: int, adopt_target_version: bool,
        restart_seconds: float, restart_new_key_bits: Optional[int], key: ServerKey,
        clock_offset: float,
    ) -> None:
        self.password = password
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
        self.adopt_target_version = adopt_target_version
        self.restart_seconds = restart_seconds
        self.restart_new_key_bits = restart_new_key_bits
        self.pid = os.getpid()
        self.key = key
        self.clock_offset = clock_offset
        self.faults = FaultPlan()
        self.dags = DagStore(self.now)
        self.request_log = RequestLog()
        self.packages: list[tuple[str, bytes]] = []
        self.started_at = self.now()
        self.restart_hook: Optional[RestartHook] = None
        self.ob_version = ""
        self.edition = "community"
        self.zones = 3
        self.python_ok = True
        self.new_upload_pin: Optional[bool] = None
        self.dag_history_pin: Optional[bool] = None
        self.numeric_errors = False
        self.require_packages = False
        self.strict_upload = False
        self.architecture = "x86_64"
        self.inventory = PackageStore()
        self.dags.download_check = self._download_check
        self.dags.sends_maintenance = lambda: version_key(self.version)[0][:3] >= (4, 3, 0)

    def configure_ob(self, *, ob_version: str, edition: str, zones: int, python_ok: bool,
                     new_upload: Optional[bool], require_packages: bool,
                     strict_upload: bool) -> None:
        """Set the OceanBase side (raises ``ValueError`` for an unknown edition or no zone)."""
        if edition not in EDITIONS:
            raise ValueError(f"edition must be one of {', '.join(EDITIONS)}, not {edition!r}")
        if zones < 1:
            raise ValueError(f"zones must be at least 1, not {zones}")
        self.ob_version, self.edition, self.zones = ob_version, edition, zones
        self.python_ok, self.new_upload_pin = python_ok, new_upload
        self.require_packages, self.strict_upload = require_packages, strict_upload

    @property
    def new_upload(self) -> bool:
        """Whether ``POST /api/v1/package`` is served now (``new_upload_pin``, or version)."""
        return self._serves("new_upload", self.new_upload_pin)

    @property
    def dag_history(self) -> bool:
        """Whether ``GET /api/v1/task/dags/ob`` is served now (``dag_history_pin``, or version)."""
        return self._serves("dag_history", self.dag_history_pin)

    def _serves(self, knob: str, pin: Optional[bool]) -> bool:
        """``pin`` if set, else whether the version the agent runs has the knob's route."""
        if pin is not None:
            return pin
        return version_key(self.version)[0][:3] >= ROUTES_SINCE[knob]

    def _download_check(self, dag: FakeDag) -> tuple[list[str], Optional[str]]:
        """The download node's lookup (nothing to look up unless ``require_packages``)."""
        if not self.require_packages:
            return [], None
        return download_logs(dag, self.inventory, self.architecture)

    def now(self) -> float:
        """The server clock (Unix seconds, float): ``time.time() + clock_offset``."""
        return time.time() + self.clock_offset

    def record(self, rec: RecordedRequest) -> None:
        """Add one request to the log."""
        self.request_log.append(rec)

    def auth_config(self) -> AuthConfig:
        """What the password rules need to know, as of now."""
        return AuthConfig(self.identity, self.password, self.root_password_known,
                          self.agent_password)

    def sync_version(self) -> str:
        """Take on what the upgrade DAGs that ended SUCCEED/RUN installed; returns the version.

        A real agent runs the new binary once its upgrade DAG succeeded, and reports the new
        OceanBase build once an OB upgrade succeeded; so does this one (unless
        ``adopt_target_version`` is false, as the recorded vectors' agent behaved).
        """
        if not self.adopt_target_version:
            return self.version
        with self.dags.lock:  # each DAG applied once, whichever request thread sees it first
            done = [d for d in self.dags.all() if d.maintenance_type == 2 and d.target_version
                    and d.state == "SUCCEED" and d.operator == "RUN" and not d.version_applied]
            for dag in done:
                dag.version_applied = True
                if dag.kind == "ob-upgrade":
                    self.ob_version = f"{dag.target_version}-{dag.target_release}"
                else:
                    self.run_obshell(dag.target_version, dag.target_release)
            return self.version

    def run_obshell(self, version: str, release: str) -> None:
        """Run obshell ``version`` (build ``release``) from now on: restarted by an upgrade.

        Its auth comes with the new binary: ``legacy_v1`` and ``supported_auth`` become what
        obshell ``version`` takes and reports, if they were what the old version's did. A
        pair that no obshell of the old version has is a test's deliberate setting: kept.
        """
        with self.dags.lock:
            now = (self.legacy_v1,
                   None if self.supported_auth is None else tuple(self.supported_auth))
            if now == auth_profile(self.version):
                self.legacy_v1, self.supported_auth = auth_profile(version)
            self.version, self.release = version, release

    @property
    def version_release_display(self) -> str:
        """``/info.version``: ``VERSION-RELEASE`` (just ``VERSION`` when release is empty)."""
        self.sync_version()
        return f"{self.version}-{self.release}" if self.release else self.version

    @property
    def restart_pending(self) -> bool:
        """True when a DAG reached its restart stage and the restart has not been started."""
        with self.dags.lock:
            return bool(self.dags.pending_restarts)

    def drain_restarts(self) -> None:
        """Hand every pending restart to :attr:`restart_hook` (dropped when there is none)."""
        with self.dags.lock:
            pending, self.dags.pending_restarts = self.dags.pending_restarts, []
        hook = self.restart_hook
        for dag in pending:
            _log.info("fake agent restarting at stage %s of DAG %s", dag.stage, dag.generic_id)
            if hook is not None:
                hook(dag)
            else:
                self.restart_done(dag)

    def restart_done(self, dag: FakeDag) -> None:
        """The agent went down for ``dag``'s restart: its restart stage may end now."""
        with self.dags.lock:
            dag.restart_held = False
