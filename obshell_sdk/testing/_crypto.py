"""Server-side crypto of the fake agent (RSA block decryption, AES-CBC bodies).

Independent of the client code of :mod:`obshell_sdk`; mirrors what obshell's
``lib/crypto`` does, including its lax base64 and unpadding behaviour.
"""

from __future__ import annotations

import base64
import binascii
import threading

from Crypto.Cipher import AES, PKCS1_v1_5
from Crypto.PublicKey import RSA
from Crypto.Util import number
from Crypto.Util.asn1 import DerBitString, DerSequence

_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


class DecryptError(Exception):
    """A decryption step failed; ``str(exc)`` is a Go-like error text."""


class BodyPanicError(Exception):
    """The real server would panic here (answered with the pre-built 500 envelope)."""


class BodyKeyError(Exception):
    """``Request.Body.Decrypt.AES.KeyAndIv.Invalid``: fewer than 16 key bytes."""


class BodyLengthError(Exception):
    """``Request.Body.Decrypt.AES.ContentLength.Invalid``: not a whole number of blocks."""


def go_b64decode_strict(text: str | bytes) -> bytes:
    """Decode standard padded base64 like Go's ``StdEncoding.DecodeString``.

    Raises:
        DecryptError: with Go's ``illegal base64 data at input byte N`` text.

    """
    raw = text.encode("latin-1") if isinstance(text, str) else bytes(text)
    raw = raw.replace(b"\r", b"").replace(b"\n", b"")
    for i, ch in enumerate(raw):
        if ch not in _B64_ALPHABET and ch != ord("="):
            raise DecryptError(f"illegal base64 data at input byte {i}")
    if len(raw) % 4:
        raise DecryptError(f"illegal base64 data at input byte {len(raw) - len(raw) % 4}")
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error:
        raise DecryptError(f"illegal base64 data at input byte {raw.find(b'=')}") from None


def go_b64decode_prefix(raw: bytes) -> bytes:
    """Decode like Go's ``StdEncoding.Decode`` whose error is ignored.

    Only the complete, valid 4-character groups before the first invalid one
    are decoded; everything after is dropped (that is what obshell's body
    decryption effectively sees).
    """
    raw = raw.replace(b"\r", b"").replace(b"\n", b"")
    out = bytearray()
    for i in range(0, len(raw) - len(raw) % 4, 4):
        group = raw[i : i + 4]
        if any(c not in _B64_ALPHABET for c in group[:2]):
            break
        if group[2:] == b"==" or (group[3:] == b"=" and group[2] in _B64_ALPHABET):
            out += base64.b64decode(group)
            break
        if any(c not in _B64_ALPHABET for c in group[2:]):
            break
        out += base64.b64decode(group)
    return bytes(out)


class ServerKey:
    """The agent's RSA key pair (thread-safe replacement via :meth:`replace`)."""

    def __init__(self, *, bits: int = 1024, private_der: bytes | None = None) -> None:
        self._lock = threading.Lock()
        self._key = self._make(bits, private_der)

    @staticmethod
    def _make(bits: int, private_der: bytes | None) -> RSA.RsaKey:
        if private_der is not None:
            return RSA.import_key(private_der)
        if bits < 1024:
            return _small_key(bits)
        return RSA.generate(bits)

    def replace(self, *, bits: int = 1024, private_der: bytes | None = None) -> None:
        """Generate (or import) a new key pair; the old one stops working."""
        key = self._make(bits, private_der)
        with self._lock:
            self._key = key

    @property
    def bits(self) -> int:
        """Modulus size in bits."""
        with self._lock:
            return int(self._key.size_in_bits())

    @property
    def public_key_b64(self) -> str:
        """Base64 of the PKCS#1 DER ``RSAPublicKey`` (what ``/api/v1/secret`` returns)."""
        with self._lock:
            der = self._key.public_key().export_key(format="DER")
        # pycryptodome exports SubjectPublicKeyInfo for public keys; unwrap to PKCS#1.
        return base64.b64encode(_spki_to_pkcs1(der)).decode("ascii")

    @property
    def private_der(self) -> bytes:
        """PKCS#1 DER of the private key (the form obshell stores)."""
        with self._lock:
            return bytes(self._key.export_key(format="DER", pkcs=1))

    def decrypt_b64(self, text: str) -> bytes:
        """Base64-decode and RSA-PKCS#1-v1.5-decrypt every consecutive k-byte block.

        Raises:
            DecryptError: bad base64 or a block that does not decrypt.

        """
        data = go_b64decode_strict(text)
        with self._lock:
            key = self._key
        k = key.size_in_bytes()
        cipher = PKCS1_v1_5.new(key)
        sentinel = object()
        out = bytearray()
        for i in range(0, len(data), k):
            block = data[i : i + k]
            if len(block) != k:
                raise DecryptError("crypto/rsa: decryption error")
            try:
                plain = cipher.decrypt(block, sentinel)
            except ValueError:  # ciphertext larger than the modulus (another key)
                plain = sentinel
            if plain is sentinel:
                raise DecryptError("crypto/rsa: decryption error")
            assert isinstance(plain, bytes)
            out += plain
        return bytes(out)


def _small_key(bits: int) -> RSA.RsaKey:
    """An RSA key below 1024 bits (obshell up to 4.4.1 uses 512), which RSA.generate refuses."""
    while True:
        p, q = number.getPrime(bits // 2), number.getPrime(bits // 2)
        n, phi = p * q, (p - 1) * (q - 1)
        if n.bit_length() == bits and number.GCD(65537, phi) == 1:
            return RSA.construct((n, 65537, pow(65537, -1, phi), p, q))


def _spki_to_pkcs1(der: bytes) -> bytes:
    """Extract the PKCS#1 ``RSAPublicKey`` from a SubjectPublicKeyInfo DER blob."""
    seq = DerSequence().decode(der)
    bit_string = DerBitString().decode(seq[1])
    return bytes(bit_string.value)


def aes_decrypt_body(body: bytes, keys: bytes) -> bytes:
    """Decrypt a request body as obshell does (AES-CBC, key=keys[:16], iv=keys[16:]).

    Raises:
        BodyKeyError: fewer than 16 bytes of keys.
        BodyPanicError: IV of the wrong length, or an unpadding that panics in Go.
        BodyLengthError: decoded length not a multiple of 16.

    """
    if len(keys) < 16:
        raise BodyKeyError("AES key and IV size error")
    key, iv = keys[:16], keys[16:]
    if len(iv) != 16:
        raise BodyPanicError("cipher.NewCBCDecrypter: IV length must equal block size")
    data = go_b64decode_prefix(body)
    if len(data) % 16:
        raise BodyLengthError("Decrypted string length is not a multiple of the block size")
    if not data:
        raise BodyPanicError("runtime error: index out of range [-1]")
    plain = AES.new(key, AES.MODE_CBC, iv=iv).decrypt(data)
    pad = plain[-1]
    if pad > len(plain):
        raise BodyPanicError("runtime error: slice bounds out of range")
    return plain[: len(plain) - pad]
