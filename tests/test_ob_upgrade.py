"""The OceanBase upgrade family through the client, against the fake agent."""

from __future__ import annotations

import logging

import pytest
from conftest import PASSWORD

from obshell_sdk import (
    ApiError,
    AuthError,
    BadRequestError,
    DagOutcome,
    InvalidArgumentError,
    ObshellClient,
    PackageChangedError,
    PackageDamagedError,
    PackageMissingError,
    PasswordAuth,
    PollPolicy,
    Rollout,
    TaskFailedError,
    UnderMaintenanceError,
)
from obshell_sdk.testing import FakeAgent, build_rpm

OB_VERSION, OB_RELEASE = "4.3.5.1", "101000012025052815.el7"
AGENT_VERSION, AGENT_RELEASE = "4.3.1.0", "101000012025010101.el7"
CURRENT = "4.3.5.0-100000202024123117"
FAST = PollPolicy(initial=0.02, fraction=0.05, ceiling=0.1, jitter=0)


def client_for(agent):
    return ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD), poll_policy=FAST)


def ob_agent(**kw):
    kw.setdefault("ob_version", CURRENT)
    return FakeAgent(password=PASSWORD, stages_per_poll=5, **kw)


def rpms(tmp_path, *names, version=OB_VERSION, release=OB_RELEASE):
    paths = []
    for name in names:
        path = tmp_path / f"{name}-{version}-{release}.x86_64.rpm"
        path.write_bytes(build_rpm(name, version, release))
        paths.append(path)
    return paths


def test_rolling_and_stop_service_upgrades_run_to_their_end():
    with ob_agent() as agent, client_for(agent) as client:
        task = client.upgrade_ob(OB_VERSION, OB_RELEASE)
        assert task.name == f"OB rolling upgrade {OB_VERSION}-{OB_RELEASE}"
        detail = task.result(timeout=30)
        assert detail.outcome is DagOutcome.SUCCEEDED and detail.max_stage == 30
        sent = agent.requests_to("/api/v1/ob/upgrade", "POST")[0].body_json
        assert sent == {"version": OB_VERSION, "release": OB_RELEASE, "mode": "ROLLING",
                        "freeze_server": False}
    with ob_agent() as agent, client_for(agent) as client:
        task = client.upgrade_ob(OB_VERSION, OB_RELEASE, mode="stopservice", freeze_server=True)
        assert task.name == f"OB stop service upgrade {OB_VERSION}-{OB_RELEASE}"
        assert task.result(timeout=30).max_stage == 19


def test_bad_upgrade_input_is_refused_before_anything_is_sent():
    with ob_agent() as agent, client_for(agent) as client:
        for kwargs, argument in (({"mode": "FAST"}, "mode"), ({"freeze_server": "yes"},
                                 "freeze_server"), ({"upgrade_dir": "relative"}, "upgrade_dir")):
            with pytest.raises(InvalidArgumentError, match=argument):
                client.upgrade_ob(OB_VERSION, OB_RELEASE, **kwargs)
        with pytest.raises(InvalidArgumentError, match="release"):
            client.check_ob_upgrade(OB_VERSION, "nodot")
        assert agent.requests == []


def test_pre_check_is_six_stages_and_takes_no_lock():
    with ob_agent() as agent, client_for(agent) as client:
        upgrade = client.upgrade_ob(OB_VERSION, OB_RELEASE)
        check = client.check_ob_upgrade(OB_VERSION, OB_RELEASE)
        assert check.name == f"Upgrade check OB {OB_VERSION}-{OB_RELEASE}"
        assert check.result(timeout=30).max_stage == 6
        upgrade.result(timeout=30)


def test_a_lost_ob_upgrade_reply_is_found_not_resent():
    with ob_agent() as agent, client_for(agent) as client:
        agent.drop_reply_after_create = True
        task = client.upgrade_ob(OB_VERSION, OB_RELEASE)
        assert len(agent.requests_to("/api/v1/ob/upgrade", "POST")) == 1
        assert task.result(timeout=30).outcome is DagOutcome.SUCCEEDED


