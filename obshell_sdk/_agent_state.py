"""What an auth object knows of one agent, and how it learns it from the agent's replies.

:class:`AgentState` holds it: the auth dialect and header (from ``/api/v1/info``, through
:func:`choose_version`), the agent's key (from ``/api/v1/secret``) and how far its clock is
from ours (:func:`measure_clock`, from ``/api/v1/time``). No password lives here: which one
signs is a flag, the passwords stay with :class:`~._auth.PasswordAuth`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator
from typing import Callable, Optional

from ._crypto import PublicKey
from ._decode import at, p_time_text
from ._exceptions import InvalidArgumentError, ObshellError, TransportError
from ._models import AgentInfo, Envelope
from ._request import Request

__all__ = ["AgentState", "AuthFlow", "choose_version", "measure_clock"]

log = logging.getLogger("obshell_sdk")

#: Yields requests to send, receives their envelopes; ends after the signed one succeeded.
AuthFlow = Generator[Request, Envelope, None]


class AgentState:
    """What an auth object knows of one agent. ``fetch_lock``: one fetch at a time per agent."""

    __slots__ = ("agent_password_set", "blank_password", "clock_offset", "dialect", "fetch_lock",
                 "header_name", "key", "offset_measured_at", "use_agent_password")

    def __init__(self) -> None:
        self.dialect: Optional[str] = None
        self.header_name = "X-OCS-Header"
        self.use_agent_password = False
        self.agent_password_set = False  # /info's security: the agent has an agent password
        self.blank_password = False
        self.key: Optional[PublicKey] = None
        self.clock_offset = 0.0
        self.offset_measured_at = 0.0  # time.monotonic() of the measurement
        self.fetch_lock = threading.Lock()

    def forget(self) -> None:
        """Forget dialect and key: the agent may have changed."""
        self.dialect = None
        self.key = None

    def learn(self, info: AgentInfo, forced: Optional[str], agent_password: bool) -> None:
        """Take the dialect, header and password kind from the agent's ``/api/v1/info``.

        ``forced``: the dialect the auth forces, if any; ``agent_password``: whether the auth
        holds an agent password.
        """
        dialect = choose_version(info, forced)
        use_agent = agent_password and info.security and dialect == "v2"
        self.use_agent_password = use_agent
        self.agent_password_set = info.security
        self.header_name = (
            "X-OCS-Auth" if dialect == "v1"
            else ("X-OCS-Agent-Header" if use_agent else "X-OCS-Header")
        )
        # A SINGLE agent without an agent password accepts any password: send none.
        self.blank_password = info.identity == "SINGLE" and not info.security
        self.dialect = dialect


def choose_version(info: AgentInfo, forced: Optional[str] = None) -> str:
    """The auth dialect for an agent: ``forced``, else ``supportedAuth``, else 4.2.2 -> v1.

    A forced dialect that ``supportedAuth`` leaves out raises InvalidArgumentError (the
    agent would only refuse the header).
    """
    listed = info.supported_auth
    if forced is not None and listed is not None and forced not in listed:
        raise InvalidArgumentError(
            "version", f"PasswordAuth(version={forced!r}) is not a dialect this agent speaks "
            f"(its /api/v1/info lists {', '.join(listed) or 'none'}): drop version= and the "
            "SDK picks the agent's own")
    if forced is not None:
        return forced
    if listed is not None and ("v2" in listed or "v1" in listed):
        return "v2" if "v2" in listed else "v1"
    return "v1" if info.version_number.split(".")[:3] == ["4", "2", "2"] else "v2"


def measure_clock(
    state: AgentState, agent: str, clock: Callable[[], float]
) -> AuthFlow:
    """Learn how far the agent's clock is from ours, and sign with that offset from now on."""
    before = clock()
    try:
        reply = yield Request("GET", "/api/v1/time", signed=False)
        agent_now = at(p_time_text, reply.data, "data")
    except TransportError:
        raise  # the call itself fails (no time left, agent gone): not the clocks' fault
    except ObshellError as exc:
        log.info("agent %s: could not read its clock (%s)", agent, exc)
        return
    after = clock()
    if agent_now is None:
        return
    offset = agent_now.timestamp() - (before + after) / 2
    if abs(offset) < 1.0:  # within the second Ts is counted in: no offset to keep
        offset = 0.0
    old, state.clock_offset = state.clock_offset, offset
    state.offset_measured_at = time.monotonic()
    moved = abs(offset - old) >= 1.0  # a warning when it is news, not at each re-measurement
    log.log(logging.WARNING if moved else logging.INFO,
            "agent %s: its clock is %+.1f s from ours; signing with that offset", agent, offset)
