"""Signing, checked by decrypting with the agent's private key from the recorded vectors."""

from __future__ import annotations

import base64
import json
import logging
import pickle

import pytest
from Crypto.PublicKey import RSA
from vectorlib import aes_decrypt, private_key, public_key_b64, rsa_decrypt, vectors

from obshell_sdk import AgentInfo, InvalidArgumentError, PasswordAuth
from obshell_sdk._auth import choose_version
from obshell_sdk._crypto import PublicKey, aes_encrypt

AGENT = "127.0.0.1:2886"
NOW = 1_795_756_880


def _info(**over):
    base = {"identity": "CLUSTER AGENT", "version": "4.3.0.0", "security": False,
            "supportedAuth": ["v2"]}
    base.update(over)
    return AgentInfo.from_json({k: v for k, v in base.items() if v is not None})


def _auth(*args, info=None, key=None, **kw):
    kw.setdefault("random", lambda n: bytes(range(n)))
    auth = PasswordAuth(*args, **kw)
    auth.learn_agent(AGENT, info or _info())
    auth.learn_key(AGENT, public_key_b64(key))
    return auth


def test_v2_header_decrypts_to_obshell_fields_and_body_to_json():
    auth = _auth("Root@123")
    body = json.dumps({"version": "4.3.1.0", "release": "1.el7"}).encode()
    signed = auth.sign(AGENT, "/api/v1/agent/upgrade", body, NOW)
    assert list(signed.headers) == ["X-OCS-Header"]
    header = json.loads(rsa_decrypt(signed.headers["X-OCS-Header"]))
    assert header == {"Auth": "Root@123", "Ts": str(NOW + 60), "Uri": "/api/v1/agent/upgrade",
                      "Keys": base64.b64encode(bytes(range(32))).decode()}
    assert isinstance(header["Ts"], str)
    assert aes_decrypt(signed.body, bytes(range(32))) == body


def test_v2_without_body_sends_no_keys_and_no_body():
    signed = _auth("pw").sign(AGENT, "/api/v1/task/dag/11?show_details=true", None, NOW)
    header = json.loads(rsa_decrypt(signed.headers["X-OCS-Header"]))
    assert header["Keys"] is None and header["Uri"].endswith("?show_details=true")
    assert signed.body is None


def test_agent_password_goes_in_agent_header_only_when_the_agent_has_one():
    auth = _auth("Root@123", "Agent@1", info=_info(security=True))
    signed = auth.sign(AGENT, "/api/v1/agent/upgrade", None, NOW)
    assert list(signed.headers) == ["X-OCS-Agent-Header"]
    assert json.loads(rsa_decrypt(signed.headers["X-OCS-Agent-Header"]))["Auth"] == "Agent@1"
    auth = _auth("Root@123", "Agent@1", info=_info(security=False))
    signed = auth.sign(AGENT, "/api/v1/agent/upgrade", None, NOW)
    assert json.loads(rsa_decrypt(signed.headers["X-OCS-Header"]))["Auth"] == "Root@123"


def test_single_agent_without_agent_password_gets_no_password():
    auth = _auth("Root@123", info=_info(identity="SINGLE"))
    signed = auth.sign(AGENT, "/api/v1/agent/upgrade", None, NOW)
    assert json.loads(rsa_decrypt(signed.headers["X-OCS-Header"]))["Auth"] == ""


def test_v1_token_is_one_block_with_numeric_ts_and_plain_body():
    auth = _auth("Root@123", info=_info(version="4.2.2.0", supportedAuth=None))
    body = b'{"version":"4.3.1.0"}'
    signed = auth.sign(AGENT, "/api/v1/agent/upgrade", body, NOW)
    token = signed.headers["X-OCS-Auth"]
    assert len(base64.b64decode(token)) == 128  # one block of the 1024-bit key
    assert json.loads(rsa_decrypt(token)) == {"password": "Root@123", "ts": NOW + 60}
    assert signed.body == body


def test_v1_password_too_long_for_one_block_is_refused_without_echoing_it():
    secret = "S3cret-" + "x" * 200
    auth = _auth(secret, info=_info(version="4.2.2.0", supportedAuth=None))
    with pytest.raises(InvalidArgumentError) as info:
        auth.sign(AGENT, "/api/v1/agent/upgrade", None, NOW)
    assert secret not in str(info.value)


