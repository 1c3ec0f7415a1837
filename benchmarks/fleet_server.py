"""A fleet of fake agents (``FakeFleet(processes=True)``) served from worker processes.

    fleet_server.py '{"n": 100, "per_process": 25, "dag_seconds": 3.0}'

Uses only the public API of :mod:`obshell_sdk.testing` (``FakeAgent``, ``FakeFleet``). The
agents are time-driven: an upgrade DAG runs ``dag_seconds`` from its creation, in equal stages
and share one RSA key, made once here (the client cannot tell: it fetches each agent's key
from that agent), so a fleet of 100 starts in seconds. Prints ``{"pid", "targets",
"stages": {"upgrade", "check"}, "key_seconds", "started_in"}`` first, then answers one JSON
line per command:

``{"op": "create_checks", "per_agent": k, "lengths": [seconds, ...]}``
    ``k`` upgrade-check DAGs (no maintenance lock, so many at once) on every agent, agent
    ``i`` lasting ``lengths[i]`` seconds from its creation -> ``{"tasks": [{"target", "port",
    "dag"}, ...], "created_in"}``.
``{"op": "pace", "lengths": [seconds, ...]}``
    upgrade DAGs created from now on on agent ``i`` last ``lengths[i]`` seconds -> ``{}``.
``{"op": "report"}``
    per agent: ``counts`` (``[method, path, n]``: requests by method and path) and ``dags``
    (``dag_states()``: name, state, stage, finished_at, ...), and ``worker_cpu``: CPU seconds
    used so far by the fleet's worker processes (from ``/proc``).

It stops the fleet (agents and worker processes) when its stdin closes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

from obshell_sdk.testing import FakeAgent, FakeFleet

PASSWORD = "bench-password"


def stage_counts() -> tuple[dict[str, int], bytes, float]:
    """Stages of an agent upgrade DAG and of its check DAG; one RSA key for the whole fleet."""
    start = time.perf_counter()
    probe = FakeAgent(password=PASSWORD)  # never started: no socket
    seconds = time.perf_counter() - start
    upgrade, check = probe.create_upgrade_dag(), probe.create_upgrade_dag(check=True)
    stages = {"upgrade": probe.dag(upgrade).max_stage, "check": probe.dag(check).max_stage}
    return stages, probe.private_key_der, seconds


def worker_cpu() -> float:
    """CPU seconds (user + system) used so far by this process's children (the workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for child in multiprocessing.active_children():
        try:
            fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def create_checks(fleet: FakeFleet, stages: int, cmd: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    tasks = []
    for agent, length in zip(fleet.agents, cmd["lengths"]):
        agent.call("set_dag_progression", stage_seconds=length / stages)
        port = int(agent.target.rsplit(":", 1)[1])
        for _ in range(cmd["per_agent"]):
            dag = agent.call("create_upgrade_dag", check=True)
            tasks.append({"target": agent.target, "port": port, "dag": dag})
    return {"tasks": tasks, "created_in": time.perf_counter() - start}


def report(fleet: FakeFleet) -> dict[str, Any]:
    agents = [{"target": a.target,
               "counts": [[m, p, n] for (m, p), n in sorted(a.request_counts().items())],
               "dags": a.dag_states()} for a in fleet.agents]
    return {"agents": agents, "worker_cpu": worker_cpu()}


def main(config: dict[str, Any]) -> None:
    stages, key, key_seconds = stage_counts()
    start = time.perf_counter()
    with FakeFleet(config["n"], processes=True, per_process=config["per_process"],
                   password=PASSWORD, private_key=key,
                   stage_seconds=config["dag_seconds"] / stages["upgrade"]) as fleet:
        print(json.dumps({"pid": os.getpid(), "targets": fleet.targets, "stages": stages,
                          "key_seconds": key_seconds,
                          "started_in": time.perf_counter() - start}), flush=True)
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd["op"] == "create_checks":
                answer = create_checks(fleet, stages["check"], cmd)
            elif cmd["op"] == "pace":
                for agent, length in zip(fleet.agents, cmd["lengths"]):
                    agent.call("set_dag_progression", stage_seconds=length / stages["upgrade"])
                answer = {}
            elif cmd["op"] == "report":
                answer = report(fleet)
            else:
                answer = {"error": f"unknown op {cmd['op']!r}"}
            print(json.dumps(answer), flush=True)


if __name__ == "__main__":  # the guard multiprocessing's spawn needs
    main(json.loads(sys.argv[1]))
