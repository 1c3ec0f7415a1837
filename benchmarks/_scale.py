"""Speed at fleet scale: a 100-agent rollout (``fleet``), 1,000 tasks followed at once (``many``).

Both run against ``fleet_server.py`` (a ``FakeFleet(processes=True)``: the agents in worker
processes of their own), and measure a client process that does one thing:
``rollout_client.py`` (one ``Rollout.upgrade_agent``) or ``many_client.py`` (one thread per
task, ours or the official SDK). Everything on 127.0.0.1; every child is stopped on the way
out (stdin closed, killed 15 s later).
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from _harness import (
    BENCH_DIR,
    BenchResult,
    Child,
    Row,
    md_table,
    median,
    official_env,
    official_python,
    ours_env,
    ours_python,
)

RELEASE = "100000012024110109.el7"


def fleet_server(n: int, per_process: int, dag_seconds: float) -> Child:
    """``fleet_server.py``: hello is ``{"pid", "targets", "stages", ...}``."""
    config = {"n": n, "per_process": per_process, "dag_seconds": dag_seconds}
    return Child([ours_python(), str(BENCH_DIR / "fleet_server.py"), json.dumps(config)],
                 ours_env())


def counts_of(report: dict[str, Any]) -> dict[str, dict[tuple[str, str], int]]:
    """Requests by agent, then by (method, path)."""
    return {a["target"]: {(m, p): n for m, p, n in a["counts"]} for a in report["agents"]}


def mb(kb: float) -> str:
    return f"{kb * 1024 / 1e6:.1f} MB"


# -- 5. a rollout over 100 agents ----------------------------------------------------------

FLEET_N, FLEET_PARALLEL, FLEET_PER_PROCESS = 100, 20, 25
FLEET_DAG = 3.0  # seconds an upgrade DAG runs, from its creation (the POST) to its end
WALL_LIMIT, RSS_LIMIT_MB = 1.15, 150.0
UPGRADE = ("POST", "/api/v1/agent/upgrade")
# Two rollouts over the same fleet, each to a newer version, each from a fresh process:
# every DAG FLEET_DAG long, then each agent's DAGs FLEET_DAG x U(1.0, 1.2) (seeded).
ROUNDS = (("fixed", "4.3.1.0"), ("varied", "4.3.2.0"))


def makespan(lengths: Sequence[float], workers: int) -> float:
    """The rollout's schedule with nothing but the DAGs: each target, in order, goes to the
    first worker free."""
    free = [0.0] * workers
    for length in lengths:
        i = free.index(min(free))
        free[i] += length
    return max(free)


def bench_fleet(quick: bool) -> BenchResult:
    res = BenchResult("fleet", f"5. A rollout over {FLEET_N} agents, parallel={FLEET_PARALLEL}")
    rng = random.Random(20261202)
    rounds: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="obshell-bench-"))
        fleet = stack.enter_context(fleet_server(FLEET_N, FLEET_PER_PROCESS, FLEET_DAG))
        for name, version in ROUNDS:
            lengths = [FLEET_DAG * (1.0 if name == "fixed" else rng.uniform(1.0, 1.2))
                       for _ in range(FLEET_N)]
            rounds[name] = rollout_round(fleet, f"{tmp}/{name}.db", lengths, version)
    for name, _ in ROUNDS:
        res.rows += fleet_rows(name, rounds[name])
    res.markdown = ["Where a target's time goes (seconds; from the journal's `events` rows and "
                    "each agent's DAG `finished_at`). Each cell: median / mean / worst.", "",
                    *md_table(("phase", *(f"{n} DAGs" for n, _ in ROUNDS), "what"), [
                        [phase, *(" / ".join(f"{rounds[n]['phases'][phase][k]:.3f}"
                                             for k in ("median", "mean", "worst"))
                                  for n, _ in ROUNDS), PHASES[phase]]
                        for phase in PHASES if all(phase in r["phases"] for r in rounds.values())])]
    res.raw = {name: {k: v for k, v in r.items() if k != "lengths"} for name, r in rounds.items()}
    stages = fleet.hello["stages"]["upgrade"]
    res.notes += [
        f"{FLEET_N} fake agents (FakeFleet, processes=True, {FLEET_PER_PROCESS} per worker "
        f"process, so {math.ceil(FLEET_N / FLEET_PER_PROCESS)} workers; one RSA key shared, "
        f"made once); every upgrade DAG is time-driven, {stages} equal stages from its creation "
        "(the POST) to SUCCEED; an agent takes on the new version when its DAG ends.",
        f"Two rollouts over the same agents, each to a newer version, each from a fresh process "
        f"and journal: 'fixed', every DAG {FLEET_DAG:g} s (as asked: 5 waves x {FLEET_DAG:g} s); "
        f"'varied', each agent's DAG {FLEET_DAG:g} s x U(1.0, 1.2) (seeded). With one length for "
        "every DAG, every target's end falls at the same point between two polls, so 'fixed' "
        "measures one phase of the poll cadence; 'varied' spreads the phases as real DAGs do.",
        "The rollout runs in a process of its own (rollout_client.py): Rollout(targets, "
        f"auth=PasswordAuth(...), journal=<tmp>/<round>.db, parallel={FLEET_PARALLEL}, "
        "progress=False).upgrade_agent(version, "
        f"{RELEASE!r}, check=False, timeout=120); no package. Per target: a client, /info and "
        "/secret (auth), unfinished DAGs, the POST, the wait (default PollPolicy), /info to "
        "confirm the version, journal writes around each step.",
        f"ideal = the same schedule (targets in order, each to the first of {FLEET_PARALLEL} "
        "workers free) with nothing but the DAGs: 5 x 3 s = 15 s for 'fixed'. wall = the "
        "upgrade_agent call. client CPU = getrusage user + system of the rollout process over "
        "the call; peak RSS = its ru_maxrss (the whole process: interpreter, imports, 20 "
        "worker threads, SQLite).",
        "journal writes = rows of the journal's events table (one per committed step or end; "
        "WAL, synchronous=FULL), read back from the file after the run; / wall.",
        "upgrade POSTs and requests are counted by each agent (request_counts(), before and "
        "after each round).",
    ]
    return res


def rollout_round(fleet: Child, journal: str, lengths: list[float],
                  version: str) -> dict[str, Any]:
    """One rollout over the whole fleet from a fresh process; what it and the agents saw."""
    targets = fleet.hello["targets"]
    fleet.ask({"op": "pace", "lengths": lengths})
    before = fleet.ask({"op": "report"})
    ideal = makespan(lengths, FLEET_PARALLEL)
    with Child([ours_python(), str(BENCH_DIR / "rollout_client.py")], ours_env()) as runner:
        run = runner.ask({"targets": targets, "journal": journal, "parallel": FLEET_PARALLEL,
                          "version": version, "release": RELEASE, "timeout": 120},
                         timeout=3 * ideal + 120)
    after = fleet.ask({"op": "report"})
    old, new = counts_of(before), counts_of(after)
    delta = {t: {k: n - old[t].get(k, 0) for k, n in per.items()} for t, per in new.items()}
    outcomes = [run["results"][t]["outcome"] for t in targets]
    posts = [delta[t].get(UPGRADE, 0) for t in targets]
    requests = [sum(delta[t].values()) for t in targets]
    writes = len(run["events"])
    return {
        "lengths": lengths, "ideal": ideal, "wall": run["wall"], "cpu": run["cpu"],
        "cpu_process": run["cpu_process"], "max_rss_kb": run["max_rss_kb"],
        "threads": run["threads"], "journal_writes": writes,
        "succeeded": outcomes.count("succeeded"), "one_post": sum(1 for p in posts if p == 1),
        "max_posts": max(posts), "outcomes": {o: outcomes.count(o) for o in set(outcomes)},
        "requests_median": median(requests), "requests_all": sum(requests),
        "requests_by_path": by_path(delta),
        "phases": fleet_phases(run, after, targets),
        "agents_cpu": after["worker_cpu"] - before["worker_cpu"],
        "errors": sorted({r["error"] for r in run["results"].values() if r["error"]})[:5],
    }


def fleet_rows(name: str, r: dict[str, Any]) -> list[Row]:
    b, wall, ideal = f"fleet, {name} DAGs", r["wall"], r["ideal"]
    rss_mb = r["max_rss_kb"] * 1024 / 1e6
    notice = r["phases"].get("notice", {"median": float("nan"), "worst": float("nan")})
    return [
        Row(b, "wall vs ideal (the DAGs alone)", f"{wall:.2f} s", f"{ideal:.2f} s ideal",
            f"{wall / ideal:.3f}x", f"<= {WALL_LIMIT}x", wall <= WALL_LIMIT * ideal),
        Row(b, "peak RSS of the rollout process", mb(r["max_rss_kb"]), "", f"{rss_mb:.1f} MB",
            f"<= {RSS_LIMIT_MB:g} MB", rss_mb <= RSS_LIMIT_MB),
        Row(b, "(check) targets succeeded", f"{r['succeeded']}/{FLEET_N}", "",
            f"{r['succeeded']}", f"= {FLEET_N}", r["succeeded"] == FLEET_N),
        Row(b, "(check) agents with exactly one upgrade POST", f"{r['one_post']}/{FLEET_N}", "",
            f"max {r['max_posts']}", f"= {FLEET_N}", r["one_post"] == FLEET_N),
        Row(b, "(info) client CPU", f"{r['cpu']:.2f} s", f"{r['cpu'] / wall:.0%} of one core",
            f"{r['cpu'] / FLEET_N * 1e3:.0f} ms/target"),
        Row(b, "(info) journal writes / s", f"{r['journal_writes'] / wall:.1f} /s",
            f"{r['journal_writes']} writes", f"{r['journal_writes'] / FLEET_N:.1f}/target"),
        Row(b, "(info) requests / target (median)", f"{r['requests_median']:g}", "",
            f"{r['requests_all']} in all"),
        Row(b, "(info) DAG end -> noticed (median / worst)", f"{notice['median']:.3f} s",
            f"{notice['worst']:.3f} s worst", f"{notice['median'] / FLEET_DAG:.1%} of 3 s"),
        Row(b, "(info) agents' CPU (worker processes)", f"{r['agents_cpu']:.1f} s", "", ""),
    ]


PHASES = {
    "start": "worker takes the target -> journal 'sending' (client, /info, /secret, unfinished "
             "DAGs, journal reads)",
    "create": "'sending' -> 'created' (the POST and its journal write)",
    "dag": "'created' -> the agent finished the DAG",
    "notice": "agent finished the DAG -> journal 'done' (the wait noticing the end)",
    "confirm": "upgrade 'done' -> confirm 'done' (/info)",
    "end": "confirm 'done' -> 'ended' written",
    "slot": "worker takes the target -> 'ended' (the sum of the above)",
}


def fleet_phases(run: dict[str, Any], report: dict[str, Any],
                 targets: Sequence[str]) -> dict[str, dict[str, float]]:
    """Each phase of a target's slot, from the journal's events and the agents' DAG states."""
    at: dict[tuple[str, str], float] = {}
    for when, target, step, what in run["events"]:
        key = (target, f"{step or ''} {what.split()[0]}".strip())
        at.setdefault(key, when)
    dags = {a["target"]: a["dags"] for a in report["agents"]}
    finished: dict[str, float] = {}
    for t in targets:
        ids = run["results"][t]["dag_ids"]
        state = dags.get(t, {}).get(ids[-1]) if ids else None
        if state is not None and state["finished_at"] is not None:
            finished[t] = state["finished_at"]
    # The queue hands target i (after the first `parallel`) to the worker that ended the
    # (i - parallel)-th target to end; the first ones start when the run starts.
    ends = sorted(at.get((t, "ended"), run["ended"]) for t in targets)
    taken = {t: run["started"] if i < FLEET_PARALLEL else ends[i - FLEET_PARALLEL]
             for i, t in enumerate(targets)}
    spans: dict[str, list[float]] = {name: [] for name in PHASES}
    for t in targets:
        points = [taken[t], at.get((t, "upgrade sending")), at.get((t, "upgrade created")),
                  finished.get(t), at.get((t, "upgrade done")), at.get((t, "confirm done")),
                  at.get((t, "ended"))]
        if any(p is None for p in points):
            continue
        for name, a, b in zip(PHASES, points, points[1:]):
            spans[name].append(b - a)
        spans["slot"].append(points[-1] - points[0])
    return {name: {"median": median(v), "mean": sum(v) / len(v), "worst": max(v)}
            for name, v in spans.items() if v}


