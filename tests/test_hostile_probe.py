"""An adversarial review's probes: hostile agents the other hostile tests do not cover.

Each probe runs on real sockets on 127.0.0.1 (a :class:`RawServer`, a :class:`FakeAgent`, or
a listener whose accept queue is full) and cleans up everything it starts. Sections 1 to 8
each pinned a break of a promise the SDK makes, found by the review and fixed since (a
section's comment says how); the section "Held" holds what held from the start.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from datetime import datetime, timezone

import pytest
from conftest import PASSWORD
from rawserver import RawReply, RawServer, dag_json, envelope, http_reply, json_reply

from obshell_sdk import (
    AuthError,
    ConnectError,
    ConnectionLostError,
    DecodeError,
    DecryptFailedError,
    InvalidArgumentError,
    ObshellClient,
    ObshellError,
    OutcomeUnknownError,
    PasswordAuth,
    ReadTimeoutError,
    ServerError,
    TaskFailedError,
    TaskTimeoutError,
    TaskUnreachableError,
)
from obshell_sdk.testing import FakeAgent

VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"
UPGRADE = "/api/v1/agent/upgrade"
CHECK = "/api/v1/agent/upgrade/check"
CHECK_NAME = f"Upgrade check obshell {VERSION}-{RELEASE}"
UPGRADE_NAME = f"Upgrade obshell {VERSION}-{RELEASE}"
SLACK = 1.0
INFO = envelope({"identity": "SINGLE", "version": "4.3.0.0", "ip": "127.0.0.1", "port": 2886,
                 "supportedAuth": ["v2"]})
#: A reply cut after its status line: the POST went out, its reply was lost.
CUT = RawReply(200, wire=[b"HTTP/1.1 200 OK\r\n"], close=True)


def _client(server, **kwargs):
    kwargs.setdefault("timeout", (2, 5))
    return ObshellClient(server.host, server.port, auth=PasswordAuth(PASSWORD), **kwargs)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# =============================================================================================
# Breaks
# =============================================================================================

# -- 1. an operator whose reply was lost leaves the task's old ending in place ----------------
# (fixed: DagTask._operate forgets the snapshot once the agent may have applied the operator)


def test_a_retry_whose_reply_was_lost_is_followed_not_reported_failed():
    with FakeAgent(password=PASSWORD, fail_stage=2, stages_per_poll=9) as agent, \
            _client(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        with pytest.raises(TaskFailedError):
            task.result(timeout=10, poll_interval=0.01)
        agent.drop_reply_after_next(1, path_prefix="/api/v1/task/dag/", method="POST")
        with pytest.raises(ConnectionLostError):  # "the request may have gone out"
            task.retry()
        assert client.get_dag(task.id).state.value == "SUCCEED"  # the agent did retry it
        agent.clear_requests()
        try:
            detail = task.result(timeout=10, poll_interval=0.01)
        except TaskFailedError:
            polls = agent.requests_to(f"/api/v1/task/dag/{task.id}", "GET")
            pytest.fail(f"result() reported the pre-retry failure after {len(polls)} polls")
        assert detail.state.value == "SUCCEED"


def test_an_operator_answered_with_a_500_says_it_may_have_been_applied_as_a_lost_reply_does():
    """obshell's 500 to an operator's POST may come after the agent applied it: its error ends
    as a lost reply's does (applied maybe, not sent again, where to look), through
    ``DagTask.retry()`` and ``operate_dag`` alike; each POST was sent once."""
    with FakeAgent(password=PASSWORD, fail_stage=2, stages_per_poll=9) as agent, \
            _client(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        with pytest.raises(TaskFailedError):
            task.result(timeout=10, poll_interval=0.01)
        where = f"/api/v1/task/dag/{task.id}"
        said = []
        for send in (task.retry, lambda: client.operate_dag(task.id, "RETRY")):
            agent.fail_next(status=500, err_code="Common.Unexpected", path_prefix=where,
                            method="POST")
            with pytest.raises(ServerError) as info:
                send()
            said.append(str(info.value))
        assert task.snapshot is None  # read again: the agent may have applied it
        agent.drop_reply_after_next(1, path_prefix=where, method="POST")
        with pytest.raises(ConnectionLostError) as lost:
            task.retry()
        assert len(agent.requests_to(where, "POST")) == 3
    tail = (". The agent may have applied retry; it was not sent again (that could apply it "
            "twice). See where the task stands before trying again: "
            f"client.task('{task.id}').refresh(), or follow it: client.task('{task.id}').wait()")
    for text in (*said, str(lost.value)):
        assert text.endswith(tail) and text.count(tail) == 1, text


def test_a_retry_interrupted_by_ctrl_c_after_the_agent_applied_it_is_not_reported_failed(raw):
    """Ctrl-C lands while the POST's reply is awaited (the agent applied it already)."""
    server, agent = raw
    applied = threading.Event()
    main = threading.main_thread().ident
    state = {"value": "FAILED"}

    def operate(request):
        applied.set()
        state["value"] = "SUCCEED"  # the retried task ran on and succeeded
        signal.pthread_kill(main, signal.SIGINT)  # Ctrl-C while the client awaits the reply
        return RawReply(200, wire=[5.0], close=True)

    agent.route("GET", "/api/v1/task/dag/11", lambda request: json_reply(
        dag_json("11", stage=9 if state["value"] == "SUCCEED" else 3, state=state["value"])))
    agent.route("POST", "/api/v1/task/dag/11", operate)
    with _client(server) as client:
        task = client.task("11")
        task.refresh()
        with pytest.raises(KeyboardInterrupt):
            task.retry()
        assert applied.is_set()
        try:
            detail = task.result(timeout=5, poll_interval=0.01)
        except TaskFailedError:
            pytest.fail("result() reported the pre-retry failure without polling")
        assert detail.state.value == "SUCCEED"


