"""Request pipeline of the fake agent: injected faults, obshell's middleware order, handlers.

:func:`handle` answers one request from the agent's :class:`AgentState`; it never sees the
``FakeAgent`` facade. Order, as in obshell: faults that act before the agent reads anything
(reset, hang, fail), header and body decryption, trace id, routing, ``Verify`` for protected
routes, the handler; then the faults that act on the answer (a dropped reply after a task
was created, a truncated answer).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable, Optional

from ._auth import decode_v1, decode_v2, verify_auth, verify_v1, verify_v2
from ._context import Context
from ._crypto import BodyKeyError, BodyLengthError, BodyPanicError, aes_decrypt_body
from ._errors import (
    NO_DATA,
    ApiError,
    NoRouteError,
    PanicError,
    envelope,
    new_trace_id,
    panic_envelope,
    unauthorized,
)
from ._golike import go_json, parse_go_json, to_plain
from ._record import RecordedRequest
from ._routes import is_protected, route
from ._server import IncomingRequest, Reply
from ._state import AgentState

_log = logging.getLogger("obshell_sdk.testing")

#: (reply, status recorded, errCode recorded)
Outcome = tuple[Reply, int, Optional[str]]


def handle(state: AgentState, req: IncomingRequest) -> Reply:
    """Answer one request (called from the connection threads)."""
    started = time.monotonic()
    ctx = Context(state, req, state.now())
    try:
        reply, status, err_code = _pipeline(ctx, started)
    except Exception:  # a bug in the fake must not kill the connection thread silently
        _log.exception("fake agent failed on %s %s", req.method, req.target)
        reply, status, err_code = _panic(state)
    if reply.mode == "normal" and state.faults.take_truncate(ctx.path):
        reply.mode = "truncate"
    state.record(RecordedRequest(
        method=req.method, uri=req.target, headers=dict(req.headers),
        auth_kind=ctx.header.kind if ctx.header is not None else None,
        header_json=ctx.header.raw_json if ctx.header is not None else None,
        body_bytes=req.body, body_json=ctx.body_json,
        status=status if reply.mode in ("normal", "truncate") else 0,
        err_code=err_code,
    ))
    reply.after_send.extend(ctx.after_send)
    return reply


def _panic(state: AgentState) -> Outcome:
    said = None if state.numeric_errors else "Common.Unexpected"  # the errCode sent
    return Reply(500, go_json(panic_envelope(state.started_at, state.numeric_errors))), 500, said


def _answer(ctx: Context, started: float, status: int, data: Any = NO_DATA,
            error: Optional[ApiError] = None,
            edit: Optional[Callable[[Any], Any]] = None) -> Outcome:
    trace = ctx.trace_id if error is None or error.trace else ""
    duration = int((time.monotonic() - started) * 1000)
    numeric = False
    if error is not None and ctx.state.numeric_errors:  # as obshell before 4.3.1
        numeric, status = True, error.numeric()[0]
    body = envelope(now=ctx.state.now(), status=status, trace_id=trace, duration_ms=duration,
                    data=data, error=error, numeric=numeric)
    if edit is not None:  # ``edit_data_next``: a copy of the data as it would be sent, edited
        try:
            body["data"] = edit(json.loads(go_json(body.get("data"))))
            return Reply(status, go_json(body)), status, None
        except Exception:  # the test's own mistake: said loudly, never taken for the agent's
            _log.exception("FakeAgent.edit_data_next: the edit given raised or returned what is "
                           "not JSON; answering %s %s with a 500", ctx.req.method, ctx.path)
            raise
    return Reply(status, go_json(body)), status, (
        error.err_code if error is not None and not numeric else None)


def _early_faults(ctx: Context, started: float) -> Optional[Outcome]:
    """Faults that hit a request before the agent reads it: reset, hang, fail."""
    faults = ctx.state.faults
    if faults.take_reset(ctx.path):
        return Reply(mode="reset"), 0, None
    seconds = faults.take_hang(ctx.path)
    if seconds is not None:
        return Reply(mode="hang", hang_seconds=seconds), 0, None
    rule = faults.take_fail(ctx.path, ctx.req.method)
    if rule is None:
        return None
    if rule.err_code is None:
        ctype, text = rule.body()
        return Reply(rule.status, text.encode(), content_type=ctype), rule.status, None
    ctx.trace_id = new_trace_id()
    return _answer(ctx, started, rule.status,
                   error=ApiError(rule.status, rule.err_code, rule.error_message()))


def _pipeline(ctx: Context, started: float) -> Outcome:
    early = _early_faults(ctx, started)
    if early is not None:
        return early
    state, req = ctx.state, ctx.req
    state.sync_version()  # an upgrade that ended brings its binary's dialect before we decode
    try:
        _decrypt(ctx)
    except ApiError as exc:
        return _answer(ctx, started, exc.status, error=exc)
    except PanicError:
        return _panic(state)
    ctx.trace_id = "" if req.target == "/api/v1/status" else (
        req.header_lookup("X-OBSHELL-Trace-ID") or new_trace_id())
    try:
        found = route(req.method, ctx.path)
        if found is None:
            raise NoRouteError()
        if is_protected(ctx.path):
            _verify(ctx)
        state.dags.tick()
        data = found.handler(ctx)
    except ApiError as exc:
        return _answer(ctx, started, exc.status, error=exc)
    except PanicError:
        return _panic(state)
    if (found.creates_task and state.faults.take_drop_after_create()) or \
            state.faults.take_drop(req.method, ctx.path):
        return Reply(mode="close"), 0, None  # it was done; the caller never hears of it
    return _answer(ctx, started, 200, data=data,
                   edit=state.faults.take_edit(req.method, ctx.path))


def _decode_header(ctx: Context) -> None:
    """``HeaderDecrypt``: the auth header of the agent's dialect, if any."""
    state, req = ctx.state, ctx.req
    if state.legacy_v1:
        token = req.header_lookup("X-OCS-Auth")
        if token:
            ctx.header = decode_v1(token, state.key)
        return
    agent_hdr = req.header_lookup("X-OCS-Agent-Header")
    ocs_hdr = req.header_lookup("X-OCS-Header")
    if agent_hdr:
        ctx.header = decode_v2(agent_hdr, state.key, agent=True)
    elif ocs_hdr:
        ctx.header = decode_v2(ocs_hdr, state.key, agent=False)


