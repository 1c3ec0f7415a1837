"""Reading RPM packages as obshell does (stdlib only): lead, signature, header, file list, payload.

:func:`read_rpm` follows ``cavaliergopher/rpm``'s ``MD5Check`` then ``Read``, at v1.2.0 (what
obshell 61ee147 builds with): the 96-byte lead with magic ``ED AB EE DB``, the signature header
(padded to 8 bytes) whose SIZE (tag 1000; that version knows no LONGSIZE, tag 270) and MD5 (tag
1004) must match the header and payload that follow, then the header with
the package's name, version, release, architecture, installed size and file list. Errors carry
Go-like texts (``rpm: invalid file descriptor``, ``MD5 checksum validation failed``), which
obshell answers as a plain 500 ``Common.Unexpected``.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import struct
from dataclasses import dataclass
from typing import Optional, Union

LEAD_MAGIC = b"\xed\xab\xee\xdb"
HEADER_MAGIC = b"\x8e\xad\xe8"
_LEAD_SIZE = 96
_S_IFMT, _S_IFDIR, _S_IFREG = 0o170000, 0o040000, 0o100000

Value = Union[list[int], list[str], bytes]


class RpmError(Exception):
    """The file is not a readable RPM; ``str(exc)`` is the Go library's error text."""


@dataclass(frozen=True)
class RpmFile:
    """One entry of the header's file list."""

    path: str
    mode: int
    size: int

    @property
    def is_dir(self) -> bool:
        """Whether the entry is a directory."""
        return self.mode & _S_IFMT == _S_IFDIR


@dataclass(frozen=True)
class RpmPackage:
    """What obshell reads from an uploaded RPM.

    ``size``: the installed size (header tag 5009 or 1009); ``payload_size``: signature tag
    1000 (header plus payload bytes); ``md5``: hex of signature tag 1004.
    """

    name: str
    version: str
    release: str
    arch: str
    size: int
    payload_size: int
    md5: str
    files: tuple[RpmFile, ...]
    payload_format: str
    compressor: str
    payload: bytes

    def has_file(self, path: str) -> bool:
        """Whether the file list names ``path`` (any kind of entry)."""
        return any(f.path == path for f in self.files)

    def payload_file(self, path: str) -> Optional[bytes]:
        """The content of the regular file ``path`` in the cpio payload, or ``None``.

        Raises:
            RpmError: the payload cannot be decompressed or is not a cpio archive.

        """
        wanted = "." + path if path.startswith("/") else path
        for name, mode, data in _cpio_entries(_decompress(self.payload, self.compressor)):
            if name == wanted and mode & _S_IFMT == _S_IFREG:
                return data
        return None


def _need(data: bytes, end: int) -> None:
    if len(data) < end:
        raise RpmError("unexpected EOF")


def _read_header(data: bytes, at: int) -> tuple[dict[int, Value], int]:
    """One header structure at ``at``: its values by tag and the offset just after its store."""
    _need(data, at + 16)
    if data[at:at + 3] != HEADER_MAGIC:
        raise RpmError("rpm: invalid header descriptor")
    count, size = struct.unpack(">II", data[at + 8:at + 16])
    index_at, store_at = at + 16, at + 16 + 16 * count
    _need(data, store_at + size)
    store = data[store_at:store_at + size]
    values: dict[int, Value] = {}
    for i in range(count):
        tag, kind, offset, items = struct.unpack(
            ">IIII", data[index_at + 16 * i:index_at + 16 * (i + 1)])
        if offset >= size:
            raise RpmError(f"rpm: offset for index {i + 1} is out of range")
        values[tag] = _value(store, kind, offset, items)
    return values, store_at + size


def _value(store: bytes, kind: int, offset: int, items: int) -> Value:
    if kind in (3, 4, 5):
        width, fmt = {3: (2, ">H"), 4: (4, ">I"), 5: (8, ">Q")}[kind]
        if offset + width * items > len(store):
            raise RpmError("rpm: value out of range")
        return [struct.unpack(fmt, store[offset + width * k:offset + width * (k + 1)])[0]
                for k in range(items)]
    if kind in (6, 8, 9):
        out: list[str] = []
        for _ in range(items if kind != 6 else 1):
            end = store.find(b"\0", offset)
            if end < 0:
                raise RpmError("rpm: string out of range")
            out.append(store[offset:end].decode("utf-8", "replace"))
            offset = end + 1
        return out
    return bytes(store[offset:offset + items])  # CHAR, INT8, BIN


