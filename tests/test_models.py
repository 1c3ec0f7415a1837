"""Models against obshell's recorded replies, and their refusals of replies that do not fit.

Public models are built through ``from_json``; whole envelopes go over a real socket
(:mod:`rawserver`) through ``ObshellClient.call``, as the SDK meets them.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from rawserver import RawServer, dag_json
from vectorlib import vectors

from obshell_sdk import (
    AgentAddress,
    AgentInfo,
    ApiError,
    ConnectError,
    ConnectionLostError,
    DagDetail,
    DagOutcome,
    DagState,
    DecodeError,
    ErrorInfo,
    InvalidArgumentError,
    NodeDetail,
    ObshellClient,
    Operator,
    ReadTimeoutError,
    TaskDetail,
    UpgradeAgentRequest,
    WeakKeyError,
)
from obshell_sdk._decode import parse_time
from obshell_sdk._endpoints import AGENT_UPGRADE, AGENT_UPGRADE_CHECK, OB_UPGRADE
from obshell_sdk._models import Envelope
from obshell_sdk._transport import _api_error

VECTORS = vectors()


@pytest.fixture(scope="module")
def agent():
    """A raw server and a client pointed at it, shared by this module's tests."""
    with RawServer() as server, ObshellClient(server.host, server.port, auth=None) as client:
        yield server, client


def _serve(agent, status, body):
    server, client = agent
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    server.set_reply(status, raw, {"Content-Type": "application/json"})
    return client


@pytest.mark.parametrize("vec", VECTORS, ids=lambda v: f"{v['scenario']}:{v['name']}")
def test_every_recorded_reply_decodes_over_a_socket(agent, vec):
    body, status = vec["response"]["body"], vec["response"]["status"]
    client = _serve(agent, status, body)
    if body["successful"]:
        assert client.call("GET", "/x", signed=False) == body.get("data")
        # The envelope itself, as the (private) model reads it.
        env = Envelope.from_json(body)
        assert (env.successful, env.status, env.trace_id) == (True, status, body["traceId"])
        assert env.timestamp is not None and env.timestamp.tzinfo is not None
        assert env.error is None and env.data == body.get("data")
    else:
        with pytest.raises(ApiError) as info:
            client.call("GET", "/x", signed=False)
        err = info.value
        assert (err.status, err.trace_id, err.path) == (status, body["traceId"], "/x")
        assert err.err_code == body["error"]["errCode"]
        assert err.code == body["error"].get("code", 0)
        assert err.message == body["error"]["message"]
        assert isinstance(err.error, ErrorInfo) and err.error.err_code == err.err_code
    data = body.get("data")
    if isinstance(data, dict) and "dag_id" in data:
        dag = DagDetail.from_json(data)
        assert dag.id == data["id"] and isinstance(dag.id, str)
        assert dag.state is DagState(data["state"])
        assert dag.progress.stage == data["stage"]
        if data["nodes"] is None:
            assert dag.nodes is None
        else:
            assert [n.name for n in dag.nodes] == [n["name"] for n in data["nodes"]]
    if isinstance(data, dict) and "identity" in data:
        info = AgentInfo.from_json(data)
        assert info.identity == data["identity"]
        assert info.supported_auth == (tuple(data["supportedAuth"]) if "supportedAuth" in data
                                       else None)


def test_info_over_a_socket_is_an_agent_info(agent):
    vec = next(v for v in VECTORS if v["name"] == "info (no auth)")
    info = _serve(agent, 200, vec["response"]["body"]).info()
    assert isinstance(info, AgentInfo)
    assert (info.identity, info.version_number, info.security) == ("CLUSTER AGENT", "4.3.0.0",
                                                                   False)
    assert info.started_at == datetime.fromtimestamp(1795756880500094680 / 1e9, timezone.utc)


def _dag(name):
    for vec in VECTORS:
        if vec["name"] == name:
            return vec["response"]["body"]["data"]
    raise KeyError(name)


