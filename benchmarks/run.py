"""Benchmarks of obshell_sdk against a floor and the official SDK (PyPI obshell==0.0.9).

    python3 benchmarks/run.py [--quick] [--only NAME] [--output PATH]

NAME is one of: percall, import, wait, many, memory. Every figure is measured in this run
against a baseline measured in the same run; the agents are fake agents in their own
processes (benchmarks/agent_server.py) on 127.0.0.1. Writes benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Optional

from _harness import (
    BENCH_DIR,
    SYSTEM_PY,
    AgentGroup,
    AgentProcess,
    BenchResult,
    Driver,
    Row,
    Target,
    compile_ours,
    machine,
    median,
    official_env,
    official_python,
    ours_env,
    run_driver,
)
from _report import print_table, write_markdown

# -- 1. per call ---------------------------------------------------------------------------


def agent_load(agent: AgentProcess, sdk: str, args: Sequence[object]) -> dict[str, Any]:
    """Run a driver against ``agent`` and note the agent's CPU and request count meanwhile."""
    cpu0, n0 = agent.cpu(), agent.command("counts")["total"]
    driver = Driver(sdk, args, timeout=300)
    result = driver.result()
    cpu1, n1 = agent.cpu(), agent.command("counts")["total"]
    result["agent"] = {"cpu": cpu1 - cpu0, "requests": n1 - n0, "elapsed": driver.elapsed}
    return result


def per_call(result: dict[str, Any], mode: str, key: str) -> float:
    calls = result["calls"]
    return median([r[key] / calls for r in result["rounds"][mode]])


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} us"


def bench_percall(quick: bool) -> BenchResult:
    calls, rounds = (200, 5) if quick else (300, 9)
    res = BenchResult("percall", "1. Per call: signed get_dag (v2 auth, 1024-bit key)")
    with AgentProcess("--frozen-dag") as agent:
        args = ["percall", agent.port, agent.dag_id, calls, rounds]
        ours = agent_load(agent, "ours", args)
        official = agent_load(agent, "official", args)
        res.raw["profile"] = subprocess.run(
            [SYSTEM_PY, str(BENCH_DIR / "profile_get_dag.py"), str(agent.port),
             str(agent.dag_id), "500"],
            capture_output=True, text=True, check=True, env=ours_env(), timeout=120).stdout
        res.raw["breakdown"] = json.loads(subprocess.run(
            [SYSTEM_PY, str(BENCH_DIR / "breakdown.py"), str(agent.port), str(agent.dag_id)],
            capture_output=True, text=True, check=True, env=ours_env(), timeout=120).stdout)
    w = {m: per_call(ours, m, "wall") for m in ("ours", "floor", "floor_default_session")}
    c = {m: per_call(ours, m, "cpu") for m in ("ours", "floor", "floor_default_session")}
    ow, oc = per_call(official, "official", "wall"), per_call(official, "official", "cpu")
    b = "per call"
    res.rows += [
        Row(b, "wall / call vs floor", us(w["ours"]), us(w["floor"]),
            w["ours"] / w["floor"], Target("<=", 1.1)),
        Row(b, "client CPU / call vs floor", us(c["ours"]), us(c["floor"]),
            c["ours"] / c["floor"], Target("<=", 1.25)),
        Row(b, "official wall / ours (slowdown)", us(w["ours"]), us(ow) + " official",
            ow / w["ours"], Target(">=", 1.5)),
        Row(b, "client CPU vs official", us(c["ours"]), us(oc) + " official",
            c["ours"] / oc, Target("<=", 0.6)),
        Row(b, "(info) wall vs default-Session floor", us(w["ours"]),
            us(w["floor_default_session"]), w["ours"] / w["floor_default_session"]),
        Row(b, "(info) CPU vs default-Session floor", us(c["ours"]),
            us(c["floor_default_session"]), c["ours"] / c["floor_default_session"]),
    ]
    res.rows += agent_rows(b, ours, w["ours"], "ours+floors")
    res.rows += agent_rows(b, official, ow, "official")
    res.raw.update(ours=ours, official=official, wall_per_call=w, cpu_per_call=c,
                   official_wall_per_call=ow, official_cpu_per_call=oc)
    res.notes += [
        f"{rounds} rounds of {calls} calls per mode; median of the per-round mean per call. "
        "ours, floor and the default-Session floor are interleaved round by round in one "
        "process; the official SDK runs in its own venv process against the same agent.",
        "floor = requests.Session (trust_env=False, as our client sets it) re-sending one "
        "request signed beforehand by PasswordAuth.sign(lifetime=24 h): same URL, same "
        "X-OCS-Header, so the agent decrypts the same RSA header; the client does no signing "
        "and parses no JSON (it only checks the status). The default-Session floor is the "
        "same with requests' defaults (trust_env=True: proxy/netrc lookups per call).",
        "client CPU = time.process_time() of the client process (all threads); the agent is "
        "another process.",
    ]
    return res


