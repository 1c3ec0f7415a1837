"""Password authentication: picks auth v1 or v2 per agent, keeps its key, signs requests.

The auth object never does I/O. The client fetches ``/api/v1/info`` and ``/api/v1/secret``
and hands the results in (:meth:`PasswordAuth.learn_agent`, :meth:`PasswordAuth.learn_key`);
signing is then pure. Passwords live in a :class:`_Secret` whose repr is masked and which
refuses to be pickled, so they cannot reach a log line, an exception or a traceback's repr.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable, NoReturn, Optional

import attrs

from ._crypto import PublicKey, aes_encrypt, v1_token_json, v2_header_json
from ._exceptions import InvalidArgumentError
from ._models import AgentInfo

__all__ = ["AuthVersion", "PasswordAuth", "SignedRequest"]

log = logging.getLogger("obshell_sdk")

AuthVersion = str  # "v1" or "v2"
_VERSIONS = ("v1", "v2")
MAX_LIFETIME = 24 * 3600.0


class _Secret:
    """A password that never shows itself: masked repr and str, no pickling."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("obshell_sdk refuses to pickle a password")


@attrs.frozen
class SignedRequest:
    """What signing adds to a request: auth headers and the (possibly encrypted) body."""

    headers: dict[str, str] = attrs.field(repr=False)
    body: Optional[bytes] = attrs.field(repr=False)
    version: str
    header_name: str
    #: The AES key and IV put in the header for a streamed body (``stream_key=True``).
    key_iv: Optional[bytes] = attrs.field(default=None, repr=False)
    #: The agent key the header was encrypted with.
    key: Optional[PublicKey] = attrs.field(default=None, repr=False, eq=False)


class _AgentState:
    """What an auth object knows of one agent (guarded by the auth object's lock).

    A plain slotted class: it is internal, and an attrs class costs import time.
    """

    __slots__ = ("blank_password", "clock_offset", "fetch_lock", "header_name", "key",
                 "reusable", "use_agent_password", "version")

    def __init__(self) -> None:
        self.version: Optional[str] = None
        self.header_name = "X-OCS-Header"
        self.use_agent_password = False
        self.blank_password = False
        self.key: Optional[PublicKey] = None
        self.clock_offset = 0.0
        self.fetch_lock = threading.Lock()
        #: Signed headers of bodiless reads by request-target, with their expiry (``sign``).
        self.reusable: dict[str, tuple[SignedRequest, int]] = {}

    def __repr__(self) -> str:
        return (f"_AgentState(version={self.version!r}, header_name={self.header_name!r}, "
                f"key={'set' if self.key is not None else None}, "
                f"clock_offset={self.clock_offset})")