def test_failed_dag_exposes_failing_subtask_and_log():
    dag = DagDetail.from_json(_dag("poll 4 (FAILED at stage 3)"))
    assert dag.outcome is DagOutcome.FAILED
    (failed,) = dag.failed_sub_tasks()
    assert failed.name == "Check all required packages"
    assert failed.task_logs[-1].endswith("mock failure at stage 3")
    assert str(failed.execute_agent) == "127.0.0.1:56235"
    assert dag.current_node is not None and dag.current_node.name == failed.name


def test_create_reply_has_no_nodes_and_zero_times_are_none():
    dag = DagDetail.from_json(_dag("upgrade ok (v2)"))
    assert dag.nodes is None and dag.start_time is None and dag.end_time is None
    assert dag.state is DagState.READY and dag.operator is Operator.RUN
    assert dag.maintenance_type == 2 and dag.max_stage == 9


@pytest.mark.parametrize(
    ("state", "operator", "outcome"),
    [
        ("SUCCEED", "RUN", DagOutcome.SUCCEEDED),
        ("SUCCEED", "ROLLBACK", DagOutcome.ROLLED_BACK),
        ("SUCCEED", "PASS", DagOutcome.PASSED),
        ("FAILED", "CANCEL", DagOutcome.CANCELLED),
        ("FAILED", "RUN", DagOutcome.FAILED),
        ("RUNNING", "RUN", DagOutcome.RUNNING),
        ("READY", "RETRY", DagOutcome.RUNNING),
    ],
)
def test_outcome_reads_state_and_operator_together(state, operator, outcome):
    data = dict(_dag("upgrade ok (v2)"), state=state, operator=operator)
    if (state, operator) == ("SUCCEED", "RUN"):  # a run ends after its last node, no sooner
        data.update(stage=data["max_stage"])
        data.pop("nodes", None)
    assert DagDetail.from_json(data).outcome is outcome


@pytest.mark.parametrize("operator", ["RUN", "RETRY"])
def test_a_run_said_succeeded_before_its_last_stage_is_refused(operator):
    """PROTOCOL §9.4: a run ends SUCCEED only after its last node; anything else would be
    reported as an upgrade that succeeded when it stopped half-way."""
    data = dict(_dag("upgrade ok (v2)"), state="SUCCEED", operator=operator, stage=3)
    data.pop("nodes", None)
    with pytest.raises(DecodeError, match="SUCCEED at stage 3 of 9") as info:
        DagDetail.from_json(data)
    assert info.value.where == "data.state"
    from rawserver import dag_json

    data = dag_json("11", stage=9, state="SUCCEED", operator=operator, nodes=True)
    assert DagDetail.from_json(data).stage == 9
    data["nodes"][4]["state"] = "FAILED"
    with pytest.raises(DecodeError, match=r"node\(s\) not succeeded: stage 5"):
        DagDetail.from_json(data)


def test_unknown_keys_are_kept_aside_and_missing_optional_keys_tolerated():
    data = dict(_dag("upgrade ok (v2)"), brand_new="x")
    del data["maintenance_type"], data["maintenance_key"]
    dag = DagDetail.from_json(data)
    assert dag.extra == {"brand_new": "x"}
    assert dag.maintenance_type is None


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d.pop("state"), "data.state"),
        (lambda d: d.update(state="DONE"), "data.state"),
        (lambda d: d.update(stage="4"), "data.stage"),
        (lambda d: d.update(stage=True), "data.stage"),
        (lambda d: d.update(id=11), "data.id"),
        (lambda d: d.update(start_time="yesterday"), "data.start_time"),
        (lambda d: d.update(nodes={}), "data.nodes"),
        (lambda d: d.update(nodes=[{"id": "11"}]), "data.nodes[0].node_id"),
        (lambda d: d.update(id="11\x1b[2J"), "data.id"),
        (lambda d: d.update(nodes=[{"id": "9"}]), "data.nodes[0].id"),
    ],
)
def test_replies_that_do_not_fit_name_the_path(mutate, where):
    data = dict(_dag("upgrade ok (v2)"))
    mutate(data)
    with pytest.raises(DecodeError) as info:
        DagDetail.from_json(data)
    assert info.value.where == where
    assert where in str(info.value)


