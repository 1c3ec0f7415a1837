"""Properties: every parser, fed arbitrary JSON, returns a model or raises DecodeError; every
reply, fed over a real socket, is a success only when it is a 2xx successful envelope.

Whole replies go through :mod:`rawserver`, a tiny HTTP/1.1 server on 127.0.0.1, and
``ObshellClient.call``: what the SDK makes of HTML pages, truncated JSON, redirects and huge
bodies is decided by the bytes on the wire, not by a hand-made ``requests.Response``.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rawserver import RawServer
from vectorlib import vectors

from obshell_sdk import (
    AgentInfo,
    ApiError,
    ConnectionLostError,
    DagDetail,
    DecodeError,
    ErrorInfo,
    NodeDetail,
    ObshellClient,
    TaskDetail,
)
from obshell_sdk._models import AgentSecret, Envelope
from obshell_sdk._transport import MAX_REPLY_BYTES

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
_times = st.sampled_from(["2026-11-27T05:21:20.552341359Z", "0001-01-01T00:00:00Z"])
_errors = st.fixed_dictionaries(
    {}, optional={"errCode": st.sampled_from(["", "Task.NotFound", "Common.NotFound"]),
                  "code": st.integers(0, 20000), "message": st.text(max_size=8),
                  "subErrors": st.none() | st.lists(json_values, max_size=2)})
#: Well-formed envelopes, so that the property reaches the success path often ...
envelopes = st.fixed_dictionaries(
    {"successful": st.booleans(), "status": st.sampled_from([200, 400, 500])},
    optional={"data": json_values, "traceId": st.text(max_size=8), "timestamp": _times,
              "duration": st.integers(0, 10**6), "error": st.none() | _errors},
)
#: ... and envelope-shaped objects with any value in any field.
wild_envelopes = st.fixed_dictionaries(
    {"successful": st.booleans() | scalars, "status": st.sampled_from([200, 400]) | scalars},
    optional={"data": json_values, "traceId": scalars, "timestamp": _times | scalars,
              "error": st.none() | _errors | json_values},
)
STATUSES = [200, 201, 301, 302, 307, 400, 401, 404, 500, 502]


@pytest.fixture(scope="module")
def agent():
    """A raw server and a client pointed at it, shared by a module's tests."""
    with RawServer() as server, ObshellClient(server.host, server.port, auth=None) as client:
        yield server, client


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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values, parser=st.sampled_from(PARSERS))
def test_arbitrary_json_gives_a_model_or_decode_error(value, parser):
    try:
        model = parser.from_json(value)
    except DecodeError as exc:
        assert exc.where.startswith(parser.from_json.__defaults__[0])  # a path is named
        return
    assert isinstance(model, parser)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(_mutations()), key=keys, value=json_values,
       parser=st.sampled_from(PARSERS))
def test_real_replies_with_one_value_swapped(base, key, value, parser):
    mutated = dict(base)
    mutated[key] = value
    try:
        model = parser.from_json(mutated)
    except DecodeError as exc:
        assert exc.where  # a field of the object is named
        return
    assert isinstance(model, parser)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(status=st.sampled_from([200, 201]) | st.sampled_from(STATUSES),
       body=st.binary(max_size=64)
       | json_values.map(lambda v: json.dumps(v).encode())
       | envelopes.map(lambda v: json.dumps(v).encode())
       | wild_envelopes.map(lambda v: json.dumps(v).encode()))
def test_any_reply_is_data_api_error_or_decode_error(agent, status, body):
    server, client = agent
    server.set_reply(status, body, {"Content-Type": "application/json"})
    try:
        data = client.call("GET", "/x", signed=False)
    except ApiError as exc:
        assert (exc.status, exc.method, exc.path) == (status, "GET", "/x")
        if 200 <= status < 300:  # a 2xx is an error only when its envelope says so
            assert json.loads(body)["successful"] is False
        return
    except DecodeError as exc:
        assert exc.status == status and "GET /x" in str(exc)
        return
    except ConnectionLostError:  # obshell always sends a body: an empty 2xx was cut short
        assert body == b"" and 200 <= status < 300
        return
    assert 200 <= status < 300, "only a 2xx reply can be a success"
    obj = json.loads(body)
    assert obj["successful"] is True and data == obj.get("data")


@pytest.mark.parametrize(
    ("status", "body", "content_type", "named"),
    [
        (200, b"<html><body>hello</body></html>", "text/html", "not JSON (text/html)"),
        (502, b"<html><head><title>502 Bad Gateway</title></head></html>", "text/html",
         "not JSON"),
        (200, b"\xff\xfe\x00garbage", "application/octet-stream", "not JSON"),
        (200, b'{"successful": true', "application/json", "not JSON"),
        (500, b'{"successful": false, "status": 500, "error": {"errCo', "application/json",
         "not JSON"),
        (200, b"[1, 2, 3]", "application/json", "expected a JSON object, got an array"),
        (200, b'"just a string"', "application/json", "got a string"),
        (200, b"null", "application/json", "got null"),
        (200, b"3", "application/json", "got a number"),
        (200, b'{"successful": "yes", "status": 200}', "application/json", "successful"),
        (200, b'{"status": 200}', "application/json", "successful: missing"),
        (200, b'{"successful": true, "status": "200"}', "application/json", "status"),
        (200, b'{"successful": true, "status": 200, "error": []}', "application/json",
         "error"),
        (400, b'{"successful": false, "status": 400, "error": {"code": "x"}}',
         "application/json", "error.code"),
        (200, b'{"successful": true, "status": 200, "timestamp": "noon"}', "application/json",
         "timestamp"),
        # Python reads these; no other JSON parser does, and --json would write them back.
        (200, b'{"successful": true, "status": 200, "data": {"x": NaN}}', "application/json",
         "not JSON (application/json): NaN is not a JSON number"),
        (200, b'{"successful": true, "status": 200, "data": [-Infinity]}', "application/json",
         "-Infinity is not a JSON number"),
        (200, b'{"successful": true, "status": 200, "data": {"big": 1e999}}',
         "application/json", "1e999 is out of the range of JSON numbers"),
    ],
)
def test_malformed_replies_are_typed_errors(agent, status, body, content_type, named):
    server, client = agent
    server.set_reply(status, body, {"Content-Type": content_type})
    with pytest.raises(DecodeError) as info:
        client.call("GET", "/x", signed=False)
    assert "GET /x" in str(info.value)
    assert f"HTTP {status}" in str(info.value)
    assert named in str(info.value)
    assert info.value.status == status


