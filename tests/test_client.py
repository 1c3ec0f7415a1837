"""The client end to end against the fake agent, over real sockets on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest
from conftest import AGENT_PASSWORD, PASSWORD

from obshell_sdk import (
    AgentInfo,
    AuthError,
    AuthExpiredError,
    BadRequestError,
    ConnectError,
    DagOutcome,
    DagState,
    DecodeError,
    InvalidArgumentError,
    ObshellClient,
    PasswordAuth,
    PasswordKindError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotFoundError,
    TaskRolledBackError,
    TaskTimeoutError,
    UnderMaintenanceError,
    UriMismatchError,
    WrongPasswordError,
)
from obshell_sdk.testing import FakeAgent

VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"
UNAUTHENTICATED = ("/api/v1/info", "/api/v1/secret", "/api/v1/time", "/api/v1/status")


def client_for(agent: FakeAgent, password: str = PASSWORD, **kw) -> ObshellClient:
    auth = PasswordAuth(password, kw.pop("agent_password", None), **kw.pop("auth_kw", {}))
    return ObshellClient(agent.host, agent.port, auth=auth, **kw)


def paths(agent: FakeAgent) -> list[str]:
    return [f"{r.method} {r.uri}" for r in agent.requests]


def test_upgrade_followed_to_succeed_with_v2():
    with FakeAgent(password=PASSWORD) as agent, client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE, upgrade_dir="/data/upgrade")
        assert task.id.startswith("1") and task.state is DagState.READY
        assert task.name == f"Upgrade obshell {VERSION}-{RELEASE}"
        seen = []
        detail = task.result(timeout=30, poll_interval=0.01, on_progress=seen.append)
        assert detail.outcome is DagOutcome.SUCCEEDED and detail.stage == detail.max_stage == 9
        assert task.done() and task.state is DagState.SUCCEED
        assert [d.stage for d in seen] == sorted(d.stage for d in seen)
        assert seen[-1].state is DagState.SUCCEED
        post = next(r for r in agent.requests if r.method == "POST")
        assert post.auth_kind == "v2" and post.status == 200
        assert post.header_json["Uri"] == "/api/v1/agent/upgrade"
        assert post.body_json == {"version": VERSION, "release": RELEASE,
                                  "upgradeDir": "/data/upgrade"}
        # The create reply was used as is: no GET between the POST and the first poll.
        for r in agent.requests:
            if r.uri.split("?")[0] in UNAUTHENTICATED:
                assert r.auth_kind is None and r.header_json is None
            else:
                assert r.auth_kind == "v2"
        polls = [p for p in paths(agent) if p.startswith(f"GET /api/v1/task/dag/{task.id}")]
        before = len(agent.requests)
        assert task.refresh() is detail and len(agent.requests) == before  # finished: no I/O
        assert polls and all(p.endswith("?show_details=true") for p in polls)


def test_each_call_reuses_the_key_and_info():
    with FakeAgent(password=PASSWORD) as agent, client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        for _ in range(3):
            client.get_dag(task.id)
        ps = paths(agent)
        assert ps.count("GET /api/v1/info") == 1 and ps.count("GET /api/v1/secret") == 1


def test_agent_password_uses_agent_header():
    with FakeAgent(password=PASSWORD, agent_password=AGENT_PASSWORD) as agent, \
            client_for(agent, agent_password=AGENT_PASSWORD) as client:
        client.upgrade_agent(VERSION, RELEASE).result(timeout=30, poll_interval=0.01)
        assert {r.auth_kind for r in agent.requests if r.auth_kind} == {"v2-agent"}


def test_root_password_refused_when_agent_wants_its_own():
    with FakeAgent(password=PASSWORD, agent_password=AGENT_PASSWORD, identity="SINGLE") as agent, \
            client_for(agent) as client:
        with pytest.raises(PasswordKindError) as info:
            client.get_dag("11")
        assert info.value.status == 401


def test_legacy_422_agent_gets_x_ocs_auth_and_plain_body():
    with FakeAgent(password=PASSWORD, legacy_v1=True, version="4.2.2.0",
                   supported_auth=None) as agent, client_for(agent) as client:
        client.upgrade_agent(VERSION, RELEASE).result(timeout=30, poll_interval=0.01)
        post = next(r for r in agent.requests if r.method == "POST")
        assert post.auth_kind == "v1" and list(post.header_json) == ["password", "ts"]
        assert isinstance(post.header_json["ts"], int)
        assert post.body_json == {"version": VERSION, "release": RELEASE}


@pytest.mark.parametrize("legacy", [False, True])
def test_wrong_password_is_typed(legacy):
    kw = {"legacy_v1": True, "version": "4.2.2.0", "supported_auth": None} if legacy else {}
    with FakeAgent(password=PASSWORD, **kw) as agent, client_for(agent, "wrong") as client:
        with pytest.raises(WrongPasswordError) as info:
            client.upgrade_agent(VERSION, RELEASE)
        err = info.value
        assert err.status == 401 and err.code == 10008
        assert err.err_code == "Security.Authentication.IncorrectOceanbasePassword"
        assert "password" in str(err).lower()
        # Refused at the task-list read before the POST: one refused login, the POST unsent,
        # and the message says so first (the read is not a call the user made).
        assert str(err).startswith("POST /api/v1/agent/upgrade was not sent: GET "
                                   f"/api/v1/task/dag/unfinish on {client.agent} failed: "
                                   "HTTP 401")
        # which agent it was, for a runner over many clusters (task ids repeat across them)
        assert (err.method, err.path, err.agent) == ("GET", "/api/v1/task/dag/unfinish",
                                                     client.agent)
        assert [r.method for r in agent.requests].count("POST") == 0
        assert [r.status for r in agent.requests if r.auth_kind] == [401]


@pytest.mark.parametrize("call", ["check_agent_upgrade", "upgrade_ob", "check_ob_upgrade"])
def test_a_wrong_password_is_sent_once_by_every_create_call(call):
    with FakeAgent(password=PASSWORD) as agent, client_for(agent, "wrong") as client:
        with pytest.raises(WrongPasswordError, match=r"^POST /api/v1/\S+ was not sent: GET"):
            getattr(client, call)("4.3.5.0", "100000202024123117.el7")
        assert [r.status for r in agent.requests if r.auth_kind] == [401]
        assert [r.method for r in agent.requests].count("POST") == 0


def test_wrong_agent_password_is_typed():
    with FakeAgent(password=PASSWORD, agent_password=AGENT_PASSWORD) as agent, \
            client_for(agent, agent_password="nope") as client:
        with pytest.raises(WrongPasswordError) as info:
            client.get_dag("11")
        assert info.value.err_code == "Security.Authentication.IncorrectAgentPassword"
        # its hint points at where an agent password is given, not at OBSHELL_PASSWORD alone
        assert "agent_password" in str(info.value), str(info.value)
        assert "OBSHELL_AGENT_PASSWORD" in str(info.value), str(info.value)


def test_stale_key_is_refetched_once_and_the_call_succeeds():
    with FakeAgent(password=PASSWORD) as agent, client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        agent.rotate_key(bits=1024)
        agent.clear_requests()
        assert client.get_dag(task.id).id == task.id
        statuses = [(r.uri.split("?")[0], r.status, r.err_code) for r in agent.requests]
        assert statuses == [
            (f"/api/v1/task/dag/{task.id}", 401, "Security.Authentication.Header.DecryptFailed"),
            ("/api/v1/secret", 200, None),
            (f"/api/v1/task/dag/{task.id}", 200, None),
        ]


def test_clock_behind_by_an_hour_is_measured_and_corrected():
    with FakeAgent(password=PASSWORD, clock_offset=3600) as agent, client_for(agent) as client:
        client.upgrade_agent(VERSION, RELEASE).result(timeout=30, poll_interval=0.01)
        # Before the POST the client notes the tasks there were ("no maintenance task" here).
        codes = [r.err_code for r in agent.requests
                 if r.err_code and r.path != "/api/v1/task/dag/maintain/ob"]
        assert codes == ["Security.Authentication.Expired"]  # once, then corrected
        assert paths(agent).count("GET /api/v1/time") == 1


def old_agent(**kw):
    """obshell 4.2.3: no ``supportedAuth``; every auth refusal a bare 401 code 10008."""
    agent = FakeAgent(password=PASSWORD, version="4.2.3.0", supported_auth=None, **kw)
    agent.numeric_errors = True
    return agent


def test_an_old_agent_s_bare_refusal_of_an_expired_header_has_the_clock_measured():
    """Before 4.3.1 an expired header is refused as anything is (a bare 10008): the flow reads
    the clock once as it asks /info and /secret again, and the one re-signed request goes."""
    with old_agent(clock_offset=3600) as agent, client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        assert task.result(timeout=30, poll_interval=0.01).state.value == "SUCCEED"
        refused = [r.path for r in agent.requests if r.status == 401]
        assert refused == ["/api/v1/task/dag/unfinish"]  # the first read, once
        assert paths(agent).count("GET /api/v1/time") == 1
        assert paths(agent).count("POST /api/v1/agent/upgrade") == 1 and len(agent.dags) == 1


@pytest.mark.parametrize("offset", [0, 3600])
def test_an_old_agent_s_refusal_of_a_wrong_password_stays_one_retry_and_says_so(offset):
    """The clock, read once, rules itself out: one re-signed request, then the password."""
    with old_agent(clock_offset=offset) as agent, client_for(agent, "wrong") as client:
        with pytest.raises(AuthError) as info:
            client.upgrade_agent(VERSION, RELEASE)
        assert [r.path for r in agent.requests if r.status == 401] == [
            "/api/v1/task/dag/unfinish"] * 2
        assert paths(agent).count("GET /api/v1/time") == 1
        assert "POST" not in [r.method for r in agent.requests] and agent.dags == {}
    assert type(info.value) is AuthError and info.value.code == 10008
    assert "Check the passwords" in str(info.value)


def test_expired_surfaces_when_the_clock_cannot_be_read():
    with FakeAgent(password=PASSWORD, clock_offset=3600) as agent, client_for(agent) as client:
        agent.fail_next(5, status=503, path_prefix="/api/v1/time")
        with pytest.raises(AuthExpiredError) as info:
            client.upgrade_agent(VERSION, RELEASE)
        assert "clock" in str(info.value)
        # Re-signed once as it was (the clock unread); both refused before anything ran, at
        # the task-list read before the POST, which was then not sent.
        assert [(r.path, r.err_code) for r in agent.requests if r.err_code] == [
            ("/api/v1/task/dag/unfinish", "Security.Authentication.Expired")] * 2
        assert "POST" not in [r.method for r in agent.requests]


def test_request_target_is_signed_as_requests_sends_it():
    # requests percent-encodes the space and drops "/./": the signed Uri must follow.
    with FakeAgent(password=PASSWORD) as agent, client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        client.call("GET", f"/api/v1/./task/dag/{task.id}", query="show_details=true&note=a b")
        sent = agent.requests[-1]
        assert sent.status == 200
        assert sent.header_json["Uri"] == sent.uri == (
            f"/api/v1/task/dag/{task.id}?show_details=true&note=a%20b")


def test_uri_mismatch_is_typed():
    import requests

    class RewritingProxy(requests.Session):
        """Stands in for a proxy that rewrites the URL after the header was signed."""

        def request(self, method, url, *args, **kwargs):
            return super().request(method, url.replace("/dag/11", "/dag/12"), *args, **kwargs)

    with FakeAgent(password=PASSWORD) as agent, RewritingProxy() as session, ObshellClient(
            agent.host, agent.port, auth=PasswordAuth(PASSWORD), session=session) as client:
        with pytest.raises(UriMismatchError) as info:
            client.get_dag("11")
        assert info.value.err_code == "Security.Authentication.Header.UriMismatch"
        assert "rewrote the URL" in str(info.value)


def test_server_side_validation_errors_are_typed():
    with FakeAgent(password=PASSWORD) as agent, client_for(agent) as client:
        with pytest.raises(BadRequestError) as info:
            client.upgrade_agent("4.2.0.0", "1.el7")
        assert info.value.err_code == "Agent.Upgrade.ToLowerVersion"
        with pytest.raises(TaskNotFoundError) as info2:
            client.get_dag("1999")
        assert info2.value.status == 404 and "Task.NotFound" in str(info2.value)


def test_refusals_no_class_names_say_what_to_do_next():
    """obshell's own text ("Please verify if the parameters have been filled out correctly")
    says nothing of what to change: the hint does, by errCode, for a class that has none."""
    with FakeAgent(password=PASSWORD, version="4.3.2.0", ob_version="4.3.5.0") as agent, \
            client_for(agent) as client:
        with pytest.raises(BadRequestError) as older:
            client.upgrade_agent("4.3.1.0", RELEASE)
        assert older.value.err_code == "Agent.Upgrade.ToLowerVersion"
        assert older.value.hint.startswith("Give a target newer than the obshell the agent runs")
        assert str(older.value).endswith(". " + older.value.hint)
        assert "client.info() shows its version" in older.value.hint
        with pytest.raises(BadRequestError) as ob:
            client.upgrade_ob("4.3.4.0", "100000162024110717.el7")
        assert ob.value.err_code == "OB.Upgrade.ToLowerVersion"
        assert "newer than the OceanBase the cluster runs" in str(ob.value)
    with FakeAgent(password=PASSWORD, identity="SINGLE") as agent, client_for(agent) as client:
        with pytest.raises(BadRequestError) as single:
            client.upgrade_agent(VERSION, RELEASE)
        assert single.value.err_code == "Agent.Identify.NotSupportOperation"
        assert str(single.value).endswith(
            "Use an agent of a deployed cluster instead (identity CLUSTER AGENT): client.info() "
            "shows an agent's identity")


def test_failing_stage_raises_task_failed_with_the_sub_task_log():
    with FakeAgent(password=PASSWORD, fail_stage=3) as agent, client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        with pytest.raises(TaskFailedError) as info:
            task.result(timeout=30, poll_interval=0.01)
        err = info.value
        assert err.task_id == task.id and err.detail.stage == 3
        (failed,) = err.failed_sub_tasks
        assert failed.name == "Check all required packages" and failed.task_logs
        assert failed.task_logs[-1] in str(err)
        assert f"{agent.host}:{agent.port}" in str(err)


@pytest.mark.parametrize("stage, ways", [
    (3, "retried or rolled back"), (7, "retried"), (9, "retried or skipped")])
def test_a_failed_upgrade_says_which_operators_free_the_cluster(stage, ways):
    """It said "retried (or rolled back or skipped, where its steps allow it ...)" at every
    stage; an agent upgrade's steps say which (a rollback before stage 7, a skip at 9)."""
    with FakeAgent(password=PASSWORD, fail_stage=stage) as agent, \
            client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        with pytest.raises(TaskFailedError) as info:
            task.result(timeout=30, poll_interval=0.01)
    assert str(info.value).endswith(
        f"The cluster stays locked until the task is {ways} (what its steps allow; a FAILED "
        "task cannot be cancelled)."), str(info.value)


