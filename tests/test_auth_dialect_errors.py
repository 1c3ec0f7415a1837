"""A refusal whose cause is the auth dialect says so, in Python and at the command line.

obshell answers ``Request.Header.NotFound`` when a signed request carries no header it reads:
the SDK always sends one, so the agent takes another dialect (or a proxy dropped it), never a
wrong password. A 401 with code 10008 is what obshell 4.2.3 to 4.3.0 answer to every refusal,
a wrong password too: that one cannot be told apart, and keeps the password hint; an empty
password sent is then said to be the likely cause (never one the refusal may not be about).
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


def _old_agent_cli(monkeypatch, capsys, agent: FakeAgent, **variables: str) -> tuple[int, str]:
    """``task list`` against ``agent`` answering as obshell before 4.3.1: the exit code, stderr."""
    from obshell_sdk._cli import main
    from obshell_sdk._config import ENV_VARIABLES

    for name in ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    agent.numeric_errors = True
    code = main(["--host", agent.host, "--port", str(agent.port), "task", "list"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("agent_options", "variables", "note"), [
    ({}, {"OBSHELL_PASSWORD": ""}, "OBSHELL_PASSWORD is set but empty"),
    ({"agent_password": "Agent@1"}, {"OBSHELL_PASSWORD": PWD, "OBSHELL_AGENT_PASSWORD": ""},
     "OBSHELL_AGENT_PASSWORD is set but empty"),
    ({}, {"OBSHELL_AGENT_PASSWORD": "Agent@1"},  # the agent has none: root@sys, empty, sent
     "OBSHELL_PASSWORD is not set, so an empty root@sys password was sent"),
], ids=["root", "agent", "root-not-set"])
def test_an_old_agent_refusing_an_empty_password_says_it_is_the_likely_cause(
        monkeypatch, capsys, agent_options, variables, note) -> None:
    """obshell 4.2.3 to 4.3.0 refuse any auth failure with a bare code 10008 (PROTOCOL.md
    §2.2): the empty password sent is named as the likely cause, not a sure one."""
    from obshell_sdk._config import UNSAID

    with FakeAgent(password=PWD, **agent_options) as agent:
        code, err = _old_agent_cli(monkeypatch, capsys, agent, **variables)
    assert code == 3 and "code 10008" in err, err
    assert err.rstrip().endswith(f"({note}; {UNSAID})"), err
    assert err.count("empty") == 2, err  # that password only (and UNSAID's)


@pytest.mark.parametrize(("agent_options", "variables"), [
    ({}, {"OBSHELL_PASSWORD": "not-it"}),  # a typo is no empty password
    # The agent has an agent password, which the SDK lacks: it may want that one instead.
    ({"identity": "SINGLE", "agent_password": "Agent@1"}, {"OBSHELL_PASSWORD": ""}),
    # An agent password given, not empty: the empty root@sys password was not sent.
    ({"agent_password": "Agent@1"}, {"OBSHELL_PASSWORD": "", "OBSHELL_AGENT_PASSWORD": "x"}),
    (V422, {"OBSHELL_PASSWORD": ""}),  # auth v1 (obshell 4.2.2): its rules are not known
], ids=["typo", "wants-the-agent-password", "other-one-sent", "v1"])
def test_an_old_agent_refusing_is_not_said_to_refuse_an_empty_password_it_may_not_have(
        monkeypatch, capsys, agent_options, variables) -> None:
    with FakeAgent(password=PWD, **agent_options) as agent:
        code, err = _old_agent_cli(monkeypatch, capsys, agent, **variables)
    assert code == 3 and "code 10008" in err, err
    assert "empty" not in err and "not-it" not in err, err
