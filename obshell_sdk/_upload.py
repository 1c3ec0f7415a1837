"""Package upload (``POST /api/v1/upgrade/package``), streamed from disk and encrypted on the fly.

obshell wants the whole multipart document AES-128-CBC encrypted and base64-encoded as the body,
while ``Content-Type`` names the boundary of the plaintext document (PROTOCOL §8.1). The
ciphertext's length follows from the file's size, so the body is produced piece by piece
with a known ``Content-Length``: memory stays at one read buffer whatever the package's size.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, Optional

from ._crypto import AesBase64Encryptor
from ._exceptions import InvalidArgumentError, PackageDamagedError
from ._request import Request
from ._rpm import rpm_damage, rpm_header
from ._text import printable
from ._validate import brief_repr

__all__ = ["NEW_UPLOAD", "OLD_UPLOAD", "RPM_LEAD_SIZE", "RPM_MAGIC", "EncryptedMultipart",
           "check_package_digest", "check_package_path", "check_package_paths",
           "package_label", "package_request", "package_size"]

_BLOCK = 48 * 1024  # a multiple of 16 (AES) and 3 (base64)


#: Every RPM starts with its 96-byte lead, which starts with these 4 bytes.
RPM_MAGIC = b"\xed\xab\xee\xdb"
RPM_LEAD_SIZE = 96


def check_package_paths(packages: Any) -> list[str]:
    """:func:`check_package_path` of each of ``packages`` (a list of paths, or an iterable).

    A package given twice (by :func:`package_label`) raises :class:`InvalidArgumentError`.
    """
    if isinstance(packages, (str, bytes, os.PathLike)) or not isinstance(packages, Iterable):
        raise InvalidArgumentError("packages", "must be a list of package file paths, got "
                                   f"{brief_repr(packages)}")
    paths: dict[str, str] = {}
    for given in packages:
        path = check_package_path(given)
        label = package_label(path)
        if label in paths:
            raise InvalidArgumentError("packages", f"{path!r} is {label} again (first "
                                       f"{paths[label]!r}): give each package once (nothing "
                                       "was sent)")
        paths[label] = path
    return list(paths.values())


def package_label(path: str) -> str:
    """What a package is: ``name-version-release.arch`` by its RPM header, else its file name."""
    header = rpm_header(path)
    return printable(os.path.basename(path) if header is None else header.label)


def check_package_path(path: Any) -> str:
    """Return ``path`` as a string if it names a readable RPM file, else InvalidArgumentError.

    Nothing is sent for a missing, unreadable, empty or non-RPM file: the file must start
    with the 96-byte RPM lead (magic ``ed ab ee db``).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgumentError("path", f"must be a file path, got {type(path).__name__}")
    try:
        text = os.fspath(path)
    except TypeError as exc:  # a PathLike whose __fspath__ returns neither str nor bytes
        raise InvalidArgumentError("path", f"is not a file path ({exc})") from None
    if not isinstance(text, str):
        text = os.fsdecode(text)
    if not text or "\x00" in text:
        raise InvalidArgumentError("path", f"{brief_repr(text, 300)} is not a file path")
    if not os.path.isfile(text):
        raise InvalidArgumentError("path", f"{brief_repr(text, 300)} is not a file")
    if not os.access(text, os.R_OK):
        raise InvalidArgumentError("path", f"{brief_repr(text, 300)} is not readable")
    _check_rpm_lead(text)
    return text


def _check_rpm_lead(path: str) -> None:
    """Refuse a file that does not start with an RPM lead (an empty one included)."""
    try:
        with open(path, "rb") as file:
            lead = file.read(RPM_LEAD_SIZE)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if not lead:
        raise InvalidArgumentError(
            "path", f"{brief_repr(path, 300)} is empty (0 bytes); expected an obshell RPM package"
        )
    if not lead.startswith(RPM_MAGIC):
        raise InvalidArgumentError(
            "path", f"{brief_repr(path, 300)} is not an RPM package: it starts with "
            f"{lead[:4].hex(' ')}, not the RPM lead magic ed ab ee db"
        )
    if len(lead) < RPM_LEAD_SIZE:
        raise InvalidArgumentError(
            "path", f"{brief_repr(path, 300)} is not an RPM package: {len(lead)} bytes, shorter "
            f"than the {RPM_LEAD_SIZE}-byte RPM lead"
        )


def check_package_digest(path: str, *, sha256: bool) -> Optional[str]:
    """Refuse an RPM that fails obshell's MD5 check, before anything is sent; its SHA-256.

    obshell takes no upload whose header and payload are not as long as the RPM's signature
    says, or not of its MD5 (:func:`~obshell_sdk._rpm.rpm_damage`): a truncated or damaged
    file is :class:`InvalidArgumentError` (``path``) here, with the hint of the agent's
    :class:`PackageDamagedError`, rather than after the whole file went. One read of the
    file serves the check and, when ``sha256``, the SHA-256 (hex) the newer upload sends,
    returned (None otherwise). A file whose signature has no MD5 is left to the agent.
    """
    whole = hashlib.sha256() if sha256 else None
    try:
        problem = rpm_damage(path, None if whole is None else whole.update)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if problem is not None:
        raise InvalidArgumentError(
            "path", f"{brief_repr(path, 300)} fails the check obshell makes of an RPM "
            f"(rpm -K's MD5): {problem}. It was not sent. {PackageDamagedError.hint}"
        )
    return None if whole is None else whole.hexdigest()


