"""Go-flavoured helpers: time formatting, JSON encoding and struct decoding."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Optional

from ._crypto import DecryptError, go_b64decode_strict

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(ts: float) -> str:
    """Format Unix time like Go's ``time.Time`` JSON (UTC, up to 9 digits, zeros trimmed)."""
    ns = round(ts * 1e9)
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


def go_json(value: Any) -> bytes:
    """Encode like Go's ``encoding/json`` (compact, HTML-safe escapes, UTF-8)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def parse_go_json(data: bytes) -> Any:
    """Parse JSON roughly as strictly as Go; raises ``ValueError`` with a Go-like text."""
    if not data.strip():
        raise ValueError("EOF")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("invalid character in string literal") from None
    try:
        return json.loads(text, object_pairs_hook=_Pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        pos = exc.pos
        if pos >= len(text):
            raise ValueError("unexpected end of JSON input") from None
        if exc.msg == "Extra data":
            raise ValueError(
                f"invalid character '{text[pos]}' after top-level value"
            ) from None
        raise ValueError(
            f"invalid character '{text[pos]}' looking for beginning of value") from None


class _Pairs(list):  # type: ignore[type-arg]
    """A JSON object kept as its ordered key/value pairs (duplicates preserved)."""


def _kind(value: Any) -> str:
    if isinstance(value, _Pairs):
        return "object"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "null"


def to_plain(value: Any) -> Any:
    """Convert parsed JSON (with ordered pairs) into plain dicts/lists."""
    if isinstance(value, _Pairs):
        return {k: to_plain(v) for k, v in value}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value


class GoField:
    """One field of a Go struct: Go name, JSON name, Go type (string, bytes, int, bool, any)."""

    __slots__ = ("go_name", "go_type", "json_name")

    def __init__(self, go_name: str, json_name: str, go_type: str) -> None:
        self.go_name = go_name
        self.json_name = json_name
        self.go_type = go_type


def decode_struct(
    data: Any, struct: str, fields: Sequence[GoField], *, type_path: str
) -> tuple[dict[str, Any], Optional[str]]:
    """Decode a parsed JSON value into a Go struct the way ``encoding/json`` does.

    Keys match case-insensitively (exact match first), unknown keys are ignored,
    ``null`` leaves the zero value, the first type error is reported (Go keeps
    decoding the other fields). Returns the field values by Go name and the
    error text or ``None``.
    """
    out: dict[str, Any] = {f.go_name: _zero(f.go_type) for f in fields}
    if data is None:
        return out, None
    if not isinstance(data, _Pairs):
        return out, f"json: cannot unmarshal {_kind(data)} into Go value of type {type_path}"
    error: Optional[str] = None
    for key, value in data:
        field = _match(fields, key)
        if field is None or value is None:
            continue
        ok, converted = _convert(field.go_type, value)
        if ok:
            out[field.go_name] = converted
        elif error is None and isinstance(converted, str):
            error = converted
        elif error is None:
            gotype = {"bytes": "[]uint8", "any": "interface {}"}.get(field.go_type, field.go_type)
            error = (
                f"json: cannot unmarshal {_kind(value)} into Go struct field "
                f"{struct}.{field.json_name} of type {gotype}"
            )
    return out, error


def _zero(go_type: str) -> Any:
    return {"string": "", "int": 0, "bool": False, "bytes": None}.get(go_type)


def _match(fields: Sequence[GoField], key: str) -> Optional[GoField]:
    for f in fields:
        if f.json_name == key:
            return f
    lower = key.lower()
    for f in fields:
        if f.json_name.lower() == lower:
            return f
    return None


def _convert(go_type: str, value: Any) -> tuple[bool, Any]:
    if go_type == "string":
        return isinstance(value, str), value
    if go_type == "bool":
        return (True, value) if isinstance(value, bool) else (False, None)
    if go_type == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return ok, value
    if go_type == "bytes":
        if isinstance(value, str):
            try:
                return True, go_b64decode_strict(value)
            except DecryptError as exc:
                return False, str(exc)
        if isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 256 for v in value
        ):
            return True, bytes(value)
        return False, None
    return True, to_plain(value)
