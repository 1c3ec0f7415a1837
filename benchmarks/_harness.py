"""What the benchmarks share: interpreters, child processes, statistics, the report."""

from __future__ import annotations

import bisect
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Optional

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
OFFICIAL_VENV = Path("/tmp/bench-official")
# Where our side runs: an interpreter with requests, pycryptodome and attrs, and the directory
# that holds the obshell_sdk/ to measure. run.py's --python and --sdk-root change them.
OURS = {"python": str(REPO / ".venv" / "bin" / "python"), "sdk_root": str(REPO)}
if not Path(OURS["python"]).exists():
    OURS["python"] = sys.executable


def ours_python() -> str:
    return OURS["python"]


def ours_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": OURS["sdk_root"]}


def official_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def official_python() -> str:
    """The venv of PyPI ``obshell==0.0.9``; created on first use (benchmark-only)."""
    python = OFFICIAL_VENV / "bin" / "python"
    check = [str(python), "-c", "import obshell"]
    if python.exists() and subprocess.run(check, env=official_env(),
                                          capture_output=True).returncode == 0:
        return str(python)
    print(f"creating {OFFICIAL_VENV} with obshell==0.0.9", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(OFFICIAL_VENV)], check=True)
    subprocess.run([str(OFFICIAL_VENV / "bin" / "pip"), "install", "-q", "-r",
                    str(BENCH_DIR / "requirements.txt")], check=True)
    return str(python)


#: A venv holding only our three dependencies, where the import benchmark runs our side.
IMPORT_VENV = Path("/tmp/bench-ours")
#: What goes into it: the three dependencies and theirs, at the versions ours_python() has.
IMPORT_PACKAGES = ("requests", "pycryptodome", "attrs", "urllib3", "idna",
                   "charset-normalizer", "certifi")


def import_python() -> str:
    """An interpreter like the official SDK's, for the import benchmark: the packages, no more.

    The repo's ``.venv`` holds the SDK as an editable install (the README's test command
    makes one), whose ``.pth`` finder imports ``pathlib`` and more when any interpreter of
    that venv starts: about 20 ms on a slow host that ``import obshell`` in its own venv
    never pays. So our import runs in a venv of its own, built (once, and again when the
    versions change) with the versions of ``ours_python()``; the SDK comes from PYTHONPATH.
    """
    ask = ("import importlib.metadata as m; print(' '.join(f'{p}=={m.version(p)}' "
           f"for p in {IMPORT_PACKAGES!r}))")
    pins = subprocess.run([ours_python(), "-c", ask], env=official_env(), check=True,
                          capture_output=True, text=True).stdout.split()
    python, stamp = IMPORT_VENV / "bin" / "python", IMPORT_VENV / "pins.txt"
    if python.exists() and stamp.exists() and stamp.read_text().split() == pins:
        return str(python)
    print(f"creating {IMPORT_VENV} with {' '.join(pins)}", file=sys.stderr)
    subprocess.run([ours_python(), "-m", "venv", "--clear", str(IMPORT_VENV)], check=True)
    subprocess.run([str(IMPORT_VENV / "bin" / "pip"), "install", "-q", *pins], check=True)
    stamp.write_text(" ".join(pins))
    return str(python)


def compile_ours() -> None:
    """Byte-compile the SDK as ``pip install`` would (the sandbox sets PYTHONDONTWRITEBYTECODE)."""
    subprocess.run([ours_python(), "-m", "compileall", "-q", OURS["sdk_root"] + "/obshell_sdk"],
                   check=True, capture_output=True)


class Child:
    """A child process spoken to in JSON lines; stopped (stdin closed, then killed) on close."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=BENCH_DIR)
        try:
            self.hello = self.recv(60)
        except BaseException:
            self.close()
            raise

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def recv(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"{self.proc.args!r}: no answer within {timeout:g} s")
        return dict(json.loads(line))

    def ask(self, message: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        self.send(message)
        return self.recv(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()


def agent() -> Child:
    """``agent_server.py``: hello is ``{"port", "pid", "dag"}``."""
    return Child([ours_python(), str(BENCH_DIR / "agent_server.py")], ours_env())


def client(sdk: str, sdk_root: Optional[str] = None) -> Child:
    """``client.py`` for ``ours``, ``official`` or ``floor``, each with its interpreter.

    ``sdk_root``: ours from that directory instead of ``--sdk-root`` (a baseline tree). Ours
    must import the tree asked for, or this raises.
    """
    if sdk == "official":
        python, env = official_python(), official_env()
    else:
        python, env = ours_python(), ours_env()
    root = sdk_root or OURS["sdk_root"]
    env = {**env, "PYTHONPATH": root} if sdk == "ours" else env
    child = Child([python, str(BENCH_DIR / "client.py"), sdk], env)
    imported = child.hello.get("sdk", "")
    if sdk == "ours" and imported != os.path.join(root, "obshell_sdk", "__init__.py"):
        child.close()
        raise SystemExit(f"the measured process imported {imported}, not the tree in {root} "
                         "(is there an obshell_sdk/ in it?)")
    return child


def baseline_tree(rev: str, into: str) -> str:
    """Extract ``obshell_sdk/`` at git revision ``rev`` into ``into`` and byte-compile it."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "obshell_sdk"],
                             capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"--baseline {rev}: git archive failed: "
                         f"{archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
    subprocess.run([ours_python(), "-m", "compileall", "-q", into + "/obshell_sdk"],
                   check=True, capture_output=True)
    return into


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def most_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most of ``times`` that fall in any half-open interval ``[t, t + window)``."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered)),
               default=0)