# -- 2. a create reply that names only an id is followed whatever task that id is -------------
# (fixed: the created DagTask knows the name its call gives, and refuses a task of another)


def test_an_id_only_create_reply_naming_an_old_task_is_not_reported_as_this_one(raw):
    server, agent = raw
    old = dag_json("1500", name="Upgrade check obshell 4.2.9.9-1.el7", stage=5, max_stage=5,
                   state="SUCCEED")
    agent.route("POST", CHECK, lambda request: json_reply({"id": "1500"}))
    agent.route("GET", "/api/v1/task/dag/1500", lambda request: json_reply(old))
    with _client(server) as client:
        try:
            detail = client.check_agent_upgrade(VERSION, RELEASE).result(timeout=5)
        except ObshellError:
            return  # refused, looked up, or an unknown outcome: all fine
    pytest.fail(f"the pre-check of {VERSION} 'passed' on task {detail.id} {detail.name!r}")


# -- 3. a lookup judged on an agent clock that jumped takes an old task -----------------------
# (fixed: the lookup judges a task by the agent's clock only while that clock holds)


def test_a_lookup_never_takes_an_earlier_run_when_the_agents_clock_jumped(raw, short_recovery):
    server, agent = raw
    old = dag_json("1500", name=CHECK_NAME, stage=5, max_stage=5, state="SUCCEED")
    old["start_time"], old["end_time"] = _iso(time.time() - 1200), _iso(time.time() - 1140)
    agent.route("POST", CHECK, lambda request: CUT)  # lost; the agent made nothing
    agent.route("GET", "/api/v1/time", lambda request: json_reply(_iso(time.time() - 8 * 3600)))
    agent.route("GET", "/api/v1/task/dags/ob", lambda request: json_reply({"contents": [old]}))
    with _client(server) as client:
        try:
            task = client.check_agent_upgrade(VERSION, RELEASE)
        except OutcomeUnknownError:
            return
    pytest.fail(f"the lost pre-check was taken for task {task.id}, which ended 19 minutes "
                f"before the call: {task!r}")


