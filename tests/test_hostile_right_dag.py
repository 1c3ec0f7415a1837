"""Hostile agents, class 2: a reply is about the DAG asked for, and a fork shares no socket.

An agent (or a proxy that mixes up connections) answering ``get_dag("11")`` with DAG "12"
is refused with ``DecodeError`` everywhere a DAG is read: ``get_dag``, every poll of
``wait()`` (which must never end "succeeded" because another DAG did) and the refresh after
an operator. A client used in a forked child never shares the parent's pooled connections.
"""

from __future__ import annotations

import multiprocessing
import threading

import pytest
import requests
from rawserver import dag_json, json_reply

from obshell_sdk import (
    DagDetail,
    DagTask,
    DecodeError,
    InvalidArgumentError,
    ObshellClient,
    PasswordAuth,
)

DONE_12 = dag_json("12", stage=9, state="SUCCEED")


def _client(server, **kwargs):
    return ObshellClient(server.host, server.port, auth=PasswordAuth("pw"), timeout=(2, 5),
                         **kwargs)


def test_get_dag_refuses_a_reply_about_another_dag(raw):
    server, agent = raw
    agent.route("GET", "/api/v1/task/dag/11", lambda request: json_reply(DONE_12))
    with _client(server) as client, pytest.raises(DecodeError) as info:
        client.get_dag("11")
    assert "12" in str(info.value) and info.value.task_id == "11"  # as a TaskError's


@pytest.mark.parametrize("good_polls", [0, 1, 3])
def test_wait_never_ends_on_another_dags_success(raw, good_polls):
    server, agent = raw
    polls = []

    def dag_11(request):
        polls.append(request)
        if len(polls) <= good_polls:
            return json_reply(dag_json("11", stage=len(polls)))
        return json_reply(DONE_12)

    agent.route("GET", "/api/v1/task/dag/11", dag_11)
    with _client(server) as client:
        task = client.task("11")
        with pytest.raises(DecodeError):
            task.wait(timeout=5, poll_interval=0.01)
        assert task.snapshot is None or task.snapshot.id == "11"
        assert not task.done()
        with pytest.raises(DecodeError):
            task.result(timeout=5, poll_interval=0.01)
    assert len(polls) == good_polls + 2


def test_refresh_after_an_operator_refuses_another_dag(raw):
    server, agent = raw
    gets = []

    def dag_11(request):
        gets.append(request)
        if len(gets) == 1:
            return json_reply(dag_json("11", stage=3, state="FAILED"))
        return json_reply(dag_json("12", stage=4))

    agent.route("GET", "/api/v1/task/dag/11", dag_11)
    agent.route("POST", "/api/v1/task/dag/11", lambda request: json_reply())
    with _client(server) as client:
        task = client.task("11")
        with pytest.raises(DecodeError):
            task.retry()
        assert task.snapshot is None or task.snapshot.id == "11"
    assert [r.method for r in server.requests if r.target.startswith("/api/v1/task/")] == [
        "GET", "POST", "GET"]


@pytest.mark.parametrize("created", [True, False])
def test_a_dag_id_reused_under_another_name_is_another_dag(raw, created):
    """The agent restarts reinstalled (a new task table): id 11 now names another DAG, a
    pre-check that succeeded. That is not our upgrade ending: never a success, and the wait
    says which key of the reply gave it away."""
    server, agent = raw
    polls = []
    ours = dag_json("11", stage=7)
    other = dag_json("11", name="Upgrade check obshell 4.3.2.0-1.el7", stage=5, max_stage=5,
                     state="SUCCEED")

    def dag_11(request):
        polls.append(request)
        return json_reply(ours if len(polls) == 1 else other)

    agent.route("GET", "/api/v1/task/dag/11", dag_11)
    with _client(server) as client:
        task = DagTask(client, DagDetail.from_json(dag_json("11", stage=1))) if created \
            else client.task("11")
        with pytest.raises(DecodeError) as info:
            task.result(timeout=5, poll_interval=0.01)
        assert info.value.where == "data.name" and info.value.task_id == "11"
        assert "Upgrade check obshell" in str(info.value)
        assert not task.done() and task.name == ours["name"]