@pytest.mark.parametrize(
    ("mutate", "where", "message"),
    [
        (lambda d: d["nodes"][2].update(state="DONE"), "data.nodes[2].state",
         "unknown value 'DONE'"),
        (lambda d: d["nodes"][1]["sub_tasks"][0].update(task_logs=["ok", 7]),
         "data.nodes[1].sub_tasks[0].task_logs[1]", "expected a string, got a number"),
        (lambda d: d["nodes"][0]["sub_tasks"][0].update(execute_agent={"ip": "h"}),
         "data.nodes[0].sub_tasks[0].execute_agent.port", "missing"),
        (lambda d: d["nodes"][0].update(sub_tasks="none"), "data.nodes[0].sub_tasks",
         "expected an array, got a string"),
    ],
)
def test_deep_misfits_name_the_whole_path_once(mutate, where, message):
    data = json.loads(json.dumps(_dag("dag detail, show_details=true")))
    mutate(data)
    with pytest.raises(DecodeError) as info:
        DagDetail.from_json(data)
    assert info.value.where == where
    assert str(info.value).startswith(f"{where}: {message}")


@pytest.mark.parametrize(("where", "expected"), [("", "id"), (".x", ".x.id"), ("[3]", "[3].id")])
def test_the_callers_path_is_kept_as_given(where, expected):
    with pytest.raises(DecodeError) as info:
        DagDetail.from_json({}, where)
    assert info.value.where == expected


def test_sub_task_logs_name_the_line_that_does_not_fit(monkeypatch):
    client = ObshellClient("127.0.0.1", 1, auth=None)
    monkeypatch.setattr(client, "call", lambda *a, **k: {"contents": ["one", None]})
    with pytest.raises(DecodeError) as info:
        client.sub_task_logs("2100000000000000000")
    assert info.value.where == "data.contents[1]"
    assert str(info.value) == ("GET /api/v1/task/sub_task/2100000000000000000/logs on "
                               "127.0.0.1:1: data.contents[1]: expected a string, got null")
    monkeypatch.setattr(client, "call", lambda *a, **k: {"contents": ["one", "two"]})
    assert client.sub_task_logs("2100000000000000000") == ["one", "two"]


def test_server_time_names_the_path(agent):
    client = _serve(agent, 200, {"successful": True, "status": 200, "data": None})
    with pytest.raises(DecodeError) as info:
        client.server_time()
    assert info.value.where == "data"
    assert "expected a string, got null" in str(info.value)
    client = _serve(agent, 200, {"successful": True, "status": 200, "data": "noon"})
    with pytest.raises(DecodeError, match="not an RFC 3339 time") as info:
        client.server_time()
    assert info.value.where == "data"


@pytest.mark.parametrize("bad", [None, [], "x", 3])
def test_non_object_payloads_are_decode_errors(agent, bad):
    with pytest.raises(DecodeError) as info:
        DagDetail.from_json(bad)
    assert info.value.where == "data"
    client = _serve(agent, 200, bad)
    with pytest.raises(DecodeError) as info:
        client.call("GET", "/x", signed=False)
    assert "expected a JSON object" in str(info.value) and info.value.status == 200


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T05:21:20.552341359Z", datetime(2026, 11, 27, 5, 21, 20, 552341, timezone.utc)),
        ("2026-11-27T05:21:20Z", datetime(2026, 11, 27, 5, 21, 20, tzinfo=timezone.utc)),
        ("2026-11-27T05:21:20.5+08:00",
         datetime(2026, 11, 27, 5, 21, 20, 500000, timezone(timedelta(hours=8)))),
        ("2024-05-06T11:22:33.123456-03:30",
         datetime(2024, 5, 6, 11, 22, 33, 123456, timezone(-timedelta(hours=3, minutes=30)))),
        ("0001-01-01T00:00:00Z", None),
        ("1970-01-01T00:00:00Z", None),
        ("1970-01-01T08:00:00+08:00", None),
    ],
)
def test_time_parsing(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["", "2026-11-27", "2026-11-27T05:21:20", "2026-13-01T00:00:00Z",
                                  "2026-11-27T05:21:20.1234567890Z",
                                  "9999-12-31T23:59:59-23:59"])  # past the calendar in UTC
