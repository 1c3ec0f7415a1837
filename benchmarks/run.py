"""Benchmarks of obshell_sdk where users feel speed, side by side with the official SDK.

    python3 benchmarks/run.py [--quick] [--only NAME ...] [--output PATH]

NAME: wait, get_dag, import, lines, fleet, many. Each figure is measured in this run next to its
baselines: the official SDK (PyPI obshell==0.0.9, its own venv) and a floor (a bare
requests.Session re-sending a pre-signed request). Fake agents run in their own processes
(agent_server.py, fleet_server.py), clients in theirs (client.py, rollout_client.py,
many_client.py); everything on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import atexit
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Optional

from _harness import (
    BENCH_DIR,
    OURS,
    REPO,
    BenchResult,
    Child,
    Row,
    agent,
    baseline_tree,
    client,
    compile_ours,
    import_python,
    machine,
    md_table,
    median,
    most_in_window,
    official_env,
    official_python,
    ours_env,
    print_table,
    write_markdown,
)
from _scale import bench_fleet, bench_many

# -- 1. noticing the end ---------------------------------------------------------------------

LENGTHS = (30, 5, 1)  # seconds; one wave of concurrent tasks per length
SHAPES = ("equal", "long first", "long last")
#: How the agents move DAGs on: a stage ends the moment its time is up (the fake agent's
#: way), or in passes of a task scheduler every 1 s, as obshell's (scheduler.go: run).
PACES = {"any time": None, "1 s passes": 1.0}
MEDIAN_LIMIT = {1: 0.3, 5: 0.7, 30: 3.0}
LEAD = 1.0  # seconds between "start" and the first task's stage 1 in a wave
SPACING = 0.04  # seconds between the starts of consecutive tasks
SDKS = ("ours", "official", "floor")  # floor: a bare poller at the cap (client.py Floor)
STAMP_ERROR = 0.004  # poll times come from a 2 ms sampler: each is 0-2 ms late, or a bit more


def stage_lengths(total: float, shape: str) -> list[float]:
    """Nine stage lengths adding up to ``total``; a long stage holds 80 % of it."""
    if shape == "equal":
        return [total / 9] * 9
    short, long = total * 0.2 / 8, total * 0.8
    return [long] + [short] * 8 if shape == "long first" else [short] * 8 + [long]


def follow_wave(sides: dict[str, tuple[Child, Child]], specs: list[dict[str, Any]],
                period: Optional[float], seed: int) -> dict[str, list[dict[str, Any]]]:
    """Run one wave of concurrent tasks for every SDK; per SDK, what each task's run saw."""
    for ag, cl in sides.values():
        tasks = ag.ask({"op": "prepare", "tasks": specs})["tasks"]
        cl.send({"op": "follow", "timeout": max(LENGTHS) + 30,
                 "tasks": [{**t, "at": s["at"]} for t, s in zip(tasks, specs)]})
    for _, cl in sides.values():
        cl.recv(120)  # {"ready": true}: every client has warmed up
    base = time.time() + LEAD
    for k, (ag, cl) in enumerate(sides.values()):  # each next side a third of a spacing later
        ag.ask({"op": "start", "base": base + k * SPACING / 3, "period": period, "seed": seed})
        cl.send({"base": base + k * SPACING / 3})
    budget = LEAD + len(specs) * SPACING + max(s["at"] + sum(s["stages"]) for s in specs) + 60
    found = {}
    for sdk, (ag, cl) in sides.items():
        runs = cl.recv(budget)["runs"]
        found[sdk] = [{**r, **a} for r, a in zip(runs, ag.ask({"op": "report"})["tasks"])]
    return found


def run_record(seen: dict[str, Any]) -> dict[str, Any]:
    """What one run of a task shows; the poll times too when it broke the 2-per-second rule."""
    polls = seen["polls"]
    record = {"delay": seen["noticed"] - seen["finished_at"], "requests": len(polls),
              "per_second": most_in_window(polls, 1.0 - STAMP_ERROR),
              "span_of_3": min((b - a for a, b in zip(polls, polls[2:])), default=None),
              "late_start": seen["late"], "late_step": seen["late_step"]}
    if record["per_second"] > 2:
        record["polls_at"] = [round(t - seen["start"], 3) for t in seen["polls"]]
        record["finished_at"] = round(seen["finished_at"] - seen["start"], 3)
    return record


