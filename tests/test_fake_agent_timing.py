"""FakeAgent timing helpers: per-stage durations and the moment a DAG was marked finished."""

from __future__ import annotations

import time

import pytest
from test_fake_agent import PWD, operate, poll, start_upgrade

from obshell_sdk import ObshellClient, PasswordAuth, PollPolicy
from obshell_sdk.testing import FakeAgent, FakeDag


def _until_finished(dag: FakeDag, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while dag.finished_at is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert dag.finished_at is not None, dag.state


def _lengths(dag: FakeDag) -> list[float]:
    return [n.end - n.start for n in dag.nodes if n.start is not None and n.end is not None]


def test_stage_durations_pace_each_stage_and_override_stage_seconds() -> None:
    with FakeAgent(password=PWD, stage_seconds=30.0, stage_durations=[0.05, 0.25, 0.1]) as a:
        dag = a.dag(start_upgrade(a))
        _until_finished(dag)
        assert dag.state == "SUCCEED"
        assert _lengths(dag) == pytest.approx([0.05, 0.25] + [0.1] * 7, abs=1e-6)
        assert dag.end is not None and dag.start is not None
        assert dag.end - dag.start == pytest.approx(1.0, abs=1e-6)


def test_stage_durations_on_a_failing_dag_and_after_retry() -> None:
    with FakeAgent(password=PWD, stage_durations=[0.02, 0.02, 0.2], fail_stage=3) as a:
        dag_id = start_upgrade(a)
        dag = a.dag(dag_id)
        _until_finished(dag)
        assert dag.state == "FAILED"
        assert dag.nodes[2].end - dag.nodes[2].start == pytest.approx(0.2, abs=1e-6)
        assert operate(a, dag_id, "RETRY").status_code == 200
        assert dag.finished_at is None  # running again
        _until_finished(dag)
        assert dag.state == "SUCCEED"
        assert dag.nodes[2].end - dag.nodes[2].start == pytest.approx(0.2, abs=1e-6)


def test_set_dag_progression_with_stage_durations() -> None:
    with FakeAgent(password=PWD) as a:  # poll-driven
        dag_id = a.create_upgrade_dag()
        a.set_dag_stage(dag_id, 8)
        before = a.now()  # the call reads the clock once it holds the DAG lock: in between
        a.set_dag_progression(dag_id=dag_id, stage_durations=[30.0] * 7 + [0.1, 0.2])
        after = a.now()
        dag = a.dag(dag_id)
        _until_finished(dag)
        assert dag.nodes[7].end is not None  # stage 8 ran 0.1 s from the call on
        assert before - 1e-3 <= dag.nodes[7].end - 0.1 <= after + 1e-3
        assert dag.nodes[8].end - dag.nodes[8].start == pytest.approx(0.2, abs=1e-6)
        other = a.dag(a.create_upgrade_dag(check=True))  # the defaults did not change
        assert not other.time_driven
        a.set_dag_progression(stage_durations=[0.01])
        assert a.dag(a.create_upgrade_dag(check=True)).stage_durations == (0.01,)
        a.set_dag_progression(stage_seconds=0.5)  # stage_seconds alone drops the durations
        assert a.dag(a.create_upgrade_dag(check=True)).seconds_for_stage(1) == 0.5


@pytest.mark.parametrize("bad", [[], [0.1, -1.0]])
def test_bad_stage_durations_are_refused(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="stage_durations"):
        FakeAgent(stage_durations=bad)
    agent = FakeAgent()
    with pytest.raises(ValueError, match="stage_durations"):
        agent.set_dag_progression(stage_durations=bad)


@pytest.mark.parametrize("faults", [
    {"fail_stage": 0}, {"fail_stage": -1}, {"fail_stage": 2.5}, {"fail_stage": True},
    {"fail_stage": 3, "fail_times": 0}, {"restart_at_stage": 0},
])
def test_faults_that_could_never_fire_are_refused(faults: dict[str, object]) -> None:
    # a test relying on such a fault would pass whether or not the code under test copes
    name = next(iter(faults)) if "fail_times" not in faults else "fail_times"
    with pytest.raises(ValueError, match=name):
        FakeAgent(**faults)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=name):
        FakeAgent().set_dag_faults(**faults)  # type: ignore[arg-type]


@pytest.mark.parametrize(("pace", "name"), [
    ({"stages_per_poll": -1}, "stages_per_poll"), ({"stages_per_poll": 1.5}, "stages_per_poll"),
    ({"stage_seconds": -0.5}, "stage_seconds"), ({"stage_seconds": float("nan")}, "stage_seconds"),
])
def test_a_pace_no_dag_can_keep_is_refused(pace: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        FakeAgent(**pace)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=name):
        FakeAgent().set_dag_progression(**pace)  # type: ignore[arg-type]


def test_the_faults_and_paces_in_range_are_taken() -> None:
    agent = FakeAgent(fail_stage=1, fail_times=2, restart_at_stage=1, stages_per_poll=0,
                      stage_seconds=0)
    agent.set_dag_faults(fail_stage=None, restart_at_stage=None)
    agent.set_dag_progression(stages_per_poll=3, stage_seconds=0.25)


def test_finished_at_is_wall_clock_when_marked() -> None:
    # failed at its last step: obshell skips an agent upgrade only there (Restart obshell)
    with FakeAgent(password=PWD, clock_offset=3600, fail_stage=9, stages_per_poll=20) as a:
        dag_id = start_upgrade(a)
        dag = a.dag(dag_id)
        assert dag.finished_at is None
        before = time.time()
        assert poll(a, dag_id)["state"] == "FAILED"
        assert dag.finished_at is not None and before <= dag.finished_at <= time.time()
        assert operate(a, dag_id, "PASS").status_code == 200  # PASS marks it finished again
        assert dag.state == "SUCCEED" and dag.finished_at >= before


def test_finished_at_of_a_time_driven_dag_follows_its_scheduled_end() -> None:
    with FakeAgent(password=PWD, stage_seconds=0.02) as a:
        dag = a.dag(start_upgrade(a))
        # The 20 ms ticker marks it. A stall of the whole process (a loaded machine) makes it
        # late by as much as it holds up this loop's steps: the bound allows the longest one.
        deadline, last, stall = time.monotonic() + 10, time.monotonic(), 0.0
        while dag.finished_at is None and last < deadline:
            time.sleep(0.005)
            now = time.monotonic()
            last, stall = now, max(stall, now - last)
        assert dag.end is not None and dag.finished_at is not None, dag.state
        assert dag.end - 1e-3 <= dag.finished_at < dag.end + 0.5 + stall, stall


def test_sdk_wait_sees_the_paced_dag_finish() -> None:
    policy = PollPolicy(initial=0.02, fraction=0.05, ceiling=0.1, jitter=0.1)
    with FakeAgent(password=PWD, stage_durations=[0.02] * 8 + [0.3]) as a, \
            ObshellClient(a.host, a.port, auth=PasswordAuth(PWD), poll_policy=policy,
                          timeout=(2, 10)) as client:
        started = time.time()  # before the call: the DAG's clock starts at its POST
        task = client.upgrade_agent("4.3.1.0", "20250101.el7")
        task.wait(timeout=30)
        noticed = time.time()
        dag = a.dag(task.id)
        assert task.done() and dag.state == "SUCCEED" and dag.finished_at is not None
        assert started + 0.46 - 1e-3 <= dag.finished_at <= noticed  # 8 x 0.02 s + 0.3 s
