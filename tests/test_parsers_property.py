"""Property: every reply parser, fed arbitrary JSON, returns a model or raises DecodeError."""

from __future__ import annotations

import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vectorlib import vectors

from obshell_sdk import (
    AgentInfo,
    AgentSecret,
    ApiError,
    DagDetail,
    DecodeError,
    Envelope,
    ErrorInfo,
    NodeDetail,
    TaskDetail,
)
from obshell_sdk._http import envelope_from_response

PARSERS = [Envelope, ErrorInfo, DagDetail, NodeDetail, TaskDetail, AgentInfo, AgentSecret]

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
keys = st.sampled_from(
    ["id", "dag_id", "name", "stage", "max_stage", "state", "operator", "start_time", "end_time",
     "nodes", "sub_tasks", "task_logs", "execute_agent", "ip", "port", "identity", "version",
     "supportedAuth", "security", "successful", "status", "traceId", "data", "error", "errCode",
     "code", "message", "subErrors", "public_key", "timestamp", "additional_data"]
) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=8),
    max_leaves=30,
)


def _mutations():
    """Real replies with one value swapped: the inputs most likely to trip a parser."""
    out = []
    for vec in vectors():
        body = vec["response"]["body"]
        data = body.get("data")
        if isinstance(data, dict):
            out.append(data)
        out.append(body)
    return out


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values, parser=st.sampled_from(PARSERS))
def test_arbitrary_json_gives_a_model_or_decode_error(value, parser):
    try:
        model = parser.from_json(value)
    except DecodeError:
        return
    assert isinstance(model, parser)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(_mutations()), key=keys, value=json_values,
       parser=st.sampled_from(PARSERS))
def test_real_replies_with_one_value_swapped(base, key, value, parser):
    mutated = dict(base)
    mutated[key] = value
    try:
        model = parser.from_json(mutated)
    except DecodeError:
        return
    assert isinstance(model, parser)


def _response(status, content, content_type="application/json"):
    resp = requests.Response()
    resp.status_code = status
    resp._content = content
    resp.headers["Content-Type"] = content_type
    return resp


@settings(max_examples=300)
@given(status=st.sampled_from([200, 204, 400, 401, 404, 500, 502]),
       body=st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_reply_body_gives_envelope_api_error_or_decode_error(status, body):
    try:
        env = envelope_from_response(_response(status, body), body, method="GET", path="/x")
    except (DecodeError, ApiError):
        return
    assert isinstance(env, Envelope) and env.successful


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (200, b"<html><body>hello</body></html>", "text/html"),
        (502, b"<html><head><title>502 Bad Gateway</title></head></html>", "text/html"),
        (200, b"", "application/json"),
        (200, b"\xff\xfe\x00garbage", "application/octet-stream"),
        (200, b'{"successful": true', "application/json"),
        (200, b"[1, 2, 3]", "application/json"),
        (200, b'"just a string"', "application/json"),
        (200, b'{"successful": "yes", "status": 200}', "application/json"),
        (200, b'{"status": 200}', "application/json"),
        (200, b'{"successful": true, "status": "200"}', "application/json"),
    ],
)
def test_malformed_replies_are_typed_errors(status, body, content_type):
    if status == 200 and body == b"":
        env = envelope_from_response(_response(status, body, content_type), body,
                                     method="GET", path="/x")
        assert env.successful and env.data is None
        return
    with pytest.raises(DecodeError) as info:
        envelope_from_response(_response(status, body, content_type), body, method="GET",
                               path="/x")
    assert "/x" in str(info.value)
    assert info.value.status == status


def test_huge_reply_is_refused():
    from obshell_sdk._http import MAX_REPLY_BYTES

    with pytest.raises(DecodeError, match="larger than any obshell reply"):
        big = b" " * (MAX_REPLY_BYTES + 1)
        envelope_from_response(_response(200, big), big, method="GET", path="/x")
