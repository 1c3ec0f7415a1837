"""``python -m obshell_sdk.testing``: the fake agent served from a shell, as a real process."""

from __future__ import annotations

import http.client
import os
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import obshell_sdk

ROOT = Path(__file__).resolve().parents[1]
#: where the obshell_sdk under test lives (the checkout, or site-packages for an sdist's tests)
SRC = Path(obshell_sdk.__file__).resolve().parents[1]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSHELL_")}
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


class Served:
    """A fake agent process; its banner read, its connection variables parsed."""

    def __init__(self, *flags):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "obshell_sdk.testing", "--port", "0", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            text=True, env=_env())
        self.banner = [self.proc.stdout.readline() for _ in range(4)]
        export = next(line for line in self.banner if "export " in line)
        self.vars = dict(item.split("=", 1) for item in shlex.split(export.split("export ")[1]))

    def cli(self, *args):
        return subprocess.run([sys.executable, "-m", "obshell_sdk", *args], env=_env(**self.vars),
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, check=False)

    def stop(self, sig=signal.SIGINT):
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=30)
        return out, err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


def test_help_works_and_names_the_flags():
    out = subprocess.run([sys.executable, "-m", "obshell_sdk.testing", "--help"],
                         capture_output=True, text=True, env=_env(), timeout=60, check=False)
    assert out.returncode == 0
    for flag in ("--port", "--password", "--agent-password", "--obshell-version",
                 "--stage-seconds", "--auth", "--fail-stage", "--restart-at-stage",
                 "--drop-create-reply", "default 2886", "default 4.2.1.0"):
        assert flag in out.stdout, flag
    assert "(default: None)" not in out.stdout and "(default: )" not in out.stdout


def test_the_console_script_names_itself_in_its_usage():
    """``obshell-fake-agent --help`` called itself ``python -m obshell_sdk.testing``."""
    script = Path(sys.executable).with_name("obshell-fake-agent")
    if not script.exists():
        pytest.skip("the obshell-fake-agent script is not installed beside this Python")
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, env=_env(),
                         timeout=60, check=False)
    assert out.returncode == 0 and out.stdout.startswith("usage: obshell-fake-agent "), out
    module = subprocess.run([sys.executable, "-m", "obshell_sdk.testing", "--help"],
                            capture_output=True, text=True, env=_env(), timeout=60, check=False)
    assert module.stdout.startswith("usage: python -m obshell_sdk.testing "), module.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serves_what_the_banner_says_and_stops_cleanly(sig):
    with Served() as agent:
        assert agent.vars["OBSHELL_HOST"] == "127.0.0.1" and agent.vars["OBSHELL_PORT"] != "0"
        info = agent.cli("info")
        assert info.returncode == 0 and "obshell 4.2.1.0" in info.stdout
        # The default version is below the README's example target: that upgrade runs.
        up = agent.cli("upgrade", "4.2.1.1", "101000062023110109.el7", "--wait")
        assert up.returncode == 0, up.stderr
        out, err = agent.stop(sig)
        assert agent.proc.returncode == 0 and "Traceback" not in err
        assert "stopped" in out and "POST /api/v1/agent/upgrade -> 200 [v2]" in out
        port = int(agent.vars["OBSHELL_PORT"])
    with socket.socket() as s:  # the port is free again: nothing outlived the process
        s.bind(("127.0.0.1", port))


def test_auth_v1_and_an_agent_password():
    with Served("--auth", "v1", "--agent-password", "agent-pw", "-q") as agent:
        assert agent.vars["OBSHELL_AGENT_PASSWORD"] == "agent-pw"
        up = agent.cli("upgrade", "4.2.2.1", "101000062023110109.el7", "--wait")
        assert up.returncode == 0, up.stderr
        out, _ = agent.stop()
        assert "(CLUSTER AGENT, auth v1)" in agent.banner[0] and "POST" not in out