def agent_rows(bench: str, result: dict[str, Any], wall: float, label: str) -> list[Row]:
    load = result["agent"]
    per_req = load["cpu"] / max(1, load["requests"])
    busy = per_req / wall
    return [Row(bench, f"(check) agent busy fraction, {label}",
                f"{us(per_req)}/request", f"{load['requests']} requests",
                busy, Target("<=", 0.8))]


# -- 2. import -------------------------------------------------------------------------------


def import_commands() -> dict[str, tuple[list[str], dict[str, str]]]:
    off = official_python()
    return {
        "import obshell_sdk": ([SYSTEM_PY, "-c", "import obshell_sdk"], ours_env()),
        "import requests, Crypto, attrs": (
            [SYSTEM_PY, "-c", "import requests, Crypto, attrs"], ours_env()),
        "import requests, attrs": ([SYSTEM_PY, "-c", "import requests, attrs"], ours_env()),
        "import obshell (official venv)": ([off, "-c", "import obshell"], official_env()),
        "python -c pass": ([SYSTEM_PY, "-c", "pass"], ours_env()),
    }


def time_process(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def import_profile() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    done = subprocess.run([SYSTEM_PY, "-X", "importtime", "-c", "import obshell_sdk"],
                          env=ours_env(), capture_output=True, text=True, check=True)
    entries = []
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            entries.append({"module": parts[2].strip(), "self_us": int(parts[0]),
                            "cumulative_us": int(parts[1])})
    entries.sort(key=lambda e: e["cumulative_us"], reverse=True)
    own = sorted((e for e in entries if e["module"].startswith("obshell_sdk")
                  or e["module"] in ("html", "uuid", "html.entities", "_uuid")),
                 key=lambda e: e["self_us"], reverse=True)
    return entries[:10], own


def modules_loaded(first: str) -> list[str]:
    """Modules ``import obshell_sdk`` adds after ``import {first}`` (empty: after start-up)."""
    code = ("import sys, json; " + (f"import {first}; " if first else "")
            + "before = set(sys.modules); import obshell_sdk; "
            "print(json.dumps(sorted(set(sys.modules) - before)))")
    loaded = subprocess.run([SYSTEM_PY, "-c", code], env=ours_env(), capture_output=True,
                            text=True, check=True).stdout
    return list(json.loads(loaded))


def bench_import(quick: bool) -> BenchResult:
    runs = 10 if quick else 20
    res = BenchResult("import", "2. Import time (wall time of the whole process)")
    commands = import_commands()
    times: dict[str, list[float]] = {name: [] for name in commands}
    for cmd, env in commands.values():  # warm the bytecode caches
        time_process(cmd, env)
    for _ in range(runs):
        for name, (cmd, env) in commands.items():
            times[name].append(time_process(cmd, env))
    med = {name: median(t) for name, t in times.items()}
    ours = med["import obshell_sdk"]

    def ms(s: float) -> str:
        return f"{s * 1e3:.1f} ms"

    b = "import"
    res.rows += [
        Row(b, "vs import requests, Crypto, attrs", ms(ours),
            ms(med["import requests, Crypto, attrs"]),
            ours / med["import requests, Crypto, attrs"], Target("<=", 1.15)),
        Row(b, "(info) vs import requests, attrs", ms(ours), ms(med["import requests, attrs"]),
            ours / med["import requests, attrs"]),
        Row(b, "vs import obshell (official)", ms(ours),
            ms(med["import obshell (official venv)"]),
            ours / med["import obshell (official venv)"], Target("<=", 0.6)),
        Row(b, "(info) vs python -c pass", ms(ours), ms(med["python -c pass"]),
            ours / med["python -c pass"]),
    ]
    top, own = import_profile()
    loaded, extra = modules_loaded(""), modules_loaded("requests, attrs")
    crypto = any(m == "Crypto" or m.startswith("Crypto.") for m in loaded)
    res.raw.update(importtime_top10=top, importtime_own_modules=own, median_seconds=med,
                   runs=times, modules_loaded=len(loaded), crypto_loaded=crypto,
                   modules_beyond_requests_attrs=extra)
    res.notes += [
        f"{runs} runs of each command, interleaved, after one warm-up run each; median. "
        "The SDK is byte-compiled first (as `pip install` leaves it), like the dependencies "
        "and the official SDK.",
        f"`import obshell_sdk` loads {len(loaded)} modules beyond the interpreter's start-up "
        f"set; Crypto (pycryptodome) loaded at import: {crypto}. Beyond `import requests, "
        f"attrs` it loads {len(extra)} modules: {', '.join(extra)}.",
    ]
    return res


# -- 3. noticing the end ---------------------------------------------------------------------

WAIT_LIMITS = {1: 0.3, 5: 0.7, 30: 3.0}
CEILING = 3.0


def wait_records(agent: AgentProcess, result: dict[str, Any]) -> list[dict[str, Any]]:
    marks = agent.command("marks")["marks"]
    counts = agent.command("counts")["dag_gets"]
    records = []
    for run in result["runs"]:
        mark = marks[run["dag_id"]]
        records.append({
            **run,
            "marked_at": mark["marked_at"],
            "delay": run["returned_at"] - mark["marked_at"],
            "delay_vs_end_time": run["returned_at"] - mark["end"],
            "task_seconds": mark["marked_at"] - run["created_at"],
            "requests": counts.get(run["dag_id"], 0),
        })
    return records


def bench_wait(quick: bool) -> BenchResult:
    runs = {1: 2, 5: 2, 30: 1} if quick else {1: 5, 5: 5, 30: 3}
    res = BenchResult("wait", "3. Noticing the end: SUCCEED marked -> task.wait() returns")
    agents: dict[tuple[int, str], AgentProcess] = {}
    drivers: dict[tuple[int, str], Driver] = {}
    try:
        for seconds, n in runs.items():
            for sdk in ("ours", "official"):
                agent = AgentProcess("--stage-seconds", repr(seconds / 9))
                agents[seconds, sdk] = agent
                drivers[seconds, sdk] = Driver(
                    sdk, ["wait", agent.port, n, seconds + 60], timeout=n * (seconds + 60) + 60)
        records = {key: wait_records(agents[key], d.result()) for key, d in drivers.items()}
    finally:
        for driver in drivers.values():
            driver.stop()
        for agent in agents.values():
            agent.close()
    for seconds in runs:
        res.rows += wait_rows(seconds, records[seconds, "ours"], records[seconds, "official"])
    res.raw["records"] = {f"{s}s/{sdk}": r for (s, sdk), r in records.items()}
    res.notes += [
        "Each task is an upgrade DAG (9 stages) of a fake agent with stage_seconds = T/9, "
        "created by the client (upgrade_agent) right before it waits: our "
        "`client.upgrade_agent(...).wait()` with default settings vs the official "
        "`upgrade_agent(...)` + `wait_dag_succeed(id)`.",
        "delay = time.time() when wait returns - time.time() when the agent marked the DAG "
        "SUCCEED (recorded in the agent process; the DAG JSON's end_time is the scheduled step "
        "time, up to one 20 ms tick earlier, so it is not used). Same host, same clock.",
        "requests = GET /api/v1/task/dag/<id> counted by the agent.",
        f"Runs per task length: {runs}. The ours/official pairs and all task lengths run "
        "concurrently (separate agent processes); the clients mostly sleep.",
        "The official SDK polls at 0, 3, 6, ... s after creating the task, so its delay is "
        "about (3 - T mod 3) mod 3 s for a T-second task: 2 s, 1 s and ~0 s here (a phase "
        "effect, not luck: for tasks of other lengths it is uniform on [0, 3] s).",
    ]
    return res


def wait_rows(seconds: int, ours: list[dict[str, Any]],
              official: list[dict[str, Any]]) -> list[Row]:
    b = f"wait {seconds} s task"
    d_ours = [r["delay"] for r in ours]
    d_off = [r["delay"] for r in official]
    q_ours = median([r["requests"] for r in ours])
    q_off = median([r["requests"] for r in official])
    return [
        Row(b, "median delay (s)", f"{median(d_ours):.3f} s", f"{median(d_off):.3f} s official",
            median(d_ours), Target("<=", WAIT_LIMITS[seconds], "s")),
        Row(b, "max delay (s) vs 3 s ceiling", f"{max(d_ours):.3f} s",
            f"{max(d_off):.3f} s official", max(d_ours), Target("<=", CEILING, "s")),
        Row(b, "requests / task vs official", f"{q_ours:g}", f"{q_off:g}", q_ours / q_off,
            Target("<=", 2.0) if seconds == 30 else None),
    ]


# -- 4. many tasks -----------------------------------------------------------------------------

MANY_AGENTS = 4
MANY_STAGE_SECONDS = 0.5  # a check DAG has 5 stages: 2.5 s


def one_many(group: AgentGroup, sdk: str, n: int) -> dict[str, Any]:
    for agent in group.agents:
        agent.command("clear")
    cpu0 = sum(a.cpu() for a in group.agents)
    driver = Driver(sdk, ["many", n, *(a.port for a in group.agents)], timeout=240)
    result = driver.result()
    cpu1 = sum(a.cpu() for a in group.agents)
    counts = [a.command("counts") for a in group.agents]
    result["requests"] = sum(c["total"] for c in counts)
    result["dag_gets"] = sum(sum(c["dag_gets"].values()) for c in counts)
    result["agents_cpu_cores"] = (cpu1 - cpu0) / driver.elapsed
    result["req_per_s"] = result["requests"] / result["wall"]
    for span in ("create_s", "follow_s"):  # per task: POST that creates it, then the wait
        values = result.pop(span)
        result[f"{span}_median"], result[f"{span}_max"] = median(values), max(values)
    if result["succeeded"] != n:
        raise RuntimeError(f"{sdk}: only {result['succeeded']} of {n} tasks succeeded")
    return result


def bench_many(quick: bool) -> BenchResult:
    sizes, reps = (10, 50, 200), 1 if quick else 3
    res = BenchResult("many", "4. Many tasks followed concurrently (threads, 4 agents)")
    raw: dict[str, list[dict[str, Any]]] = {}
    with AgentGroup(MANY_AGENTS, "--stage-seconds", str(MANY_STAGE_SECONDS)) as group:
        for rep in range(reps):
            for n in sizes:
                sdks = ("ours", "official") if rep % 2 == 0 else ("official", "ours")
                for sdk in sdks:
                    raw.setdefault(f"{sdk}/{n}", []).append(one_many(group, sdk, n))
    summary = {key: {m: median([r[m] for r in runs]) for m in
                     ("wall", "cpu", "maxrss_kib", "requests", "dag_gets", "req_per_s",
                      "agents_cpu_cores", "create_s_median", "create_s_max",
                      "follow_s_median", "follow_s_max")} for key, runs in raw.items()}
    for n in sizes:
        res.rows += many_rows(n, summary[f"ours/{n}"], summary[f"official/{n}"])
    res.rows += growth_rows(summary, sizes)
    res.raw.update(summary=summary, runs=raw)
    res.notes += [
        f"{MANY_AGENTS} agent processes, time-driven check DAGs of 5 stages x "
        f"{MANY_STAGE_SECONDS} s (2.5 s); N tasks spread evenly over the agents. Each of N "
        "threads creates one check DAG (ours: client.check_agent_upgrade, official: "
        "upgrade_agent_check) and waits for it (ours: task.wait(), official: "
        "wait_dag_succeed). One client object per agent, shared by its threads.",
        f"wall and CPU are the client process's from start (clients made) to all tasks done; "
        f"requests = all requests the agents received (creates included); median of {reps} "
        "run(s); peak RSS = ru_maxrss of the client process (a fresh process per run).",
    ]
    return res


def many_rows(n: int, ours: dict[str, float], off: dict[str, float]) -> list[Row]:
    b = f"many N={n}"
    rows = [
        Row(b, "wall (s) vs official", f"{ours['wall']:.2f} s", f"{off['wall']:.2f} s",
            ours["wall"] / off["wall"]),
        Row(b, "peak RSS vs official", f"{ours['maxrss_kib'] / 1024:.1f} MiB",
            f"{off['maxrss_kib'] / 1024:.1f} MiB", ours["maxrss_kib"] / off["maxrss_kib"]),
        Row(b, "requests (req/s) vs official",
            f"{ours['requests']:.0f} ({ours['req_per_s']:.0f}/s)",
            f"{off['requests']:.0f} ({off['req_per_s']:.0f}/s)",
            ours["requests"] / off["requests"]),
        Row(b, "client CPU vs official", f"{ours['cpu']:.2f} s", f"{off['cpu']:.2f} s",
            ours["cpu"] / off["cpu"]),
    ]
    return rows


def growth_rows(summary: dict[str, dict[str, float]], sizes: Sequence[int]) -> list[Row]:
    lo, hi = sizes[0], sizes[-1]
    rows = []
    for metric, label in (("wall", "wall"), ("cpu", "client CPU"), ("maxrss_kib", "peak RSS")):
        ours = summary[f"ours/{hi}"][metric] / summary[f"ours/{lo}"][metric]
        off = summary[f"official/{hi}"][metric] / summary[f"official/{lo}"][metric]
        rows.append(Row("many growth", f"{label} N={hi} / N={lo}", f"{ours:.2f}x",
                        f"{off:.2f}x official", ours / off))
    return rows


# -- 5. memory -------------------------------------------------------------------------------


def bench_memory(quick: bool) -> BenchResult:
    reps = 1 if quick else 3
    res = BenchResult("memory", "5. Memory: peak RSS of a script following one upgrade")
    raw: dict[str, list[int]] = {"ours": [], "official": [], "ours_baseline": [],
                                 "official_baseline": []}
    with AgentProcess("--stage-seconds", repr(2 / 9)) as agent:
        for _ in range(reps):
            for sdk in ("ours", "official"):
                found = run_driver(sdk, ["memory", agent.port], timeout=90)
                if found["state"] not in ("SUCCEED", "DagState.SUCCEED"):
                    raise RuntimeError(f"{sdk}: upgrade ended {found['state']}")
                raw[sdk].append(found["maxrss_kib"])
                raw[f"{sdk}_baseline"].append(run_driver(sdk, ["baseline"])["maxrss_kib"])
    med = {k: median(v) for k, v in raw.items()}
    ours_extra = med["ours"] - med["ours_baseline"]
    off_extra = med["official"] - med["official_baseline"]

    def mib(kib: float) -> str:
        return f"{kib / 1024:.1f} MiB"

    res.rows += [
        Row("memory", "peak RSS vs official", mib(med["ours"]), mib(med["official"]),
            med["ours"] / med["official"]),
        Row("memory", "RSS above `import requests` vs official", mib(ours_extra),
            mib(off_extra), ours_extra / off_extra if off_extra > 0 else None),
    ]
    res.raw.update(maxrss_kib=raw, median_kib=med)
    res.notes += [
        "Each SDK creates the upgrade DAG itself (ours: upgrade_agent, official: "
        "upgrade_agent) and follows it to SUCCEED (ours: task.wait(), official: "
        "wait_dag_succeed); agent: 9 stages x 2/9 s. Peak RSS = ru_maxrss of the script.",
        "Baseline = the same interpreter running only `import requests` (system python3 for "
        f"ours, the official venv for theirs). Median of {reps} run(s).",
    ]
    return res


BENCHES: dict[str, Callable[[bool], BenchResult]] = {
    "percall": bench_percall,
    "import": bench_import,
    "wait": bench_wait,
    "many": bench_many,
    "memory": bench_memory,
}


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="obshell_sdk benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer runs (under 3 minutes)")
    parser.add_argument("--only", choices=sorted(BENCHES), action="append",
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--output", default=str(BENCH_DIR / "RESULTS.md"),
                        help="where to write the Markdown results")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    names = args.only or list(BENCHES)
    started = time.time()
    facts = machine()
    compile_ours()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in facts.items()), flush=True)
    results = []
    for name in names:
        print(f"running {name} ...", flush=True)
        t0 = time.perf_counter()
        result = BENCHES[name](args.quick)
        result.seconds = time.perf_counter() - t0
        results.append(result)
        print(f"  {name} done in {result.seconds:.0f} s", flush=True)
    print_table(results)
    command = "python3 benchmarks/run.py " + " ".join(sys.argv[1:])
    write_markdown(args.output, results, facts, command.strip(), started)
    print(f"\nwrote {args.output} ({time.time() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
