"""Parsers against obshell's recorded replies, and their refusals of replies that do not fit."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from vectorlib import vectors

from obshell_sdk import (
    AgentInfo,
    DagDetail,
    DagOutcome,
    DagState,
    DecodeError,
    Envelope,
    InvalidArgumentError,
    Operator,
    UpgradeAgentRequest,
)
from obshell_sdk._wire import format_time, parse_time

VECTORS = vectors()


@pytest.mark.parametrize("vec", VECTORS, ids=lambda v: f"{v['scenario']}:{v['name']}")
def test_every_recorded_envelope_parses(vec):
    body = vec["response"]["body"]
    env = Envelope.from_json(body)
    assert env.status == vec["response"]["status"]
    assert env.successful is body["successful"]
    assert env.trace_id == body["traceId"]
    assert env.timestamp is not None and env.timestamp.tzinfo is not None
    if env.error is not None:
        assert env.error.err_code == body["error"]["errCode"]
        assert env.error.code == body["error"].get("code", 0)
        assert env.error.message == body["error"]["message"]
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
        assert info.supported_auth == tuple(data["supportedAuth"])


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
    assert DagDetail.from_json(data).outcome is outcome


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
        (lambda d: d.update(nodes=[{"id": "1"}]), "data.nodes[0].node_id"),
    ],
)
def test_replies_that_do_not_fit_name_the_path(mutate, where):
    data = dict(_dag("upgrade ok (v2)"))
    mutate(data)
    with pytest.raises(DecodeError) as info:
        DagDetail.from_json(data)
    assert info.value.where == where
    assert where in str(info.value)


def test_non_object_payloads_are_decode_errors():
    for bad in (None, [], "x", 3):
        with pytest.raises(DecodeError):
            DagDetail.from_json(bad)
        with pytest.raises(DecodeError):
            Envelope.from_json(bad)


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
                                  "2026-11-27T05:21:20.1234567890Z"])
def test_bad_times_refused(text):
    with pytest.raises(ValueError):
        parse_time(text)


def test_format_time_round_trips():
    t = datetime(2026, 1, 2, 3, 4, 5, 120000, timezone.utc)
    assert format_time(t) == "2026-01-02T03:04:05.12Z"
    assert parse_time(format_time(t)) == t


def test_upgrade_request_json_and_dag_name():
    req = UpgradeAgentRequest("4.2.1.1", "101000062023110109.el7", "/data/upgrade")
    assert req.to_json() == {"version": "4.2.1.1", "release": "101000062023110109.el7",
                             "upgradeDir": "/data/upgrade"}
    assert UpgradeAgentRequest("4.2.1.1", "1.el7").to_json() == {"version": "4.2.1.1",
                                                                 "release": "1.el7"}
    assert UpgradeAgentRequest("4.2.1.1", "1.el7", "").upgrade_dir is None
    assert req.dag_name == "Upgrade obshell 4.2.1.1-101000062023110109.el7"


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