def runs_per_cell(quick: bool) -> dict[int, int]:
    """Runs of each cell, by task length."""
    return {1: 5, 5: 5, 30: 3} if quick else {1: 10, 5: 10, 30: 10}


def wait_waves(quick: bool) -> Iterator[tuple[str, Optional[float], int, list[str],
                                              list[dict[str, Any]], int]]:
    """The waves of the wait benchmark, the same in every run (seeded).

    Each: ``(pace, period, task length, the shape of each task, the tasks' specs, the seed
    of the agents' schedulers)``. ``benchmarks/cadence_model.py --exact`` models these.
    """
    runs = runs_per_cell(quick)
    rng = random.Random(20261130)
    seeds = random.Random(1)  # the schedulers' phases; the task lengths stay as they were
    for pace, period in PACES.items():
        for t in LENGTHS:
            plan = [shape for _ in range(runs[t]) for shape in SHAPES]
            # Real tasks never last a round number of seconds: each run lasts its
            # nominal length plus up to 20 %, drawn at random (seeded).
            specs = [{"at": i * SPACING,
                      "stages": stage_lengths(t * rng.uniform(1.0, 1.2), shape)}
                     for i, shape in enumerate(plan)]
            yield pace, period, t, plan, specs, seeds.randrange(2**32)


