"""obshell's replies whose data does not fit: the DecodeError says which agent sent what.

A reply that is not obshell's at all (a proxy's page) names its request and agent, as the
transport reads it. One that is obshell's envelope, its ``data`` not what the SDK reads (a
node state of 7, a key that is a number, a task id that is none), names them as well: in a
rollout over many clusters, or a script with several clients, the JSON path alone does not
say which agent sent it. Over real sockets, the fake agent editing its replies.
"""

from __future__ import annotations

import pickle
import time
from typing import Any

import pytest
from conftest import PASSWORD

from obshell_sdk import DecodeError, ObshellClient, PasswordAuth
from obshell_sdk._cli_errors import error_fields
from obshell_sdk._lookup_clock import Judge
from obshell_sdk.testing import FakeAgent, build_rpm

VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"


@pytest.fixture
def agent() -> Any:
    with FakeAgent(password=PASSWORD) as a:
        yield a


@pytest.fixture
def client(agent: FakeAgent) -> Any:
    with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as c:
        yield c


def _names(error: DecodeError, method: str, path: str, agent: str, where: str) -> None:
    """``error`` names the exchange and the JSON path, in its attributes and its text."""
    assert (error.method, error.path, error.agent, error.where) == (method, path, agent, where)
    assert str(error).startswith(f"{method} {path} on {agent}: {where}: "), str(error)
    assert error.status == 0  # the reply was obshell's: only its data did not fit


def _node_state(state: Any, index: int = 2) -> Any:
    def edit(data: Any) -> Any:
        nodes = [dict(node) for node in data["nodes"]]
        nodes[index]["state"] = state
        return {**data, "nodes": nodes}
    return edit


def test_get_dag_with_a_node_state_that_is_a_number_names_the_agent(agent, client):
    dag_id = agent.create_upgrade_dag(VERSION, RELEASE)
    agent.edit_data_next(edit=_node_state(7), path_prefix=f"/api/v1/task/dag/{dag_id}",
                         method="GET")
    with pytest.raises(DecodeError) as info:
        client.get_dag(dag_id)
    _names(info.value, "GET", f"/api/v1/task/dag/{dag_id}", client.agent, "data.nodes[2].state")
    assert str(info.value).endswith("expected a string, got a number")
    assert info.value.task_id == dag_id
    back = pickle.loads(pickle.dumps(info.value))  # for process pools: all of it kept
    assert str(back) == str(info.value) and back.__dict__ == info.value.__dict__
    assert repr(back) == repr(info.value) and client.agent in repr(back)
    assert error_fields(info.value) == {"type": "DecodeError", "task_id": dag_id,
                                        "agent": client.agent}


def test_a_followed_task_s_misfit_poll_names_the_agent(agent, client):
    task = client.upgrade_agent(VERSION, RELEASE)
    agent.edit_data_next(edit=_node_state("SLEEPING", 0), path_prefix="/api/v1/task/dag/",
                         method="GET")
    with pytest.raises(DecodeError) as info:
        task.result(timeout=30, poll_interval=0.01)
    _names(info.value, "GET", f"/api/v1/task/dag/{task.id}", client.agent,
           "data.nodes[0].state")
    assert "unknown value 'SLEEPING'" in str(info.value)


def test_a_dag_the_model_finds_impossible_names_the_agent_too(agent, client):
    dag_id = agent.create_upgrade_dag(VERSION, RELEASE)
    agent.edit_data_next(edit=lambda data: {**data, "stage": 12},
                         path_prefix=f"/api/v1/task/dag/{dag_id}")
    with pytest.raises(DecodeError) as info:
        client.get_dag(dag_id)
    _names(info.value, "GET", f"/api/v1/task/dag/{dag_id}", client.agent, "data.stage")
    agent.edit_data_next(edit=lambda data: {**data, "id": "12"},
                         path_prefix=f"/api/v1/task/dag/{dag_id}")
    with pytest.raises(DecodeError, match="the agent answered about 12") as info:
        client.get_dag(dag_id)
    _names(info.value, "GET", f"/api/v1/task/dag/{dag_id}", client.agent, "data.id")


@pytest.mark.parametrize(("key", "said"), [(42, "expected a string, got a number"),
                                           ("bm90IGEga2V5", "not an RSA public key")])
def test_a_secret_whose_key_does_not_fit_names_the_agent_and_the_secret(agent, client, key,
                                                                        said):
    agent.edit_data_next(edit=lambda data: {**data, "public_key": key},
                         path_prefix="/api/v1/secret")
    with pytest.raises(DecodeError) as info:
        client.unfinished_dags()  # signing it asks for the key first
    _names(info.value, "GET", "/api/v1/secret", client.agent, "data.public_key")
    assert said in str(info.value)
    assert client.unfinished_dags() == []  # the next key fits: nothing was kept of that one


