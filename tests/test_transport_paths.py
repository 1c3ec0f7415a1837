"""How a call leaves the client: through ``Session.request``, as requests would send it.

Headers, bodies, cookies a proxy sets, and a caller's session (hooks, headers) all behave as
requests' public API makes them behave.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Optional

import pytest
import requests
from conftest import PASSWORD
from rawserver import RawReply, RawServer

from obshell_sdk import (
    ApiError,
    ConnectionLostError,
    InvalidArgumentError,
    ObshellClient,
    PasswordAuth,
)
from obshell_sdk.testing import FakeAgent

VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"
INFO = {"successful": True, "status": 200, "traceId": "t", "data": {
    "identity": "SINGLE", "version": "4.3.0.0", "ip": "127.0.0.1", "port": 2886,
    "supportedAuth": ["v2"],
}}


class _CookieAgent(http.server.BaseHTTPRequestHandler):
    """Answers /api/v1/info, sets a cookie on the first reply, records Cookie headers."""

    seen: list[Optional[str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Cookie"))
        body = json.dumps(INFO).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if len(type(self).seen) == 1:
            self.send_header("Set-Cookie", "lb=node-2; Path=/")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def cookie_agent() -> Iterator[tuple[str, int, list[Optional[str]]]]:
    _CookieAgent.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CookieAgent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_address[1], _CookieAgent.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_cookie_set_by_a_proxy_is_sent_back(cookie_agent):
    host, port, seen = cookie_agent
    with ObshellClient(host, port, auth=None) as client:
        for _ in range(3):
            assert client.info().version == "4.3.0.0"
    assert seen == [None, "lb=node-2", "lb=node-2"]


def test_calls_send_what_requests_sends():
    with FakeAgent(password=PASSWORD) as agent, ObshellClient(
        agent.host, agent.port, auth=PasswordAuth(PASSWORD)
    ) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        client.get_dag(task.id)
    post = agent.requests_to("/api/v1/agent/upgrade", "POST")[-1]
    get = agent.requests_to(f"/api/v1/task/dag/{task.id}", "GET")[-1]
    for rec in (post, get):
        names = {k.lower(): v for k, v in rec.headers.items()}
        assert names["user-agent"].startswith("python-requests/")
        assert names["accept"] == "*/*"
        assert len(names["x-obshell-trace-id"]) == 16
    post_headers = {k.lower(): v for k, v in post.headers.items()}
    assert post_headers["content-length"] == str(len(post.body_bytes)) != "0"
    assert post.body_json == {"version": VERSION, "release": RELEASE}
    assert "content-length" not in {k.lower() for k in get.headers}


def test_bodiless_post_says_content_length_zero(fake_agent: FakeAgent):
    with ObshellClient(fake_agent.host, fake_agent.port, auth=None) as client:
        with pytest.raises(ApiError):
            client.call("POST", "/api/v1/no/such/route", signed=False)
    (rec,) = fake_agent.requests
    assert rec.method == "POST" and rec.body_bytes == b""
    assert {k.lower(): v for k, v in rec.headers.items()}["content-length"] == "0"


def test_given_session_goes_through_requests_with_its_hooks_and_headers():
    session = requests.Session()
    statuses: list[int] = []
    session.hooks["response"].append(lambda r, *a, **k: statuses.append(r.status_code))
    session.headers["X-Team"] = "ops"
    with FakeAgent(password=PASSWORD) as agent, ObshellClient(
        agent.host, agent.port, auth=PasswordAuth(PASSWORD), session=session
    ) as client:
        dag = client.upgrade_agent(VERSION, RELEASE)
        client.get_dag(dag.id)
    assert statuses and set(statuses) <= {200, 404}  # 404: "no maintenance task" before a create
    assert statuses.count(404) == len(agent.requests_to("/api/v1/task/dag/maintain/ob"))
    assert len(statuses) == len(agent.requests)
    assert all(r.headers.get("X-Team") == "ops" for r in agent.requests)
    session.close()


def test_lowercase_method_goes_out_uppercase():
    with FakeAgent(password=PASSWORD) as agent, ObshellClient(
        agent.host, agent.port, auth=PasswordAuth(PASSWORD)
    ) as client:
        assert client.call("get", "/api/v1/info", signed=False)["identity"] == "CLUSTER AGENT"
        assert client.call("get", "/api/v1/task/dag/unfinish") == {"contents": None}
    assert [r.method for r in agent.requests] == ["GET", "GET", "GET", "GET"]


def test_accept_language_is_checked_when_changed_too():
    client = ObshellClient("127.0.0.1", auth=None)
    client.accept_language = "zh-CN"
    assert client.accept_language == "zh-CN"
    for bad in ("en\r\nX-Evil: 1", " en", 5):
        with pytest.raises(InvalidArgumentError, match="accept_language"):
            client.accept_language = bad  # type: ignore[assignment]
    assert client.accept_language == "zh-CN"
    client.accept_language = None
    client.close()


@pytest.mark.parametrize(("wire", "reason"), [
    ([], "connection lost before the reply was complete (Connection aborted: Remote end "
         "closed connection without response)"),
    ([b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"],
     "reply cut short (Connection broken: IncompleteRead(1 bytes read, 99 more expected))"),
])
def test_a_lost_connection_is_told_in_words_not_as_a_tuple(wire, reason):
    # was: "(Connection aborted.', RemoteDisconnected('Remote end closed connection without
    # response)": the quotes and brackets of urllib3's wrapped reasons, half stripped
    with RawServer() as server:
        server.handler = lambda request: RawReply(200, wire=wire, close=True)
        with ObshellClient(server.host, server.port, auth=None) as client, \
                pytest.raises(ConnectionLostError) as info:
            client.call("GET", "/x", signed=False)
    assert str(info.value).endswith(f"/x on {server.host}:{server.port}: {reason}")
