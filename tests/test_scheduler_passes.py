"""Polls placed just after the agent's scheduler runs (``PollPolicy.scheduler_period``).

obshell moves a DAG on only when its task scheduler runs, once a second, and stamps what it
wrote with the time. The pure part (which passes a DAG's stamps show, and when to poll after
them) is tested here without sockets; the fake agent's ``scheduler_period`` and the client's
reading of the agent's clock over real sockets.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import pytest
import requests

from obshell_sdk import (
    DagDetail,
    DagTask,
    InvalidArgumentError,
    ObshellClient,
    PasswordAuth,
    PollPolicy,
)
from obshell_sdk._passes import DRIFT_PER_PASS, MARGIN, SPREAD, AgentClock, Passes
from obshell_sdk.testing import FakeAgent

PWD = "root-pw"
T0 = 1_800_000_000.0  # some agent-clock time
GO_ZERO = "0001-01-01T00:00:00Z"


def stamp(t: Optional[float]) -> str:
    if t is None:
        return GO_ZERO
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def node(i: int, state: str, start: Optional[float], end: Optional[float],
         sub: tuple[Optional[float], Optional[float]] = (None, None)) -> dict[str, Any]:
    times = {"start_time": stamp(start), "end_time": stamp(end)}
    return {"id": f"1{i}", "node_id": i, "name": f"n{i}", "state": state, "operator": "RUN",
            **times, "additional_data": None,
            "sub_tasks": [{"id": f"1{i}", "task_id": i, "name": f"n{i}", "state": state,
                           "operator": "RUN", "start_time": stamp(sub[0]),
                           "end_time": stamp(sub[1]), "additional_data": None,
                           "execute_times": 1, "execute_agent": {"ip": "127.0.0.1", "port": 1},
                           "task_logs": []}]}


def dag(state: str, start: Optional[float], end: Optional[float],
        nodes: list[dict[str, Any]]) -> DagDetail:
    running = [i for i, n in enumerate(nodes, 1) if n["state"] != "PENDING"]
    return DagDetail.from_json({
        "id": "11", "dag_id": 1, "name": "Upgrade obshell", "stage": max(running, default=1),
        "max_stage": len(nodes), "state": state, "operator": "RUN",
        "start_time": stamp(start), "end_time": stamp(end), "additional_data": {},
        "nodes": nodes})


def just_after(at: Optional[float], run: float, ahead: int = 1) -> bool:
    """``at`` is a poll aimed just after the scheduler run at ``run``, ``ahead`` runs on."""
    late = MARGIN + DRIFT_PER_PASS * ahead
    return at is not None and run + late - 1e-6 <= at <= run + late + SPREAD + 1e-6


def seen(*details: DagDetail) -> Passes:
    passes = Passes()
    for i, detail in enumerate(details):
        passes.observe(detail, T0 + 100 + i)  # polls sent long after: no clock bound learnt
    return passes


# -- which stamps are passes --------------------------------------------------------------


def two_passes(at: float) -> DagDetail:
    """Runs at ``at - 1`` (start, node 1) and ``at`` (node 1 ends, node 2 starts)."""
    return dag("RUNNING", at - 1, None, [node(1, "SUCCEED", at - 1, at),
                                         node(2, "RUNNING", at, at),
                                         node(3, "PENDING", None, None)])


def test_one_pass_alone_predicts_nothing_two_predict_the_next() -> None:
    # the run that started the DAG wrote its start and its first node's, 4 ms apart
    one = dag("RUNNING", T0, None, [node(1, "RUNNING", T0 + 0.004, T0 + 0.004),
                                    node(2, "PENDING", T0 - 3, T0 - 3)])
    assert seen(one).next_poll(T0 + 0.5, T0 + 0.5, 1.0) is None
    at = seen(two_passes(T0)).next_poll(T0 + 0.5, T0 + 0.5, 1.0)
    assert just_after(at, T0 + 1.0)


def test_a_dag_of_many_nodes_is_read_from_its_newest_stamps() -> None:
    # A hostile (or huge) DAG of 40,000 nodes, one per scheduler run: grouping every stamp
    # against every pass took minutes per poll, past any wait's deadline. Only the newest
    # stamps make the latest passes, and the prediction is the one its last nodes give.
    many = 40_000
    big = dag("RUNNING", T0 - many, None,
              [node(i, "SUCCEED", T0 - many + i, T0 - many + i + 1) for i in range(many - 1)]
              + [node(many - 1, "RUNNING", T0, T0)])
    small = dag("RUNNING", T0 - 3, None, [node(1, "SUCCEED", T0 - 3, T0 - 2),
                                          node(2, "SUCCEED", T0 - 2, T0 - 1),
                                          node(3, "SUCCEED", T0 - 1, T0),
                                          node(4, "RUNNING", T0, T0)])
    at = seen(big).next_poll(T0 + 0.5, T0 + 0.5, 1.0)
    assert just_after(at, T0 + 1.0)
    assert just_after(seen(small).next_poll(T0 + 0.5, T0 + 0.5, 1.0), T0 + 1.0)


def test_the_period_is_learnt_from_passes_in_a_row() -> None:
    d = dag("RUNNING", T0, None, [node(1, "SUCCEED", T0, T0 + 1.08),
                                  node(2, "RUNNING", T0 + 2.16, T0 + 2.16)])
    at = seen(d).next_poll(T0 + 2.7, T0 + 2.7, 1.0)  # runs 1.08 s apart: the next at 3.24
    assert just_after(at, T0 + 3.24)


def test_stamps_that_do_not_fit_a_scheduler_predict_nothing() -> None:
    # a DAG that moves at any time: stages of 0.4 s and 1.5 s
    d = dag("RUNNING", T0, None, [node(1, "SUCCEED", T0, T0 + 0.4),
                                  node(2, "SUCCEED", T0 + 0.4, T0 + 1.9),
                                  node(3, "RUNNING", T0 + 1.9, T0 + 1.9)])
    assert seen(d).next_poll(T0 + 2.4, T0 + 2.4, 1.0) is None


def test_stamps_are_not_chained_into_one_long_pass() -> None:
    # stages of 40 ms, then one a second later: were the first 0.16 s one pass, the last
    # two would be runs a second apart; no scheduler writes over 0.16 s in one run
    nodes = [node(i, "SUCCEED", T0 + 0.04 * (i - 1), T0 + 0.04 * i) for i in (1, 2, 3, 4)]
    d = dag("RUNNING", T0, None, [*nodes, node(5, "SUCCEED", T0 + 0.16, T0 + 1.16),
                                  node(6, "RUNNING", T0 + 1.16, T0 + 1.16)])
    assert seen(d).next_poll(T0 + 1.7, T0 + 1.7, 1.0) is None


def test_steps_tens_of_milliseconds_apart_are_not_one_pass() -> None:
    # A 1 s DAG moving at any time: a 0.93 s first stage, then stages of 25 ms. Were the
    # four steps (75 ms) one pass, it would sit a second after the DAG's start: a "run" that
    # put the next poll off by a second. A run writes its few stamps within milliseconds.
    ends = [T0 + 0.93 + 0.025 * i for i in range(4)]
    nodes = [node(1, "SUCCEED", T0, ends[0])]
    nodes += [node(i + 2, "SUCCEED", ends[i], ends[i + 1]) for i in range(3)]
    d = dag("RUNNING", T0, None, [*nodes, node(5, "RUNNING", ends[3], ends[3])])
    assert seen(d).next_poll(T0 + 1.5, T0 + 1.5, 1.0) is None


def test_stamps_a_run_writes_over_tens_of_milliseconds_are_still_one_pass() -> None:
    # On a slow OceanBase one run writes its stamps over some 40 ms (the DAG's start, then
    # its first node's). Split into two passes, the runs would not fit a 1 s scheduler and
    # polls would fall back to the plain interval.
    d = dag("RUNNING", T0, None, [node(1, "SUCCEED", T0 + 0.04, T0 + 1.0),
                                  node(2, "RUNNING", T0 + 1.04, T0 + 1.04),
                                  node(3, "PENDING", None, None)])
    at = seen(d).next_poll(T0 + 1.5, T0 + 1.5, 1.0)
    assert just_after(at, T0 + 2.04)  # after the next run's last write


def test_only_stamps_the_scheduler_wrote_count() -> None:
    # a pending node's time is its creation time; a running node's end is its start (here
    # not, to show it is not read); the executor writes the sub-tasks' times: had any of
    # these been taken for a run, the runs would not fit a scheduler
    d = dag("RUNNING", T0, None, [
        node(1, "SUCCEED", T0, T0 + 1, sub=(T0 + 0.2, T0 + 0.55)),
        node(2, "RUNNING", T0 + 1, T0 + 1.37, sub=(T0 + 1.2, T0 + 1.65)),
        node(3, "PENDING", T0 - 0.61, T0 - 0.61)])
    at = seen(d).next_poll(T0 + 1.5, T0 + 1.5, 1.0)
    assert just_after(at, T0 + 2.0)


def test_a_pass_long_ago_predicts_nothing() -> None:
    passes = seen(two_passes(T0))
    assert passes.next_poll(T0 + 3.5, T0 + 3.5, 1.0) is not None
    assert passes.next_poll(T0 + 30, T0 + 30, 1.0) is None
    # a poll due long after the last pass (a long ceiling) is not brought forward to one
    assert passes.next_poll(T0 + 10, T0 + 0.5, 1.0) is None


def test_a_poll_never_goes_before_its_earliest_time_and_lands_nearest_to_when_it_is_due() -> None:
    passes = seen(two_passes(T0))
    # due at +2.2: the runs at +2 and +3 are candidates; +2 (+margin) is nearer
    at = passes.next_poll(T0 + 2.2, T0 + 0.5, 1.0)
    assert just_after(at, T0 + 2.0, ahead=2)
    # but never before the earliest time (two polls a second at most)
    at = passes.next_poll(T0 + 2.2, T0 + 2.2, 1.0)
    assert just_after(at, T0 + 3.0, ahead=3)


def test_a_new_phase_after_a_restart_is_trusted_once_the_old_passes_are_gone() -> None:
    nodes = [node(1, "SUCCEED", T0, T0 + 1), node(2, "SUCCEED", T0 + 1, T0 + 2)]
    before = dag("RUNNING", T0, None, [*nodes, node(3, "RUNNING", T0 + 2, T0 + 2)])
    # the agent restarted: its scheduler now runs 0.45 s later in the second
    shifted = [node(3, "SUCCEED", T0 + 2, T0 + 5.45), node(4, "SUCCEED", T0 + 5.45, T0 + 6.45),
               node(5, "SUCCEED", T0 + 6.45, T0 + 7.45), node(6, "SUCCEED", T0 + 7.45, T0 + 8.45)]
    passes = seen(before, dag("RUNNING", T0, None, [*nodes, *shifted[:1],
                                                   node(4, "RUNNING", T0 + 5.45, T0 + 5.45)]))
    assert passes.next_poll(T0 + 6, T0 + 6, 1.0) is None
    passes.observe(dag("RUNNING", T0, None, [*nodes, *shifted,
                                            node(7, "RUNNING", T0 + 9.45, T0 + 9.45)]), T0 + 200)
    at = passes.next_poll(T0 + 10, T0 + 10, 1.0)
    assert just_after(at, T0 + 10.45)


# -- the agent's clock ----------------------------------------------------------------------


def test_agent_clock_keeps_the_reading_with_the_shortest_round_trip() -> None:
    clock = AgentClock()
    assert clock.offset is None
    clock.note(None, 100.0, 100.1)  # no timestamp: nothing learnt
    assert clock.offset is None
    at = datetime.fromtimestamp(130.0, timezone.utc)
    clock.note(at, 99.0, 101.0)  # a 2 s round trip: 30 +- 1
    assert clock.offset == pytest.approx(30.0)
    clock.note(at + timedelta(seconds=5.2), 104.99, 105.01)  # +-0.01: 30.2 wins
    assert clock.offset == pytest.approx(30.2)
    clock.note(at + timedelta(seconds=7.9), 106.5, 107.5)  # +-0.5: 30.9 is ignored
    assert clock.offset == pytest.approx(30.2)
    clock.note(at + timedelta(seconds=8.15), 107.99, 108.01)  # as precise and newer: 30.15
    assert clock.offset == pytest.approx(30.15)


def test_a_stamp_written_after_a_poll_bounds_how_far_ahead_the_stamps_clock_is() -> None:
    # the DAG's times run 0.4 s behind ours (another host's clock): a pass at our 1000.0
    # is stamped 999.6
    passes = Passes()
    passes.observe(dag("RUNNING", 999.6 - 2, None, [node(1, "RUNNING", 999.6 - 2, 999.6 - 2),
                                                   node(2, "PENDING", None, None)]), 999.9)
    assert passes.clock_bound is None  # the first poll shows nothing new
    passes.observe(dag("RUNNING", 999.6 - 2, None, [node(1, "SUCCEED", 999.6 - 2, 999.6),
                                                   node(2, "RUNNING", 999.6, 999.6)]), 1000.4)
    # the new stamps were written after the poll sent at 999.9 (our clock): the stamps'
    # clock is at least 0.3 s behind ours (a bound of -0.3 s on how far it is ahead)
    assert passes.clock_bound == pytest.approx(999.6 - 999.9)


def test_policy_scheduler_period_is_a_checked_knob() -> None:
    assert PollPolicy().scheduler_period == 1.0
    assert PollPolicy(scheduler_period=None).scheduler_period is None
    assert PollPolicy().evolve(scheduler_period=2).scheduler_period == 2
    for bad in (0, 0.01, -1, "1"):
        with pytest.raises(InvalidArgumentError, match="scheduler_period"):
            PollPolicy(scheduler_period=bad)


# -- over real sockets ----------------------------------------------------------------------


def test_fake_agent_scheduler_stamps_steps_with_its_passes() -> None:
    # stages of 0.13 s: without a scheduler their stamps would lie 0.13 s apart
    with FakeAgent(password=PWD, stage_durations=[0.13], scheduler_period=0.25) as a, \
            ObshellClient(a.host, a.port, auth=PasswordAuth(PWD)) as client:
        task = client.upgrade_agent("4.3.1.0", "20250101.el7")
        detail = task.wait(timeout=30, progress=False)
        stamps = sorted({t.timestamp() for n in detail.nodes or ()
                         for t in (n.start_time, n.end_time) if t is not None})
        assert detail.state == "SUCCEED" and len(stamps) > 3
        # every step in a run: any two stamps lie whole periods apart, give or take what the
        # runs drift (the fake's ticker wakes every 20 ms, so a run may come that late)
        for before, after in zip(stamps, stamps[1:]):
            periods = round((after - before) / 0.25)
            assert after - before >= 0.25 - 0.02
            assert abs(after - before - 0.25 * periods) < 0.08 * periods
        with pytest.raises(ValueError, match="scheduler_period"):
            a.scheduler_period = 0


def test_client_reads_the_agent_clock_from_its_replies() -> None:
    with FakeAgent(password=PWD, clock_offset=-45.0) as a, \
            ObshellClient(a.host, a.port, auth=PasswordAuth(PWD)) as client:
        assert client.agent_clock_offset is None
        client.info()
        offset = client.agent_clock_offset
        assert offset is not None and abs(offset + 45.0) < 0.5


def test_following_a_scheduled_dag_never_polls_more_than_twice_a_second() -> None:
    sent: list[float] = []
    session = requests.Session()

    def note(resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        if "show_details" in (resp.request.path_url or ""):  # the polls of the DAG
            sent.append(time.monotonic() - resp.elapsed.total_seconds())

    session.hooks["response"].append(note)
    with session, FakeAgent(password=PWD, stage_durations=[0.3], scheduler_period=1.0,
                            clock_offset=20.0) as a, \
            ObshellClient(a.host, a.port, auth=PasswordAuth(PWD), session=session) as client:
        task = client.upgrade_agent("4.3.1.0", "20250101.el7")
        detail = task.wait(timeout=60, progress=False)
        assert detail.state == "SUCCEED" and len(sent) >= 2
        # the policy's interval (0.5 s at first) is the least any poll waits
        gaps = [round(b - a, 3) for a, b in zip(sent, sent[1:])]
        assert all(gap >= 0.5 - 0.02 for gap in gaps), gaps


class VirtualTime:
    """``time`` for the polling loop: sleeping moves the clock on, instantly."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Agent:
    """A DAG source whose replies tell its clock: ``agent_clock_offset`` ahead of ours."""

    timeout = (5.0, 60.0)

    def __init__(self, offset: Optional[float], *answers: DagDetail) -> None:
        self.agent_clock_offset = offset
        self.answers = list(answers)

    def get_dag(self, dag_id: str, show_details: bool = True, *,
                timeout: Optional[tuple[float, float]] = None) -> DagDetail:
        return self.answers.pop(0)