def test_the_auth_flow_s_info_that_does_not_fit_names_it(agent, client):
    agent.edit_data_next(edit=lambda data: {**data, "identity": 7}, path_prefix="/api/v1/info")
    with pytest.raises(DecodeError) as info:
        client.unfinished_dags()
    _names(info.value, "GET", "/api/v1/info", client.agent, "data.identity")
    agent.edit_data_next(edit=lambda data: {**data, "version": None}, path_prefix="/api/v1/info")
    with pytest.raises(DecodeError) as info:
        client.info()
    _names(info.value, "GET", "/api/v1/info", client.agent, "data.version")


def test_a_creation_reply_whose_id_is_no_task_id_names_the_post_and_the_agent(agent, client):
    agent.edit_data_next(edit=lambda data: {**data, "id": "x9"},
                         path_prefix="/api/v1/agent/upgrade", method="POST")
    with pytest.raises(DecodeError) as info:
        client.upgrade_agent(VERSION, RELEASE)
    _names(info.value, "POST", "/api/v1/agent/upgrade", client.agent, "data.id")
    assert "'x9' is not a task id" in str(info.value)
    assert len(agent.dags) == 1  # the agent made it; the SDK did not send it again
    assert len(agent.requests_to("/api/v1/agent/upgrade", "POST")) == 1


def test_lists_and_an_upload_that_do_not_fit_name_the_agent(agent, client, tmp_path):
    rpm = tmp_path / f"obshell-{VERSION}-{RELEASE}.x86_64.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    agent.edit_data_next(edit=lambda data: {**data, "name": 5}, method="POST",
                         path_prefix="/api/v1/package")
    with pytest.raises(DecodeError) as info:
        client.upload_package(rpm)
    upload = info.value  # its file first (several may go in turn), then what _names says
    assert (upload.method, upload.path, upload.agent, upload.where, upload.status) == (
        "POST", "/api/v1/package", client.agent, "data.name", 0)
    assert str(upload).startswith(f"uploading {str(rpm)!r}: POST /api/v1/package on "
                                  f"{client.agent}: data.name: "), str(upload)
    # the agent said it stored it (its envelope succeeded): said, with where to see it
    assert str(upload).endswith(". The agent said it stored the package: client.packages() "
                                "lists it"), str(upload)
    assert [p.name for p in client.packages()] == ["obshell"]
    agent.edit_data_next(edit=lambda data: {"contents": [{**data["contents"][0], "size": "1"}]},
                         path_prefix="/api/v1/upgrade/package/info")
    with pytest.raises(DecodeError) as info:
        client.packages()
    _names(info.value, "GET", "/api/v1/upgrade/package/info", client.agent,
           "data.contents[0].size")
    agent.edit_data_next(edit=lambda data: {"contents": [1]},
                         path_prefix="/api/v1/task/dag/unfinish")
    with pytest.raises(DecodeError) as info:
        client.unfinished_dags()
    _names(info.value, "GET", "/api/v1/task/dag/unfinish", client.agent, "data.contents[0]")
    agent.edit_data_next(edit=lambda data: "yesterday", path_prefix="/api/v1/time")
    with pytest.raises(DecodeError) as info:
        client.server_time()
    _names(info.value, "GET", "/api/v1/time", client.agent, "data")


def test_a_lookup_s_unset_agent_clock_names_the_agent(agent, client):
    judge = Judge(client, time.time(), None)  # a lost create reply's lookup reads the clock
    agent.edit_data_next(edit=lambda data: "0001-01-01T00:00:00Z", path_prefix="/api/v1/time")
    with pytest.raises(DecodeError) as info:
        judge.measure(client.timeout)
    _names(info.value, "GET", "/api/v1/time", client.agent, "data")
    assert str(info.value).endswith("the agent's clock reads as unset")


def test_an_error_that_names_its_request_keeps_it():
    page = DecodeError("HTTP 502 reply is not JSON", status=502, method="GET",
                       path="/api/v1/secret", agent="10.0.0.1:2886")
    page._name_exchange("GET", "/api/v1/task/dag/11", "10.0.0.2:2886")
    assert (page.path, page.agent) == ("/api/v1/secret", "10.0.0.1:2886")
    assert str(page) == "GET /api/v1/secret on 10.0.0.1:2886: HTTP 502 reply is not JSON"
    plain = DecodeError("expected a string, got null", where="data.name")
    assert (str(plain), plain.method, plain.agent) == ("data.name: expected a string, got null",
                                                       "", "")
