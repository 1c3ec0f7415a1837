"""How a call leaves the client: through ``Session.request``, as requests would send it.

Headers, bodies, cookies a proxy sets, and a caller's session (hooks, headers) all behave as
requests' public API makes them behave; a proxy from the environment that cannot be reached
is "not sent", one that took the request and failed is not.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Optional

import pytest
import requests
import requests.adapters
import urllib3.exceptions
from conftest import PASSWORD, closed_port, proxy_from_env
from rawserver import RawReply, RawServer, http_reply, trickle
from urllib3.util import Retry

from obshell_sdk import (
    ApiError,
    ConnectError,
    ConnectionLostError,
    DecodeError,
    InvalidArgumentError,
    ObshellClient,
    ObshellError,
    PasswordAuth,
    ReadTimeoutError,
)
from obshell_sdk._endpoints import AGENT_UPGRADE
from obshell_sdk._transport_errors import exchange_error, not_http, reply_lost
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
    # a status line cut short, or garbled, is a lost reply, said on one line
    ([b"HTTP/1.1 2"], "connection lost before the reply was complete (Connection aborted: "
                      "HTTP/1.1 2)"),
    ([b"HTTP/1.1 2x0 OK\r\n\x1b[2J"], "connection lost before the reply was complete "
                                       "(Connection aborted: HTTP/1.1 2x0 OK)"),
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


def test_a_proxy_nothing_listens_on_is_not_sent_and_says_what_to_do(monkeypatch):
    # was ConnectionLostError, "connection lost before the reply was complete (Unable to
    # connect to proxy ...)": a lost reply, so a rollout called the cluster's outcome unknown
    port = closed_port()
    proxy_from_env(monkeypatch, f"http://ops:proxy-Pa55@127.0.0.1:{port}")
    with FakeAgent(password=PASSWORD) as agent:
        with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
            with pytest.raises(ConnectError) as info:
                client.info()
            with pytest.raises(ConnectError):
                client.upgrade_agent(VERSION, RELEASE)  # nor a task-creating call
        assert agent.requests == []
        with ObshellClient(agent.host, agent.port, auth=None, trust_env=False) as direct:
            assert direct.info().version  # the advice works: no proxy, the agent answers
    message = str(info.value)
    assert f"cannot connect to the proxy http://127.0.0.1:{port} (Failed to establish" in message
    assert "the request was not sent" in message
    for advice in ("HTTP_PROXY, HTTPS_PROXY or ALL_PROXY, in either case",
                   "add its host to NO_PROXY", "ObshellClient(..., trust_env=False)"):
        assert advice in message, message
    assert "proxy-Pa55" not in message and "@" not in message  # the proxy's credentials


@pytest.mark.parametrize("status, credentials, hint", [
    (407, "ops:proxy-Pa55@", "it refused the user and password it was given; check them"),
    (407, "", "it wants a user and password, given in its URL as user:password@host"),
    (403, "ops:proxy-Pa55@", "")])
def test_a_proxy_that_refuses_the_tunnel_is_not_sent_and_says_what_to_do(
        monkeypatch, status, credentials, hint):
    # was ConnectionLostError, "connection lost before the reply was complete (... Tunnel
    # connection failed: 407 ...)": an HTTPS agent's create looked for its task and a rollout
    # called the cluster's outcome unknown, though no byte of the request had gone anywhere
    with RawServer() as proxy:
        proxy.handler = lambda request: RawReply(status, headers={
            "Proxy-Authenticate": 'Basic realm="ops"'}) if status == 407 else RawReply(status)
        proxy_from_env(monkeypatch, f"http://{credentials}127.0.0.1:{proxy.port}")
        port = closed_port()  # the agent's: reached only through the tunnel, never opened
        with ObshellClient("127.0.0.1", port, auth=None, https=True, verify=False) as client:
            with pytest.raises(ConnectError) as info:
                client.info()
            with pytest.raises(ConnectError):  # a task-creating call: known not to have run
                client.call("POST", "/api/v1/agent/upgrade", body={}, signed=False)
        assert [(r.method, r.target) for r in proxy.requests] == [
            ("CONNECT", f"127.0.0.1:{port}")] * 2
        assert all(("proxy-authorization" in r.headers) == bool(credentials)
                   for r in proxy.requests)
    message = str(info.value)
    assert (f"the proxy http://127.0.0.1:{proxy.port} refused to open a tunnel to the agent "
            f"({status} ") in message and hint in message
    assert status == 407 or "user and password" not in message
    assert "the request was not sent" in message and "trust_env=False" in message
    assert "proxy-Pa55" not in message and "ops:" not in message  # the proxy's credentials


def test_a_proxy_that_took_the_request_and_closed_is_a_lost_reply_not_unsent(monkeypatch):
    # a proxy that read the request may have passed it on: the agent may have acted on it
    # (urllib3 2.x says "Unable to connect to proxy" of this too, as of a proxy never reached)
    with RawServer() as proxy:
        proxy.handler = lambda request: RawReply(200, wire=[], close=True)  # read, then closed
        proxy_from_env(monkeypatch, f"http://127.0.0.1:{proxy.port}")
        port = closed_port()  # the agent's: never reached directly, the proxy is
        with ObshellClient("127.0.0.1", port, auth=None) as client, \
                pytest.raises(ConnectionLostError) as info:
            client.call("POST", "/api/v1/agent/upgrade", signed=False)
        assert [(r.method, r.target) for r in proxy.requests] == [
            ("POST", f"http://127.0.0.1:{port}/api/v1/agent/upgrade")]
    assert not isinstance(info.value, ConnectError)
    assert "not sent" not in str(info.value)


class _Pool:
    """What urllib3's proxy pool shows of its proxy."""

    proxy = urllib3.util.parse_url("http://ops:proxy-Pa55@proxy.example:3128")


