"""Signing, checked by decrypting with the agent's private key from the recorded vectors.

Signed requests come from driving :meth:`PasswordAuth._auth_flow` as a pure generator:
``_signed`` answers its ``/info`` and ``/secret`` requests from given JSON, with a fixed clock.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import logging
import pickle
from datetime import datetime, timezone

import pytest
from Crypto.PublicKey import RSA
from vectorlib import aes_decrypt, private_key, public_key_b64, rsa_decrypt, vectors

from obshell_sdk import AgentInfo, AuthExpiredError, InvalidArgumentError, PasswordAuth
from obshell_sdk._agent_state import choose_version
from obshell_sdk._crypto import PublicKey, aes_encrypt
from obshell_sdk._models import Envelope
from obshell_sdk._request import Request

AGENT = "127.0.0.1:2886"
NOW = 1_795_756_880
KEY_IV = bytes(range(32))


def _info_json(**over):
    base = {"identity": "CLUSTER AGENT", "version": "4.3.0.0", "security": False,
            "supportedAuth": ["v2"]}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def _info(**over):
    return AgentInfo.from_json(_info_json(**over))


def _ok(data=None):
    return Envelope.from_json({"successful": True, "status": 200, "data": data})


def _auth(*args, **kw):
    kw.setdefault("random", lambda n: bytes(range(n)))
    return PasswordAuth(*args, **kw)


def _answer(flow, outgoing, info, key):
    """Answer the flow's unsigned requests until it yields the signed one."""
    while not outgoing.signed:
        if outgoing.target == "/api/v1/info":
            outgoing = flow.send(_ok(info if info is not None else _info_json()))
        elif outgoing.target == "/api/v1/secret":
            outgoing = flow.send(_ok({"public_key": public_key_b64(key)}))
        else:
            pytest.fail(f"unexpected request {outgoing}")
    return outgoing


def _signed(auth, target="/u", body=None, *, info=None, key=None, method="POST", now=NOW,
            **request_kw):
    """The signed request a fresh flow yields once /info and /secret are answered."""
    flow = auth._auth_flow(Request(method, target, body, **request_kw), AGENT, clock=lambda: now)
    try:
        return _answer(flow, next(flow), info, key)
    finally:
        flow.close()


def _header(signed, name="X-OCS-Header", key=None):
    return json.loads(rsa_decrypt(signed.headers[name], key))


def test_v2_header_decrypts_to_obshell_fields_and_body_to_json():
    body = json.dumps({"version": "4.3.1.0", "release": "1.el7"}).encode()
    signed = _signed(_auth("Root@123"), "/api/v1/agent/upgrade", body)
    assert list(signed.headers) == ["X-OCS-Header"]
    assert (signed.method, signed.target, signed.signed) == ("POST", "/api/v1/agent/upgrade", True)
    header = _header(signed)
    assert header == {"Auth": "Root@123", "Ts": str(NOW + 60), "Uri": "/api/v1/agent/upgrade",
                      "Keys": base64.b64encode(KEY_IV).decode()}
    assert isinstance(header["Ts"], str)
    assert signed.body != body
    assert aes_decrypt(signed.body, KEY_IV) == body


def test_v2_without_body_sends_no_keys_and_no_body():
    signed = _signed(_auth("pw"), "/api/v1/task/dag/11?show_details=true", method="GET")
    header = _header(signed)
    assert header["Keys"] is None and header["Uri"] == "/api/v1/task/dag/11?show_details=true"
    assert signed.body is None


def test_agent_password_goes_in_agent_header_only_when_the_agent_has_one():
    signed = _signed(_auth("Root@123", "Agent@1"), info=_info_json(security=True))
    assert list(signed.headers) == ["X-OCS-Agent-Header"]
    assert _header(signed, "X-OCS-Agent-Header")["Auth"] == "Agent@1"
    signed = _signed(_auth("Root@123", "Agent@1"), info=_info_json(security=False))
    assert list(signed.headers) == ["X-OCS-Header"]
    assert _header(signed)["Auth"] == "Root@123"
    # No agent password given: the root password goes in X-OCS-Header even if the agent has one.
    signed = _signed(_auth("Root@123"), info=_info_json(security=True))
    assert list(signed.headers) == ["X-OCS-Header"]
    assert _header(signed)["Auth"] == "Root@123"


