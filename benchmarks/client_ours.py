"""Measured client process for OUR SDK (``obshell_sdk`` from the repo); prints one JSON line.

Run by ``run.py`` with the system ``python3`` and ``PYTHONPATH`` set to the repo:

    percall PORT DAG_ID CALLS ROUNDS   per-round wall/CPU of get_dag, of the floor (a presigned
                                       request re-sent by a bare requests.Session), both
                                       interleaved round by round
    wait PORT RUNS TIMEOUT             create an upgrade DAG, task.wait(); one record per run
    many N PORT [PORT ...]             N check DAGs spread over the agents, created and
                                       followed in N threads (one client per agent)
    memory PORT                        import, create one upgrade DAG and follow it; ru_maxrss
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from _client_common import PASSWORD, RELEASE, VERSION, dispatch, emit, timed


def percall(port: int, dag_id: str, calls: int, rounds: int) -> None:
    import requests

    from obshell_sdk import ObshellClient, PasswordAuth
    from obshell_sdk._auth import MAX_LIFETIME

    client = ObshellClient("127.0.0.1", port, auth=PasswordAuth(PASSWORD))
    client.get_dag(dag_id)  # learns the auth version and the key
    uri = f"/api/v1/task/dag/{dag_id}?show_details=true"
    assert client.auth is not None
    signed = client.auth.sign(client.agent, uri, None, time.time(), lifetime=MAX_LIFETIME)
    headers = dict(signed.headers)
    url = client.base_url + uri
    floor = requests.Session()
    floor.trust_env = False  # the cheapest way to use requests: no per-call env lookups
    bare = requests.Session()  # requests' defaults (trust_env=True), for reference

    def floor_call(session: requests.Session = floor) -> None:
        resp = session.get(url, headers=headers)
        if resp.status_code != 200:
            raise RuntimeError(f"floor request failed: {resp.status_code}")

    modes: dict[str, Callable[[], object]] = {
        "ours": lambda: client.get_dag(dag_id),
        "floor": floor_call,
        "floor_default_session": lambda: floor_call(bare),
    }
    for call in modes.values():  # warm-up: connections, caches
        timed(max(20, calls // 10), call)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in modes}
    names = list(modes)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            results[name].append(timed(calls, modes[name]))
    client.close()
    emit({"calls": calls, "rounds": results})


def wait(port: int, runs: int, timeout: float) -> None:
    from obshell_sdk import ObshellClient, PasswordAuth

    records = []
    with ObshellClient("127.0.0.1", port, auth=PasswordAuth(PASSWORD)) as client:
        client.info()
        for _ in range(runs):
            created_at = time.time()
            task = client.upgrade_agent(VERSION, RELEASE)
            detail = task.wait(timeout=timeout)
            returned_at = time.time()
            end = detail.end_time.timestamp() if detail.end_time is not None else None
            records.append({"dag_id": task.id, "created_at": created_at,
                            "returned_at": returned_at, "end_time": end, "polls": task.polls,
                            "state": detail.state.value})
    emit({"runs": records})


def many(n: int, ports: list[int]) -> None:
    from obshell_sdk import ObshellClient, PasswordAuth

    cpu0, wall0 = time.process_time(), time.perf_counter()
    clients = [ObshellClient("127.0.0.1", p, auth=PasswordAuth(PASSWORD)) for p in ports]

    spans: list[tuple[float, float]] = []

    def follow(i: int) -> str:
        t0 = time.perf_counter()
        task = clients[i % len(clients)].check_agent_upgrade(VERSION, RELEASE)
        t1 = time.perf_counter()
        state = task.wait(timeout=120).state.value
        spans.append((t1 - t0, time.perf_counter() - t1))
        return state

    with ThreadPoolExecutor(max_workers=n) as pool:
        states = list(pool.map(follow, range(n)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    for client in clients:
        client.close()
    emit({"n": n, "wall": wall, "cpu": cpu, "succeeded": states.count("SUCCEED"),
          "create_s": sorted(c for c, _ in spans), "follow_s": sorted(f for _, f in spans)})


def memory(port: int) -> None:
    from obshell_sdk import ObshellClient, PasswordAuth

    with ObshellClient("127.0.0.1", port, auth=PasswordAuth(PASSWORD)) as client:
        detail = client.upgrade_agent(VERSION, RELEASE).wait(timeout=60)
    emit({"state": detail.state.value})


def main(argv: list[str]) -> None:
    dispatch(argv, {"percall": percall, "wait": wait, "many": many, "memory": memory})


if __name__ == "__main__":
    main(sys.argv[1:])
