"""An RPM's name, version, release and architecture, read from its header (never the payload).

An RPM file is a 96-byte lead, a signature header padded to 8 bytes, then the header. Each
header is a 16-byte intro (magic ``8e ad e8 01``, 4 reserved bytes, the number of index
entries, the size of the data store), 16-byte index entries (tag, type, offset, count),
then the store. NAME, VERSION, RELEASE and ARCH are the string tags 1000, 1001, 1002 and
1022.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Optional

__all__ = ["rpm_identity", "rpm_label"]

_LEAD_SIZE = 96
_HEADER_MAGIC = b"\x8e\xad\xe8\x01"
_MAX_HEADER = 16 * 1024 * 1024  # real headers are well under 1 MiB
_MAX_STRING = 4096  # names, versions and releases are short
_STRING = 6
_NAME, _VERSION, _RELEASE, _ARCH = 1000, 1001, 1002, 1022


def rpm_identity(path: str) -> Optional[tuple[str, str, str]]:
    """``(name, version, release)`` of the RPM at ``path``; None when its header does not say.

    The agent reads the same header when the package is uploaded; None leaves the judgement
    to it.
    """
    tags = _string_tags(path)
    if tags is None or not {_NAME, _VERSION, _RELEASE} <= tags.keys():
        return None
    return tags[_NAME], tags[_VERSION], tags[_RELEASE]


def rpm_label(path: str) -> Optional[str]:
    """``name-version-release.arch`` of the RPM at ``path``; None when its header does not say.

    That is the package's usual file name, less ``.rpm``.
    """
    tags = _string_tags(path)
    if tags is None or not {_NAME, _VERSION, _RELEASE} <= tags.keys():
        return None
    label = f"{tags[_NAME]}-{tags[_VERSION]}-{tags[_RELEASE]}"
    return f"{label}.{tags[_ARCH]}" if _ARCH in tags else label


def _string_tags(path: str) -> Optional[dict[int, str]]:
    """The NAME, VERSION, RELEASE and ARCH strings the header holds; None when unreadable."""
    try:
        with open(path, "rb") as file:
            file.seek(_LEAD_SIZE)
            count, size = _intro(file)
            file.seek(count * 16 + size, 1)  # the signature header, then its padding
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
    return found


def _intro(file: BinaryIO) -> tuple[int, int]:
    """A header's index count and store size; ValueError when it is not a header."""
    intro = file.read(16)
    if len(intro) != 16 or intro[:4] != _HEADER_MAGIC:
        raise ValueError("not an RPM header")
    count, size = struct.unpack(">II", intro[8:])
    if count * 16 + size > _MAX_HEADER:
        raise ValueError("an RPM header larger than any real one")
    return count, size
