"""An RPM's name, version, release and architecture (its header; its file name); its MD5 check.

An RPM file is a 96-byte lead, a signature header padded to 8 bytes, then the header. Each
header is a 16-byte intro (magic ``8e ad e8 01``, 4 reserved bytes, the number of index
entries, the size of the data store), 16-byte index entries (tag, type, offset, count),
then the store. NAME, VERSION, RELEASE and ARCH are the string tags 1000, 1001, 1002 and
1022. The signature header's SIZE (tag 1000, an integer; LONGSIZE, tag 270, in RPMs over
4 GiB) is the length of what follows it, the header and payload, and its MD5 (tag 1004,
binary) their digest: what ``rpm -K`` checks, and obshell too (cavaliergopher/rpm's
``MD5Check``, PROTOCOL-upgrade-family §6) before it takes an upload.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from collections.abc import Callable
from typing import BinaryIO, NamedTuple, Optional

__all__ = ["RpmHeader", "RpmSignature", "rpm_damage", "rpm_file_name", "rpm_header",
           "rpm_signature"]

_LEAD_SIZE = 96
_HEADER_MAGIC = b"\x8e\xad\xe8\x01"
_MAX_HEADER = 16 * 1024 * 1024  # real headers are well under 1 MiB
_MAX_STRING = 4096  # names, versions and releases are short
_STRING = 6
_NAME, _VERSION, _RELEASE, _ARCH = 1000, 1001, 1002, 1022
_SIZE, _LONGSIZE, _MD5 = 1000, 270, 1004  # of the signature header
_INTEGERS = {3: ">H", 4: ">I", 5: ">Q"}  # INT16, INT32, INT64
_BYTES = (1, 2, 7)  # CHAR, INT8, BIN
_BLOCK = 1 << 20


def rpm_file_name(word: str) -> Optional[tuple[str, str, str]]:
    """``(name, version, release)`` as an RPM's file name says them, or None.

    ``NAME-VERSION-RELEASE.ARCH.rpm``, as RPMs are named (the last part of a path): the
    version dotted numbers, the release a build number and its distribution
    (``obshell-4.4.0.0-101000012025020101.el7.x86_64.rpm``). Nothing is read: a name only.
    """
    stem, dot, arch = os.path.basename(word).removesuffix(".rpm").rpartition(".")
    parts = stem.rsplit("-", 2)
    if not (word.endswith(".rpm") and dot and arch and len(parts) == 3 and all(parts)):
        return None
    name, version, release = parts
    if not (re.fullmatch(r"\d+(?:\.\d+)+", version) and re.fullmatch(r"\w+(?:\.\w+)+", release)):
        return None
    return name, version, release


class RpmHeader(NamedTuple):
    """What an RPM's headers say of it, as obshell reads them at upload and lists them.

    NAME, VERSION, RELEASE, ARCH (None when unsaid) and the signature header's MD5 (None
    when it gives none): a package list's ``name``, ``version``, ``release_distribution``,
    ``architecture`` and ``md5``.
    """

    name: str
    version: str
    release: str
    arch: Optional[str]
    md5: Optional[bytes]

    @property
    def identity(self) -> tuple[str, str, str]:
        """``(name, version, release)``."""
        return self.name, self.version, self.release

    @property
    def label(self) -> str:
        """``name-version-release.arch`` (``.arch`` when said): its file name, less ``.rpm``."""
        label = f"{self.name}-{self.version}-{self.release}"
        return label if self.arch is None else f"{label}.{self.arch}"


def rpm_header(path: str) -> Optional[RpmHeader]:
    """What the headers of the RPM at ``path`` say; None unless its name, version and release.

    The agent reads the same headers when the package is uploaded; None leaves the judgement
    to it. Each is read once, and no further.
    """
    try:
        with open(path, "rb") as file:
            file.seek(_LEAD_SIZE)
            count, size = _intro(file)
            signature = file.read(count * 16), file.read(size)  # if cut short, no header next
            file.seek(-file.tell() % 8, 1)
            count, size = _intro(file)
            index, store = file.read(count * 16), file.read(size)
    except (OSError, ValueError):
        return None
    if len(index) != count * 16 or len(store) != size:
        return None
    found: dict[int, str] = {}
    for tag, kind, offset, _ in struct.iter_unpack(">IIII", index):
        if tag in (_NAME, _VERSION, _RELEASE, _ARCH) and kind == _STRING and tag not in found:
            end = store.find(b"\0", offset, offset + _MAX_STRING)  # a bounded search
            if offset < end:
                found[tag] = store[offset:end].decode("utf-8", "replace")
    if not {_NAME, _VERSION, _RELEASE} <= found.keys():
        return None
    return RpmHeader(found[_NAME], found[_VERSION], found[_RELEASE], found.get(_ARCH),
                     _signed(*signature)[1])


def _intro(file: BinaryIO) -> tuple[int, int]:
    """A header's index count and store size; ValueError when it is not a header."""
    intro = file.read(16)
    if len(intro) != 16 or intro[:4] != _HEADER_MAGIC:
        raise ValueError("not an RPM header")
    count, size = struct.unpack(">II", intro[8:])
    if count * 16 + size > _MAX_HEADER:
        raise ValueError("an RPM header larger than any real one")
    return count, size