@pytest.mark.parametrize("new_upload", [True, False])
def test_upload_uses_the_new_endpoint_where_the_agent_has_it(tmp_path, new_upload):
    (path,) = rpms(tmp_path, "oceanbase-ce")
    with ob_agent(new_upload=new_upload) as agent, client_for(agent) as client:
        info = client.upload_package(path)
        assert (info.name, info.version, info.release_distribution) == (
            "oceanbase-ce", OB_VERSION, OB_RELEASE)
        new = agent.requests_to("/api/v1/package", "POST")
        old = agent.requests_to("/api/v1/upgrade/package", "POST")
        if new_upload:
            assert len(new) == 2 and not old  # the empty probe, then the upload
            assert "X-OCS-File-SHA256" in new[1].headers and new[1].status == 200
        else:
            assert len(new) == 1 and len(old) == 1 and old[0].status == 200
        client.upload_package(path)  # the route is asked about once per client
        assert len(agent.requests_to("/api/v1/package", "POST")) == (3 if new_upload else 1)
        (row,) = client.packages()  # two uploads of one package: the newest shows
        assert row.name == "oceanbase-ce" and row.pkg_id > 0
        client.delete_package(row.pkg_id)
        (older,) = client.packages()  # the older upload shows again, as in obshell
        assert older.pkg_id < row.pkg_id
        client.delete_package(older.pkg_id)
        assert client.packages() == []
        client.delete_package(99)  # obshell answers success for an id it does not have
        for bad in (0, -1, "1", True, 2**70):
            with pytest.raises(InvalidArgumentError, match="package_id"):
                client.delete_package(bad)


def test_run_ob_upgrade_uploads_checks_upgrades_and_confirms(tmp_path):
    packages = rpms(tmp_path, "oceanbase-ce", "oceanbase-ce-libs")
    with ob_agent(require_packages=True) as agent, client_for(agent) as client:
        with pytest.raises(ApiError):  # nothing uploaded yet: obshell refuses the upgrade
            client.upgrade_ob(OB_VERSION, OB_RELEASE)
        result = client.run_ob_upgrade(OB_VERSION, OB_RELEASE, packages=packages, timeout=60)
        assert [p.name for p in result.packages] == ["oceanbase-ce", "oceanbase-ce-libs"]
        assert result.check is not None and result.check.outcome is DagOutcome.SUCCEEDED
        assert result.upgrade.outcome is DagOutcome.SUCCEEDED
        assert result.info.ob_version.startswith(OB_VERSION)


def test_on_upload_is_told_of_each_upload_and_the_client_s_call_stays_silent(tmp_path,
                                                                            capfd):
    """The client's ``on_upload`` (as the CLI's upload lines use it): each package just before
    it is sent and once stored, not after a failed upload; a caller that does not give one
    sees and gets what it did before."""
    packages = rpms(tmp_path, "oceanbase-ce", "oceanbase-ce-libs")
    told = []
    with ob_agent() as agent, client_for(agent) as client:
        def on_upload(path, stored):
            told.append((path, stored, len(agent.inventory)))  # how many stored by then

        with pytest.raises(InvalidArgumentError, match="on_upload"):  # before any request
            client.run_ob_upgrade(OB_VERSION, OB_RELEASE, packages=packages, on_upload=1)
        assert agent.requests == []
        result = client.run_ob_upgrade(OB_VERSION, OB_RELEASE, packages=packages,
                                       timeout=60, on_upload=on_upload)
    ce, libs = (str(p) for p in packages)
    assert told == [(ce, None, 0), (ce, result.packages[0], 1),
                    (libs, None, 1), (libs, result.packages[1], 2)]
    told.clear()
    with ob_agent() as agent, client_for(agent) as client:
        client.upload_package(packages[0])  # the route is known: the next failure is libs'
        agent.fail_next(1, status=500, err_code="Common.Unexpected",
                        path_prefix="/api/v1/package")
        with pytest.raises(ApiError):
            client.run_ob_upgrade(OB_VERSION, OB_RELEASE, packages=packages[1:],
                                  on_upload=on_upload)
    assert told == [(libs, None, 1)]
    capfd.readouterr()
    with ob_agent() as agent, client_for(agent) as client:
        result = client.run_ob_upgrade(OB_VERSION, OB_RELEASE, packages=packages, timeout=60)
    assert len(result.packages) == 2 and capfd.readouterr() == ("", "")


