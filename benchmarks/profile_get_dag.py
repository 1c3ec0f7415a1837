"""Profile N signed ``get_dag`` calls of OUR SDK with cProfile; print where the time goes.

    python3 benchmarks/profile_get_dag.py PORT DAG_ID [CALLS]

(``run.py`` starts an agent and calls this; alone, start ``agent_server.py --frozen-dag``.)
Prints the functions inside obshell_sdk/, requests/, urllib3/ and http/ with the most
cumulative and own time, then the usual ``-s cumtime`` top 25.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from obshell_sdk import ObshellClient, PasswordAuth

PASSWORD = "bench-password"
AREAS = ("obshell_sdk/", "requests/", "urllib3/", "/http/", "Crypto/", "json/", "attr")


def profile(port: int, dag_id: str, calls: int) -> cProfile.Profile:
    client = ObshellClient("127.0.0.1", port, auth=PasswordAuth(PASSWORD))
    for _ in range(20):
        client.get_dag(dag_id)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        client.get_dag(dag_id)
    profiler.disable()
    client.close()
    return profiler


def area_rows(stats: pstats.Stats, sort_index: int, limit: int) -> list[str]:
    """Top functions in our areas of interest; sort_index 2 = own time, 3 = cumulative."""
    table = stats.stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in table.items():
        if any(area in filename for area in AREAS):
            short = filename.split("site-packages/")[-1].split("/work/main/")[-1]
            rows.append((ncalls, tottime, cumtime, f"{short}:{line}({name})"))
    key = 1 if sort_index == 2 else 2
    rows.sort(key=lambda r: r[key], reverse=True)
    return [f"{n:>8} {tot:9.4f} {cum:9.4f}  {where}" for n, tot, cum, where in rows[:limit]]


def report(profiler: cProfile.Profile, calls: int) -> str:
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    out = [f"{calls} get_dag calls, {total:.3f} s profiled ({total / calls * 1e6:.0f} us/call "
           "under cProfile)", "", "   ncalls   tottime   cumtime  function  (by cumulative)"]
    out += area_rows(stats, 3, 30)
    out += ["", "   ncalls   tottime   cumtime  function  (by own time)"]
    out += area_rows(stats, 2, 20)
    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).sort_stats("cumtime").print_stats(25)
    out += ["", "python -m cProfile -s cumtime, top 25:", buf.getvalue()]
    return "\n".join(out)


def main() -> None:
    port, dag_id = int(sys.argv[1]), sys.argv[2]
    calls = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    print(report(profile(port, dag_id, calls), calls))


if __name__ == "__main__":
    main()
