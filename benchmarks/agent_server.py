"""A fake obshell agent in its own process, for the benchmarks.

Starts :class:`obshell_sdk.testing.FakeAgent` with the options given as arguments, prints one
JSON line (``{"port", "pid", "dag_id"}``) and then answers control commands, one per stdin
line, with one JSON line each:

``counts``  GET requests of ``/api/v1/task/dag/<id>`` per DAG id, and all requests seen
``marks``   per DAG id: when the agent marked it finished (``time.time()`` at the moment of
            marking) and the ``end`` time it reports in the DAG JSON
``clear``   forget recorded requests and marks
``cpu``     this process's user+system CPU seconds

It stops (agent and process) when its stdin closes.

    python3 benchmarks/agent_server.py --password bench-password --frozen-dag
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from obshell_sdk.testing import FakeAgent
from obshell_sdk.testing._dagmodel import FakeDag

DAG_GET = re.compile(r"^/api/v1/task/dag/(\d+)$")


class MarkRecorder:
    """Records the wall-clock moment the agent marks each DAG finished.

    The DAG JSON's ``end_time`` of a time-driven DAG is the *scheduled* step time, which the
    agent's ticker reaches up to 20 ms later; this keeps the real marking moment too.
    """

    def __init__(self, agent: FakeAgent) -> None:
        self.lock = threading.Lock()
        self.marks: dict[str, dict[str, float]] = {}
        store = agent._dags
        original: Callable[..., None] = type(store)._finish

        def finish(dag: FakeDag, state: str, now: float, stage: Optional[int] = None) -> None:
            marked_at = time.time()
            original(dag, state, now, stage)
            with self.lock:
                self.marks[dag.generic_id] = {"marked_at": marked_at, "end": now}

        store._finish = finish  # type: ignore[method-assign]

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self.lock:
            return dict(self.marks)

    def clear(self) -> None:
        with self.lock:
            self.marks.clear()


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--password", default="bench-password")
    parser.add_argument("--key-bits", type=int, default=1024)
    parser.add_argument("--stage-seconds", type=float, default=None,
                        help="time-driven DAGs: seconds per step (default: poll-driven)")
    parser.add_argument("--stages-per-poll", type=int, default=1)
    parser.add_argument("--frozen-dag", action="store_true",
                        help="create an upgrade DAG at stage 4 that never moves; print its id")
    return parser.parse_args(argv)


def start_agent(args: argparse.Namespace) -> FakeAgent:
    return FakeAgent(password=args.password, key_bits=args.key_bits,
                     stage_seconds=args.stage_seconds,
                     stages_per_poll=args.stages_per_poll).start()


def frozen_dag(agent: FakeAgent) -> str:
    dag_id = agent.create_upgrade_dag("4.3.1.0", "1.el7")
    agent.set_dag_stage(dag_id, 4)
    agent.set_dag_progression(stages_per_poll=0, dag_id=dag_id)
    return dag_id


def counts(agent: FakeAgent) -> dict[str, Any]:
    per_dag: dict[str, int] = {}
    requests = agent.requests
    for rec in requests:
        found = DAG_GET.match(rec.path)
        if rec.method == "GET" and found:
            per_dag[found.group(1)] = per_dag.get(found.group(1), 0) + 1
    return {"dag_gets": per_dag, "total": len(requests)}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def answer(command: str, agent: FakeAgent, marks: MarkRecorder) -> dict[str, Any]:
    if command == "counts":
        return counts(agent)
    if command == "marks":
        return {"marks": marks.snapshot()}
    if command == "clear":
        agent.clear_requests()
        marks.clear()
        return {"ok": True}
    if command == "cpu":
        return {"cpu": cpu_seconds()}
    return {"error": f"unknown command {command!r}"}


def serve(agent: FakeAgent, marks: MarkRecorder) -> None:
    for line in sys.stdin:
        command = line.strip()
        if command:
            print(json.dumps(answer(command, agent, marks)), flush=True)


def main() -> None:
    args = parse_args()
    agent = start_agent(args)
    marks = MarkRecorder(agent)
    try:
        dag_id = frozen_dag(agent) if args.frozen_dag else None
        print(json.dumps({"port": agent.port, "pid": os.getpid(), "dag_id": dag_id}), flush=True)
        serve(agent, marks)
    finally:
        agent.stop()


if __name__ == "__main__":
    main()