def test_a_package_given_twice_is_refused_before_anything_is_sent(tmp_path):
    (path,) = rpms(tmp_path, "oceanbase-ce")
    copy = tmp_path / "copy.rpm"
    copy.write_bytes(path.read_bytes())
    with ob_agent() as agent, client_for(agent) as client:
        with pytest.raises(InvalidArgumentError, match=r"copy\.rpm' is oceanbase-ce-4\.3\.5\.1-"
                           r".* again \(first .*give each package once"):
            client.run_ob_upgrade(OB_VERSION, OB_RELEASE, packages=[path, copy])
        assert agent.requests == []


@pytest.mark.parametrize(("make", "said"), [
    (lambda t: rpms(t, "obshell", version="4.3.1.0"),
     r"is obshell 4\.3\.1\.0-.*not an OceanBase package: an OceanBase upgrade takes "
     r"oceanbase-ce, oceanbase-ce-libs"),
    (lambda t: [*rpms(t, "oceanbase-ce"), *rpms(t, "oceanbase-ce-libs", version="4.3.6.0")],
     r"oceanbase-ce-libs 4\.3\.6\.0-.*newer than the target 4\.3\.5\.1-"),
    # the target's version and build for another distribution: obshell took it, then refused
    # the pre-check for a package "not found", which the CLI says to give with --package
    (lambda t: rpms(t, "oceanbase-ce", "oceanbase-ce-libs", release="101000012025052815.el8"),
     r"oceanbase-ce 4\.3\.5\.1-101000012025052815\.el8, not of the target's release "
     r"101000012025052815\.el7"),
])
def test_packages_that_cannot_serve_the_target_are_refused_before_any_upload(
        tmp_path, make, said):
    """RPMs are large: a wrong one (another version, obshell's) was uploaded to every
    cluster before obshell refused, and its refusal said to upload the packages."""
    packages = make(tmp_path)
    with ob_agent(require_packages=True) as agent, client_for(agent) as client:
        with pytest.raises(InvalidArgumentError, match=said + r".*nothing was uploaded"):
            client.run_ob_upgrade(OB_VERSION, OB_RELEASE, packages=packages, timeout=60)
        rollout = Rollout([f"{agent.host}:{agent.port}"], auth=PasswordAuth(PASSWORD),
                          journal=tmp_path / "j.db")
        with pytest.raises(InvalidArgumentError, match=said):
            rollout.upgrade_ob(OB_VERSION, OB_RELEASE, packages=packages)
        assert agent.requests == []
    # the packages of a route's earlier steps, beside the target's, are for obshell to judge,
    # and so are they alone: the cluster may hold the target's from an earlier upload
    older = rpms(tmp_path, "oceanbase-ce", "oceanbase-ce-libs", version="4.3.5.0")
    with ob_agent(require_packages=True) as agent, client_for(agent) as client:
        for path in rpms(tmp_path, "oceanbase-ce", "oceanbase-ce-libs"):
            client.upload_package(path)
        result = client.run_ob_upgrade(OB_VERSION, OB_RELEASE, packages=older, timeout=60)
        assert result.upgrade.outcome is DagOutcome.SUCCEEDED and len(result.packages) == 2