# -- the report ------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of a table; ``ok`` is None for rows without a target."""

    bench: str
    metric: str
    ours: str
    baseline: str
    figure: str
    target: str = ""
    ok: Optional[bool] = None

    @property
    def verdict(self) -> str:
        return "" if self.ok is None else ("PASS" if self.ok else "FAIL")

    def cells(self) -> tuple[str, ...]:
        return (self.bench, self.metric, self.ours, self.baseline, self.figure, self.target,
                self.verdict)


HEADERS = ("benchmark", "metric", "ours", "baseline", "figure", "target", "result")


@dataclass
class BenchResult:
    """What one benchmark produced: rows, notes, extra Markdown, raw numbers."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def print_table(results: Sequence[BenchResult]) -> None:
    rows = [r.cells() for res in results for r in res.rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
    line = "  ".join(h.ljust(w) for h, w in zip(HEADERS, widths))
    print("\n" + line + "\n" + "-" * len(line))
    for cells in rows:
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
    judged = [r for res in results for r in res.rows if r.ok is not None]
    print(f"\ntargets: {sum(1 for r in judged if r.ok)} PASS, "
          f"{sum(1 for r in judged if not r.ok)} FAIL")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return out + ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]


MOVED_START, MOVED_END = "<!-- moved: kept across runs -->", "<!-- /moved -->"


def kept_section(path: Path) -> list[str]:
    """The hand-written "which figures moved and why" section of an earlier RESULTS.md."""
    text = path.read_text() if path.exists() else ""
    if MOVED_START in text and MOVED_END in text:
        return text[text.index(MOVED_START):text.index(MOVED_END)].splitlines()[1:]
    return ["## Which figures moved and why", "", "(to be written by hand; kept across runs)",
            ""]


BENCH_START, BENCH_END = "<!-- bench:{} -->", "<!-- /bench:{} -->"


def kept_results(path: Path, names: Sequence[str]) -> dict[str, tuple[list[tuple[str, ...]],
                                                                     list[str]]]:
    """Summary rows and section of each benchmark in ``names`` that an earlier RESULTS.md holds.

    A benchmark's section is what lies between its ``<!-- bench:NAME -->`` markers; its rows
    are the summary rows whose first cell starts with its name. Benchmarks without markers
    (files written before the markers) are not kept.
    """
    text = path.read_text() if names and path.exists() else ""
    found: dict[str, tuple[list[tuple[str, ...]], list[str]]] = {}
    for name in names:
        start, end = BENCH_START.format(name), BENCH_END.format(name)
        if start in text and end in text:
            found[name] = ([], text[text.index(start):text.index(end) + len(end)].splitlines())
    summary = text.split("## Summary", 1)[-1].split(MOVED_START, 1)[0] if text else ""
    for line in summary.splitlines()[3:]:  # after the blank line, the header, the separator
        cells = tuple(c.strip() for c in line.strip().strip("|").split("|"))
        name = cells[0].replace(",", " ").split(" ", 1)[0]
        if line.startswith("| ") and len(cells) == len(HEADERS) and name in found:
            found[name][0].append(cells)
    return found


def write_markdown(path: Path, results: Sequence[BenchResult], facts: dict[str, str],
                   command: str, started: float, order: Sequence[str] = (),
                   keep: Sequence[str] = ()) -> None:
    """Write RESULTS.md; ``keep`` names benchmarks not run now whose figures an earlier file
    at ``path`` holds: they are kept (rows and section), in ``order``."""
    kept = kept_results(path, keep)
    ran = {res.name: res for res in results}
    names = [n for n in order if n in ran or n in kept] + [n for n in ran if n not in order]
    rows = [cells for n in names
            for cells in ([r.cells() for r in ran[n].rows] if n in ran else kept[n][0])]
    judged = [cells[-1] for cells in rows if cells[-1] in ("PASS", "FAIL")]
    when = time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(started))
    out = [
        "# obshell_sdk benchmark results", "",
        f"- command: `{command}`",
        f"- date: {when}",
        f"- machine: {facts['cpu']}, {facts['cores']} cores, {facts['os']}",
        f"- ours: Python {facts['python']} ({facts['ours_python']}, "
        f"PYTHONPATH={facts['sdk_root']}); "
        f"official: obshell==0.0.9, {facts['official_python']}",
        f"- total time: {time.time() - started:.0f} s",
        f"- targets: {judged.count('PASS')} PASS, {judged.count('FAIL')} FAIL",
    ]
    if kept:
        out.append(f"- kept from an earlier run (not run by this command): {', '.join(kept)}; "
                   "each section says when it ran")
    out += [
        "",
        "Every baseline is measured in the same run as the figure it is compared with.", "",
        "## Summary", "",
        *md_table(HEADERS, rows), "",
    ]
    out += [MOVED_START, *kept_section(path), MOVED_END, ""]
    for name in names:
        if name not in ran:
            out += [*kept[name][1], ""]
            continue
        res = ran[name]
        out += [BENCH_START.format(name), f"## {res.title}", "",
                f"({res.seconds:.0f} s, run {when})", ""]
        out += [*res.markdown, ""] if res.markdown else []
        out += [f"- {note}" for note in res.notes] + [""]
        out += ["<details><summary>raw numbers</summary>", "", "```json",
                json.dumps(res.raw, indent=1), "```", "", "</details>", "",
                BENCH_END.format(name), ""]
    path.write_text("\n".join(out))


def python_version(python: str) -> str:
    return subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True, cwd=BENCH_DIR).stdout.strip()


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.lower().startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    official = official_python()
    return {"cpu": cpu, "cores": str(os.cpu_count()),
            "os": f"{platform.system()} {platform.release()}",
            "python": python_version(ours_python()), "ours_python": ours_python(),
            "sdk_root": OURS["sdk_root"],
            "official_python": f"{official} (Python {python_version(official)})"}