def test_bad_times_refused(text):
    with pytest.raises(ValueError):
        parse_time(text)


def test_a_time_past_the_calendar_in_utc_is_a_decode_error_not_a_crash_in_a_card():
    """A hostile review drew a notebook card of a DAG started "9999-12-31T23:59:59-23:59":
    OverflowError from the card's conversion to UTC. It is refused where it is read."""
    doc = dag_json("11", nodes=True)
    doc["start_time"] = "9999-12-31T23:59:59-23:59"
    with pytest.raises(DecodeError, match="start_time"):
        DagDetail.from_json(doc)
    doc["start_time"], doc["nodes"][0]["end_time"] = doc["end_time"], "9999-12-31T23:59:59-23:59"
    with pytest.raises(DecodeError, match=r"nodes\[0\]\.end_time"):
        DagDetail.from_json(doc)


def test_upgrade_request_json_and_dag_name():
    req = UpgradeAgentRequest("4.2.1.1", "101000062023110109.el7", "/data/upgrade")
    assert req.to_json() == {"version": "4.2.1.1", "release": "101000062023110109.el7",
                             "upgradeDir": "/data/upgrade"}
    assert UpgradeAgentRequest("4.2.1.1", "1.el7").to_json() == {"version": "4.2.1.1",
                                                                 "release": "1.el7"}
    assert UpgradeAgentRequest("4.2.1.1", "1.el7", "").upgrade_dir is None
    assert AGENT_UPGRADE.dag_name(req) == "Upgrade obshell 4.2.1.1-101000062023110109.el7"
    assert AGENT_UPGRADE_CHECK.dag_name(req) == (
        "Upgrade check obshell 4.2.1.1-101000062023110109.el7")


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (("", "1.el7"), "version"),
        (("   ", "1.el7"), "version"),
        (("4", "1.el7"), "version"),
        (("v4.2.1", "1.el7"), "version"),
        (("4.2.1.1 ", "1.el7"), "version"),
        (("4..1", "1.el7"), "version"),
        ((4.2, "1.el7"), "version"),
        (("4.2.1.1", ""), "release"),
        (("4.2.1.1", "  "), "release"),
        (("4.2.1.1", "20250101"), "release"),
        (("4.2.1.1", ".el7"), "release"),
        (("4.2.1.1", "1."), "release"),
        (("4.2.1.1", "1 .el7"), "release"),
        (("4.2.1.1", None), "release"),
        (("4.2.1.1", "1.el7", "data/x"), "upgrade_dir"),
        (("4.2.1.1", "1.el7", " /data/x"), "upgrade_dir"),
        (("4.2.1.1", "1.el7", "/data/../etc"), "upgrade_dir"),
        (("4.2.1.1", "1.el7", "/data/up grade"), "upgrade_dir"),
        (("4.2.1.1", "1.el7", "/data/$HOME"), "upgrade_dir"),
        (("4.2.1.1", "1.el7", 5), "upgrade_dir"),
    ],
)
def test_upgrade_request_refuses_bad_input(args, argument):
    with pytest.raises(InvalidArgumentError) as info:
        UpgradeAgentRequest(*args)
    assert info.value.argument == argument
    assert isinstance(info.value, ValueError)


def test_upgrade_dir_allows_cjk_and_obshell_punctuation():
    assert UpgradeAgentRequest("4.2.1.1", "1.el7", "/data/升级-dir_1:@x.y").upgrade_dir


