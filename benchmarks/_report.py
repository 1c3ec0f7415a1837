"""The summary table on stdout and benchmarks/RESULTS.md."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _harness import BenchResult, Row

HEADERS = ("benchmark", "metric", "ours", "baseline", "figure", "target", "met")


def cells(row: Row) -> tuple[str, ...]:
    return (row.bench, row.metric, row.ours, row.baseline, row.figure,
            "" if row.target is None else str(row.target), row.verdict)


def print_table(results: Sequence[BenchResult]) -> None:
    rows = [cells(r) for res in results for r in res.rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
    line = "  ".join(h.ljust(w) for h, w in zip(HEADERS, widths))
    print("\n" + line + "\n" + "-" * len(line))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    targets = [r for res in results for r in res.rows if r.met is not None]
    met = sum(1 for r in targets if r.met)
    print(f"\ntargets met: {met} of {len(targets)}")


def md_table(rows: Sequence[Row]) -> list[str]:
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in rows:
        out.append("| " + " | ".join(c.replace("|", "/") for c in cells(row)) + " |")
    return out


def _json_block(value: Any) -> list[str]:
    return ["```json", json.dumps(value, indent=1, default=str), "```"]


def bench_section(res: BenchResult) -> list[str]:
    out = [f"## {res.title}", "", f"({res.seconds:.0f} s)", ""]
    out += [*md_table(res.rows), ""]
    out += [f"- {note}" for note in res.notes] + [""]
    raw = dict(res.raw)
    profile = raw.pop("profile", None)
    for key, title in (("importtime_top10", "`-X importtime`: top 10 by cumulative time"),
                       ("importtime_own_modules", "`-X importtime`: the SDK's own modules "
                        "(and what only it imports), by self time")):
        entries = raw.pop(key, None)
        if entries:
            out += [f"### {title}", "", "| module | self us | cumulative us |", "|---|---|---|"]
            out += [f"| {e['module']} | {e['self_us']} | {e['cumulative_us']} |"
                    for e in entries] + [""]
    breakdown = raw.pop("breakdown", None)
    if breakdown:
        out += ["### Client CPU per call of each step of our get_dag, timed alone "
                "(benchmarks/breakdown.py)", "", "| step | CPU us / call |", "|---|---|"]
        out += [f"| {step} | {cost} |" for step, cost in breakdown.items()] + [""]
    if profile:
        out += ["### Where our get_dag spends its time (cProfile, 500 calls)", "",
                "```", profile.rstrip(), "```", ""]
    out += ["<details><summary>raw numbers</summary>", "", *_json_block(raw)]
    out += ["", "</details>", ""]
    return out


def write_markdown(path: str, results: Sequence[BenchResult], facts: dict[str, str],
                   command: str, started: float) -> None:
    all_rows = [r for res in results for r in res.rows]
    judged = [r for r in all_rows if r.met is not None]
    missed = [r for r in judged if not r.met]
    out = [
        "# obshell_sdk benchmark results", "",
        f"- command: `{command}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(started))}",
        f"- machine: {facts['cpu']}, {facts['cores']} cores, {facts['os']}",
        f"- Python {facts['python']} (ours, system python3 + PYTHONPATH=repo); "
        f"official SDK obshell==0.0.9 in {facts['official_python']}",
        f"- total time: {time.time() - started:.0f} s",
        f"- targets met: {len(judged) - len(missed)} of {len(judged)}",
        "",
        "Every figure is measured in this run against a baseline measured in the same run; "
        "`figure` is ours/baseline unless the metric says otherwise (seconds for delays). "
        "Rows marked (info) have no target; (check) rows guard the setup.",
        "",
        "## Summary", "",
    ]
    out += [*md_table(all_rows), ""]
    if missed:
        out += ["Targets not met:", ""]
        out += [f"- {r.bench}: {r.metric}: {r.figure} (target {r.target})" for r in missed]
        out += [""]
    for res in results:
        out += bench_section(res)
    Path(path).write_text("\n".join(out) + "\n")
