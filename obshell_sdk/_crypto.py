"""Pure crypto for obshell auth: RSA "sectional" encryption, AES-128-CBC bodies, header JSON.

Nothing here does I/O, reads a clock or draws randomness (keys and IVs are passed in), so
tests are deterministic. This is the SDK's one AES-CBC implementation: whole bodies and
streamed uploads both go through :class:`AesBase64Encryptor`.

pycryptodome's cipher and key modules are imported on first use, not with the package: a
script that only reads ``--help`` or builds requests never signs, and the first signature
pays them instead (about 20 ms; 50-65 ms where cffi is installed, see ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Optional

__all__ = [
    "AesBase64Encryptor",
    "PublicKey",
    "aes_encrypt",
    "v1_token_json",
    "v2_header_json",
]


class PublicKey:
    """An agent's RSA public key, parsed once, with a reusable PKCS#1 v1.5 cipher."""

    __slots__ = ("_cipher", "b64", "chunk", "size_bytes")

    def __init__(self, b64: str) -> None:
        """Parse base64 of a DER PKCS#1 ``RSAPublicKey`` (obshell's form; SPKI is accepted too).

        Raises ValueError when the text is not such a key.
        """
        from Crypto.Cipher import PKCS1_v1_5
        from Crypto.PublicKey import RSA

        try:
            der = base64.b64decode(b64, validate=True)
            key = RSA.import_key(der)
        except (ValueError, IndexError, TypeError, binascii.Error) as exc:
            raise ValueError(f"not an RSA public key: {exc}") from None
        if key.has_private():
            raise ValueError("expected a public key, got a private one")
        self.b64 = b64
        self.size_bytes = (key.size_in_bits() + 7) // 8
        # PKCS#1 v1.5 adds at least 11 bytes, so a block carries k - 11 bytes of plaintext.
        self.chunk = self.size_bytes - 11
        self._cipher = PKCS1_v1_5.new(key)

    @property
    def bits(self) -> int:
        """Modulus size in bits (512 on obshell up to 4.4.1, 1024 after)."""
        return self.size_bytes * 8

    def encrypt(self, plaintext: bytes) -> str:
        """Encrypt in blocks of at most ``k - 11`` bytes and return base64 of the joined blocks."""
        cipher = self._cipher
        step = self.chunk
        blocks = [cipher.encrypt(plaintext[i : i + step]) for i in range(0, len(plaintext), step)]
        return base64.b64encode(b"".join(blocks)).decode("ascii")

    def encrypt_one_block(self, plaintext: bytes) -> str:
        """Encrypt as exactly one block (auth v1); ValueError when it does not fit."""
        if len(plaintext) > self.chunk:
            raise ValueError(
                f"{len(plaintext)} bytes do not fit one {self.bits}-bit RSA block "
                f"(at most {self.chunk})"
            )
        return base64.b64encode(self._cipher.encrypt(plaintext)).decode("ascii")

    def __repr__(self) -> str:
        return f"PublicKey(bits={self.bits})"


class AesBase64Encryptor:
    """AES-128-CBC with PKCS#7 padding, base64-encoded, fed piece by piece.

    ``key_iv`` is 16 key bytes then 16 IV bytes. :meth:`update` returns the base64 text ready
    so far, :meth:`finish` pads and returns the rest; whatever is held back is less than one
    AES block plus two bytes, so memory stays flat however large the input.
    """

    def __init__(self, key_iv: bytes) -> None:
        if len(key_iv) != 32:
            raise ValueError("key_iv must be 32 bytes: a 16-byte AES-128 key and a 16-byte IV")
        from Crypto.Cipher import AES

        self._cipher = AES.new(key_iv[:16], AES.MODE_CBC, iv=key_iv[16:])
        self._plain = b""  # less than one AES block not yet encrypted
        self._raw = b""  # less than 3 bytes of ciphertext not yet base64-encoded

    @staticmethod
    def output_length(plain_length: int) -> int:
        """How many base64 bytes ``plain_length`` bytes of plaintext become."""
        encrypted = (plain_length // 16 + 1) * 16
        return 4 * ((encrypted + 2) // 3)

    def update(self, data: bytes) -> bytes:
        """Encrypt ``data``; return the base64 bytes that are complete."""
        self._plain += data
        whole = len(self._plain) - len(self._plain) % 16
        self._raw += self._cipher.encrypt(self._plain[:whole])
        self._plain = self._plain[whole:]
        ready = len(self._raw) - len(self._raw) % 3
        out, self._raw = self._raw[:ready], self._raw[ready:]
        return base64.b64encode(out)

    def finish(self) -> bytes:
        """Pad, encrypt what is left and return the last base64 bytes."""
        pad = 16 - len(self._plain) % 16
        raw = self._raw + self._cipher.encrypt(self._plain + bytes((pad,)) * pad)
        self._plain = self._raw = b""
        return base64.b64encode(raw)


def aes_encrypt(key_iv: bytes, plaintext: bytes) -> bytes:
    """Encrypt a whole body: AES-128-CBC, PKCS#7, base64 (the raw request body obshell expects)."""
    encryptor = AesBase64Encryptor(key_iv)
    return encryptor.update(plaintext) + encryptor.finish()


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def v2_header_json(password: str, expires: int, uri: str, key_iv: Optional[bytes]) -> bytes:
    """The plaintext of an ``X-OCS-Header``/``X-OCS-Agent-Header``.

    ``Ts`` is the expiry in Unix seconds as a JSON *string*; ``Keys`` is base64 of key and IV,
    or null when the request has no body.
    """
    keys = None if key_iv is None else base64.b64encode(key_iv).decode("ascii")
    return _dumps({"Auth": password, "Ts": str(int(expires)), "Uri": uri, "Keys": keys})


def v1_token_json(password: str, expires: int) -> bytes:
    """The plaintext of an ``X-OCS-Auth`` token (obshell 4.2.2): ``ts`` is a JSON number."""
    return _dumps({"password": password, "ts": int(expires)})