def test_auth_v1_upgraded_past_422_then_a_new_command_signs_as_the_new_agent():
    """A new user's report: after this upgrade, task list failed with "X-OCS-Auth not found"."""
    with Served("--auth", "v1") as agent:
        up = agent.cli("upgrade", "4.2.3.0", "1.el7", "--wait")
        assert up.returncode == 0, up.stderr
        listed = agent.cli("task", "list")
        assert listed.returncode == 0, listed.stderr
        assert "obshell 4.2.3.0" in agent.cli("info").stdout
        out, _ = agent.stop()
        assert "POST /api/v1/agent/upgrade -> 200 [v1]" in out, out
        assert "GET /api/v1/task/dag/unfinish -> 200 [v2]" in out, out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_request_answered_just_before_the_stop_is_logged(sig):
    """The log was written every 0.2 s and a stop skipped the rest: lines went missing."""
    with Served() as agent:
        conn = http.client.HTTPConnection(agent.vars["OBSHELL_HOST"],
                                          int(agent.vars["OBSHELL_PORT"]), timeout=10)
        try:  # from here (no CLI process to wait out, no proxy from the environment)
            conn.request("GET", "/api/v1/info")
            assert conn.getresponse().status == 200
        finally:
            conn.close()
        # Stopped at once: the 0.2 s log loop has (almost surely) not come round since the
        # answer, so a stop that skips the rest of the log loses the line every time.
        out, err = agent.stop(sig)
        assert agent.proc.returncode == 0 and "Traceback" not in err
        assert out.splitlines() == ["GET /api/v1/info -> 200", "fake obshell agent stopped"]


def test_faults_from_flags():
    with Served("--fail-stage", "2", "-q") as agent:
        up = agent.cli("upgrade", "4.2.1.1", "101000062023110109.el7", "--wait")
        assert up.returncode == 1 and "injected failure at stage 2" in up.stderr
        assert agent.cli("task", "retry", "11", "--wait").returncode == 0
        agent.stop()


@pytest.mark.parametrize("flags, message", [
    (["--auth", "v1", "--obshell-version", "4.3.0.0"], "--auth v1 is obshell 4.2.2's dialect"),
    (["--stage-seconds", "soon"], "not a float"),
    (["--stage-seconds", "-1"], "must be from"),
    (["--port", "70000"], "must be from 0 to 65535"),
    (["--key-bits", "100"], "invalid choice"),
    (["--fail-stage", "0"], "must be from 1"),
    (["--clock-offset", "nan"], "must be from"),
    (["--obshell-version", "abc"], "is not like 4.2.1.0"),
])
def test_bad_flags_exit_2(flags, message):
    out = subprocess.run([sys.executable, "-m", "obshell_sdk.testing", "--port", "0", *flags],
                         capture_output=True, text=True, env=_env(), timeout=60, check=False)
    assert out.returncode == 2 and message in out.stderr


@pytest.mark.parametrize("flags, said", [
    (["--version", "4.2.2.0"], "--version (did you mean --obshell-version, the obshell version "
     "it runs? --ob-version is its cluster's OceanBase build) 4.2.2.0"),
    (["--obshel-version=4.2.2.0"], "--obshel-version=4.2.2.0 (did you mean --obshell-version?)"),
    (["--stage-secs", "1", "--quite"], "--stage-secs (did you mean --stage-seconds?) 1 --quite "
     "(did you mean --quiet?)"),
])
def test_a_mistyped_flag_says_the_flag_meant(flags, said):
    """``--version 4.2.2.0`` said only "unrecognized arguments": the CLI's usage errors name
    the option likely meant, and so does the fake agent's."""
    out = subprocess.run([sys.executable, "-m", "obshell_sdk.testing", "--port", "0", *flags],
                         capture_output=True, text=True, env=_env(), timeout=60, check=False)
    assert out.returncode == 2 and f"error: unrecognized arguments: {said}\n" in out.stderr, \
        out.stderr


def test_a_port_in_use_exits_2_with_a_clear_message():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "obshell_sdk.testing", "--port", str(port)],
                             capture_output=True, text=True, env=_env(), timeout=60, check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr and "--port" in out.stderr


def test_listening_beyond_this_machine_is_warned_about():
    # Not served here (tests listen on 127.0.0.1 only): which addresses get the warning.
    from obshell_sdk.testing._shell import _exposed

    assert [_exposed(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost")] == [False] * 4
    assert [_exposed(h) for h in ("0.0.0.0", "::", "10.0.0.1", "db1.example")] == [True] * 4