def test_a_single_agent_is_refused_before_any_upload_as_obshell_would_after_them(tmp_path):
    """obshell takes packages and upgrades on a CLUSTER AGENT only: a SINGLE one refused the
    upload once it was sent. /info, read anyway for the version, says it first."""
    packages = rpms(tmp_path, "oceanbase-ce", "oceanbase-ce-libs")
    agent_rpm = tmp_path / f"obshell-{AGENT_VERSION}-{AGENT_RELEASE}.x86_64.rpm"
    agent_rpm.write_bytes(build_rpm("obshell", AGENT_VERSION, AGENT_RELEASE))
    with ob_agent(identity="SINGLE") as agent, client_for(agent) as client:
        with pytest.raises(BadRequestError) as ob:
            client.run_ob_upgrade(OB_VERSION, OB_RELEASE, packages=packages, timeout=60)
        with pytest.raises(BadRequestError) as obshell:
            client.run_agent_upgrade(AGENT_VERSION, AGENT_RELEASE, package=agent_rpm, timeout=60)
        for refused in (ob.value, obshell.value):
            assert (refused.status, refused.trace_id) == (0, "")  # the SDK's own finding
            assert refused.err_code == "Agent.Identify.NotSupportOperation"
            assert str(refused).startswith("the upgrade was not started and nothing was "
                                           f"uploaded: {agent.host}:{agent.port} is a SINGLE "
                                           "agent (it belongs to no cluster)")
            assert str(refused).endswith(refused.hint) and "CLUSTER AGENT" in refused.hint
        assert {r.path for r in agent.requests} == {"/api/v1/info"}


def test_a_cluster_past_the_target_is_refused_before_any_upload(tmp_path):
    packages = rpms(tmp_path, "oceanbase-ce", "oceanbase-ce-libs")
    with ob_agent(ob_version="4.3.5.2-100000012025090101") as agent, \
            client_for(agent) as client:
        with pytest.raises(InvalidArgumentError, match=r"runs OceanBase 4\.3\.5\.2, newer "
                           r"than 4\.3\.5\.1.*ToLowerVersion.*nothing was uploaded"):
            client.run_ob_upgrade(OB_VERSION, OB_RELEASE, packages=packages, timeout=60)
        assert not agent.requests_to("/api/v1/package") and not agent.inventory
        assert not agent.requests_to("/api/v1/ob/upgrade")
    # /info shows no build: at the same version, a newer build is an upgrade and goes on
    with ob_agent(ob_version=f"{OB_VERSION}-100000012025010101") as agent, \
            client_for(agent) as client:
        result = client.run_ob_upgrade(OB_VERSION, OB_RELEASE, packages=packages, timeout=60)
        assert result.upgrade.outcome is DagOutcome.SUCCEEDED


def test_a_package_not_uploaded_is_a_package_missing_error_that_says_what_to_do(tmp_path):
    """obshell answers the target package with a 500 Common.Unexpected (gorm's "record not
    found") and the libraries with a 400 OB.Package.NotExist: one class for both, no task."""
    (ce,) = rpms(tmp_path, "oceanbase-ce")
    with ob_agent(require_packages=True) as agent, client_for(agent) as client:
        for call in (client.upgrade_ob, client.check_ob_upgrade):
            with pytest.raises(PackageMissingError) as info:
                call(OB_VERSION, OB_RELEASE)
            assert (info.value.status, info.value.err_code) == (500, "Common.Unexpected")
            assert "oceanbase-ce-4.3.5.1-101000012025052815.el7.x86_64.rpm: record not found" \
                in str(info.value)
            assert "client.upload_package(path)" in str(info.value)
        client.upload_package(ce)
        with pytest.raises(PackageMissingError) as info:
            client.upgrade_ob(OB_VERSION, OB_RELEASE)
        assert (info.value.status, info.value.err_code) == (400, "OB.Package.NotExist")
        assert "oceanbase-ce-libs" in str(info.value) and "then call again" in str(info.value)
        assert agent.dags == {}


