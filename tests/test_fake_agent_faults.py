"""FakeAgent faults over real sockets: dropped create replies on every task-creating POST,
a hung agent, and faults aimed with ``path_prefix``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
import requests
from test_fake_agent import PWD, UPGRADE, call, signed, start_upgrade

from obshell_sdk import ObshellClient, PasswordAuth, ReadTimeoutError
from obshell_sdk.testing import FakeAgent
from obshell_sdk.testing._routes import task_creating_routes

VERSION, RELEASE = "4.3.1.0", "20250101.el7"


@pytest.fixture
def agent() -> Any:
    with FakeAgent(password=PWD) as a:
        yield a


def _get(agent: FakeAgent, uri: str, timeout: Any) -> requests.Response:
    headers, _ = signed(agent, uri)
    return requests.get(agent.base_url + uri, headers=headers, timeout=timeout)


def _wait_recorded(agent: FakeAgent, path: str, count: int = 1) -> None:
    deadline = time.monotonic() + 5
    while len(agent.requests_to(path)) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(agent.requests_to(path)) >= count


# -- drop_reply_after_create --------------------------------------------------------------
def test_task_creating_routes_are_declared_once() -> None:
    assert sorted(task_creating_routes()) == [("POST", "/api/v1/agent/upgrade"),
                                              ("POST", "/api/v1/agent/upgrade/check"),
                                              ("POST", "/api/v1/ob/upgrade"),
                                              ("POST", "/api/v1/ob/upgrade/check")]


def test_drop_reply_after_create_on_the_pre_check(agent: FakeAgent) -> None:
    agent.drop_reply_after_create = True
    with pytest.raises(requests.ConnectionError):
        call(agent, "POST", "/api/v1/agent/upgrade/check", UPGRADE)
    (dag,) = agent.dags.values()
    assert dag.name == f"Upgrade check obshell {VERSION}-{RELEASE}" and dag.max_stage == 5
    (rec,) = agent.requests_to("/api/v1/agent/upgrade/check")
    assert rec.status == 0
    assert agent.drop_reply_after_create is False  # one-shot
    start_upgrade(agent, check=True)  # the next one is answered


def test_drop_waits_for_a_create_that_succeeds(agent: FakeAgent) -> None:
    agent.drop_reply_after_create = True
    low = {"version": "4.2.0.0", "release": "1.el7"}
    r = call(agent, "POST", "/api/v1/agent/upgrade/check", low)
    assert r.json()["error"]["errCode"] == "Agent.Upgrade.ToLowerVersion"
    assert agent.drop_reply_after_create is True
    assert call(agent, "GET", "/api/v1/task/dag/unfinish").status_code == 200  # not creating
    with pytest.raises(requests.ConnectionError):
        call(agent, "POST", "/api/v1/agent/upgrade/check", UPGRADE)
    assert [d.name for d in agent.dags.values()] == [f"Upgrade check obshell {VERSION}-{RELEASE}"]
    agent.drop_reply_after_create = True  # the upgrade itself, as before
    with pytest.raises(requests.ConnectionError):
        call(agent, "POST", "/api/v1/agent/upgrade", UPGRADE)
    assert len(agent.dags) == 2


def test_sdk_finds_the_pre_check_whose_reply_was_lost(agent: FakeAgent) -> None:
    with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PWD),
                       timeout=(2, 10)) as client:
        agent.drop_reply_after_create = True
        task = client.check_agent_upgrade(VERSION, RELEASE)
        (post,) = agent.requests_to("/api/v1/agent/upgrade/check", "POST")
        assert post.status == 0  # the reply was dropped; the SDK found the task, did not re-send
        assert task.id in agent.dags and agent.dag(task.id).max_stage == 5


# -- hang_next ------------------------------------------------------------------------------
def test_hang_times_out_on_the_client_and_is_not_acted_on(agent: FakeAgent) -> None:
    dag_id = start_upgrade(agent)
    agent.hang_next(1, seconds=30)
    uri = f"/api/v1/task/dag/{dag_id}"
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        _get(agent, uri, timeout=(2, 0.3))
    assert time.monotonic() - started < 3
    _wait_recorded(agent, uri)  # its handler may record it after the client gave up
    (hung,) = agent.requests_to(uri)
    assert hung.status == 0
    assert agent.dag(dag_id).state == "READY"  # the hung poll did not advance the DAG
    assert _get(agent, uri, timeout=5).json()["data"]["state"] == "RUNNING"  # one-shot


def test_hang_ends_with_a_close_after_its_seconds(agent: FakeAgent) -> None:
    agent.hang_next(1, seconds=0.3)
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        _get(agent, "/api/v1/task/dag/11", timeout=5)
    assert 0.25 < time.monotonic() - started < 3


def test_stop_ends_a_hang_at_once() -> None:
    before = set(threading.enumerate())
    agent = FakeAgent(password=PWD).start()
    outcome: list[BaseException] = []

    def hung_call() -> None:
        try:
            _get(agent, "/api/v1/task/dag/11", timeout=(2, 30))
        except requests.RequestException as exc:
            outcome.append(exc)

    agent.hang_next(1, seconds=30)
    caller = threading.Thread(target=hung_call)
    caller.start()
    _wait_recorded(agent, "/api/v1/task/dag/11")
    started = time.monotonic()
    agent.stop()
    assert time.monotonic() - started < 2
    caller.join(5)
    assert not caller.is_alive() and isinstance(outcome[0], requests.ConnectionError)
    leftover = set(threading.enumerate()) - before
    assert not leftover, [t.name for t in leftover]


def test_pause_ends_a_hang_too(agent: FakeAgent) -> None:
    agent.hang_next(1, seconds=30)
    errors: list[BaseException] = []
    caller = threading.Thread(target=lambda: errors.extend(_catch(agent)))
    caller.start()
    _wait_recorded(agent, "/api/v1/task/dag/11")
    started = time.monotonic()
    agent.pause(0.1)
    caller.join(5)
    assert time.monotonic() - started < 2 and errors
    assert agent.wait_listening(5)


def _catch(agent: FakeAgent) -> list[BaseException]:
    try:
        _get(agent, "/api/v1/task/dag/11", timeout=(2, 30))
    except requests.RequestException as exc:
        return [exc]
    return []


def test_hang_respects_path_prefix_and_clear_faults(agent: FakeAgent) -> None:
    agent.hang_next(2, seconds=30)
    assert requests.get(agent.base_url + "/api/v1/info", timeout=2).status_code == 200
    agent.clear_faults()
    assert _get(agent, "/api/v1/task/dag/11", timeout=2).status_code == 404
    agent.hang_next(1, seconds=30, path_prefix="/api/v1/info")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(agent.base_url + "/api/v1/info", timeout=(2, 0.2))


def test_sdk_call_to_a_hung_agent_times_out(agent: FakeAgent) -> None:
    dag_id = start_upgrade(agent)
    with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PWD),
                       timeout=(2, 0.3)) as client:
        client.get_dag(dag_id)  # auth set up: /info and /secret are not hung
        agent.hang_next(5, seconds=30)
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError):
            client.get_dag(dag_id)
        assert time.monotonic() - started < 5
        agent.clear_faults()


# -- the other faults, aimed ---------------------------------------------------------------
def test_reset_and_truncate_take_a_path_prefix(agent: FakeAgent) -> None:
    agent.reset_next(1, path_prefix="/api/v1/task/")
    assert requests.get(agent.base_url + "/api/v1/info", timeout=2).ok
    with pytest.raises(requests.ConnectionError):
        _get(agent, "/api/v1/task/dag/11", timeout=2)
    agent.truncate_next(1, path_prefix="/api/v1/secret")
    assert requests.get(agent.base_url + "/api/v1/info", timeout=2).ok
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        requests.get(agent.base_url + "/api/v1/secret", timeout=2)


def test_faults_reach_task_creating_posts(agent: FakeAgent) -> None:
    agent.fail_next(1, status=502, path_prefix="/api/v1/agent/")
    r = call(agent, "POST", "/api/v1/agent/upgrade/check", UPGRADE)
    assert r.status_code == 502 and agent.dags == {}
    agent.reset_next(1, path_prefix="/api/v1/agent/upgrade")
    with pytest.raises(requests.ConnectionError):
        call(agent, "POST", "/api/v1/agent/upgrade", UPGRADE)
    assert agent.dags == {}  # a reset request is never acted on


def test_a_failure_for_one_method_lets_the_others_through(agent: FakeAgent) -> None:
    """fail_next(method="POST"): a read of the same path is answered; the POST fails, not
    carried out (an operator's 500, the task read before it)."""
    dag_id = start_upgrade(agent)
    path = f"/api/v1/task/dag/{dag_id}"
    agent.fail_next(status=500, err_code="Common.Unexpected", path_prefix=path, method="post")
    assert call(agent, "GET", path).status_code == 200
    r = call(agent, "POST", path, {"operator": "CANCEL"})
    assert r.status_code == 500 and r.json()["error"]["errCode"] == "Common.Unexpected"
    assert call(agent, "POST", path, {"operator": "CANCEL"}).status_code == 200  # once


def test_truncate_applies_to_proxy_pages_too(agent: FakeAgent) -> None:
    agent.fail_next(1, status=503)
    agent.truncate_next(1)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        _get(agent, "/api/v1/task/dag/11", timeout=2)
    assert agent.requests[-1].status == 503


def test_a_lost_reply_to_an_operator_is_not_sent_again() -> None:
    """drop_reply_after_next: the agent applies the retry, the reply never comes. The SDK
    says the connection was lost (the operator may have been applied) and never re-sends
    it, which could run the retry twice."""
    from obshell_sdk import ConnectionLostError, DagOutcome

    with FakeAgent(password=PWD, fail_stage=2, stages_per_poll=9) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PWD),
                          timeout=(2, 5)) as client:
        task = client.upgrade_agent("4.3.1.0", "101000012025010101.el7")
        assert task.wait(10).outcome is DagOutcome.FAILED
        path = f"/api/v1/task/dag/{task.id}"
        agent.drop_reply_after_next(path_prefix=path, method="POST")
        with pytest.raises(ConnectionLostError):
            task.retry()
        assert len(agent.requests_to(path, "POST")) == 1
        assert client.task(task.id).result(10).outcome is DagOutcome.SUCCEEDED  # it was applied