@pytest.mark.parametrize(("reason", "expected"), [
    (urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection"),
     ConnectError),
    (urllib3.exceptions.ConnectTimeoutError(None, "Connection timed out"), ConnectError),
    (ConnectionRefusedError(111, "Connection refused"), ConnectError),
    # urllib3 wraps a connection lost after the request went out too (1.x: any socket error)
    (ConnectionResetError(104, "Connection reset by peer"), ConnectionLostError),
    (http.client.RemoteDisconnected("Remote end closed connection"), ConnectionLostError),
])
def test_a_proxy_error_is_unsent_only_when_the_proxy_was_never_connected_to(reason, expected):
    wrapped = urllib3.exceptions.ProxyError("Cannot connect to proxy.", reason)
    exc = requests.exceptions.ProxyError(urllib3.exceptions.MaxRetryError(
        _Pool(), "http://127.0.0.1:2886/api/v1/info", wrapped))  # type: ignore[arg-type]
    error = exchange_error(exc, False, 5, "GET", "/api/v1/info", "127.0.0.1:2886",
                           maybe_sent=True)
    assert type(error) is expected, error
    if expected is ConnectError:
        assert "cannot connect to the proxy http://proxy.example:3128 (" in str(error)
        assert "proxy-Pa55" not in str(error)


def _session(max_retries: object) -> requests.Session:
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(max_retries=max_retries))
    return session


class _PoolAwareRetry(Retry):
    """A Retry that reads its pool (for a metric, say): urllib3 always gives one."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None,
                  _stacktrace=None):
        assert _pool.host  # AttributeError when asked without a pool
        return super().increment(method, url, response, error, _pool, _stacktrace)


@pytest.mark.parametrize("retry, why", [
    (3, "re-sends a POST that failed with SSLError"),  # urllib3 retries TLS errors for any method
    (Retry(total=3, other=0), "re-sends a DELETE that failed with ProtocolError"),
    (Retry(total=3, allowed_methods=None, other=0), "POST that failed with ProtocolError"),
    (Retry(total=3, read=False, other=0, allowed_methods=None), "POST answered with HTTP 413"),
    (Retry(3, read=False, other=0, status=0, status_forcelist=[502], allowed_methods=None,
           respect_retry_after_header=False), None),
    (Retry(connect=3, read=False, status=0, other=0), None),  # failed connections only
    (0, None), (Retry(False), None),
    (Retry(total=3, read=False, other=0, status=0, status_forcelist=["503", 502],
           allowed_methods=None), None),  # a code as text is never matched by urllib3
    (Retry(total=3, read=False, other=0, status_forcelist=["503", 502], allowed_methods=None),
     "POST answered with HTTP 413"),
    (_PoolAwareRetry(connect=3, read=False, status=0, other=0),
     "cannot be asked what it re-sends (AttributeError"),
])
def test_a_given_session_that_may_send_a_write_twice_is_refused(retry, why):
    """Judged by urllib3's own Retry; one that cannot be asked is refused, never raised."""
    try:
        ObshellClient("127.0.0.1", closed_port(), auth=PasswordAuth(PASSWORD),
                      session=_session(retry))
    except InvalidArgumentError as exc:
        assert why is not None and why in str(exc), exc
        assert "Retry(connect=3, read=False, status=0, other=0)" in str(exc)  # what to do
    else:
        assert why is None