def test_a_failed_task_whose_steps_allow_no_operator_says_so(monkeypatch):
    """``()``, no operator allowed, was said as None (steps unknown): "until the task is
    retried (or rolled back or skipped, where its steps allow it ...)", none of which it
    takes. No known step refuses a retry: its steps are made to allow none here."""
    from obshell_sdk import _render

    with FakeAgent(password=PASSWORD, fail_stage=3) as agent, client_for(agent) as client:
        with pytest.raises(TaskFailedError) as info:
            client.upgrade_agent(VERSION, RELEASE).result(timeout=30, poll_interval=0.01)
    monkeypatch.setattr(_render, "failed_task_operators", lambda detail: ())
    said = _render.failure_message("task 11", info.value.detail)
    assert said.endswith("The cluster stays locked: the task's steps allow no retry, rollback "
                         "or skip, and a FAILED task cannot be cancelled (see docs/tasks.md, "
                         "\"When a task fails\")."), said
    assert "retried" not in said


def test_wait_times_out_with_the_task_id():
    with FakeAgent(password=PASSWORD, stage_seconds=60) as agent, client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        with pytest.raises(TaskTimeoutError) as info:
            task.wait(timeout=0.5)
        assert info.value.task_id == task.id and task.id in str(info.value)
        assert isinstance(info.value, TimeoutError)
        assert not task.done()


