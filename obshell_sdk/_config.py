"""The one configuration layer: ``OBSHELL_*`` environment variables to client settings.

``ObshellClient.from_env`` and the command line both read the environment here, so they
share defaults and errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Optional

from ._auth import PasswordAuth
from ._exceptions import InvalidArgumentError

__all__ = ["DEFAULT_PORT", "ENV_VARIABLES", "auth_from_env", "settings_from_env"]

DEFAULT_PORT = 2886
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")

#: Every variable read, with what it means (the CLI's help shows this table).
ENV_VARIABLES = {
    "OBSHELL_HOST": "the agent's host name or IP (required)",
    "OBSHELL_PORT": f"the agent's port (default {DEFAULT_PORT})",
    "OBSHELL_PASSWORD": "the root@sys password",
    "OBSHELL_AGENT_PASSWORD": "the agent password, when the agent has one",
    "OBSHELL_HTTPS": "1/true/yes/on to use https (default off)",
    "OBSHELL_CA_BUNDLE": "a CA bundle to verify the agent's certificate",
}


def settings_from_env(environ: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """``host``, ``port``, ``https`` and ``verify`` from ``OBSHELL_*`` (no passwords read)."""
    env = os.environ if environ is None else environ
    host = env.get("OBSHELL_HOST", "").strip()
    if not host:
        raise InvalidArgumentError("OBSHELL_HOST", "set it to the agent's host name or IP")
    port_text = env.get("OBSHELL_PORT", str(DEFAULT_PORT)).strip()
    if not (port_text.isascii() and port_text.isdigit()):
        raise InvalidArgumentError("OBSHELL_PORT", f"{port_text!r} is not a port number")
    https_text = env.get("OBSHELL_HTTPS", "").strip().lower()
    if https_text not in _TRUE + _FALSE:
        raise InvalidArgumentError(
            "OBSHELL_HTTPS",
            f"{https_text!r} is neither on (1/true/yes/on) nor off (0/false/no/off)",
        )
    return {"host": host, "port": int(port_text), "https": https_text in _TRUE,
            "verify": env.get("OBSHELL_CA_BUNDLE") or True}


def auth_from_env(environ: Optional[Mapping[str, str]] = None) -> Optional[PasswordAuth]:
    """``PasswordAuth`` from ``OBSHELL_PASSWORD`` / ``OBSHELL_AGENT_PASSWORD``, or None."""
    env = os.environ if environ is None else environ
    if env.get("OBSHELL_PASSWORD") is None and env.get("OBSHELL_AGENT_PASSWORD") is None:
        return None
    return PasswordAuth(env.get("OBSHELL_PASSWORD") or "", env.get("OBSHELL_AGENT_PASSWORD"))
