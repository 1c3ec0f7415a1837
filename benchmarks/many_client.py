"""A measured process following many tasks at once: ours or the official SDK.

    many_client.py ours|official

Prints ``{"pid"}`` (after importing the SDK), then reads one JSON line ``{"tasks": [{"port",
"dag"}, ...], "timeout"}``: one thread per task, started and parked on one event (so
that what is measured is the SDK, not Python starting 1,000 threads while the first ones
already compete for the GIL); then, the clock started, one client per agent (``client.py``'s
``Ours`` / ``Official``) and the event set: every thread calls the SDK's own waiting call
(ours: ``client.task(id).wait(timeout, progress=False)``; official: ``wait_dag_succeed(id)``)
and notes ``time.time()`` when it returned. Answers ``{"runs": [{"noticed"} | {"error"},
...], "wall", "cpu", "cpu_system", "context_switches", "max_rss_kb", "started",
"threads_started_in", "unfinished"}``:
``wall`` from the event to the last thread's return, ``cpu`` (user + system) over the same
span, ``max_rss_kb`` the process's peak (``getrusage``); threads still running after
``timeout`` + 60 s are reported ``unfinished`` and left behind (daemons: they die with the
process).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from typing import Any

from client import Official, Ours


def follow(sdk: Any, cmd: dict[str, Any]) -> dict[str, Any]:
    tasks, timeout = cmd["tasks"], cmd["timeout"]
    runs: list[dict[str, Any]] = [{} for _ in tasks]
    clients: dict[int, Any] = {}
    go = threading.Event()

    def one(i: int, task: dict[str, Any]) -> None:
        if not go.wait(timeout + 60):
            return
        try:
            clients[task["port"]].wait(task["dag"], timeout)
        except Exception as exc:  # reported, not raised: the other threads go on
            runs[i] = {"error": f"{type(exc).__name__}: {exc}"[:300], "at": time.time()}
            return
        runs[i] = {"noticed": time.time()}

    threads = [threading.Thread(target=one, args=(i, t), daemon=True, name=f"follow-{i}")
               for i, t in enumerate(tasks)]
    begun = time.perf_counter()
    for thread in threads:
        thread.start()
    threads_started_in = time.perf_counter() - begun
    usage0, started, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.time(), \
        time.perf_counter()
    clients.update((port, sdk(port)) for port in sorted({t["port"] for t in tasks}))
    go.set()
    deadline = time.monotonic() + timeout + 60
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    wall = time.perf_counter() - wall0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"runs": runs, "wall": wall, "started": started,
            "threads_started_in": threads_started_in,
            "cpu": (usage.ru_utime + usage.ru_stime) - (usage0.ru_utime + usage0.ru_stime),
            "cpu_system": usage.ru_stime - usage0.ru_stime,
            "context_switches": (usage.ru_nvcsw + usage.ru_nivcsw)
            - (usage0.ru_nvcsw + usage0.ru_nivcsw),
            "max_rss_kb": usage.ru_maxrss,
            "unfinished": sum(1 for t in threads if t.is_alive())}


def main(sdk_name: str) -> None:
    sdk = {"ours": Ours, "official": Official}[sdk_name]
    if sdk_name == "ours":
        import obshell_sdk  # noqa: F401 - imported before measuring, as the official one below
    else:
        import obshell  # noqa: F401
    print(json.dumps({"pid": os.getpid()}), flush=True)
    line = sys.stdin.readline()
    if line:
        print(json.dumps(follow(sdk, json.loads(line))), flush=True)
        sys.stdin.readline()  # stay until told to go (stdin closes)


if __name__ == "__main__":
    main(sys.argv[1])