def test_a_failed_upgrade_holding_the_lock_is_refused_before_any_upload(tmp_path):
    """A FAILED upgrade keeps the cluster's lock until an operator frees it: obshell refused the
    upgrade only after the uploads and the pre-check. A running one may end meanwhile: the
    workflow goes on, and obshell decides."""
    from obshell_sdk._workflow import log_in, run_ob_upgrade

    packages = rpms(tmp_path, "oceanbase-ce", "oceanbase-ce-libs")
    with ob_agent() as agent, client_for(agent) as client:
        held = client.upgrade_ob(OB_VERSION, OB_RELEASE)
        agent.set_dag_progression(dag_id=held.id, stages_per_poll=0)  # it runs on
        with pytest.raises(UnderMaintenanceError) as info:  # obshell's own refusal
            run_ob_upgrade(client, OB_VERSION, OB_RELEASE, packages=packages, timeout=60)
        assert info.value.status == 500 and len(agent.inventory) == 2
        assert agent.requests_to("/api/v1/ob/upgrade/check", "POST")
        agent.fail_dag(held.id)
        agent.clear_requests()
        with pytest.raises(UnderMaintenanceError) as info:
            run_ob_upgrade(client, OB_VERSION, OB_RELEASE, packages=packages, timeout=60)
        assert [r.path for r in agent.requests if r.method != "GET"] == []
        log_in(client)  # a plain upload's (package upload, a rollout's) is not refused
    exc = info.value
    assert (exc.err_code, exc.status, exc.agent) == ("OB.Cluster.UnderMaintenanceWithDag", 0,
                                                     client.agent)
    assert str(exc).startswith(
        f"the upgrade was not started and nothing was uploaded: task {held.id} 'OB rolling "
        f"upgrade {OB_VERSION}-{OB_RELEASE}' failed and holds the cluster's maintenance lock")
    assert str(exc).endswith(". " + UnderMaintenanceError.hint)


@pytest.mark.parametrize("mode", ["ROLLING", "STOPSERVICE"])
def test_a_failed_upgrade_on_an_agent_before_4_3_0_is_refused_before_any_upload(tmp_path, mode):
    """An agent before 4.3.0 sends no ``maintenance_type``: its failed OceanBase upgrade is
    known by its name (either mode's), and nothing is sent."""
    from obshell_sdk._workflow import run_ob_upgrade

    packages = rpms(tmp_path, "oceanbase-ce", "oceanbase-ce-libs")
    with ob_agent(version="4.2.3.0", supported_auth=None, new_upload=False) as agent, \
            client_for(agent) as client:
        held = client.upgrade_ob(OB_VERSION, OB_RELEASE, mode=mode)
        agent.set_dag_progression(dag_id=held.id, stages_per_poll=0)
        agent.fail_dag(held.id)
        assert client.get_dag(held.id).maintenance_type is None
        agent.clear_requests()
        with pytest.raises(UnderMaintenanceError) as info:
            run_ob_upgrade(client, OB_VERSION, OB_RELEASE, packages=packages, mode=mode,
                           timeout=60)
        assert [r.path for r in agent.requests if r.method != "GET"] == []
        assert agent.inventory == [] and list(agent.dags) == [held.id]
    assert (info.value.err_code, info.value.status) == ("OB.Cluster.UnderMaintenanceWithDag", 0)
    assert f"task {held.id} {held.name!r} failed and holds" in str(info.value)


def test_agent_upgrade_fails_at_download_until_the_package_is_uploaded(tmp_path):
    (path,) = rpms(tmp_path, "obshell", version=AGENT_VERSION, release=AGENT_RELEASE)
    with FakeAgent(password=PASSWORD, stages_per_poll=3, require_packages=True) as agent, \
            client_for(agent) as client:
        task = client.upgrade_agent(AGENT_VERSION, AGENT_RELEASE)
        with pytest.raises(TaskFailedError) as info:
            task.result(timeout=30)
        assert "Download all required packages" in str(info.value)
        assert "record not found" in str(info.value)
        assert ("The agent has no package of this version: upload it "
                "(client.upload_package(path)), then retry the task.") in str(info.value)
        client.upload_package(path)
        assert task.retry().result(timeout=30).outcome is DagOutcome.SUCCEEDED


def test_params_and_environment(caplog):
    with ob_agent() as agent, client_for(agent) as client:
        params = client.backup_params()
        assert {p.name for p in params} >= {"server_permanent_offline_time"}
        assert all(p.svr_port > 0 and p.zone for p in params)
        caplog.set_level(logging.WARNING, logger="obshell_sdk")
        client.restore_params()
        assert "restores nothing" in caplog.text
        client.check_environment()
    with ob_agent(python_ok=False) as agent, client_for(agent) as client:
        with pytest.raises(ApiError) as info:
            client.check_environment()
        assert info.value.err_code.startswith("Environment.")


def _flip_a_payload_byte(path):
    """Damage an RPM as a disk may: one byte of its payload flipped (its MD5 no longer fits)."""
    data = bytearray(path.read_bytes())
    data[-50] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("new_upload", [True, False], ids=["new", "old"])
