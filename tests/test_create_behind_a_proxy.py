"""A proxy in front of the agent: its own error page to a create POST is a lost reply.

A gateway that gives up waiting for the agent answers "504 Gateway Time-out" with a page of
its own, after passing the request on: the agent may have made the task. Such a reply is
looked for like a lost one (never resent); a 4xx page (not passed on) is not. The proxy here
is real (a socket on 127.0.0.1 between the SDK and the fake agent). A proxy that cannot be
reached at all got nothing to pass on: its agent is unreachable, not unknown.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import PASSWORD, closed_port, proxy_from_env

import obshell_sdk._lookup
from obshell_sdk import (
    ConnectionLostError,
    DagState,
    DecodeError,
    ObshellClient,
    OutcomeUnknownError,
    PasswordAuth,
    PollPolicy,
    ReadTimeoutError,
    Rollout,
    TargetOutcome,
)
from obshell_sdk.testing import FakeAgent

UPGRADE = "/api/v1/agent/upgrade"
VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"
FAST = PollPolicy(initial=0.05, fraction=0.1, ceiling=0.2, jitter=0)


class Proxy(ThreadingHTTPServer):
    """Passes requests on to ``agent``; ``page[path] = (status, passed_on)`` answers the next
    POST to ``path`` with an HTML page of that status, after passing it on or instead;
    ``body[path]`` replaces the agent's reply body to the next POST there;
    ``answer[path] = (status, json)`` answers the next POST there with that JSON instead;
    ``garble[path] = passed_on`` answers the next POST there with bytes that are not HTTP."""

    daemon_threads = True

    def __init__(self, agent: FakeAgent) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.agent_port = agent.port
        self.page: dict[str, tuple[int, bool]] = {}
        self.body: dict[str, bytes] = {}
        self.answer: dict[str, tuple[int, bytes]] = {}
        self.garble: dict[str, bool] = {}

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Relay(BaseHTTPRequestHandler):
    server: Proxy
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        page = self.server.page.pop(self.path, None) if self.command == "POST" else None
        answer = self.server.answer.pop(self.path, None) if self.command == "POST" else None
        garble = self.server.garble.pop(self.path, None) if self.command == "POST" else None
        if garble is not None:
            page = (200, garble)  # passed on, or not, as a page would be; then not HTTP at all
        if answer is not None:
            status, ctype, content = answer[0], "application/json", answer[1]
        elif page is None or page[1]:
            agent = http.client.HTTPConnection("127.0.0.1", self.server.agent_port, timeout=10)
            agent.request(self.command, self.path, body or None, dict(self.headers.items()))
            reply = agent.getresponse()
            status, ctype, content = reply.status, reply.getheader("Content-Type"), reply.read()
            agent.close()
        if self.command == "POST" and self.path in self.server.body:
            content = self.server.body.pop(self.path)
        if page is not None:
            status, ctype = page[0], "text/html"
            content = f"<html><body><h1>{status} from the gateway</h1></body></html>".encode()
            content = b"" if status == 204 else content  # No Content: none at all
        if garble is not None:
            self.wfile.write(b"\x00\x01garbled on the way\r\n\r\n")
            self.close_connection = True
            return
        self.send_response(status)
        self.send_header("Content-Type", ctype or "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_DELETE = _relay


@pytest.fixture
def proxied() -> Iterator[tuple[FakeAgent, Proxy]]:
    with FakeAgent(password=PASSWORD, stage_seconds=0.02) as agent:
        proxy = Proxy(agent)
        thread = threading.Thread(target=proxy.serve_forever, daemon=True)
        thread.start()
        try:
            yield agent, proxy
        finally:
            proxy.shutdown()
            proxy.server_close()
            thread.join()


def _client(proxy: Proxy) -> ObshellClient:
    return ObshellClient("127.0.0.1", proxy.port, auth=PasswordAuth(PASSWORD),
                         poll_policy=FAST)


def _rollout_one(proxy: Proxy, journal: Any) -> Any:
    """The result of an agent rollout (no pre-check) of the proxy's one agent."""
    report = Rollout([f"127.0.0.1:{proxy.port}"], auth=PasswordAuth(PASSWORD),
                     journal=journal, poll_policy=FAST, progress=False
                     ).upgrade_agent(VERSION, RELEASE, check=False)
    (result,) = report.results.values()
    return result


@pytest.mark.parametrize("status", [504, 200, 204])  # a 2xx names no task either
def test_a_page_after_the_agent_made_the_task_finds_it(proxied, status):
    agent, proxy = proxied
    proxy.page[UPGRADE] = (status, True)
    with _client(proxy) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        assert task.wait(timeout=30, progress=False).state is DagState.SUCCEED
    assert len(agent.requests_to(UPGRADE, "POST")) == 1
    assert list(agent.dags) == [task.id]


@pytest.mark.parametrize(("status", "lost"), [(502, ConnectionLostError),
                                             (504, ReadTimeoutError)])
def test_a_gateway_page_for_a_post_the_agent_never_got_is_outcome_unknown(
        proxied, monkeypatch, status, lost):
    # after a 504 (a gateway timing out) the agent may still be making the task: the lookup
    # waits RECOVERY_SECONDS out, as after a read timeout, not a few seconds
    monkeypatch.setattr(obshell_sdk._lookup, "RECOVERY_SECONDS", 0.5)
    agent, proxy = proxied
    proxy.page[UPGRADE] = (status, False)
    with _client(proxy) as client, pytest.raises(OutcomeUnknownError) as caught:
        client.upgrade_agent(VERSION, RELEASE)
    assert f"HTTP {status} reply that is not obshell's" in str(caught.value)
    assert "It was not sent again" in str(caught.value)
    assert agent.requests_to(UPGRADE, "POST") == [] and not agent.dags
    assert type(caught.value.__cause__) is lost
    page = caught.value.__cause__.__cause__  # the proxy's page stays in the traceback
    assert isinstance(page, DecodeError) and f"{status} from the gateway" in str(page)
    assert not page.refusal_page  # the agent may have got it: not safe to send again