def test_repr_shows_the_fields_attrs_would_and_hides_the_rest():
    dag = DagDetail.from_json(_dag("poll 4 (FAILED at stage 3)"))
    text = repr(dag)
    assert text.startswith(f"DagDetail(id={dag.id!r}, dag_id={dag.dag_id!r}, name=")
    assert f"state={DagState.FAILED!r}" in text
    assert "nodes=" not in text and "extra=" not in text and "additional_data=" not in text
    assert repr(UpgradeAgentRequest("4.2.1.1", "1.el7")) == (
        "UpgradeAgentRequest(version='4.2.1.1', release='1.el7', upgrade_dir=None)"
    )
    info = repr(AgentInfo.from_json({"identity": "SINGLE", "version": "4.3.0.0"}))
    assert info.startswith("AgentInfo(identity='SINGLE', version='4.3.0.0', ip=''")


def test_node_and_task_details_build_from_their_own_json():
    data = _dag("poll 4 (FAILED at stage 3)")
    node_json = data["nodes"][2]
    node = NodeDetail.from_json(node_json)
    assert (node.id, node.node_id, node.name) == (node_json["id"], node_json["node_id"],
                                                  node_json["name"])
    assert node.state is DagState.FAILED and isinstance(node.sub_tasks, tuple)
    task = TaskDetail.from_json(node_json["sub_tasks"][0])
    assert task == node.sub_tasks[0]
    assert isinstance(task.execute_agent, AgentAddress) and task.task_logs
    assert NodeDetail.from_json(dict(node_json, sub_tasks=None)).sub_tasks == ()
    assert TaskDetail.from_json(dict(node_json["sub_tasks"][0], task_logs=None)).task_logs == ()
    with pytest.raises(DecodeError) as info:
        NodeDetail.from_json(dict(node_json, sub_tasks=[{"id": "11"}]))
    assert info.value.where == "data.sub_tasks[0].task_id"
    with pytest.raises(DecodeError) as info:
        TaskDetail.from_json(dict(node_json["sub_tasks"][0], execute_agent={"ip": "h"}))
    assert info.value.where == "data.execute_agent.port"


def test_agent_address_shows_ipv6_in_brackets():
    assert str(AgentAddress("::1", 2886)) == "[::1]:2886"
    assert str(AgentAddress("10.0.0.1", 2886)) == "10.0.0.1:2886"


def test_error_info_defaults_and_extra_keys():
    err = ErrorInfo.from_json({"errCode": "Task.NotFound", "code": 2300, "message": "gone",
                               "subErrors": None, "detail": {"x": 1}})
    assert (err.err_code, err.code, err.message, err.sub_errors) == ("Task.NotFound", 2300,
                                                                     "gone", ())
    assert err.extra == {"detail": {"x": 1}}
    empty = ErrorInfo.from_json({})
    assert (empty.err_code, empty.code, empty.message, empty.sub_errors) == ("", 0, "", ())
    assert ErrorInfo.from_json({"subErrors": [1, "a"]}).sub_errors == (1, "a")
    for bad, where in (({"code": "1"}, "error.code"), ({"errCode": 5}, "error.errCode"),
                       ({"subErrors": {}}, "error.subErrors"), ([], "error")):
        with pytest.raises(DecodeError) as info:
            ErrorInfo.from_json(bad)
        assert info.value.where == where


def test_agent_info_fields_and_properties():
    info = AgentInfo.from_json({"identity": "SINGLE", "version": "4.3.1.0-100000012025",
                                "security": True, "startAt": 0, "newKey": 1})
    assert info.version_number == "4.3.1.0" and info.has_agent_password
    assert info.started_at is None and info.supported_auth is None
    assert info.extra == {"newKey": 1}
    assert (info.ip, info.port, info.zone, info.is_obproxy_agent) == ("", 0, "", False)
    with pytest.raises(DecodeError) as raised:
        AgentInfo.from_json({"identity": "SINGLE", "version": "4", "supportedAuth": ["v2", 2]})
    assert raised.value.where == "data.supportedAuth[1]"
    with pytest.raises(DecodeError) as raised:
        AgentInfo.from_json({"identity": "SINGLE", "version": "4", "security": "yes"})
    assert raised.value.where == "data.security"


