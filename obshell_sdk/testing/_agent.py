"""The :class:`FakeAgent` facade: configuration, lifecycle, DAG helpers and fault controls.

``FakeAgent`` owns an :class:`~._state.AgentState` (what the request pipeline and the handlers
see) and an :class:`~._lifecycle.AgentRunner` (listener, ticker, helper threads); every public
name here delegates to one of them.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Optional

from ._app import handle
from ._controls import AgentControls, _RouteAttr, _StateAttr
from ._crypto import ServerKey
from ._dagmodel import FakeDag
from ._dags import check_faults
from ._lifecycle import AgentRunner
from ._state import AgentState
from ._templates import ob_spec, zone_names


class FakeAgent(AgentControls):
    """An in-process HTTP server that answers like an obshell agent.

    Use it as a context manager (``with FakeAgent() as agent: ...``) or call
    :meth:`start`/:meth:`stop`. See the package docstring for an example. ``tls`` (a server
    ``ssl.SSLContext``) makes it serve HTTPS on the same port, as obshell does when it finds a
    certificate; set ``verify_mode = ssl.CERT_REQUIRED`` on it for mutual TLS.

    DAG pace: poll-driven by default (each ``GET /api/v1/task/dag/{id}`` advances
    ``stages_per_poll`` steps); time-driven with ``stage_seconds`` (every stage lasts that
    long) or ``stage_durations`` (stage 1 lasts ``stage_durations[0]`` seconds, stage 2
    ``stage_durations[1]``, ...; the last value repeats; overrides ``stage_seconds``).
    ``scheduler_period`` moves time-driven DAGs only in passes of a task scheduler that many
    seconds apart, as obshell's scheduler moves DAGs every second (see
    :attr:`scheduler_period`).

    The OceanBase side, as obshell's OB upgrade handlers answer: ``ob_version`` (the running build,
    ``VERSION-BUILD``), ``edition``, ``zones``, ``python_ok``, ``new_upload`` (serve
    ``POST /api/v1/package``; None, the default: from obshell 4.2.6 on, as the version the agent
    runs), ``require_packages`` (packages must be uploaded before an OB upgrade, and the
    ``Download all required packages`` node of every upgrade DAG fails until they are) and
    ``strict_upload`` (the old upload refuses what is not an RPM). Build real packages with
    :func:`~obshell_sdk.testing.build_rpm`.

    Auth across an upgrade: ``legacy_v1`` and ``supported_auth`` describe the obshell the agent
    was started as. Once it runs the upgrade's version (restarted at ``restart_at_stage``, or
    the upgrade succeeded: :meth:`sync_version`) they follow that version, as obshell's new
    binary does: ``X-OCS-Auth`` alone up to 4.2.2, ``X-OCS-Header`` from 4.2.3; no
    ``supportedAuth`` in ``/info`` before 4.2.4, ``["v2"]`` from 4.2.4. That holds when they
    were what obshell of the old version has (the defaults; ``legacy_v1=True,
    supported_auth=None`` on 4.2.2); a pair no obshell of that version has (say
    ``supported_auth=("v1",)``, or ``legacy_v1=True`` on 4.3.0) is the test's own and is kept.
    Assigning an attribute (``version`` too) changes that attribute only, except what follows
    the version it runs: a DAG made while the agent runs a version before 4.3.0 has no
    ``maintenance_type``/``maintenance_key`` in its JSON, and the routes obshell added in 4.2.6,
    ``POST /api/v1/package`` and ``GET /api/v1/task/dags/ob``, answer 404 before it (unless
    ``new_upload`` or ``dag_history`` pins them), through an upgrade too.
    """

    password: _StateAttr[str] = _StateAttr("The root@sys password the agent accepts.")
    agent_password: _StateAttr[Optional[str]] = _StateAttr("The agent password (None: not set).")
    identity: _StateAttr[str] = _StateAttr(
        "``/info.identity``, e.g. ``CLUSTER AGENT`` or ``SINGLE``.")
    version: _StateAttr[str] = _StateAttr("The obshell version (without release) the agent runs.")
    release: _StateAttr[str] = _StateAttr("The release suffix of ``/info.version`` (may be empty).")
    supported_auth: _StateAttr[Optional[tuple[str, ...]]] = _StateAttr(
        "``/info.supportedAuth`` (None: the key is absent, as before 4.2.4); an upgrade may "
        "change it (see the class docstring).")
    legacy_v1: _StateAttr[bool] = _StateAttr(
        "Speak only 4.2.2's ``X-OCS-Auth`` dialect; an upgrade past 4.2.2 ends it (see the "
        "class docstring).")
    root_password_known: _StateAttr[bool] = _StateAttr(
        "Whether the root@sys password is initialised.")
    host: _StateAttr[str] = _StateAttr("The address the agent listens on.")
    port: _StateAttr[int] = _StateAttr("The port (the real one once started with ``port=0``).")
    pid: _StateAttr[int] = _StateAttr("``/info.pid``.")
    adopt_target_version: _StateAttr[bool] = _StateAttr(
        "Take on the target version once an upgrade DAG succeeded (see :meth:`sync_version`).")
    restart_seconds: _StateAttr[float] = _StateAttr(
        "How long a ``restart_at_stage`` restart lasts.")
    restart_new_key_bits: _StateAttr[Optional[int]] = _StateAttr(
        "Key size after a ``restart_at_stage`` restart (None: keep the key).")
    packages: _StateAttr[list[tuple[str, bytes]]] = _StateAttr(
        "Uploaded packages as ``(filename, content)``, oldest first.")
    started_at: _StateAttr[float] = _StateAttr("Server-clock time of the last (re)start.")
    ob_version: _StateAttr[str] = _StateAttr(
        "The OceanBase build the cluster runs, ``VERSION-BUILD`` (``/info.obVersion``); \"\" "
        "is unknown, and then every OB upgrade target counts as newer.")
    edition: _StateAttr[str] = _StateAttr(
        "``community``, ``business`` or ``standalone``: package names and OB DAG templates.")
    zones: _StateAttr[int] = _StateAttr(
        "Zones of the cluster (``zone1`` .. ``zoneN``); a ROLLING upgrade needs 3.")
    python_ok: _StateAttr[bool] = _StateAttr(
        "False: ``mysql.connector`` is missing, so the OB upgrade, its check and the env "
        "check answer 500 ``Environment.WithoutModule``.")
    new_upload: _RouteAttr = _RouteAttr(
        "Whether ``POST /api/v1/package`` is served (404 there when not). Assign True or False "
        "to pin it, None (the default) to follow the version the agent runs: served from "
        "obshell 4.2.6 on, an upgrade's version too.")
    dag_history: _RouteAttr = _RouteAttr(
        "Whether ``GET /api/v1/task/dags/ob``, every cluster DAG, finished ones too, is served "
        "(404 there when not). Assign True or False to pin it, None (the default) to follow "
        "the version the agent runs: served from obshell 4.2.6 on, an upgrade's version too.")
    numeric_errors: _StateAttr[bool] = _StateAttr(
        "Send errors as obshell 4.2.3 to 4.3.0 did: a numeric ``code``, no ``errCode``; every "
        "auth refusal (a wrong password, a missing header...) a 401 with code 10008, a route "
        "it lacks a 400 with code 1000.")
    require_packages: _StateAttr[bool] = _StateAttr(
        "Packages matter (False by default, so DAGs run without uploads): an OB upgrade or "
        "check refuses a target whose packages were not uploaded, and every upgrade DAG's "
        "``Download all required packages`` node fails with ``record not found`` until they "
        "are (RETRY then succeeds).")
    strict_upload: _StateAttr[bool] = _StateAttr(
        "The old upload refuses what is not an RPM (False: it stores such a file under its "
        "file name, as this fake always did; a real RPM is checked either way).")
    architecture: _StateAttr[str] = _StateAttr(
        "``/info.architecture``, the one architecture of the cluster.")

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
        adopt_target_version: bool = True, stage_durations: Optional[Sequence[float]] = None,
        ob_version: str = "", edition: str = "community", zones: int = 3,
        python_ok: bool = True, new_upload: Optional[bool] = None, require_packages: bool = False,
        strict_upload: bool = False, scheduler_period: Optional[float] = None,
    ) -> None:
        self._state = AgentState(
            password=password, agent_password=agent_password, identity=identity,
            version=version, release=release, supported_auth=supported_auth,
            legacy_v1=legacy_v1, root_password_known=root_password_known, host=host, port=port,
            adopt_target_version=adopt_target_version, restart_seconds=restart_seconds,
            restart_new_key_bits=restart_new_key_bits, clock_offset=clock_offset,
            key=ServerKey(bits=key_bits, private_der=private_key),
        )
        self._state.configure_ob(ob_version=ob_version, edition=edition, zones=zones,
                                 python_ok=python_ok, new_upload=new_upload,
                                 require_packages=require_packages, strict_upload=strict_upload)
        self.set_dag_progression(stages_per_poll=stages_per_poll, stage_seconds=stage_seconds,
                                 stage_durations=stage_durations)
        self.scheduler_period = scheduler_period
        self.set_dag_faults(fail_stage=fail_stage, fail_times=fail_times,
                            fail_message=fail_message, restart_at_stage=restart_at_stage)
        self._runner = AgentRunner(self._state, functools.partial(handle, self._state), tls)
        self._state.restart_hook = self._runner.restart

    # -- lifecycle ------------------------------------------------------
    def start(self) -> FakeAgent:
        """Bind and serve in background threads; returns ``self``."""
        self._runner.start()
        return self

    def stop(self) -> None:
        """Stop serving: close the socket and every connection (hung ones too), join all threads."""
        self._runner.stop()

    def __enter__(self) -> FakeAgent:
        return self.start()

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.stop()

    @property
    def tls(self) -> Optional[ssl.SSLContext]:
        """The server TLS context (None: plain HTTP); takes effect at the next (re)start."""
        return self._runner.tls

    @tls.setter
    def tls(self, value: Optional[ssl.SSLContext]) -> None:
        self._runner.tls = value

    # -- properties -----------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (``https`` with ``tls``; IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls is not None else 'http'}://{host}:{self.port}"

    @property
    def public_key_b64(self) -> str:
        """Current public key as ``/api/v1/secret`` returns it (base64 PKCS#1 DER)."""
        return self._state.key.public_key_b64

    @property
    def private_key_der(self) -> bytes:
        """Current private key (PKCS#1 DER)."""
        return self._state.key.private_der

    def sync_version(self) -> str:
        """Take on the version of the last upgrade DAG that ended SUCCEED/RUN; return it.

        A real agent runs the new binary once its upgrade DAG succeeded; so does this one,
        whether or not it was told to restart at a stage (unless ``adopt_target_version`` is
        false, as the recorded vectors' agent behaved), with the new version's auth dialect
        (see the class docstring). Every request the agent answers calls this first.
        """
        return self._state.sync_version()

    @property
    def version_release_display(self) -> str:
        """``/info.version``: ``VERSION-RELEASE`` (just ``VERSION`` when release is empty)."""
        return self._state.version_release_display

    @property
    def clock_offset(self) -> float:
        """Seconds added to ``time.time()`` to get the server clock."""
        return self._state.clock_offset

    def now(self) -> float:
        """The server clock (Unix seconds, float)."""
        return self._state.now()

    def set_clock_offset(self, seconds: float) -> None:
        """Move the server clock to ``time.time() + seconds``."""
        self._state.clock_offset = seconds

    def rotate_key(self, bits: int = 1024) -> None:
        """Replace the RSA key pair; headers made for the old key fail with DecryptFailed."""
        self._state.key.replace(bits=bits)

    # -- DAG control ----------------------------------------------------
    @property
    def dags(self) -> Mapping[str, FakeDag]:
        """Live DAG objects by generic id (read them; drive them with the methods below)."""
        return {d.generic_id: d for d in self._state.dags.all()}

    def dag(self, dag_id: str) -> FakeDag:
        """The DAG with generic id ``dag_id`` (``KeyError`` if unknown)."""
        found = self.dags.get(dag_id)
        if found is None:
            raise KeyError(dag_id)
        return found

    def create_upgrade_dag(self, version: str = "4.3.1.0", release: str = "1.el7", *,
                           check: bool = False) -> str:
        """Create an upgrade (or check) DAG without HTTP; returns its generic id."""
        return self._state.dags.create(version, release, check=check).generic_id

    def create_ob_upgrade_dag(self, version: str = "4.3.5.1", release: str = "1.el7", *,
                              mode: str = "ROLLING", freeze_server: bool = False,
                              check: bool = False) -> str:
        """Create an OB upgrade (``check``: upgrade-check) DAG without HTTP or checks.

        Its nodes follow this agent's ``edition`` and ``zones``; returns its generic id.
        """
        a = self._state
        spec = ob_spec(version, release, edition=a.edition,
                       mode=None if check else mode.upper(), zones=zone_names(a.zones),
                       freeze=freeze_server)
        return a.dags.create_from(spec).generic_id

    def set_dag_faults(self, *, fail_stage: Optional[int] = None, fail_times: int = 1,
                       fail_message: Optional[str] = None,
                       restart_at_stage: Optional[int] = None) -> None:
        """Set the faults of DAGs created from now on (as the keywords of the same name).

        ``fail_stage`` fails that stage ``fail_times`` times, ``restart_at_stage`` restarts the
        agent when a maintenance DAG starts that stage; ``None`` clears either one.
        ``fail_message`` ``None`` keeps the current text.
        """
        check_faults(fail_stage, fail_times, restart_at_stage)
        store = self._state.dags
        store.fail_stage, store.fail_times = fail_stage, fail_times
        if fail_message is not None:
            store.fail_message = fail_message
        store.restart_at_stage = restart_at_stage

    @property
    def inventory(self) -> list[dict[str, Any]]:
        """The stored packages as ``GET /api/v1/upgrade/package/info`` lists them."""
        return [row.bo_json() for row in self._state.inventory.listing()]

    def advance_dag(self, dag_id: str, steps: int = 1) -> None:
        """Advance a DAG by ``steps`` steps (same as that many polls with 1 stage per poll)."""
        dag = self.dag(dag_id)
        for _ in range(steps):
            self._state.dags.step(dag)
        self._state.drain_restarts()

    def set_dag_stage(self, dag_id: str, stage: int) -> None:
        """Put a DAG in RUNNING at ``stage`` (earlier nodes SUCCEED, later PENDING)."""
        self._state.dags.set_stage(self.dag(dag_id), stage)
        self._state.drain_restarts()

    def finish_dag(self, dag_id: str) -> None:
        """Run a READY or RUNNING DAG to SUCCEED now (skips any injected failure).

        A finished DAG, a FAILED one too, is left as it is: retry it first (``RETRY``).
        """
        self._state.dags.finish(self.dag(dag_id))
        self._state.drain_restarts()

    def fail_dag(self, dag_id: str, message: Optional[str] = None) -> None:
        """Fail the DAG's current node now (sub-task gets an ERROR log line)."""
        self._state.dags.fail(self.dag(dag_id), message)

    def set_dag_progression(self, *, stages_per_poll: Optional[int] = None,
                            stage_seconds: Optional[float] = None,
                            dag_id: Optional[str] = None,
                            stage_durations: Optional[Sequence[float]] = None) -> None:
        """Change how DAGs progress: defaults for new DAGs, or one DAG if ``dag_id``.

        ``stages_per_poll=0`` freezes poll-driven DAGs. Passing ``stage_seconds`` or
        ``stage_durations`` switches to time-driven progression from now on (a DAG given one
        runs its current stage for that long from now); ``stage_durations`` overrides
        ``stage_seconds``, and ``stage_seconds`` alone drops earlier ``stage_durations``.
        """
        target = self.dag(dag_id) if dag_id is not None else None
        self._state.dags.set_progression(target, stages_per_poll=stages_per_poll,
                                         stage_seconds=stage_seconds,
                                         stage_durations=stage_durations)

    @property
    def scheduler_period(self) -> Optional[float]:
        """Seconds between the passes of the task scheduler (None: no scheduler).

        With a period, time-driven DAGs move only in passes that far apart, and every start
        and end a pass writes carries the pass's time, as under obshell's scheduler (its
        period is 1 s; it also needs two passes or more per stage, where this fake may end
        several stages in one pass). None (the default): a stage ends the moment its time
        is up.
        """
        return self._state.dags.scheduler_period

    @scheduler_period.setter
    def scheduler_period(self, value: Optional[float]) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0.05 <= value <= 60):
            raise ValueError("scheduler_period must be None or a number of seconds from 0.05 to "
                             f"60, got {value!r}")
        self._state.dags.scheduler_period = None if value is None else float(value)

    def __repr__(self) -> str:
        return f"FakeAgent({self.base_url}, identity={self.identity!r}, version={self.version!r})"
