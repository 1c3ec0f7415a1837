"""Auth-header decoding and the ``Verify`` rules of obshell (server side)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from ._crypto import DecryptError, ServerKey
from ._errors import ApiError, unauthorized
from ._golike import GoField, decode_struct, parse_go_json, to_plain
from ._params import version_key

_HEADER_FIELDS = (
    GoField("Auth", "Auth", "string"),
    GoField("Ts", "Ts", "string"),
    GoField("Uri", "Uri", "string"),
    GoField("Keys", "Keys", "bytes"),
    GoField("SessionID", "session_id", "string"),
    GoField("SsoToken", "ssotoken", "string"),
    GoField("Token", "Token", "string"),
    GoField("ForwardType", "ForwardType", "int"),
    GoField("ForwardAgent", "ForwardAgent", "any"),
    GoField("Sha256", "Sha256", "string"),
)

#: ``(legacy_v1, supported_auth)``: the dialect an agent takes and what ``/info`` says of it.
AuthProfile = tuple[bool, Optional[tuple[str, ...]]]


def auth_profile(version: str) -> AuthProfile:
    """What obshell ``version`` takes and reports (PROTOCOL.md §3.1, §5, §6).

    ``X-OCS-Auth`` alone up to 4.2.2, ``X-OCS-Header`` (and ``X-OCS-Agent-Header``) from
    4.2.3; ``supportedAuth`` absent before 4.2.4, ``["v2"]`` from 4.2.4 on.
    """
    numbers = version_key(version)[0][:3]
    if numbers < (4, 2, 3):
        return True, None
    return False, (None if numbers < (4, 2, 4) else ("v2",))


@dataclass
class AuthHeader:
    """A decoded auth header (v2 header struct, or a v1 token)."""

    kind: str  # "v2", "v2-agent" or "v1"
    auth: str
    ts: str
    uri: str
    keys: Optional[bytes]
    session_id: str
    raw_json: Optional[dict[str, Any]]


def _decrypt_failed(detail: str) -> ApiError:
    return ApiError(401, "Security.Authentication.Header.DecryptFailed",
                    f"Decrypt http header failed: {detail}", trace=False)


def _raw_dict(plain: bytes) -> Optional[dict[str, Any]]:
    try:
        value = json.loads(plain.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def decode_v2(value: str, key: ServerKey, *, agent: bool) -> AuthHeader:
    """Decrypt ``X-OCS-Header``/``X-OCS-Agent-Header`` (raises 401 DecryptFailed)."""
    try:
        plain = key.decrypt_b64(value)
    except DecryptError as exc:
        raise _decrypt_failed(str(exc)) from None
    try:
        parsed = parse_go_json(plain)
    except ValueError as exc:
        raise _decrypt_failed(str(exc)) from None
    fields, error = decode_struct(parsed, "HttpHeader", _HEADER_FIELDS,
                                  type_path="secure.HttpHeader")
    if error is not None:
        raise _decrypt_failed(error)
    raw = to_plain(parsed)
    return AuthHeader(
        kind="v2-agent" if agent else "v2",
        auth=fields["Auth"], ts=fields["Ts"], uri=fields["Uri"], keys=fields["Keys"],
        session_id=fields["SessionID"], raw_json=raw if isinstance(raw, dict) else None,
    )


def decode_v1(value: str, key: ServerKey) -> AuthHeader:
    """Decrypt a 4.2.2 ``X-OCS-Auth`` token: JSON ``{"password": str, "ts": number}``.

    Undecryptable tokens give 401 ``Header.DecryptFailed`` with code 1 (the code the
    official SDKs treat as "decrypt error"; 4.2.2 source is not public).
    """
    try:
        plain = key.decrypt_b64(value)
        raw = _raw_dict(plain)
    except DecryptError as exc:
        raise _decrypt_failed(str(exc)) from None
    if raw is None:
        raise _decrypt_failed("invalid auth json")
    lowered = {k.lower(): v for k, v in raw.items()}
    password = lowered.get("password", "")
    ts = lowered.get("ts", 0)
    if not isinstance(password, str) or isinstance(ts, bool) or not isinstance(ts, (int, float)):
        raise _decrypt_failed("json: cannot unmarshal into Go struct field AgentAuth")
    return AuthHeader(kind="v1", auth=password, ts=str(int(ts)), uri="", keys=None,
                      session_id="", raw_json=raw)


def verify_timestamp(ts: str, now_s: int) -> None:
    """``secure.VerifyTimeStamp``: ``ts`` is an expiry in Unix seconds."""
    try:
        digits = ts[1:] if ts[:1] in ("+", "-") else ts
        if not digits or not digits.isascii() or not digits.isdigit():  # ParseInt: ASCII only
            raise ValueError
        value = int(ts)
    except ValueError:
        raise unauthorized(
            "Security.Authentication.Timestamp.Invalid",
            f'Invalid timestamp: {ts}, err: strconv.ParseInt: parsing "{ts}": invalid syntax',
        ) from None
    if not -(1 << 63) <= value < (1 << 63):
        raise unauthorized(
            "Security.Authentication.Timestamp.Invalid",
            f'Invalid timestamp: {ts}, err: strconv.ParseInt: parsing "{ts}": value out of range',
        )
    if now_s > value:
        raise unauthorized("Security.Authentication.Expired", "Authentication expired")


@dataclass
class AuthConfig:
    """What the password rules need to know about the agent."""

    identity: str
    root_password: str
    root_password_known: bool
    agent_password: Optional[str]


def verify_auth(header: AuthHeader, now_s: int, expected: str, agent_pwd: bool) -> None:
    """Check ``Auth`` against ``expected`` (and ``Ts`` unless ``Auth`` is empty)."""
    if header.auth != "":
        verify_timestamp(header.ts, now_s)
    if header.auth != expected:
        if agent_pwd:
            raise unauthorized("Security.Authentication.IncorrectAgentPassword",
                               "Agent password is incorrect")
        raise unauthorized("Security.Authentication.IncorrectOceanbasePassword",
                           "OceanBase password is incorrect")


def verify_v2(header: Optional[AuthHeader], request_uri: str, now_s: int, cfg: AuthConfig,
              key: ServerKey) -> None:
    """Obshell's ``Verify`` middleware (ob/task route classes); raises :class:`ApiError`."""
    if header is None:
        raise ApiError(400, "Request.Header.NotFound",
                       "X-OCS-Agent-Header or X-OCS-Header not found in http request header")
    if header.uri != request_uri:
        raise ApiError(401, "Security.Authentication.Header.UriMismatch", "URI mismatch")
    agent_header = header.kind == "v2-agent"
    ap_set = cfg.agent_password is not None
    identity = cfg.identity
    if identity == "SINGLE":
        if not ap_set:
            return
        if not agent_header:
            raise unauthorized("Security.Authentication.WithAgentPassword",
                               "Should use agent_password to verify: agent password has been set")
        try:
            verify_auth(header, now_s, cfg.agent_password or "", True)
        except ApiError as first:
            # SINGLE also accepts an Auth that is itself RSA-encrypted with the agent key
            try:
                inner = key.decrypt_b64(header.auth).decode("utf-8", "replace")
            except DecryptError:
                raise first from None
            decoded = AuthHeader(header.kind, inner, header.ts, header.uri, header.keys,
                                 header.session_id, header.raw_json)
            verify_auth(decoded, now_s, cfg.agent_password or "", True)
        return
    if identity == "FOLLOWER" and agent_header:
        raise ApiError(500, "Request.Forward.Header.NotExist",
                       "Header not found when auto-forwarding request to master")
    if not agent_header:
        if not cfg.root_password_known and ap_set:
            raise unauthorized(
                "Security.Authentication.WithAgentPassword",
                "Should use agent_password to verify: oceanbase password is not initialized")
        verify_auth(header, now_s, cfg.root_password, False)
        return
    if cfg.root_password_known and not ap_set:
        raise unauthorized(
            "Security.Authentication.WithOceanBasePassword",
            "Should use oceanbase_password to verify: agent password is not initialized")
    if not ap_set:
        return
    verify_auth(header, now_s, cfg.agent_password or "", True)


def verify_v1(header: Optional[AuthHeader], now_s: int, cfg: AuthConfig) -> None:
    """4.2.2 ``X-OCS-Auth`` check (no URI binding, root@sys password, ts expiry).

    A missing token (including requests that only carry ``X-OCS-Header``, which
    4.2.2 does not understand) gives 401 ``Common.Unauthorized`` code 10008.
    """
    if header is None:
        raise ApiError(401, "Common.Unauthorized",
                       "Unauthorized: X-OCS-Auth not found in http request header")
    verify_timestamp(header.ts, now_s)
    if cfg.identity == "SINGLE":
        return
    if header.auth != cfg.root_password:
        raise unauthorized("Security.Authentication.IncorrectOceanbasePassword",
                           "OceanBase password is incorrect")