def by_path(counts: dict[str, dict[tuple[str, str], int]]) -> dict[str, int]:
    """Requests of every agent added up by method and path (DAG ids folded into ``<id>``)."""
    total: dict[str, int] = {}
    for per in counts.values():
        for (method, path), n in per.items():
            head, _, tail = path.rpartition("/")
            if head == "/api/v1/task/dag" and tail not in ("unfinish", "maintain"):
                path = "/api/v1/task/dag/<id>"
            total[f"{method} {path}"] = total.get(f"{method} {path}", 0) + n
    return dict(sorted(total.items()))


# -- 6. 1,000 tasks followed at once ---------------------------------------------------------

MANY_AGENTS, MANY_PER_AGENT, MANY_PER_PROCESS = 50, 20, 25
MANY_DAG = 20.0  # seconds; each agent's DAGs last MANY_DAG x U(1.0, 1.2) (seeded)


def many_client(sdk: str) -> Child:
    python, env = (ours_python(), ours_env()) if sdk == "ours" else \
        (official_python(), official_env())
    return Child([python, str(BENCH_DIR / "many_client.py"), sdk], env)


def follow_many(fleet: Child, sdk: str, lengths: list[float]) -> dict[str, Any]:
    """One batch of check DAGs followed by ``sdk``; what the client and the agents saw."""
    before = fleet.ask({"op": "report"})
    with many_client(sdk) as cl:
        made = fleet.ask({"op": "create_checks", "per_agent": MANY_PER_AGENT,
                          "lengths": lengths}, timeout=300)
        tasks = made["tasks"]
        run = cl.ask({"tasks": [{"port": t["port"], "dag": t["dag"]} for t in tasks],
                      "timeout": max(lengths) + 120}, timeout=max(lengths) + 240)
    after = fleet.ask({"op": "report"})
    dags = {a["target"]: a["dags"] for a in after["agents"]}
    old, new = counts_of(before), counts_of(after)
    delays, polls = [], []
    for task, seen in zip(tasks, run["runs"]):
        finished = dags[task["target"]][task["dag"]]["finished_at"]
        polls.append(new[task["target"]].get(("GET", f"/api/v1/task/dag/{task['dag']}"), 0))
        if "noticed" in seen and finished is not None:
            delays.append(seen["noticed"] - finished)
    delta = {t: {k: n - old[t].get(k, 0) for k, n in per.items()} for t, per in new.items()}
    requests = sum(n for per in delta.values() for n in per.values())
    errors = [r["error"] for r in run["runs"] if "error" in r]
    return {"wall": run["wall"], "cpu": run["cpu"], "cpu_system": run["cpu_system"],
            "context_switches": run["context_switches"], "max_rss_kb": run["max_rss_kb"],
            "noticed": len(delays), "errors": len(errors), "error_kinds": sorted(set(errors))[:5],
            "unfinished": run["unfinished"], "delays": delays, "polls": polls,
            "requests": requests, "requests_by_path": by_path(delta),
            "created_in": made["created_in"],
            "last_finish": max(d["finished_at"] or 0.0 for per in dags.values()
                               for d in per.values()) - run["started"],
            "agents_cpu": after["worker_cpu"] - before["worker_cpu"]}