def test_a_reinstalled_agent_s_other_dag_under_the_id_names_the_task_followed():
    """A fake agent reinstalled at the same address numbers its DAGs afresh: task 11 is now
    another upgrade. The poll's error carries the task followed, as task errors do, so the
    CLI's ``--json`` error document names it too."""
    from obshell_sdk._cli_errors import error_fields
    from obshell_sdk.testing import FakeAgent

    release = "101000012025010101.el7"
    with FakeAgent(password="pw") as first:
        client = _client(first)
        task = client.upgrade_agent("4.3.1.0", release)
    with client, FakeAgent(password="pw", port=first.port) as reinstalled:
        assert reinstalled.create_upgrade_dag("4.3.2.0", release) == task.id
        with pytest.raises(DecodeError) as info:
            task.wait(timeout=30, poll_interval=0.01)
    assert info.value.where == "data.name" and info.value.task_id == task.id
    assert str(info.value).startswith(f"GET /api/v1/task/dag/{task.id} on {client.agent}: "
                                      f"data.name: task {task.id} was 'Upgrade obshell 4.3.1.0-")
    assert error_fields(info.value) == {"type": "DecodeError", "task_id": task.id,
                                        "agent": client.agent}


# -- a create reply that holds only an id -----------------------------------------------------

CHECK = "/api/v1/agent/upgrade/check"
CHECK_NAME = "Upgrade check obshell 4.3.1.0-101000012025010101.el7"


def _id_only_check(agent, dag):
    """The pre-check's POST answered with ``{"id": "1500"}``; task 1500 is ``dag(poll)``."""
    polls = []
    agent.route("POST", CHECK, lambda request: json_reply({"id": "1500"}))
    agent.route("GET", "/api/v1/task/dag/1500",
                lambda request: polls.append(request) or json_reply(dag(len(polls))))
    return polls


def test_an_id_only_create_reply_is_followed_when_its_task_has_the_calls_name(raw):
    """No name in the reply: the task is the call's once a read shows the name it gives."""
    server, agent = raw
    _id_only_check(agent, lambda poll: dag_json(
        "1500", name=CHECK_NAME, stage=min(poll, 5), max_stage=5,
        state="SUCCEED" if poll >= 5 else "RUNNING"))
    with _client(server) as client:
        task = client.check_agent_upgrade("4.3.1.0", "101000012025010101.el7")
        assert task.id == "1500" and task.snapshot is None
        assert task.result(timeout=5, poll_interval=0.01).name == CHECK_NAME


def test_an_id_only_create_reply_naming_another_task_says_what_to_look_for(raw):
    """Task 1500 is another version's pre-check, long SUCCEED: never this one's success. The
    call was not sent again, and the error says so and what to look for before sending it."""
    server, agent = raw
    polls = _id_only_check(agent, lambda poll: dag_json(
        "1500", name="Upgrade check obshell 4.2.9.9-1.el7", stage=5, max_stage=5,
        state="SUCCEED"))
    with _client(server) as client:
        task = client.check_agent_upgrade("4.3.1.0", "101000012025010101.el7")
        with pytest.raises(DecodeError) as info:
            task.result(timeout=5, poll_interval=0.01)
        assert not task.done() and task.snapshot is None
    assert len(polls) == 1 and info.value.where == "data.name" and info.value.task_id == "1500"
    assert (f"task 1500 is 'Upgrade check obshell 4.2.9.9-1.el7', not the {CHECK_NAME!r} its "
            "creating call makes") in str(info.value)
    assert "not sent again" in str(info.value) and "client.unfinished_dags()" in str(info.value)
    assert "history, client.cluster_dags(), or its dashboard)" in str(info.value)
    assert len([r for r in server.requests if r.method == "POST"]) == 1


def test_a_task_given_a_name_unlike_its_snapshot_s_is_refused(raw):
    server, _agent = raw
    with _client(server) as client, pytest.raises(InvalidArgumentError) as info:
        DagTask(client, DagDetail.from_json(dag_json("11")), name=CHECK_NAME)
    assert info.value.argument == "name" and "task 11 is 'Upgrade obshell" in str(info.value)
    assert server.requests == []


