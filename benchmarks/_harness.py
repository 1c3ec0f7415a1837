"""Plumbing shared by the benchmarks: agent processes, client drivers, machine facts, stats."""

from __future__ import annotations

import json
import os
import platform
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
OFFICIAL_VENVS = (Path("/tmp/offvenv"), Path("/tmp/bench-official"))
SYSTEM_PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")


def compile_ours() -> None:
    """Byte-compile the SDK in the repo, as ``pip install`` does for an installed package.

    The dependencies and the official SDK are installed and so have their ``.pyc`` files;
    without this, an environment with ``PYTHONDONTWRITEBYTECODE`` set would make every run
    of ours compile its modules from source (12 ms of a 140 ms import).
    """
    subprocess.run([SYSTEM_PY, "-m", "compileall", "-q", str(REPO / "obshell_sdk")],
                   check=True, capture_output=True)


def ours_env() -> dict[str, str]:
    """Environment for processes running OUR SDK from the repo."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    return env


def official_env() -> dict[str, str]:
    """Environment for the official SDK's venv (no repo on the path)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def official_python() -> str:
    """The official SDK's venv interpreter; creates ``/tmp/bench-official`` if none exists."""
    for venv in OFFICIAL_VENVS:
        python = venv / "bin" / "python"
        if python.exists() and _imports_obshell(python):
            return str(python)
    venv = OFFICIAL_VENVS[-1]
    print(f"creating {venv} with obshell==0.0.9 (benchmark-only dependency)", file=sys.stderr)
    subprocess.run([SYSTEM_PY, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r",
                    str(BENCH_DIR / "requirements.txt")], check=True)
    return str(venv / "bin" / "python")


def _imports_obshell(python: Path) -> bool:
    done = subprocess.run([str(python), "-c", "import obshell"], env=official_env(),
                          capture_output=True, check=False)
    return done.returncode == 0


def proc_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of process ``pid`` (all its threads), from /proc/PID/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class AgentProcess:
    """``agent_server.py`` in a child process; stops when closed (its stdin is closed)."""

    def __init__(self, *options: str) -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PY, str(BENCH_DIR / "agent_server.py"), *options],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ours_env(),
        )
        hello = self._read()
        self.port: int = hello["port"]
        self.pid: int = hello["pid"]
        self.dag_id: Optional[str] = hello["dag_id"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("agent_server.py exited early")
        return dict(json.loads(line))

    def command(self, name: str) -> dict[str, Any]:
        """Send one control command (counts, marks, clear, cpu) and return its answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        return self._read()

    def cpu(self) -> float:
        """This agent's CPU seconds so far (read from /proc, costs the agent nothing)."""
        return proc_cpu_seconds(self.pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()


class AgentGroup:
    """Several agents that are closed together."""

    def __init__(self, count: int, *options: str) -> None:
        self.agents: list[AgentProcess] = []
        try:
            for _ in range(count):
                self.agents.append(AgentProcess(*options))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for agent in self.agents:
            agent.close()

    def __enter__(self) -> AgentGroup:
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()


def driver_command(sdk: str, args: Sequence[object]) -> tuple[list[str], dict[str, str]]:
    """Command line and environment of a measured client process (sdk: ours or official)."""
    if sdk == "ours":
        return [SYSTEM_PY, str(BENCH_DIR / "client_ours.py"), *map(str, args)], ours_env()
    python = official_python()
    return [python, str(BENCH_DIR / "client_official.py"), *map(str, args)], official_env()


class Driver:
    """A client driver started in the background; :meth:`result` waits for its JSON line."""

    def __init__(self, sdk: str, args: Sequence[object], timeout: float) -> None:
        cmd, env = driver_command(sdk, args)
        self.deadline = time.monotonic() + timeout
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.elapsed = 0.0

    def stop(self) -> None:
        """Kill the driver if it is still running (after another benchmark step failed)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()

    def result(self) -> dict[str, Any]:
        try:
            out, err = self.proc.communicate(timeout=max(1.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise RuntimeError(f"driver {self.proc.args!r} timed out") from None
        self.elapsed = time.perf_counter() - self.started
        if self.proc.returncode != 0:
            raise RuntimeError(f"driver {self.proc.args!r} failed:\n{err[-3000:]}")
        return dict(json.loads(out.strip().splitlines()[-1]))


def run_driver(sdk: str, args: Sequence[object], timeout: float = 300) -> dict[str, Any]:
    """Run a client driver to its end and return its JSON result."""
    return Driver(sdk, args, timeout).result()


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    official = official_python()
    off_version = subprocess.run(
        [official, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True, text=True, check=True, env=official_env()).stdout.strip()
    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "official_python": f"{official} ({off_version})",
        "os": f"{platform.system()} {platform.release()}",
    }


@dataclass
class Target:
    """A bound on a ratio: ``op`` is ``<=`` or ``>=``."""

    op: str
    value: float
    unit: str = "x"

    def met(self, figure: float) -> bool:
        return figure <= self.value if self.op == "<=" else figure >= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}{' s' if self.unit == 's' else 'x'}"


@dataclass
class Row:
    """One line of the summary table."""

    bench: str
    metric: str
    ours: str
    baseline: str
    ratio: Optional[float] = None  # the figure judged: a ratio, or seconds if target.unit "s"
    target: Optional[Target] = None

    @property
    def met(self) -> Optional[bool]:
        if self.target is None or self.ratio is None:
            return None
        return self.target.met(self.ratio)

    @property
    def figure(self) -> str:
        if self.ratio is None:
            return "-"
        if self.target is not None and self.target.unit == "s":
            return f"{self.ratio:.3f} s"
        return f"{self.ratio:.2f}x"

    @property
    def verdict(self) -> str:
        met = self.met
        return "" if met is None else ("MET" if met else "NOT MET")


@dataclass
class BenchResult:
    """What one benchmark produced: table rows, raw numbers, notes."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
