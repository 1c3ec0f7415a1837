"""Load the recorded obshell exchanges in tests/vectors and decrypt with their private key."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from Crypto.Cipher import AES, PKCS1_v1_5
from Crypto.PublicKey import RSA

HERE = Path(__file__).parent / "vectors"


def vectors() -> list[dict[str, Any]]:
    with open(HERE / "obshell-wire.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


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