def test_task_picked_up_by_id_from_another_client():
    with FakeAgent(password=PASSWORD) as agent:
        with client_for(agent) as first:
            dag_id = first.upgrade_agent(VERSION, RELEASE).id
        with client_for(agent) as second:
            task = second.task(dag_id)
            assert task.snapshot is None and not task.done() and task.state is None
            task.refresh()
            assert task.state is not None
            assert task.wait(timeout=30, poll_interval=0.01).state is DagState.SUCCEED


def test_info_is_typed_and_unauthenticated():
    with FakeAgent(password=PASSWORD) as agent, ObshellClient(agent.host, agent.port,
                                                              auth=None) as client:
        info = client.info()
        assert isinstance(info, AgentInfo) and info.identity == "CLUSTER AGENT"
        assert client.server_time() is not None
        with pytest.raises(InvalidArgumentError, match="auth"):
            client.get_dag("11")
        assert all(r.auth_kind is None for r in agent.requests)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_agent_is_a_connect_error():
    with ObshellClient("127.0.0.1", _free_port(), auth=PasswordAuth(PASSWORD),
                       timeout=2) as client:
        with pytest.raises(ConnectError) as info:
            client.upgrade_agent(VERSION, RELEASE)
        assert "cannot connect" in str(info.value)


def test_non_json_reply_is_a_decode_error():
    with FakeAgent(password=PASSWORD) as agent, client_for(agent) as client:
        agent.fail_next(1, status=502, path_prefix="/api/v1/task/")
        with pytest.raises(DecodeError) as info:
            client.get_dag("11")
        assert info.value.status == 502 and "not JSON" in str(info.value)


