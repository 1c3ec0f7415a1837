"""Decoding functions written out per model class, for replies that fit (the common case).

:func:`compile_decoder` turns a model's wire fields into one straight Python function, the way
attrs writes ``__init__``: no loop over fields, no per-field tuple unpacking, nested models
and lists of them decoded inline, and no JSON path strings built. When anything does not fit
it raises :class:`DecodeError` without a useful path, and :func:`obshell_sdk._wire.decode`
decodes the object again with the generic loop, which names the exact path. So the fast
functions only ever decide *that* an object is bad; the message comes from the reference.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

from ._exceptions import DecodeError
from ._wire import MISSING, TIME_FAST, parse_time, wire_spec

__all__ = ["compile_decoder"]

FastDecoder = Callable[[Any], Any]
_COMPILED: dict[type, FastDecoder] = {}


def compile_decoder(cls: type) -> FastDecoder:
    """The fast decoding function of ``cls`` (written once, then cached)."""
    found = _COMPILED.get(cls)
    if found is None:
        found = _COMPILED[cls] = _Writer(cls).function()
    return found


def _not_object(obj: Any) -> Any:
    raise DecodeError("expected a JSON object")


def _missing() -> Any:
    raise DecodeError("missing")


class _Writer:
    """Writes the source of one class's decoding function, with the names it refers to."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.env: dict[str, Any] = {"M": MISSING, "cls": cls, "parse_time": parse_time,
                                    "not_object": _not_object, "missing": _missing}
        self.lines: list[str] = []

    def name(self, value: Any) -> str:
        """A global name in the generated code bound to ``value``."""
        key = f"g{len(self.env)}"
        self.env[key] = value
        return key

    def function(self) -> FastDecoder:
        fields, known = wire_spec(self.cls)
        defaults = {f.name: f.default for f in attrs.fields(self.cls)}
        out = self.lines
        out += ["def decode(obj):",
                "    if type(obj) is not dict:",
                "        return not_object(obj)",
                "    get = obj.get"]
        args = []
        for i, (name, key, parse, required) in enumerate(fields):
            v = f"v{i}"
            out.append(f"    {v} = get({key!r}, M)")
            out.append(f"    if {v} is M:")
            out.append(f"        {v} = missing()" if required
                       else f"        {v} = {self.default(defaults[name])}")
            out.append("    else:")
            self.value(parse, v, "        ")
            args.append(f"{name}={v}")
        args.append("extra=extra")
        known_name = self.name(known)
        out += [f"    extra = {{}} if {known_name}.issuperset(obj) else "
                f"{{k: x for k, x in obj.items() if k not in {known_name}}}",
                f"    return cls({', '.join(args)})"]
        source = "\n".join(out)
        code = compile(source, f"<obshell_sdk decoder of {self.cls.__name__}>", "exec")
        exec(code, self.env)  # noqa: S102 - our own generated source, as attrs does
        return self.env["decode"]  # type: ignore[no-any-return]

    def default(self, default: Any) -> str:
        """The expression of a missing optional field's value (what attrs would give it)."""
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            if default.takes_self:
                raise TypeError("wire fields cannot have defaults that take self")
            return f"{self.name(default.factory)}()"
        return self.name(default)

    def value(self, parse: Any, v: str, indent: str) -> None:
        """Statements that replace the JSON value in ``v`` by its parsed form."""
        fast, shape = getattr(parse, "fast", None), getattr(parse, "shape", None)
        p = self.name(parse)
        out = self.lines
        if fast in (str, int, bool):
            out.append(f"{indent}if type({v}) is not {self.name(fast)}:")
            out.append(f"{indent}    {v} = {p}({v}, '')")
        elif type(fast) is dict:
            f = self.name(fast)
            out.append(f"{indent}{v} = {f}[{v}] if type({v}) is str and {v} in {f} "
                       f"else {p}({v}, '')")
        elif fast is TIME_FAST:
            out.append(f"{indent}{v} = parse_time({v}) if type({v}) is str else {p}({v}, '')")
        elif shape is not None and shape[0] == "model":
            out.append(f"{indent}{v} = {self.name(compile_decoder(shape[1]))}({v})")
        elif shape is not None and shape[0] == "optional":
            out.append(f"{indent}if {v} is not None:")
            self.value(shape[1], v, indent + "    ")
        elif shape is not None and shape[0] == "list":
            item = self.item(shape[1])
            out.append(f"{indent}if type({v}) is list:")
            out.append(f"{indent}    {v} = tuple([{item} for y in {v}])" if item
                       else f"{indent}    {v} = {p}({v}, '')")
            out.append(f"{indent}else:")
            out.append(f"{indent}    {v} = {p}({v}, '')")
        else:
            out.append(f"{indent}{v} = {p}({v}, '')")

    def item(self, parse: Any) -> str:
        """An expression parsing list item ``y``, or "" to let the list's parser do it."""
        fast, shape = getattr(parse, "fast", None), getattr(parse, "shape", None)
        if shape is not None and shape[0] == "model":
            return f"{self.name(compile_decoder(shape[1]))}(y)"
        if fast in (str, int, bool):
            return f"y if type(y) is {self.name(fast)} else {self.name(parse)}(y, '')"
        return ""
