"""Measured client process for the OFFICIAL SDK (PyPI ``obshell==0.0.9``); prints one JSON line.

Runs with the official SDK's own venv (``/tmp/offvenv/bin/python``); never imports
``obshell_sdk``. Same modes and output as ``client_ours.py``:

    percall PORT DAG_ID CALLS ROUNDS   per-round wall/CPU of ClientV1.get_dag
    wait PORT RUNS TIMEOUT             upgrade_agent(), then wait_dag_succeed() (polls every 3 s)
    many N PORT [PORT ...]             N check DAGs (upgrade_agent_check) in N threads
    memory PORT                        import, create one upgrade DAG and follow it; ru_maxrss
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _client_common import PASSWORD, RELEASE, VERSION, dispatch, emit, timed


def make_client(port: int) -> Any:
    from obshell import ClientV1
    from obshell.auth.password import PasswordAuth

    return ClientV1("127.0.0.1", port, auth=PasswordAuth(PASSWORD))


def percall(port: int, dag_id: str, calls: int, rounds: int) -> None:
    client = make_client(port)
    timed(max(20, calls // 10), lambda: client.get_dag(dag_id))
    results = [timed(calls, lambda: client.get_dag(dag_id)) for _ in range(rounds)]
    emit({"calls": calls, "rounds": {"official": results}})


def wait(port: int, runs: int, timeout: float) -> None:
    client = make_client(port)
    client.get_info()
    records = []
    for _ in range(runs):
        created_at = time.time()
        dag = client.upgrade_agent(VERSION, RELEASE)
        detail = client.wait_dag_succeed(dag.generic_id)
        returned_at = time.time()
        if returned_at - created_at > timeout:
            raise SystemExit(f"official wait took {returned_at - created_at:.1f} s")
        records.append({"dag_id": dag.generic_id, "created_at": created_at,
                        "returned_at": returned_at, "end_time": None, "polls": None,
                        "state": detail.state})
    emit({"runs": records})


def many(n: int, ports: list[int]) -> None:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    clients = [make_client(p) for p in ports]
    for client in clients:  # learn auth version and key once, before the threads race
        client.get_unfinished_dags()

    spans: list[tuple[float, float]] = []

    def follow(i: int) -> str:
        t0 = time.perf_counter()
        client = clients[i % len(clients)]
        dag = client.upgrade_agent_check(VERSION, RELEASE)
        t1 = time.perf_counter()
        state = str(client.wait_dag_succeed(dag.generic_id).state)
        spans.append((t1 - t0, time.perf_counter() - t1))
        return state

    with ThreadPoolExecutor(max_workers=n) as pool:
        states = list(pool.map(follow, range(n)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    emit({"n": n, "wall": wall, "cpu": cpu, "succeeded": states.count("SUCCEED"),
          "create_s": sorted(c for c, _ in spans), "follow_s": sorted(f for _, f in spans)})


def memory(port: int) -> None:
    client = make_client(port)
    dag = client.upgrade_agent(VERSION, RELEASE)
    detail = client.wait_dag_succeed(dag.generic_id)
    emit({"state": str(detail.state)})


def main(argv: list[str]) -> None:
    dispatch(argv, {"percall": percall, "wait": wait, "many": many, "memory": memory})


if __name__ == "__main__":
    main(sys.argv[1:])