def test_reprs_are_shaped_like_their_constructors_and_never_show_a_password():
    """``ObshellClient('http://127.0.0.1:2886', ...)`` took a URL no constructor takes, and
    ``PasswordAuth``'s repr left out a ``min_key_bits`` of 512 (a key it accepts)."""
    auth = PasswordAuth("hunter2-secret", "agent-secret", min_key_bits=512)
    assert repr(auth) == ("PasswordAuth(password='***', agent_password='***', lifetime=60, "
                          "version=None, min_key_bits=512)")
    assert "min_key_bits" not in repr(PasswordAuth("hunter2-secret"))  # the default, 1024
    with FakeAgent(password=PASSWORD) as agent:
        with ObshellClient(agent.host, agent.port, auth=auth) as client:
            shown = repr(client)
            assert shown == f"ObshellClient(host='127.0.0.1', port={agent.port}, auth={auth!r})"
            assert "hunter2" not in shown and "agent-secret" not in shown
            again = eval(shown.replace(repr(auth), "None"), {"ObshellClient": ObshellClient})
            with again:  # what it shows makes a client of the same agent
                assert again.agent == client.agent and again.info().version
    tls = ObshellClient("::1", 2887, https=True, auth=None)
    assert repr(tls) == "ObshellClient(host='::1', port=2887, https=True, auth=None)"
    tls.close()