@pytest.mark.parametrize("passed_on", [True, False])
def test_a_create_reply_that_is_not_http_is_looked_up_never_sent_again(
        proxied, monkeypatch, passed_on):
    # a reply that is not HTTP proves nothing of the POST: the agent may have made the task
    monkeypatch.setattr(obshell_sdk._lookup, "RECOVERY_SECONDS", 0.5)
    agent, proxy = proxied
    proxy.garble[UPGRADE] = passed_on
    with _client(proxy) as client:
        if passed_on:
            task = client.upgrade_agent(VERSION, RELEASE)
            assert task.wait(timeout=30, progress=False).state is DagState.SUCCEED
            assert list(agent.dags) == [task.id]
        else:
            with pytest.raises(OutcomeUnknownError) as caught:
                client.upgrade_agent(VERSION, RELEASE)
            assert "reply that is not HTTP (garbled on the way?): the agent may have got " \
                "the request" in str(caught.value) and "It was not sent again" in str(caught.value)
            assert "HTTP 0" not in str(caught.value) and not agent.dags
            garbled = caught.value.__cause__.__cause__
            assert isinstance(garbled, DecodeError) and "the reply is not HTTP" in str(garbled)
    assert len(agent.requests_to(UPGRADE, "POST")) == int(passed_on)


def test_a_success_reply_that_names_no_task_is_looked_up(proxied):
    agent, proxy = proxied
    proxy.body[UPGRADE] = b'{"successful":true,"status":200,"data":null}'
    with _client(proxy) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        assert task.wait(timeout=30, progress=False).state is DagState.SUCCEED
    assert list(agent.dags) == [task.id] and len(agent.requests_to(UPGRADE, "POST")) == 1


def test_a_proxy_refusal_page_is_not_taken_for_a_lost_reply(proxied):
    agent, proxy = proxied
    proxy.page[UPGRADE] = (403, False)
    with _client(proxy) as client, pytest.raises(DecodeError) as caught:
        client.upgrade_agent(VERSION, RELEASE)
    assert (caught.value.status, caught.value.method, caught.value.path) == (403, "POST", UPGRADE)
    assert caught.value.refusal_page  # refused unsent: safe to send again
    # listed once, before the POST (what existed then); no lookup after it
    assert len(agent.requests_to("/api/v1/task/dag/unfinish", "GET")) == 1


def test_a_rollout_behind_a_gateway_follows_the_task_it_made_or_says_unknown(
        proxied, tmp_path, monkeypatch):
    monkeypatch.setattr(obshell_sdk._lookup, "RECOVERY_SECONDS", 0.5)
    agent, proxy = proxied
    proxy.page[UPGRADE] = (502, False)
    journal = tmp_path / "r.db"
    first = _rollout_one(proxy, journal)  # was FAILED: a task may be under way
    assert first.outcome is TargetOutcome.UNKNOWN, first.error
    agent.create_upgrade_dag(VERSION, RELEASE)  # as if the first POST had got through
    second = _rollout_one(proxy, journal)  # the rerun looks it up: never a second POST
    assert second.outcome is TargetOutcome.SUCCEEDED, second.error
    assert agent.requests_to(UPGRADE, "POST") == []


def test_a_rollout_behind_a_proxy_that_refuses_the_post_sends_it_on_the_rerun(
        proxied, tmp_path):
    agent, proxy = proxied
    proxy.page[UPGRADE] = (403, False)
    journal = tmp_path / "r.db"
    first = _rollout_one(proxy, journal)  # was FAILED, final: a rerun left it alone
    assert first.outcome is TargetOutcome.REFUSED, first.error
    assert agent.requests_to(UPGRADE, "POST") == []
    second = _rollout_one(proxy, journal)
    assert second.outcome is TargetOutcome.SUCCEEDED, second.error
    assert len(agent.requests_to(UPGRADE, "POST")) == 1


def test_a_rollout_through_a_proxy_nothing_listens_on_calls_its_agent_unreachable(
        tmp_path, monkeypatch):
    # was UNKNOWN ("run the same command again"): the proxy's refusal was taken for a lost reply
    proxy_from_env(monkeypatch, f"http://127.0.0.1:{closed_port()}")
    with FakeAgent(password=PASSWORD) as agent:
        report = Rollout([f"{agent.host}:{agent.port}"], auth=PasswordAuth(PASSWORD),
                         journal=tmp_path / "r.db", poll_policy=FAST, progress=False
                         ).upgrade_agent(VERSION, RELEASE, check=False)
        assert agent.requests == []
    (result,) = report.results.values()
    assert result.outcome is TargetOutcome.UNREACHABLE, result.error
    assert "cannot connect to the proxy" in str(result.error)


@pytest.mark.parametrize(("status", "refused"), [(0, False), (204, False), (300, True),
                                                 (404, True), (499, True), (500, False),
                                                 (504, False)])
def test_only_a_3xx_or_4xx_page_is_a_refusal(status, refused):
    assert DecodeError("not obshell's", status=status).refusal_page is refused