# -- 4 and 5. an interim 1xx reply is taken for the reply ----------------------------------
# (fixed: the SDK's connections read past interim replies to the final one)


def test_after_an_interim_reply_no_call_reads_an_earlier_calls_reply(raw):
    """The agent sends ``102 Processing`` at once and its final reply when done; meanwhile
    the client has sent its next request on the same connection (HTTP/1.1 answers in
    order), as obshell behind a proxy that passes interim replies would."""
    server, agent = raw
    failed = http_reply(200, envelope(dag_json("11", stage=3, state="FAILED")),
                        {"Content-Type": "application/json"})
    refused = http_reply(400, envelope(status=400, error={
        "errCode": "Task.Dag.Operator.RetryNotAllowed", "message": "not allowed"}),
        {"Content-Type": "application/json"})
    held = []  # the connections whose GET's final reply is still to come

    def get(request):
        held.append(request.peer)
        return RawReply(200, wire=[b"HTTP/1.1 102 Processing\r\n\r\n"])

    def post(request):  # on that connection, the GET's final reply comes first, then its own
        return RawReply(200, wire=[failed, refused] if request.peer in held else [refused])

    agent.route("GET", "/api/v1/task/dag/11", get)
    agent.route("POST", "/api/v1/task/dag/11", post)
    with _client(server, timeout=(1, 2)) as client:
        with pytest.raises(ObshellError):
            client.get_dag("11")
        with pytest.raises(ObshellError):  # refused (or at least not known to be applied)
            client.operate_dag("11", "RETRY")


