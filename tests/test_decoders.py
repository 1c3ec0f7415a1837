"""The written-out decoders agree with the generic field-by-field loop they stand in for.

Real replies (from the recorded vectors) are mutated anywhere in their tree; the public decode
(written-out function, generic loop on failure) must give the same model, or the same error
with the same JSON path, as the generic loop alone.
"""

from __future__ import annotations

import copy
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_parsers_property import PARSERS, json_values
from vectorlib import vectors

from obshell_sdk import AgentInfo, AgentSecret, DagDetail, DecodeError, Envelope, NodeDetail
from obshell_sdk._wire import _decode_generic, decode
from obshell_sdk._wirecode import compile_decoder

#: Values that are almost right for some field: what a fast path could wrongly wave through.
NEAR_MISSES = st.sampled_from([
    "RUNNING", "running", "SUCCEEDED", "RUN", "", "2024-01-01T00:00:00Z", "2024-13-01T00:00:00Z",
    "0001-01-01T00:00:00Z", "1970-01-01T08:00:00+08:00", None, 0, -1, 1.5, True, [], {}, [None],
    ["x"], [{}], {"id": "1"},
])


def _datas() -> list[tuple[type, Any]]:
    """Each recorded reply's data with the model it decodes to, plus whole envelopes."""
    out: list[tuple[type, Any]] = []
    for vec in vectors():
        body = vec["response"]["body"]
        out.append((Envelope, body))
        data = body.get("data")
        if isinstance(data, dict):
            for cls in (DagDetail, AgentInfo, AgentSecret, NodeDetail):
                try:
                    _decode_generic(cls, data, "data")
                except DecodeError:
                    continue
                out.append((cls, data))
    return out


DATAS = _datas()


def _slots(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON tree."""
    found = [path] if path else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            found += _slots(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += _slots(v, (*path, i))
    return found


def _outcome(fn: Any) -> Any:
    try:
        model = fn()
    except DecodeError as exc:
        return ("error", str(exc), exc.where)
    return ("model", type(model), attrs.asdict(model, recurse=True))


def test_every_recorded_reply_decodes_the_same_both_ways():
    assert len(DATAS) > 30
    for cls, data in DATAS:
        fast = compile_decoder(cls)(data)
        assert attrs.asdict(fast) == attrs.asdict(_decode_generic(cls, data, "data"))


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_anywhere_gives_the_same_model_or_the_same_error(data):
    cls, base = data.draw(st.sampled_from(DATAS))
    mutated = copy.deepcopy(base)
    slots = _slots(mutated)
    path = data.draw(st.sampled_from(slots))
    parent = mutated
    for step in path[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(NEAR_MISSES | json_values)
    public = _outcome(lambda: decode(cls, mutated, "data"))
    assert public == _outcome(lambda: _decode_generic(cls, mutated, "data"))
    try:
        fast = compile_decoder(cls)(mutated)
    except (DecodeError, ValueError):
        assert public[0] == "error"
    else:
        assert public == ("model", cls, attrs.asdict(fast, recurse=True))


@pytest.mark.parametrize("cls", PARSERS)
def test_non_objects_are_refused_with_the_path(cls):
    for value in (None, [], "x", 3):
        with pytest.raises(DecodeError) as info:
            decode(cls, value, "data.nodes[3]")
        assert info.value.where == "data.nodes[3]"


def test_factory_defaults_and_classes_without_wire_fields():
    from obshell_sdk._wire import p_list, p_str, wire

    @attrs.frozen
    class Tags:
        names: tuple[str, ...] = wire("names", p_list(p_str), required=False,
                                      default=attrs.Factory(tuple))
        extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @attrs.frozen
    class Empty:
        extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    assert decode(Tags, {}, "data").names == ()
    assert decode(Tags, {"names": ["a"]}, "data").names == ("a",)
    assert decode(Empty, {"x": 1}, "data").extra == {"x": 1}
