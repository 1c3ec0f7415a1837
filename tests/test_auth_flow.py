"""The auth flow as a pure generator: which requests it yields, and how it mends refusals.

No sockets: each test drives :meth:`PasswordAuth._auth_flow` by hand (``next``, ``send``
an :class:`Envelope`, ``throw`` an SDK error), as :class:`obshell_sdk._transport.Transport`
does, and checks the exact sequence of requests and what the signed ones carry.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import Counter
from datetime import datetime, timezone

import pytest
from Crypto.PublicKey import RSA
from vectorlib import aes_decrypt, private_key, public_key_b64, rsa_decrypt

from obshell_sdk import (
    AuthError,
    AuthExpiredError,
    ConnectError,
    ConnectionLostError,
    DecodeError,
    DecryptFailedError,
    PasswordAuth,
    PasswordKindError,
    ReadTimeoutError,
    ServerError,
    TransportError,
    UriMismatchError,
    WrongPasswordError,
)
from obshell_sdk._models import Envelope
from obshell_sdk._request import Request

AGENT = "127.0.0.1:2886"
NOW = 1_795_756_880
TARGET = "/api/v1/task/dag/11?show_details=true"
INFO = {"identity": "CLUSTER AGENT", "version": "4.3.0.0", "security": False,
        "supportedAuth": ["v2"]}
INFO_SECURE = dict(INFO, security=True)
INFO_V1 = {"identity": "CLUSTER AGENT", "version": "4.2.2.0"}
GET_INFO = Request("GET", "/api/v1/info", signed=False)
GET_SECRET = Request("GET", "/api/v1/secret", signed=False)
GET_TIME = Request("GET", "/api/v1/time", signed=False)


@pytest.fixture(scope="module")
def other_key():
    """A second agent key (the agent's key after a restart, or another agent's)."""
    return RSA.generate(1024)


def _ok(data=None):
    return Envelope.from_json({"successful": True, "status": 200, "data": data})


def _secret(key=None):
    return _ok({"public_key": public_key_b64(key), "ip": "127.0.0.1", "port": 2886})


def _err(cls, *, status=401, err_code="", code=0):
    return cls(status=status, err_code=err_code, code=code, message="refused", trace_id="t",
               method="GET", path="/api/v1/task/dag/11")


def _transport_err(cls):
    return cls("boom", method="GET", path="/api/v1/x", agent=AGENT)


def _expired():
    return _err(AuthExpiredError, err_code="Security.Authentication.Expired")


def _decrypt_failed():
    return _err(DecryptFailedError, err_code="Security.Authentication.Header.DecryptFailed")


def _rfc3339(unix):
    return datetime.fromtimestamp(unix, timezone.utc).isoformat().replace("+00:00", "Z")


def _flow(auth, request=None, agent=AGENT, now=NOW):
    return auth._auth_flow(request or Request("GET", TARGET), agent, clock=lambda: now)


def _header(signed, key=None):
    names = [n for n in signed.headers if n in ("X-OCS-Header", "X-OCS-Agent-Header")]
    assert len(names) == 1, signed.headers
    return json.loads(rsa_decrypt(signed.headers[names[0]], key))


def _to_signed(flow, info=INFO, key=None):
    """Drive a fresh flow through /info and /secret; the signed request."""
    assert next(flow) == GET_INFO
    assert flow.send(_ok(info)) == GET_SECRET
    signed = flow.send(_secret(key))
    assert signed.signed
    return signed


def _finish(flow):
    with pytest.raises(StopIteration):
        flow.send(_ok({"done": True}))


def _learnt(auth=None, agent=AGENT, info=INFO, key=None):
    """An auth that has completed one flow for ``agent``."""
    auth = auth or PasswordAuth("pw", "agent-pw")
    flow = _flow(auth, agent=agent)
    _to_signed(flow, info, key)
    _finish(flow)
    return auth


def _within(seconds, fn):
    """Run ``fn`` in a thread; fail if it does not return in time (a lock left held)."""
    out = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked: a fetch lock was left held"
    return out[0]


# -- the plain sequences -------------------------------------------------------------------


def test_fresh_agent_info_then_secret_then_signed():
    flow = _flow(PasswordAuth("pw"))
    assert next(flow) == GET_INFO
    assert flow.send(_ok(INFO)) == GET_SECRET
    signed = flow.send(_secret())
    assert (signed.method, signed.target, signed.signed) == ("GET", TARGET, True)
    assert set(signed.headers) == {"X-OCS-Header"}
    assert _header(signed) == {"Auth": "pw", "Ts": str(NOW + 60), "Uri": TARGET, "Keys": None}
    _finish(flow)


def test_known_agent_yields_the_signed_request_first():
    auth = _learnt()
    flow = _flow(auth, now=NOW + 5)
    signed = next(flow)
    assert signed.signed and signed.target == TARGET
    assert _header(signed)["Ts"] == str(NOW + 65)
    _finish(flow)


def test_unsigned_requests_carry_no_auth_and_no_body():
    flow = _flow(PasswordAuth("pw"), Request("POST", "/api/v1/agent/upgrade", b'{"a":1}'))
    for request in (next(flow), flow.send(_ok(INFO))):
        assert request.body is None and request.headers == {} and not request.signed
    flow.close()


def test_body_is_only_sent_encrypted_and_uri_is_the_target():
    body = b'{"version":"4.3.1.0","release":"1.el7"}'
    target = "/api/v1/agent/upgrade?x=a%20b&y=%2F"
    flow = _flow(PasswordAuth("pw"), Request("POST", target, body))
    signed = _to_signed(flow)
    header = _header(signed)
    assert header["Uri"] == target == signed.target
    assert signed.body != body and body not in signed.body
    key_iv = base64.b64decode(header["Keys"])
    assert len(key_iv) == 32
    assert aes_decrypt(signed.body, key_iv) == body
    # Re-signed after a key change: encrypted afresh from the plaintext, never twice over.
    assert flow.throw(_decrypt_failed()) == GET_SECRET
    resigned = flow.send(_secret())
    key_iv2 = base64.b64decode(_header(resigned)["Keys"])
    assert key_iv2 != key_iv  # a fresh AES key and IV (os.urandom)
    assert aes_decrypt(resigned.body, key_iv2) == body
    _finish(flow)


def test_empty_body_is_sent_empty_without_keys():
    signed = _to_signed(_flow(PasswordAuth("pw"), Request("POST", "/api/v1/x", b"")))
    assert signed.body == b"" and _header(signed)["Keys"] is None


# -- mending a key the agent no longer has -------------------------------------------------


def test_decrypt_failed_refetches_the_key_and_resigns_once(other_key):
    auth = PasswordAuth("pw")
    flow = _flow(auth)
    _to_signed(flow)
    assert flow.throw(_decrypt_failed()) == GET_SECRET
    resigned = flow.send(_secret(other_key))
    assert resigned.signed and resigned.target == TARGET
    assert _header(resigned, other_key)["Uri"] == TARGET
    _finish(flow)
    # The new key is kept: the next flow signs with it at once.
    assert _header(next(_flow(auth)), other_key)["Auth"] == "pw"


def test_a_second_decrypt_failed_propagates(other_key):
    flow = _flow(PasswordAuth("pw"))
    _to_signed(flow)
    assert flow.throw(_decrypt_failed()) == GET_SECRET
    flow.send(_secret(other_key))
    second = _decrypt_failed()
    with pytest.raises(DecryptFailedError) as info:
        flow.throw(second)
    assert info.value is second


# -- mending a clock that disagrees --------------------------------------------------------


def test_expired_measures_the_clock_and_resigns_with_shifted_ts():
    auth = PasswordAuth("pw", lifetime=60)
    flow = _flow(auth)
    assert _header(_to_signed(flow))["Ts"] == str(NOW + 60)
    assert flow.throw(_expired()) == GET_TIME
    resigned = flow.send(_ok(_rfc3339(NOW + 7200)))
    assert resigned.signed and resigned.target == TARGET
    assert _header(resigned)["Ts"] == str(NOW + 7260)
    _finish(flow)
    assert _header(next(_flow(auth)))["Ts"] == str(NOW + 7260)  # the offset is kept


def test_agent_clock_behind_shifts_ts_back():
    flow = _flow(PasswordAuth("pw"))
    _to_signed(flow)
    assert flow.throw(_expired()) == GET_TIME
    assert _header(flow.send(_ok(_rfc3339(NOW - 300))))["Ts"] == str(NOW - 240)


def test_a_second_expired_propagates():
    flow = _flow(PasswordAuth("pw"))
    _to_signed(flow)
    flow.throw(_expired())
    flow.send(_ok(_rfc3339(NOW + 7200)))
    second = _expired()
    with pytest.raises(AuthExpiredError) as info:
        flow.throw(second)
    assert info.value is second


def test_an_offset_under_a_second_still_resigns_once():
    """A header can expire on its way (a slow proxy, a balancer whose agents' clocks differ):
    a fresh one is worth one request even when the clocks agree."""
    flow = _flow(PasswordAuth("pw"))
    _to_signed(flow)
    assert flow.throw(_expired()) == GET_TIME
    resigned = flow.send(_ok(_rfc3339(NOW + 0.5)))
    assert resigned.signed and _header(resigned)["Ts"] == str(NOW + 60)
    second = _expired()
    with pytest.raises(AuthExpiredError) as info:
        flow.throw(second)
    assert info.value is second


def test_an_offset_already_applied_still_resigns_once():
    auth = PasswordAuth("pw")
    flow = _flow(auth)
    _to_signed(flow)
    flow.throw(_expired())
    flow.send(_ok(_rfc3339(NOW + 7200)))
    _finish(flow)
    flow = _flow(auth)
    next(flow)
    assert flow.throw(_expired()) == GET_TIME
    resigned = flow.send(_ok(_rfc3339(NOW + 7200.3)))  # the same offset
    assert _header(resigned)["Ts"] == str(NOW + 7260)
    _finish(flow)


@pytest.mark.parametrize(
    "time_reply",
    [
        _err(ServerError, status=500, err_code="Common.Unexpected"),
        _ok(12345),
        _ok(None),
        _ok("yesterday"),
        _ok("0001-01-01T00:00:00Z"),
    ],
    ids=["500", "number", "null", "garbage", "zero-time"],
)
def test_when_time_cannot_be_read_the_request_is_resigned_once_as_it_was(time_reply):
    flow = _flow(PasswordAuth("pw"))
    _to_signed(flow)
    assert flow.throw(_expired()) == GET_TIME
    if isinstance(time_reply, Envelope):
        resigned = flow.send(time_reply)
    else:
        resigned = flow.throw(time_reply)
    assert resigned.signed and _header(resigned)["Ts"] == str(NOW + 60)  # no offset learnt
    second = _expired()
    with pytest.raises(AuthExpiredError) as info:
        flow.throw(second)
    assert info.value is second


@pytest.mark.parametrize("error", [ConnectError, ReadTimeoutError], ids=["connect", "read-timeout"])
def test_when_reading_the_time_fails_in_transport_that_error_is_raised(error):
    """The call itself is failing (agent gone, no time left): "sync the clocks" would mislead,
    and a rollout would take the rejected POST for a final failure."""
    flow = _flow(PasswordAuth("pw"))
    _to_signed(flow)
    assert flow.throw(_expired()) == GET_TIME
    lost = _transport_err(error)
    with pytest.raises(error) as info:
        flow.throw(lost)
    assert info.value is lost


# -- mending an agent that changed ---------------------------------------------------------


@pytest.mark.parametrize(
    "refusal",
    [
        lambda: _err(PasswordKindError, err_code="Security.Authentication.WithAgentPassword"),
        lambda: _err(AuthError, status=400, err_code="Request.Header.NotFound"),
    ],
    ids=["password-kind", "header-not-found"],
)
def test_a_changed_agent_is_asked_again_once(refusal, other_key):
    auth = PasswordAuth("root-pw", "agent-pw")
    flow = _flow(auth)
    assert set(_to_signed(flow, INFO).headers) == {"X-OCS-Header"}
    assert flow.throw(refusal()) == GET_INFO
    assert flow.send(_ok(INFO_SECURE)) == GET_SECRET
    resigned = flow.send(_secret(other_key))
    assert set(resigned.headers) == {"X-OCS-Agent-Header"}
    assert _header(resigned, other_key)["Auth"] == "agent-pw"
    second = refusal()
    with pytest.raises(AuthError) as info:
        flow.throw(second)
    assert info.value is second


def test_an_old_agents_bare_10008_reads_its_clock_too_and_resigns_once(other_key):
    """An agent before 4.3.1 refuses an expired header as it refuses anything, with a bare
    10008: the flow reads its clock as well as /info and /secret; one re-signed request."""
    auth = PasswordAuth("root-pw", "agent-pw")
    flow = _flow(auth)
    _to_signed(flow, INFO)
    assert flow.throw(_err(AuthError, code=10008)) == GET_TIME
    assert flow.send(_ok(_rfc3339(NOW + 7200))) == GET_INFO
    assert flow.send(_ok(INFO_SECURE)) == GET_SECRET
    resigned = flow.send(_secret(other_key))
    assert set(resigned.headers) == {"X-OCS-Agent-Header"}
    assert _header(resigned, other_key)["Auth"] == "agent-pw"
    assert _header(resigned, other_key)["Ts"] == str(NOW + 7260)
    second = _err(AuthError, code=10008)
    with pytest.raises(AuthError) as info:
        flow.throw(second)
    assert info.value is second


@pytest.mark.parametrize(
    "refusal",
    [
        _err(AuthError, err_code="Common.Unauthorized"),
        _err(AuthError, err_code="Security.Something.New", code=10008),
        _err(UriMismatchError, err_code="Security.Authentication.Header.UriMismatch"),
        _err(WrongPasswordError, err_code="Security.Authentication.IncorrectAgentPassword"),
    ],
    ids=["unauthorized", "10008-with-err-code", "uri-mismatch", "wrong-password"],
)
def test_other_refusals_propagate_at_once(refusal):
    flow = _flow(PasswordAuth("pw"))
    _to_signed(flow)
    with pytest.raises(AuthError) as info:
        flow.throw(refusal)
    assert info.value is refusal


# -- errors that cannot be mended ----------------------------------------------------------


def _to_yield(flow, where, other_key):
    """Drive a fresh flow to the named yield."""
    if where == "info":
        return next(flow)
    if where == "secret":
        next(flow)
        return flow.send(_ok(INFO))
    signed = _to_signed(flow)
    if where == "signed":
        return signed
    if where in ("secret-again", "resigned-key"):
        refetch = flow.throw(_decrypt_failed())
        return refetch if where == "secret-again" else flow.send(_secret(other_key))
    if where in ("info-again", "resigned-agent"):
        again = flow.throw(_err(PasswordKindError, err_code="Security.Authentication."
                                "WithAgentPassword"))
        if where == "info-again":
            return again
        flow.send(_ok(INFO))
        return flow.send(_secret())
    assert where == "resigned-clock"
    flow.throw(_expired())
    return flow.send(_ok(_rfc3339(NOW + 7200)))


YIELDS = ["info", "secret", "signed", "secret-again", "resigned-key", "info-again",
          "resigned-agent", "resigned-clock"]
UNMENDABLE = [
    lambda: _err(WrongPasswordError, err_code="Security.Authentication.IncorrectOceanbasePassword"),
    lambda: _transport_err(TransportError),
    lambda: _transport_err(ConnectError),
    lambda: _transport_err(ConnectionLostError),
    lambda: _transport_err(ReadTimeoutError),
]


@pytest.mark.parametrize("make_error", UNMENDABLE,
                         ids=["wrong-password", "transport", "connect", "lost", "read-timeout"])
@pytest.mark.parametrize("where", YIELDS)
def test_unmendable_errors_propagate_unchanged_at_any_yield(where, make_error, other_key):
    auth = PasswordAuth("pw")
    flow = _flow(auth)
    _to_yield(flow, where, other_key)
    error = make_error()
    with pytest.raises(type(error)) as info:
        flow.throw(error)
    assert info.value is error
    # Nothing is left locked: another flow for this agent gets going.
    assert _within(5, lambda: next(_flow(auth))) is not None


def test_a_flow_closed_mid_fetch_leaves_nothing_locked():
    auth = PasswordAuth("pw")
    flow = _flow(auth)
    next(flow)
    flow.close()  # the driver gave up while /info was out (what Transport.send does)
    assert _within(5, lambda: next(_flow(auth))) == GET_INFO
    flow = _flow(auth)
    next(flow)
    flow.send(_ok(INFO))
    flow.close()  # ... and while /secret was out: the dialect is known, the key is not
    assert _within(5, lambda: next(_flow(auth))) == GET_SECRET


# -- bad answers to /info and /secret ------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "where"),
    [
        ({"public_key": "garbage!"}, "data.public_key"),
        ({"public_key": base64.b64encode(b"junk").decode()}, "data.public_key"),
        ({"public_key": 42}, "data.public_key"),
        ({"ip": "127.0.0.1"}, "data.public_key"),
        (None, "data"),
    ],
)
def test_a_bad_key_in_secret_is_a_decode_error(secret, where):
    auth = PasswordAuth("pw")
    flow = _flow(auth)
    next(flow)
    flow.send(_ok(INFO))
    with pytest.raises(DecodeError) as info:
        flow.send(_ok(secret))
    assert info.value.where == where
    # The dialect was learnt, the key was not: the next flow asks only for the key.
    assert _within(5, lambda: next(_flow(auth))) == GET_SECRET


def test_a_private_key_in_secret_is_refused():
    flow = _flow(PasswordAuth("pw"))
    next(flow)
    flow.send(_ok(INFO))
    private = base64.b64encode(private_key().export_key("DER")).decode()
    with pytest.raises(DecodeError) as info:
        flow.send(_ok({"public_key": private}))
    assert info.value.where == "data.public_key"


@pytest.mark.parametrize(
    ("info", "where"),
    [({"version": "4.3.0.0"}, "data.identity"), ({"identity": "SINGLE", "version": 4},
                                                  "data.version"), ([], "data")],
)
def test_a_bad_info_is_a_decode_error(info, where):
    flow = _flow(PasswordAuth("pw"))
    next(flow)
    with pytest.raises(DecodeError) as raised:
        flow.send(_ok(info))
    assert raised.value.where == where


# -- state per agent -----------------------------------------------------------------------


def test_two_agents_keep_separate_state(other_key):
    auth = PasswordAuth("root-pw", "agent-pw")
    a, b = "10.0.0.1:2886", "10.0.0.2:2886"
    _learnt(auth, a, INFO_SECURE, None)
    flow = _flow(auth, agent=b)
    assert next(flow) == GET_INFO  # what was learnt of a says nothing of b
    assert flow.send(_ok(INFO_V1)) == GET_SECRET
    signed_b = flow.send(_secret(other_key))
    assert set(signed_b.headers) == {"X-OCS-Auth"}
    _finish(flow)
    # a's clock is off; b's is not.
    flow = _flow(auth, agent=a)
    next(flow)
    assert flow.throw(_expired()) == GET_TIME
    flow.send(_ok(_rfc3339(NOW + 7200)))
    _finish(flow)
    signed_a = next(_flow(auth, agent=a))
    assert set(signed_a.headers) == {"X-OCS-Agent-Header"}
    assert _header(signed_a) == {"Auth": "agent-pw", "Ts": str(NOW + 7260), "Uri": TARGET,
                                 "Keys": None}
    signed_b = next(_flow(auth, agent=b))
    token = json.loads(rsa_decrypt(signed_b.headers["X-OCS-Auth"], other_key))
    assert token == {"password": "root-pw", "ts": NOW + 60}
    # a's key is dropped; b's is kept.
    flow = _flow(auth, agent=a)
    next(flow)
    assert flow.throw(_decrypt_failed()) == GET_SECRET
    flow.close()
    assert next(_flow(auth, agent=a)) == GET_SECRET
    assert next(_flow(auth, agent=b)).signed


def test_concurrent_flows_for_one_agent_fetch_once():
    auth = PasswordAuth("pw")
    asked: Counter[str] = Counter()
    count_lock = threading.Lock()
    barrier = threading.Barrier(16)
    headers: list[dict] = []
    errors: list[BaseException] = []

    def drive():
        try:
            flow = _flow(auth)
            barrier.wait()
            outgoing = next(flow)
            while not outgoing.signed:
                with count_lock:
                    asked[outgoing.target] += 1
                time.sleep(0.02)  # the agent takes a moment: everyone else piles up
                reply = _ok(INFO) if outgoing.target == "/api/v1/info" else _secret()
                outgoing = flow.send(reply)
            headers.append(_header(outgoing))
            try:
                flow.send(_ok())
            except StopIteration:
                return
            raise AssertionError("the flow did not end after the signed reply")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=drive, daemon=True) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert asked == {"/api/v1/info": 1, "/api/v1/secret": 1}
    assert len(headers) == 16 and all(h["Uri"] == TARGET for h in headers)


def test_the_clock_is_a_warning_only_when_its_offset_is_news(caplog):
    # Re-measured every `lifetime` seconds: a CLI would print the same warning each minute.
    auth = PasswordAuth("pw")
    with caplog.at_level(logging.INFO, logger="obshell_sdk"):
        flow = _flow(auth)
        _to_signed(flow)
        flow.throw(_expired())
        flow.send(_ok(_rfc3339(NOW + 7200)))  # news: 2 hours ahead
        _finish(flow)
        flow = _flow(auth)
        next(flow)
        flow.throw(_expired())
        flow.send(_ok(_rfc3339(NOW + 7200.3)))  # the same offset again
        flow = _flow(PasswordAuth("pw"))
        _to_signed(flow)
        flow.throw(_expired())
        flow.send(_ok(_rfc3339(NOW + 0.5)))  # under a second: no offset at all
    clocks = [r for r in caplog.records if "its clock is" in r.getMessage()]
    assert [r.levelno for r in clocks] == [logging.WARNING, logging.INFO, logging.INFO]
    assert "+7200.0 s" in clocks[0].getMessage()