def test_an_interim_reply_before_a_poll_s_reply_does_not_end_the_wait(raw):
    server, agent = raw
    done = http_reply(200, envelope(dag_json("11", stage=9, state="SUCCEED")),
                      {"Content-Type": "application/json"})
    agent.route("GET", "/api/v1/task/dag/11", lambda request: RawReply(200, wire=[
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n" + done]))
    with _client(server) as client:
        detail = client.task("11", exists=True).wait(timeout=5, poll_interval=0.05)
    assert detail.state.value == "SUCCEED"


# -- 6. a hung agent behind several addresses stretches every deadline ------------------------
# (fixed: each address is tried only for what is left of the call)


@pytest.fixture
def hung_host(monkeypatch):
    """``hung.test``: six addresses, each a listener whose accept queue is full (the kernel
    drops further SYNs, so a connect hangs until its timeout), as a hung agent's host is."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    time.sleep(0.2)
    probe = socket.socket()
    probe.settimeout(0.5)
    try:
        probe.connect(("127.0.0.1", port))
        hangs = False
    except (socket.timeout, TimeoutError):
        hangs = True
    except OSError:
        hangs = False
    finally:
        probe.close()
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == "hung.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))] * 6
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    try:
        if not hangs:
            pytest.skip("this kernel does not drop SYNs to a full accept queue")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_a_hung_host_with_several_addresses_cannot_stretch_a_call(hung_host):
    with ObshellClient("hung.test", hung_host, auth=None, timeout=(1, 2)) as client:
        started = time.monotonic()
        with pytest.raises(ConnectError):
            client.info()
        elapsed = time.monotonic() - started
    assert elapsed < 2 + SLACK, f"a 2 s call took {elapsed:.1f} s"


def test_a_hung_host_with_several_addresses_cannot_stretch_a_wait(hung_host):
    with ObshellClient("hung.test", hung_host, auth=PasswordAuth(PASSWORD),
                       timeout=(5, 5)) as client:
        task = client.task("11", exists=True)
        started = time.monotonic()
        with pytest.raises((TaskTimeoutError, TaskUnreachableError)):
            task.wait(timeout=1.5)
        elapsed = time.monotonic() - started
    assert elapsed < 1.5 + SLACK, f"wait(timeout=1.5) took {elapsed:.1f} s"


# -- 7. the lookup's history read is not cut to its minute --------------------------------
# (fixed: the history read is cut to what is left of the lookup)


def test_a_hung_history_cannot_stretch_a_lost_create_s_lookup(raw, short_recovery):
    server, agent = raw
    agent.route("POST", CHECK, lambda request: CUT)
    agent.route("GET", "/api/v1/task/dags/ob", lambda request: RawReply(200, wire=[20.0],
                                                                        close=True))
    with _client(server, timeout=(2, 8)) as client:
        client.unfinished_dags()  # dialect and key known: what follows is the call alone
        started = time.monotonic()
        with pytest.raises(OutcomeUnknownError):
            client.check_agent_upgrade(VERSION, RELEASE)
        elapsed = time.monotonic() - started
    # the listing before the POST and the POST are instant: the lookup's 1 s, and slack
    assert elapsed < 1.0 + 2 * SLACK, f"a 1 s lookup took {elapsed:.1f} s"


# -- 8. line separators from the agent start new lines --------------------------------------
# (fixed: U+2028 and U+2029 are escaped like control characters)


def test_unicode_line_separators_cannot_forge_a_line():
    error = ServerError(status=500, err_code="Common.Unexpected", code=0, trace_id="t",
                        message="disk full\u2028obshell-sdk: task 11 succeeded\u2029",
                        method="GET", path="/p")
    assert str(error).splitlines() == [str(error)], str(error).splitlines()
    assert "full\\u2028obshell-sdk: task 11 succeeded\\u2029, trace" in str(error)


# =============================================================================================
# Held
# =============================================================================================


def _hundreds():
    ends = time.monotonic() + 8
    while time.monotonic() < ends:
        yield b"HTTP/1.1 100 Continue\r\n\r\n" * 50
        yield 0.001


def _endless_chunks():
    yield b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    ends = time.monotonic() + 8
    while time.monotonic() < ends:
        yield b"1\r\n \r\n"
        yield 0.01


def _endless_trailers():
    yield (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(INFO)
           + INFO + b"\r\n0\r\n")
    ends = time.monotonic() + 8
    while time.monotonic() < ends:
        yield b"X-Trailer: " + b"a" * 1000 + b"\r\n"
        yield 0.001


def _huge_chunk():
    yield b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n"
    ends = time.monotonic() + 8
    while time.monotonic() < ends:
        yield b"a" * 65536


@pytest.mark.parametrize(("wire", "raised"), [
    (_hundreds, ReadTimeoutError),  # 100 Continue without end, fast
    (_endless_chunks, ReadTimeoutError),  # a chunked body that never ends
    (_endless_trailers, ReadTimeoutError),  # the last chunk, then trailers without end
    (_huge_chunk, DecodeError),  # a chunk of 2**64 bytes: refused at the cap
    (lambda: iter([b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n"]),
     ConnectionLostError),  # a header line of 70 kB
    (lambda: iter([b"HTTP/1.1 200 OK\r\n" + b"X-H: a\r\n" * 101 + b"\r\n"]),
     ConnectionLostError),  # 101 headers
], ids=["100-flood", "endless-chunks", "endless-trailers", "huge-chunk", "huge-header",
        "many-headers"])
def test_held_endless_or_huge_framing_is_bounded(wire, raised):
    with RawServer() as server:
        server.handler = lambda request: RawReply(200, wire=wire(), close=True)
        with ObshellClient(server.host, server.port, auth=None, timeout=(1, 2)) as client:
            started = time.monotonic()
            with pytest.raises(raised):
                client.info()
            assert time.monotonic() - started < 2 + SLACK


@pytest.mark.parametrize("name", [
    UPGRADE_NAME + " ",  # a trailing space
    UPGRADE_NAME.replace("o", "\u043e", 1),  # a Cyrillic o
    UPGRADE_NAME.replace("1.0", "1.0\u200b", 1),  # a zero-width space
])
def test_held_a_name_that_only_looks_the_same_is_another_dag(raw, name):
    server, agent = raw
    polls = []

    def dag_11(request):
        polls.append(request)
        if len(polls) == 1:
            return json_reply(dag_json("11", name=UPGRADE_NAME, stage=2))
        return json_reply(dag_json("11", name=name, stage=9, state="SUCCEED"))

    agent.route("GET", "/api/v1/task/dag/11", dag_11)
    with _client(server) as client:
        task = client.task("11")
        with pytest.raises(DecodeError) as info:
            task.result(timeout=5, poll_interval=0.01)
        assert info.value.where == "data.name" and not task.done()


def test_held_a_state_going_backwards_after_the_end_is_never_read(raw):
    server, agent = raw
    polls = []

    def dag_11(request):
        polls.append(request)
        state = "SUCCEED" if len(polls) == 2 else "RUNNING"
        return json_reply(dag_json("11", stage=9 if state == "SUCCEED" else 5, state=state))

    agent.route("GET", "/api/v1/task/dag/11", dag_11)
    with _client(server) as client:
        task = client.task("11")
        assert task.result(timeout=5, poll_interval=0.01).state.value == "SUCCEED"
        assert task.refresh().state.value == "SUCCEED" and task.done()
    assert len(polls) == 2


def test_held_an_info_that_offers_a_dialect_and_refuses_it_sends_the_post_at_most_twice(raw):
    """Every signed request is refused as signed with the wrong password kind: the flow asks
    /info again once, re-signs once, then gives up; the agent ran nothing either time."""
    server, agent = raw
    refusal = RawReply(401, envelope(status=401, error={
        "errCode": "Security.Authentication.WithAgentPassword", "code": 10008, "message": "x"}))
    agent.route("POST", UPGRADE, lambda request: refusal)
    with _client(server) as client, pytest.raises(AuthError):
        client.upgrade_agent(VERSION, RELEASE)
    assert [r.method for r in server.requests].count("POST") == 2  # refused (401) both times
    assert [r.target for r in server.requests].count("/api/v1/info") == 2


def test_held_a_key_that_changes_every_call_is_fetched_once_again_then_refused(raw):
    """Each /secret gives a new key and the POST is refused as undecryptable each time: the
    key is fetched once more and the POST re-signed once (a 401 before anything ran)."""
    from rawserver import _KEY, agent_public_key

    server, agent = raw
    agent_public_key()
    refusal = RawReply(401, envelope(status=401, error={
        "errCode": "Security.Authentication.Header.DecryptFailed", "code": 1, "message": "x"}))

    def secret(request):
        _KEY.clear()  # a new key every time
        return json_reply({"ip": "127.0.0.1", "port": 2886, "public_key": agent_public_key()})

    agent.route("GET", "/api/v1/secret", secret)
    agent.route("POST", UPGRADE, lambda request: refusal)  # the listing before it is answered
    with _client(server) as client, pytest.raises(DecryptFailedError):
        client.upgrade_agent(VERSION, RELEASE)
    targets = [r.target for r in server.requests]
    assert targets.count("/api/v1/secret") == 2  # the key fetched once again, not in a loop
    assert [r.method for r in server.requests].count("POST") == 2  # refused both times (401)


def test_held_waiting_on_a_task_of_a_closed_client_ends_at_once_and_sends_nothing():
    with FakeAgent(password=PASSWORD) as agent:
        with _client(agent) as client:
            task = client.upgrade_agent(VERSION, RELEASE)
        agent.clear_requests()
        started = time.monotonic()
        with pytest.raises(InvalidArgumentError, match="closed"):
            task.wait(timeout=30)
        assert time.monotonic() - started < SLACK and agent.requests == []
        with pytest.raises(InvalidArgumentError, match="closed"):
            task.cancel()