class RpmSignature(NamedTuple):
    """What an RPM's signature header says of the rest of the file, its header and payload."""

    #: Where the header starts: after the lead and the signature header and its padding.
    start: int
    #: SIZE (tag 1000), else LONGSIZE (tag 270): how many bytes follow ``start``.
    size: Optional[int]
    #: MD5 (tag 1004) of the bytes from ``start`` to the end.
    md5: Optional[bytes]


def rpm_signature(path: str) -> Optional[RpmSignature]:
    """The signature header of the RPM at ``path``; None when there is none to read.

    A file that ends inside it gives a ``start`` past its end, and no size or MD5. A tag
    given twice counts by its last entry, as obshell reads it; one of another type, or whose
    value lies outside the store, is left out.
    """
    try:
        with open(path, "rb") as file:
            file.seek(_LEAD_SIZE)
            count, size = _intro(file)
            index, store = file.read(count * 16), file.read(size)
    except (OSError, ValueError):
        return None
    start = _LEAD_SIZE + 16 + count * 16 + size
    start += -start % 8
    if len(index) != count * 16 or len(store) != size:
        return RpmSignature(start, None, None)
    return RpmSignature(start, *_signed(index, store))


def _signed(index: bytes, store: bytes) -> tuple[Optional[int], Optional[bytes]]:
    """The SIZE (else LONGSIZE) and MD5 a whole signature header gives, each None if not."""
    entries = {tag: (kind, offset, n) for tag, kind, offset, n in struct.iter_unpack(
        ">IIII", index)}
    size = _integer(store, entries.get(_SIZE)) or _integer(store, entries.get(_LONGSIZE))
    md5 = entries.get(_MD5)
    if md5 is None or md5[0] not in _BYTES or md5[1] + md5[2] > len(store):
        return size, None
    return size, store[md5[1]:md5[1] + md5[2]]


def _integer(store: bytes, entry: Optional[tuple[int, int, int]]) -> Optional[int]:
    """The first value of an integer tag; None when absent, of another type, or 0."""
    if entry is None or entry[0] not in _INTEGERS:
        return None
    fmt = _INTEGERS[entry[0]]
    if entry[1] + struct.calcsize(fmt) > len(store):
        return None
    return struct.unpack_from(fmt, store, entry[1])[0] or None


def rpm_damage(path: str, feed: Optional[Callable[[bytes], object]] = None) -> Optional[str]:
    """Why the RPM at ``path`` fails obshell's MD5 check; None if it passes or has no MD5.

    The check: as many bytes after the signature header as its SIZE says (when it says), of
    the MD5 it gives. A file that ends inside the signature header fails too. A file whose
    signature header is unreadable or carries no MD5 is left to the agent (None). The file
    is read once, when there is an MD5 to check or a ``feed``, which is then handed all of
    its bytes in order (the upload's SHA-256 on the same pass). OSError as ``open`` raises it.
    """
    sig = rpm_signature(path)
    start = None if sig is None or sig.md5 is None else sig.start
    total, digest = (os.path.getsize(path), b"") if start is None and feed is None else (
        _digest(path, start, feed))
    if sig is None:
        return None
    if total < sig.start:
        return (f"it is cut short: its {total} bytes end inside its RPM signature header, "
                f"which ends at byte {sig.start}")
    if sig.md5 is None:
        return None
    signed = total - sig.start  # the header and payload
    said = f"(its header and payload are {signed} bytes, its RPM signature says {sig.size})"
    if sig.size is not None and signed < sig.size:
        return f"it is cut short: {_bytes(sig.size - signed)} missing {said}"
    if sig.size is not None and signed > sig.size:
        return f"it has {_bytes(signed - sig.size)} too many {said}"
    if digest != sig.md5:
        return (f"the MD5 of its header and payload is {digest.hex()}, its RPM signature "
                f"says {sig.md5.hex()}")
    return None


def _bytes(count: int) -> str:
    return f"{count} byte" if count == 1 else f"{count} bytes"


def _digest(path: str, start: Optional[int],
            feed: Optional[Callable[[bytes], object]]) -> tuple[int, bytes]:
    """The file's size, and the MD5 of its bytes from ``start`` on (b"" when None)."""
    md5 = hashlib.md5(usedforsecurity=False)
    total = 0
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(_BLOCK), b""):
            if feed is not None:
                feed(block)
            if start is not None and total + len(block) > start:
                md5.update(block[max(0, start - total):])
            total += len(block)
    return total, b"" if start is None else md5.digest()