def test_closed_client_refuses_calls_and_given_session_stays_open():
    import requests

    session = requests.Session()
    with FakeAgent(password=PASSWORD) as agent:
        client = ObshellClient(agent.host, agent.port, auth=None, session=session)
        with client:
            client.info()
            assert "closed" not in repr(client)
            with pytest.raises(InvalidArgumentError, match="already in a with block"):
                client.__enter__()  # an inner block's end would close it under this one
            client.info()
        assert client.closed and repr(client).endswith(", closed)")  # a notebook shows it
        with pytest.raises(InvalidArgumentError, match="closed"):
            client.info()
        with pytest.raises(InvalidArgumentError, match="closed"):
            client.__enter__()  # a closed client cannot be entered (reopened) again
        session.get(f"{agent.base_url}/api/v1/info", timeout=5).raise_for_status()
    session.close()


@pytest.mark.parametrize(("name", "value"), [("host", "10.0.0.9"), ("port", 2887),
                                           ("agent", "10.0.0.9:2886"),
                                           ("base_url", "http://10.0.0.9:2886")])
def test_the_agent_address_cannot_be_changed_on_a_client(name, value):
    # setting it would leave calls going to the old agent: refused, not ignored
    client = ObshellClient("127.0.0.1", 2886, auth=None)
    before = getattr(client, name)
    with pytest.raises(AttributeError):
        setattr(client, name, value)
    assert getattr(client, name) == before
    assert client.base_url == "http://127.0.0.1:2886" and client.agent == "127.0.0.1:2886"
    client.close()


def test_node_details_sub_task_logs_and_lookups():
    with FakeAgent(password=PASSWORD, fail_stage=2) as agent, client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        with pytest.raises(TaskFailedError):
            task.result(timeout=30, poll_interval=0.01)
        node = task.snapshot.nodes[1]
        fetched = client.get_node(node.id)
        assert fetched.name == node.name == "Download all required packages"
        assert fetched.state is DagState.FAILED
        (sub,) = fetched.sub_tasks
        logs = client.sub_task_logs(sub.id)
        assert logs and logs[-1].endswith("injected failure at stage 2")
        assert [d.id for d in client.unfinished_dags()] == [task.id]  # FAILED keeps the lock
        assert client.last_maintenance_dag().id == task.id


def test_operators_check_the_state_first_and_send_nothing_when_refused():
    from obshell_sdk import TaskStateError

    with FakeAgent(password=PASSWORD, stage_seconds=30) as agent, client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        task.refresh()
        agent.clear_requests()
        for op in (task.retry, task.rollback, task.skip):
            with pytest.raises(TaskStateError) as info:
                op()
            assert info.value.task_id == task.id and "FAILED" in str(info.value)
        assert agent.requests == []
        assert task.cancel() is task
        with pytest.raises(TaskCancelledError):
            task.result(timeout=30, poll_interval=0.01)
        with pytest.raises(TaskStateError):
            task.cancel()  # finished now: refused before sending


def test_trace_id_is_sent_and_surfaced_in_errors():
    with FakeAgent(password=PASSWORD) as agent, client_for(agent) as client:
        with pytest.raises(TaskNotFoundError) as info:
            client.get_dag("1999")
        sent = agent.requests[-1].headers["X-OBSHELL-Trace-ID"]
        assert len(sent) == 16 and info.value.trace_id == sent and sent in str(info.value)


def test_accept_language_is_passed_on():
    with FakeAgent(password=PASSWORD) as agent, client_for(agent, accept_language="zh-CN") as c:
        c.info()
        assert agent.requests[-1].headers["Accept-Language"] == "zh-CN"
    with pytest.raises(InvalidArgumentError):
        ObshellClient("127.0.0.1", auth=None, accept_language="zh-CN,zh;q=0.9")


def test_a_forced_dialect_the_agent_does_not_speak_is_refused_before_any_signing(fake_agent):
    client = ObshellClient("127.0.0.1", fake_agent.port,
                           auth=PasswordAuth(fake_agent.password, version="v1"))
    with client, pytest.raises(InvalidArgumentError, match="drop version=") as caught:
        client.unfinished_dags()
    assert caught.value.argument == "version"
    assert paths(fake_agent) == ["GET /api/v1/info"]  # no key fetched, nothing signed


