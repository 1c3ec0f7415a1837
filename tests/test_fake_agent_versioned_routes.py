"""FakeAgent serves the routes of the obshell version it runs, over real sockets.

obshell added ``POST /api/v1/package`` (``newPkgUploadHandler``, 80886dd) and
``GET /api/v1/task/dags/ob`` (``GetAllClusterDags``, 0e32aa5) while its version was 4.2.6.0:
an agent before that answers 404 there, unless the test pins ``new_upload``/``dag_history``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from test_fake_agent import PWD, call
from test_fake_agent_upgrade_family import error, upload_new

from obshell_sdk import ObshellClient, PasswordAuth
from obshell_sdk.testing import FakeAgent, build_rpm

OBSHELL = build_rpm("obshell", "4.3.1.0", "20250101.el7")
NOT_FOUND = (404, "Common.NotFound", "Element not found: 404 not found")
OLD, NEW = "/api/v1/upgrade/package", "/api/v1/package"
#: versions before the routes, and from them on (4.2.3 is the oldest obshell with auth v2)
BEFORE, SINCE = ("4.2.3.0", "4.2.5.0"), ("4.2.6.0", "4.3.0.0", "4.3.1.0")


def _history(agent: FakeAgent) -> int:
    return call(agent, "GET", "/api/v1/task/dags/ob").status_code


def test_the_new_routes_are_served_from_4_2_6_on() -> None:
    for version in (*BEFORE, *SINCE):
        has = version not in BEFORE
        with FakeAgent(password=PWD, version=version) as agent:
            assert (agent.new_upload, agent.dag_history) == (has, has), version
            r = upload_new(agent, OBSHELL)
            if has:
                assert r.status_code == 200 and r.json()["data"]["name"] == "obshell", r.text
            else:
                assert error(r) == NOT_FOUND, version
                assert agent.inventory == [] and agent.packages == []
            assert _history(agent) == (200 if has else 404), version


def _upload(agent: FakeAgent, tmp_path: Path) -> Any:
    path = tmp_path / "obshell-4.3.1.0-20250101.el7.x86_64.rpm"
    path.write_bytes(OBSHELL)
    with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PWD)) as client:
        return client.upload_package(path)


def test_the_client_uploads_through_the_route_the_agent_s_version_has(tmp_path) -> None:
    with FakeAgent(password=PWD, version="4.2.5.0") as agent:
        info = _upload(agent, tmp_path)
        assert (info.name, info.version) == ("obshell", "4.3.1.0")
        assert agent.packages == [("obshell-4.3.1.0-20250101.el7.x86_64.rpm", OBSHELL)]
        assert [r.status for r in agent.requests_to(NEW, "POST")] == [404]  # the probe only
        (post,) = agent.requests_to(OLD, "POST")
        assert post.status == 200 and post.auth_kind == "v2"
        assert not post.body_bytes.startswith(b"--")  # AES-encrypted, base64'd on the wire
        assert OBSHELL[:96] not in post.body_bytes
        assert "X-OCS-File-SHA256" not in post.headers
    with FakeAgent(password=PWD, version="4.2.6.0") as agent:
        assert _upload(agent, tmp_path).name == "obshell"
        assert agent.requests_to(OLD, "POST") == []
        assert [r.status for r in agent.requests_to(NEW, "POST")][-1] == 200
        assert agent.packages == [("obshell-4.3.1.0-20250101.el7.x86_64.rpm", OBSHELL)]


def test_a_pinned_route_stays_whatever_the_version() -> None:
    for version, pin in itertools.product((*BEFORE, *SINCE), (True, False, None)):
        with FakeAgent(password=PWD, version=version, new_upload=pin) as agent:
            agent.dag_history = pin
            has = (version not in BEFORE) if pin is None else pin
            assert (agent.new_upload, agent.dag_history) == (has, has), (version, pin)
            assert (upload_new(agent, OBSHELL).status_code == 404) is not has
            assert (_history(agent) == 404) is not has
            # an upgrade across 4.2.6, either way, keeps a pin
            agent.finish_dag(agent.create_upgrade_dag("4.3.1.0" if version in BEFORE else
                                                      "4.2.3.0"))
            assert agent.sync_version() != version
            has = (version in BEFORE) if pin is None else pin
            assert (agent.new_upload, agent.dag_history) == (has, has), (version, pin)
            assert (upload_new(agent, OBSHELL).status_code == 404) is not has


def test_the_routes_follow_an_upgrade_and_an_assigned_version() -> None:
    with FakeAgent(password=PWD, version="4.2.3.0", supported_auth=None) as agent:
        assert error(upload_new(agent, OBSHELL)) == NOT_FOUND
        agent.finish_dag(agent.create_upgrade_dag("4.3.1.0", "1.el7"))
        assert agent.sync_version() == "4.3.1.0"
        assert upload_new(agent, OBSHELL).status_code == 200 and _history(agent) == 200
        agent.version = "4.2.5.0"
        assert (agent.new_upload, agent.dag_history) == (False, False)
        agent.new_upload = True  # pinned
        agent.version = "4.2.3.0"
        assert (agent.new_upload, agent.dag_history) == (True, False)
        agent.new_upload = None  # the version's again
        assert agent.new_upload is False



def test_before_4_3_1_a_route_the_agent_lacks_is_a_bad_request_code_1000(tmp_path) -> None:
    """``numeric_errors``: gin's ``NoRoute`` sent ``ErrBadRequest`` until 43a4c2b."""
    with FakeAgent(password=PWD, version="4.2.5.0") as agent:
        agent.numeric_errors = True
        for r in (upload_new(agent, OBSHELL), call(agent, "GET", "/api/v1/task/dags/ob"),
                  call(agent, "GET", "/api/v1/no/such/route")):
            assert (r.status_code, r.json()["error"]) == (
                400, {"code": 1000, "message": "Bad request: 404 not found"})
        assert _upload(agent, tmp_path).name == "obshell"  # the SDK knows that answer too
        assert [r.status for r in agent.requests_to(NEW, "POST")] == [400, 400]
        assert [r.status for r in agent.requests_to(OLD, "POST")] == [200]
