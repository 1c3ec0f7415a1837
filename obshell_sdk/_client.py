"""ObshellClient: one agent, one connection pool, signed calls, typed replies."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, MutableMapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, Union

import requests
from requests.adapters import HTTPAdapter

from ._auth import PasswordAuth, SignedRequest
from ._exceptions import (
    ConnectionLostError,
    DecodeError,
    InvalidArgumentError,
    ObshellError,
    TaskNotFoundError,
)
from ._models import DagDetail, NodeDetail, Operator
from ._params import UpgradeAgentRequest
from ._polling import PollPolicy
from ._task import DagTask, ProgressCallback
from ._transport import Cert, Timeout, Transport
from ._validate import (
    check_dag_id,
    check_host,
    check_operator,
    check_port,
    check_seconds,
    check_timeout,
    check_tls,
)
from ._wire import decode_contents, p_str

if TYPE_CHECKING:  # pragma: no cover - loaded on first use, to keep import time low
    from ._upload import UpgradePackageInfo
    from ._workflow import UpgradeResult

__all__ = ["DEFAULT_PORT", "DEFAULT_TIMEOUT", "ObshellClient"]

log = logging.getLogger("obshell_sdk")

DEFAULT_PORT = 2886
#: (connect, read) seconds for every call unless the client or the call says otherwise.
DEFAULT_TIMEOUT = (5.0, 60.0)



ENV_TRUE = ("1", "true", "yes", "on")


def settings_from_env(
    environ: Optional[Mapping[str, str]] = None,
) -> tuple[str, int, bool, Union[bool, str]]:
    """Host, port, https and verify from ``OBSHELL_*`` variables (no passwords are read)."""
    env = os.environ if environ is None else environ
    host = env.get("OBSHELL_HOST", "")
    if not host:
        raise InvalidArgumentError("OBSHELL_HOST", "set it to the agent's host name or IP")
    port_text = env.get("OBSHELL_PORT", str(DEFAULT_PORT)).strip()
    if not port_text.isdigit():
        raise InvalidArgumentError("OBSHELL_PORT", f"{port_text!r} is not a port number")
    https = env.get("OBSHELL_HTTPS", "").strip().lower() in ENV_TRUE
    return host, int(port_text), https, env.get("OBSHELL_CA_BUNDLE") or True


def auth_from_env(environ: Optional[Mapping[str, str]] = None) -> Optional[PasswordAuth]:
    """``PasswordAuth`` from ``OBSHELL_PASSWORD`` / ``OBSHELL_AGENT_PASSWORD``, or None."""
    env = os.environ if environ is None else environ
    if env.get("OBSHELL_PASSWORD") is None and env.get("OBSHELL_AGENT_PASSWORD") is None:
        return None
    return PasswordAuth(env.get("OBSHELL_PASSWORD") or "", env.get("OBSHELL_AGENT_PASSWORD"))


class ObshellClient(Transport):
    """A client of one obshell agent (``host:port``, 2886 by default).

    ``auth`` signs the calls that need it (a :class:`PasswordAuth`; None allows only the
    unauthenticated ones such as :meth:`info`). ``timeout`` is seconds, or a
    ``(connect, read)`` pair, for every call. ``session`` lets you bring your own
    ``requests.Session`` (proxies, adapters, its own ``verify``); the client never closes it.
    ``verify`` is True by default (or the given session's setting): a CA bundle path, or
    False to skip verification.
    ``accept_language`` (one tag, e.g. ``"zh-CN"``) asks the agent for localised error
    messages. Use the client as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        auth: Optional[PasswordAuth],
        https: bool = False,
        verify: Optional[Union[bool, str]] = None,
        cert: Optional[Cert] = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        session: Optional[requests.Session] = None,
        poll_policy: Optional[PollPolicy] = None,
        accept_language: Optional[str] = None,
    ) -> None:
        url_host = check_host(host)
        self.port = check_port(port)
        if auth is not None and not isinstance(auth, PasswordAuth):
            raise InvalidArgumentError("auth", "must be a PasswordAuth or None")
        if verify is None:  # the default: verify, or as a given session says
            verify = session.verify if isinstance(session, requests.Session) else True
        check_tls(https, verify, cert)
        self.timeout = check_timeout(timeout, "timeout")
        if session is not None and not isinstance(session, requests.Session):
            raise InvalidArgumentError("session", "must be a requests.Session")
        if poll_policy is not None and not isinstance(poll_policy, PollPolicy):
            raise InvalidArgumentError("poll_policy", "must be a PollPolicy")
        self.host = url_host.strip("[]")
        self.auth = auth
        self.https = https
        self.poll_policy = poll_policy or PollPolicy()
        self.accept_language = accept_language
        self.agent = f"{url_host}:{self.port}"
        self.base_url = f"{'https' if https else 'http'}://{url_host}:{self.port}"
        self._owns_session = session is None
        self._session = session if session is not None else self._new_session()
        self._verify: Union[bool, str] = True if verify is None else verify
        self._cert = cert
        self._proxies: Optional[MutableMapping[str, str]] = None
        if self._owns_session:
            # Read proxy and CA settings from the environment once, not on every call.
            env = self._session.merge_environment_settings(self.base_url, {}, None, verify, cert)
            self._proxies = env["proxies"]
            self._verify = self._verify if env["verify"] is None else env["verify"]
            self._session.trust_env = False
        self._uris = {}
        self._closed = False

    @classmethod
    def from_env(
        cls, environ: Optional[Mapping[str, str]] = None, **overrides: Any
    ) -> ObshellClient:
        """A client configured from ``OBSHELL_*`` environment variables.

        ``OBSHELL_HOST`` (required), ``OBSHELL_PORT``, ``OBSHELL_PASSWORD``,
        ``OBSHELL_AGENT_PASSWORD``, ``OBSHELL_HTTPS`` (1/true/yes), ``OBSHELL_CA_BUNDLE``.
        Keyword ``overrides`` are passed on to the constructor and win over the environment.
        """
        host, port, https, verify = settings_from_env(environ)
        options: dict[str, Any] = {"https": https, "verify": verify}
        options.update(overrides)
        if "auth" not in options:
            options["auth"] = auth_from_env(environ)
        environ = None  # keep the passwords out of this frame's locals from here on
        return cls(host, port, **options)

    @staticmethod
    def _new_session() -> requests.Session:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=64, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def __repr__(self) -> str:
        url = getattr(self, "base_url", "(not set up)")
        return f"ObshellClient({url!r}, auth={getattr(self, 'auth', None)!r})"

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool if the client made it (a given session is left open)."""
        if not self._closed:
            self._closed = True
            if self._owns_session:
                self._session.close()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`; a closed client refuses calls."""
        return self._closed

    def __enter__(self) -> ObshellClient:
        if self._closed:
            raise ObshellError("this ObshellClient is closed; make a new one")
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    # -- the API ------------------------------------------------------------------------

    def upgrade_agent(
        self, version: str, release: str, upgrade_dir: Optional[str] = None
    ) -> DagTask:
        """Start upgrading obshell on every agent of the cluster (``POST /api/v1/agent/upgrade``).

        ``version`` like ``4.2.1.1``, ``release`` like ``101000062023110109.el7``; the package
        must have been uploaded to the cluster before. Returns a :class:`DagTask` built from the
        reply; follow it with ``task.result()``. Bad arguments raise
        :class:`InvalidArgumentError` before anything is sent.
        """
        request = UpgradeAgentRequest(version, release, upgrade_dir)
        return self._create_dag("/api/v1/agent/upgrade", request)

    def run_agent_upgrade(
        self,
        version: str,
        release: str,
        *,
        package: Union[str, os.PathLike[str], None] = None,
        upgrade_dir: Optional[str] = None,
        check: bool = True,
        timeout: float = 3600.0,
        on_progress: Optional[ProgressCallback] = None,
        progress: Optional[bool] = None,
    ) -> UpgradeResult:
        """Upgrade in one call: upload, pre-check, upgrade, follow, confirm the new version.

        ``package`` (an RPM path) is uploaded first when given; the pre-check DAG runs when
        ``check`` is true; the new version is confirmed through ``/api/v1/info``. Returns an
        :class:`UpgradeResult`; raises ``TaskFailedError`` and friends when a step fails, or
        ``UpgradeNotConfirmedError`` when the agent reports another version after.
        """
        from ._workflow import run_agent_upgrade

        return run_agent_upgrade(
            self, version, release, package=package, upgrade_dir=upgrade_dir, check=check,
            timeout=timeout, on_progress=on_progress, progress=progress,
        )

    def check_agent_upgrade(
        self, version: str, release: str, upgrade_dir: Optional[str] = None
    ) -> DagTask:
        """Start the upgrade pre-check (``POST /api/v1/agent/upgrade/check``), a 5-stage DAG."""
        request = UpgradeAgentRequest(version, release, upgrade_dir)
        return self._create_dag("/api/v1/agent/upgrade/check", request)

    def _create_dag(self, path: str, request: UpgradeAgentRequest) -> DagTask:
        sent_at = time.time()
        try:
            envelope = self.call("POST", path, body=request.to_json())
        except ConnectionLostError as exc:
            # Never re-send: ask whether the agent created the task before the reply was lost.
            from ._lookup import find_created_dag

            detail = find_created_dag(self, request.dag_name, sent_at, exc, path=path)
        else:
            try:
                detail = DagDetail.from_json(envelope.data)
            except DecodeError:
                # The task exists; keep its id even if the rest of the reply is unreadable.
                dag_id = envelope.data.get("id") if isinstance(envelope.data, dict) else None
                if not isinstance(dag_id, str):
                    raise
                log.warning("agent %s: created task %s, but its reply did not parse; "
                            "following it by id", self.agent, dag_id)
                return DagTask(self, check_dag_id(dag_id), policy=self.poll_policy)
        log.info("agent %s: created task %s %r", self.agent, detail.id, detail.name)
        return DagTask(self, detail, policy=self.poll_policy)

    def upload_package(
        self, path: Union[str, os.PathLike[str]], *, lifetime: float = 600.0,
        timeout: Optional[Timeout] = None,
    ) -> UpgradePackageInfo:
        """Upload an obshell RPM to the cluster (``POST /api/v1/upgrade/package``).

        The file is streamed from disk and encrypted on the way (memory stays at one read
        buffer). ``lifetime`` is how long the signed header stays valid: older agents check it
        after the whole body arrived. A missing or unreadable file is refused before sending.
        """
        from ._upload import EncryptedMultipart, UpgradePackageInfo, check_package_path

        file = check_package_path(path)
        lifetime = check_seconds(lifetime, "lifetime")
        streams: list[EncryptedMultipart] = []

        def body(signed: Optional[SignedRequest]) -> tuple[Any, dict[str, str]]:
            key_iv = None if signed is None else signed.key_iv
            stream = EncryptedMultipart(file, key_iv)
            streams.append(stream)
            return stream, {"Content-Type": stream.content_type}

        if timeout is None:
            timeout = (self.timeout[0], max(self.timeout[1], 600.0))
        try:
            envelope = self.send_signed("POST", "/api/v1/upgrade/package", body=body,
                                        lifetime=lifetime, stream_key=True, timeout=timeout)
        finally:
            for stream in streams:
                stream.close()
        info = UpgradePackageInfo.from_json(envelope.data)
        log.info("agent %s: stored package %s %s-%s (%s)", self.agent, info.name, info.version,
                 info.release_distribution, info.architecture)
        return info

    def unfinished_dags(self) -> list[DagDetail]:
        """``GET /api/v1/task/dag/unfinish``: DAGs not finished (a FAILED upgrade stays here)."""
        from ._lookup import parse_contents

        envelope = self.call("GET", "/api/v1/task/dag/unfinish")
        return parse_contents(envelope.data)

    def last_maintenance_dag(self) -> Optional[DagDetail]:
        """``GET /api/v1/task/dag/maintain/ob``: the cluster's last maintenance DAG, or None."""
        try:
            envelope = self.call("GET", "/api/v1/task/dag/maintain/ob")
        except TaskNotFoundError:
            return None
        return DagDetail.from_json(envelope.data)

    def get_dag(
        self, dag_id: Union[str, int], show_details: bool = True, *,
        timeout: Optional[Timeout] = None,
    ) -> DagDetail:
        """``GET /api/v1/task/dag/{id}`` (GetDagDetails): the DAG with its nodes and sub-tasks."""
        dag_id = check_dag_id(dag_id)
        if not isinstance(show_details, bool):
            raise InvalidArgumentError("show_details", "must be True or False")
        query = "show_details=true" if show_details else "show_details=false"
        envelope = self.call("GET", f"/api/v1/task/dag/{dag_id}", query=query, timeout=timeout)
        return DagDetail.from_json(envelope.data)

    def operate_dag(self, dag_id: Union[str, int], operator: Union[Operator, str]) -> None:
        """``POST /api/v1/task/dag/{id}``: apply RETRY, ROLLBACK, CANCEL or PASS to a DAG.

        The agent answers as soon as the operator is recorded; follow the DAG to see its effect.
        Prefer the checked forms ``DagTask.retry()``, ``rollback()``, ``cancel()``, ``skip()``.
        """
        dag_id = check_dag_id(dag_id)
        op = check_operator(operator)
        self.call("POST", f"/api/v1/task/dag/{dag_id}", body={"operator": op.value})
        log.info("agent %s: %s applied to task %s", self.agent, op.value, dag_id)

    def get_node(self, node_id: Union[str, int]) -> NodeDetail:
        """``GET /api/v1/task/node/{id}``: one node (stage) of a DAG with its sub-tasks.

        Always asks with details: obshell fails (500) on ``show_details=false`` here.
        """
        node_id = check_dag_id(node_id, "node_id")
        envelope = self.call("GET", f"/api/v1/task/node/{node_id}", query="show_details=true")
        return NodeDetail.from_json(envelope.data)

    def sub_task_logs(self, sub_task_id: Union[str, int]) -> list[str]:
        """``GET /api/v1/task/sub_task/{id}/logs``: every log line of one sub-task."""
        sub_task_id = check_dag_id(sub_task_id, "sub_task_id")
        envelope = self.call("GET", f"/api/v1/task/sub_task/{sub_task_id}/logs")
        return [p_str(line, f"data.contents[{i}]")
                for i, line in enumerate(decode_contents(envelope.data))]

    def task(self, dag_id: Union[str, int]) -> DagTask:
        """A :class:`DagTask` for an existing DAG id, e.g. one started by another process.

        Nothing is fetched until you call ``refresh()``, ``wait()`` or ``result()``.
        """
        return DagTask(self, check_dag_id(dag_id), policy=self.poll_policy)

    # -- the plumbing -------------------------------------------------------------------