@pytest.mark.parametrize("offset", [20.0, -20.0, 0.0])
@pytest.mark.parametrize("period", [1.0, None])
def test_wait_polls_just_after_the_next_scheduler_run(monkeypatch: pytest.MonkeyPatch,
                                                      offset: float,
                                                      period: Optional[float]) -> None:
    import obshell_sdk._polling
    import obshell_sdk._task

    clock = VirtualTime(1000.0)
    monkeypatch.setattr(obshell_sdk._task, "time", clock)
    monkeypatch.setattr(obshell_sdk._polling, "time", clock)
    run = 1000.0 + offset - 0.3  # the agent's scheduler ran 0.3 s ago (agent clock)
    running = two_passes(run)
    done = dag("SUCCEED", run - 1, run + 1, [node(1, "SUCCEED", run - 1, run),
                                             node(2, "SUCCEED", run, run + 1),
                                             node(3, "SUCCEED", run + 1, run + 1)])
    policy = PollPolicy(jitter=0, scheduler_period=period)
    task = DagTask(Agent(offset, running, done), "11", policy=policy)  # type: ignore[arg-type]
    assert task.wait(timeout=60, progress=False).state == "SUCCEED"
    [pause] = clock.slept
    if period is None:
        assert pause == pytest.approx(0.5)  # the plain interval
    else:  # the next run is 0.7 s away: the poll goes just after it, not at 0.5 s
        assert just_after(1000.0 + pause, 1000.0 + 0.7)