# -- fork -----------------------------------------------------------------------------------

POLLS = 40


def _poll(client, dag_id):
    """Poll ``dag_id`` POLLS times; what came back (ids, or error class names)."""
    seen = []
    for _ in range(POLLS):
        try:
            seen.append(client.get_dag(dag_id).id)
        except Exception as exc:  # report, never crash: the other side is waiting
            seen.append(type(exc).__name__)
    return seen


def _child_polls(client, conn):
    conn.send(_poll(client, "12"))
    conn.close()


def _child_calls(client, conn):
    try:
        client.info()
        conn.send("succeeded")
    except Exception as exc:
        conn.send(type(exc).__name__)
    conn.close()


def _fork_run(target, client):
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=target, args=(client, sender), daemon=True)
    return ctx, child, receiver, sender


def test_forked_child_never_shares_the_parents_connections(raw):
    server, agent = raw
    for dag_id in ("11", "12"):
        agent.route("GET", f"/api/v1/task/dag/{dag_id}",
                    lambda request, d=dag_id: json_reply(dag_json(d, stage=2)))
    with _client(server) as client:
        assert client.get_dag("11").id == "11"  # the pool now holds a live connection
        _, child, receiver, sender = _fork_run(_child_polls, client)
        child.start()
        sender.close()
        try:
            parent_seen = _poll(client, "11")
            assert receiver.poll(15), "the child did not report"
            child_seen = receiver.recv()
        finally:
            child.join(10)
            if child.is_alive():
                child.kill()
                child.join(5)
            receiver.close()
    assert parent_seen == ["11"] * POLLS
    assert child_seen == ["12"] * POLLS
    assert child.exitcode == 0
    by_connection: dict[tuple[str, int], set[str]] = {}
    for request in server.requests:
        if request.target.startswith("/api/v1/task/dag/"):
            by_connection.setdefault(request.peer, set()).add(request.target.split("?")[0])
    shared = [peer for peer, paths in by_connection.items() if len(paths) > 1]
    assert not shared, f"parent and child sent on the same connection: {by_connection}"


def test_forked_child_refuses_a_given_session(raw):
    server, _ = raw
    with requests.Session() as session, _client(server, session=session) as client:
        assert client.info().identity == "CLUSTER AGENT"
        _, child, receiver, sender = _fork_run(_child_calls, client)
        child.start()
        sender.close()
        try:
            assert receiver.poll(15), "the child did not report"
            outcome = receiver.recv()
        finally:
            child.join(10)
            receiver.close()
        assert outcome == InvalidArgumentError.__name__
        assert client.info().identity == "CLUSTER AGENT"  # the parent's session still works


def test_os_fork_child_gets_its_own_pool(raw):
    """The same with a bare os.fork (no multiprocessing), the child leaving with os._exit."""
    import os

    server, agent = raw
    agent.route("GET", "/api/v1/task/dag/12",
                lambda request: json_reply(dag_json("12", stage=2)))
    with _client(server) as client:
        assert client.info().identity == "CLUSTER AGENT"
        parent_peers = {r.peer for r in server.requests}
        before = len(server.requests)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                os.close(read_end)
                ids = {client.get_dag("12").id for _ in range(5)}
                code = 0 if ids == {"12"} else 2
            finally:
                os.write(write_end, bytes([code]))
                os._exit(code)
        os.close(write_end)
        done = threading.Event()
        status = []

        def reap():
            status.append(os.waitpid(pid, 0)[1])
            done.set()

        threading.Thread(target=reap, daemon=True).start()
        finished = done.wait(15)
        if not finished:
            os.kill(pid, 9)
            done.wait(5)
        report = os.read(read_end, 1)
        os.close(read_end)
        assert finished and report == b"\x00", (report, status)
    child_peers = {r.peer for r in server.requests[before:]}  # the parent sent nothing more
    assert child_peers and not child_peers & parent_peers