def test_the_refused_session_would_send_a_lost_create_twice(monkeypatch):
    """Why such a session is refused: without the check, urllib3 sends a lost create again."""
    monkeypatch.setattr("obshell_sdk._transport.resending", lambda *args: None)
    with FakeAgent(password=PASSWORD) as agent, _session(
        Retry(total=3, allowed_methods=None, other=0)
    ) as session, ObshellClient(
        agent.host, agent.port, auth=PasswordAuth(PASSWORD), session=session
    ) as client:
        agent.drop_reply_after_create = True
        with contextlib.suppress(ObshellError):
            client.upgrade_agent(VERSION, RELEASE)
        assert len(agent.requests_to("/api/v1/agent/upgrade")) == 2


def test_an_adapter_mounted_later_that_may_send_twice_is_refused_before_a_write():
    with FakeAgent(password=PASSWORD) as agent, requests.Session() as session, ObshellClient(
        agent.host, agent.port, auth=PasswordAuth(PASSWORD), session=session
    ) as client:
        session.mount("http://", requests.adapters.HTTPAdapter(max_retries=3))
        assert client.info().version  # a read is still sent
        with pytest.raises(InvalidArgumentError, match="may send a request twice"):
            client.upgrade_agent(VERSION, RELEASE)
        assert not agent.requests_to("/api/v1/agent/upgrade")


@pytest.mark.parametrize("later", [False, True])
def test_an_adapter_mounted_under_the_agent_s_url_that_may_send_twice_is_refused(later):
    """requests picks the adapter by the longest prefix of the whole URL: one mounted at
    ``http://host:port/api/`` serves every call, though ``get_adapter(base_url)`` misses it."""
    retrying = requests.adapters.HTTPAdapter(max_retries=Retry(total=3, allowed_methods=None,
                                                               other=0))
    with FakeAgent(password=PASSWORD) as agent, requests.Session() as session:
        if not later:
            session.mount(f"{agent.base_url}/api/", retrying)
            with pytest.raises(InvalidArgumentError, match="may send a request twice"):
                ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD),
                              session=session)
            return
        with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD),
                           session=session) as client:
            session.mount(f"{agent.base_url}/api/", retrying)
            agent.drop_reply_after_create = True
            with pytest.raises(InvalidArgumentError, match="may send a request twice"):
                client.upgrade_agent(VERSION, RELEASE)
            assert not agent.requests_to("/api/v1/agent/upgrade")


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("timeout, within, wire", [
    ((5, 0.3), "the read timeout", [10.0]),  # nothing at all: the socket's read timeout
    (0.5, "the call's 0.5 s", list(trickle(http_reply(200, b"{}"), gap=0.1, give_up=5)))])
def test_a_read_that_times_out_is_safe_to_run_again_and_a_write_may_have_been_done(
        method, timeout, within, wire):
    # was "the request may still have been carried out" for a GET too (obshell-sdk info on a
    # port that accepts and never answers): a read carries nothing out
    with RawServer() as server:
        server.handler = lambda request: RawReply(200, wire=wire, close=True)
        with ObshellClient(server.host, server.port, auth=None, timeout=timeout) as client, \
                pytest.raises(ReadTimeoutError) as info:
            client.call(method, "/x", signed=False)
    message = str(info.value)
    assert f"{method} /x on {server.host}:{server.port}: no complete reply within {within}" \
        in message, message
    if method == "GET":
        assert "carried out" not in message, message
        assert message.endswith("is it up, and is this its port?); a GET changes nothing, so "
                                "it is safe to run again"), message
    else:
        assert message.endswith("the request may still have been carried out"), message



#: What a MySQL server (OceanBase's SQL port, 2881) writes as soon as it accepts a connection.
MYSQL_GREETING = (b"J\x00\x00\x00\n5.7.25-OceanBase_CE-v4.2.1.0\x00\x01\x00\x00\x00abcdefgh\x00"
                  b"\xff\xf7!\x02\x00\xff\x81\x15" + b"\x00" * 10 + b"ijklmnopqrst\x00"
                  b"mysql_native_password\x00")
