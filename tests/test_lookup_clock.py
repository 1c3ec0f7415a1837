"""A lost create reply's lookup, judged on the agent's clock: only while that clock holds.

The lookup takes a task of the call's name as the one the lost POST made when it started
after the POST by the agent's clock. An agent whose clock moved between the call and the
lookup (set back by a restart with the hardware clock in local time, stepped by NTP), or
whose tasks are dated after its present, would make an earlier run look new: the lookup
then raises :class:`OutcomeUnknownError` saying so, and never sends the call again. Real
sockets on 127.0.0.1: a :class:`FakeAgent`, or a :class:`RawServer` answering like obshell
where the fake agent cannot make the fault (a clock apart from its tasks' times).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from conftest import PASSWORD
from rawserver import RawReply, dag_json, json_reply

from obshell_sdk import ObshellClient, OutcomeUnknownError, PasswordAuth
from obshell_sdk._cli_errors import cli_message
from obshell_sdk.testing import FakeAgent

VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"
UPGRADE = "/api/v1/agent/upgrade"
CHECK = "/api/v1/agent/upgrade/check"
CHECK_NAME = f"Upgrade check obshell {VERSION}-{RELEASE}"
UPGRADE_NAME = f"Upgrade obshell {VERSION}-{RELEASE}"
HOURS_8 = 8 * 3600.0
#: A reply cut after its status line: the POST went out, its reply was lost.
CUT = RawReply(200, wire=[b"HTTP/1.1 200 OK\r\n"], close=True)
UNTOLD = "cannot be told by the tasks' times"


def _client(host, port, **kwargs):
    kwargs.setdefault("timeout", (2, 5))
    return ObshellClient(host, port, auth=PasswordAuth(PASSWORD), **kwargs)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ran(dag_id: str, name: str, started_ago: float, ended_ago: float) -> dict:
    """A DAG that ran and succeeded, dated (by the right clock) that many seconds ago."""
    dag = dag_json(dag_id, name=name, stage=5, max_stage=5, state="SUCCEED")
    dag["start_time"], dag["end_time"] = (_iso(time.time() - started_ago),
                                          _iso(time.time() - ended_ago))
    return dag


def _agent_clock(agent, moved: float):
    """``/api/v1/time`` reads ``moved`` seconds off (the replies' own stamps stay right)."""
    agent.route("GET", "/api/v1/time",
                lambda request: json_reply(_iso(time.time() + moved)))


# -- the locked path: an upgrade whose earlier run is only in the history ---------------------


def test_an_upgrade_s_earlier_run_is_not_taken_when_the_agents_clock_was_set_back(
        raw, short_recovery):
    """The upgrade ran 20 minutes ago; a later maintenance task (another's) is the last one
    now, so only the history holds it. The POST's reply is lost, the agent made nothing, and
    its clock now reads 8 h behind: the earlier run would look started after the POST."""
    server, agent = raw
    earlier = _ran("1500", UPGRADE_NAME, 1200, 1140)
    later = _ran("1501", "Upgrade obshell 4.3.2.0-1.el7", 600, 500)
    agent.route("POST", UPGRADE, lambda request: CUT)
    agent.route("GET", "/api/v1/task/dag/maintain/ob", lambda request: json_reply(later))
    agent.route("GET", "/api/v1/task/dags/ob",
                lambda request: json_reply({"contents": [later, earlier]}))
    _agent_clock(agent, -HOURS_8)
    with _client(server.host, server.port) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            client.upgrade_agent(VERSION, RELEASE)
    text = str(info.value)
    assert UNTOLD in text and "moved 8.0 h back" in text, text
    assert "client.last_maintenance_dag()" in text and info.value.dag_name == UPGRADE_NAME
    assert [r.method for r in server.requests if r.target == UPGRADE] == ["POST"]


# -- a clock moved forward -------------------------------------------------------------------


def test_a_clock_moved_forward_after_the_call_is_said_and_nothing_taken(raw, short_recovery):
    server, agent = raw
    agent.route("POST", CHECK, lambda request: CUT)  # lost; the agent made nothing
    _agent_clock(agent, HOURS_8)
    agent.route("GET", "/api/v1/task/dags/ob", lambda request: json_reply(
        {"contents": [_ran("1500", CHECK_NAME, 1200, 1140)]}))
    with _client(server.host, server.port) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            client.check_agent_upgrade(VERSION, RELEASE)
    text = str(info.value)
    assert UNTOLD in text and "moved 8.0 h forward" in text, text
    assert "client.last_maintenance_dag()" not in text  # a pre-check is never the last one
    cli = cli_message(info.value)
    assert "client." not in cli and "history (obshell-sdk task list --all)" in cli, cli
    assert [r.method for r in server.requests if r.target == CHECK] == ["POST"]


@pytest.mark.parametrize("started", [True, False])
def test_a_task_made_before_the_agents_clock_jumped_forward_is_not_guessed(
        short_recovery, started):
    """The agent made the task, then its clock jumped an hour ahead before the lookup read
    it. Which clock dated which task cannot be told (the clock before may have been the
    wrong one), so the lookup refuses rather than guess; the call is not sent again. A task
    not started yet, not listed before the call, needs no clock: it is found."""
    pace = {"stage_seconds": 0.05} if started else {"stages_per_poll": 0}
    with FakeAgent(password=PASSWORD, **pace) as agent, \
            _client(agent.host, agent.port) as client:
        agent.drop_reply_after_create = True
        real_time = client.server_time

        def server_time(**kwargs):
            time.sleep(0.1 if started else 0)  # started by the time the lists are read
            agent.set_clock_offset(3600)
            return real_time(**kwargs)

        client.server_time = server_time
        if started:
            with pytest.raises(OutcomeUnknownError) as info:
                client.check_agent_upgrade(VERSION, RELEASE)
            assert UNTOLD in str(info.value) and "moved 1.0 h forward" in str(info.value)
        else:
            assert client.check_agent_upgrade(VERSION, RELEASE).id in agent.dags
        assert len(agent.dags) == 1
        assert len(agent.requests_to(CHECK, "POST")) == 1


# -- a clock that holds, or moved less than the margin ----------------------------------------


@pytest.mark.parametrize("moved", [0.0, 0.4, -0.4])
def test_the_task_the_post_made_is_found_when_the_clock_holds(short_recovery, moved):
    with FakeAgent(password=PASSWORD, stages_per_poll=0) as agent, \
            _client(agent.host, agent.port) as client:
        agent.drop_reply_after_create = True
        real_time = client.server_time

        def server_time(**kwargs):
            agent.set_clock_offset(moved)
            return real_time(**kwargs)

        client.server_time = server_time
        task = client.check_agent_upgrade(VERSION, RELEASE)
        assert list(agent.dags) == [task.id]
        assert len(agent.requests_to(CHECK, "POST")) == 1


# -- a clock set back before the call: the earlier run is dated after the agent's present ------


def test_an_earlier_run_dated_after_the_agents_present_is_not_taken(short_recovery):
    """The pre-check ran; then the agent's clock was set back 8 h, before this call (so the
    clock holds through the call). The POST made nothing. The earlier run, dated by the clock
    before, now reads as started hours after the agent's present: not this call's."""
    with FakeAgent(password=PASSWORD, stage_seconds=0.01) as agent, \
            _client(agent.host, agent.port) as client:
        earlier = client.check_agent_upgrade(VERSION, RELEASE).wait(timeout=30).id
        agent.set_clock_offset(-HOURS_8)
        client.unfinished_dags()  # the replies read the clock as it is now
        agent.reset_next(1, path_prefix=CHECK)
        with pytest.raises(OutcomeUnknownError) as info:
            client.check_agent_upgrade(VERSION, RELEASE)
        assert UNTOLD in str(info.value), str(info.value)
        assert list(agent.dags) == [earlier]
        assert len(agent.requests_to(CHECK, "POST")) == 2