@pytest.mark.parametrize(("body", "content_type"), [
    (b"<html><body>404 page not found</body></html>", "text/html"),  # not JSON
    (b'{"a": ' * 300 + b"1" + b"}" * 300, "application/json"),  # nested too deep
    (b"[1, 2, 3]", "application/json"),  # JSON, not an envelope
])
def test_a_reply_that_is_not_obshell_s_names_the_agent_as_every_other_error_does(
        agent, body, content_type):
    """``GET /x: HTTP 404 reply is not JSON`` named no agent, where an ApiError or a lost
    connection says ``on host:port`` (a rollout's or a script's many agents)."""
    server, client = agent
    server.set_reply(404, body, {"Content-Type": content_type})
    with pytest.raises(DecodeError) as info:
        client.call("GET", "/x", signed=False)
    assert str(info.value).startswith(f"GET /x on {client.agent}: HTTP 404 reply "), info.value
    assert info.value.agent == client.agent


def test_an_empty_2xx_reply_is_a_cut_reply_never_a_success(agent):
    """obshell always answers with an envelope: a 200 or 201 without a body was cut short."""
    server, client = agent
    for status in (200, 201):
        server.set_reply(status, b"", {"Content-Type": "application/json"})
        with pytest.raises(ConnectionLostError, match="no body"):
            client.call("GET", "/x", signed=False)


def test_a_204_is_a_success_without_data(agent):
    """PROTOCOL 2.1: obshell's SendNoContentResponse sends a 204 with no body at all."""
    server, client = agent
    server.set_reply(204, b"", {})
    assert client.call("DELETE", "/x", signed=False) is None


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_with_a_successful_envelope_is_an_api_error(agent, status):
    server, client = agent
    envelope = {"successful": True, "status": 200, "traceId": "r", "data": {"x": 1}}
    server.set_reply(status, json.dumps(envelope).encode(),
                     {"Content-Type": "application/json", "Location": "/elsewhere"})
    server.requests.clear()
    with pytest.raises(ApiError) as info:
        client.call("GET", "/x", signed=False)
    assert info.value.status == status and info.value.path == "/x"
    assert "redirect" in str(info.value)
    assert [r.target for r in server.requests] == ["/x"]  # never followed


def test_an_empty_redirect_is_not_a_success(agent):
    server, client = agent
    server.set_reply(302, b"", {"Location": "/elsewhere"})
    with pytest.raises((ApiError, DecodeError)) as info:
        client.call("GET", "/x", signed=False)
    assert info.value.status == 302


def test_a_2xx_error_envelope_is_an_api_error(agent):
    server, client = agent
    body = {"successful": False, "status": 404, "traceId": "t1",
            "error": {"errCode": "Task.NotFound", "code": 2300, "message": "no such dag"}}
    server.set_reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with pytest.raises(ApiError) as info:
        client.call("GET", "/x", signed=False)
    assert type(info.value).__name__ == "TaskNotFoundError"
    assert (info.value.status, info.value.err_code, info.value.trace_id) == (200, "Task.NotFound",
                                                                             "t1")


def test_a_reply_shorter_than_its_content_length_is_a_lost_connection(agent):
    server, client = agent
    server.set_reply(200, b'{"successful": true, "status": 200, "da',
                     {"Content-Type": "application/json", "Content-Length": "120"}, close=True)
    with pytest.raises(ConnectionLostError) as info:
        client.call("GET", "/x", signed=False)
    assert info.value.path == "/x"


def test_huge_reply_is_refused(agent):
    server, client = agent
    chunk = b" " * (1 << 20)
    size = MAX_REPLY_BYTES + 1
    pieces = [chunk] * (size // len(chunk)) + [b" " * (size % len(chunk))]
    server.set_reply(200, iter(pieces), {"Content-Type": "application/json",
                                         "Content-Length": str(size)}, close=True)
    with pytest.raises(DecodeError, match="larger than any obshell reply") as info:
        client.call("GET", "/x", signed=False)
    assert info.value.status == 200 and "GET /x" in str(info.value)


def test_info_names_the_path_of_a_bad_field(agent):
    server, client = agent
    envelope = {"successful": True, "status": 200, "data": {"identity": "SINGLE", "version": 4}}
    server.set_reply(200, json.dumps(envelope).encode(), {"Content-Type": "application/json"})
    with pytest.raises(DecodeError) as info:
        client.info()
    assert info.value.where == "data.version"
    envelope["data"] = None
    server.set_reply(200, json.dumps(envelope).encode(), {"Content-Type": "application/json"})
    with pytest.raises(DecodeError) as info:
        client.info()
    assert info.value.where == "data"


def test_envelope_decode_error_keeps_where(agent):
    server, client = agent
    server.set_reply(200, b'{"successful": true, "status": "200"}',
                     {"Content-Type": "application/json"})
    with pytest.raises(DecodeError) as info:
        client.call("GET", "/x", signed=False)
    assert info.value.where == "status"
