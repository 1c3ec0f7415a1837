"""The one configuration layer: ``OBSHELL_*`` environment variables to client settings.

``ObshellClient.from_env`` and the command line both read the environment here, so they
share defaults and errors; the command line's commands ask for a missing password here too.
"""

from __future__ import annotations

import difflib
import getpass
import os
import re
import sys
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, NoReturn, Optional

from ._address import check_host
from ._auth import PasswordAuth, bare_refusal
from ._exceptions import AuthError, InvalidArgumentError, ObshellError, WrongPasswordError
from ._validate import brief_repr

__all__ = [
    "CLIENT_OPTIONS",
    "DEFAULT_PORT",
    "ENV_VARIABLES",
    "PASSWORD_NAMES",
    "UNSAID",
    "Environment",
    "auth_from_env",
    "check_env_bundle",
    "check_rollout_client_options",
    "client_options_from_env",
    "empty_note",
    "empty_passwords_said",
    "empty_refused",
    "min_key_bits_from_env",
    "prompted_auth_from_env",
    "refused_variable",
    "refused_variable_in",
    "settings_from_env",
    "tls_from_env",
    "unsaid_refusal",
]

DEFAULT_PORT = 2886
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")
_PORT = re.compile(r"[0-9]{1,5}\Z")  # ASCII digits only (int() takes other scripts' too)

#: The keyword arguments ObshellClient takes.
CLIENT_OPTIONS = frozenset((
    "host", "port", "auth", "https", "verify", "cert", "timeout", "session", "poll_policy",
    "accept_language", "trust_env", "max_reply_bytes"))

#: Every variable read, with what it means (the CLI's help shows this table).
ENV_VARIABLES = {
    "OBSHELL_HOST": "the agent's host name or IP (required)",
    "OBSHELL_PORT": f"the agent's port (default {DEFAULT_PORT})",
    "OBSHELL_PASSWORD": "the root@sys password",
    "OBSHELL_AGENT_PASSWORD": "the agent password, when the agent has one",
    "OBSHELL_HTTPS": "1/true/yes/on to use https (default off)",
    "OBSHELL_CA_BUNDLE": "a CA bundle to verify the agent's certificate",
    "OBSHELL_MIN_KEY_BITS": "shortest agent RSA key a password is sent with (default 1024; "
                            "512 for obshell up to 4.4.1)",
}


class Environment(Mapping[str, str]):
    """The ``OBSHELL_*`` variables of an environment, in a mapping that never shows them.

    The environment holds passwords; a traceback that prints frame locals (``rich``,
    ``capture_locals``, an IDE) shows this wrapper's masked repr instead of them, and it
    refuses to be pickled, as ``PasswordAuth`` does.
    """

    __slots__ = ("_values",)

    def __init__(self, environ: Optional[Mapping[str, str]] = None) -> None:
        source = os.environ if environ is None else environ
        if not isinstance(source, Mapping):
            raise InvalidArgumentError("environ", "must be a mapping such as os.environ")
        self._values: dict[str, str] = {}
        wrong: list[tuple[str, str]] = []  # a name and a type; a value may be a password
        for name in ENV_VARIABLES:
            if isinstance(source.get(name), str):
                self._values[name] = source[name]
            elif source.get(name) is not None:
                wrong.append((name, type(source.get(name)).__name__))
        del source, environ
        if wrong:
            raise InvalidArgumentError(wrong[0][0], f"must be a string, got {wrong[0][1]}")

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __reduce__(self) -> NoReturn:
        raise TypeError("obshell_sdk refuses to pickle an Environment: it holds passwords")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<Environment of {', '.join(sorted(self._values)) or 'no OBSHELL_* variables'}>"