def test_cluster_dags_lists_finished_tasks_too_and_an_older_agent_refuses():
    from obshell_sdk import ApiError

    with FakeAgent(password=PASSWORD, stage_seconds=0.01) as agent, \
            client_for(agent) as client:
        done = client.check_agent_upgrade("4.3.1.0", "101000012025010101.el7").wait(30)
        assert client.unfinished_dags() == []  # a pre-check is listed only while it runs
        (listed,) = client.cluster_dags()
        assert (listed.id, listed.state.value) == (done.id, "SUCCEED") and not listed.nodes
        agent.dag_history = False  # an agent before 4.2.6
        with pytest.raises(ApiError):
            client.cluster_dags()


def test_snapshots_yields_each_poll_and_stops_when_the_loop_is_left():
    """DagTask.snapshots(): the polling loop of wait(), for a caller's own stop rule (an
    event another thread sets, say): every poll is yielded, changed or not."""
    import time

    from obshell_sdk import InvalidArgumentError as Bad

    with FakeAgent(password=PASSWORD, stages_per_poll=1) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        task = client.upgrade_agent("4.3.1.0", "101000012025010101.el7")
        with pytest.raises(Bad, match="poll_interval"):  # checked at the call, not at next()
            task.snapshots(poll_interval=-1)
        polls = lambda: len(agent.requests_to(f"/api/v1/task/dag/{task.id}", "GET"))  # noqa: E731
        before = polls()
        taken = []
        for detail in task.snapshots(poll_interval=0.01):
            taken.append(detail)
            if len(taken) == 3:
                break
        assert polls() == before + 3 and not taken[-1].is_finished
        seen = list(task.snapshots(timeout=30, poll_interval=0.01))
        assert seen[-1].is_finished and all(not d.is_finished for d in seen[:-1])
        assert len(seen) == polls() - before - 3
        again = list(task.snapshots())  # seen finished: that snapshot, fetched no more
        assert again == [seen[-1]] and polls() == before + 3 + len(seen)
    with FakeAgent(password=PASSWORD, stages_per_poll=1) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        task = client.upgrade_agent("4.3.1.0", "101000012025010101.el7")
        later = task.snapshots(timeout=1, poll_interval=0.01)
        time.sleep(1.2)  # its deadline runs from the loop's first step, not from the call
        assert len([d for _, d in zip(range(3), later)]) == 3


def test_snapshots_end_at_once_when_stop_is_set_even_while_polls_fail():
    import threading
    import time

    from obshell_sdk import InvalidArgumentError as Bad
    from obshell_sdk import PollPolicy

    with FakeAgent(password=PASSWORD, stages_per_poll=0) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD),
                          poll_policy=PollPolicy(initial=5, ceiling=5)) as client:
        task = client.upgrade_agent("4.3.1.0", "101000012025010101.el7")
        with pytest.raises(Bad, match="stop"):
            task.snapshots(stop=True)
        stop, seen = threading.Event(), []
        for detail in task.snapshots(timeout=30, stop=stop):  # its 5 s pause is cut short
            seen.append(detail)
            began = time.monotonic()  # the first poll is done (not cut): its pause begins
            threading.Timer(0.2, stop.set).start()
        assert len(seen) == 1 and time.monotonic() - began < 2 and not task.done()
        stop.clear()
        agent.fail_next(1000, status=503)  # the agent answers no poll: no snapshot to yield
        threading.Timer(0.5, stop.set).start()
        began = time.monotonic()
        assert list(task.snapshots(timeout=30, stop=stop)) == []  # ended, nothing raised
        assert time.monotonic() - began < 2  # not the failure budget