def bench_wait(quick: bool) -> BenchResult:
    runs = runs_per_cell(quick)
    res = BenchResult("wait", "1. Noticing the end of a task: finished -> wait() returns")
    found: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    with ExitStack() as stack:
        sides = {sdk: (stack.enter_context(agent()), stack.enter_context(client(sdk)))
                 for sdk in SDKS}
        for pace, period, t, plan, specs, seed in wait_waves(quick):
            wave = follow_wave(sides, specs, period, seed)
            for sdk, records in wave.items():
                for shape, record in zip(plan, records):
                    found.setdefault((t, f"{shape}, {pace}", sdk), []).append(record)
    errors = [r for rs in found.values() for r in rs if "error" in r]
    if errors:
        raise RuntimeError(f"{len(errors)} waits failed, e.g. {errors[0]}")
    cells = {key: [run_record(r) for r in records] for key, records in found.items()}
    for pace in PACES:
        for t in LENGTHS:
            for shape in SHAPES:
                res.rows += wait_rows(t, f"{shape}, {pace}",
                                      *(cells[t, f"{shape}, {pace}", sdk] for sdk in SDKS))
    late_step = max(r["late_step"] for c in cells.values() for r in c)
    late_start = max(r["late_start"] for c in cells.values() for r in c)
    res.rows += [
        Row("wait", "(check) latest DAG step vs its schedule", f"{late_step * 1e3:.1f} ms", "",
            f"{late_step:.3f} s", "<= 0.03 s", late_step <= 0.03),
        Row("wait", "(check) latest client start vs its schedule", f"{late_start * 1e3:.1f} ms",
            "", f"{late_start:.3f} s", "<= 0.05 s", late_start <= 0.05),
    ]
    res.markdown = wait_table(cells)
    res.raw = {f"{t} s/{shape}/{sdk}": rows for (t, shape, sdk), rows in cells.items()}
    res.notes += [
        f"Runs per cell (task length: runs): {runs}. One wave per task length and pace: the "
        f"runs of all three shapes run concurrently, started {SPACING * 1e3:.0f} ms apart (the "
        f"official SDK's {SPACING * 1e3 / 3:.0f} ms after ours, the floor's "
        f"{SPACING * 2e3 / 3:.0f} ms), so a wave lasts about one task. Each side "
        "has its own agent process (one fake agent per concurrent task, as an agent runs one "
        "upgrade at a time; reused by the next wave) and its own client process (one client "
        "object per agent, one thread per task).",
        "Each run's task lasts its nominal length (1, 5 or 30 s) plus a random 0-20 % (seeded), "
        "the same for every side, so that runs do not all end at one moment. For 1 s tasks "
        "that spread (0-0.2 s) is less than the 0.5 s between polls: the runs end just after "
        "the 1 s poll of a poller that starts with the task and keeps a fixed pace (ours and "
        "the floor alike), and are seen 0.3-0.5 s late. benchmarks/cadence_model.py models "
        "every cell with the SDK's own polling rules (no agent): over new random tasks, the 1 s "
        "any-time cells meet 'median of 10 <= 0.3 s' in 1-2 % of runs and the other targets "
        "in 76-100 % each. The tasks here are drawn from fixed seeds, the same in every run; "
        "for these very tasks (cadence_model.py --exact) the 1 s any-time medians are met in "
        "none, '5 s, long first, 1 s passes' in about half, '1 s, long first, 1 s passes' in "
        "three quarters, and each worst-of-10 of a 30 s cell in 80-92 %: a full run fails "
        "four to six cells.",
        "A task is a 9-stage upgrade DAG frozen on its agent (stages_per_poll=0); a timer thread "
        "in the agent process calls set_dag_stage(1..9) and finish_dag at the scheduled times "
        "and records time.time() when finish_dag returned. Shapes: equal stages; 80 % of the "
        "time in stage 1 (long first) or in stage 9 (long last), the rest split evenly.",
        "Two paces. 'any time': each step at its scheduled time, as the fake agent's "
        "time-driven DAGs move. '1 s passes': as under obshell's task scheduler, which moves "
        "DAGs only when it runs, every second plus what its pass takes "
        "(ob/agent/engine/scheduler/scheduler.go > run, constant.SCHEDULER_INTERVAL): each "
        "agent's scheduler runs every 1 s + 5-30 ms (random, seeded) at a random phase of its "
        "own, and each step happens in the first pass at or after its scheduled time. The "
        "client starts waiting at the scheduled stage-1 time either way.",
        "Each client thread warms up first (one get_dag of a check DAG on the same agent: auth "
        "dialect, key, connection), then at the DAG's stage-1 time calls ours: "
        "client.task(id).wait(timeout=60, progress=False); official: "
        "client.wait_dag_succeed(id), its only wait (a poll, then 3 s sleeps). delay = "
        "time.time() when the call returned - when the agent finished the DAG (one host).",
        "The floor (client.py Floor) is a bare requests.Session that signs one GET of the DAG "
        "per wait and sends it at the DAG's stage-1 time, then 0.5 s after each reply, "
        "the most the two-polls-a-second rule allows at a fixed pace, until the state is "
        "SUCCEED or FAILED: what any poller at the cap sees, with no SDK cost. Its median "
        "shows how much of a delay is the cap's, whatever the client.",
        "requests = GETs of /api/v1/task/dag/<id> counted by the agent (median per task). "
        "Most polls in any 1 s = the most of them in any window [t, t + 1 s - 4 ms), worst "
        "task of the cell: poll times come from a sampler reading agent.requests every 2 ms, "
        "so each is up to a few ms late, and polls exactly 0.5 s apart must not count as 3 in "
        "a second. raw: span_of_3 = the shortest time three consecutive polls spanned.",
        "The official SDK's delay is a phase effect of its 3 s period: a T-second task ends "
        "(3 - T mod 3) mod 3 s before its next poll: ~2 s for 1 s, ~1 s for 5 s, ~0 s for 30 s.",
    ]
    return res


def wait_rows(t: int, shape: str, ours: list[dict[str, Any]], off: list[dict[str, Any]],
              floor: list[dict[str, Any]]) -> list[Row]:
    b = f"wait {t} s, {shape}"
    d_ours, d_off = [r["delay"] for r in ours], [r["delay"] for r in off]
    d_floor = [r["delay"] for r in floor]
    med, worst, bound = median(d_ours), max(d_ours), 2 * median(d_ours) + 0.5
    q_ours, q_off = median([r["requests"] for r in ours]), median([r["requests"] for r in off])
    ps_ours, ps_off = max(r["per_second"] for r in ours), max(r["per_second"] for r in off)
    rows = [
        Row(b, "median delay", f"{med:.3f} s", f"{median(d_off):.3f} s official",
            f"{med:.3f} s", f"<= {MEDIAN_LIMIT[t]:g} s", med <= MEDIAN_LIMIT[t]),
        Row(b, "(info) median delay vs the floor", f"{med:.3f} s",
            f"{median(d_floor):.3f} s floor", f"{med - median(d_floor):+.3f} s"),
        Row(b, f"worst of {len(d_ours)}", f"{worst:.3f} s", f"{max(d_off):.3f} s official",
            f"{worst:.3f} s", f"<= 2 x median + 0.5 = {bound:.3f} s", worst <= bound),
        Row(b, "requests / task", f"{q_ours:g}", f"{q_off:g} official", f"{q_ours / q_off:.2f}x",
            "<= 2x" if t == 30 else "", q_ours <= 2 * q_off if t == 30 else None),
        Row(b, "most polls in any 1 s", f"{ps_ours}", f"{ps_off} official", f"{ps_ours}",
            "<= 2", ps_ours <= 2),
    ]
    return rows


