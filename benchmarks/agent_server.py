"""Fake obshell agents in their own process, driven by JSON lines on stdin.

Uses only the public API of :class:`obshell_sdk.testing.FakeAgent`. No DAG moves on its own
or when polled (``stages_per_poll=0``): a timer thread here moves them on a schedule. Prints
``{"port", "pid", "dag"}`` first (an agent with a 9-stage upgrade DAG frozen at stage 4, for
per-call timing), then answers one JSON line per command:

``{"op": "prepare", "tasks": [{"at": s, "stages": [s, ...]}, ...]}``
    a new upgrade DAG per task, each on its own agent (an agent runs one upgrade at a time;
    agents are made as needed, kept for later waves and share one RSA key). Each agent also
    has a frozen check DAG (``warm``) for the client's warm-up. Answers ``{"tasks": [{"port",
    "dag", "warm"}, ...]}``.
``{"op": "start", "base": t, "period": p, "seed": n}``
    the prepared DAGs enter stage 1 at ``base + at`` (``time.time()``), each next stage after
    the given lengths, and are finished (``finish_dag``) after the last. With ``period`` (not
    null), as under obshell's task scheduler: each agent's scheduler runs every ``period``
    seconds plus 5-30 ms (what a pass itself takes), at a phase of its own, and a step
    happens in the first pass at or after its time (random numbers from ``seed``).
``{"op": "report"}``
    per prepared task, in order: ``start`` (stage 1, as scheduled), ``finished_at``
    (``time.time()`` once ``finish_dag`` returned), ``late_step`` (the most any of its steps
    ran after its scheduled time) and ``polls`` (when each GET of the DAG was seen: a
    sampler reads ``agent.requests`` every 2 ms).

It stops (agents, timer and sampler) when its stdin closes.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from typing import Any, Optional

from obshell_sdk.testing import FakeAgent

PASSWORD = "bench-password"
SAMPLE_EVERY = 0.002


class Task:
    """One scheduled upgrade DAG on its own agent, and what was seen of it."""

    def __init__(self, agent: FakeAgent, warm: str, spec: dict[str, Any]) -> None:
        self.agent, self.warm, self.spec = agent, warm, spec
        agent.clear_requests()
        self.dag = agent.create_upgrade_dag()
        self.path = f"/api/v1/task/dag/{self.dag}"
        self.start = self.finished_at = 0.0
        self.late = 0.0
        self.polls: list[float] = []
        self.seen = 0  # requests already looked at by the sampler


class Bench:
    def __init__(self) -> None:
        self.agent = FakeAgent(password=PASSWORD).start()
        self.agent.set_dag_progression(stages_per_poll=0)
        self.frozen = self.agent.create_upgrade_dag()
        self.agent.set_dag_stage(self.frozen, 4)
        self.pool: list[tuple[FakeAgent, str]] = []  # (agent, its warm-up DAG) for the tasks
        self.tasks: list[Task] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def prepare(self, specs: list[dict[str, Any]]) -> dict[str, Any]:
        if not self.pool:  # the first wave: from now on, time the polls
            self.spawn(self.sample)
        while len(self.pool) < len(specs):
            agent = FakeAgent(password=PASSWORD, private_key=self.agent.private_key_der).start()
            agent.set_dag_progression(stages_per_poll=0)
            self.pool.append((agent, agent.create_upgrade_dag(check=True)))
        with self.lock:
            self.tasks = [Task(agent, warm, spec) for (agent, warm), spec in zip(self.pool, specs)]
        return {"tasks": [{"port": t.agent.port, "dag": t.dag, "warm": t.warm}
                          for t in self.tasks]}

    def start(self, base: float, period: Optional[float], seed: int) -> dict[str, Any]:
        events: list[tuple[float, int, int]] = []  # (when, task index, stage; one past: finish)
        rng = random.Random(seed)
        for i, task in enumerate(self.tasks):
            task.start = base + task.spec["at"]
            events += [(when, i, stage) for when, stage in
                       schedule(task.spec["stages"], task.start, period, rng)]
        self.spawn(self.drive, list(self.tasks), sorted(events))
        return {"ok": True}

    def drive(self, tasks: list[Task], events: list[tuple[float, int, int]]) -> None:
        for when, i, stage in events:
            due = when - time.time()
            if due > 0 and self.stop.wait(due):  # a backlog is worked off without sleeping
                return
            task = tasks[i]
            task.late = max(task.late, time.time() - when)
            if stage <= len(task.spec["stages"]):
                task.agent.set_dag_stage(task.dag, stage)
            else:
                task.agent.finish_dag(task.dag)
                task.finished_at = time.time()

    def sample(self) -> None:
        while not self.stop.wait(SAMPLE_EVERY):
            with self.lock:
                for task in self.tasks:
                    records = task.agent.requests
                    now = time.time()
                    task.polls += [now for r in records[task.seen:]
                                   if r.method == "GET" and r.path == task.path]
                    task.seen = len(records)

    def report(self) -> dict[str, Any]:
        time.sleep(3 * SAMPLE_EVERY)  # let the sampler see the last polls
        with self.lock:
            return {"tasks": [{"start": t.start, "finished_at": t.finished_at,
                               "late_step": t.late, "polls": t.polls} for t in self.tasks]}

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        for agent in [a for a, _ in self.pool] + [self.agent]:
            agent.stop()


def schedule(stages: list[float], start: float, period: Optional[float],
             rng: random.Random) -> list[tuple[float, int]]:
    """``(when, stage)`` of each step of a task (stage ``len(stages) + 1``: its end).

    Stage 1 at ``start``, each next one after the given lengths; with ``period``, in the
    passes of a scheduler (:func:`in_passes`), where a step due in the same pass as the next
    one is overtaken by it. ``benchmarks/cadence_model.py`` models the same steps.
    """
    times, at = [], start
    for length in stages:
        times.append(at)
        at += length
    times.append(at)
    if period is not None:
        times = in_passes(times, period, rng)
    return [(when, stage) for stage, when in enumerate(times, 1)
            if stage == len(times) or times[stage] != when]


def in_passes(times: list[float], period: float, rng: random.Random) -> list[float]:
    """Each time (ascending) moved to the first pass of a scheduler at or after it."""
    at = times[0] - rng.uniform(0, period)
    moved = []
    for t in times:
        while at < t:
            at += period + rng.uniform(0.005, 0.03)
        moved.append(at)
    return moved


def main() -> None:
    sys.setswitchinterval(0.001)  # the timer thread gets the GIL within 1 ms, not 5
    bench = Bench()
    try:
        print(json.dumps({"port": bench.agent.port, "pid": os.getpid(), "dag": bench.frozen}),
              flush=True)
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd["op"] == "prepare":
                answer = bench.prepare(cmd["tasks"])
            elif cmd["op"] == "start":
                answer = bench.start(cmd["base"], cmd.get("period"), cmd.get("seed", 0))
            elif cmd["op"] == "report":
                answer = bench.report()
            else:
                answer = {"error": f"unknown op {cmd['op']!r}"}
            print(json.dumps(answer), flush=True)
    finally:
        bench.close()


if __name__ == "__main__":
    main()
