"""Writing minimal, valid RPM packages for tests: :func:`build_rpm` (stdlib only).

The file has a lead (magic ``ED AB EE DB``, signature type 5), a signature header with SIZE
(tag 1000) and MD5 (tag 1004) over header plus payload, a header with NAME, VERSION,
RELEASE, SIZE, OS, ARCH, the file list (FILESIZES, FILEMODES, DIRINDEXES, BASENAMES,
DIRNAMES, FILEUSERNAME, FILEGROUPNAME), PAYLOADFORMAT ``cpio`` and PAYLOADCOMPRESSOR, and a
``newc`` cpio payload; both headers are immutable regions (tags 62 and 63), so ``rpm -qpl``
lists the files and ``rpm -K`` finds the digests OK.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import struct
from collections.abc import Mapping
from typing import Any, Optional

from ._rpm import HEADER_MAGIC, LEAD_MAGIC

_HOME = "/home/admin/oceanbase"
_OB_NAMES = ("oceanbase-ce", "oceanbase", "oceanbase-standalone")
_UPGRADE_SCRIPTS = ("upgrade_checker.py", "upgrade_pre.py", "upgrade_health_checker.py",
                    "upgrade_post.py")
_STRING, _BIN, _STRINGS, _INT16, _INT32 = 6, 7, 8, 3, 4


def default_files(name: str, version: str) -> dict[str, bytes]:
    """The files :func:`build_rpm` puts in a package it is given none for.

    What obshell's upload checks want (PROTOCOL-upgrade-family.md §6 step 4): ``obshell`` has
    ``bin/obshell``; an OceanBase package has ``bin/observer``, ``bin/obshell``, the four
    ``etc/upgrade_*.py`` scripts and ``etc/oceanbase_upgrade_dep.yml``; ``oceanbase-ce-libs``
    has the directory ``lib`` (a key ending in ``/``) and one library.
    """
    if name == "obshell":
        return {f"{_HOME}/bin/obshell": b"#!/bin/sh\necho obshell\n"}
    if name == "oceanbase-ce-libs":
        return {f"{_HOME}/lib/": b"", f"{_HOME}/lib/libaio.so.1": b"\x7fELF fake library\n"}
    if name in _OB_NAMES:
        files = {f"{_HOME}/bin/observer": b"#!/bin/sh\necho observer\n",
                 f"{_HOME}/bin/obshell": b"#!/bin/sh\necho obshell\n"}
        for script in _UPGRADE_SCRIPTS:
            files[f"{_HOME}/etc/{script}"] = f"# {script} of {version}\n".encode()
        files[f"{_HOME}/etc/oceanbase_upgrade_dep.yml"] = (
            f"- version: {version}\n  can_be_upgraded_to: []\n".encode())
        return files
    return {f"/usr/share/{name}/README": f"{name} {version}\n".encode()}


def build_rpm(name: str, version: str, release: str, arch: str = "x86_64",
              files: Optional[Mapping[str, bytes]] = None, *, compressor: str = "xz") -> bytes:
    """A minimal but valid binary RPM that obshell (and the fake agent) can read back.

    ``files`` maps absolute paths to contents; a path ending in ``/`` is a directory (its
    content is ignored). ``None`` gives :func:`default_files` for ``name``, enough to pass
    obshell's upload checks. ``compressor``: ``xz`` (as real RPMs and obshell's YAML
    extraction want), ``gzip`` or ``none``. Example::

        rpm = build_rpm("obshell", "4.3.1.0", "20250101.el7")
    """
    entries = default_files(name, version) if files is None else dict(files)
    listing = sorted((p.rstrip("/") or "/", p.endswith("/"), data)
                     for p, data in entries.items())
    payload = _compress(_cpio(listing), compressor)
    tags: list[tuple[int, int, Any]] = [
        (1000, _STRING, name), (1001, _STRING, version), (1002, _STRING, release),
        (1009, _INT32, [sum(len(d) for _, is_dir, d in listing if not is_dir)]),
        (1021, _STRING, "linux"), (1022, _STRING, arch), (1124, _STRING, "cpio"),
    ]
    if compressor != "none":
        tags.append((1125, _STRING, compressor))
    if listing:
        tags += _file_tags(listing)
    header = _header(tags, 63)
    body = header + payload
    digest = hashlib.md5(body).digest()  # noqa: S324 - the RPM signature's MD5
    signature = _header([(1000, _INT32, [len(body)]), (1004, _BIN, digest)], 62)
    signature += b"\0" * ((8 - len(signature) % 8) % 8)
    lead_name = f"{name}-{version}-{release}".encode()[:65]
    lead = struct.pack(">4sBBHH66sHH16s", LEAD_MAGIC, 3, 0, 0, 1, lead_name, 1, 5, b"")
    return lead + signature + body


def _mode(path: str, is_dir: bool) -> int:
    if is_dir:
        return 0o40755
    return 0o100755 if "/bin/" in path else 0o100644


def _file_tags(listing: list[tuple[str, bool, bytes]]) -> list[tuple[int, int, Any]]:
    dirs: list[str] = []
    index: list[int] = []
    for path, _, _ in listing:
        parent = path.rsplit("/", 1)[0] + "/"
        if parent not in dirs:
            dirs.append(parent)
        index.append(dirs.index(parent))
    return [
        (1028, _INT32, [0 if is_dir else len(d) for _, is_dir, d in listing]),
        (1030, _INT16, [_mode(p, is_dir) for p, is_dir, _ in listing]),
        (1116, _INT32, index),
        (1117, _STRINGS, [p.rsplit("/", 1)[1] for p, _, _ in listing]),
        (1118, _STRINGS, dirs),
        (1039, _STRINGS, ["root"] * len(listing)),  # FILEUSERNAME: rpm lists no files without
        (1040, _STRINGS, ["root"] * len(listing)),  # FILEGROUPNAME
    ]


def _header(tags: list[tuple[int, int, Any]], region: int) -> bytes:
    """A header structure whose entries all sit in one immutable ``region`` (tag 62 or 63)."""
    index = bytearray()
    store = bytearray()
    for tag, kind, value in sorted(tags, key=lambda t: t[0]):
        width = {_INT16: 2, _INT32: 4}.get(kind, 1)
        store += b"\0" * ((width - len(store) % width) % width)
        offset = len(store)
        if kind == _STRING:
            data, count = value.encode() + b"\0", 1
        elif kind == _STRINGS:
            data, count = b"".join(v.encode() + b"\0" for v in value), len(value)
        elif kind == _BIN:
            data, count = bytes(value), len(value)
        else:
            fmt = ">H" if kind == _INT16 else ">I"
            data, count = b"".join(struct.pack(fmt, v) for v in value), len(value)
        store += data
        index += struct.pack(">IIII", tag, kind, offset, count)
    entries = len(tags) + 1
    trailer = struct.pack(">IIiI", region, _BIN, -16 * entries, 16)
    index[:0] = struct.pack(">IIII", region, _BIN, len(store), 16)
    store += trailer
    head = HEADER_MAGIC + b"\x01" + b"\0" * 4 + struct.pack(">II", entries, len(store))
    return head + bytes(index) + bytes(store)


def _cpio(listing: list[tuple[str, bool, bytes]]) -> bytes:
    out = bytearray()
    entries = [("." + p, _mode(p, d), b"" if d else data) for p, d, data in listing]
    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], 1):
        raw = name.encode() + b"\0"
        nlink = 2 if mode & 0o170000 == 0o40000 else 1
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(raw), 0)
        out += b"070701" + "".join(f"{f:08x}" for f in fields).encode() + raw
        out += b"\0" * ((4 - len(out) % 4) % 4) + data
        out += b"\0" * ((4 - len(out) % 4) % 4)
    return bytes(out)


def _compress(archive: bytes, compressor: str) -> bytes:
    if compressor == "xz":
        return lzma.compress(archive)
    if compressor == "gzip":
        return gzip.compress(archive, mtime=0)
    if compressor == "none":
        return archive
    raise ValueError(f"compressor must be 'xz', 'gzip' or 'none', not {compressor!r}")
