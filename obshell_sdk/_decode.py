"""JSON <-> model plumbing: wire names, value parsers, time parsing, unknown keys kept aside.

A model field declared with :func:`wire` carries its JSON key and a parser. :func:`decode`
walks the fields of an attrs class, so a reply that does not fit raises
:class:`~obshell_sdk.DecodeError` naming the exact JSON path, never a ``KeyError``.

A parser takes only the value. The path is put together from the steps a
:class:`MisfitError` collects on its way up, so a reply that fits builds no path at all;
:func:`at` runs a parser on a value outside a model. This module knows JSON and attrs,
nothing of HTTP.
"""

from __future__ import annotations

import functools
import json
import math
import re
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Callable, Optional, TypeVar, cast

import attrs

from ._exceptions import DecodeError

T = TypeVar("T")
E = TypeVar("E", bound=Enum)
#: Takes a JSON value and returns what the model keeps, or raises :class:`MisfitError`.
Parser = Callable[[Any], Any]

_WIRE = "obshell_wire"
_PARSE = "obshell_parse"
_REQUIRED = "obshell_required"
MISSING = object()


class MisfitError(Exception):
    """A JSON value that does not fit its parser.

    Parsers know nothing of where their value sits: each enclosing object or array adds its
    step (``.state``, ``[2]``) while the misfit travels up, and :func:`at` turns it into a
    :class:`DecodeError` naming the whole path. So no path is built unless a reply is wrong.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.steps: list[str] = []  # innermost first


def at(parse: Callable[[Any], T], value: Any, where: str) -> T:
    """``parse(value)`` for a value at JSON path ``where``; a misfit raises :class:`DecodeError`."""
    try:
        return parse(value)
    except MisfitError as exc:
        steps = "".join(reversed(exc.steps))
        path = where + steps if where else steps.removeprefix(".")
        raise DecodeError(exc.message, where=path) from None


def wire(
    key: str,
    parse: Parser,
    *,
    required: bool = True,
    default: Any = None,
    repr: bool = True,
    hash: bool = True,
) -> Any:
    """Declare a model field read from JSON key ``key`` with ``parse``.

    A required field must be present in the JSON; an optional one takes ``default``.
    ``hash=False`` leaves a field out of the model's hash (a dict, which has none), not out
    of its equality.
    """
    meta = {_WIRE: key, _PARSE: parse, _REQUIRED: required}
    if required:
        return attrs.field(metadata=meta, repr=repr, hash=hash)
    return attrs.field(metadata=meta, default=default, repr=repr, hash=hash)


_Field = tuple[str, str, Parser, bool]


def wire_spec(cls: type) -> tuple[tuple[_Field, ...], frozenset[str]]:
    """The wire fields of ``cls`` as (name, key, parser, required), read once per class."""
    found = _SPECS.get(cls)
    if found is None:
        fields = tuple(
            (f.name, f.metadata[_WIRE], f.metadata[_PARSE], f.metadata[_REQUIRED])
            for f in attrs.fields(cls)
            if _WIRE in f.metadata
        )
        found = _SPECS[cls] = (fields, frozenset(field[1] for field in fields))
    return found


_SPECS: dict[type, tuple[tuple[_Field, ...], frozenset[str]]] = {}


def decode(cls: type[T], obj: Any, where: str) -> T:
    """Build ``cls`` (an attrs class whose fields use :func:`wire`) from a JSON object.

    Every value goes through its field's parser; keys the class does not know go to its
    ``extra`` field, untouched. A value that does not fit raises :class:`DecodeError` naming
    its exact JSON path (``data.nodes[2].state``), never a ``KeyError``.
    """
    return at(p_model(cls), obj, where)


def _build(cls: type[T], obj: Any) -> T:
    if type(obj) is not dict:
        raise MisfitError(f"expected a JSON object, got {_kind(obj)}")
    fields, known = wire_spec(cls)
    values: dict[str, Any] = {}
    for name, key, parse, required in fields:
        raw = obj.get(key, MISSING)
        try:
            if raw is not MISSING:
                values[name] = parse(raw)
            elif required:
                raise MisfitError("missing")
        except MisfitError as exc:
            exc.steps.append(f".{key}")
            raise
    values["extra"] = {} if obj.keys() <= known else {
        k: v for k, v in obj.items() if k not in known}
    return cast(Any, cls)(**values)  # type: ignore[no-any-return]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__  # pragma: no cover - json never yields anything else


def p_str(value: Any) -> str:
    """Parse a JSON string."""
    if not isinstance(value, str):
        raise MisfitError(f"expected a string, got {_kind(value)}")
    return value


def p_int(value: Any) -> int:
    """Parse a JSON integer (not a boolean, not a fraction) that fits Go's int64 or uint64."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MisfitError(f"expected an integer, got {_kind(value)}")
    if not -2**63 <= value < 2**64:
        raise MisfitError("a number out of the range of obshell's integers (Go's 64 bits)")
    return value


