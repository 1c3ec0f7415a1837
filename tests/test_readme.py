"""README.md runs as written: every Python block and shell command in it, in order.

Blocks run against the fake agent the README itself starts (``python -m obshell_sdk.testing``
on 127.0.0.1:2886) in a scratch directory whose ``.venv`` is the environment running these
tests, so ``.venv/bin/obshell-sdk`` means the SDK under test. The first of the two commands
runs verbatim in a copy of the source tree: it makes its own venv and installs the SDK from
PyPI's dependencies. Markers, an HTML comment on the line before a block:

- ``<!-- readme-test: skip "why" -->``: not run; reported as a skip with that reason.
- ``<!-- readme-test: serve -->`` on a shell block (one command: a fake agent): start it and
  keep it serving for the blocks after it; at the end Ctrl-C (SIGINT) must stop it cleanly.

One substitution: the README's fake agents listen on fixed ports (2886, 2887), where a reader
may well have them running by hand while the tests run; the test serves each on a free port
instead, and reads that port wherever the README names the fixed one in a block it runs
(``--port 2887``, ``OBSHELL_PORT=2886``, ``port=2887``). Everything else runs verbatim.
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
import threading
from pathlib import Path

import pytest

import obshell_sdk

ROOT = Path(__file__).resolve().parents[1]
#: where the obshell_sdk under test lives (the checkout, or site-packages for an sdist's tests)
SRC = Path(obshell_sdk.__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKER = re.compile(r"<!-- readme-test: (skip \"(?P<why>[^\"]+)\"|(?P<serve>serve)) -->")
DEFAULT_PORT = 2886
_IGNORED = shutil.ignore_patterns(".venv*", ".git", "build", "dist", "site", "*.egg-info",
                                  "__pycache__", ".*_cache", ".hypothesis")


class Block:
    """One fenced block of the README, with its marker."""

    def __init__(self, line: int, lang: str, code: str, marker: str) -> None:
        self.line, self.lang, self.code = line, lang, code
        found = MARKER.fullmatch(marker.strip()) if marker.strip().startswith("<!--") else None
        self.skip = found.group("why") if found else None
        self.serve = bool(found and found.group("serve"))

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
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OBSHELL_")}
        self.env["PYTHONPATH"] = str(SRC) + os.pathsep + self.env.get("PYTHONPATH", "")
        #: the README's port of each fake agent started -> (its free port here, the process)
        self.servers: dict[int, tuple[int, subprocess.Popen[str]]] = {}
        self.banners: dict[int, str] = {}
        self.logs: dict[int, tuple[list[str], threading.Thread]] = {}

    def code(self, block: Block) -> str:
        """The block as it runs here: verbatim but for the fake agents' ports."""
        code = block.code
        for readme_port, (port, _) in self.servers.items():
            code = re.sub(rf"\b{readme_port}\b", str(port), code)
        return code

    def shell(self, block: Block, cwd: Path) -> None:
        env_out = self.work / ".readme-env"
        script = f"{self.code(block)}\nenv -0 > {shlex.quote(str(env_out))}\n"
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
        command = block.code.strip()
        assert "\n" not in command, f"{block.name}: the serve block must be one command"
        given = re.search(r"--port (\d+)", command)
        readme_port = int(given.group(1)) if given else DEFAULT_PORT
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        command = (command.replace(given.group(0), f"--port {port}") if given
                   else f"{command} --port {port}")
        server = subprocess.Popen(["bash", "-c", command], cwd=self.work, env=self.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        self.servers[readme_port] = (port, server)
        assert server.stdout is not None
        banner = "".join(server.stdout.readline() for _ in range(4))
        self.banners[readme_port] = banner
        # Read its request log as it comes: a full pipe would stall the agent.
        lines: list[str] = []
        reader = threading.Thread(target=lines.extend, args=(server.stdout,), daemon=True)
        reader.start()
        self.logs[readme_port] = (lines, reader)
        assert f"listening on http://127.0.0.1:{port}" in banner, banner

    def stop(self, readme_port: int) -> tuple[int, str]:
        """Ctrl-C (SIGINT) to a fake agent, as the README says; its exit code and last output."""
        _, server = self.servers[readme_port]
        lines, reader = self.logs[readme_port]
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)
        try:
            code = server.wait(timeout=30)
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
            reader.join(timeout=10)
            assert server.stdout is not None
            server.stdout.close()
        return code, "".join(lines)

    def python(self, block: Block, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
        for key in [k for k in os.environ if k.startswith("OBSHELL_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith("OBSHELL_"):
                monkeypatch.setenv(key, value)
        monkeypatch.chdir(self.work)
        exec(compile(self.code(block), block.name, "exec"), {"__name__": "__readme__"})


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    s = Session(tmp_path_factory.mktemp("readme"))
    yield s
    for readme_port, (_, server) in s.servers.items():
        if server.poll() is None:
            s.stop(readme_port)


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
    if block.serve:
        assert block.lang == "sh", f"{block.name}: only a shell command can serve"
        session.serve(block)
        return
    assert DEFAULT_PORT in session.servers, "the README must start its fake agent first"
    if block.lang == "sh":
        session.shell(block, session.work)
        return
    session.python(block, session.env, monkeypatch)


def test_the_readme_agents_say_what_the_readme_says_and_stop_on_ctrl_c(session):
    if DEFAULT_PORT not in session.servers:
        pytest.skip("the serving block did not run")
    banner = session.banners[DEFAULT_PORT]
    export = next(line.strip() for line in banner.splitlines() if "export " in line)
    port = session.servers[DEFAULT_PORT][0]
    assert export.replace(f"OBSHELL_PORT={port}", f"OBSHELL_PORT={DEFAULT_PORT}") in \
        README.read_text(encoding="utf-8")
    for readme_port in session.servers:
        code, rest = session.stop(readme_port)
        assert code == 0 and "fake obshell agent stopped" in rest and "Traceback" not in rest
        if readme_port != DEFAULT_PORT:  # the failing agent: its example retried the task
            assert re.search(r"POST /api/v1/task/dag/\d+ -> 200", rest), rest[-2000:]


def test_no_doc_offers_cancel_for_a_failed_task():
    """obshell refuses CANCEL for a FAILED DAG (getNodeCanCancel: IsFinished), so no advice
    on a failed task or cluster lists cancel among its ways out."""
    offers = re.compile(r"fail[^.]*\b(rollback|skip),? (or )?cancel\b", re.I)
    for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        prose = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
        found = [m.group(0) for m in offers.finditer(prose.replace("\n", " "))]
        assert not found, f"{doc.name}: {found}"
