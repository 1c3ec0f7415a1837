"""Hostile agents, class 5: outcomes are never invented.

An upgrade is confirmed only when ``/info`` shows the new version *and* build; a lost create
reply is recovered only with a DAG the POST created (never one there before, whatever the
agent's clock says); a reply cut after its status line or in its headers is a lost reply,
and a redirect is never the agent's answer. The command line says what it knows: an
operator applied but not read back is a warning (exit 0), a task created but unreadable is
its id (exit 8), an unknown outcome is exit 8.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import PASSWORD
from rawserver import RawAgent, RawReply, RawServer, dag_json, envelope, json_reply

import obshell_sdk
import obshell_sdk._lookup
from obshell_sdk import (
    ApiError,
    ConnectionLostError,
    DagOutcome,
    ObshellClient,
    ObshellError,
    OutcomeUnknownError,
    PasswordAuth,
    TaskFailedError,
    UpgradeNotConfirmedError,
)
from obshell_sdk.testing import FakeAgent

VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"
BUILD = RELEASE.split(".", 1)[0]
UPGRADE = "/api/v1/agent/upgrade"
ROOT = Path(obshell_sdk.__file__).resolve().parents[1]


@pytest.fixture
def short_recovery(monkeypatch):
    monkeypatch.setattr(obshell_sdk._lookup, "RECOVERY_SECONDS", 2)


def _client(agent, **kwargs):
    return ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD), timeout=(2, 5),
                         **kwargs)


@contextmanager
def _creating(path, create, made):
    """A client of a raw agent whose POST to ``path`` runs ``create`` and whose unfinished
    tasks are ``made`` (what the create call lists before and after)."""
    with RawServer() as server:
        agent = RawAgent(server)
        agent.route("POST", path, create)
        agent.route("GET", "/api/v1/task/dag/unfinish",
                    lambda request: json_reply({"contents": made}))
        with _client(server) as client:
            yield client


# -- (a) the upgrade is confirmed by version and build --------------------------------------


def test_same_version_but_another_build_is_not_confirmed():
    with FakeAgent(password=PASSWORD, adopt_target_version=False, version=VERSION,
                   release="100000012024010101", stages_per_poll=9) as agent, \
            _client(agent) as client:
        with pytest.raises(UpgradeNotConfirmedError) as info:
            client.run_agent_upgrade(VERSION, RELEASE, check=False, timeout=30)
        assert f"{VERSION}-{BUILD}" in str(info.value)
        assert info.value.detail.outcome is DagOutcome.SUCCEEDED


def test_version_and_build_confirmed():
    with FakeAgent(password=PASSWORD, stages_per_poll=9) as agent, _client(agent) as client:
        result = client.run_agent_upgrade(VERSION, RELEASE, check=False, timeout=30)
        assert result.info.version == f"{VERSION}-{BUILD}"


def test_build_confirmed_against_a_raw_agent_that_stays_on_the_old_build():
    with RawServer() as server:
        agent = RawAgent(server, version=f"{VERSION}-100000012024010101")
        name = f"Upgrade obshell {VERSION}-{RELEASE}"
        done = dag_json("11", name=name, stage=9, state="SUCCEED")
        made = dag_json("11", name=name, state="READY")  # as obshell answers the POST
        agent.route("POST", UPGRADE, lambda request: json_reply(made))
        agent.route("GET", "/api/v1/task/dag/11", lambda request: json_reply(done))
        with _client(server) as client, pytest.raises(UpgradeNotConfirmedError):
            client.run_agent_upgrade(VERSION, RELEASE, check=False, timeout=10)
        agent.version = f"{VERSION}-{BUILD}"
        with _client(server) as client:
            assert client.run_agent_upgrade(VERSION, RELEASE, check=False,
                                            timeout=10).info.version == f"{VERSION}-{BUILD}"


# -- (b) a lost create reply is recovered only with the DAG it created ----------------------


def test_a_lost_reply_of_the_auth_flow_is_not_a_lost_create():
    """The POST never went out when the auth flow's own request (here /secret) lost its
    reply: that error is raised as it is, not looked up and called an unknown outcome."""
    cut = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 90\r\n\r\n{"
    with RawServer() as server:
        agent = RawAgent(server)
        agent.route("GET", "/api/v1/secret", lambda request: RawReply(200, wire=[cut], close=True))
        with _client(server) as client:
            with pytest.raises(ConnectionLostError) as info:
                client.upgrade_agent(VERSION, RELEASE)
        assert not isinstance(info.value, OutcomeUnknownError)
        assert info.value.path == "/api/v1/secret"
        assert "POST" not in [r.method for r in server.requests]


def test_a_failed_dag_of_the_same_name_is_not_taken_for_the_lost_one(short_recovery):
    with FakeAgent(password=PASSWORD, fail_stage=2, stages_per_poll=9) as agent, \
            _client(agent) as client:
        with pytest.raises(TaskFailedError):
            client.upgrade_agent(VERSION, RELEASE).result(timeout=10, poll_interval=0.01)
        (old_id,) = agent.dags  # FAILED, and it holds the maintenance lock
        agent.clear_requests()
        agent.reset_next(1, path_prefix=UPGRADE)
        started = time.monotonic()
        with pytest.raises(OutcomeUnknownError) as info:
            client.upgrade_agent(VERSION, RELEASE)
        assert time.monotonic() - started < 10
        assert len(agent.requests_to(UPGRADE, "POST")) == 1
        assert list(agent.dags) == [old_id]
        assert info.value.dag_name == f"Upgrade obshell {VERSION}-{RELEASE}"


@pytest.mark.parametrize("offset", [3600.0, -3600.0])
def test_the_dag_the_post_created_is_found_whatever_the_agents_clock(short_recovery, offset):
    with FakeAgent(password=PASSWORD, clock_offset=offset) as agent, _client(agent) as client:
        agent.drop_reply_after_create = True
        task = client.upgrade_agent(VERSION, RELEASE)
        assert len(agent.requests_to(UPGRADE, "POST")) == 1
        assert list(agent.dags) == [task.id]


@pytest.mark.parametrize("offset", [3600.0, -3600.0])
@pytest.mark.parametrize("pause", [1.5, 0.0])
def test_an_older_dag_is_not_taken_whatever_the_agents_clock(short_recovery, offset, pause):
    """A finished DAG of the same name, from before, is the last maintenance DAG: not it."""
    with FakeAgent(password=PASSWORD, clock_offset=offset, stages_per_poll=9) as agent, \
            _client(agent) as client:
        client.upgrade_agent(VERSION, RELEASE).result(timeout=10, poll_interval=0.01)
        time.sleep(pause)
        agent.clear_requests()
        agent.reset_next(1, path_prefix=UPGRADE)
        with pytest.raises(OutcomeUnknownError):
            client.upgrade_agent(VERSION, RELEASE)
        assert len(agent.requests_to(UPGRADE, "POST")) == 1


# -- (c) cut replies and redirects ------------------------------------------------------------

CUT_BUG = ("LIBRARY BUG: a create reply cut after the status line or inside the headers "
           "(no Content-Length, connection closed) reads as a complete empty 200, so "
           "upgrade_agent raises DecodeError ('data: expected a JSON object, got null') "
           "instead of looking the task up and raising OutcomeUnknownError")
OPERATOR_CUT_BUG = ("LIBRARY BUG: an operator whose reply is cut after the status line or "
                    "inside the headers returns as applied (the empty 200 has no data to "
                    "refuse), though the agent may never have recorded it")
CUTS = {
    "after the status line": b"HTTP/1.1 200 OK\r\n",
    "status line without CRLF": b"HTTP/1.1 200 OK",
    "inside the headers": b"HTTP/1.1 200 OK\r\nContent-Type: appl",
    "after a header": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
    "before the status code": b"HTTP/1.1 ",
}
FINE = {"before the status code"}


def _cut_params(reason):
    return list(CUTS)  # every cut was a bug (``reason``); all fixed


@pytest.mark.parametrize("cut", _cut_params(CUT_BUG))
def test_a_create_reply_cut_short_is_a_lost_reply(short_recovery, cut):
    with RawServer() as server:
        agent = RawAgent(server)
        agent.route("POST", UPGRADE, lambda request: RawReply(200, wire=[CUTS[cut]], close=True))
        with _client(server) as client, pytest.raises(OutcomeUnknownError):
            client.upgrade_agent(VERSION, RELEASE)
    posts = [r for r in server.requests if r.method == "POST"]
    lookups = [r for r in server.requests if r.target == "/api/v1/task/dag/unfinish"]
    assert len(posts) == 1 and len(lookups) >= 2  # before the POST, and after it


@pytest.mark.parametrize("cut", _cut_params(OPERATOR_CUT_BUG))
def test_an_operator_reply_cut_short_is_never_applied(cut):
    with RawServer() as server:
        agent = RawAgent(server)
        agent.route("POST", "/api/v1/task/dag/11",
                    lambda request: RawReply(200, wire=[CUTS[cut]], close=True))
        with _client(server) as client, pytest.raises(ObshellError):
            client.operate_dag("11", "RETRY")


def _page(status, text):
    return RawReply(status, f"<html>{status} {text}</html>".encode(),
                    {"Content-Type": "text/html"})


#: What answers a retry's POST, and whether the agent may have applied the retry then.
OPERATOR_REPLIES = {
    "lost": (lambda: RawReply(200, wire=[CUTS["after the status line"]], close=True), True),
    "a gateway's 504 page": (lambda: _page(504, "Gateway Time-out"), True),
    "obshell's 500": (lambda: json_reply(status=500, error={
        "errCode": "Common.Unexpected", "message": "forwarding to the master failed"}), True),
    "a step's refusal": (lambda: json_reply(status=400, error={
        "errCode": "Task.Dag.Operator.RetryNotAllowed", "message": "cannot retry"}), False),
    "not found": (lambda: json_reply(status=404, error={
        "errCode": "Task.NotFound", "message": "no such task"}), False),
    "a proxy's 403 page": (lambda: _page(403, "Forbidden"), False),
}


@pytest.mark.parametrize("reply", list(OPERATOR_REPLIES))
def test_a_task_is_read_again_once_an_operator_may_have_been_applied(reply):
    """Once the agent may have applied a retry, the failure read before it is not its
    ending: result() polls again and follows the task run again. Only a reply that proves
    nothing was applied keeps that reading (result() then reports it without polling)."""
    make, maybe = OPERATOR_REPLIES[reply]
    state, gets = {"value": "FAILED"}, []

    def operate(request):
        if maybe:  # the agent applied it, and the task ran again to its end
            state["value"] = "SUCCEED"
        return make()

    def dag_11(request):
        gets.append(request)
        return json_reply(dag_json("11", stage=9 if state["value"] == "SUCCEED" else 3,
                                   state=state["value"]))

    with RawServer() as server:
        agent = RawAgent(server)
        agent.route("GET", "/api/v1/task/dag/11", dag_11)
        agent.route("POST", "/api/v1/task/dag/11", operate)
        with _client(server) as client:
            task = client.task("11")
            task.refresh()
            with pytest.raises(ObshellError) as info:
                task.retry()
            assert (task.snapshot is None) is maybe, task.snapshot
            read = len(gets)
            if maybe:
                assert task.result(timeout=5, poll_interval=0.01).state.value == "SUCCEED"
                assert len(gets) > read
            else:
                with pytest.raises(TaskFailedError):
                    task.result(timeout=5, poll_interval=0.01)
                assert len(gets) == read  # the ending read before stands
    said = str(info.value)
    assert ("may have applied retry" in said) is maybe  # obshell's 500 too: as a lost reply
    if "may have applied" in said:
        assert said.endswith("See where the task stands before trying again: client.task("
                             "'11').refresh(), or follow it: client.task('11').wait()"), said
    assert len([r for r in server.requests if r.method == "POST"]) == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_with_a_successful_envelope_is_an_error(status):
    created = dag_json("11", name=f"Upgrade obshell {VERSION}-{RELEASE}")
    with RawServer() as server:
        agent = RawAgent(server)
        redirect = RawReply(status, envelope(created), {"Location": "/elsewhere",
                                                        "Content-Type": "application/json"})
        agent.route("POST", UPGRADE, lambda request: redirect)
        agent.route("POST", "/api/v1/task/dag/11", lambda request: redirect)
        agent.route("GET", "/api/v1/task/dag/11", lambda request: redirect)
        with _client(server) as client:
            with pytest.raises(ApiError) as info:
                client.upgrade_agent(VERSION, RELEASE)
            assert info.value.status == status
            with pytest.raises(ApiError):
                client.operate_dag("11", "RETRY")
            with pytest.raises(ApiError):
                client.get_dag("11")
    assert not any(r.target.startswith("/elsewhere") for r in server.requests)


# -- (d) the command line --------------------------------------------------------------------


def _cli(server, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSHELL_")}
    env.update(PYTHONPATH=str(ROOT), OBSHELL_HOST=server.host, OBSHELL_PORT=str(server.port),
               OBSHELL_PASSWORD=PASSWORD)
    return subprocess.run([sys.executable, "-m", "obshell_sdk", *args], capture_output=True,
                          text=True, env=env, timeout=30, stdin=subprocess.DEVNULL, check=False)


def test_cli_operator_applied_but_not_read_back_exits_0_with_a_warning():
    with RawServer() as server:
        agent = RawAgent(server)
        gets = []

        def dag_11(request):
            gets.append(request)
            if len(gets) == 1:
                return json_reply(dag_json("11", stage=3, state="FAILED"))
            return RawReply(503, b"<html>503 Service Unavailable</html>",
                            {"Content-Type": "text/html"})

        agent.route("GET", "/api/v1/task/dag/11", dag_11)
        agent.route("POST", "/api/v1/task/dag/11", lambda request: json_reply())
        out = _cli(server, "task", "retry", "11")
        assert out.returncode == 0, out.stderr
        assert "warning" in out.stderr.lower() and "11" in out.stderr
        assert out.stdout == "11\n"  # what it knows of the task, for a script to go on with
        assert [r.method for r in server.requests
                if r.target.startswith("/api/v1/task/dag/11")] == ["GET", "POST", "GET"]
        gets.clear()
        out = _cli(server, "task", "retry", "11", "--json")
    assert out.returncode == 0 and json.loads(out.stdout) == {"id": "11"}, out.stderr


def test_cli_a_proxy_page_for_an_operator_is_an_unknown_outcome_and_a_stray_not_found_no_10():
    """A 504 page answering the operator's POST: the agent may have applied it (exit 8, not
    7). A "no such task" answering a call about no task is no missing task (5, not 10)."""
    with RawServer() as server:
        agent = RawAgent(server)
        agent.route("GET", "/api/v1/task/dag/11",
                    lambda request: json_reply(dag_json("11", stage=3, state="RUNNING")))
        agent.route("POST", "/api/v1/task/dag/11", lambda request: RawReply(
            504, b"<html>504 Gateway Time-out</html>", {"Content-Type": "text/html"}))
        out = _cli(server, "task", "cancel", "11")
        assert out.returncode == 8, out.stderr
        assert "may have applied cancel" in out.stderr and "task show 11" in out.stderr
        agent.route("GET", "/api/v1/task/dag/unfinish", lambda request: json_reply(
            status=404, error={"errCode": "Task.NotFound", "message": "no such task"}))
        out = _cli(server, "task", "list")
    assert out.returncode == 5, out.stderr


def test_cli_create_with_an_unreadable_reply_prints_the_id_and_exits_8():
    with RawServer() as server:
        agent = RawAgent(server)
        agent.route("POST", UPGRADE, lambda request: json_reply(
            {"id": "11", "stage": "three", "state": 7, "nodes": "x"}))
        out = _cli(server, "upgrade", VERSION, RELEASE)
        assert out.returncode == 8, out.stderr
        assert out.stdout.strip() == "11"
        assert "11" in out.stderr
        assert len([r for r in server.requests if r.method == "POST"]) == 1
        out = _cli(server, "upgrade", VERSION, RELEASE, "--json")  # a document, as every other
    assert out.returncode == 8 and json.loads(out.stdout) == {"id": "11"}, out.stderr


@pytest.mark.parametrize("name", [f"Upgrade obshell {VERSION}-{RELEASE}",
                                  "Upgrade obshell 4.2.9.9-1.el7"])
def test_cli_an_id_only_create_reply_is_read_back_and_another_task_refused(name):
    """The agent's reply names task 1500 only. Read back, it is shown as the command's task
    when it bears the name the call gives; another's (an older upgrade under that id) is
    refused, never shown as this one: exit 7, what to look for in CLI words."""
    with RawServer() as server:
        agent = RawAgent(server)
        agent.route("POST", UPGRADE, lambda request: json_reply({"id": "1500"}))
        agent.route("GET", "/api/v1/task/dag/1500", lambda request: json_reply(
            dag_json("1500", name=name, stage=3)))
        out = _cli(server, "upgrade", VERSION, RELEASE)
        assert len([r for r in server.requests if r.method == "POST"]) == 1
    if VERSION in name:
        assert out.returncode == 0 and out.stdout.startswith(f"task 1500: {name}\n"), out.stderr
        return
    assert out.returncode == 7 and out.stdout == "", out.stderr
    assert f"task 1500 is {name!r}, not the 'Upgrade obshell {VERSION}-" in out.stderr
    assert "not sent again" in out.stderr and "obshell-sdk task list" in out.stderr
    assert "client." not in out.stderr


def test_cli_outcome_unknown_exits_8():
    with FakeAgent(password=PASSWORD) as agent:
        agent.reset_next(1, path_prefix=UPGRADE)
        started = time.monotonic()
        out = _cli(agent, "upgrade", VERSION, RELEASE)
        elapsed = time.monotonic() - started
        assert out.returncode == 8, out.stderr
        assert len(agent.requests_to(UPGRADE, "POST")) == 1
        assert not agent.dags
    assert PASSWORD not in out.stdout + out.stderr
    assert elapsed < 15


# -- an auth code on a status obshell never gives it: not mended by sending again ------------


@pytest.mark.parametrize("status, err_code", [
    (500, "Security.Authentication.Expired"),
    (200, "Security.Authentication.Header.DecryptFailed"),
    (502, "Security.Authentication.WithAgentPassword"),
])
def test_an_auth_code_on_another_status_never_sends_the_post_again(status, err_code):
    """obshell refuses credentials with 401 before anything runs, which is why a refusal may
    be mended by sending again; a 5xx (or a 200) may come after the agent acted."""
    posts = []

    def create(request):
        posts.append(request)
        if len(posts) == 1:
            return RawReply(status, envelope(status=status, successful=False,
                                             error={"errCode": err_code, "message": "x"}))
        return json_reply(dag_json("1123"))

    with RawServer() as server:
        RawAgent(server).route("POST", UPGRADE, create)
        with _client(server) as client:
            with pytest.raises(ApiError) as info:
                client.upgrade_agent(VERSION, RELEASE)
    assert len(posts) == 1
    assert not isinstance(info.value, obshell_sdk.AuthError)
    assert info.value.err_code == err_code  # kept for the reader


@pytest.mark.parametrize("whole", [True, False], ids=["parsed", "id-only"])
def test_a_create_reply_about_another_task_is_not_believed_and_the_made_one_is_found(
        short_recovery, whole):
    """A reply naming an old, finished pre-check (another version) would have made the new
    check "pass" without running: it is taken for a lost reply, and the task the POST made
    is looked up instead. So too when only its id parses (its raw name and state tell)."""
    check = "/api/v1/agent/upgrade/check"
    old = dag_json("1777", name="Upgrade check obshell 4.2.9.9-1.el7", stage=5, max_stage=5,
                   state="SUCCEED")
    if not whole:
        old["dag_id"] = "not a number"  # the reply does not parse; its id does
    made: list[dict] = []

    def create(request):
        time.sleep(0.01)
        made.append(dag_json("1778", name=f"Upgrade check obshell {VERSION}-{RELEASE}",
                             max_stage=5, state="READY"))
        return json_reply(old)

    with _creating(check, create, made) as client:
        task = client.check_agent_upgrade(VERSION, RELEASE)
    assert task.id == "1778" and len(made) == 1


def test_a_create_reply_with_broken_framing_is_a_lost_reply_and_looked_up(short_recovery):
    """Two Content-Lengths: the POST went out and the agent may have made the task, so the
    call looks it up (and finds it) instead of saying the agent could not be reached."""
    made: list[dict] = []

    def create(request):
        made.append(dag_json("1123", name=f"Upgrade obshell {VERSION}-{RELEASE}",
                             state="READY"))
        body = envelope(made[0])
        return RawReply(200, wire=[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                   b"Content-Length: %d\r\n\r\n" % len(body) + body], close=True)

    with _creating(UPGRADE, create, made) as client:
        assert client.upgrade_agent(VERSION, RELEASE).id == "1123"
    assert len(made) == 1


def test_a_rollout_whose_task_exists_never_reports_refused(tmp_path):
    """A proxy's 403 page while the created task is followed: the task exists and may run,
    so the target is unknown (a rerun follows it), never "refused, made no task"."""
    from obshell_sdk import Rollout, TargetOutcome

    posts = []
    name = f"Upgrade obshell {VERSION}-{RELEASE}"

    def create(request):
        posts.append(request)
        return json_reply(dag_json("1123", name=name, state="READY"))

    with RawServer() as server:
        agent = RawAgent(server)
        agent.route("POST", UPGRADE, create)
        agent.route("GET", "/api/v1/task/dag/1123", lambda request: RawReply(
            403, b"<html>Forbidden</html>", {"Content-Type": "text/html"}))
        report = Rollout([f"127.0.0.1:{server.port}"], auth=PasswordAuth(PASSWORD),
                         journal=str(tmp_path / "j.db"), progress=False, timeout=(2, 5),
                         ).upgrade_agent(VERSION, RELEASE, check=False, timeout=10)
    result = next(iter(report.results.values()))
    assert result.outcome is TargetOutcome.UNKNOWN, result.error
    assert result.dag_ids == ("1123",) and len(posts) == 1
