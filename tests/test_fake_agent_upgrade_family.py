"""FakeAgent's OceanBase upgrade family over real sockets: OB upgrade and check, their DAGs.

Plain ``requests`` and the signing helpers of test_fake_agent.py, never the SDK client
(PROTOCOL-upgrade-family.md §2, §3, §4, §7). Package endpoints: the ``_packages`` file.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from typing import Any, Optional

import pytest
import requests
from Crypto.Cipher import AES
from test_fake_agent import PWD, UPGRADE, _rsa_b64, call, operate, poll, signed, start_upgrade

from obshell_sdk.testing import FakeAgent, build_rpm

OB_NOW = "4.3.5.0-100000202024123117"
TARGET = {"version": "4.3.5.1", "release": "101000012025052815.el7"}
ROLLING = dict(TARGET, mode="ROLLING")


# -- helpers shared by the upgrade-family test files -------------------------------------------
def multipart(content: bytes, filename: str = "p.rpm", boundary: str = "b0undary") -> bytes:
    """A multipart body whose part ``file`` holds ``content``."""
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode() + content + f"\r\n--{boundary}--\r\n".encode()


def upload_old(agent: FakeAgent, content: bytes, filename: str = "p.rpm") -> requests.Response:
    """``POST /api/v1/upgrade/package``: the whole multipart AES-encrypted, header signed."""
    keys = os.urandom(32)
    headers, _ = signed(agent, "/api/v1/upgrade/package", keys=keys)
    plain = multipart(content, filename)
    pad = 16 - len(plain) % 16
    body = base64.b64encode(AES.new(keys[:16], AES.MODE_CBC, iv=keys[16:]).encrypt(
        plain + bytes([pad]) * pad))
    headers["Content-Type"] = "multipart/form-data; boundary=b0undary"
    return requests.post(agent.base_url + "/api/v1/upgrade/package", headers=headers,
                         data=body, timeout=10)


def upload_new(agent: FakeAgent, content: bytes, *, digest: Optional[str] = None,
               sha_header: Optional[str] = None, auth: bool = False,
               filename: str = "p.rpm") -> requests.Response:
    """``POST /api/v1/package``: clear multipart, ``X-OCS-File-SHA256`` = RSA(hex SHA-256)."""
    hexdigest = hashlib.sha256(content).hexdigest() if digest is None else digest
    headers = {"Content-Type": "multipart/form-data; boundary=b0undary"}
    if sha_header is None:
        headers["X-OCS-File-SHA256"] = _rsa_b64(agent.public_key_b64, hexdigest.encode())
    elif sha_header:
        headers["X-OCS-File-SHA256"] = sha_header
    if auth:
        headers.update(signed(agent, "/api/v1/package")[0])
    return requests.post(agent.base_url + "/api/v1/package", headers=headers,
                         data=multipart(content, filename), timeout=10)


def upload_ob_packages(agent: FakeAgent, version: str = "4.3.5.1",
                       release: str = "101000012025052815.el7",
                       names: tuple[str, ...] = ("oceanbase-ce", "oceanbase-ce-libs")) -> None:
    """Upload (new upload) what a community OB upgrade to ``version``-``release`` needs."""
    for name in names:
        r = upload_new(agent, build_rpm(name, version, release))
        assert r.status_code == 200, r.text


def error(r: requests.Response) -> tuple[int, str, str]:
    """(status, errCode, message) of an error answer."""
    body = r.json()
    return r.status_code, body["error"]["errCode"], body["error"]["message"]


def run_dag(agent: FakeAgent, dag_id: str, limit: int = 100) -> dict[str, Any]:
    """Poll until the DAG ends; its last detail."""
    for _ in range(limit):
        data = poll(agent, dag_id)
        if data["state"] in ("SUCCEED", "FAILED"):
            return data
    raise AssertionError(f"DAG {dag_id} did not end")


@pytest.fixture
def agent() -> Any:
    with FakeAgent(password=PWD, ob_version=OB_NOW, stages_per_poll=1) as a:
        yield a


def _names(agent: FakeAgent, dag_id: str) -> list[str]:
    return [n.name for n in agent.dag(dag_id).nodes]


# -- POST /api/v1/ob/upgrade -------------------------------------------------------------------
def test_rolling_upgrade_dag(agent: FakeAgent) -> None:
    r = call(agent, "POST", "/api/v1/ob/upgrade", ROLLING)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["name"] == "OB rolling upgrade 4.3.5.1-101000012025052815.el7"
    assert (data["stage"], data["max_stage"], data["maintenance_type"]) == (1, 30, 2)
    assert (data["state"], data["nodes"], data["start_time"]) == ("READY", None,
                                                                  "0001-01-01T00:00:00Z")
    names = _names(agent, data["id"])
    assert names[:3] == ["Check the python environment", "Create upgrade dir",
                         "Download all required packages"]
    assert names[8:13] == ["Upgrade post table maintain", "Backup parameters",
                           "Execute upgrade checker script", "Execute upgrade pre script",
                           "Execute upgrade health checker script"]
    assert names[13:17] == ["Stop zone1", "Reinstall and restart observer",
                            "Execute upgrade zone health checker script", "Start zone1"]
    assert names[-3:] == ["Execute upgrade post script", "Restore parameters",
                          "Remove upgrade check task dir"]


@pytest.mark.parametrize("body,kw,stages", [
    (dict(TARGET, mode="stopservice"), {}, 18),
    (dict(TARGET, mode="StopService", freeze_server=True), {}, 19),
    (dict(TARGET, mode="rolling", freeze_server=True), {}, 33),
    (ROLLING, {"zones": 4}, 35),
    (ROLLING, {"edition": "business"}, 26),
    (dict(TARGET, mode="STOPSERVICE"), {"edition": "standalone"}, 18),
])
def test_stage_lists(body: dict[str, Any], kw: dict[str, Any], stages: int) -> None:
    with FakeAgent(password=PWD, ob_version=OB_NOW, **kw) as a:
        r = call(a, "POST", "/api/v1/ob/upgrade", body)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["max_stage"] == stages
        names = _names(a, r.json()["data"]["id"])
        assert ("Minor freeze before stop server" in names) == bool(body.get("freeze_server"))
        assert ("Install new obshell" in names) == (kw.get("edition") != "business")


def test_lower_case_mode_names_the_stop_service_dag(agent: FakeAgent) -> None:
    r = call(agent, "POST", "/api/v1/ob/upgrade", dict(TARGET, mode="stopservice"))
    assert r.json()["data"]["name"] == "OB stop service upgrade 4.3.5.1-101000012025052815.el7"


@pytest.mark.parametrize("body,expected", [
    ({"version": "4.3.5.1"}, (400, "Common.BindJsonFailed",
     "Bind JSON failed: Key: 'ObUpgradeParam.UpgradeCheckParam.Release' Error:Field validation "
     "for 'Release' failed on the 'required' tag\nKey: 'ObUpgradeParam.Mode' Error:Field "
     "validation for 'Mode' failed on the 'required' tag")),
    (dict(ROLLING, freeze_server="true"), (400, "Common.BindJsonFailed",
     "Bind JSON failed: json: cannot unmarshal string into Go struct field "
     "ObUpgradeParam.freeze_server of type bool")),
    (dict(TARGET, mode="bluegreen", upgradeDir="relative"), (400, "OB.Upgrade.Mode.NotSupported",
     "Upgrade mode 'BLUEGREEN' is not supported")),
    (dict(ROLLING, upgradeDir="data/x"), (400, "Common.InvalidPath",
     "Path 'data/x' is not valid: should start with '/'")),
    (dict(ROLLING, upgradeDir="   "), (200, "", "")),
    (dict(ROLLING, release="101000012025052815"), (400, "Package.ReleaseFormat.Invalid",
     "Release format 101000012025052815 is illegal")),
    (dict(ROLLING, version="4.1.0.0"), (400, "Agent.OBVersionNotSupported",
     "Unsupported OB version '4.1.0.0-101000012025052815', the minimum supported version is "
     "'4.2.0.0'")),
    (dict(ROLLING, version="4.3.5.0", release="100000202024123117.el8"),
     (400, "OB.Upgrade.ToLowerVersion", "Target version 4.3.5.0-100000202024123117 is not "
      "greater than current version 4.3.5.0-100000202024123117. Please verify if the "
      "parameters have been filled out correctly")),
])
def test_upgrade_refusals(agent: FakeAgent, body: dict[str, Any],
                          expected: tuple[int, str, str]) -> None:
    r = call(agent, "POST", "/api/v1/ob/upgrade", body)
    if expected[0] == 200:
        assert r.status_code == 200, r.text
        return
    assert error(r) == expected
    assert ("data" in r.json()) == (expected[1] != "Common.BindJsonFailed")  # data: null
    assert not agent.dags


def test_refusal_order_identity_zones_python(agent: FakeAgent) -> None:
    bad_everything = dict(ROLLING, upgradeDir="x", version="4.0.0.0")
    agent.identity = "SINGLE"
    status, code, text = error(call(agent, "POST", "/api/v1/ob/upgrade", bad_everything))
    assert (status, code) == (400, "Agent.Identify.NotSupportOperation")
    assert text == (f"'127.0.0.1:{agent.port}' is 'SINGLE', instead of 'CLUSTER AGENT', does "
                    "not support this operation")
    agent.identity = "CLUSTER AGENT"
    agent.zones = 2
    assert error(call(agent, "POST", "/api/v1/ob/upgrade", bad_everything)) == (
        400, "OB.Upgrade.UnableToRollingUpgrade",
        "Rolling upgrade requires at least 3 zones (or 2 zones for shared storage mode)")
    assert call(agent, "POST", "/api/v1/ob/upgrade", dict(TARGET, mode="STOPSERVICE")).ok
    agent.python_ok = False
    assert error(call(agent, "POST", "/api/v1/ob/upgrade", dict(bad_everything, mode="stopservice"))
                 ) == (500, "Environment.WithoutModule",
                       f"python environment check failed on agent 127.0.0.1:{agent.port}: "
                       "Please check if Python module 'mysql.connector' is installed")


def test_ob_and_agent_upgrades_share_the_lock(agent: FakeAgent) -> None:
    dag_id = start_upgrade(agent)
    r = call(agent, "POST", "/api/v1/ob/upgrade", ROLLING)
    assert error(r) == (500, "OB.Cluster.UnderMaintenanceWithDag",
                        "Create task 'OB rolling upgrade 4.3.5.1-101000012025052815.el7' failed: "
                        "OceanBase cluster is under maintenance by DAG: Upgrade obshell "
                        "4.3.1.0-20250101.el7, please try again later")
    assert r.json()["data"] is None
    bad = call(agent, "POST", "/api/v1/ob/upgrade", dict(ROLLING, mode="x"))
    assert error(bad)[1] == "OB.Upgrade.Mode.NotSupported"  # checked before the lock
    check = call(agent, "POST", "/api/v1/ob/upgrade/check", TARGET)
    assert check.status_code == 200 and check.json()["data"]["maintenance_type"] == 1
    agent.finish_dag(dag_id)
    ob_id = call(agent, "POST", "/api/v1/ob/upgrade", ROLLING).json()["data"]["id"]
    refused = call(agent, "POST", "/api/v1/agent/upgrade", dict(UPGRADE, version="4.3.2.0"))
    assert error(refused)[2].endswith(
        "by DAG: OB rolling upgrade 4.3.5.1-101000012025052815.el7, please try again later")
    assert run_dag(agent, ob_id)["state"] == "SUCCEED"


def test_success_reports_the_new_ob_version(agent: FakeAgent) -> None:
    info = requests.get(agent.base_url + "/api/v1/info", timeout=5).json()["data"]
    assert info["obVersion"] == OB_NOW and info["architecture"] == "x86_64"
    dag_id = call(agent, "POST", "/api/v1/ob/upgrade", ROLLING).json()["data"]["id"]
    final = run_dag(agent, dag_id)
    assert (final["state"], final["stage"], final["max_stage"]) == ("SUCCEED", 30, 30)
    info = requests.get(agent.base_url + "/api/v1/info", timeout=5).json()["data"]
    assert info["obVersion"] == "4.3.5.1-101000012025052815"
    assert info["version"] == "4.3.0.0"  # obshell itself keeps its version
    again = call(agent, "POST", "/api/v1/ob/upgrade", ROLLING)
    assert error(again)[1] == "OB.Upgrade.ToLowerVersion"


def test_drop_reply_after_create_on_ob_upgrade(agent: FakeAgent) -> None:
    agent.drop_reply_after_create = True
    with pytest.raises(requests.ConnectionError):
        call(agent, "POST", "/api/v1/ob/upgrade", ROLLING)
    (dag,) = agent.dags.values()
    assert dag.name.startswith("OB rolling upgrade") and dag.state == "READY"
    assert agent.requests_to("/api/v1/ob/upgrade")[0].status == 0


# -- POST /api/v1/ob/upgrade/check -------------------------------------------------------------
def test_check_dag(agent: FakeAgent) -> None:
    r = call(agent, "POST", "/api/v1/ob/upgrade/check", dict(TARGET, mode="ignored"))
    data = r.json()["data"]
    assert data["name"] == "Upgrade check OB 4.3.5.1-101000012025052815.el7"
    assert (data["max_stage"], data["maintenance_type"]) == (6, 1)
    assert _names(agent, data["id"]) == [
        "Check the python environment", "Create upgrade dir", "Download all required packages",
        "Check all required packages", "Unpack all required packages",
        "Remove upgrade check task dir"]
    assert run_dag(agent, data["id"])["state"] == "SUCCEED"
    agent.drop_reply_after_create = True
    with pytest.raises(requests.ConnectionError):
        call(agent, "POST", "/api/v1/ob/upgrade/check", TARGET)


def test_check_refusals_in_order(agent: FakeAgent) -> None:
    r = call(agent, "POST", "/api/v1/ob/upgrade/check", {"release": "1.el7"})
    assert error(r) == (400, "Common.BindJsonFailed",
                        "Bind JSON failed: Key: 'UpgradeCheckParam.Version' Error:Field "
                        "validation for 'Version' failed on the 'required' tag")
    agent.python_ok = False
    low = dict(TARGET, version="4.3.4.0", upgradeDir="x")
    assert error(call(agent, "POST", "/api/v1/ob/upgrade/check", low))[1] == "Common.InvalidPath"
    low.pop("upgradeDir")
    assert error(call(agent, "POST", "/api/v1/ob/upgrade/check", low))[1] == (
        "OB.Upgrade.ToLowerVersion")  # the packages' checks come before the python one
    status, code, _ = error(call(agent, "POST", "/api/v1/ob/upgrade/check", TARGET))
    assert (status, code) == (500, "Environment.WithoutModule")


# -- packages required at creation and at run time ---------------------------------------------
@pytest.fixture
def strict() -> Any:
    with FakeAgent(password=PWD, ob_version=OB_NOW, require_packages=True,
                   stages_per_poll=1) as a:
        yield a


def test_creation_needs_the_packages(strict: FakeAgent) -> None:
    r = call(strict, "POST", "/api/v1/ob/upgrade", ROLLING)
    assert error(r) == (500, "Common.Unexpected",
                        "oceanbase-ce-4.3.5.1-101000012025052815.el7.x86_64.rpm: record not found")
    assert r.json()["data"] is None
    assert error(call(strict, "POST", "/api/v1/ob/upgrade/check", TARGET))[1] == (
        "Common.Unexpected")
    upload_ob_packages(strict, names=("oceanbase-ce",))
    assert error(call(strict, "POST", "/api/v1/ob/upgrade", ROLLING)) == (
        400, "OB.Package.NotExist", "These packages are missing: "
        "'[oceanbase-ce-libs-4.3.5.1-101000012025052815.el7.x86_64.rpm]'")
    upload_ob_packages(strict, names=("oceanbase-ce-libs",))
    dag_id = call(strict, "POST", "/api/v1/ob/upgrade", ROLLING).json()["data"]["id"]
    final = run_dag(strict, dag_id)
    assert final["state"] == "SUCCEED"
    logs = final["nodes"][2]["sub_tasks"][0]["task_logs"]
    assert logs[:2] == ["The required upgrade package is [oceanbase-ce oceanbase-ce-libs]",
                        "The 1th version in the upgrade route is: 4.3.5.1-101000012025052815"]


def test_cross_version_target_needs_its_dependency_yaml(strict: FakeAgent) -> None:
    strict.ob_version = "4.3.5.1-1"  # a new build of the same version: no YAML stored
    upload_ob_packages(strict, release="2.el7")
    strict.ob_version = OB_NOW
    r = call(strict, "POST", "/api/v1/ob/upgrade", dict(ROLLING, release="2.el7"))
    assert error(r) == (500, "OB.Upgrade.DepYamlMissing",
                        "Target package upgrade dependency YAML is empty")


def test_agent_upgrade_download_fails_until_the_package_is_uploaded(strict: FakeAgent) -> None:
    body = dict(UPGRADE, upgradeDir="/data/up")
    dag_id = start_upgrade(strict, body)  # never refused at creation (§4)
    failed = run_dag(strict, dag_id)
    assert (failed["state"], failed["stage"], failed["operator"]) == ("FAILED", 2, "RUN")
    node = failed["nodes"][1]
    assert node["name"] == "Download all required packages"
    assert node["sub_tasks"][0]["task_logs"] == [
        "The required upgrade package is [obshell]",
        "The 1th version in the upgrade route is: 4.3.1.0-20250101",
        "The directory for this upgrade check task is /data/up",
        "Confirm that all the required packages have been uploaded.",
        "ERROR: [Common.Unexpected]: Unexpected error: record not found"]
    assert operate(strict, dag_id, "RETRY").status_code == 200
    assert run_dag(strict, dag_id)["state"] == "FAILED"  # still missing
    r = upload_old(strict, build_rpm("obshell", "4.3.1.0", "20250101.el7"))
    assert r.status_code == 200, r.text
    assert operate(strict, dag_id, "RETRY").status_code == 200
    done = run_dag(strict, dag_id)
    assert (done["state"], done["operator"]) == ("SUCCEED", "RUN")
    assert done["nodes"][1]["sub_tasks"][0]["execute_times"] == 3


def test_ob_download_node_fails_after_a_package_was_deleted(strict: FakeAgent) -> None:
    upload_ob_packages(strict)
    dag_id = call(strict, "POST", "/api/v1/ob/upgrade/check", TARGET).json()["data"]["id"]
    libs = next(p for p in strict.inventory if p["name"] == "oceanbase-ce-libs")
    assert call(strict, "DELETE", f"/api/v1/upgrade/package/{libs['pkg_id']}").status_code == 200
    failed = run_dag(strict, dag_id)
    assert (failed["state"], failed["stage"]) == ("FAILED", 3)
    upload_ob_packages(strict, names=("oceanbase-ce-libs",))
    assert operate(strict, dag_id, "retry").status_code == 200
    assert run_dag(strict, dag_id)["state"] == "SUCCEED"


def test_without_require_packages_nothing_is_looked_up(agent: FakeAgent) -> None:
    dag_id = start_upgrade(agent)
    final = run_dag(agent, dag_id)
    assert final["state"] == "SUCCEED" and final["nodes"][1]["sub_tasks"][0]["task_logs"] == []


# -- node capabilities (§2.1) and restarts -----------------------------------------------------
def test_operators_follow_node_capabilities() -> None:
    with FakeAgent(password=PWD, ob_version=OB_NOW, fail_stage=11, fail_times=2) as a:
        dag_id = call(a, "POST", "/api/v1/ob/upgrade", ROLLING).json()["data"]["id"]
        failed = run_dag(a, dag_id)
        assert failed["nodes"][10]["name"] == "Execute upgrade checker script"
        assert error(operate(a, dag_id, "ROLLBACK")) == (
            400, "Task.Dag.Operator.RollbackNotAllowed",
            "Failed to set DAG rollback: node Restart obshell cannot rollback")  # the first
        assert error(operate(a, dag_id, "PASS")) == (
            400, "Task.Dag.Operator.PassNotAllowed",
            "Failed to pass DAG: node Execute upgrade checker script cannot pass")
        assert error(operate(a, dag_id, "CANCEL")) == (
            400, "Task.Dag.Operator.CancelFinishedDag", "Failed to cancel DAG: DAG is finished")
        assert operate(a, dag_id, "RETRY").status_code == 200
        assert run_dag(a, dag_id)["state"] == "FAILED"
        assert operate(a, dag_id, "RETRY").status_code == 200
        assert run_dag(a, dag_id)["state"] == "SUCCEED"


def test_early_failure_can_be_rolled_back() -> None:
    with FakeAgent(password=PWD, ob_version=OB_NOW, fail_stage=2) as a:
        dag_id = call(a, "POST", "/api/v1/ob/upgrade", ROLLING).json()["data"]["id"]
        assert run_dag(a, dag_id)["state"] == "FAILED"
        assert operate(a, dag_id, "ROLLBACK").status_code == 200
        final = run_dag(a, dag_id)
        assert (final["state"], final["operator"]) == ("SUCCEED", "ROLLBACK")


def test_restart_at_the_obshell_restart_node() -> None:
    with FakeAgent(password=PWD, ob_version=OB_NOW, restart_at_stage=8, restart_seconds=0.3,
                   restart_new_key_bits=1024) as a:
        old_key = a.public_key_b64
        dag_id = a.create_ob_upgrade_dag("4.3.5.1", "2.el7")
        assert a.dag(dag_id).nodes[7].name == "Restart obshell"
        a.advance_dag(dag_id, 8)
        deadline = time.monotonic() + 10
        while a.public_key_b64 == old_key and time.monotonic() < deadline:
            time.sleep(0.01)
        assert a.wait_listening(10)
        assert a.public_key_b64 != old_key and a.version == "4.3.0.0"
        a.finish_dag(dag_id)
        assert a.sync_version() == "4.3.0.0" and a.ob_version == "4.3.5.1-2"


# -- params and environment (§7) ---------------------------------------------------------------
def test_params_backup_restore_and_env_check() -> None:
    with FakeAgent(password=PWD, zones=2) as a:
        rows = call(a, "POST", "/api/v1/upgrade/params/backup").json()["data"]["contents"]
        assert [(r["Name"], r["Zone"], r["SvrPort"]) for r in rows] == [
            ("server_permanent_offline_time", "zone1", 2882),
            ("server_permanent_offline_time", "zone2", 2892),
            ("enable_rebalance", "zone1", 2882), ("enable_rebalance", "zone2", 2892),
            ("enable_rereplication", "zone1", 2882), ("enable_rereplication", "zone2", 2892)]
        assert list(rows[0]) == ["SvrIp", "SvrPort", "Zone", "Scope", "Name", "Value",
                                 "TenantId", "EditLevel", "DefaultValue", "Section", "Info",
                                 "DataType"]
        restore = call(a, "POST", "/api/v1/upgrade/params/restore", {"params": rows})
        assert restore.status_code == 200 and "data" not in restore.json()
        env = call(a, "POST", "/api/v1/upgrade/env/check")
        assert env.status_code == 200 and "data" not in env.json()
        a.python_ok = False
        assert error(call(a, "POST", "/api/v1/upgrade/env/check")) == (
            500, "Environment.WithoutModule",
            "Please check if Python module 'mysql.connector' is installed")
        unsigned = requests.post(a.base_url + "/api/v1/upgrade/env/check", timeout=5)
        assert error(unsigned)[:2] == (400, "Request.Header.NotFound")
        ob_unsigned = requests.post(a.base_url + "/api/v1/ob/upgrade", timeout=5)
        assert error(ob_unsigned)[:2] == (400, "Request.Header.NotFound")


def test_time_driven_ob_check_dag() -> None:
    with FakeAgent(password=PWD, ob_version=OB_NOW, stage_seconds=0.02) as a:
        dag_id = call(a, "POST", "/api/v1/ob/upgrade/check", TARGET).json()["data"]["id"]
        deadline = time.monotonic() + 10
        while a.dag(dag_id).finished_at is None and time.monotonic() < deadline:
            time.sleep(0.01)
        final = poll(a, dag_id)
        assert (final["state"], final["stage"], final["max_stage"]) == ("SUCCEED", 6, 6)
