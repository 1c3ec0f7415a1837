"""Load the recorded obshell exchanges in tests/vectors and decrypt with their private key."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from Crypto.Cipher import AES, PKCS1_v1_5
from Crypto.PublicKey import RSA

HERE = Path(__file__).parent / "vectors"


def vectors(name: str = "obshell-wire.jsonl") -> list[dict[str, Any]]:
    """The recorded exchanges of one file, in order."""
    with open(HERE / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def private_key_der() -> bytes:
    """The recording agent's private key (PKCS#1 DER), as FakeAgent(private_key=...) takes it."""
    return base64.b64decode((HERE / "agent-private-key.b64").read_text().strip())


def scenarios(name: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """The exchanges of ``name`` grouped by scenario, each group in recorded order."""
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for vec in vectors(name):
        if not out or out[-1][0] != vec["scenario"]:
            out.append((vec["scenario"], []))
        out[-1][1].append(vec)
    return out


def private_key() -> RSA.RsaKey:
    return RSA.import_key(base64.b64decode((HERE / "agent-private-key.b64").read_text().strip()))


def public_key_b64(key: RSA.RsaKey | None = None) -> str:
    key = key or private_key()
    return base64.b64encode(key.publickey().export_key(format="DER", pkcs=1)).decode()


def rsa_decrypt(b64: str, key: RSA.RsaKey | None = None) -> bytes:
    """Decrypt every k-byte block, as obshell does."""
    key = key or private_key()
    raw = base64.b64decode(b64)
    k = key.size_in_bytes()
    cipher = PKCS1_v1_5.new(key)
    out = b""
    for i in range(0, len(raw), k):
        part = cipher.decrypt(raw[i : i + k], None)
        assert part is not None, "block did not decrypt"
        out += part
    return out


def aes_decrypt(b64_body: bytes, key_iv: bytes) -> bytes:
    data = AES.new(key_iv[:16], AES.MODE_CBC, iv=key_iv[16:]).decrypt(base64.b64decode(b64_body))
    return data[: -data[-1]]


#: Keys whose values differ on every run (times, ids of the moment, ports).
IGNORED = {"timestamp", "traceId", "duration", "start_time", "end_time", "port", "pid", "startAt"}
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z")
ADDR = re.compile(r"127\.0\.0\.1:\d+")


def compare_replies(expected: Any, actual: Any, where: str) -> None:
    """Same values, same key order; times by format only; addresses without their port."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected object, got {actual!r}"
        assert list(actual) == list(expected), f"{where}: keys {list(actual)} != {list(expected)}"
        for key, value in expected.items():
            if key in IGNORED:
                continue
            if key == "task_logs" and value == [] and actual[key] is None:
                # obshell sends null for sub-tasks that have not run (PROTOCOL §9.3)
                assert expected.get("state") == "PENDING", f"{where}: null logs on a run task"
                continue
            compare_replies(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            compare_replies(e, a, f"{where}[{i}]")
    elif isinstance(expected, str):
        assert isinstance(actual, str), f"{where}: {actual!r}"
        if RFC3339.fullmatch(expected):  # a server time (e.g. /api/v1/time): format only
            assert RFC3339.fullmatch(actual), f"{where}: {actual!r}"
            return
        assert ADDR.sub("ADDR", actual) == ADDR.sub("ADDR", expected), f"{where}: {actual!r}"
    else:
        assert actual == expected and type(actual) is type(expected), f"{where}: {actual!r}"