def test_drop_reply_after_next_takes_a_method_and_a_path_prefix(agent: FakeAgent) -> None:
    agent.drop_reply_after_next(2, path_prefix="/api/v1/info", method="POST")
    assert call(agent, "GET", "/api/v1/info").status_code == 200  # another method: answered
    agent.drop_reply_after_next(path_prefix="/api/v1/info")
    with pytest.raises(requests.ConnectionError):
        call(agent, "GET", "/api/v1/info")
    assert call(agent, "GET", "/api/v1/info").status_code == 200  # one-shot
    agent.clear_faults()


# -- edit_data_next -------------------------------------------------------------------------
def test_edit_data_next_sends_other_data_once_for_a_method_and_a_path_prefix(
        agent: FakeAgent) -> None:
    seen = []

    def edit(data: Any) -> Any:
        seen.append(data)
        return {**data, "public_key": 42, "<": "&"}

    agent.edit_data_next(edit=edit, path_prefix="/api/v1/secret", method="post")
    assert call(agent, "GET", "/api/v1/secret").json()["data"]["public_key"] == \
        agent.public_key_b64  # another method: untouched
    agent.edit_data_next(edit=edit, path_prefix="/api/v1/secret")
    reply = call(agent, "GET", "/api/v1/secret")
    assert reply.status_code == 200 and reply.json()["successful"] is True
    assert reply.json()["data"] == {**seen[0], "public_key": 42, "<": "&"}
    assert seen[0]["public_key"] == agent.public_key_b64  # the data it would have sent
    assert b"\\u003c" in reply.content  # still written as Go writes it
    assert call(agent, "GET", "/api/v1/secret").json()["data"]["public_key"] == \
        agent.public_key_b64  # one-shot
    (recorded, *_) = agent.requests_to("/api/v1/secret")[1:]
    assert recorded.status == 200