NOT_HTTP = ("the reply is not HTTP: is this obshell's port (2886 by default; 2881 is OceanBase's "
            "SQL port)?")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_reply_that_is_not_http_says_which_port_obshell_has_on_one_line(method):
    # was ConnectionLostError, "connection lost before the reply was complete (Connection
    # aborted: J\x00\x00\x00" and a raw newline: the SQL port's greeting, garbled, no hint
    with RawServer(greeting=MYSQL_GREETING) as server:
        server.handler = lambda request: RawReply(0, wire=[], close=True)
        with ObshellClient(server.host, server.port, auth=None) as client, \
                pytest.raises(DecodeError) as info:
            client.call(method, "/api/v1/agent/upgrade", signed=False)
    error, message = info.value, str(info.value)
    assert message.startswith(f"{method} /api/v1/agent/upgrade on {server.host}:"
                              f"{server.port}: {NOT_HTTP}"), message
    assert message.endswith("(reply starts with 'J\\x00\\x00\\x00\\n')"), message
    assert "\n" not in message and message.isprintable(), message
    assert (error.status, error.excerpt, error.method) == (0, "J\x00\x00\x00\n", method)
    assert not_http(error) and not error.refusal_page
    # a write's reply that is not HTTP proves nothing: an agent's, garbled, looks the same
    assert reply_lost(error) and not AGENT_UPGRADE.never_ran(error)
    assert ("may have carried out the request" in message) == (method == "POST")


def test_a_create_call_on_a_port_that_is_not_http_sends_nothing_it_could_run():
    # the auth flow's GET /api/v1/info meets the greeting first: the POST is never sent
    with RawServer(greeting=MYSQL_GREETING) as server:
        server.handler = lambda request: RawReply(0, wire=[], close=True)
        with ObshellClient(server.host, server.port, auth=PasswordAuth(PASSWORD)) as client, \
                pytest.raises(DecodeError) as info:
            client.upgrade_agent(VERSION, RELEASE)
    assert NOT_HTTP in str(info.value)
    assert "POST" not in {request.method for request in server.requests}



@pytest.mark.parametrize("body, ctype, said", [
    (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html",
     "HTTP 502 reply is not JSON (text/html)"),
    (b'{"message": "no upstream"}', "application/json",
     "HTTP 502 reply is not an obshell envelope: successful: missing")])
@pytest.mark.parametrize("given_session", [False, True])
def test_a_reply_that_is_not_obshell_s_names_the_proxy_it_came_through(
        monkeypatch, body, ctype, said, given_session):
    # was "is this an obshell agent, and is https= right?" only: the proxy that answered for
    # the agent (its own 502 page) went unnamed, though a proxy never reached is named
    with RawServer() as proxy:
        proxy.set_reply(502, body, {"Content-Type": ctype})
        proxy_from_env(monkeypatch, f"http://ops:proxy-Pa55@127.0.0.1:{proxy.port}")
        session = requests.Session() if given_session else None
        port = closed_port()  # the agent's: only the proxy answers
        with ObshellClient("127.0.0.1", port, auth=None, session=session) as client, \
                pytest.raises(DecodeError) as info:
            client.info()
        assert [r.target for r in proxy.requests] == [f"http://127.0.0.1:{port}/api/v1/info"]
        if session is not None:
            session.close()
    message = str(info.value)
    assert said in message and (f"; it came through the proxy http://127.0.0.1:"
                                f"{proxy.port}: is it the agent's reply, or the proxy's "
                                "own? Check the proxy settings") in message, message
    assert "add its host to NO_PROXY" in message and "is this an obshell agent" not in message
    assert "proxy-Pa55" not in message and "ops:" not in message  # the proxy's credentials


def test_a_reply_that_is_not_obshell_s_names_no_proxy_where_none_applied(monkeypatch):
    with RawServer() as server, RawServer() as proxy:
        server.set_reply(404, b"<html>Not Found</html>", {"Content-Type": "text/html"})
        proxy_from_env(monkeypatch, f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the agent's host: reached directly
        with ObshellClient(server.host, server.port, auth=None) as client, \
                pytest.raises(DecodeError) as info:
            client.info()
        assert proxy.requests == [] and len(server.requests) == 1
    assert str(info.value).endswith("is this an obshell agent, and is https= right? (reply "
                                    "starts with '<html>Not Found</html>')"), info.value
    assert "proxy" not in str(info.value)