def wait_table(cells: dict[tuple[int, str, str], list[dict[str, Any]]]) -> list[str]:
    def pair(t: int, shape: str, key: str, how: Callable[[list[float]], float],
             fmt: str = ".3f") -> str:
        values = ([r[key] for r in cells[t, shape, sdk] if r[key] is not None] for sdk in SDKS)
        return " / ".join(format(how(v), fmt) if v else "-" for v in values)

    rows = [[f"{t} s", shape, pair(t, shape, "delay", median), pair(t, shape, "delay", max),
             pair(t, shape, "requests", median, "g"), pair(t, shape, "per_second", max, "g"),
             pair(t, shape, "span_of_3", min)]
            for pace in PACES for t in LENGTHS for shape in (f"{s}, {pace}" for s in SHAPES)]
    return ["Each cell: ours / official / floor.", "", *md_table(
        ("task", "shape", "median delay (s)", "worst delay (s)", "requests / task (median)",
         "most polls in any 1 s", "shortest span of 3 polls (s)"), rows)]


# -- 2. one signed get_dag --------------------------------------------------------------------


#: ``--baseline REV``: get_dag also measures obshell_sdk at that git revision, in the same run.
BASELINE: dict[str, str] = {}


def bench_get_dag(quick: bool) -> BenchResult:
    calls, rounds = (200, 5) if quick else (300, 9)
    res = BenchResult("get_dag", "2. One signed get_dag (GetDagDetails, 9-node DAG, details on)")
    per: dict[str, list[dict[str, float]]] = {"ours": [], "floor": [], "official": [],
                                              "work": []}
    with agent() as ag, client("ours") as ours, client("official") as off:
        port, dag = ag.hello["port"], ag.hello["dag"]
        modes = {"ours": (ours, "sdk"), "floor": (ours, "floor"), "official": (off, "sdk"),
                 "work": (ours, "work")}

        def measure(name: str, n: int) -> dict[str, float]:
            proc, mode = modes[name]
            return proc.ask({"op": "calls", "mode": mode, "port": port, "dag": dag, "n": n},
                            timeout=300)

        for name in modes:  # warm-up: imports, auth, connections
            measure(name, max(20, calls // 5))
        names = list(modes)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                per[name].append(measure(name, calls))
        versus = _versus_baseline(port, dag, calls, rounds) if BASELINE else {}
    wall = {n: median([m["wall"] / calls for m in per[n]]) for n in per}
    cpu = {n: median([m["cpu"] / calls for m in per[n]]) for n in per}

    def us(s: float) -> str:
        return f"{s * 1e6:.0f} us"

    def per_call(key: str, name: str) -> float:
        return (wall if key == "wall" else cpu)[name]

    b = "get_dag"
    res.rows += [
        Row(b, "wall / call vs floor", us(wall["ours"]), us(wall["floor"]),
            f"{wall['ours'] / wall['floor']:.2f}x", "<= 1.3x",
            wall["ours"] <= 1.3 * wall["floor"]),
        Row(b, "client CPU / call vs floor", us(cpu["ours"]), us(cpu["floor"]),
            f"{cpu['ours'] / cpu['floor']:.2f}x", "<= 1.6x", cpu["ours"] <= 1.6 * cpu["floor"]),
        Row(b, "official wall / ours wall", us(wall["ours"]), us(wall["official"]) + " official",
            f"{wall['official'] / wall['ours']:.2f}x", ">= 2x",
            wall["official"] >= 2 * wall["ours"]),
        Row(b, "(info) client CPU vs official", us(cpu["ours"]), us(cpu["official"]) +
            " official", f"{cpu['ours'] / cpu['official']:.2f}x"),
    ]
    for kind, key in (("wall", "wall"), ("client CPU", "cpu")):
        res.rows += [
            Row(b, f"(info) {kind}: the required work alone vs floor", us(per_call(key, "work")),
                us(per_call(key, "floor")),
                f"{per_call(key, 'work') / per_call(key, 'floor'):.2f}x"),
            Row(b, f"(info) {kind}: ours vs the required work alone", us(per_call(key, "ours")),
                us(per_call(key, "work")),
                f"{per_call(key, 'ours') / per_call(key, 'work'):.2f}x"),
        ]
    for kind, key in (("wall", "wall"), ("client CPU", "cpu")) if versus else ():
        now, then = (median([m[key] / calls for m in versus[side]]) for side in versus)
        res.rows.append(Row(b, f"(info) {kind} / call vs {BASELINE['rev']}", us(now), us(then),
                            f"{now / then:.3f}x"))
    res.raw = {"calls_per_round": calls, "rounds": per, "wall_per_call": wall,
               "cpu_per_call": cpu, "versus_baseline": versus}
    res.notes += [
        f"{rounds} rounds of {calls} calls per mode, the modes' order rotating round by round; "
        "median over rounds of the mean per call. One fake agent (1024-bit key, v2 auth), a "
        "9-stage upgrade DAG frozen at stage 4.",
        "ours: client.get_dag(id) (signs, sends, decodes a DagDetail). official: "
        "ClientV1.get_dag(id), in its own venv process. floor: in our client's process, "
        "requests.Session (trust_env=False, like our client's) re-sending one GET whose "
        "X-OCS-Header the benchmark signed once with pycryptodome from /api/v1/secret's key, "
        "valid 24 h; it checks the status only (no signing, no JSON).",
        "the required work alone: the floor doing what the issue has every get_dag do and "
        "nothing else: a header signed per call (the agent's key read once, as the SDK keeps "
        "it), the reply read in chunks under the 16 MiB cap, json.loads, and a DagDetail from "
        "the SDK's one decoder (DagDetail.from_json). No SDK client, auth flow, deadline, "
        "envelope model or error mapping. Ours cannot do less than this; its ratio to the "
        "floor bounds what any client doing this work can reach.",
        "client CPU = time.process_time() of the client process.",
    ]
    if versus:
        res.notes.append(
            f"vs {BASELINE['rev']}: obshell_sdk at that revision (git archive) against this "
            f"tree, client.get_dag(id) each, after the rounds above: {rounds} rounds, each in "
            "a fresh pair of processes (same interpreter, same agent), the order alternating; "
            "the ratio of the medians. Fresh processes because one process can differ from "
            "the next by several percent (where it lands, what it shares a core with).")
    return res


def _versus_baseline(port: int, dag: str, calls: int, rounds: int
                     ) -> dict[str, list[dict[str, float]]]:
    """This tree's and the baseline's get_dag, each round in a fresh pair of processes."""
    per: dict[str, list[dict[str, float]]] = {"now": [], "then": []}
    ask = {"op": "calls", "mode": "sdk", "port": port, "dag": dag}
    for r in range(rounds):
        with client("ours") as now, client("ours", BASELINE["root"]) as then:
            pair = {"now": now, "then": then}
            for proc in pair.values():  # warm-up: imports, auth, connections
                proc.ask({**ask, "n": max(20, calls // 5)}, timeout=300)
            for side in (("now", "then") if r % 2 == 0 else ("then", "now")):
                per[side].append(pair[side].ask({**ask, "n": calls}, timeout=300))
    return per


# -- 3. import --------------------------------------------------------------------------------


def bench_import(quick: bool) -> BenchResult:
    runs = 10 if quick else 25
    res = BenchResult("import", "3. Import time (a fresh interpreter, byte-compiled)")
    off, py = official_python(), import_python()
    commands = {
        "import obshell_sdk": ([py, "-c", "import obshell_sdk"], ours_env()),
        "its dependencies": ([py, "-c", "import requests, Crypto.Cipher.PKCS1_v1_5, attrs"],
                             ours_env()),
        "import obshell (official)": ([off, "-c", "import obshell"], official_env()),
        "python -c pass": ([py, "-c", "pass"], ours_env()),
        "official: python -c pass": ([off, "-c", "pass"], official_env()),
        "the three packages alone": ([py, "-c", "import requests, Crypto, attrs"], ours_env()),
        "import obshell_sdk, then what signing imports": (
            [py, "-c", "import obshell_sdk, Crypto.PublicKey.RSA, "
             "Crypto.Cipher.PKCS1_v1_5, Crypto.Cipher.AES"], ours_env()),
    }

    def timed(argv: list[str], env: dict[str, str]) -> float:
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True, cwd=BENCH_DIR)
        return time.perf_counter() - start

    times: dict[str, list[float]] = {name: [] for name in commands}
    for argv, env in commands.values():  # warm the file cache
        timed(argv, env)
    for _ in range(runs):
        for name, (argv, env) in commands.items():
            times[name].append(timed(argv, env))
    med = {name: median(t) for name, t in times.items()}
    ours, deps, official = (med["import obshell_sdk"], med["its dependencies"],
                            med["import obshell (official)"])

    def ms(s: float) -> str:
        return f"{s * 1e3:.1f} ms"

    res.rows += [
        Row("import", "vs its dependencies", ms(ours), ms(deps), f"{(ours - deps) * 1e3:+.1f} ms",
            "<= +30 ms", ours - deps <= 0.030),
        Row("import", "vs import obshell (official)", ms(ours), ms(official),
            f"{ours / official:.2f}x", "<= 0.7x", ours <= 0.7 * official),
        Row("import", "(info) vs python -c pass", ms(ours), ms(med["python -c pass"]),
            f"{(ours - med['python -c pass']) * 1e3:+.1f} ms"),
        Row("import", "(info) python -c pass, ours vs the official SDK's venv",
            ms(med["python -c pass"]), ms(med["official: python -c pass"]),
            f"{(med['python -c pass'] - med['official: python -c pass']) * 1e3:+.1f} ms"),
        Row("import", "(info) vs import requests, Crypto, attrs", ms(ours),
            ms(med["the three packages alone"]),
            f"{(ours - med['the three packages alone']) * 1e3:+.1f} ms"),
        Row("import", "(info) then what signing imports, vs its dependencies",
            ms(med["import obshell_sdk, then what signing imports"]), ms(deps),
            f"{(med['import obshell_sdk, then what signing imports'] - deps) * 1e3:+.1f} ms"),
    ]
    loaded = subprocess.run(
        [py, "-c", "import sys, requests, attrs; before = set(sys.modules); "
         "import obshell_sdk; print(' '.join(sorted(set(sys.modules) - before)))"],
        env=ours_env(), capture_output=True, text=True, check=True, cwd=BENCH_DIR).stdout.split()
    res.raw = {"runs": times, "median": med, "modules_beyond_requests_attrs": loaded}
    res.notes += [
        f"Wall time of `python -c ...` in a fresh process, {runs} runs of each command "
        "interleaved after one warm-up each; median. The SDK is byte-compiled first "
        "(`python -m compileall -q obshell_sdk`), as pip install leaves it; the dependencies "
        "and the official SDK are installed, so they have their .pyc too.",
        "dependencies = `import requests, Crypto.Cipher.PKCS1_v1_5, attrs` (pycryptodome's "
        "RSA cipher, which signing needs), in our interpreter. `import obshell_sdk` imports "
        "no pycryptodome module: the first signature imports RSA, PKCS1_v1_5 and AES. The "
        "(info) rows show both sides of that: ours against the three packages alone "
        "(`import requests, Crypto, attrs`), and ours followed by what signing imports "
        "against the dependencies (the time to a first signature, like for like).",
        f"Our side runs in {py}, a venv with only the three dependencies (and theirs) at the "
        "versions of the interpreter the other benchmarks use, made by the benchmark as the "
        "official SDK's is: the repo's .venv holds the SDK as an editable install, whose .pth "
        "finder imports pathlib and more at every start, which `import obshell` in its venv "
        "does not pay. The (info) row of `python -c pass` in both venvs shows what is left.",
        f"`import obshell_sdk` loads {len(loaded)} modules beyond `import requests, attrs`: "
        f"{', '.join(loaded) or 'none'}.",
    ]
    return res


# -- 4. lines ---------------------------------------------------------------------------------

BEFORE = "e984e1e"


def code_lines(text: str) -> int:
    """Lines that are neither blank nor only a comment (docstrings count)."""
    return sum(1 for line in text.splitlines()
               if line.strip() and not line.lstrip().startswith("#"))


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                          check=True).stdout


def bench_lines(quick: bool) -> BenchResult:
    res = BenchResult("lines", "4. Lines of obshell_sdk/*.py (testing/ excluded)")
    sdk = Path(OURS["sdk_root"]) / "obshell_sdk"
    after = {p.name: code_lines(p.read_text()) for p in sorted(sdk.glob("*.py"))}
    names = [Path(n).name for n in git("ls-tree", "--name-only", BEFORE, "obshell_sdk/").split()
             if n.endswith(".py")]
    before = {n: code_lines(git("show", f"{BEFORE}:obshell_sdk/{n}")) for n in names}
    total_b, total_a = sum(before.values()), sum(after.values())
    res.rows += [
        Row("lines", f"code lines, now vs {BEFORE}", str(total_a), str(total_b),
            f"{total_a / total_b:.2f}x"),
        Row("lines", f"(info) files, now vs {BEFORE}", str(len(after)), str(len(before)),
            f"{len(after) - len(before):+d}"),
    ]
    rows = [[n, str(before.get(n, "-")), str(after.get(n, "-"))]
            for n in sorted(set(before) | set(after))]
    res.markdown = md_table(("file", BEFORE, "now"), [*rows, ["total", str(total_b),
                                                                 str(total_a)]])
    res.notes.append("Non-blank lines that are not only a comment (docstrings count), of "
                     "obshell_sdk/*.py; before = `git show e984e1e:obshell_sdk/<file>`.")
    return res


BENCHES: dict[str, Callable[[bool], BenchResult]] = {
    "wait": bench_wait, "get_dag": bench_get_dag, "import": bench_import, "lines": bench_lines,
    "fleet": bench_fleet, "many": bench_many,
}


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="obshell_sdk benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer runs (about 2 minutes)")
    parser.add_argument("--only", choices=sorted(BENCHES), action="append",
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "RESULTS.md")
    parser.add_argument("--python", default=OURS["python"],
                        help="interpreter for our side (needs requests, pycryptodome, attrs)")
    parser.add_argument("--sdk-root", type=Path, default=REPO,
                        help="directory holding the obshell_sdk/ to measure (our processes' "
                        "PYTHONPATH; get_dag and wait stop if their client imports another)")
    parser.add_argument("--baseline", metavar="REV",
                        help="get_dag also measures obshell_sdk at this git revision of the "
                        "repository against --sdk-root, in rounds of its own (what a change "
                        "bought)")
    args = parser.parse_args(argv)
    OURS.update(python=args.python, sdk_root=str(args.sdk_root.resolve()))
    if args.baseline:
        if "get_dag" not in (args.only or BENCHES):
            parser.error("--baseline is measured by get_dag: add --only get_dag")
        short = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.baseline],
                               capture_output=True, text=True).stdout.strip()
        tmp = Path(tempfile.mkdtemp(prefix="obshell-sdk-baseline-"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        name = args.baseline if short in ("", args.baseline) else f"{args.baseline} ({short})"
        BASELINE.update(rev=name, root=baseline_tree(args.baseline, str(tmp)))
    started = time.time()
    facts = machine()
    compile_ours()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in facts.items()), flush=True)
    results = []
    for name in args.only or list(BENCHES):
        print(f"running {name} ...", flush=True)
        t0 = time.perf_counter()
        result = BENCHES[name](args.quick)
        result.seconds = time.perf_counter() - t0
        results.append(result)
        print(f"  {name} done in {result.seconds:.0f} s", flush=True)
    print_table(results)
    command = " ".join(["python3 benchmarks/run.py", *sys.argv[1:]])
    # A partial run (--only) keeps the other benchmarks' figures that the file already holds.
    keep = [n for n in BENCHES if n not in (args.only or BENCHES)]
    write_markdown(args.output, results, facts, command, started, order=list(BENCHES),
                   keep=keep)
    print(f"\nwrote {args.output} ({time.time() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
