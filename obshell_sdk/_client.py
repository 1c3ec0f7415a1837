"""ObshellClient: the API of one agent, a thin facade over its transport."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Callable, Optional, TypeVar, Union

import requests

from ._address import check_host, check_port
from ._auth import PasswordAuth
from ._config import DEFAULT_PORT, Environment, client_options_from_env
from ._creation import create_dag
from ._dag import DagDetail
from ._decode import at, p_time_text
from ._endpoints import R, TaskEndpoint
from ._exceptions import InvalidArgumentError
from ._models import AgentInfo
from ._package_calls import PackageCalls
from ._passes import AgentClock
from ._polling import PollPolicy
from ._request import Request
from ._task import DagTask
from ._task_calls import TaskCalls
from ._transport import MAX_REPLY_BYTES, Cert, Timeout, Transport, read_reply
from ._upgrade_calls import UpgradeCalls
from ._validate import check_call, check_dag_id, check_language, check_timeout, check_tls

__all__ = ["DEFAULT_PORT", "DEFAULT_TIMEOUT", "ObshellClient"]

log = logging.getLogger("obshell_sdk")

#: (connect, read) seconds for every call unless the client or the call says otherwise.
DEFAULT_TIMEOUT = (5.0, 60.0)
T = TypeVar("T")


class ObshellClient(TaskCalls, PackageCalls, UpgradeCalls):
    """A client of one obshell agent (``host:port``, 2886 by default).

    ``auth`` signs the calls that need it (a :class:`PasswordAuth`; None allows only the
    unauthenticated ones such as :meth:`info`). ``timeout`` is seconds, or a
    ``(connect, read)`` pair, for every call (and for each poll of a task). ``session`` lets
    you bring your own ``requests.Session`` (proxies, adapters, its own ``verify``); the
    client never closes it, and refuses one whose adapter may send a POST twice (its
    ``max_retries`` may retry only failed connections). ``verify`` is True by default (or
    the given session's setting): a CA bundle path, or False to skip verification.
    ``accept_language`` (one tag, e.g. ``"zh-CN"``) asks the agent for localised error
    messages. ``trust_env`` False ignores ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` and
    ``REQUESTS_CA_BUNDLE`` (read once, when the client is made). A reply larger than
    ``max_reply_bytes`` (16 MiB) is refused. Each call ends within the larger of its two
    timeouts, however slowly the agent answers, the requests its signing adds (``/info``,
    ``/secret``, ``/time``) included. Use
    the client as a context manager (one ``with`` block, whose end closes it), or call
    :meth:`close`; a closed client cannot be opened again.
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
        trust_env: bool = True,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        url_host = check_host(host)
        port = check_port(port)
        if auth is not None and not isinstance(auth, PasswordAuth):
            raise InvalidArgumentError("auth", "must be a PasswordAuth or None")
        if verify is None:  # the default: verify, or as a given session says
            verify = getattr(session, "verify", None)  # a bad session is refused below
            verify = True if verify is None else verify
        check_tls(https, verify, cert)
        if poll_policy is not None and not isinstance(poll_policy, PollPolicy):
            raise InvalidArgumentError("poll_policy", "must be a PollPolicy")

        self._host = url_host.strip("[]").replace("%25", "%", 1)
        self._port = port
        agent = f"{url_host.replace('%25', '%', 1)}:{port}"
        base_url = f"{'https' if https else 'http'}://{url_host}:{port}"
        self.timeout = timeout  # the setter checks it
        #: How tasks made by this client poll.
        self.poll_policy: PollPolicy = poll_policy or PollPolicy()
        self._transport = Transport(
            base_url, agent, auth=auth, session=session, verify=verify, cert=cert,
            accept_language=check_language(accept_language), trust_env=trust_env,
            max_reply_bytes=max_reply_bytes,
        )
        self._clock = AgentClock()
        self._new_upload: Optional[bool] = None  # which upload the agent has: asked once
        self._entered = False  # in a with block, whose end closes it

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None,
                 **overrides: Any) -> ObshellClient:
        """A client configured from ``OBSHELL_*`` environment variables.

        ``OBSHELL_HOST`` (required, unless ``host=``), ``OBSHELL_PORT``, ``OBSHELL_PASSWORD``,
        ``OBSHELL_AGENT_PASSWORD``, ``OBSHELL_HTTPS`` (1/true/yes/on or 0/false/no/off),
        ``OBSHELL_CA_BUNDLE``, ``OBSHELL_MIN_KEY_BITS`` (the auth's ``min_key_bits``). Keyword
        ``overrides`` are passed on to the constructor and win over the environment.
        """
        env = Environment(environ)  # only OBSHELL_*, behind a masked repr
        del environ  # keep the passwords out of this frame's locals from here on
        return cls(**client_options_from_env(env, overrides))

    def __repr__(self) -> str:
        transport = getattr(self, "_transport", None)  # None while __init__ is refusing input
        if transport is None:
            return "<ObshellClient (not set up)>"
        https = ", https=True" if self.base_url.startswith("https:") else ""
        closed = ", closed" if transport.closed else ""  # a state, not an argument
        return (f"ObshellClient(host={self.host!r}, port={self.port}{https}, "
                f"auth={transport.auth!r}{closed})")

    @property
    def host(self) -> str:
        """The agent's host (IPv6 without brackets); read-only, as are the three below."""
        return self._host

    @property
    def port(self) -> int:
        """The agent's port."""
        return self._port

    @property
    def agent(self) -> str:
        """``host:port`` as it appears in messages (IPv6 in brackets)."""
        return self._transport.agent

    @property
    def base_url(self) -> str:
        """``http(s)://host:port``."""
        return self._transport.base_url

    @property
    def auth(self) -> Optional[PasswordAuth]:
        """The :class:`PasswordAuth` that signs calls (None: unauthenticated calls only)."""
        return self._transport.auth

    @property
    def timeout(self) -> tuple[float, float]:
        """The ``(connect, read)`` timeout of every call; set seconds or such a pair."""
        return self._timeout

    @timeout.setter
    def timeout(self, value: Timeout) -> None:
        self._timeout = check_timeout(value, "timeout")

    @property
    def accept_language(self) -> Optional[str]:
        """The language tag sent as ``Accept-Language`` (None: the agent's default, English)."""
        return self._transport.accept_language

    @accept_language.setter
    def accept_language(self, value: Optional[str]) -> None:
        self._transport.accept_language = check_language(value)

    def close(self) -> None:
        """Close the connection pool if the client made it (a given session is left open).

        A call under way in another thread is not cut: it ends on its own, and the next one
        is refused. To end other threads' waits first, set the ``stop=`` event they wait with.
        """
        self._transport.close()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`; a closed client refuses calls and cannot be reopened."""
        return self._transport.closed

    def __enter__(self) -> ObshellClient:
        if self.closed:
            raise InvalidArgumentError("client", "this ObshellClient is closed; make a new one")
        if self._entered:  # the inner block's end would close it under the outer one
            raise InvalidArgumentError(
                "client", "this ObshellClient is already in a with block, whose end closes "
                "it; use it there without a second with")
        self._entered = True
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    def call(self, method: str, path: str, *, query: str = "", body: Optional[Any] = None,
             signed: bool = True, timeout: Optional[Timeout] = None) -> Any:
        """Send one call to any endpoint and return the ``data`` of its reply (None if none).

        ``path`` and ``query`` go on the wire as given (they are signed as sent); ``body`` is
        JSON-encoded (and encrypted under auth v2). Errors raise like every other method.
        """
        target = check_call(method, path, query, signed)
        try:
            data = None if body is None else json.dumps(
                body, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidArgumentError("body", f"cannot be sent as JSON ({exc})") from None
        return self._send(Request(method, target, data, signed=signed), timeout).data

    def _read(self, read: Callable[[Any], T], method: str, path: str, *, query: str = "",
              signed: bool = True, timeout: Optional[Timeout] = None) -> T:
        """:meth:`call`, its data read by ``read``: what does not fit names the call and agent."""
        data = self.call(method, path, query=query, signed=signed, timeout=timeout)
        return read_reply(read, data, method, path, self.agent)

    def _send(self, request: Request, timeout: Optional[Timeout] = None) -> Any:
        limit = self.timeout if timeout is None else check_timeout(timeout, "timeout")
        sent = time.time()
        envelope = self._transport.send(request, limit)
        self._clock.note(envelope.timestamp, sent, time.time())
        return envelope

    @property
    def agent_clock_offset(self) -> Optional[float]:
        """Seconds the agent's clock is ahead of this machine's (negative: behind).

        Read from the timestamps of this client's replies (the one with the shortest round
        trip); None before the first reply. Following a task uses it to poll just after
        the agent's scheduler runs (see :attr:`PollPolicy.scheduler_period`). A cluster
        task's times come from OceanBase's clock, not the agent's; the two normally agree.
        """
        return self._clock.offset

    def info(self) -> AgentInfo:
        """``GET /api/v1/info``: identity, version and auth abilities of the agent (no auth)."""
        return self._read(AgentInfo.from_json, "GET", "/api/v1/info", signed=False)

    def server_time(self, *, timeout: Optional[Timeout] = None) -> Optional[datetime]:
        """``GET /api/v1/time``: the agent's clock (no auth)."""
        return self._read(lambda data: at(p_time_text, data, "data"), "GET", "/api/v1/time",
                          signed=False, timeout=timeout)

    def _create_task(
        self, endpoint: TaskEndpoint[R], request: R,
        on_send: Optional[Callable[[Optional[frozenset[str]], float], None]] = None,
    ) -> DagTask:
        """Create a task through ``endpoint`` exactly once (see :mod:`._creation`)."""
        created = create_dag(lambda r: self._send(r).data, endpoint, request, self, on_send,
                             self._clock)
        if isinstance(created, DagDetail):
            log.info("agent %s: created task %s %r", self.agent, created.id, created.name)
        return DagTask(self, created, policy=self.poll_policy, exists=True,  # the agent made it
                       name=endpoint.dag_name(request))  # a reply of an id only names no name

    def task(self, dag_id: Union[str, int], *, exists: bool = False) -> DagTask:
        """A :class:`DagTask` for an existing DAG id, e.g. one started by another process.

        Nothing is fetched until you call ``refresh()``, ``wait()`` or ``result()``. Pass
        ``exists=True`` when you know the task exists (you started it and kept its id, say
        to resume after your script stopped): ``wait()`` and ``result()`` then wait out its
        agent answering "not found" while it restarts (``refresh()`` still raises it).
        """
        if not isinstance(exists, bool):
            raise InvalidArgumentError("exists", "must be True or False")
        return DagTask(self, check_dag_id(dag_id), policy=self.poll_policy, exists=exists)