class PasswordAuth:
    """Sign obshell requests with the root@sys password (or the agent password).

    ``password`` is the OceanBase root@sys password (``""`` for an agent without a cluster);
    ``agent_password`` is used instead when given and the agent has one set. ``lifetime`` is how
    many seconds a signed header stays valid (the agent rejects it after that). ``version``
    forces ``"v1"`` (``X-OCS-Auth``, obshell 4.2.2) or ``"v2"`` (``X-OCS-Header``); by default
    each agent is asked through ``/api/v1/info``. One object may serve many agents: it keeps
    one public key per agent.
    """

    def __init__(
        self,
        password: str,
        agent_password: Optional[str] = None,
        lifetime: float = 60,
        version: Optional[str] = None,
        *,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not isinstance(password, str):
            raise InvalidArgumentError(
                "password", f"must be a string, got {type(password).__name__}"
            )
        if agent_password is not None and not isinstance(agent_password, str):
            raise InvalidArgumentError(
                "agent_password", f"must be a string or None, got {type(agent_password).__name__}"
            )
        if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)):
            raise InvalidArgumentError("lifetime", "must be a number of seconds")
        if not 1 <= lifetime <= MAX_LIFETIME:
            raise InvalidArgumentError(
                "lifetime", f"must be between 1 and {int(MAX_LIFETIME)} seconds, got {lifetime}"
            )
        if version is not None and version not in _VERSIONS:
            raise InvalidArgumentError("version", f"must be 'v1', 'v2' or None, got {version!r}")
        self._password = _Secret(password)
        self._agent_password = None if agent_password is None else _Secret(agent_password)
        self.lifetime = float(lifetime)
        self.version = version
        self._random = random
        self._lock = threading.Lock()
        self._agents: dict[str, _AgentState] = {}

    def __repr__(self) -> str:
        agent = "None" if self._agent_password is None else "'***'"
        return (
            f"PasswordAuth(password='***', agent_password={agent}, "
            f"lifetime={self.lifetime:g}, version={self.version!r})"
        )

    def __reduce__(self) -> NoReturn:
        raise TypeError("obshell_sdk refuses to pickle PasswordAuth: it holds passwords")

    # -- what the client tells us -------------------------------------------------------

    def state(self, agent: str) -> _AgentState:
        """The per-agent record (created on first use); internal to the SDK."""
        with self._lock:
            found = self._agents.get(agent)
            if found is None:
                found = self._agents[agent] = _AgentState()
            return found

    def learn_agent(self, agent: str, info: AgentInfo) -> str:
        """Choose auth version and header for ``agent`` from its ``/api/v1/info``; return it."""
        version = self.version or choose_version(info)
        st = self.state(agent)
        use_agent = self._agent_password is not None and info.security
        with self._lock:
            st.version = version
            st.use_agent_password = use_agent and version == "v2"
            st.header_name = (
                "X-OCS-Auth"
                if version == "v1"
                else ("X-OCS-Agent-Header" if st.use_agent_password else "X-OCS-Header")
            )
            # A SINGLE agent without an agent password accepts any password: send none.
            st.blank_password = info.identity == "SINGLE" and not info.security
        log.debug("agent %s: auth %s with %s", agent, version, st.header_name)
        return version

    def learn_key(self, agent: str, public_key_b64: str) -> PublicKey:
        """Parse and keep ``agent``'s public key (ValueError if it is not one)."""
        key = PublicKey(public_key_b64)
        st = self.state(agent)
        with self._lock:
            st.key = key
        log.debug("agent %s: public key of %d bits", agent, key.bits)
        return key

    def forget_key(self, agent: str, key: Optional[PublicKey] = None) -> None:
        """Drop ``agent``'s key, e.g. after the agent could not decrypt a header.

        With ``key``, only if that is still the key in use (another thread may already have
        fetched the new one).
        """
        st = self.state(agent)
        with self._lock:
            if key is None or st.key is key:
                st.key = None

    def forget_agent(self, agent: str) -> None:
        """Forget everything about ``agent`` (version and key), e.g. after it was upgraded."""
        with self._lock:
            self._agents.pop(agent, None)

    def set_clock_offset(self, agent: str, offset: float) -> None:
        """Record that ``agent``'s clock runs ``offset`` seconds ahead of ours."""
        st = self.state(agent)
        with self._lock:
            st.clock_offset = offset
            st.reusable.clear()

    # -- signing ------------------------------------------------------------------------

    def sign(
        self,
        agent: str,
        uri: str,
        body: Optional[bytes],
        now: float,
        *,
        lifetime: Optional[float] = None,
        stream_key: bool = False,
        reuse: bool = False,
    ) -> SignedRequest:
        """Sign a request to ``agent`` for request-target ``uri`` with JSON ``body`` bytes.

        ``now`` is our clock (Unix seconds); the agent's clock offset is added. With
        ``stream_key`` (auth v2) a fresh AES key and IV go in the header and come back in
        ``key_iv`` for the caller to encrypt a streamed body with. With ``reuse`` (bodiless
        reads), a header signed earlier for the same target is returned while more than half
        of its lifetime is left: it is a token valid until its expiry anyway, and this saves
        an RSA operation per poll. Requires :meth:`learn_agent` and :meth:`learn_key` first.
        """
        st = self.state(agent)
        with self._lock:
            key, version = st.key, st.version
            use_agent, blank, header_name = st.use_agent_password, st.blank_password, st.header_name
            offset = st.clock_offset
        if key is None or version is None:
            raise LookupError(f"agent {agent}: its auth version or key is not known (yet)")
        span = lifetime or self.lifetime
        reuse = reuse and not body and not stream_key
        if reuse:
            with self._lock:
                found = st.reusable.get(uri)
            if found is not None and found[0].key is key and now + offset < found[1] - span / 2:
                return found[0]
        signed = self._sign(key, version, uri, body, int(now + offset + span), stream_key,
                            use_agent, blank, header_name)
        if reuse:
            with self._lock:
                if len(st.reusable) >= 256:
                    st.reusable.clear()
                st.reusable[uri] = (signed, int(now + offset + span))
        return signed

    def _sign(
        self, key: PublicKey, version: str, uri: str, body: Optional[bytes], expires: int,
        stream_key: bool, use_agent: bool, blank: bool, header_name: str,
    ) -> SignedRequest:
        if version == "v1":
            token = self._v1_token(key, expires)
            return SignedRequest({"X-OCS-Auth": token}, body, "v1", "X-OCS-Auth", None, key)
        secret = self._agent_password if use_agent else self._password
        key_iv = self._random(32) if (body or stream_key) else None
        encrypted = aes_encrypt(key_iv, body) if (key_iv is not None and body) else None
        header = key.encrypt(v2_header_json(
            "" if (blank or secret is None) else secret.reveal(), expires, uri, key_iv
        ))
        return SignedRequest(
            {header_name: header}, encrypted, "v2", header_name,
            key_iv if stream_key else None, key,
        )

    def _v1_token(self, key: PublicKey, expires: int) -> str:
        try:
            return key.encrypt_one_block(v1_token_json(self._password.reveal(), expires))
        except ValueError:
            raise InvalidArgumentError(
                "password",
                f"too long for an X-OCS-Auth token with this agent's {key.bits}-bit key "
                "(obshell 4.2.2 reads one RSA block)",
            ) from None


def choose_version(info: AgentInfo) -> str:
    """Pick the auth version an agent speaks: ``supportedAuth`` if given, else 4.2.2 -> v1."""
    if info.supported_auth is not None:
        if "v2" in info.supported_auth:
            return "v2"
        if "v1" in info.supported_auth:
            return "v1"
    return "v1" if info.version_number.split(".")[:3] == ["4", "2", "2"] else "v2"