def bench_many(quick: bool) -> BenchResult:
    n = MANY_AGENTS * MANY_PER_AGENT
    res = BenchResult("many", f"6. {n:,} tasks followed at once from one process")
    rng = random.Random(20261201)
    seen: dict[str, dict[str, Any]] = {}
    with fleet_server(MANY_AGENTS, MANY_PER_PROCESS, MANY_DAG) as fleet:
        for sdk in ("ours", "official"):
            lengths = [MANY_DAG * rng.uniform(1.0, 1.2) for _ in range(MANY_AGENTS)]
            seen[sdk] = follow_many(fleet, sdk, lengths)
    ours, off = seen["ours"], seen["official"]
    res.rows += many_rows(n, ours, off)
    res.markdown = ["Each cell: ours / official.", "", *md_table(
        ("tasks noticed", "errors", "wall (s)", "last DAG end (s after start)",
         "client CPU (s)", "peak RSS", "DAG GETs / task (median / max)", "requests in all",
         "requests / s", "agents' CPU (s)"),
        [[" / ".join(str(s[k]) for s in (ours, off)) for k in ("noticed", "errors")] +
         [" / ".join(f"{s['wall']:.1f}" for s in (ours, off)),
          " / ".join(f"{s['last_finish']:.1f}" for s in (ours, off)),
          " / ".join(f"{s['cpu']:.1f}" for s in (ours, off)),
          " / ".join(mb(s["max_rss_kb"]) for s in (ours, off)),
          " / ".join(f"{median(s['polls']):g} (max {max(s['polls'])})" for s in (ours, off)),
          " / ".join(str(s["requests"]) for s in (ours, off)),
          " / ".join(f"{s['requests'] / s['wall']:.0f}" for s in (ours, off)),
          " / ".join(f"{s['agents_cpu']:.1f}" for s in (ours, off))]])]
    res.raw = {sdk: {k: v for k, v in s.items() if k not in ("delays", "polls")} |
               {"delay_median": median(s["delays"]) if s["delays"] else None,
                "delay_p90": sorted(s["delays"])[int(0.9 * len(s["delays"]))]
                if s["delays"] else None,
                "delay_worst": max(s["delays"], default=None)}
               for sdk, s in seen.items()}
    res.notes += [
        f"{MANY_AGENTS} fake agents (FakeFleet, processes=True, {MANY_PER_PROCESS} per worker "
        f"process), {MANY_PER_AGENT} upgrade-check DAGs each (check DAGs take no maintenance "
        f"lock, so an agent runs many at once): {n:,} tasks. Each agent's DAGs last "
        f"{MANY_DAG:g} s x U(1.0, 1.2) (seeded) from their creation, time-driven; made through "
        "the fleet's command pipes in about a second, just before the client gets the list.",
        f"The client process (many_client.py) imports its SDK and starts {n:,} threads, one "
        "per task, parked on one event (not timed: Python starting 1,000 threads whose first "
        "ones already poll is not the SDK's cost); then it makes one client per agent and "
        "sets the event, and every thread calls its SDK's wait at once: ours "
        "client.task(id).wait(timeout, progress=False) with the default PollPolicy; official "
        "ClientV1.wait_dag_succeed(id) (a poll, then 3 s sleeps; a new connection per "
        "request). Ours runs first, then the official SDK on a fresh batch of DAGs, on the "
        "same agents.",
        "wall = from before the clients are made to the last thread's return; client CPU = "
        "getrusage user + system over the same span; peak RSS = ru_maxrss of the client "
        "process. delay = time.time() when the thread's wait returned - the agent's "
        "finished_at for that DAG (one host). DAG GETs / task and requests in all (auth "
        "included) are counted by the agents; agents' CPU = the fleet's worker processes "
        "over the run (/proc). sys = the system share of the client CPU; cs/s = voluntary + "
        "involuntary context switches of the client process per second of wall (getrusage).",
        "The machine has 2 cores for the client and the agents together: when polls outrun "
        "them, the agents answer late and every figure here moves with it.",
    ]
    return res