def test_models_are_frozen_and_compare_by_value():
    data = _dag("upgrade ok (v2)")
    dag = DagDetail.from_json(data)
    assert dag == DagDetail.from_json(dict(data))
    assert dag == DagDetail.from_json(dict(data, brand_new=1))  # extra is not compared
    with pytest.raises(AttributeError):
        dag.state = DagState.FAILED


@pytest.mark.parametrize(("error", "method", "path", "never_ran"), [
    (ConnectError, "POST", "/api/v1/agent/upgrade", True),  # never reached the agent
    (ConnectionLostError, "GET", "/api/v1/secret", True),  # the auth flow's request
    (ConnectError, "GET", "/api/v1/info", True),
    (ConnectionLostError, "POST", "/api/v1/agent/upgrade", False),  # it may have run
    (ReadTimeoutError, "POST", "/api/v1/agent/upgrade", False),
])
def test_an_endpoint_tells_which_failures_prove_its_post_did_not_run(error, method, path,
                                                                      never_ran):
    exc = error("failed", method=method, path=path, agent="127.0.0.1:2886")
    assert AGENT_UPGRADE.never_ran(exc) is never_ran
    assert AGENT_UPGRADE_CHECK.never_ran(exc) is (never_ran or path == AGENT_UPGRADE.path)


@pytest.mark.parametrize(("status", "err_code", "never_ran"), [
    (401, "Security.Authentication.IncorrectOceanbasePassword", True),  # refused at the door
    (400, "Common.IllegalArgument", True),
    (500, "OB.Cluster.UnderMaintenanceWithDag", True),  # the lock: no DAG was made
    (500, "Agent.Unavailable", True),  # obshell's own error: before the DAG
    (500, "Common.Unexpected", False),  # a panic may come after the DAG was made
    (503, "", False),
    (200, "Common.IllegalArgument", False),  # not an HTTP refusal: a gateway's oddity
    (302, "", False),
])
def test_an_error_reply_to_a_create_proves_nothing_ran_unless_it_is_ambiguous(status, err_code,
                                                                          never_ran):
    path = AGENT_UPGRADE.path
    reply = Envelope.from_json({"successful": False, "status": status,
                                "error": {"errCode": err_code, "message": "no"}})
    exc = _api_error(reply, status, "POST", path, "127.0.0.1:2886")
    assert AGENT_UPGRADE.never_ran(exc) is never_ran
    assert AGENT_UPGRADE.never_ran(DecodeError("not JSON", status=200)) is False
    assert AGENT_UPGRADE.never_ran(WeakKeyError("512 bits", bits=512)) is True


@pytest.mark.parametrize(("status", "err_code", "message", "cls_name"), [
    (500, "Common.Unexpected", "oceanbase-ce-4.3.5.1-1.el7.x86_64.rpm: record not found",
     "PackageMissingError"),
    (400, "OB.Package.NotExist", "These packages are missing: '[x.rpm]'", "PackageMissingError"),
    (500, "Common.Unexpected", "record not found", "ServerError"),  # not a package: a panic?
    (500, "Common.Unexpected", "a.rpm: record not found, then more", "ServerError"),
    (400, "Common.IllegalArgument", "a.rpm: record not found", "BadRequestError"),
    (500, "Common.Unexpected", "MD5 checksum validation failed", "PackageDamagedError"),
    (500, "Common.Unexpected", "MD5 checksum validation failed, then more", "ServerError"),
])
def test_a_package_not_found_is_told_apart_by_its_code_or_gorms_words(status, err_code, message,
                                                                      cls_name):
    reply = Envelope.from_json({"successful": False, "status": status,
                                "error": {"errCode": err_code, "message": message}})
    exc = _api_error(reply, status, "POST", OB_UPGRADE.path, "127.0.0.1:2886")
    assert type(exc).__name__ == cls_name
    assert OB_UPGRADE.never_ran(exc) is (status == 400 or cls_name == "PackageMissingError")


