"""Request pipeline of the fake agent: obshell's middleware order, then the handlers."""

from __future__ import annotations

import math
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Optional

from ._auth import AuthHeader, decode_v1, decode_v2, verify_v1, verify_v2
from ._crypto import BodyKeyError, BodyLengthError, BodyPanicError, aes_decrypt_body
from ._errors import NO_DATA, ApiError, PanicError, envelope, new_trace_id, panic_envelope
from ._golike import go_json, parse_go_json, to_plain
from ._handlers import route
from ._record import RecordedRequest
from ._server import IncomingRequest, Reply

if TYPE_CHECKING:
    from ._agent import FakeAgent

_PROTECTED = ("/api/v1/agent/", "/api/v1/task/", "/api/v1/upgrade/")


class Context:
    """Per-request state shared by the pipeline and the handlers."""

    def __init__(self, agent: FakeAgent, req: IncomingRequest, now: float) -> None:
        self.agent = agent
        self.req = req
        self.now = now
        self.now_s = math.floor(now)
        path, _, query = req.target.partition("?")
        self.raw_path = path
        self.path = urllib.parse.unquote(path)
        self.query = urllib.parse.parse_qs(query, keep_blank_values=True)
        self.header: Optional[AuthHeader] = None
        self.body = req.body
        self.body_json: Any = None
        self.trace_id = ""
        self.after_send: list[Any] = []
        self.drop_reply = False


def handle(agent: FakeAgent, req: IncomingRequest) -> Reply:
    """Answer one request (called from the connection threads)."""
    started = time.monotonic()
    ctx = Context(agent, req, agent.now())
    status, err_code = 0, None
    reply: Reply
    try:
        reply, status, err_code = _pipeline(ctx, started)
    except Exception:  # a bug in the fake must not kill the connection thread silently
        agent._log.exception("fake agent failed on %s %s", req.method, req.target)
        body = panic_envelope(agent.started_at)
        reply, status, err_code = Reply(500, go_json(body)), 500, "Common.Unexpected"
    agent._record(RecordedRequest(
        method=req.method, uri=req.target, headers=dict(req.headers),
        auth_kind=ctx.header.kind if ctx.header is not None else None,
        header_json=ctx.header.raw_json if ctx.header is not None else None,
        body_bytes=req.body, body_json=ctx.body_json,
        status=status if reply.mode in ("normal", "truncate") else 0,
        err_code=err_code,
    ))
    reply.after_send.extend(ctx.after_send)
    return reply


def _answer(ctx: Context, started: float, status: int, data: Any = NO_DATA,
            error: Optional[ApiError] = None) -> tuple[Reply, int, Optional[str]]:
    trace = ctx.trace_id if error is None or error.trace else ""
    duration = int((time.monotonic() - started) * 1000)
    body = envelope(now=ctx.agent.now(), status=status, trace_id=trace, duration_ms=duration,
                    data=data, error=error)
    reply = Reply(status, go_json(body))
    if ctx.agent._faults.take_truncate():
        reply.mode = "truncate"
    return reply, status, error.err_code if error is not None else None


def _pipeline(ctx: Context, started: float) -> tuple[Reply, int, Optional[str]]:
    agent, req = ctx.agent, ctx.req
    faults = agent._faults
    if faults.take_reset():
        return Reply(mode="reset"), 0, None
    rule = faults.take_fail(ctx.path)
    if rule is not None:
        if rule.err_code is None:
            ctype, text = rule.body()
            return Reply(rule.status, text.encode(), content_type=ctype), rule.status, None
        ctx.trace_id = new_trace_id()
        return _answer(ctx, started, rule.status,
                       error=ApiError(rule.status, rule.err_code, rule.error_message()))
    try:
        _decrypt(ctx)
    except ApiError as exc:
        return _answer(ctx, started, exc.status, error=exc)
    except PanicError:
        return Reply(500, go_json(panic_envelope(agent.started_at))), 500, "Common.Unexpected"
    ctx.trace_id = "" if req.target == "/api/v1/status" else (
        req.header_lookup("X-OBSHELL-Trace-ID") or new_trace_id())
    try:
        handler = route(ctx)
        if handler is None:
            raise ApiError(404, "Common.NotFound", "Element not found: 404 not found")
        if ctx.path.startswith(_PROTECTED):
            _verify(ctx)
        agent._dags.tick()
        data = handler(ctx)
    except ApiError as exc:
        return _answer(ctx, started, exc.status, error=exc)
    except PanicError:
        return Reply(500, go_json(panic_envelope(agent.started_at))), 500, "Common.Unexpected"
    if ctx.drop_reply:
        return Reply(mode="close"), 0, None
    return _answer(ctx, started, 200, data=data)


def _decrypt(ctx: Context) -> None:
    """``HeaderDecrypt`` + ``BodyDecrypt`` + ``PaddingBody``."""
    agent, req = ctx.agent, ctx.req
    if agent.legacy_v1:
        token = req.header_lookup("X-OCS-Auth")
        if token:
            ctx.header = decode_v1(token, agent._key)
    else:
        agent_hdr = req.header_lookup("X-OCS-Agent-Header")
        ocs_hdr = req.header_lookup("X-OCS-Header")
        if agent_hdr:
            ctx.header = decode_v2(agent_hdr, agent._key, agent=True)
        elif ocs_hdr:
            ctx.header = decode_v2(ocs_hdr, agent._key, agent=False)
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
    agent = ctx.agent
    cfg = agent._auth_config()
    if agent.legacy_v1:
        verify_v1(ctx.header, ctx.now_s, cfg)
        return
    parts = ctx.path.split("/")
    task_id = parts[5] if ctx.path.startswith("/api/v1/task/") and len(parts) > 5 else ""
    if task_id[:1] in ("4", "5") and ctx.header is not None:
        _verify_obproxy_task(ctx)
        return
    verify_v2(ctx.header, ctx.req.target, ctx.now_s, cfg, agent._key)


def _verify_obproxy_task(ctx: Context) -> None:
    from ._auth import _verify_auth
    from ._errors import unauthorized

    header = ctx.header
    assert header is not None
    if header.uri != ctx.req.target:
        raise ApiError(401, "Security.Authentication.Header.UriMismatch", "URI mismatch")
    if header.kind != "v2-agent":
        raise unauthorized("Security.Authentication.WithAgentPassword",
                           "Should use agent_password to verify: this route only support agent "
                           "password")
    if ctx.agent.agent_password is None:
        raise unauthorized("Security.Authentication.AgentPasswordNotInitialized",
                           "Agent password is not initialized")
    _verify_auth(header, ctx.now_s, ctx.agent.agent_password, True)


