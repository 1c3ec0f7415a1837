"""Faults injected into the fake agent: restarts, resets, 5xx, lost replies, many threads.

Each test records how long the SDK took to get through the fault and how many requests it
sent; `pytest -s tests/test_resilience.py` prints them (the figures go into release notes,
they are not asserted as speeds).
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
from conftest import PASSWORD

import obshell_sdk._lookup
import obshell_sdk._polling
from obshell_sdk import (
    ConnectError,
    DagOutcome,
    ObshellClient,
    OutcomeUnknownError,
    PasswordAuth,
    PollPolicy,
    ReadTimeoutError,
    TaskUnreachableError,
)
from obshell_sdk._polling import FailureStreak, WaitDeadline
from obshell_sdk.testing import FakeAgent

VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"
FAST = PollPolicy(initial=0.02, fraction=0.05, ceiling=0.2, jitter=0.1, failure_budget=30)
FIGURES: list[str] = []


def client_for(agent, policy=FAST):
    return ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD), poll_policy=policy,
                         timeout=(2, 10))


def record(name, started, agent):
    took = time.monotonic() - started
    FIGURES.append(f"{name}: {took:.2f} s, {len(agent.requests)} requests")


@pytest.fixture(scope="module", autouse=True)
def _print_figures():
    yield
    print("\nrecovery figures:\n  " + "\n  ".join(FIGURES))


def test_upgrade_through_restart_with_new_key_and_skewed_clock():
    """The headline: the agent restarts at stage 7 with a new key and a clock an hour ahead."""
    with FakeAgent(password=PASSWORD, stage_seconds=0.05) as agent, client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        old_key = agent.public_key_b64
        restarted = []

        def at_stage(detail):
            if detail.stage >= 7 and not restarted:
                restarted.append(time.monotonic())
                agent.pause(1.5, new_key_bits=1024, clock_offset=3600)

        started = time.monotonic()
        detail = task.result(timeout=60, on_progress=at_stage)
        record("restart at stage 7 (1.5 s down, new key, clock +1 h)", started, agent)
        assert detail.outcome is DagOutcome.SUCCEEDED and restarted
        assert agent.public_key_b64 != old_key
        codes = [r.err_code for r in agent.requests if r.err_code]
        assert codes.count("Security.Authentication.Header.DecryptFailed") == 1
        assert codes.count("Security.Authentication.Expired") == 1
        assert len([r for r in agent.requests if r.uri == "/api/v1/secret"]) == 2
        assert [r.method for r in agent.requests].count("POST") == 1


def test_automatic_restart_at_stage_7():
    with FakeAgent(password=PASSWORD, stage_seconds=0.05, restart_at_stage=7,
                   restart_seconds=1.0, restart_new_key_bits=1024) as agent, \
            client_for(agent) as client:
        started = time.monotonic()
        detail = client.upgrade_agent(VERSION, RELEASE).result(timeout=60)
        record("automatic restart at stage 7 (1 s down, new key)", started, agent)
        assert detail.outcome is DagOutcome.SUCCEEDED
        assert client.info().version.startswith(VERSION)


def test_a_task_picked_up_by_id_while_its_agent_reconnects():
    """A script restarted mid-upgrade picks its task up while the agent answers "not found"
    (back from its restart, not reconnected to its cluster): exists=True waits that out."""
    from obshell_sdk import InvalidArgumentError, TaskNotFoundError

    with FakeAgent(password=PASSWORD) as agent, client_for(agent) as client:
        dag_id = agent.create_upgrade_dag(VERSION, RELEASE)
        agent.fail_next(3, status=404, err_code="Task.NotFound")
        with pytest.raises(TaskNotFoundError, match=r"client\.task\(id, exists=True\)"):
            client.task(dag_id).wait(timeout=60)  # an id never seen: maybe a wrong one
        detail = client.task(dag_id, exists=True).result(timeout=60)
        assert detail.outcome is DagOutcome.SUCCEEDED
        assert len(agent.requests_to(f"/api/v1/task/dag/{dag_id}", "GET")) >= 4  # 3 refused
        with pytest.raises(InvalidArgumentError, match="exists"):
            client.task(dag_id, exists="yes")


@pytest.mark.parametrize(
    ("fault", "kwargs"),
    [
        ("reset_next", {"n": 3}),
        ("truncate_next", {"n": 3}),
        ("fail_next", {"n": 3, "status": 502}),
        ("fail_next", {"n": 3, "status": 503}),
        ("fail_next", {"n": 3, "status": 504}),
        ("fail_next", {"n": 3, "status": 404, "err_code": "Task.NotFound"}),
        ("fail_next", {"n": 3, "status": 500, "err_code": "Common.Unexpected"}),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={x}" for k, x in v.items()),
)
def test_wait_rides_out_transient_faults(fault, kwargs):
    with FakeAgent(password=PASSWORD) as agent, client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        client.get_dag(task.id)  # the DAG has been seen
        agent.clear_requests()
        getattr(agent, fault)(**kwargs)
        started = time.monotonic()
        detail = task.result(timeout=60)
        record(f"{fault} {kwargs}", started, agent)
        assert detail.outcome is DagOutcome.SUCCEEDED
        assert all(r.method == "GET" for r in agent.requests)


def _poll_failures(caplog):
    return [r.levelno for r in caplog.records if "poll(s) failed" in r.getMessage()]


def test_failed_polls_of_a_task_never_seen_are_a_warning_at_once(caplog):
    # A wait that only logged at INFO could sit silent for the whole failure budget.
    with FakeAgent(password=PASSWORD) as agent, client_for(agent) as client:
        dag_id = client.upgrade_agent(VERSION, RELEASE).id
        agent.fail_next(3, status=503)
        with caplog.at_level(logging.INFO, logger="obshell_sdk"):
            assert client.task(dag_id).result(timeout=60).outcome is DagOutcome.SUCCEEDED
    assert _poll_failures(caplog) == [logging.WARNING, logging.INFO, logging.INFO]
    first = next(r.getMessage() for r in caplog.records if "poll(s) failed" in r.getMessage())
    assert first.startswith(f"task {dag_id}: 1 poll(s) failed in 0 s (last: ")
    assert first.endswith("check the agent's address and the task id; retrying for up to 30 s "
                          "more")


def test_a_task_seen_before_warns_only_when_its_agent_stays_away(caplog, monkeypatch):
    # Its agent restarting (as during its own upgrade) is expected: INFO, unless it lasts.
    with FakeAgent(password=PASSWORD) as agent, client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        agent.fail_next(3, status=503)
        with caplog.at_level(logging.INFO, logger="obshell_sdk"):
            task.wait(timeout=60)
        assert _poll_failures(caplog) == [logging.INFO] * 3
        assert "the agent may be restarting; retrying for up to" in caplog.text
        caplog.clear()
        monkeypatch.setattr(obshell_sdk._polling, "QUIET_RESTART", 0.5)
        task = client.upgrade_agent("4.3.2.0", RELEASE)
        agent.fail_next(10, status=503)  # retried after 0.02, 0.04, 0.08, 0.16, 0.2... s
        with caplog.at_level(logging.INFO, logger="obshell_sdk"):
            task.wait(timeout=60)
    levels = _poll_failures(caplog)
    assert len(levels) == 10 and levels.count(logging.WARNING) == 1
    assert levels[:2] == [logging.INFO] * 2  # well under 0.5 s into the streak


def test_a_failure_streak_warns_once_and_again_after_it_ended():
    streak = FailureStreak(budget=30)
    error = ConnectError("refused", method="GET", path="/api/v1/task/dag/11", agent="a:1")
    assert streak.fail(error, time.monotonic()) is False
    assert streak.failures == 1 and streak.last is error
    assert [streak.worth_a_warning(read=False) for _ in range(3)] == [True, False, False]
    assert streak.worth_a_warning(read=True) is False
    assert streak.end() == 1 and streak.failures == 0 and streak.last is None
    streak.fail(error, time.monotonic())
    assert streak.worth_a_warning(read=False) is True  # a new streak is news again
    assert FailureStreak(budget=0).fail(error, time.monotonic()) is True  # no retry at all
    assert FailureStreak(budget=30).cut((5, 60)) == (5, 60)  # no streak: the client's own
    slow = FailureStreak(budget=30)
    slow.fail(error, time.monotonic() - 28)  # a streak that began 28 s ago
    assert all(1.9 < t <= 2.0 for t in slow.cut((5, 60)))


def test_a_failure_streak_retries_for_its_budget_or_the_wait_left_whichever_is_shorter():
    streak = FailureStreak(budget=30)
    streak.fail(ConnectError("refused", method="GET", path="/api/v1/task/dag/11", agent="a:1"),
                time.monotonic())
    assert 29 < streak.retrying_for(WaitDeadline(None)) <= 30
    assert 29 < streak.retrying_for(WaitDeadline(600)) <= 30
    assert 4 < streak.retrying_for(WaitDeadline(5)) <= 5


def test_failure_budget_runs_out_with_a_clear_error():
    policy = FAST.evolve(failure_budget=0.5)
    with FakeAgent(password=PASSWORD) as agent, client_for(agent, policy) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        agent.pause(30)
        started = time.monotonic()
        with pytest.raises(TaskUnreachableError) as info:
            task.wait(timeout=60)
        record("agent gone, budget 0.5 s", started, agent)
        err = info.value
        assert err.task_id == task.id and task.id in str(err)
        assert "cannot connect" in str(err) and err.failures >= 2


def test_lost_create_reply_finds_the_task_instead_of_posting_again():
    with FakeAgent(password=PASSWORD) as agent, client_for(agent) as client:
        agent.drop_reply_after_create = True
        started = time.monotonic()
        task = client.upgrade_agent(VERSION, RELEASE)
        record("upgrade reply dropped after the DAG was created", started, agent)
        assert [r.method for r in agent.requests].count("POST") == 1
        assert task.name == f"Upgrade obshell {VERSION}-{RELEASE}"
        assert task.id in agent.dags
        assert task.result(timeout=60).outcome is DagOutcome.SUCCEEDED


def test_lost_pre_check_reply_finds_the_check_task():
    """The pre-check declares its own DAG name: a lost reply is looked up under that name."""
    with FakeAgent(password=PASSWORD, stages_per_poll=0) as agent, client_for(agent) as client:
        agent.drop_reply_after_create = True
        task = client.check_agent_upgrade(VERSION, RELEASE)
        assert [r.method for r in agent.requests].count("POST") == 1
        assert task.name == f"Upgrade check obshell {VERSION}-{RELEASE}"
        assert task.id in agent.dags
        agent.set_dag_progression(stages_per_poll=1, dag_id=task.id)
        assert task.result(timeout=60).outcome is DagOutcome.SUCCEEDED


@pytest.mark.parametrize("theirs_first", [True, False])
def test_a_lost_pre_check_is_not_taken_for_another_callers_made_at_the_same_time(
        theirs_first):
    """A pre-check takes no lock: another caller's, of the same name, may be made in the same
    second as ours, whose reply is lost. Both are new and not started yet; which one our POST
    made cannot be told, so neither is followed as ours: the outcome is unknown."""
    from obshell_sdk import UpgradeAgentRequest
    from obshell_sdk._endpoints import AGENT_UPGRADE_CHECK

    with FakeAgent(password=PASSWORD, stages_per_poll=0) as agent, \
            client_for(agent) as client, client_for(agent) as other:
        def another_callers(_existed, _sent_at):  # after our lists were read, before our POST
            other.check_agent_upgrade(VERSION, RELEASE)
            agent.drop_reply_after_create = True

        hook = another_callers if theirs_first else None
        if not theirs_first:  # theirs made while our reply is lost, before the lookup reads
            agent.drop_reply_after_create = True
            real_time = client.server_time

            def server_time(**kwargs):
                if len(agent.dags) == 1:
                    other.check_agent_upgrade(VERSION, RELEASE)
                return real_time(**kwargs)

            client.server_time = server_time
        request = UpgradeAgentRequest(VERSION, RELEASE)
        with pytest.raises(OutcomeUnknownError) as info:
            client._create_task(AGENT_UPGRADE_CHECK, request, on_send=hook)
        assert len(agent.dags) == 2
        assert len(agent.requests_to("/api/v1/agent/upgrade/check", "POST")) == 2
        for dag_id in agent.dags:
            assert dag_id in str(info.value)


def _lose_an_ended_pre_check(agent):
    """The pre-check's reply is lost, and the lookup never sees it in the unfinished list
    (every read of it fails): only the history, read at the end, can show it."""
    agent.drop_reply_after_create = True
    agent.fail_next(99, path_prefix="/api/v1/task/dag/unfinish")


def test_a_lost_pre_check_that_already_ended_is_found_in_the_task_history(monkeypatch):
    """A pre-check takes no lock: once ended, obshell lists it only in its whole history
    (``GET /api/v1/task/dags/ob``, 4.2.6 on), read once when the lists found nothing. It
    ran for seconds, as a real one does (one that ended within a second of the POST could
    be an earlier run's)."""
    from obshell_sdk import _lookup

    monkeypatch.setattr(_lookup, "RECOVERY_SECONDS", 3.0)
    with FakeAgent(password=PASSWORD, stage_seconds=0.25) as agent, \
            client_for(agent) as client:
        _lose_an_ended_pre_check(agent)
        # 1.25 s long: ended when the history is read, some 1.75 s after the POST
        task = client.check_agent_upgrade(VERSION, RELEASE)
        assert task.id in agent.dags
        assert task.result(timeout=30).outcome is DagOutcome.SUCCEEDED
        assert len(agent.requests_to("/api/v1/agent/upgrade/check", "POST")) == 1
        assert len(agent.requests_to("/api/v1/task/dags/ob", "GET")) == 1


def test_a_history_that_cannot_be_read_leaves_the_lookup_as_it_was(monkeypatch):
    """The history is read once; when that read fails, the error says what it said before."""
    from obshell_sdk import OutcomeUnknownError, _lookup

    monkeypatch.setattr(_lookup, "RECOVERY_SECONDS", 1.0)
    with FakeAgent(password=PASSWORD, stage_seconds=0.01) as agent, \
            client_for(agent) as client:
        _lose_an_ended_pre_check(agent)
        agent.fail_next(1, path_prefix="/api/v1/task/dags/ob")
        with pytest.raises(OutcomeUnknownError) as info:
            client.check_agent_upgrade(VERSION, RELEASE)
        assert "listed only while it runs" in str(info.value)
        assert len(agent.requests_to("/api/v1/task/dags/ob", "GET")) == 1
        from obshell_sdk._cli_errors import cli_message  # where the CLI reads that history

        assert "task history (obshell-sdk task list --all)" in cli_message(info.value)


def test_an_upgrade_no_longer_the_last_maintenance_task_is_found_in_the_history():
    """An upgrade that ended stops being the cluster's last maintenance DAG once another
    one is made: the whole history is read for it too. Not after a hung read."""
    from datetime import datetime, timedelta, timezone

    from obshell_sdk import ConnectionLostError, DagDetail, OutcomeUnknownError
    from obshell_sdk._endpoints import AGENT_UPGRADE

    now = datetime.now(timezone.utc)

    def dag(dag_id: int, name: str, started: float, ended: float) -> DagDetail:
        return DagDetail.from_json({
            "id": f"1{dag_id}", "dag_id": dag_id, "name": name, "stage": 9, "max_stage": 9,
            "state": "SUCCEED", "operator": "RUN", "maintenance_type": 2,
            "start_time": (now + timedelta(seconds=started)).isoformat(),
            "end_time": (now + timedelta(seconds=ended)).isoformat()})

    ours = dag(3, "Upgrade obshell 4.3.1.0-1.el7", 5, 300)
    later = dag(4, "Upgrade obshell 4.3.2.0-1.el7", 400, 600)

    class Agent:  # our upgrade ended; someone's later one is the last maintenance DAG
        agent, timeout = "a:1", (1.0, 1.0)
        hung = False

        def unfinished_dags(self, *, timeout=None):
            if self.hung:
                raise ConnectionLostError("hung", method="GET", path="/x", agent="a:1")
            return []

        def last_maintenance_dag(self, *, timeout=None):
            return later

        def server_time(self, *, timeout=None):
            return now + timedelta(seconds=900)

        def cluster_dags(self, *, timeout=None):
            return [later, ours, dag(2, ours.name, -900, -600)]  # and an earlier run

    lost = ConnectionLostError("cut", method="POST", path="/api/v1/agent/upgrade", agent="a:1")
    sent_at = time.time() - 900
    found = obshell_sdk._lookup.find_created_dag(
        Agent(), AGENT_UPGRADE, ours.name, sent_at, lost, existed=frozenset(), seconds=0.0)
    assert found.id == ours.id
    agent = Agent()
    agent.hung = True
    agent.cluster_dags = None  # never read after a failed read
    with pytest.raises(OutcomeUnknownError, match="last_maintenance_dag"):
        obshell_sdk._lookup.find_created_dag(agent, AGENT_UPGRADE, ours.name, sent_at, lost,
                                             existed=frozenset(), seconds=0.0)


def test_a_lost_pre_check_that_already_ended_says_where_to_look_and_is_not_resent(
        monkeypatch):
    """On an agent without the history route, an ended pre-check is listed nowhere. Not
    found, it is not sent again, and the error says it may have ended (not "look in the
    lists")."""
    from obshell_sdk import OutcomeUnknownError, _lookup

    monkeypatch.setattr(_lookup, "RECOVERY_SECONDS", 1.0)
    with FakeAgent(password=PASSWORD, stage_seconds=0.01) as agent, \
            client_for(agent) as client:
        agent.dag_history = False  # an agent before 4.2.6
        agent.drop_reply_after_create = True
        # The listing before the POST and the lookup's first read fail: the check (50 ms)
        # has ended by the lookup's next read.
        agent.fail_next(2, path_prefix="/api/v1/task/dag/unfinish")
        with pytest.raises(OutcomeUnknownError) as info:
            client.check_agent_upgrade(VERSION, RELEASE)
        assert "listed only while it runs" in str(info.value)
        assert "last_maintenance_dag" not in str(info.value)
        assert len(agent.requests_to("/api/v1/agent/upgrade/check", "POST")) == 1
        assert [d.state for d in agent.dags.values()] == ["SUCCEED"]


@pytest.mark.parametrize("earlier", [False, True])
def test_a_lost_pre_check_the_history_does_not_hold_says_so(monkeypatch, earlier):
    """The connection was reset before the agent read the request: nothing was made, and
    the history, read once, says so. It holds the call's earlier run when ``earlier``:
    one that ended just before the POST went out (within the clock's margin) is not it."""
    from obshell_sdk import OutcomeUnknownError, _lookup

    monkeypatch.setattr(_lookup, "RECOVERY_SECONDS", 1.0)
    with FakeAgent(password=PASSWORD, stage_seconds=0.01) as agent, \
            client_for(agent) as client:
        before = []
        if earlier:
            before.append(client.check_agent_upgrade(VERSION, RELEASE).wait(timeout=30).id)
        client.unfinished_dags()  # the dialect and key are known: the reset hits the POST
        agent.reset_next(1, path_prefix="/api/v1/agent/upgrade/check")
        with pytest.raises(OutcomeUnknownError) as info:
            client.check_agent_upgrade(VERSION, RELEASE)
        assert "whole task history" in str(info.value) and list(agent.dags) == before
        assert "have made none (one that ended within seconds of the call" in str(info.value)
        assert len(agent.requests_to("/api/v1/task/dags/ob", "GET")) == 1


@pytest.mark.parametrize(("create", "maintenance_reads"), [
    ("upgrade_agent", 2),  # before the POST, and in the lookup after the lost reply
    ("check_agent_upgrade", 0),  # obshell's last maintenance DAG is never a pre-check
])
def test_only_lock_taking_tasks_are_looked_for_as_the_last_maintenance_dag(
        create, maintenance_reads):
    with FakeAgent(password=PASSWORD, stages_per_poll=0) as agent, client_for(agent) as client:
        agent.drop_reply_after_create = True
        task = getattr(client, create)(VERSION, RELEASE)
        assert task.id in agent.dags
        reads = agent.requests_to("/api/v1/task/dag/maintain/ob", "GET")
        assert len(reads) == maintenance_reads
        assert len(agent.requests_to("/api/v1/task/dag/unfinish", "GET")) == 2


@pytest.mark.parametrize(("budget", "read", "polls"), [(1.5, 0.4, 3), (1.0, 0.7, 2)])
def test_a_hung_agent_costs_a_read_timeout_a_poll_and_cannot_stretch_the_budget(
        budget, read, polls):
    """Each poll waits one read timeout (not the whole wait); the failure budget ends it.

    The streak is timed from the first failed poll's sending, and each poll is cut to the
    budget left: a read timeout longer than that cannot stretch it (a hostile review saw
    budget 3 s and read timeout 2 s end after 7.6 s)."""
    policy = FAST.evolve(failure_budget=budget)
    with FakeAgent(password=PASSWORD) as agent, ObshellClient(
            agent.host, agent.port, auth=PasswordAuth(PASSWORD), poll_policy=policy,
            timeout=(2, read)) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        task.refresh()
        agent.hang_next(1000, seconds=30)
        started = time.monotonic()
        with pytest.raises(TaskUnreachableError) as info:
            task.wait(timeout=60)
        took = time.monotonic() - started
        record(f"hung agent, read timeout {read} s, budget {budget} s", started, agent)
        assert budget <= took < budget + 0.8, took  # a pause and a last short poll at most
        assert info.value.failures >= polls  # each cut at the read timeout, or the budget left
        assert isinstance(info.value.last_error, ReadTimeoutError), info.value.last_error


def test_the_lookup_after_a_lost_reply_keeps_to_its_time_against_a_hung_agent(monkeypatch):
    """Each read of the lookup is cut to the time it has left: a hung agent cannot stretch
    it by a read timeout a read (a hostile review saw "up to a minute" take 78 s)."""
    monkeypatch.setattr(obshell_sdk._lookup, "RECOVERY_SECONDS", 1.0)
    with FakeAgent(password=PASSWORD) as agent, ObshellClient(
            agent.host, agent.port, auth=PasswordAuth(PASSWORD), timeout=(2, 3)) as client:
        client.info()
        agent.hang_next(1, seconds=30, path_prefix="/api/v1/agent/upgrade")
        agent.hang_next(1000, seconds=30, path_prefix="/api/v1/task/")
        started = time.monotonic()
        with pytest.raises(OutcomeUnknownError):
            client.upgrade_agent(VERSION, RELEASE)
        took = time.monotonic() - started
    # the listing before the POST (hung: one read timeout, 3 s), the POST (3 s), then 1 s
    # of lookup (it was a whole read timeout more: 9 s)
    assert took < 3 + 3 + 1.0 + 0.9, took
    assert [r.method for r in agent.requests].count("POST") == 1


def test_each_read_of_a_lookup_round_is_cut_to_the_time_left():
    """Both lists of a lock-taking task's lookup end by the lookup's deadline: the second
    read is cut to what the first left, not given the same cut again."""
    from obshell_sdk._endpoints import AGENT_UPGRADE
    from obshell_sdk._lookup import listed

    seen = []

    class Agent:  # an agent slow to list its unfinished tasks, within the cut
        agent, timeout = "a:1", (5.0, 60.0)

        def unfinished_dags(self, *, timeout=None):
            seen.append((timeout, time.monotonic()))
            time.sleep(0.3)
            return []

        def last_maintenance_dag(self, *, timeout=None):
            seen.append((timeout, time.monotonic()))
            return None

    # Bounded by when each read began, not by guessed delays: a loaded machine may pause
    # the test (or oversleep the 0.3 s) by more than a tenth of a second.
    until = time.monotonic() + 1.0
    assert listed(Agent(), AGENT_UPGRADE, until) == []
    ((_, first), first_at), ((_, second), second_at) = seen
    assert until - first_at <= first <= 1.0, seen
    assert max(0.05, until - second_at) <= second <= max(0.05, until - first_at - 0.3), seen
    seen.clear()
    listed(Agent(), AGENT_UPGRADE)  # no deadline: the client's own timeout, each
    assert [timeout for timeout, _ in seen] == [(5.0, 60.0)] * 2


def test_hung_poll_does_not_eat_the_whole_deadline():
    with FakeAgent(password=PASSWORD) as agent, ObshellClient(
            agent.host, agent.port, auth=PasswordAuth(PASSWORD), poll_policy=FAST,
            timeout=(2, 0.3)) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        agent.hang_next(1, seconds=30)  # one poll hangs; the next ones are answered
        detail = task.result(timeout=30)
        assert detail.outcome is DagOutcome.SUCCEEDED


def test_lost_create_reply_with_the_agent_unreadable_is_outcome_unknown(monkeypatch):
    monkeypatch.setattr(obshell_sdk._lookup, "RECOVERY_SECONDS", 0.5)
    with FakeAgent(password=PASSWORD) as agent, client_for(agent) as client:
        client.info()
        agent.drop_reply_after_create = True
        agent.fail_next(1000, status=503, path_prefix="/api/v1/task/")
        with pytest.raises(OutcomeUnknownError) as info:
            client.upgrade_agent(VERSION, RELEASE)
        assert [r.method for r in agent.requests].count("POST") == 1
        assert info.value.dag_name == f"Upgrade obshell {VERSION}-{RELEASE}"
        assert "not sent again" in str(info.value) and "unfinished_dags" in str(info.value)


def test_32_threads_share_one_client():
    with FakeAgent(password=PASSWORD, stages_per_poll=1) as agent, client_for(agent) as client:
        results: list = []
        errors: list = []

        def follow():
            try:
                task = client.check_agent_upgrade(VERSION, RELEASE)
                results.append((task.id, task.result(timeout=60).outcome))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=follow) for _ in range(32)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        record("32 threads, one client, 32 check DAGs", started, agent)
        assert not errors, errors[:3]
        assert len({tid for tid, _ in results}) == 32
        assert all(outcome is DagOutcome.SUCCEEDED for _, outcome in results)
        uris = [r.uri for r in agent.requests]
        assert uris.count("/api/v1/secret") == 1 and uris.count("/api/v1/info") == 1
        # No cross-talk of AES keys: every request was understood (the only refusals are the
        # "no maintenance task" answers to the lookups each create makes before its POST).
        assert all(r.status == 200 or (r.path == "/api/v1/task/dag/maintain/ob"
                                       and r.err_code == "Task.NotFound") for r in agent.requests)


def test_silent_agent_hits_the_read_timeout_and_wait_keeps_its_deadline():
    """A listener that accepts and never answers: every call ends, the wait ends on time."""
    import socket

    from obshell_sdk import TaskTimeoutError

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    try:
        with ObshellClient("127.0.0.1", port, auth=PasswordAuth(PASSWORD),
                           timeout=(1, 0.3)) as client:
            started = time.monotonic()
            with pytest.raises(ReadTimeoutError):
                client.info()
            assert time.monotonic() - started < 5
            started = time.monotonic()
            with pytest.raises(TaskTimeoutError):
                client.task("11").wait(timeout=1.0)
            assert time.monotonic() - started < 5
    finally:
        silent.close()