def _unreadable(path: str, exc: OSError, since: str = "") -> InvalidArgumentError:
    """The refusal of a package file that cannot be read (``exc``): nothing of it is sent.

    ``since``: what a file that passed the checks before says of its change since.
    """
    return InvalidArgumentError(
        "path", f"{brief_repr(path, 300)} cannot be read ({exc.strerror or exc}){since}")


#: What a checked package that cannot be read when it is to be sent says.
_GONE = ": it was removed or changed since it was checked, and was not sent"


def package_size(path: str) -> int:
    """The size of checked package ``path``; :class:`InvalidArgumentError` if it is gone since."""
    try:
        return os.path.getsize(path)
    except OSError as exc:
        raise _unreadable(path, exc, _GONE) from None


#: The upload obshell has had since about 4.3 (``VerifyFile``: clear body, file digest).
NEW_UPLOAD = "/api/v1/package"
#: The older upload (``Verify``: the whole multipart body AES-encrypted).
OLD_UPLOAD = "/api/v1/upgrade/package"


def package_request(path: str, lifetime: float, *, new: bool, file_sha256: Optional[str] = None
                    ) -> tuple[Request, list[EncryptedMultipart]]:
    """The upload request of ``path``, and the bodies it makes (close them after sending).

    ``new`` uses :data:`NEW_UPLOAD` (the body in clear, the file's SHA-256 in a header:
    ``file_sha256``, else read here), else :data:`OLD_UPLOAD`. The body is made when the
    request is signed, from the AES key the header carries (each attempt signs anew, so
    each makes its own body). A file gone or unreadable since its check raises
    :class:`InvalidArgumentError` then (or here, reading its SHA-256): it was not sent.
    """
    bodies: list[EncryptedMultipart] = []

    def stream(key_iv: Optional[bytes]) -> tuple[EncryptedMultipart, str]:
        body = EncryptedMultipart(path, key_iv)
        bodies.append(body)
        return body, body.content_type

    if not new:
        return Request("POST", OLD_UPLOAD, stream=stream, lifetime=lifetime), bodies
    return Request("POST", NEW_UPLOAD, stream=stream, lifetime=lifetime,
                   file_sha256=file_sha256 or _sha256(path)), bodies


def _sha256(path: str) -> str:
    """The SHA-256 (hex) of checked package ``path``, read now; InvalidArgumentError if gone."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise _unreadable(path, exc, _GONE) from None
    return digest.hexdigest()


def _header_file_name(path: str) -> bytes:
    """The file's name as it goes in the quoted ``filename=`` of the part's header.

    Its bytes on disk (so a name that is not UTF-8 goes as it is), with what would end the
    quoted string or the header line (quote, backslash, control bytes) replaced by ``_``.
    """
    name = os.fsencode(os.path.basename(path))
    return bytes(b if b >= 0x20 and b not in b'"\\\x7f' else 0x5F for b in name)


class EncryptedMultipart:
    """A file-like request body: the multipart document, optionally encrypted, read in pieces.

    ``key_iv`` None sends the document as it is (obshell 4.2.2, auth v1). The file is opened
    here, as the request is signed, before anything of it is sent: one gone or unreadable
    since its check raises :class:`InvalidArgumentError`. It is closed once read to its end,
    or by :meth:`close`. A read of it that fails (the file shrank, an I/O error) raises that
    OSError, kept as :attr:`failure`: the request is cut short, and the agent stores nothing.
    """

    #: Why the file could not be read to its end while it was sent (None: it could).
    failure: Optional[OSError] = None

    def __init__(self, path: str, key_iv: Optional[bytes]) -> None:
        self.boundary = os.urandom(16).hex()
        head = (
            f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; ".encode()
            + b'filename="' + _header_file_name(path)
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        tail = f"\r\n--{self.boundary}--\r\n".encode("ascii")
        try:
            file = open(path, "rb")  # closed once read to its end, or by close()
        except OSError as exc:
            raise _unreadable(path, exc, _GONE) from None
        self._file: Optional[BinaryIO] = file
        size = os.fstat(file.fileno()).st_size
        self._pieces = self._plain_pieces(head, file, size, tail)
        self._encryptor = None if key_iv is None else AesBase64Encryptor(key_iv)
        plain = len(head) + size + len(tail)
        self._length = plain if self._encryptor is None else (
            AesBase64Encryptor.output_length(plain))
        self._out = b""  # bytes ready to hand out
        self._done = False

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` of the plaintext multipart document."""
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self._length

    def _plain_pieces(self, head: bytes, file: BinaryIO, size: int, tail: bytes
                      ) -> Iterator[bytes]:
        yield head
        sent = 0
        while sent < size:
            chunk = file.read(min(_BLOCK, size - sent))
            if not chunk:
                raise OSError(f"it ended after {sent} of its {size} bytes")
            sent += len(chunk)
            yield chunk
        file.close()
        yield tail

    def read(self, size: int = -1) -> bytes:
        """Return up to ``size`` bytes of the body (all of the rest when ``size`` < 0)."""
        while not self._done and (size < 0 or len(self._out) < size):
            try:
                piece = next(self._pieces, None)
            except OSError as exc:  # raised into the request's sending: it is cut short
                self.failure = exc
                raise
            if piece is None:
                self._done = True
                if self._encryptor is not None:
                    self._out += self._encryptor.finish()
            else:
                self._out += piece if self._encryptor is None else self._encryptor.update(piece)
        if size < 0:
            size = len(self._out)
        data, self._out = self._out[:size], self._out[size:]
        return data

    def close(self) -> None:
        """Close the package file."""
        if self._file is not None:
            self._file.close()
