"""Fake RPM packages for tests: files that pass ``upload_package``'s check and the fake agent's.

``upload_package`` refuses, before sending, a file that does not start with the 96-byte RPM
lead (magic ``ed ab ee db``); the fake agent reads what it is sent as obshell does (lead,
signature with MD5, header, payload). :func:`write_rpm` writes a whole, valid package built
by the fake agent's builder, ``payload`` being the content of its ``bin/obshell``;
:func:`rpm_lead` is a lead alone, for tests of the SDK's own check.
"""

from __future__ import annotations

import os
import struct
from typing import Optional, Union

MAGIC = b"\xed\xab\xee\xdb"
LEAD_SIZE = 96
BIN_OBSHELL = "/home/admin/oceanbase/bin/obshell"

try:  # the fake agent's RPM writer, when this version of it has one
    from obshell_sdk.testing import build_rpm
except ImportError:  # pragma: no cover - older fake agents took any bytes
    build_rpm = None


def rpm_lead(name: str = "obshell-4.3.1.0-101000012025010101.el7") -> bytes:
    """A 96-byte RPM v3 lead: magic, version 3.0, binary type, x86_64, the name, header sig."""
    raw = name.encode()[:65]
    lead = MAGIC + struct.pack(">BBhh66shh16x", 3, 0, 0, 1, raw, 1, 5)
    assert len(lead) == LEAD_SIZE
    return lead


def rpm_bytes(payload: bytes = b"", *, name: str = "obshell", version: str = "4.3.1.0",
              release: str = "101000012025010101.el7", arch: str = "x86_64") -> bytes:
    """A valid package whose ``bin/obshell`` holds ``payload`` (or a lead and ``payload``)."""
    if build_rpm is None:
        return rpm_lead(f"{name}-{version}-{release}") + payload
    files: Optional[dict[str, bytes]] = {BIN_OBSHELL: payload} if payload else None
    return bytes(build_rpm(name, version, release, arch, files))


def write_rpm(path: Union[str, os.PathLike], payload: bytes = b"", **fields: str) -> bytes:
    """Write :func:`rpm_bytes` to ``path``; return the whole file's bytes."""
    data = rpm_bytes(payload, **fields)
    with open(path, "wb") as file:
        file.write(data)
    return data


def signature_end(data: bytes) -> int:
    """Where the header of the RPM ``data`` starts: after its lead and padded signature header."""
    count, size = struct.unpack(">II", data[LEAD_SIZE + 8:LEAD_SIZE + 16])
    end = LEAD_SIZE + 16 + 16 * count + size
    return end + -end % 8


def resigned(data: bytes, tags: list[tuple[int, int, object]]) -> bytes:
    """The RPM ``data`` with a signature header of ``tags`` (tag, RPM type, value) instead.

    Types as :func:`build_rpm` writes them: 3 INT16, 4 INT32 (values a list of ints), 6 STRING,
    7 BIN (bytes).
    """
    from obshell_sdk.testing._rpmbuild import _header

    signature = _header(list(tags), 62)
    return data[:LEAD_SIZE] + signature + b"\0" * (-len(signature) % 8) + data[
        signature_end(data):]