def p_bool(value: Any) -> bool:
    """Parse a JSON boolean."""
    if not isinstance(value, bool):
        raise MisfitError(f"expected a boolean, got {_kind(value)}")
    return value


def p_any(value: Any) -> Any:
    """Keep any JSON value as it is."""
    return value


def p_object(value: Any) -> Optional[dict[str, Any]]:
    """Parse a JSON object or null."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MisfitError(f"expected an object or null, got {_kind(value)}")
    return value


def p_optional(parse: Callable[[Any], T]) -> Callable[[Any], Optional[T]]:
    """Wrap ``parse`` so that JSON null becomes None."""

    def parser(value: Any) -> Optional[T]:
        return None if value is None else parse(value)

    return parser


def p_enum(enum: type[E]) -> Callable[[Any], E]:
    """Parse a string into a member of ``enum``."""
    members = {member.value: member for member in enum}

    def parser(value: Any) -> E:
        member = members.get(p_str(value))
        if member is None:
            known = ", ".join(members)
            raise MisfitError(f"unknown value {value!r} (known: {known})")
        return member

    return parser


def p_list(
    parse: Callable[[Any], T], *, null_as_empty: bool = False
) -> Callable[[Any], tuple[T, ...]]:
    """Parse a JSON array into a tuple; with ``null_as_empty`` null becomes ``()``."""

    def parser(value: Any) -> tuple[T, ...]:
        if value is None and null_as_empty:
            return ()
        if not isinstance(value, list):
            raise MisfitError(f"expected an array, got {_kind(value)}")
        items = []
        for i, item in enumerate(value):
            try:
                items.append(parse(item))
            except MisfitError as exc:
                exc.steps.append(f"[{i}]")
                raise
        return tuple(items)

    return parser


def p_model(cls: type[T]) -> Callable[[Any], T]:
    """Parse a nested model."""
    return functools.partial(_build, cls)


_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))\Z"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@functools.lru_cache(maxsize=4096)
def parse_time(text: str) -> Optional[datetime]:
    """Parse obshell's RFC 3339 time (0-9 fractional digits, ``Z`` or ``+hh:mm``).

    Returns an aware datetime (fractions below a microsecond are dropped), or None for the
    "unset" placeholders obshell writes: Go's zero time (year 1) and the Unix epoch in any zone.
    Raises ValueError for anything else.
    """
    m = _TIME.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    if year == 1:
        return None
    micro = int((m.group(7) or "0").ljust(9, "0")[:6])
    if m.group(8):
        tz = timezone.utc
    else:
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        tz = timezone(-offset if m.group(9) == "-" else offset)
    value = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    if value == _EPOCH:
        return None
    try:  # 9999-12-31T23:59:59-23:59 parses, but in UTC falls past the calendar's end
        value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"a time out of range in UTC: {text!r}") from None
    return value


def p_time(value: Any) -> Optional[datetime]:
    """Parse a JSON time string (see :func:`parse_time`); null is None."""
    if value is None:
        return None
    try:
        return parse_time(p_str(value))
    except ValueError as exc:
        raise MisfitError(str(exc)) from None


def p_time_text(value: Any) -> Optional[datetime]:
    """Parse a JSON time string; unlike :func:`p_time`, null does not fit."""
    return p_time(p_str(value))


def decode_contents(data: Any, where: str = "data") -> list[Any]:
    """The items of obshell's slice wrapper ``{"contents": [...]}``; null contents is empty."""
    obj = at(p_object, data, where)
    if obj is None:
        raise DecodeError("expected an object with contents, got null", where=where)
    items = obj.get("contents")
    if items is None:
        return []
    if not isinstance(items, list):
        raise DecodeError(f"expected an array, got {_kind(items)}", where=f"{where}.contents")
    return items


def load_json(text: bytes) -> Any:
    """Parse JSON as Go writes it: ``NaN``, ``Infinity`` and ``1e999`` raise ValueError.

    Python reads them (as no JSON parser of another language does), and would write them
    back out, in ``--json`` output say, as invalid JSON.
    """
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of the range of JSON numbers (64-bit floats)")
    return value


def nested_deeper(obj: Any, limit: int) -> bool:
    """True when ``obj`` nests arrays and objects more than ``limit`` levels (no recursion).

    Walks one level at a time and keeps only the containers: the scalars, most of a reply,
    are looked at once and dropped.
    """
    level = [obj] if type(obj) in _CONTAINERS else []
    for _ in range(limit + 1):
        level = [child for item in level
                 for child in (item.values() if type(item) is dict else item)
                 if type(child) in _CONTAINERS]
        if not level:
            return False
    return True


#: What json.loads builds for JSON objects and arrays (exactly these types, never subclasses).
_CONTAINERS = (dict, list)