def test_edit_data_next_acts_first_and_sees_lists_as_sent(agent: FakeAgent) -> None:
    agent.edit_data_next(edit=lambda data: {k: v for k, v in data.items() if k != "id"},
                         path_prefix="/api/v1/agent/upgrade", method="POST")
    reply = call(agent, "POST", "/api/v1/agent/upgrade", UPGRADE)
    assert reply.status_code == 200 and "id" not in reply.json()["data"]
    (dag,) = agent.dags.values()  # the task was made all the same
    assert reply.json()["data"]["name"] == dag.name
    agent.edit_data_next(edit=lambda data: {"contents": data["contents"] * 2},
                         path_prefix="/api/v1/task/dag/unfinish")
    listed = call(agent, "GET", "/api/v1/task/dag/unfinish").json()["data"]["contents"]
    assert [d["id"] for d in listed] == [dag.generic_id] * 2
    agent.edit_data_next(edit=lambda data: None, path_prefix="/api/v1/task/dag/unfinish")
    agent.clear_faults()
    listed = call(agent, "GET", "/api/v1/task/dag/unfinish").json()["data"]["contents"]
    assert [d["id"] for d in listed] == [dag.generic_id]


def test_edit_data_next_says_a_test_s_own_mistake_loudly(
        agent: FakeAgent, caplog: pytest.LogCaptureFixture) -> None:
    """An edit that is no callable is refused when queued; one that raises, or returns what is
    not JSON, is logged as the test's mistake (the agent still answers a 500)."""
    with pytest.raises(TypeError, match="edit must be a callable"):
        agent.edit_data_next(edit={"public_key": 42}, path_prefix="/api/v1/secret")  # type: ignore[arg-type]
    for edit in (lambda data: data["nope"], lambda data: {1, 2}):
        agent.edit_data_next(edit=edit, path_prefix="/api/v1/secret")
        with caplog.at_level(logging.ERROR, logger="obshell_sdk.testing"):
            assert call(agent, "GET", "/api/v1/secret").status_code == 500
        assert "FakeAgent.edit_data_next: the edit given raised" in caplog.text
        caplog.clear()
    assert call(agent, "GET", "/api/v1/secret").status_code == 200