def test_single_agent_without_agent_password_gets_no_password():
    signed = _signed(_auth("Root@123"), info=_info_json(identity="SINGLE"))
    assert _header(signed)["Auth"] == ""
    signed = _signed(_auth("Root@123", "Agent@1"), info=_info_json(identity="SINGLE",
                                                                   security=True))
    assert _header(signed, "X-OCS-Agent-Header")["Auth"] == "Agent@1"


def test_v1_token_is_one_block_with_numeric_ts_and_plain_body():
    body = b'{"version":"4.3.1.0"}'
    signed = _signed(_auth("Root@123"), "/api/v1/agent/upgrade", body,
                     info=_info_json(version="4.2.2.0", supportedAuth=None))
    assert set(signed.headers) == {"X-OCS-Auth", "Content-Type"}
    token = signed.headers["X-OCS-Auth"]
    assert len(base64.b64decode(token)) == 128  # one block of the 1024-bit key
    assert json.loads(rsa_decrypt(token)) == {"password": "Root@123", "ts": NOW + 60}
    assert signed.body == body


def test_v1_password_too_long_for_one_block_is_refused_without_echoing_it():
    secret = "S3cret-" + "x" * 200
    with pytest.raises(InvalidArgumentError) as info:
        _signed(_auth(secret), info=_info_json(version="4.2.2.0", supportedAuth=None))
    assert info.value.argument == "password"
    assert secret not in str(info.value) and secret not in repr(info.value)


def test_sectional_encryption_sizes_chunks_from_a_512_bit_key():
    priv = _gen512()
    pub = PublicKey(base64.b64encode(priv.publickey().export_key("DER", pkcs=1)).decode())
    assert pub.bits == 512 and pub.chunk == 53
    text = b"y" * 200
    token = pub.encrypt(text)
    assert len(base64.b64decode(token)) == 64 * 4  # ceil(200 / 53) blocks of 64 bytes
    assert rsa_decrypt(token, priv) == text


def test_a_512_bit_agent_key_signs_a_long_header_in_sections():
    priv = _gen512()
    signed = _signed(_auth("p" * 100, min_key_bits=512), "/api/v1/agent/upgrade", b"{}",
                     key=priv)
    assert len(base64.b64decode(signed.headers["X-OCS-Header"])) % 64 == 0
    assert _header(signed, key=priv)["Auth"] == "p" * 100


def test_a_512_bit_agent_key_is_refused_unless_allowed():
    from obshell_sdk import WeakKeyError

    with pytest.raises(WeakKeyError, match=r"min_key_bits=512\) \(with ObshellClient\.from_env, "
                       r"set OBSHELL_MIN_KEY_BITS=512\)") as info:  # from_env takes no option
        _signed(_auth("pw"), "/api/v1/agent/upgrade", b"{}", key=_gen512())
    assert info.value.bits == 512


def _gen512():
    # pycryptodome refuses to generate < 1024-bit keys; obshell <= 4.4.1 keys are 512-bit.
    from Crypto.Util import number

    while True:
        p, q = number.getPrime(256), number.getPrime(256)
        n, phi = p * q, (p - 1) * (q - 1)
        if n.bit_length() == 512 and number.GCD(65537, phi) == 1:
            return RSA.construct((n, 65537, pow(65537, -1, phi), p, q))


def test_recorded_v2_header_shape_matches_ours():
    """Our header carries the fields of the recorded one (obshell ignores key case)."""
    for vec in vectors():
        plain = vec["plaintext"]["header"]
        if not plain or "X-OCS-Header" not in vec["request"]["headers"]:
            continue
        recorded = json.loads(rsa_decrypt(vec["request"]["headers"]["X-OCS-Header"]))
        assert recorded == json.loads(plain)
        ours = _header(_signed(_auth("x"), "/u", b"{}"))
        assert {k.lower() for k in ours} == {k.lower() for k in recorded}
        return
    pytest.fail("no v2 vector found")


