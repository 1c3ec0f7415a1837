"""How late ``DagTask`` sees the wait benchmark's tasks end, from its polling rules alone.

    PYTHONPATH=. .venv/bin/python benchmarks/cadence_model.py [--trials N] [--plain] [--exact]

Not a measurement: no agent, no network, no threads; it runs in a few seconds. Each run of
a cell is the task ``run.py``'s wait benchmark makes (its nominal length times 1.0-1.2,
nine stages, equal or 80 % in the first or last; at any time or in 1 s scheduler passes of
a random phase, each pass 5-30 ms longer than a second), and the polls ``DagTask.wait``
would send: the first at the task's start, then each pause from the SDK's own
``PollPolicy.interval`` moved by its own ``Passes`` (as ``DagTask._pause`` does; a 2 ms
round trip; the agent's and the DAG's clocks agree). For each cell it prints the mean of
the medians of 10 runs, how often such a median meets the issue's target and how often the
worst of the 10 is within twice the median plus 0.5 s, and the median number of polls.
``--plain`` leaves the scheduler passes out (``PollPolicy(scheduler_period=None)``).
``--exact`` models the very tasks ``run.py`` runs instead of new ones for every trial: its
task lengths and schedulers' phases are drawn from fixed seeds, so a cell's ten tasks are
the same in every run and only the SDK's jitter and the machine vary; ``--trials`` then
counts repeats of those ten.

It shows which cells of ``run.py`` fail by luck and which by design: the 1 s "any time"
cells end 1.0-1.2 s after a start that the polls share (0, 0.5, 1, 1.5 s...), so they are
seen 0.3-0.5 s late by any poller at two polls a second, the SDK's or the floor's.
"""

from __future__ import annotations

import argparse
import random
import statistics
from datetime import datetime, timezone
from types import SimpleNamespace

from agent_server import schedule
from run import LENGTHS, MEDIAN_LIMIT, PACES, SHAPES, stage_lengths, wait_waves

from obshell_sdk import DagState, PollPolicy
from obshell_sdk._passes import Passes

RTT = 0.002
EPOCH = 1_700_000_000.0  # where the model's time 0 sits on the stamps' clock
LIMIT = MEDIAN_LIMIT  # the median targets


def steps(stages: list[float], period: float | None, rng: random.Random) -> list[tuple[float, int]]:
    """(when, stage) of each step, stage 10 the end: as agent_server.py schedules them."""
    return schedule(stages, 0.0, period, rng)


def snapshot(events: list[tuple[float, int]], t: float) -> SimpleNamespace:
    """The DAG as the fake agent shows it at ``t``: what ``Passes.observe`` reads of it."""
    def stamp(x: float) -> datetime:
        return datetime.fromtimestamp(EPOCH + x, timezone.utc)

    nodes = [SimpleNamespace(state=DagState.PENDING, start_time=None, end_time=None)
             for _ in range(9)]
    dag = SimpleNamespace(state=DagState.READY, start_time=None, end_time=None, nodes=nodes)
    for when, k in (e for e in events if e[0] <= t):
        dag.state = DagState.RUNNING
        dag.start_time = dag.start_time or stamp(when)
        for node in nodes[:k - 1] if k <= 9 else nodes:
            if node.state is not DagState.SUCCEED:
                node.start_time = node.start_time or stamp(when)
                node.state, node.end_time = DagState.SUCCEED, stamp(when)
        if k <= 9:
            nodes[k - 1].state, nodes[k - 1].start_time = DagState.RUNNING, stamp(when)
        else:
            dag.state, dag.end_time = DagState.SUCCEED, stamp(when)
    return dag


def follow(events: list[tuple[float, int]], policy: PollPolicy) -> tuple[float, int]:
    """(delay from the end to the poll that saw it, polls): DagTask.wait from time 0."""
    passes, t, polls = Passes(), 0.0, 0
    while True:
        polls += 1
        detail = snapshot(events, t + RTT / 2)
        passes.observe(detail, EPOCH + t)  # type: ignore[arg-type]
        t += RTT
        if detail.state is DagState.SUCCEED:
            return t - events[-1][0], polls
        pause = policy.interval(t)
        if policy.scheduler_period is not None:
            now = EPOCH + t
            at = passes.next_poll(now + pause, now + policy.initial, policy.scheduler_period)
            pause = pause if at is None else at - now
        t += pause


def exact_tasks() -> dict[tuple[str, int, str], list[list[tuple[float, int]]]]:
    """The steps of every task run.py's wait benchmark runs, by (pace, length, shape)."""
    cells: dict[tuple[str, int, str], list[list[tuple[float, int]]]] = {}
    for pace, period, length, plan, specs, seed in wait_waves(quick=False):
        rng = random.Random(seed)  # one per wave, its tasks in order, as agent_server.py's
        for shape, spec in zip(plan, specs):
            cells.setdefault((pace, length, shape), []).append(
                steps(spec["stages"], period, rng))
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=400, help="cells of 10 runs per row "
                        "(a quarter of that for 30 s tasks)")
    parser.add_argument("--plain", action="store_true", help="no scheduler passes")
    parser.add_argument("--exact", action="store_true", help="the tasks run.py runs")
    args = parser.parse_args()
    rng = random.Random(5)
    random.seed(6)  # the policy's jitter and the passes' spread
    policy = PollPolicy(scheduler_period=None) if args.plain else PollPolicy()
    exact = exact_tasks() if args.exact else None
    print(f"{'task':5} {'shape':11} {'pace':11} {'mean median':>11}  P(median ok)  "
          "P(worst ok)  polls")
    for pace, period in PACES.items():
        for length in LENGTHS:
            for shape in SHAPES:
                medians, worst_ok, polls = [], 0, []
                for _ in range(args.trials // 4 if length == 30 else args.trials):
                    tasks = exact[pace, length, shape] if exact else [
                        steps(stage_lengths(length * rng.uniform(1.0, 1.2), shape), period, rng)
                        for _ in range(10)]
                    runs = [follow(events, policy) for events in tasks]
                    median = statistics.median(d for d, _ in runs)
                    medians.append(median)
                    worst_ok += max(d for d, _ in runs) <= 2 * median + 0.5
                    polls.append(statistics.median(n for _, n in runs))
                met = sum(m <= LIMIT[length] for m in medians) / len(medians)
                print(f"{length:>2} s  {shape:11} {pace:11} {statistics.mean(medians):9.3f} s"
                      f"  {met:12.2f}  {worst_ok / len(medians):11.2f}  "
                      f"{statistics.mean(polls):5.1f}")


if __name__ == "__main__":
    main()
