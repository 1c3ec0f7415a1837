"""A refusal whose cause is the auth dialect says so, in Python and at the command line.

obshell answers ``Request.Header.NotFound`` when a signed request carries no header it reads:
the SDK always sends one, so the agent takes another dialect (or a proxy dropped it), never a
wrong password. A 401 with code 10008 is what obshell 4.2.3 to 4.3.0 answer to every refusal,
a wrong password too: that one cannot be told apart, and keeps the password hint.
Real sockets, against the fake agent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import obshell_sdk
from obshell_sdk import AuthDialectError, AuthError, ObshellClient, PasswordAuth
from obshell_sdk.testing import FakeAgent

PWD = "Root@123"
V422 = {"legacy_v1": True, "supported_auth": None, "version": "4.2.2.0"}
SRC = Path(obshell_sdk.__file__).resolve().parents[1]


def _client(agent: FakeAgent, version: str | None = None) -> ObshellClient:
    return ObshellClient(agent.host, agent.port, auth=PasswordAuth(PWD, version=version))


def test_v1_forced_for_a_422_agent_then_kept_after_its_upgrade_names_the_dialect() -> None:
    """The workaround ``PasswordAuth(version="v1")`` outlives the agent's 4.2.2."""
    with FakeAgent(password=PWD, **V422) as agent:
        with _client(agent, "v1") as client:
            assert client.unfinished_dags() == []
        agent.finish_dag(agent.create_upgrade_dag("4.2.3.0", "1.el7"))
        agent.clear_requests()
        with _client(agent, "v1") as client, pytest.raises(AuthDialectError) as info:
            client.unfinished_dags()
        err = info.value
        assert isinstance(err, AuthError) and err.status == 400
        assert err.err_code == "Request.Header.NotFound"
        text = str(err)
        assert "auth dialect" in text and "version=" in text and "X-OCS-Header" in text
        assert "Check the password" not in text
        # the mend ran once: a fresh /info between the two refusals, then it gave up
        seen = [(r.path, r.status) for r in agent.requests]
        assert seen == [("/api/v1/info", 200), ("/api/v1/secret", 200),
                        ("/api/v1/task/dag/unfinish", 400), ("/api/v1/info", 200),
                        ("/api/v1/secret", 200), ("/api/v1/task/dag/unfinish", 400)]
        with _client(agent) as client:  # the SDK's own choice follows the agent
            assert client.unfinished_dags() == []


def test_a_401_code_10008_is_not_told_apart_from_a_wrong_password() -> None:
    with FakeAgent(password=PWD, **V422) as agent, _client(agent, "v2") as client:
        with pytest.raises(AuthError) as info:
            client.unfinished_dags()
        assert type(info.value) is AuthError and info.value.code == 10008
        assert "Check the password" in str(info.value)


def test_the_cli_names_the_dialect_and_no_python() -> None:
    # An agent whose /info says 4.2.2 (so X-OCS-Auth is sent) but which reads X-OCS-Header.
    with FakeAgent(password=PWD, version="4.2.2.0", supported_auth=None) as agent:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OBSHELL_")}
        env.update(PYTHONPATH=str(SRC) + os.pathsep + env.get("PYTHONPATH", ""),
                   OBSHELL_HOST=agent.host, OBSHELL_PORT=str(agent.port),
                   OBSHELL_PASSWORD=PWD)
        out = subprocess.run([sys.executable, "-m", "obshell_sdk", "task", "list"],
                             capture_output=True, text=True, env=env, timeout=60,
                             stdin=subprocess.DEVNULL, check=False)
    assert out.returncode == 3, out.stderr
    assert "Request.Header.NotFound" in out.stderr and "auth dialect" in out.stderr
    assert "obshell-sdk info" in out.stderr
    assert "OBSHELL_PASSWORD" not in out.stderr and "PasswordAuth" not in out.stderr