def test_wait_keeps_the_plain_interval_without_the_agents_clock(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import obshell_sdk._polling
    import obshell_sdk._task

    clock = VirtualTime(1000.0)
    monkeypatch.setattr(obshell_sdk._task, "time", clock)
    monkeypatch.setattr(obshell_sdk._polling, "time", clock)
    running = dag("RUNNING", 999.7, None, [node(1, "RUNNING", 999.7, 999.7)])
    done = dag("SUCCEED", 999.7, 1000.7, [node(1, "SUCCEED", 999.7, 1000.7)])
    task = DagTask(Agent(None, running, done), "11",  # type: ignore[arg-type]
                   policy=PollPolicy(jitter=0))
    task.wait(timeout=60, progress=False)
    assert clock.slept == [pytest.approx(0.5)]


def test_fake_agent_scheduler_keeps_running_when_its_clock_is_moved_back() -> None:
    with FakeAgent(password=PWD, stage_durations=[0.05], scheduler_period=0.2) as a, \
            ObshellClient(a.host, a.port, auth=PasswordAuth(PWD)) as client:
        time.sleep(0.3)  # the scheduler has run: its next run is due
        a.set_clock_offset(-45.0)
        task = client.upgrade_agent("4.3.1.0", "20250101.el7")
        assert task.wait(timeout=20, progress=False).state == "SUCCEED"


def test_a_poll_due_before_the_next_run_goes_after_the_one_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import obshell_sdk._polling
    import obshell_sdk._task

    clock = VirtualTime(1000.0)
    monkeypatch.setattr(obshell_sdk._task, "time", clock)
    monkeypatch.setattr(obshell_sdk._polling, "time", clock)
    # the last run was 0.7 s ago: the next, 0.3 s away, is sooner than two polls a second
    # allow, so the poll goes just after the run after it
    running = two_passes(1000.0 - 0.7)
    done = dag("SUCCEED", 998.3, 999.3, [node(1, "SUCCEED", 998.3, 999.3),
                                         node(2, "SUCCEED", 999.3, 999.3),
                                         node(3, "SUCCEED", 999.3, 999.3)])
    task = DagTask(Agent(0.0, running, done), "11",  # type: ignore[arg-type]
                   policy=PollPolicy(jitter=0))
    task.wait(timeout=60, progress=False)
    [pause] = clock.slept
    assert pause >= 0.5 and just_after(1000.0 + pause, 1000.0 + 1.3, ahead=2)


class ScheduledAgent:
    """A DAG whose scheduler runs at our 998.8 + k; its times run ``behind`` s behind ours,
    and the replies' timestamps do not: ``agent_clock_offset`` is 0."""

    timeout = (5.0, 60.0)
    agent_clock_offset = 0.0

    def __init__(self, clock: VirtualTime, behind: float, last: int) -> None:
        self.clock, self.behind, self.last = clock, behind, last
        self.polled: list[float] = []

    def get_dag(self, dag_id: str, show_details: bool = True, *,
                timeout: Optional[tuple[float, float]] = None) -> DagDetail:
        self.polled.append(self.clock.now)
        runs = [998.8 + k for k in range(self.last + 1) if 998.8 + k <= self.clock.now]
        stamps = [r - self.behind for r in runs]
        nodes = [node(i, "SUCCEED", a, b) for i, (a, b) in enumerate(zip(stamps, stamps[1:]), 1)]
        if len(runs) == self.last + 1:
            return dag("SUCCEED", stamps[0], stamps[-1], nodes)
        return dag("RUNNING", stamps[0], None,
                   [*nodes, node(len(nodes) + 1, "RUNNING", stamps[-1], stamps[-1])])


def test_dag_times_behind_the_agents_clock_are_caught_by_the_stamps(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import obshell_sdk._polling
    import obshell_sdk._task

    clock = VirtualTime(1000.0)
    monkeypatch.setattr(obshell_sdk._task, "time", clock)
    monkeypatch.setattr(obshell_sdk._polling, "time", clock)
    # OceanBase's clock 0.4 s behind the agent's: polls aimed by the agent's clock would land
    # 0.28 s before each run, every time; the stamps they miss pull the aim back
    agent = ScheduledAgent(clock, behind=0.4, last=12)
    task = DagTask(agent, "11", policy=PollPolicy(jitter=0))  # type: ignore[arg-type]
    assert task.wait(timeout=60, progress=False).state == "SUCCEED"
    after_run = [(p - 998.8) % 1.0 for p in agent.polled]  # how long after a run (our clock)
    assert all(0 <= late <= 0.25 for late in after_run[-4:]), after_run