def per_request(s: dict[str, Any]) -> str:
    return f"{s['cpu'] / s['requests'] * 1e3:.2f} ms" if s["requests"] else "-"


def system_share(s: dict[str, Any]) -> str:
    share = s["cpu_system"] / s["cpu"] if s["cpu"] else 0.0
    return f"{share:.0%} sys, {s['context_switches'] / s['wall'] / 1e3:.0f}k cs/s"


def many_rows(n: int, ours: dict[str, Any], off: dict[str, Any]) -> list[Row]:
    b = "many"

    def ratio(a: float, c: float) -> str:
        return f"{a / c:.2f}x" if c else "-"

    def delay(s: dict[str, Any], how: Any) -> float:
        return float(how(s["delays"])) if s["delays"] else float("nan")

    rows = [
        Row(b, "(check) tasks noticed ending", f"{ours['noticed']}/{n}",
            f"{off['noticed']}/{n} official", f"{ours['errors']} errors",
            f"= {n}", ours["noticed"] == n),
        Row(b, "wall (ours / official)", f"{ours['wall']:.1f} s", f"{off['wall']:.1f} s official",
            ratio(ours["wall"], off["wall"])),
        Row(b, "client CPU (ours / official)", f"{ours['cpu']:.1f} s",
            f"{off['cpu']:.1f} s official", ratio(ours["cpu"], off["cpu"])),
        Row(b, "peak RSS (ours / official)", mb(ours["max_rss_kb"]),
            mb(off["max_rss_kb"]) + " official", ratio(ours["max_rss_kb"], off["max_rss_kb"])),
        Row(b, "DAG GETs / task, median (ours / official)", f"{median(ours['polls']):g}",
            f"{median(off['polls']):g} official",
            ratio(median(ours["polls"]), median(off["polls"]))),
        Row(b, "requests / task, all (ours / official)", f"{ours['requests'] / n:.1f}",
            f"{off['requests'] / n:.1f} official", ratio(ours["requests"], off["requests"])),
        Row(b, "median delay to notice the end", f"{delay(ours, median):.3f} s",
            f"{delay(off, median):.3f} s official",
            ratio(delay(ours, median), delay(off, median))),
        Row(b, "worst delay to notice the end", f"{delay(ours, max):.3f} s",
            f"{delay(off, max):.3f} s official", ratio(delay(ours, max), delay(off, max))),
        Row(b, "(info) client CPU / request", per_request(ours), per_request(off) + " official",
            ratio(ours["cpu"] / ours["requests"], off["cpu"] / off["requests"])),
        Row(b, "(info) system CPU, context switches", system_share(ours),
            system_share(off) + " official", ""),
    ]
    return rows
