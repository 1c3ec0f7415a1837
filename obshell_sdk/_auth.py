"""Password authentication as a flow: what to ask the agent, then how to sign.

:meth:`PasswordAuth._auth_flow` is a generator like httpx's ``Auth.auth_flow``: it yields the
requests to send and receives their replies (or has the error thrown in). It yields
``GET /api/v1/info`` when it does not know the agent's dialect, ``GET /api/v1/secret`` when it
does not know its key, then the signed request. When the agent refuses that, it mends what it
can, once each: a header the agent could not decrypt (its key changed) costs a key fetch and a
re-signed request; an expired one a ``GET /api/v1/time`` and a re-signed request; a refusal
that says the agent changed (upgraded, agent password set) a fresh ``/info`` (and, when it says
no more than an agent before 4.3.1 does, a bare code 10008, which may as well mean an expired
header, a ``/api/v1/time`` too). Every one of these refusals happens before the agent does
anything, so nothing runs twice. The transport only drives the flow; all I/O stays there. What
the flow knows of each agent (dialect, key, clock offset) is kept in :mod:`._agent_state`.

Passwords live in a :class:`~._secrets.Secret` whose repr is masked and which refuses to be
pickled, so they cannot reach a log line, an exception or a traceback's repr.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Callable, NoReturn, Optional

from ._agent_state import AgentState, AuthFlow, measure_clock
from ._crypto import PublicKey, aes_encrypt, v1_token_json, v2_header_json
from ._exceptions import (
    AuthError,
    AuthExpiredError,
    ConnectError,
    DecodeError,
    DecryptFailedError,
    InvalidArgumentError,
    ObshellError,
    PasswordKindError,
    WeakKeyError,
)
from ._models import AgentInfo, AgentSecret
from ._request import Request
from ._secrets import wrap_secret
from ._validate import check_auth_options, check_random_bytes

__all__ = ["PasswordAuth", "bare_refusal"]

log = logging.getLogger("obshell_sdk")


class PasswordAuth:
    """Sign obshell requests with the root@sys password (or the agent password).

    ``password`` is the OceanBase root@sys password (``""`` for an agent without a cluster);
    ``agent_password`` is used instead when given and the agent has one set. ``lifetime`` is how
    many seconds a signed header stays valid (the agent rejects it after that). ``version``
    forces ``"v1"`` (``X-OCS-Auth``, obshell 4.2.2) or ``"v2"`` (``X-OCS-Header``); by default
    each agent is asked through ``/api/v1/info``; a forced dialect that the agent's
    ``supportedAuth`` leaves out raises :class:`~obshell_sdk.InvalidArgumentError` before
    anything is signed. ``min_key_bits`` is the shortest agent RSA key a password is
    encrypted with: 1024 by default (what obshell generates from 4.4.2); set 512 to talk to
    older agents, whose 512-bit keys can be factored. One object may serve many agents and
    threads: it keeps what it learnt of each agent (dialect, key, clock offset) apart.
    """

    def __init__(
        self,
        password: str,
        agent_password: Optional[str] = None,
        lifetime: float = 60,
        version: Optional[str] = None,
        *,
        random: Callable[[int], bytes] = os.urandom,
        min_key_bits: int = 1024,
    ) -> None:
        # The passwords leave this frame's locals at once: a traceback that shows locals
        # (capture_locals, rich, IDEs) sees only masked secrets.
        secret, problem = wrap_secret(password)
        agent_secret, agent_problem = wrap_secret(agent_password, optional=True)
        del password, agent_password
        if problem or agent_problem:
            raise InvalidArgumentError("password" if problem else "agent_password",
                                       problem or agent_problem)
        check_auth_options(lifetime, version, min_key_bits, random)
        assert secret is not None
        self._password = secret
        self._agent_password = agent_secret
        #: The shortest agent key a password is encrypted with.
        self.min_key_bits: int = min_key_bits
        #: Seconds a signed header stays valid.
        self.lifetime: float = float(lifetime)
        #: The forced dialect (``"v1"``/``"v2"``), or None to ask each agent.
        self.version: Optional[str] = version
        self._random = random
        self._lock = threading.Lock()
        self._agents: dict[str, AgentState] = {}
        _ALL.add(self)

    def _after_fork(self) -> None:
        # A lock held by another thread of the parent at fork time would never be released.
        self._lock = threading.Lock()
        for state in self._agents.values():
            state.fetch_lock = threading.Lock()

    def __repr__(self) -> str:
        if not hasattr(self, "_agents"):  # __init__ refused its input: a half-built object
            return "<PasswordAuth (not set up)>"
        agent = "None" if self._agent_password is None else "'***'"
        bits = "" if self.min_key_bits == 1024 else f", min_key_bits={self.min_key_bits}"
        return (f"PasswordAuth(password='***', agent_password={agent}, "
                f"lifetime={self.lifetime:g}, version={self.version!r}{bits})")

    def __reduce__(self) -> NoReturn:
        raise TypeError("obshell_sdk refuses to pickle or copy PasswordAuth: it holds "
                        "passwords; share the one you have (it serves many agents and threads)")

    def _empty(self) -> frozenset[str]:
        """Which passwords held are empty, by role: ``"root@sys"``, ``"agent"`` (None is none).

        The one thing of them said outside this class: never a value, nor a length.
        """
        held = {"root@sys": self._password, "agent": self._agent_password}
        return frozenset(role for role, secret in held.items()
                         if secret is not None and secret.is_empty())

    def _sent_empty(self, agent: str) -> frozenset[str]:
        """The role of the password last signed with for ``agent``, if it is empty (else none).

        What obshell 4.2.3 to 4.3.0 most likely refused when it refuses with a bare code
        10008 (as it does any auth failure) after the flow fetched its key and ``/info``
        again and read its clock: under auth v2 an empty password's timestamp is never
        checked, so the password is the likely cause. Not said of a password the SDK blanked
        itself (a SINGLE agent without an agent password takes any), nor of the root@sys
        password sent to an agent that has an agent password (it may want that one instead),
        nor under auth v1 (obshell 4.2.2, whose rules are not known).
        """
        with self._lock:
            state = self._agents.get(agent)
        if state is None or state.dialect != "v2" or state.blank_password or (
                state.agent_password_set and not state.use_agent_password):
            return frozenset()
        return self._empty() & {"agent" if state.use_agent_password else "root@sys"}

    def _state(self, agent: str) -> AgentState:
        with self._lock:
            found = self._agents.get(agent)
            if found is None:
                found = self._agents[agent] = AgentState()
            return found

    def _sign(
        self, state: AgentState, request: Request, now: float
    ) -> Optional[tuple[Request, PublicKey]]:
        """The signed form of ``request`` and the key used; None if the key was just dropped."""
        key, dialect, header_name = state.key, state.dialect, state.header_name
        if key is None or dialect is None:
            return None
        expires = int(now + state.clock_offset + (request.lifetime or self.lifetime))
        headers = dict(request.headers)
        body = request.body
        if dialect == "v1":
            headers[header_name] = self._v1_token(key, expires)
            key_iv = None
            if body is not None:
                headers["Content-Type"] = "application/json"
        else:
            # The new upload (/api/v1/package) sends its body in clear: no AES key for it.
            encrypted = bool(body or request.stream) and request.file_sha256 is None
            key_iv = check_random_bytes(self._random(32), 32) if encrypted else None
            secret = self._agent_password if state.use_agent_password else self._password
            headers[header_name] = key.encrypt(v2_header_json(
                "" if (state.blank_password or secret is None) else secret.reveal(),
                expires, request.target, key_iv,
            ))
            if body and key_iv is not None:
                body = aes_encrypt(key_iv, body)
        if request.file_sha256 is not None:
            # The new upload checks the file by its SHA-256, hex text encrypted with the
            # agent's key (VerifyFile).
            headers["X-OCS-File-SHA256"] = key.encrypt(request.file_sha256.encode("ascii"))
        if request.stream is not None:
            body, headers["Content-Type"] = request.stream(key_iv)
        return Request(request.method, request.target, body, headers, signed=True), key

    def _v1_token(self, key: PublicKey, expires: int) -> str:
        # Checked before encrypting, so no exception (and no traceback) ever holds the token.
        if len(v1_token_json(self._password.reveal(), expires)) > key.chunk:
            raise InvalidArgumentError("password", "too long for an X-OCS-Auth token with this "
                                       f"agent's {key.bits}-bit key (obshell 4.2.2 reads one "
                                       "RSA block)")
        return key.encrypt_one_block(v1_token_json(self._password.reveal(), expires))

    def _auth_flow(
        self, request: Request, agent: str, *, clock: Callable[[], float] = time.time,
        expires: Optional[float] = None,
    ) -> AuthFlow:
        """Sign ``request`` for ``agent`` (``host:port``), asking the agent what signing needs.

        Yields each request to send; the driver sends back its envelope, or throws in the
        :class:`~obshell_sdk.ObshellError` it raised. The flow ends after the signed request
        succeeded, and re-raises what it cannot mend. ``clock`` is Unix seconds; ``expires``
        (``time.monotonic()``) when the call ends, which bounds waiting for another thread's
        fetch of the agent's key.
        """
        state = self._state(agent)
        mended: set[str] = set()
        for _ in range(8):  # each mend happens once; a key dropped by another thread, a few times
            yield from self._learn(state, request, agent, expires)
            if state.clock_offset and time.monotonic() - state.offset_measured_at > self.lifetime:
                # The agent's clock may have moved since (NTP, a restart): an old offset would
                # make headers live longer than their lifetime. Drop it and measure again.
                state.clock_offset = 0.0
                yield from measure_clock(state, agent, clock)
            signed = self._sign(state, request, clock())
            if signed is None:
                continue
            expired = False
            try:
                yield signed[0]
                return
            except DecryptFailedError:
                if "key" in mended:
                    raise
                mended.add("key")
                log.info("agent %s could not decrypt our header; fetching its key again", agent)
                if state.key is signed[1]:  # unless another thread fetched the new key already
                    state.key = None
            except AuthExpiredError:
                if "clock" in mended:
                    raise
                mended.add("clock")
                expired = True
            except AuthError as exc:
                if "agent" in mended or not _may_be_stale(exc):
                    raise
                expired = _forget_agent(state, exc, agent, mended)
            if expired:  # re-signed whatever the clock says: a header can also expire on its way
                yield from measure_clock(state, agent, clock)  # (a slow proxy, a balancer)
        raise ObshellError(f"agent {agent}: its key kept changing while signing; try again")

    def _learn(self, state: AgentState, request: Request, agent: str,
               expires: Optional[float]) -> AuthFlow:
        """Ask the agent for its dialect and key, whichever is not known (one thread at a time)."""
        if state.dialect is not None and state.key is not None:
            return
        left = -1.0 if expires is None else max(expires - time.monotonic(), 0.0)
        if not state.fetch_lock.acquire(timeout=left):  # another call is asking (and slowly)
            raise ConnectError("the call's time ran out while another call was asking the agent "
                               "how to sign; it was not sent", method=request.method,
                               path=request.path, agent=agent)
        try:
            if state.dialect is None:
                reply = yield Request("GET", "/api/v1/info", signed=False)
                state.learn(AgentInfo.from_json(reply.data), self.version,
                            self._agent_password is not None)
            if state.key is None:
                reply = yield Request("GET", "/api/v1/secret", signed=False)
                secret = AgentSecret.from_json(reply.data)
                try:
                    key = PublicKey(secret.public_key)
                except ValueError as exc:
                    raise DecodeError(str(exc), where="data.public_key") from None
                if key.bits < self.min_key_bits:
                    raise WeakKeyError(
                        f"the agent {agent} offers a {key.bits}-bit RSA key (obshell up to 4.4.1 "
                        f"does), shorter than the {self.min_key_bits} bits a password is sent "
                        "with; upgrading the agent to obshell 4.4.2 or later replaces it with a "
                        "1024-bit key. To send it anyway, use PasswordAuth(..., min_key_bits=512)"
                        " (with ObshellClient.from_env, set OBSHELL_MIN_KEY_BITS=512)",
                        bits=key.bits, agent=agent)
                state.key = key
                log.debug("agent %s: key of %d bits, auth %s", agent, state.key.bits, state.dialect)
        finally:
            state.fetch_lock.release()


#: Every PasswordAuth alive, so a forked child can give each fresh locks.
_ALL: weakref.WeakSet[PasswordAuth] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for auth in list(_ALL):
        auth._after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _may_be_stale(exc: AuthError) -> bool:
    """Tell whether this refusal may come from auth settings the agent has since outgrown."""
    return (isinstance(exc, PasswordKindError) or exc.err_code == "Request.Header.NotFound"
            or bare_refusal(exc))


def bare_refusal(exc: AuthError) -> bool:
    """A bare code 10008: an agent before 4.3.1 refuses so whatever it refused."""
    return not exc.err_code and exc.code == 10008


def _forget_agent(state: AgentState, exc: AuthError, agent: str, mended: set[str]) -> bool:
    """Forget ``agent``'s dialect and key (``exc`` may say it changed); a mend made once a flow.

    True when its clock is to be read as well (once a flow): ``exc`` is a bare code 10008,
    which is also how an agent before 4.3.1 refuses an expired header (a clock far off).
    That costs a ``GET /api/v1/time``, and the re-signed request carries what it finds; that
    request is sent again whatever the clock says, as it always was after such a refusal
    (obshell refuses a header before it runs anything), so nothing is sent more often.
    """
    mended.add("agent")
    clock = bare_refusal(exc) and "clock" not in mended
    if clock:
        mended.add("clock")
    log.info("agent %s refused our header (%s); asking it how to sign again%s", agent,
             exc.err_code or exc.code, " and reading its clock" if clock else "")
    state.forget()
    return clock