def check_rollout_client_options(options: Mapping[str, Any]) -> None:
    """Refuse a keyword a rollout cannot pass to each ObshellClient, with a near name."""
    unknown = set(options) - CLIENT_OPTIONS | ({"host", "port", "auth"} & set(options))
    if unknown:
        near = difflib.get_close_matches(min(unknown), [*CLIENT_OPTIONS, "journal", "parallel",
                                         "canary", "max_failures", "progress"], 1)
        raise InvalidArgumentError(min(unknown), "is not an option a rollout passes to each "
                                   "ObshellClient (host, port, auth come from targets and "
                                   "auth=)" + (f"; did you mean {near[0]}=?" if near else ""))


def client_options_from_env(env: Environment, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """ObshellClient's keyword arguments from ``OBSHELL_*`` variables; ``overrides`` win.

    A variable whose option is given is not read at all: ``from_env(host="db1")`` needs no
    ``OBSHELL_HOST``, and a broken ``OBSHELL_PORT`` does not matter beside ``port=2886``.
    """
    unknown = set(overrides) - CLIENT_OPTIONS
    if unknown:
        raise InvalidArgumentError(min(unknown), "is not an ObshellClient option")
    options = settings_from_env(env, given=overrides.keys())
    options.update(overrides)
    if "verify" not in overrides:  # else OBSHELL_CA_BUNDLE is not read
        check_env_bundle(env, options, "pass https=True" if "https" in overrides else None)
    if "auth" not in options:
        options["auth"] = auth_from_env(env)
    return options


def settings_from_env(env: Environment, given: Collection[str] = ()) -> dict[str, Any]:
    """``host``, ``port``, ``https`` and ``verify`` from ``OBSHELL_*`` (no passwords read).

    The options in ``given`` (the caller's own) are neither read nor checked.
    """
    settings = tls_from_env(env, given)
    if "host" not in given:
        host = (env.get("OBSHELL_HOST") or "").strip()
        if not host:
            raise InvalidArgumentError("OBSHELL_HOST", "set it to the agent's host name or IP")
        try:
            check_host(host, port_as="OBSHELL_PORT", https_as="OBSHELL_HTTPS=1")
        except InvalidArgumentError as exc:
            raise InvalidArgumentError("OBSHELL_HOST", str(exc).partition(": ")[2]) from None
        settings["host"] = host
    if "port" not in given:
        port_text = (env.get("OBSHELL_PORT") or str(DEFAULT_PORT)).strip()
        if not _PORT.match(port_text) or not 1 <= int(port_text) <= 65535:
            raise InvalidArgumentError(
                "OBSHELL_PORT", f"{brief_repr(port_text)} is not a port number from 1 to 65535"
            )
        settings["port"] = int(port_text)
    return settings


def tls_from_env(env: Environment, given: Collection[str] = ()) -> dict[str, Any]:
    """``https`` and ``verify`` from ``OBSHELL_HTTPS`` and ``OBSHELL_CA_BUNDLE``.

    The options in ``given`` are neither read nor checked.
    """
    settings: dict[str, Any] = {}
    if "https" not in given:
        https_text = (env.get("OBSHELL_HTTPS") or "").strip().lower()
        if https_text not in _TRUE + _FALSE:
            raise InvalidArgumentError(
                "OBSHELL_HTTPS",
                f"{brief_repr(https_text)} is neither on (1/true/yes/on) nor off (0/false/no/off)",
            )
        settings["https"] = https_text in _TRUE
    if "verify" not in given:
        settings["verify"] = env.get("OBSHELL_CA_BUNDLE") or True
    return settings


def check_env_bundle(env: Environment, options: Mapping[str, Any],
                     fix: Optional[str] = None) -> None:
    """Refuse ``OBSHELL_CA_BUNDLE`` in use without HTTPS (once overrides are applied).

    ``fix``: what to do (default: set ``OBSHELL_HTTPS=1`` too).
    """
    bundle = env.get("OBSHELL_CA_BUNDLE")
    if bundle and options.get("verify") == bundle and not options.get("https"):
        raise InvalidArgumentError("OBSHELL_CA_BUNDLE", "a CA bundle verifies HTTPS: "
                                   f"{fix or 'set OBSHELL_HTTPS=1 too'}")


def min_key_bits_from_env(env: Environment) -> int:
    """``OBSHELL_MIN_KEY_BITS`` (default 1024), checked as ``PasswordAuth`` checks it."""
    text = (env.get("OBSHELL_MIN_KEY_BITS") or "1024").strip()
    if text not in ("512", "1024", "2048", "4096"):
        raise InvalidArgumentError("OBSHELL_MIN_KEY_BITS",
                                   f"must be 512, 1024, 2048 or 4096, got {brief_repr(text)}")
    return int(text)


def auth_from_env(env: Environment) -> Optional[PasswordAuth]:
    """``PasswordAuth`` from ``OBSHELL_PASSWORD`` / ``OBSHELL_AGENT_PASSWORD``, or None.

    ``OBSHELL_MIN_KEY_BITS`` sets its ``min_key_bits``.
    """
    if env.get("OBSHELL_PASSWORD") is None and env.get("OBSHELL_AGENT_PASSWORD") is None:
        return None
    return PasswordAuth(env.get("OBSHELL_PASSWORD") or "", env.get("OBSHELL_AGENT_PASSWORD"),
                        min_key_bits=min_key_bits_from_env(env))


#: The variable of the password the agent said it refused (by its error code): the one table
#: of it (the CLI's hints name the variable from it).
_REFUSED = {"Security.Authentication.IncorrectOceanbasePassword": "OBSHELL_PASSWORD",
            "Security.Authentication.IncorrectAgentPassword": "OBSHELL_AGENT_PASSWORD"}

#: The role (as ``PasswordAuth._empty`` says it) of the password each variable holds.
_ROLES = {"OBSHELL_PASSWORD": "root@sys", "OBSHELL_AGENT_PASSWORD": "agent"}

#: The password each password variable holds, as a note names it.
PASSWORD_NAMES = {"OBSHELL_PASSWORD": "root@sys password",
                  "OBSHELL_AGENT_PASSWORD": "agent password"}


def refused_variable(exc: ObshellError) -> Optional[str]:
    """The variable of the password the agent said (by ``exc``'s error code) it refused, or None."""
    return _REFUSED.get(getattr(exc, "err_code", None) or "")


#: An agent's error code where an ``ApiError``'s message gives it (``failed: HTTP 401 CODE:``).
_SAID_CODE = re.compile(r" failed: HTTP \d+ (\S+): ")


def refused_variable_in(text: str) -> Optional[str]:
    """:func:`refused_variable` of the first agent error quoted in ``text``, or None.

    For errors kept as text only (a rollout's target errors, journaled so).
    """
    said = _SAID_CODE.search(text)
    return None if said is None else _REFUSED.get(said.group(1))


#: What a note of an empty password adds when the agent did not say what it refused.
UNSAID = ("an agent older than 4.3.1 does not say why it refused: the empty password is the "
          "likely cause, not a sure one")


def unsaid_refusal(exc: ObshellError) -> bool:
    """True for obshell's refusal before 4.3.1: 401, code 10008, no error code.

    That agent (4.2.3 to 4.3.0) answers so to any auth failure; the SDK's flow mended what it
    could first (a changed key or agent: fetched again once, its clock read), and with an
    empty password no timestamp is checked. It does not say which password it refused, nor
    that it was one.
    """
    return isinstance(exc, AuthError) and exc.status == 401 and bare_refusal(exc)


def empty_refused(auth: PasswordAuth, exc: ObshellError) -> tuple[str, ...]:
    """The variables of ``auth``'s passwords that were empty and refused (``exc``), if any.

    Of a WrongPasswordError: the password its error code names (either, when it names none),
    when ``auth`` holds it empty. Of a refusal by an agent before 4.3.1
    (:func:`unsaid_refusal`): the password ``auth`` signed with for that agent, when it is
    empty (``PasswordAuth._sent_empty``): the likely cause, which the agent does not say
    (a note of it adds :data:`UNSAID`). Says nothing else of any password.
    """
    if unsaid_refusal(exc):
        empty = auth._sent_empty(getattr(exc, "agent", ""))
        return tuple(name for name, role in _ROLES.items() if role in empty)
    if not isinstance(exc, WrongPasswordError):
        return ()
    refused, empty = refused_variable(exc), auth._empty()
    return tuple(name for name, role in _ROLES.items()
                 if refused in (None, name) and role in empty)


def empty_passwords_said(env: Environment, exc: ObshellError,
                         auth: Optional[PasswordAuth] = None) -> str:
    """`` (OBSHELL_PASSWORD is set but empty)`` when the agent refused an empty password; else "".

    An empty password is sent as given (a SINGLE agent without an agent password takes any);
    a refusal of one says so, as the refusal alone reads like a typo in a password. The
    password is the one :func:`empty_refused` finds in ``auth``, the auth the command signed
    with (:func:`prompted_auth_from_env`'s; None: none was made, nothing is said), and the
    note names where it came from in ``env``: a variable set but empty, OBSHELL_PASSWORD
    not set beside OBSHELL_AGENT_PASSWORD, or (neither set) the prompt.
    """
    refused = () if auth is None else empty_refused(auth, exc)
    root, agent = env.get("OBSHELL_PASSWORD"), env.get("OBSHELL_AGENT_PASSWORD")
    said = [f"{name} is set but empty" for name in refused if env.get(name) == ""]
    if "OBSHELL_PASSWORD" in refused and root is None and agent is not None:  # not prompted
        said.append("OBSHELL_PASSWORD is not set, so an empty root@sys password was sent")
    if "OBSHELL_PASSWORD" in refused and root is None and agent is None:
        said.append("an empty password was typed at the prompt: run the command again and "
                    "type the root@sys password, or set OBSHELL_PASSWORD")
    return empty_note(said, exc)


def empty_note(said: Sequence[str], exc: ObshellError) -> str:
    """`` (said; ...)``: what is said of the empty passwords ``exc`` refused; "" for nothing.

    The one place that decides when :data:`UNSAID` is added: when the refusal is an agent's
    before 4.3.1 (:func:`unsaid_refusal`), which does not say what it refused.
    """
    if not said:
        return ""
    return f" ({'; '.join([*said, UNSAID] if unsaid_refusal(exc) else said)})"


def prompted_auth_from_env(env: Environment, prompt: str) -> PasswordAuth:
    """``PasswordAuth`` as :func:`auth_from_env` makes it, or asking for the password.

    The command line's way: when the environment holds neither password, the root@sys
    password is asked for on the terminal with ``prompt``; otherwise the auth is exactly
    ``from_env``'s. ``OBSHELL_MIN_KEY_BITS`` is checked before anyone is asked; the host,
    port and TLS variables are the caller's to check first (:func:`settings_from_env`,
    :func:`tls_from_env`). Raises InvalidArgumentError when there is no terminal to ask on,
    or the prompt reads end of input (Ctrl-D). No frame here keeps a password in a local.
    """
    auth = auth_from_env(env)
    if auth is not None:
        return auth
    min_key_bits = min_key_bits_from_env(env)
    if not sys.stdin.isatty():
        raise InvalidArgumentError("OBSHELL_PASSWORD", "set OBSHELL_PASSWORD, or "
                                   "OBSHELL_AGENT_PASSWORD (no terminal to prompt on)")
    try:
        return PasswordAuth(getpass.getpass(prompt), min_key_bits=min_key_bits)
    except EOFError:
        raise InvalidArgumentError(
            "OBSHELL_PASSWORD", "no password typed (end of input); type it, or set "
            "OBSHELL_PASSWORD") from None