def test_recorded_aes_body_decrypts_with_recorded_keys():
    checked = 0
    for vec in vectors():
        v2 = "X-OCS-Auth" not in vec["request"]["headers"]
        if v2 and vec["plaintext"]["aes_key_b64"] and vec["request"]["body"]:
            key_iv = base64.b64decode(vec["plaintext"]["aes_key_b64"]) + base64.b64decode(
                vec["plaintext"]["aes_iv_b64"])
            assert aes_decrypt(vec["request"]["body"].encode(), key_iv).decode() == \
                vec["plaintext"]["body"]
            ours = aes_encrypt(key_iv, vec["plaintext"]["body"].encode())
            assert ours.decode() == vec["request"]["body"]
            checked += 1
    assert checked


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({}, "v2"),
        ({"supportedAuth": ["v1"], "version": "4.2.2.0"}, "v1"),
        ({"supportedAuth": None, "version": "4.2.2.0"}, "v1"),
        ({"supportedAuth": None, "version": "4.2.2.0-100000192023"}, "v1"),
        ({"supportedAuth": None, "version": "4.2.3.0-100000012024"}, "v2"),
        ({"supportedAuth": None, "version": "4.2.22.0"}, "v2"),
        ({"supportedAuth": ["v1", "v2"]}, "v2"),
    ],
)
def test_auth_version_is_chosen_from_info(over, expected):
    assert choose_version(_info(**over)) == expected
    signed = _signed(_auth("pw"), info=_info_json(**over))
    assert set(signed.headers) == {"X-OCS-Auth" if expected == "v1" else "X-OCS-Header"}


def test_forced_version_wins_when_the_agent_does_not_list_its_dialects():
    # A 4.3 agent without supportedAuth would be v2 by the version rule: forced v1 wins.
    signed = _signed(_auth("pw", version="v1"), info=_info_json(supportedAuth=None))
    assert "X-OCS-Auth" in signed.headers and "X-OCS-Header" not in signed.headers
    assert json.loads(rsa_decrypt(signed.headers["X-OCS-Auth"]))["ts"] == NOW + 60
    signed = _signed(_auth("pw", version="v2"),
                     info=_info_json(version="4.2.2.0", supportedAuth=None))
    assert _header(signed)["Ts"] == str(NOW + 60)


def test_forced_version_the_agent_does_not_list_is_refused_before_signing():
    flow = _auth("pw", version="v1")._auth_flow(Request("GET", "/u"), AGENT, clock=lambda: NOW)
    assert next(flow).target == "/api/v1/info"
    with pytest.raises(InvalidArgumentError, match=r"version='v1'.*lists v2.*drop version="):
        flow.send(_ok(_info_json()))  # supportedAuth ["v2"]


def _rfc3339(unix):
    return datetime.fromtimestamp(unix, timezone.utc).isoformat().replace("+00:00", "Z")


def test_clock_offset_shifts_expiry():
    auth = _auth("pw", lifetime=30)
    flow = auth._auth_flow(Request("GET", "/u"), AGENT, clock=lambda: NOW)
    signed = _answer(flow, next(flow), None, None)
    assert _header(signed)["Ts"] == str(NOW + 30)
    expired = AuthExpiredError(status=401, err_code="Security.Authentication.Expired", code=0,
                               message="expired", trace_id="", method="GET", path="/u")
    assert flow.throw(expired).target == "/api/v1/time"
    resigned = flow.send(_ok(_rfc3339(NOW + 3600.4)))
    assert _header(resigned)["Ts"] == str(NOW + 3630)
    with pytest.raises(StopIteration):
        flow.send(_ok())
    # The offset is remembered for this agent: the next flow signs with it at once.
    assert _header(_signed(auth, method="GET"))["Ts"] == str(NOW + 3630)


def test_request_lifetime_overrides_the_auth_lifetime():
    signed = _signed(_auth("pw", lifetime=30), lifetime=600)
    assert _header(signed)["Ts"] == str(NOW + 600)


def test_streamed_body_gets_the_header_keys():
    seen = []

    def stream(key_iv):
        seen.append(key_iv)
        return io.BytesIO(b"multipart"), "multipart/form-data; boundary=b"

    signed = _signed(_auth("pw"), "/api/v1/upgrade/package", stream=stream)
    assert seen == [KEY_IV]
    assert _header(signed)["Keys"] == base64.b64encode(KEY_IV).decode()
    assert signed.body.read() == b"multipart"
    assert signed.headers["Content-Type"] == "multipart/form-data; boundary=b"
    seen.clear()
    _signed(_auth("pw"), "/api/v1/upgrade/package", stream=stream,
            info=_info_json(version="4.2.2.0", supportedAuth=None))
    assert seen == [None]  # v1 bodies go unencrypted


