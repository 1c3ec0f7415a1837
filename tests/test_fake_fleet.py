"""FakeFleet: many fake agents, in this process or in worker processes, and nothing left behind."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from test_fake_agent import PWD, UPGRADE, call

from obshell_sdk.testing import FakeAgent, FakeFleet, FleetAgent


def stand_in(member: FleetAgent) -> Any:
    """What test_fake_agent's ``call`` needs of an agent, for a fleet member anywhere."""
    key = requests.get(member.base_url + "/api/v1/secret", timeout=5).json()["data"]["public_key"]
    return SimpleNamespace(base_url=member.base_url, now=time.time, public_key_b64=key)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for(check: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return bool(check())


def _exercise(fleet: FakeFleet) -> None:
    """The same checks whether the agents run here or in workers."""
    assert len(set(fleet.targets)) == len(fleet) == fleet.n
    keys = set()
    for member in fleet:
        info = requests.get(member.base_url + "/api/v1/info", timeout=5).json()["data"]
        assert f"127.0.0.1:{info['port']}" == member.target and info["obVersion"] == "4.3.5.0-1"
        keys.add(member.public_key_b64)
    assert len(keys) == fleet.n  # each its own key
    first, second = fleet[fleet.targets[0]], fleet.agents[1]
    assert first.request_counts() == {("GET", "/api/v1/info"): 1}
    second.set_faults(fail_stage=2)
    dag_id = call(stand_in(second), "POST", "/api/v1/agent/upgrade", UPGRADE).json()["data"]["id"]
    second.call("advance_dag", dag_id, 3)
    states = second.dag_states()
    assert states[dag_id]["state"] == "FAILED" and states[dag_id]["stage"] == 2
    assert first.dag_states() == {}  # each its own cluster
    first.set_faults(drop_reply_after_create=True)
    with pytest.raises(requests.ConnectionError):
        call(stand_in(first), "POST", "/api/v1/agent/upgrade", UPGRADE)
    assert len(first.dag_states()) == 1 and first.get("drop_reply_after_create") is False
    first.set("python_ok", False)
    assert first.get("python_ok") is False
    with pytest.raises((RuntimeError, AttributeError)):
        first.call("no_such_method")
    with pytest.raises((RuntimeError, AttributeError)):
        first.get("_state")


def _restart_with_new_key(member: FleetAgent) -> None:
    old = member.public_key_b64
    member.set("restart_seconds", 0.2)
    member.set_faults(restart_at_stage=2, restart_new_key_bits=1024)
    dag_id = member.call("create_upgrade_dag", "4.3.1.0", "1.el7")
    member.call("advance_dag", dag_id, 2)
    assert _wait_for(lambda: member.public_key_b64 != old)
    assert member.call("wait_listening", 10)
    secret = requests.get(member.base_url + "/api/v1/secret", timeout=5).json()["data"]
    assert secret["public_key"] == member.public_key_b64 != old


def test_in_process_fleet() -> None:
    before = set(threading.enumerate())
    with FakeFleet(3, password=PWD, ob_version="4.3.5.0-1") as fleet:
        _exercise(fleet)
        _restart_with_new_key(fleet.agents[2])
        assert isinstance(fleet.agents[0].fake, FakeAgent)
        assert fleet.agents[0].fake.port == int(fleet.targets[0].rsplit(":", 1)[1])
    assert len(fleet) == 0 and fleet.targets == []
    assert _wait_for(lambda: set(threading.enumerate()) <= before)


def test_a_fault_that_could_never_fire_is_refused_in_the_callers_process() -> None:
    with FakeFleet(1, processes=True) as fleet:
        with pytest.raises(ValueError, match="fail_stage must be a stage number"):
            fleet.agents[0].set_faults(fail_stage=0)
        fleet.agents[0].set_faults(fail_stage=2)  # the worker took no harm


def test_in_process_fleet_stops_on_errors() -> None:
    before = set(threading.enumerate())
    with pytest.raises(ZeroDivisionError), FakeFleet(2) as fleet:
        assert len(fleet.targets) == 2
        raise ZeroDivisionError
    assert _wait_for(lambda: set(threading.enumerate()) <= before)
    with pytest.raises(ValueError):
        FakeFleet(2, edition="enterprise").start()
    with pytest.raises(ValueError):
        FakeFleet(0)


def test_process_fleet() -> None:
    before = set(threading.enumerate())
    fleet = FakeFleet(4, processes=True, per_process=2, password=PWD, ob_version="4.3.5.0-1")
    with fleet:
        pids = {c.process.pid for c in fleet._channels}
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        _exercise(fleet)
        _restart_with_new_key(fleet.agents[3])
        with pytest.raises(RuntimeError):
            _ = fleet.agents[0].fake  # the agent lives in a worker
        fleet.start()  # already started: nothing new
        assert {c.process.pid for c in fleet._channels} == pids
    assert multiprocessing.active_children() == []
    assert not any(_alive(p) for p in pids)
    assert _wait_for(lambda: set(threading.enumerate()) <= before)


def test_process_fleet_ports_close_on_stop() -> None:
    with FakeFleet(2, processes=True) as fleet:
        targets = fleet.targets
        assert all(requests.get(f"http://{t}/api/v1/info", timeout=5).ok for t in targets)
    for target in targets:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://{target}/api/v1/info", timeout=2)


def test_process_fleet_that_cannot_start_leaves_nothing() -> None:
    with pytest.raises(RuntimeError, match="edition"):
        FakeFleet(3, processes=True, per_process=1, edition="enterprise").start()
    assert multiprocessing.active_children() == []


def test_a_dead_parent_ends_its_workers() -> None:
    """A worker whose pipe closes (the parent went away) stops its agents and exits."""
    fleet = FakeFleet(1, processes=True).start()
    channel = fleet._channels[0]
    channel.conn.close()  # what the parent's death does to the worker's pipe
    channel.process.join(20)
    assert not channel.process.is_alive()
    fleet._channels = []
    fleet.stop()