def test_models_of_a_whole_upgrade_hash_and_equal_ones_hash_alike():
    """Frozen models hash, whatever their data: a DAG's additional_data (a dict) made
    hash(DagDetail) raise TypeError for every upgrade task, and so hash(UpgradeResult)."""
    from obshell_sdk import PasswordAuth
    from obshell_sdk.testing import FakeAgent

    with FakeAgent(password="pw", stages_per_poll=9) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth("pw")) as client:
        result = client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", progress=False)
        again = client.get_dag(result.upgrade.id)
    assert result.upgrade.additional_data is not None
    models = [result, result.check, result.upgrade, result.info, *result.upgrade.nodes,
              *(t for n in result.upgrade.nodes for t in n.sub_tasks)]
    assert len({*models, again}) == len(models)  # every one hashes; `again` equals upgrade
    assert again == result.upgrade and hash(again) == hash(result.upgrade)
    error = ErrorInfo.from_json({"code": 10008, "message": "m", "subErrors": [{"error": "x"}]})
    assert hash(error) == hash(ErrorInfo.from_json({"code": 10008, "message": "m",
                                                   "subErrors": [{"error": "x"}]}))


@pytest.mark.parametrize("start_at", [10**30, -(2**63) - 1, 2**64])
def test_integers_beyond_go_s_64_bits_are_a_decode_error(start_at):
    # obshell's integers are Go's int64 or uint64; AgentInfo.started_at raised OverflowError
    # for startAt=10**30, which the decoder had let through
    info = {"agent": {"ip": "10.0.0.1", "port": 2886}, "state": 2, "version": "4.2.1.0",
            "identity": "SINGLE", "startAt": start_at}
    with pytest.raises(DecodeError) as caught:
        AgentInfo.from_json(info)
    assert caught.value.where.endswith("startAt")
    assert AgentInfo.from_json({**info, "startAt": 2**63 - 1}).started_at is not None


def test_every_public_class_has_type_hints_that_resolve():
    """Public classes say ``obshell_sdk`` is their module, where typing.get_type_hints (and
    attrs.resolve_types, cattrs, typeguard) look their annotations' names up: the package
    has no ``Optional``, so each string annotation is resolved where it was written."""
    import typing

    import attrs

    import obshell_sdk

    classes = [c for c in map(vars(obshell_sdk).get, obshell_sdk.__all__) if isinstance(c, type)]
    assert len(classes) > 40 and all(c.__module__ == "obshell_sdk" for c in classes)
    for cls in classes:
        typing.get_type_hints(cls)
        if attrs.has(cls):
            attrs.resolve_types(cls)
    assert typing.get_type_hints(DagDetail)["nodes"] == typing.Optional[
        tuple[obshell_sdk.NodeDetail, ...]]


def test_the_docs_way_to_json_writes_a_whole_dag_detail():
    """docs/tasks.md "A snapshot as JSON", run as written on a DagDetail with nodes."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "tasks.md").read_text()
    code = page.split("### A snapshot as JSON", 1)[1].split("```python\n", 1)[1]
    code = code.split("```", 1)[0]
    data = next(v["response"]["body"]["data"] for v in vectors()
                if v["name"] == "dag detail until SUCCEED")
    detail = DagDetail.from_json(data)
    scope = {"detail": detail}
    exec(compile(code, "docs/tasks.md", "exec"), scope)  # the docs' own code
    shown = json.loads(scope["text"])
    assert shown["id"] == detail.id and shown["state"] == detail.state.value
    assert shown["start_time"] == detail.start_time.isoformat()
    assert len(shown["nodes"]) == len(detail.nodes)
    assert shown["nodes"][0]["sub_tasks"][0]["state"] == detail.nodes[0].sub_tasks[0].state.value
