"""How late the default PollPolicy sees a task's end, from its intervals alone (a model).

    PYTHONPATH=. .venv/bin/python benchmarks/cadence_model.py

Not a measurement: no agent, no network, no scheduler passes. Polls go out at the times
``PollPolicy().interval`` gives (the first at once; each pause plus a 3 ms round trip), and a
task lasts its nominal length times a random factor. For each case it prints the mean and
median delay (end -> the first poll after it), and how often the median of 10 runs (one cell
of ``run.py``'s wait benchmark) meets the issue's target. Two ways to start:

- ``fixed``: the SDK's, and the floor's: the second poll one interval after the first, so
  the polls fall at the same times after a task's start in every wait (0, 0.5, 1, 1.5 s...).
- ``drawn``: the second poll one to two intervals after the first, drawn evenly, so their
  phase is even whatever the task's length. Tried in 7330c34 and reverted (cac9aa7).

It shows why the wait benchmark's 1 s cells fail for the SDK and the floor alike: lengths of
1.0-1.2 s sit just past the 1 s poll. ``drawn`` meets them about three times in four and
moves the luck to lengths on the grid (the fleet benchmark's 3 s DAGs), which is why it was
not kept: over lengths spread wider than a poll interval, both average about 0.25 s.
"""

from __future__ import annotations

import random
import statistics

from obshell_sdk import PollPolicy

RTT = 0.003
#: (case, nominal seconds, lengths drawn from nominal x [1, 1 + spread], target or None)
CASES = [
    ("1 s x 1.0-1.2 (wait)", 1.0, 0.2, 0.3),
    ("5 s x 1.0-1.2 (wait)", 5.0, 0.2, 0.7),
    ("30 s x 1.0-1.2 (wait)", 30.0, 0.2, 3.0),
    ("1 s x 1.0-2.0", 1.0, 1.0, 0.3),
    ("3 s exactly (fleet, fixed)", 3.0, 0.0, None),
    ("3 s x 1.0-1.2 (fleet, varied)", 3.0, 0.2, None),
]


def delay(policy: PollPolicy, length: float, drawn: bool) -> float:
    """When the first poll at or after ``length`` (seconds after the first poll) goes out."""
    t = 0.0
    while t < length:
        pause = policy.interval(t)
        if drawn and t == 0.0:
            pause = min(policy.ceiling, pause * random.uniform(1, 2))
        t += pause + RTT
    return t - length


def main() -> None:
    rng = random.Random(1)
    random.seed(2)  # the policy's own jitter
    policy = PollPolicy()
    print(f"{'case':32} {'start':6} {'mean':>6} {'median':>7}  P(median of 10 <= target)")
    for case, nominal, spread, target in CASES:
        for drawn in (False, True):
            runs = [delay(policy, nominal * rng.uniform(1.0, 1.0 + spread), drawn)
                    for _ in range(20000)]
            met = "-"
            if target is not None:
                cells = [statistics.median(rng.sample(runs, 10)) for _ in range(4000)]
                met = f"{sum(m <= target for m in cells) / len(cells):.2f} (<= {target:g} s)"
            print(f"{case:32} {'drawn' if drawn else 'fixed':6} {statistics.mean(runs):6.3f} "
                  f"{statistics.median(runs):7.3f}  {met}")


if __name__ == "__main__":
    main()
