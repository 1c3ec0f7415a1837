"""Package upload (``POST /api/v1/upgrade/package``), streamed from disk and encrypted on the fly.

obshell wants the whole multipart document AES-128-CBC encrypted and base64-encoded as the body,
while ``Content-Type`` names the boundary of the plaintext document (PROTOCOL §8.1). The
ciphertext's length follows from the file's size, so the body is produced piece by piece
with a known ``Content-Length``: memory stays at one read buffer whatever the package's size.
"""

from __future__ import annotations

import base64
import os
from datetime import datetime
from typing import Any, BinaryIO, Optional

import attrs

from ._exceptions import InvalidArgumentError
from ._wire import decode, p_int, p_str, p_time, shared_repr, wire

__all__ = ["EncryptedMultipart", "UpgradePackageInfo", "check_package_path"]

_BLOCK = 48 * 1024  # a multiple of 16 (AES) and 3 (base64)


@shared_repr
@attrs.frozen(repr=False)
class UpgradePackageInfo:
    """What the agent stored for an uploaded package (obshell sends these keys in PascalCase)."""

    pkg_id: int = wire("PkgId", p_int)
    name: str = wire("Name", p_str)
    version: str = wire("Version", p_str)
    release_distribution: str = wire("ReleaseDistribution", p_str, required=False, default="")
    distribution: str = wire("Distribution", p_str, required=False, default="")
    release: str = wire("Release", p_str, required=False, default="")
    architecture: str = wire("Architecture", p_str, required=False, default="")
    size: int = wire("Size", p_int, required=False, default=0)
    payload_size: int = wire("PayloadSize", p_int, required=False, default=0)
    chunk_count: int = wire("ChunkCount", p_int, required=False, default=0)
    md5: str = wire("Md5", p_str, required=False, default="")
    upgrade_dep_yaml: str = wire("UpgradeDepYaml", p_str, required=False, default="", repr=False)
    gmt_modify: Optional[datetime] = wire("GmtModify", p_time, required=False)
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @classmethod
    def from_json(cls, obj: Any, where: str = "data") -> UpgradePackageInfo:
        """Build from the ``data`` of ``POST /api/v1/upgrade/package``."""
        return decode(cls, obj, where)


def check_package_path(path: Any) -> str:
    """Return ``path`` as a string if it names a readable file, else raise InvalidArgumentError."""
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgumentError("path", f"must be a file path, got {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str):
        text = os.fsdecode(text)
    if not os.path.isfile(text):
        raise InvalidArgumentError("path", f"{text!r} is not a file")
    if not os.access(text, os.R_OK):
        raise InvalidArgumentError("path", f"{text!r} is not readable")
    return text


class EncryptedMultipart:
    """A file-like request body: the multipart document, optionally encrypted, read in pieces.

    ``key_iv`` None sends the document as it is (obshell 4.2.2, auth v1).
    """

    def __init__(self, path: str, key_iv: Optional[bytes]) -> None:
        self.boundary = os.urandom(16).hex()
        name = os.path.basename(path).replace('"', "_")
        self._head = (
            f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{self.boundary}--\r\n".encode("ascii")
        self._path = path
        self._size = os.path.getsize(path)
        self._file: Optional[BinaryIO] = None
        self._sent_file = 0
        self._stage = 0  # 0 head, 1 file, 2 tail, 3 done
        plain = len(self._head) + self._size + len(self._tail)
        if key_iv is None:
            self._cipher: Any = None
            self._length = plain
        else:
            from Crypto.Cipher import AES

            self._cipher = AES.new(key_iv[:16], AES.MODE_CBC, iv=key_iv[16:])
            encrypted = (plain // 16 + 1) * 16
            self._length = 4 * ((encrypted + 2) // 3)
        self._plain = b""  # plaintext not yet encrypted (less than one AES block at rest)
        self._raw = b""  # ciphertext not yet base64-encoded (less than 3 bytes at rest)
        self._out = b""  # bytes ready to hand out

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` of the plaintext multipart document."""
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self._length

    def _next_plain(self) -> bytes:
        if self._stage == 0:
            self._stage = 1
            self._file = open(self._path, "rb")
            return self._head
        if self._stage == 1:
            assert self._file is not None
            chunk = self._file.read(min(_BLOCK, self._size - self._sent_file))
            self._sent_file += len(chunk)
            if chunk:
                return chunk
            self._file.close()
            if self._sent_file != self._size:
                raise OSError(f"{self._path} shrank while being uploaded")
            self._stage = 2
            return self._next_plain()
        if self._stage == 2:
            self._stage = 3
            return self._tail
        return b""

    def _fill(self) -> bool:
        """Make more output; False when everything was produced."""
        if self._stage == 3 and not self._plain and not self._raw:
            return False
        piece = self._next_plain()
        if self._cipher is None:
            self._out += piece
            return bool(piece) or self._stage != 3
        self._plain += piece
        if self._stage == 3:  # the end: pad (PKCS#7) and flush everything
            pad = 16 - len(self._plain) % 16
            self._raw += self._cipher.encrypt(self._plain + bytes((pad,)) * pad)
            self._plain = b""
            self._out += base64.b64encode(self._raw)
            self._raw = b""
            return True
        whole = len(self._plain) - len(self._plain) % 16
        self._raw += self._cipher.encrypt(self._plain[:whole])
        self._plain = self._plain[whole:]
        ready = len(self._raw) - len(self._raw) % 3
        self._out += base64.b64encode(self._raw[:ready])
        self._raw = self._raw[ready:]
        return True

    def read(self, size: int = -1) -> bytes:
        """Return up to ``size`` bytes of the body (all of the rest when ``size`` < 0)."""
        while (size < 0 or len(self._out) < size) and self._fill():
            pass
        if size < 0:
            size = len(self._out)
        data, self._out = self._out[:size], self._out[size:]
        return data

    def close(self) -> None:
        """Close the package file."""
        if self._file is not None:
            self._file.close()
