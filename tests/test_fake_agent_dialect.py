"""FakeAgent's auth dialect across its own upgrade, over real sockets.

obshell 4.2.2 takes only ``X-OCS-Auth``; the binary an upgrade installs from 4.2.3 on takes
``X-OCS-Header`` and, from 4.2.4, lists ``supportedAuth: ["v2"]`` in ``/api/v1/info``
(PROTOCOL.md §3.1, §5, §6). The fake's ``legacy_v1``/``supported_auth`` describe the agent as
started; once it runs the new version they follow that version, unless they were set to
something no obshell of the old version has.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Optional

import pytest
import requests
from Crypto.Cipher import PKCS1_v1_5
from Crypto.PublicKey import RSA

from obshell_sdk import ObshellClient, PasswordAuth
from obshell_sdk.testing import FakeAgent

PWD = "Root@123"
V422 = {"legacy_v1": True, "supported_auth": None, "version": "4.2.2.0"}


def _info(agent: FakeAgent) -> dict[str, Any]:
    data: dict[str, Any] = requests.get(agent.base_url + "/api/v1/info", timeout=5).json()["data"]
    return data


def _v1_token(agent: FakeAgent, password: str = PWD) -> str:
    """A 4.2.2 ``X-OCS-Auth`` token: one RSA block of ``{"password", "ts"}``."""
    plain = json.dumps({"password": password, "ts": int(agent.now()) + 60}).encode()
    key = RSA.import_key(base64.b64decode(agent.public_key_b64))
    return base64.b64encode(PKCS1_v1_5.new(key).encrypt(plain)).decode()


def _client(agent: FakeAgent, version: Optional[str] = None) -> ObshellClient:
    return ObshellClient(agent.host, agent.port, auth=PasswordAuth(PWD, version=version))


def _upgraded(agent: FakeAgent, version: str) -> None:
    agent.finish_dag(agent.create_upgrade_dag(version, "1.el7"))


def _signed_kinds(agent: FakeAgent) -> list[tuple[Optional[str], int, Optional[str]]]:
    return [(r.auth_kind, r.status, r.err_code) for r in agent.requests
            if r.path.startswith("/api/v1/task/")]


def test_a_fresh_client_talks_to_a_422_agent_upgraded_to_423() -> None:
    """The new user's report: upgrade, then a new client got 401 "X-OCS-Auth not found"."""
    with FakeAgent(password=PWD, **V422) as agent:
        _upgraded(agent, "4.2.3.0")
        info = _info(agent)
        assert info["version"] == "4.2.3.0-1" and "supportedAuth" not in info  # as 4.2.3 says
        assert (agent.legacy_v1, agent.supported_auth) == (False, None)
        agent.clear_requests()
        with _client(agent) as client:
            assert client.unfinished_dags() == []
        assert _signed_kinds(agent) == [("v2", 200, None)]


def test_the_upgraded_agent_refuses_the_old_dialect_as_a_v2_agent_does() -> None:
    with FakeAgent(password=PWD, **V422) as agent:
        url = agent.base_url + "/api/v1/task/dag/unfinish"
        assert requests.get(url, headers={"X-OCS-Auth": _v1_token(agent)},
                            timeout=5).status_code == 200
        _upgraded(agent, "4.2.3.0")
        r = requests.get(url, headers={"X-OCS-Auth": _v1_token(agent)}, timeout=5)
        assert r.status_code == 400
        assert r.json()["error"]["errCode"] == "Request.Header.NotFound"


@pytest.mark.parametrize("target, legacy, listed", [
    ("4.2.2.1", True, None),        # still 4.2.2: still X-OCS-Auth
    ("4.2.3.0", False, None),       # X-OCS-Header; /info has no supportedAuth yet
    ("4.2.4.0", False, ["v2"]),     # supportedAuth arrived in 4.2.4
    ("4.3.1.0", False, ["v2"]),
])
def test_the_dialect_and_info_follow_the_version_the_agent_runs(
        target: str, legacy: bool, listed: Optional[list[str]]) -> None:
    with FakeAgent(password=PWD, **V422) as agent:
        _upgraded(agent, target)
        assert _info(agent).get("supportedAuth") == listed
        assert agent.legacy_v1 is legacy
        agent.clear_requests()
        with _client(agent) as client:
            client.unfinished_dags()
        assert _signed_kinds(agent) == [("v1" if legacy else "v2", 200, None)]