def test_wait_and_result_end_at_once_when_stop_is_set():
    """wait()/result() take snapshots()' stop=: a service shutting down (or an asyncio task
    cancelled around asyncio.to_thread) ends the wait now, as its deadline would."""
    import logging
    import threading
    import time

    from obshell_sdk import InvalidArgumentError as Bad
    from obshell_sdk import PollPolicy, TaskTimeoutError

    with FakeAgent(password=PASSWORD, stages_per_poll=0) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD),
                          poll_policy=PollPolicy(initial=5, ceiling=5)) as client:
        task = client.upgrade_agent("4.3.1.0", "101000012025010101.el7")
        agent.clear_requests()
        for call in (task.wait, task.result):
            with pytest.raises(Bad, match="stop"):
                call(stop=True)  # checked before anything is sent
        assert agent.requests == []
        for call in (task.wait, task.result):
            stop, began = threading.Event(), []

            def stop_soon(detail, began=began, stop=stop):  # a snapshot is in: stop in its pause
                began.append(time.monotonic())
                threading.Timer(0.2, stop.set).start()

            said = f"task {task.id}: the wait was stopped before the task ended"
            with pytest.raises(TaskTimeoutError, match=said) as info:
                call(timeout=None, stop=stop, on_progress=stop_soon)  # only the stop ends it
            assert len(began) == 1 and time.monotonic() - began[0] < 2  # in its 5 s pause
            assert info.value.detail is not None and not info.value.detail.is_finished
            assert "keeps running" in str(info.value)
        stop.set()  # set already: no poll at all
        agent.clear_requests()
        with pytest.raises(TaskTimeoutError):
            task.wait(stop=stop)
        assert agent.requests == []
        # Stopped while polls fail: the error says so (as a deadline's does), and its
        # snapshot is the last this wait saw, whatever another thread did to task.snapshot.
        stop = threading.Event()
        agent.fail_next(1000, status=503)

        class FailedPoll(logging.Handler):  # the stop comes once a poll failed, in its pause
            def emit(self, record):
                if "poll(s) failed" in record.getMessage():
                    threading.Timer(0.2, stop.set).start()

        seen = task.snapshot
        task.snapshot = None  # as another thread's retry() leaves it
        logger, failed = logging.getLogger("obshell_sdk"), FailedPoll()
        level = logger.level  # the failed poll is logged at INFO: let it through, whatever set
        logger.setLevel(min(level or logging.INFO, logging.INFO))
        logger.addHandler(failed)
        try:
            with pytest.raises(TaskTimeoutError) as info:
                client.task(task.id, exists=True).wait(timeout=None, stop=stop)
        finally:
            logger.removeHandler(failed)
            logger.setLevel(level)
        assert info.value.last_error is not None and "the last polls failed" in str(info.value)
        agent.clear_faults()
        other = client.task(task.id, exists=True)
        other.refresh()
        stop = threading.Event()

        def meddle(detail):
            other.snapshot = None  # another thread's retry() clears it, mid-wait
            stop.set()

        with pytest.raises(TaskTimeoutError) as info:
            other.wait(timeout=None, stop=stop, on_progress=meddle)
        assert info.value.detail is not None and info.value.detail.id == seen.id
        assert "keeps running" in str(info.value)


def test_a_lost_reply_s_cause_keeps_no_signed_header():
    """The requests exception chained as __cause__ keeps its request: an error reporter
    walking it (error.__cause__.request.headers) finds the signed header masked."""
    from obshell_sdk import ConnectionLostError

    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        client.unfinished_dags()  # the dialect and key are known: the next GET is signed
        agent.reset_next(1, path_prefix="/api/v1/task/dag/11")
        with pytest.raises(ConnectionLostError) as info:
            client.get_dag("11")
        sent = agent.requests_to("/api/v1/task/dag/11", "GET")[-1].headers["X-OCS-Header"]
        cause = info.value.__cause__
        assert cause is not None and cause.request is not None
        assert cause.request.headers["X-OCS-Header"] == "***"
        seen, error = [], info.value
        while error is not None:  # the whole chain, as a reporter prints it
            seen.append(repr(error) + repr(getattr(error, "__dict__", "")))
            error = error.__cause__ or error.__context__
        assert sent not in "".join(seen)


def test_stop_cuts_a_poll_under_way_to_an_agent_that_hangs():
    """A service shutting down sets the stop while a poll hangs: the wait ends now, not after
    the client's read timeout (20 s here), and the cut poll is not its last failed poll."""
    import threading
    import time

    from obshell_sdk import TaskTimeoutError

    with FakeAgent(password=PASSWORD, stages_per_poll=0) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD),
                          timeout=(5, 20)) as client:
        task = client.upgrade_agent("4.3.1.0", "101000012025010101.el7")
        for follow in (lambda stop: task.wait(timeout=60, stop=stop),
                       lambda stop: list(task.snapshots(timeout=60, stop=stop))):
            agent.clear_requests()
            agent.hang_next(1, seconds=30)
            stop = threading.Event()

            def stop_once_polled(stop: threading.Event = stop) -> None:
                give_up = time.monotonic() + 30
                while not agent.requests_to(f"/api/v1/task/dag/{task.id}", "GET") \
                        and time.monotonic() < give_up:
                    time.sleep(0.01)
                stop.set()

            threading.Thread(target=stop_once_polled, daemon=True).start()
            began = time.monotonic()
            try:
                follow(stop)
            except TaskTimeoutError as exc:
                assert "the wait was stopped" in str(exc) and exc.__cause__ is None
                assert "the call's" not in str(exc) and "timed out" not in str(exc), str(exc)
            assert time.monotonic() - began < 3
            assert len(agent.requests_to(f"/api/v1/task/dag/{task.id}", "GET")) == 1
        assert client.get_dag(task.id).id == task.id  # the client goes on working


def test_a_failed_task_is_not_cancelled_and_nothing_is_sent():
    """obshell's getNodeCanCancel refuses CANCEL for a FAILED DAG (400 CancelFinishedDag):
    ``DagTask.cancel()`` refuses it before sending, as the other operators do."""
    from obshell_sdk import TaskStateError

    with FakeAgent(password=PASSWORD, fail_stage=2) as agent, client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        with pytest.raises(TaskFailedError):
            task.result(timeout=30, poll_interval=0.01)
        agent.clear_requests()
        with pytest.raises(TaskStateError) as info:
            task.cancel()
        assert "FAILED" in str(info.value)
        assert [r for r in agent.requests if r.method == "POST"] == []
        assert agent.dag(task.id).operator == "RUN"