def test_a_damaged_package_among_several_stops_them_all_before_any_is_sent(
        tmp_path, capsys, new_upload):
    """Every package is checked before the first is sent: one refused (here the second),
    nothing reaches the agent's upload, and no file is said as uploading."""
    packages = rpms(tmp_path, "oceanbase-ce", "oceanbase-ce-libs")
    _flip_a_payload_byte(packages[1])
    told = []
    with ob_agent(new_upload=new_upload) as agent, client_for(agent) as client:
        with pytest.raises(InvalidArgumentError, match="fails the check obshell makes") as info:
            client.run_ob_upgrade(OB_VERSION, OB_RELEASE, packages=packages, progress=True,
                                  on_upload=lambda *now: told.append(now))
        assert not agent.requests_to("/api/v1/package", "POST")  # not even the route's probe
        assert not agent.requests_to("/api/v1/upgrade/package", "POST")
        assert agent.inventory == [] and agent.dags == {}
    assert info.value.argument == "path" and str(packages[1]) in str(info.value)
    assert told == [] and "uploading" not in capsys.readouterr().err


def test_each_package_is_read_once_for_its_check_all_before_the_first_upload(
        tmp_path, monkeypatch):
    """The check's read gives the SHA-256 the upload sends (no read of its own), for one
    package as for several; with several, every check comes before the first upload."""
    from obshell_sdk import _rpm, _upload

    packages = rpms(tmp_path, "oceanbase-ce", "oceanbase-ce-libs")
    checked, hashed = [], []
    real = _rpm._digest
    monkeypatch.setattr(_upload, "_sha256", lambda path: hashed.append(path))
    with ob_agent() as agent, client_for(agent) as client:
        def counted(path, start, feed):
            checked.append((path, len(agent.inventory)))  # how many stored by then
            return real(path, start, feed)

        monkeypatch.setattr(_rpm, "_digest", counted)
        client.run_ob_upgrade(OB_VERSION, OB_RELEASE, packages=packages, timeout=60)
        assert checked == [(str(packages[0]), 0), (str(packages[1]), 0)]
        checked.clear()
        client.upload_package(packages[0])  # one file alone: read once for its check too
        assert checked == [(str(packages[0]), 2)]
    (agent_rpm,) = rpms(tmp_path, "obshell", version=AGENT_VERSION, release=AGENT_RELEASE)
    checked.clear()
    with FakeAgent(password=PASSWORD, stages_per_poll=10) as agent, client_for(agent) as client:
        client.run_agent_upgrade(AGENT_VERSION, AGENT_RELEASE, package=agent_rpm, timeout=60)
        assert checked == [(str(agent_rpm), 0)]
    assert hashed == []


@pytest.mark.parametrize("new_upload", [True, False], ids=["new", "old"])
def test_a_package_changed_after_the_check_is_refused_by_the_agent(tmp_path, new_upload):
    """Checked first, sent later: a file changed in between (here while the first one went)
    is sent with what its check read, and the agent refuses it (the newer upload's SHA-256;
    an older agent's own MD5 check), storing nothing of it: PackageChangedError on the newer
    route, PackageDamagedError on the older one, neither an AuthError (no password was
    refused; the newer route's refusal is a 401)."""
    packages = rpms(tmp_path, "oceanbase-ce", "oceanbase-ce-libs")

    def on_upload(path, stored):
        if stored is not None and path == str(packages[0]):
            _flip_a_payload_byte(packages[1])

    with ob_agent(new_upload=new_upload) as agent, client_for(agent) as client:
        with pytest.raises(PackageDamagedError) as info:
            client.run_ob_upgrade(OB_VERSION, OB_RELEASE, packages=packages, timeout=60,
                                  on_upload=on_upload)
        assert [row["name"] for row in agent.inventory] == ["oceanbase-ce"]
        assert agent.dags == {}
    said = "File SHA256 mismatch" if new_upload else "MD5 checksum validation failed"
    assert said in str(info.value), str(info.value)
    assert type(info.value) is (PackageChangedError if new_upload else PackageDamagedError)
    assert not isinstance(info.value, AuthError), repr(info.value)