def test_sectional_encryption_sizes_chunks_from_a_512_bit_key():
    priv = _gen512()
    pub = PublicKey(base64.b64encode(priv.publickey().export_key("DER", pkcs=1)).decode())
    assert pub.bits == 512 and pub.chunk == 53
    text = b"y" * 200
    token = pub.encrypt(text)
    assert len(base64.b64decode(token)) == 64 * 4  # ceil(200 / 53) blocks of 64 bytes
    assert rsa_decrypt(token, priv) == text


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
        ours = json.loads(rsa_decrypt(_auth("x").sign(AGENT, "/u", b"{}", NOW)
                                      .headers["X-OCS-Header"]))
        assert {k.lower() for k in ours} == {k.lower() for k in recorded}
        return
    pytest.fail("no v2 vector found")


def test_recorded_aes_body_decrypts_with_recorded_keys():
    for vec in vectors():
        v2 = "X-OCS-Auth" not in vec["request"]["headers"]
        if v2 and vec["plaintext"]["aes_key_b64"] and vec["request"]["body"]:
            key_iv = base64.b64decode(vec["plaintext"]["aes_key_b64"]) + base64.b64decode(
                vec["plaintext"]["aes_iv_b64"])
            assert aes_decrypt(vec["request"]["body"].encode(), key_iv).decode() == \
                vec["plaintext"]["body"]
            ours = aes_encrypt(key_iv, vec["plaintext"]["body"].encode())
            assert ours.decode() == vec["request"]["body"]


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


def test_forced_version_wins():
    auth = PasswordAuth("pw", version="v1")
    assert auth.learn_agent(AGENT, _info()) == "v1"


def test_clock_offset_shifts_expiry():
    auth = _auth("pw", lifetime=30)
    auth.set_clock_offset(AGENT, 3600.4)
    signed = auth.sign(AGENT, "/u", None, NOW)
    assert json.loads(rsa_decrypt(signed.headers["X-OCS-Header"]))["Ts"] == str(NOW + 3630)


def test_password_never_shows(caplog):
    caplog.set_level(logging.DEBUG, logger="obshell_sdk")
    auth = _auth("Sup3r-Secret!", "Ag3nt-Secret!", info=_info(security=True))
    auth.sign(AGENT, "/u", b"{}", NOW)
    for text in (repr(auth), str(auth), caplog.text, repr(auth.state(AGENT))):
        assert "Sup3r-Secret!" not in text and "Ag3nt-Secret!" not in text
    with pytest.raises(TypeError):
        pickle.dumps(auth)
    with pytest.raises(TypeError):
        pickle.dumps(auth._password)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"password": None}, "password"),
        ({"password": 123}, "password"),
        ({"password": "x", "agent_password": 5}, "agent_password"),
        ({"password": "x", "lifetime": 0}, "lifetime"),
        ({"password": "x", "lifetime": -5}, "lifetime"),
        ({"password": "x", "lifetime": "60"}, "lifetime"),
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


def test_bodiless_read_headers_are_reused_for_half_their_lifetime():
    auth = _auth("pw", lifetime=60)
    first = auth.sign(AGENT, "/api/v1/task/dag/11", None, NOW, reuse=True)
    assert auth.sign(AGENT, "/api/v1/task/dag/11", None, NOW + 29, reuse=True) is first
    assert auth.sign(AGENT, "/api/v1/task/dag/12", None, NOW, reuse=True) is not first
    assert auth.sign(AGENT, "/api/v1/task/dag/11", None, NOW + 31, reuse=True) is not first
    assert auth.sign(AGENT, "/api/v1/task/dag/11", None, NOW) is not first  # no reuse asked
    again = auth.sign(AGENT, "/api/v1/task/dag/11", None, NOW + 31, reuse=True)
    auth.learn_key(AGENT, public_key_b64())  # a new key object: the old header is not reused
    assert auth.sign(AGENT, "/api/v1/task/dag/11", None, NOW + 32, reuse=True) is not again
    with_body = auth.sign(AGENT, "/u", b"{}", NOW, reuse=True)
    assert auth.sign(AGENT, "/u", b"{}", NOW, reuse=True) is not with_body
