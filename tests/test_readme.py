"""README.md runs as written: every Python block and shell command in it, in order.

Blocks run against the fake agent the README itself starts (``python -m obshell_sdk.testing``
on 127.0.0.1:2886) in a scratch directory whose ``.venv`` is the environment running these
tests, so ``.venv/bin/obshell-sdk`` means the SDK under test. The first of the two commands
runs verbatim in a copy of the source tree: it makes its own venv and installs the SDK from
PyPI's dependencies. Markers, an HTML comment on the line before a block:

- ``<!-- readme-test: skip "why" -->``: not run; reported as a skip with that reason.
- ``<!-- readme-test: serve -->`` on a shell block: start it and keep it serving for the
  blocks after it (stopped with Ctrl-C, SIGINT, at the end, which must stop it cleanly).
- ``<!-- readme-test: serve FLAGS -->`` on a Python block: run that block against a fake
  agent of its own, started with ``--port 0 FLAGS``.

Files the README names as already at hand (the RPMs a reader downloads) are made with
``build_rpm`` in the scratch directory.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import obshell_sdk
from obshell_sdk.testing import build_rpm

ROOT = Path(__file__).resolve().parents[1]
#: where the obshell_sdk under test lives (the checkout, or site-packages for an sdist's tests)
SRC = Path(obshell_sdk.__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKER = re.compile(r"<!-- readme-test: (skip \"(?P<why>[^\"]+)\"|serve(?P<flags>[^>]*?)) -->")
PACKAGES = [("obshell", "4.3.1.0", "101000012025010101.el7"),
            ("oceanbase-ce", "4.3.5.1", "101000012025052815.el7"),
            ("oceanbase-ce-libs", "4.3.5.1", "101000012025052815.el7")]
_IGNORED = shutil.ignore_patterns(".venv*", ".git", "build", "dist", "site", "*.egg-info",
                                  "__pycache__", ".*_cache", ".hypothesis")


class Block:
    """One fenced block of the README, with its marker."""

    def __init__(self, line: int, lang: str, code: str, marker: str) -> None:
        self.line, self.lang, self.code = line, lang, code
        found = MARKER.fullmatch(marker.strip()) if marker.strip().startswith("<!--") else None
        self.skip = found.group("why") if found and found.group("why") else None
        self.serve = None if not found or found.group("why") else found.group("flags").strip()

    @property
    def name(self) -> str:
        return f"README.md:{self.line}:{self.lang}"


def blocks() -> list[Block]:
    lines = README.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = re.fullmatch(r"```(\w*)", lines[i])
        if fence is None:
            i += 1
            continue
        end = lines.index("```", i + 1)
        found.append(Block(i + 1, fence.group(1), "\n".join(lines[i + 1:end]) + "\n",
                           lines[i - 1] if i else ""))
        i = end + 1
    return found


class Session:
    """What the blocks share: the scratch directory, the environment, the serving agent."""

    def __init__(self, work: Path) -> None:
        self.work = work
        (work / ".venv").symlink_to(sys.prefix, target_is_directory=True)
        (work / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
        for name, version, release in PACKAGES:
            (work / f"{name}-{version}-{release}.x86_64.rpm").write_bytes(
                build_rpm(name, version, release))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OBSHELL_")}
        self.env["PYTHONPATH"] = str(SRC) + os.pathsep + self.env.get("PYTHONPATH", "")
        self.server: subprocess.Popen[str] | None = None
        self.banner = ""

    def shell(self, block: Block, cwd: Path) -> None:
        env_out = self.work / ".readme-env"
        script = f"{block.code}\nenv -0 > {shlex.quote(str(env_out))}\n"
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=self.env,
                              capture_output=True, text=True, timeout=600,
                              stdin=subprocess.DEVNULL, check=False)
        assert done.returncode == 0, f"{block.name} exited {done.returncode}:\n" \
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        for item in env_out.read_text().split("\0"):
            key, _, value = item.partition("=")
            if key.startswith("OBSHELL_"):
                self.env[key] = value

    def serve(self, block: Block) -> None:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", 2886))
            except OSError:
                pytest.fail("port 2886 is taken; the README's fake agent listens there: stop "
                            "what uses it and run the README test again")
        self.server = subprocess.Popen(["bash", "-c", block.code], cwd=self.work, env=self.env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, text=True,
                                       start_new_session=True)
        assert self.server.stdout is not None
        self.banner = "".join(self.server.stdout.readline() for _ in range(4))
        assert "listening on http://127.0.0.1:2886" in self.banner, self.banner

    def stop(self) -> tuple[int, str]:
        assert self.server is not None and self.server.stdout is not None
        os.killpg(self.server.pid, signal.SIGINT)  # Ctrl-C, as the README says
        try:
            rest = self.server.stdout.read()
            code = self.server.wait(timeout=30)
        finally:
            if self.server.poll() is None:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait()
            self.server.stdout.close()
        return code, rest

    def python(self, block: Block, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
        for key in [k for k in os.environ if k.startswith("OBSHELL_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith("OBSHELL_"):
                monkeypatch.setenv(key, value)
        monkeypatch.chdir(self.work)
        exec(compile(block.code, block.name, "exec"), {"__name__": "__readme__"})


def _own_agent(flags: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen([sys.executable, "-m", "obshell_sdk.testing", "--port", "0", "-q",
                             *shlex.split(flags)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    banner = [proc.stdout.readline() for _ in range(4)]
    export = next(line for line in banner if "export " in line)
    return proc, dict(item.split("=", 1) for item in shlex.split(export.split("export ")[1]))


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    s = Session(tmp_path_factory.mktemp("readme"))
    yield s
    if s.server is not None and s.server.poll() is None:
        s.stop()


ALL = blocks()


def test_every_block_is_python_or_shell_and_the_two_commands_come_first():
    assert {b.lang for b in ALL} <= {"python", "sh"}, [b.name for b in ALL]
    assert "examples/upgrade_agent.py --demo" in ALL[0].code
    assert "pytest" in ALL[1].code and ALL[1].skip


@pytest.mark.parametrize("block", ALL, ids=[b.name for b in ALL])
def test_block_runs_as_written(block, session, monkeypatch, tmp_path):
    if block.skip:
        pytest.skip(f"{block.name}: {block.skip}")
    if block is ALL[0]:  # the first command: a fresh venv, pip install ., the demo
        fresh = tmp_path / "clone"
        shutil.copytree(ROOT, fresh, ignore=_IGNORED)
        if not (fresh / "obshell_sdk").exists():  # an sdist's tests: its source was removed
            shutil.copytree(Path(obshell_sdk.__file__).parent, fresh / "obshell_sdk",
                            ignore=_IGNORED)
        session.shell(block, fresh)
        return
    if block.lang == "sh" and block.serve is not None:
        session.serve(block)
        return
    assert session.server is not None, "the README must start its fake agent before this block"
    if block.lang == "sh":
        session.shell(block, session.work)
        return
    if block.serve:
        proc, env = _own_agent(block.serve, session.env)
        try:
            session.python(block, env, monkeypatch)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
        return
    session.python(block, session.env, monkeypatch)


def test_the_readme_agent_says_what_the_readme_says_and_stops_on_ctrl_c(session):
    if session.server is None:
        pytest.skip("the serving block did not run")
    export = next(line.strip() for line in session.banner.splitlines() if "export " in line)
    assert export in README.read_text(encoding="utf-8")
    code, rest = session.stop()
    assert code == 0 and "fake obshell agent stopped" in rest and "Traceback" not in rest