def _first(values: dict[int, Value], *tags: int) -> Union[int, str, None]:
    for tag in tags:
        value = values.get(tag)
        if isinstance(value, list) and value:
            return value[0]
    return None


def _check_md5(data: bytes) -> int:
    """``rpm.MD5Check``: the offset of the header; raises :class:`RpmError`."""
    if len(data) < _LEAD_SIZE:
        raise RpmError("EOF" if not data else "unexpected EOF")
    if data[:4] != LEAD_MAGIC:
        raise RpmError("rpm: invalid file descriptor")
    sig_type = struct.unpack(">H", data[78:80])[0]
    if sig_type != 5:
        raise RpmError(f"rpm: unknown signature type: {sig_type:x}")
    sig, end = _read_header(data, _LEAD_SIZE)
    end += (8 - end % 8) % 8
    size = _first(sig, 1000)
    if not isinstance(size, int) or not size:  # Go's Int64() of a missing or non-integer tag: 0
        raise RpmError("rpm: tag not found: RPMSIGTAG_SIZE")
    expect = sig.get(1004)
    if not isinstance(expect, bytes):
        raise RpmError("rpm: tag not found: RPMSIGTAG_MD5")
    rest = data[end:]
    if len(rest) != size or hashlib.md5(rest).digest() != expect:  # noqa: S324 - rpm's MD5
        raise RpmError("MD5 checksum validation failed")
    return end


def _files(values: dict[int, Value]) -> tuple[RpmFile, ...]:
    names = values.get(1117)
    if isinstance(names, list) and names:
        dirs, index = values.get(1118, []), values.get(1116, [])
        paths = [f"{dirs[int(index[i])]}{n}" if i < len(index) and int(index[i]) < len(dirs)
                 else str(n) for i, n in enumerate(names)]
    else:
        old = values.get(1027, [])
        paths = [str(p) for p in old] if isinstance(old, list) else []
    modes, sizes = values.get(1030, []), values.get(5008) or values.get(1028, [])
    return tuple(
        RpmFile(p, int(modes[i]) if isinstance(modes, list) and i < len(modes) else _S_IFREG,
                int(sizes[i]) if isinstance(sizes, list) and i < len(sizes) else 0)
        for i, p in enumerate(paths))


def read_rpm(data: bytes) -> RpmPackage:
    """Check and parse an RPM file (see the module docstring).

    Raises:
        RpmError: not an RPM, a corrupt one, or a digest that does not match.

    """
    start = _check_md5(data)
    sig, _ = _read_header(data, _LEAD_SIZE)
    values, end = _read_header(data, start)
    md5 = sig[1004]
    assert isinstance(md5, bytes)
    return RpmPackage(
        name=str(_first(values, 1000) or ""), version=str(_first(values, 1001) or ""),
        release=str(_first(values, 1002) or ""), arch=str(_first(values, 1022) or ""),
        size=int(_first(values, 5009, 1009) or 0), payload_size=int(_first(sig, 1000) or 0),
        md5=md5.hex(), files=_files(values),
        payload_format=str(_first(values, 1124) or ""),
        compressor=str(_first(values, 1125) or ""), payload=data[end:])


def _decompress(payload: bytes, compressor: str) -> bytes:
    try:
        if compressor in ("xz", "lzma"):
            return lzma.decompress(payload)
        if compressor == "gzip":
            return gzip.decompress(payload)
        if compressor == "bzip2":
            return bz2.decompress(payload)
    except (lzma.LZMAError, OSError, EOFError, ValueError) as exc:
        raise RpmError(f"{compressor}: {exc}") from None
    if compressor in ("", "none", "identity"):
        return payload
    raise RpmError(f"Unsupported compression '{compressor}', the supported compression is 'xz'")


def _cpio_entries(archive: bytes) -> list[tuple[str, int, bytes]]:
    """(name, mode, data) of every entry of a ``newc`` cpio archive."""
    out: list[tuple[str, int, bytes]] = []
    at = 0
    while True:
        head = archive[at:at + 110]
        if len(head) < 110 or head[:6] not in (b"070701", b"070702"):
            raise RpmError("cpio: invalid header")
        fields = [int(head[6 + 8 * k:14 + 8 * k], 16) for k in range(13)]
        mode, size, name_size = fields[1], fields[6], fields[11]
        name_end = at + 110 + name_size
        name = archive[at + 110:name_end - 1].decode("utf-8", "replace")
        data_at = name_end + (4 - name_end % 4) % 4
        if name == "TRAILER!!!":
            return out
        out.append((name, mode, archive[data_at:data_at + size]))
        at = data_at + size + (4 - (data_at + size) % 4) % 4
