"""A measured rollout process: one ``Rollout(...).upgrade_agent`` and nothing else.

    rollout_client.py

Prints ``{"pid"}`` (after importing the SDK), then reads one JSON line ``{"targets",
"journal", "parallel", "version", "release", "timeout"}`` and runs

    Rollout(targets, auth=PasswordAuth(PASSWORD), journal=journal, parallel=parallel,
            progress=False).upgrade_agent(version, release, check=False, timeout=timeout)

through the public API only. Answers ``{"wall", "cpu", "cpu_process", "max_rss_kb",
"threads", "results": {target: {"outcome", "dag_ids", "error"}}, "events": [[at, target,
step, what], ...], "started", "ended"}``: ``wall`` and ``cpu`` (user + system, this
process) span the ``upgrade_agent`` call; ``max_rss_kb`` is the process's peak resident set
(``getrusage``); ``events`` are the rows of the journal's ``events`` table, read back from
the file afterwards.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import sys
import threading
import time
from typing import Any

from obshell_sdk import PasswordAuth, Rollout

PASSWORD = "bench-password"


def run(cmd: dict[str, Any]) -> dict[str, Any]:
    rollout = Rollout(cmd["targets"], auth=PasswordAuth(PASSWORD), journal=cmd["journal"],
                      parallel=cmd["parallel"], progress=False)
    peak_threads = [threading.active_count()]
    done = threading.Event()

    def count_threads() -> None:
        while not done.wait(0.1):
            peak_threads.append(threading.active_count())

    watcher = threading.Thread(target=count_threads, daemon=True)
    watcher.start()
    usage0, started, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.time(), \
        time.perf_counter()
    try:
        report = rollout.upgrade_agent(cmd["version"], cmd["release"], check=False,
                                       timeout=cmd["timeout"])
    finally:
        wall = time.perf_counter() - wall0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        done.set()
        watcher.join()
    db = sqlite3.connect(f"file:{cmd['journal']}?mode=ro", uri=True)
    try:
        events = db.execute("SELECT at, target, step, what FROM events ORDER BY seq").fetchall()
    finally:
        db.close()
    return {
        "wall": wall, "started": started, "ended": started + wall,
        "cpu": (usage.ru_utime + usage.ru_stime) - (usage0.ru_utime + usage0.ru_stime),
        "cpu_process": usage.ru_utime + usage.ru_stime, "max_rss_kb": usage.ru_maxrss,
        "threads": max(peak_threads),
        "results": {t: {"outcome": r.outcome.value, "dag_ids": list(r.dag_ids),
                        "error": r.error} for t, r in report.results.items()},
        "events": [list(e) for e in events],
    }


def main() -> None:
    print(json.dumps({"pid": os.getpid()}), flush=True)
    line = sys.stdin.readline()
    if line:
        print(json.dumps(run(json.loads(line))), flush=True)
        sys.stdin.readline()  # stay until told to go (stdin closes)


if __name__ == "__main__":
    main()