def _decrypt(ctx: Context) -> None:
    """``HeaderDecrypt`` + ``BodyDecrypt`` + ``PaddingBody``."""
    _decode_header(ctx)
    req = ctx.req
    body = req.body
    if (ctx.header is not None and ctx.header.kind != "v1" and body
            and req.target != "/api/v1/package"):
        try:
            body = aes_decrypt_body(body, ctx.header.keys or b"")
        except BodyKeyError as exc:
            raise ApiError(500, "Request.Body.Decrypt.AES.KeyAndIv.Invalid",
                           f"Unauthorized: {exc}", trace=False) from None
        except BodyLengthError as exc:
            raise ApiError(500, "Request.Body.Decrypt.AES.ContentLength.Invalid",
                           f"Unauthorized: {exc}", trace=False) from None
        except BodyPanicError:
            raise PanicError from None
    if not req.body and not req.chunked:
        body = b"{}"
    ctx.body = body
    try:
        ctx.body_json = to_plain(parse_go_json(body))
    except ValueError:
        ctx.body_json = None


def _verify(ctx: Context) -> None:
    state = ctx.state
    cfg = state.auth_config()
    if state.legacy_v1:
        verify_v1(ctx.header, ctx.now_s, cfg)
        return
    parts = ctx.path.split("/")
    task_id = parts[5] if ctx.path.startswith("/api/v1/task/") and len(parts) > 5 else ""
    if task_id[:1] in ("4", "5") and ctx.header is not None:
        _verify_obproxy_task(ctx)
        return
    verify_v2(ctx.header, ctx.req.target, ctx.now_s, cfg, state.key)


def _verify_obproxy_task(ctx: Context) -> None:
    header = ctx.header
    assert header is not None
    if header.uri != ctx.req.target:
        raise ApiError(401, "Security.Authentication.Header.UriMismatch", "URI mismatch")
    if header.kind != "v2-agent":
        raise unauthorized("Security.Authentication.WithAgentPassword",
                           "Should use agent_password to verify: this route only support agent "
                           "password")
    if ctx.state.agent_password is None:
        raise unauthorized("Security.Authentication.AgentPasswordNotInitialized",
                           "Agent password is not initialized")
    verify_auth(header, ctx.now_s, ctx.state.agent_password, True)