def test_a_cancelled_upgrade_keeps_the_clusters_lock_until_rolled_back():
    """obshell ends a cancelled DAG through FinishDagAsFailed, which frees the lock only for
    DAGs made with FAILURE_EXIT_MAINTENANCE; an upgrade is not: it stays unfinished. Its
    Restart obshell step cannot pass, so it is not skipped; rolled back, the lock is free."""
    with FakeAgent(password=PASSWORD, stage_seconds=60) as agent, client_for(agent) as client:
        check = client.check_agent_upgrade(VERSION, RELEASE)
        with pytest.raises(TaskCancelledError) as lock_free:  # a pre-check holds no lock
            check.cancel().result(timeout=30, poll_interval=0.01)
        assert str(lock_free.value).endswith("was cancelled")
        task = client.upgrade_agent(VERSION, RELEASE)
        with pytest.raises(TaskCancelledError, match=r"was cancelled; it holds the cluster's "
                           r"lock, as a failed task does, until it is retried \(or rolled back"):
            task.cancel().result(timeout=30, poll_interval=0.01)
        assert [d.id for d in client.unfinished_dags()] == [task.id]
        with pytest.raises(UnderMaintenanceError) as held:
            client.upgrade_agent(VERSION, RELEASE)
        # the hint names the cancelled case, as the command line's (one text) does
        assert str(held.value).endswith(
            "if it failed (or was cancelled), client.task(dag.id).retry(), .rollback() or "
            ".skip(), as its steps allow")
        with pytest.raises(BadRequestError, match="Restart obshell"):
            task.skip()
        with pytest.raises(TaskRolledBackError):
            task.rollback().result(timeout=30, poll_interval=0.01)
        assert not client.unfinished_dags()
        client.upgrade_agent(VERSION, RELEASE)  # the lock is free again


def test_an_agent_before_4_3_sends_no_maintenance_type_its_check_holds_no_lock_by_name():
    """A DAG of obshell before 4.3.0 has no ``maintenance_type``: a pre-check is known by its
    name and said to hold no lock; an upgrade, failed or cancelled, still holds it."""
    with FakeAgent(password=PASSWORD, fail_stage=2, version="4.2.3.0") as agent, \
            client_for(agent) as client:
        check = client.check_agent_upgrade(VERSION, RELEASE)
        with pytest.raises(TaskFailedError) as failed:
            check.result(timeout=30, poll_interval=0.01)
        assert check.snapshot.maintenance_type is None
        assert "locked" not in str(failed.value), str(failed.value)
        task = client.upgrade_agent(VERSION, RELEASE)
        with pytest.raises(TaskFailedError, match="The cluster stays locked until the task "
                           "is retried"):
            task.result(timeout=30, poll_interval=0.01)
        with pytest.raises(TaskRolledBackError):  # the lock is free again
            task.rollback().result(timeout=30, poll_interval=0.01)
        agent.set_dag_faults()
        agent.set_dag_progression(stage_seconds=60)
        with pytest.raises(TaskCancelledError) as lock_free:
            client.check_agent_upgrade(VERSION, RELEASE).cancel().result(
                timeout=30, poll_interval=0.01)
        assert str(lock_free.value).endswith("was cancelled")
        with pytest.raises(TaskCancelledError, match="was cancelled; it holds the cluster's"):
            client.upgrade_agent(VERSION, RELEASE).cancel().result(timeout=30,
                                                                   poll_interval=0.01)


def test_every_text_rendering_of_a_cancelled_task_says_cancelled(capsys):
    """A cancelled DAG is FAILED with operator CANCEL; result() raises TaskCancelledError, and
    the repr, the CLI's progress line and view, and a rollout's table say cancelled too."""
    from obshell_sdk._render import dag_text, progress_line
    from obshell_sdk._render_live import RolloutBoard

    with FakeAgent(password=PASSWORD) as agent, client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        task.refresh()
        task.refresh()  # a poll-driven DAG: stage 2 runs
        with pytest.raises(TaskCancelledError, match="was cancelled"):
            task.cancel().result(timeout=30, poll_interval=0.01)
    detail = task.snapshot
    assert repr(task).endswith(" FAILED CANCEL (cancelled) 2/9>")
    assert progress_line(detail) == f"task {task.id} stage 2/9 FAILED (cancelled)"
    assert "  2. FAILED   Download all required packages (cancelled)\n" in dag_text(detail)
    board = RolloutBoard(["t"], progress=True)  # not a terminal here: a line per change
    board.update("t", "upgrade", detail)
    assert "t upgrade 2/9 FAILED (cancelled)\n" in capsys.readouterr().err