def test_password_never_shows(caplog):
    caplog.set_level(logging.DEBUG, logger="obshell_sdk")
    auth = _auth("Sup3r-Secret!", "Ag3nt-Secret!")
    flow = auth._auth_flow(Request("POST", "/u", b"{}"), AGENT, clock=lambda: NOW)
    requests = [next(flow)]
    requests.append(flow.send(_ok(_info_json(security=True))))
    requests.append(flow.send(_ok({"public_key": public_key_b64()})))
    assert requests[-1].signed
    flow.close()
    texts = [repr(auth), str(auth), caplog.text, repr(auth._state(AGENT)),
             *(repr(r) for r in requests)]
    for text in texts:
        assert "Sup3r-Secret!" not in text and "Ag3nt-Secret!" not in text
    signed = requests[-1]  # its header opens the target for a minute: not in its repr either
    ((name, value),) = [(k, v) for k, v in signed.headers.items() if k.startswith("X-OCS-")]
    assert value not in repr(signed) and f"'{name}': '***'" in repr(signed)
    with pytest.raises(TypeError, match="refuses to pickle or copy PasswordAuth"):
        copy.copy(auth)
    with pytest.raises(TypeError):
        pickle.dumps(auth)
    with pytest.raises(TypeError):
        pickle.dumps(auth._password)


@pytest.mark.parametrize(
    ("password", "agent_password", "empty"),
    [
        ("", None, {"root@sys"}),
        ("", "Ag3nt", {"root@sys"}),
        ("R00t", "", {"agent"}),
        ("", "", {"root@sys", "agent"}),
        ("R00t", None, set()),  # no agent password held: none empty
        ("R00t", "Ag3nt", set()),
    ],
)
def test_password_auth_says_which_of_its_passwords_are_empty_and_nothing_else(
        password, agent_password, empty):
    said = PasswordAuth(password, agent_password)._empty()
    assert said == empty and said <= {"root@sys", "agent"}  # roles only, never a value


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"password": None}, "password"),
        ({"password": 123}, "password"),
        ({"password": "x", "agent_password": 5}, "agent_password"),
        ({"password": "x", "lifetime": 0}, "lifetime"),
        ({"password": "x", "lifetime": -5}, "lifetime"),
        ({"password": "x", "lifetime": "60"}, "lifetime"),
        ({"password": "x", "lifetime": True}, "lifetime"),
        ({"password": "x", "lifetime": 10**9}, "lifetime"),
        ({"password": "x", "version": "v3"}, "version"),
    ],
)
def test_password_auth_refuses_bad_arguments(kwargs, argument):
    with pytest.raises(InvalidArgumentError) as info:
        PasswordAuth(**kwargs)
    assert info.value.argument == argument


def test_public_key_refuses_garbage():
    for bad in ("", "not base64!", base64.b64encode(b"junk").decode()):
        with pytest.raises(ValueError):
            PublicKey(bad)
    with pytest.raises(ValueError):
        PublicKey(base64.b64encode(private_key().export_key("DER")).decode())


def test_first_use_of_the_ciphers_from_many_threads_at_once():
    # pycryptodome's RSA and AES modules load on first use (not with the package); a rollout's
    # workers can all reach that first use together. A fresh interpreter, 16 threads at once.
    import subprocess
    import sys
    from pathlib import Path

    import obshell_sdk

    code = """
import sys, threading
from obshell_sdk._crypto import AesBase64Encryptor, PublicKey
errors, barrier = [], threading.Barrier(16)
def work(i):
    barrier.wait()
    try:
        if i % 2:
            PublicKey(sys.argv[1]).encrypt(b"x" * 200)
        else:
            AesBase64Encryptor(bytes(32)).update(b"y" * 100)
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors
"""
    root = Path(obshell_sdk.__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code, public_key_b64()], cwd=root,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