def test_a_client_following_the_upgrade_mends_once_when_the_dialect_changes() -> None:
    """The existing client signed v1; the restarted agent wants v2: one fresh /info mends it."""
    with FakeAgent(password=PWD, **V422, restart_at_stage=7, restart_seconds=0.2) as agent, \
            _client(agent) as client:
        task = client.upgrade_agent("4.3.1.0", "1.el7")
        assert task.result(timeout=30, poll_interval=0.01).state == "SUCCEED"
        seen = [(r.method, r.path, r.status, r.auth_kind) for r in agent.requests]
        refused = [i for i, r in enumerate(seen) if r[2] == 400]
        assert len(refused) == 1, seen  # once, then v2 to the end
        assert seen[refused[0] + 1][:3] == ("GET", "/api/v1/info", 200)
        assert {r[3] for r in seen[:refused[0]] if r[3]} == {"v1"}
        assert {r[3] for r in seen[refused[0] + 1:] if r[3]} == {"v2"}
        assert client.unfinished_dags() == []


def test_the_restart_stage_ends_only_once_the_agent_went_down(monkeypatch) -> None:
    """The restart runs in a helper thread; on a loaded machine it ran late, and a DAG polled
    every 10 ms had ended, still answered as v1, before the agent went down: the test above
    failed about once in twenty runs. A restart stage (obshell's too) ends only after it."""
    from obshell_sdk.testing._lifecycle import AgentRunner

    spawn = AgentRunner.spawn

    def late(self: AgentRunner, target: Any) -> None:
        def run() -> None:
            time.sleep(0.3)  # a helper thread scheduled late
            target()
        spawn(self, run)

    monkeypatch.setattr(AgentRunner, "spawn", late)
    with FakeAgent(password=PWD, **V422, restart_at_stage=7, restart_seconds=0.2) as agent, \
            _client(agent) as client:
        task = client.upgrade_agent("4.3.1.0", "1.el7")
        assert task.result(timeout=30, poll_interval=0.01).state == "SUCCEED"
        seen = [(r.method, r.path, r.status, r.auth_kind) for r in agent.requests]
    assert [r[2] for r in seen].count(400) == 1, seen  # the v1 signature refused once


def test_the_dialect_changes_with_the_restart_not_at_the_end_of_the_task() -> None:
    with FakeAgent(password=PWD, **V422, restart_at_stage=7, restart_seconds=0.2) as agent:
        dag_id = agent.create_upgrade_dag("4.3.1.0", "1.el7")
        agent.set_dag_stage(dag_id, 7)
        deadline = time.monotonic() + 5
        while agent.legacy_v1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert agent.wait_listening(5)
        assert agent.dag(dag_id).state == "RUNNING"
        assert (agent.version, agent.legacy_v1, agent.supported_auth) == ("4.3.1.0", False,
                                                                          ("v2",))


@pytest.mark.parametrize("started, target, after", [
    # the agent's own dialect follows the new binary
    ({"version": "4.2.3.0", "supported_auth": None}, "4.2.4.0", (False, ("v2",))),
    ({"version": "4.3.0.0"}, "4.3.1.0", (False, ("v2",))),
    # a setting no obshell of the old version has is the test's own: an upgrade keeps it
    ({"legacy_v1": True, "supported_auth": ("v1",), "version": "4.2.2.0"}, "4.3.1.0",
     (True, ("v1",))),
    ({"version": "4.3.0.0", "supported_auth": None}, "4.3.1.0", (False, None)),
    ({"version": "4.3.0.0", "supported_auth": ("v1", "v2")}, "4.3.1.0", (False, ("v1", "v2"))),
    ({"version": "4.3.0.0", "legacy_v1": True, "supported_auth": None}, "4.3.1.0",
     (True, None)),
])
def test_what_an_upgrade_does_to_configured_settings(
        started: dict[str, Any], target: str, after: tuple[bool, Any]) -> None:
    with FakeAgent(password=PWD, **started) as agent:
        _upgraded(agent, target)
        assert agent.sync_version() == target
        assert (agent.legacy_v1, agent.supported_auth) == after


def test_settings_assigned_after_the_upgrade_stay_and_no_adoption_changes_nothing() -> None:
    with FakeAgent(password=PWD, **V422) as agent:
        _upgraded(agent, "4.3.1.0")
        assert agent.sync_version() == "4.3.1.0" and agent.legacy_v1 is False
        agent.legacy_v1, agent.supported_auth = True, None  # the test says so: v1 it is
        agent.version = "4.2.2.0"
        agent.clear_requests()
        with _client(agent) as client:
            client.unfinished_dags()
        assert _signed_kinds(agent) == [("v1", 200, None)]
    with FakeAgent(password=PWD, adopt_target_version=False, **V422) as agent:
        _upgraded(agent, "4.3.1.0")  # the recorded vectors' agent: it kept its version
        assert _info(agent)["version"] == "4.2.2.0" and agent.legacy_v1 is True
