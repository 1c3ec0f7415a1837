"""Rollouts over many fake agents: outcomes, the journal, resuming, and a runner killed mid-way."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import PASSWORD

import obshell_sdk
from obshell_sdk import (
    InvalidArgumentError,
    ObshellClient,
    PasswordAuth,
    PollPolicy,
    Rollout,
    RolloutStoppedError,
    TargetOutcome,
)
from obshell_sdk.testing import FakeAgent

VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"
ROOT = Path(obshell_sdk.__file__).resolve().parents[1]  # the obshell_sdk under test
FAST = PollPolicy(initial=0.05, fraction=0.1, ceiling=0.2, jitter=0)


def agents(stack, n, special=None):
    """n fake agents; ``special`` maps an index to extra FakeAgent options."""
    special = special or {}
    return [stack.enter_context(FakeAgent(password=PASSWORD, stage_seconds=0.03,
                                          **special.get(i, {}))) for i in range(n)]


def targets(fleet):
    return [f"127.0.0.1:{a.port}" for a in fleet]


def posts(agent, path="/api/v1/agent/upgrade"):
    return len(agent.requests_to(path, "POST"))


def outcomes(report):
    """Each target's outcome in a report, in order, as text."""
    return [r.outcome.value for r in report.results.values()]


def rollout(fleet, journal, **kw):
    kw.setdefault("parallel", 4)
    kw.setdefault("auth", PasswordAuth(PASSWORD))
    return Rollout(targets(fleet), journal=journal, poll_policy=FAST, progress=False, **kw)


def test_outcomes_per_target_and_a_rerun_touches_nothing(tmp_path):
    with ExitStack() as stack:
        fleet = agents(stack, 6, {1: {"fail_stage": 4, "fail_times": 99},
                                  3: {"restart_at_stage": 7, "restart_seconds": 0.3,
                                      "restart_new_key_bits": 1024}})
        fleet[4].drop_reply_after_create = True  # its pre-check's reply is lost
        journal = tmp_path / "r.db"
        report = rollout(fleet, journal, max_failures=6).upgrade_agent(VERSION, RELEASE)
        outcomes = {t: r.outcome for t, r in report.results.items()}
        assert outcomes[targets(fleet)[1]] is TargetOutcome.FAILED
        assert [o for t, o in outcomes.items() if t != targets(fleet)[1]] == [
            TargetOutcome.SUCCEEDED] * 5
        assert not report.ok and report.count("failed") == 1
        assert len(report.results[targets(fleet)[0]].dag_ids) == 2  # check, then upgrade
        error = report.results[targets(fleet)[1]].error or ""
        assert "failed at stage 4/5" in error and "injected failure at stage 4" in error
        dag_id = report.results[targets(fleet)[1]].dag_ids[0]
        host, port = fleet[1].host, fleet[1].port  # a rollout's user has no client at hand
        assert error.endswith(f"see it with ObshellClient('{host}', {port}, auth=...).task("
                              f"'{dag_id}').refresh(), then retry "
                              "it (or roll back or skip it where its nodes allow) and "
                              "run the rollout again")
        assert "\n" not in error  # one line of the report's table
        assert [posts(a) for a in fleet] == [1, 0, 1, 1, 1, 1]  # #1 failed its pre-check
        again = rollout(fleet, journal).upgrade_agent(VERSION, RELEASE)
        assert {t: r.outcome for t, r in again.results.items()} == outcomes
        assert [posts(a) for a in fleet] == [1, 0, 1, 1, 1, 1]  # nothing sent twice


def test_an_unreachable_target_sent_nothing_and_a_rerun_sends_it(tmp_path):
    """A refused connection is not an unknown outcome: nothing was sent, and the rerun
    sends the step (it once marked the target unknown and the rerun looked the task up)."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on (for now)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with ExitStack() as stack:
        [live] = agents(stack, 1)
        journal = tmp_path / "r.db"
        fleet = [f"127.0.0.1:{live.port}", f"127.0.0.1:{port}"]
        first = Rollout(fleet, auth=PasswordAuth(PASSWORD), journal=journal, poll_policy=FAST,
                        progress=False, max_failures=2).upgrade_agent(VERSION, RELEASE)
        dead = first.results[fleet[1]]
        assert dead.outcome is TargetOutcome.UNREACHABLE, dead
        assert "ConnectError" in (dead.error or "") and not first.ok
        assert first.results[fleet[0]].outcome is TargetOutcome.SUCCEEDED
        steps = sqlite3.connect(journal).execute(
            "SELECT status FROM steps WHERE target = ?", (fleet[1],)).fetchall()
        assert steps == []  # its first request (/info: already upgraded?) never left
        late = stack.enter_context(FakeAgent(password=PASSWORD, stage_seconds=0.03, port=port))
        again = Rollout(fleet, auth=PasswordAuth(PASSWORD), journal=journal, poll_policy=FAST,
                        progress=False).upgrade_agent(VERSION, RELEASE)
        assert again.ok, again
        assert posts(late, "/api/v1/agent/upgrade/check") == 1 and posts(late) == 1
        assert posts(live) == 1  # the live one was left alone


def test_a_create_whose_auth_request_lost_its_reply_is_sent_by_the_rerun(tmp_path):
    """/secret's connection is reset (twice: the task listing, then the pre-check's POST
    flow): the POST never went out, so the step is journaled unsent and the rerun sends it
    (a "sending" step would be looked up for ever, finding nothing). The lost reply is a
    GET's, which changed nothing: the target is unreachable, not unknown."""
    with ExitStack() as stack:
        [agent] = agents(stack, 1)
        agent.reset_next(2, path_prefix="/api/v1/secret")
        journal = tmp_path / "r.db"
        first = rollout([agent], journal).upgrade_agent(VERSION, RELEASE)
        assert first.results[targets([agent])[0]].outcome is TargetOutcome.UNREACHABLE
        steps = sqlite3.connect(journal).execute("SELECT status FROM steps").fetchall()
        assert steps == [("unsent",)]
        assert posts(agent, "/api/v1/agent/upgrade/check") == 0
        assert rollout([agent], journal).upgrade_agent(VERSION, RELEASE).ok
        assert posts(agent, "/api/v1/agent/upgrade/check") == 1 and posts(agent) == 1


def test_a_package_that_is_not_the_target_fails_before_any_task(tmp_path):
    from obshell_sdk.testing import build_rpm

    path = tmp_path / "obshell-4.3.1.0-101000012025010101.el7.x86_64.rpm"
    path.write_bytes(build_rpm("obshell", "4.3.1.0", "101000012025010101.el7"))
    with ExitStack() as stack:
        [agent] = agents(stack, 1)
        with pytest.raises(InvalidArgumentError, match=r"not obshell 4\.3\.1\.1"):
            rollout([agent], tmp_path / "r.db").upgrade_agent(
                "4.3.1.1", RELEASE, package=str(path))
        assert agent.requests == [] and not (tmp_path / "r.db").exists()  # read here first


def test_a_damaged_package_stops_the_rollout_before_any_target_is_touched(tmp_path,
                                                                           monkeypatch):
    """The same local files go to every target: a damaged one is refused once, before the
    journal or any agent (it was refused on each target in turn, up to ``max_failures``). A
    sound package is read once for its check, however many targets it goes to."""
    from obshell_sdk import _rpm, _upload
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    sound = rpm.read_bytes()
    rpm.write_bytes(sound[:-100])  # a download cut short
    ce, libs = ob_packages(tmp_path)[:2]
    libs.write_bytes(libs.read_bytes()[:-100])
    with ExitStack() as stack:
        fleet = agents(stack, 3)
        for journal, run in (
                ("a.db", lambda r: r.upgrade_agent(VERSION, RELEASE, package=str(rpm))),
                ("ob.db", lambda r: r.upgrade_ob(*OB_TARGET, packages=[ce, libs]))):
            with pytest.raises(InvalidArgumentError, match="fails the check obshell makes") \
                    as info:
                run(rollout(fleet, tmp_path / journal, max_failures=3))
            assert info.value.argument == "path", str(info.value)
            assert all(a.requests == [] for a in fleet) and not (tmp_path / journal).exists()
        checked = []
        real = _rpm._digest
        monkeypatch.setattr(_rpm, "_digest", lambda path, *rest: (
            checked.append(path), real(path, *rest))[1])
        monkeypatch.setattr(_upload, "_sha256", lambda path: checked.append(("sha", path)))
        rpm.write_bytes(sound)
        report = rollout(fleet, tmp_path / "b.db").upgrade_agent(VERSION, RELEASE,
                                                                  package=str(rpm))
        assert report.ok, str(report)
        assert [uploads(a) for a in fleet] == [1, 1, 1] and checked == [str(rpm)]


def test_the_packages_are_read_only_after_the_runner_lock_and_only_when_an_upload_is_left(
        tmp_path, monkeypatch):
    """A second runner on a journal in use is refused, and a rerun whose targets are all done
    does nothing, without reading the packages (gigabytes, for OceanBase) for their check."""
    from obshell_sdk import _rpm, _upload
    from obshell_sdk._runner_lock import RunnerLock
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    checked = []
    real = _rpm._digest
    monkeypatch.setattr(_rpm, "_digest", lambda path, *rest: (
        checked.append(path), real(path, *rest))[1])
    monkeypatch.setattr(_upload, "_sha256", lambda path: checked.append(("sha", path)))
    with ExitStack() as stack:
        fleet = agents(stack, 2)
        journal = tmp_path / "a.db"
        first = RunnerLock(str(journal))  # another runner holds the journal
        try:
            with pytest.raises(InvalidArgumentError, match="in use by another runner"):
                rollout(fleet, journal).upgrade_agent(VERSION, RELEASE, package=str(rpm))
        finally:
            first.release()
        assert checked == [] and all(a.requests == [] for a in fleet)
        report = rollout(fleet, journal).upgrade_agent(VERSION, RELEASE, package=str(rpm))
        assert report.ok and checked == [str(rpm)], str(report)
        checked.clear()
        report = rollout(fleet, journal).upgrade_agent(VERSION, RELEASE, package=str(rpm))
        assert report.ok and checked == [] and [uploads(a) for a in fleet] == [1, 1]


def test_rollout_ob_from_a_shell_refuses_a_damaged_package_before_any_cluster(tmp_path):
    """``rollout ob --package CE --package LIBS``, LIBS cut short: exit 2 naming it, nothing
    sent to any cluster, no journal (each cluster refused it in turn, exit 1)."""
    ce, libs = ob_packages(tmp_path)[:2]
    libs.write_bytes(libs.read_bytes()[:-100])
    with ExitStack() as stack:
        fleet = agents(stack, 2)
        (tmp_path / "targets").write_text("\n".join(targets(fleet)) + "\n")
        cmd, env = _cli("--json", "rollout", "ob", "--targets", str(tmp_path / "targets"),
                        "--journal", str(tmp_path / "ob.db"), "--max-failures", "2",
                        "--package", str(ce), "--package", str(libs), *OB_TARGET)
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL, check=False)
        assert all(a.requests == [] for a in fleet) and not (tmp_path / "ob.db").exists()
    assert out.returncode == 2, out.stderr
    assert f"--package: {str(libs)!r} fails the check obshell makes of an RPM" in out.stderr
    assert json.loads(out.stdout)["error"]["argument"] == "--package"


def test_an_uploaded_package_the_agent_reads_as_another_is_refused_and_a_rerun_goes_on(
        tmp_path, monkeypatch):
    """A header the SDK cannot read is left to the agent; when the agent reads it as another
    package, the target is refused (nothing started) and a rerun with the right one goes on."""
    from obshell_sdk import _targets
    from obshell_sdk.testing import build_rpm

    wrong, right = tmp_path / "wrong.rpm", tmp_path / "right.rpm"
    wrong.write_bytes(build_rpm("obshell", "4.3.0.9", RELEASE))
    right.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with ExitStack() as stack:
        [agent] = agents(stack, 1)
        journal = tmp_path / "r.db"
        with monkeypatch.context() as patch:
            patch.setattr(_targets, "rpm_header", lambda path: None)  # "unreadable"
            report = rollout([agent], journal).upgrade_agent(VERSION, RELEASE,
                                                             package=str(wrong))
        (result,) = report.results.values()
        assert result.outcome is TargetOutcome.REFUSED, str(report)
        assert "obshell 4.3.0.9" in (result.error or "") and agent.dags == {}
        report = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, package=str(right))
        assert report.ok, str(report)
        assert posts(agent) == 1
        assert "\n1 target: 1 succeeded (journal " in str(report)  # not "1 targets"


def test_a_package_the_agent_read_as_another_is_said_with_its_target_s_delete(
        tmp_path, monkeypatch):
    """The refused target's error says how to delete the stored package on that target's
    agent (its id there), or, the id unsaid, how to find it: never a ``delete_package(ID)``."""
    import attrs

    from obshell_sdk import _targets
    from obshell_sdk.testing import build_rpm

    wrong = tmp_path / "wrong.rpm"
    wrong.write_bytes(build_rpm("obshell", "4.3.0.9", RELEASE))
    monkeypatch.setattr(_targets, "rpm_header", lambda path: None)  # "unreadable"
    with ExitStack() as stack:
        [agent] = agents(stack, 1)
        at = f"ObshellClient('127.0.0.1', {agent.port}, auth=...)"
        report = rollout([agent], tmp_path / "r.db").upgrade_agent(VERSION, RELEASE,
                                                                   package=str(wrong))
        (result,) = report.results.values()
        assert (result.error or "").endswith(f"It stays stored until deleted: "
                                             f"{at}.delete_package(1) ({at}.packages() lists "
                                             "it)"), result.error
        assert "as package" not in (result.error or ""), result.error  # the id said once
        upload = ObshellClient._upload_checked
        monkeypatch.setattr(ObshellClient, "_upload_checked", lambda self, *a, **k: (
            attrs.evolve(upload(self, *a, **k), pkg_id=0)))  # an agent that did not say it
        report = rollout([agent], tmp_path / "r2.db").upgrade_agent(VERSION, RELEASE,
                                                                    package=str(wrong))
        (result,) = report.results.values()
        assert (result.error or "").endswith(f"It stays stored until deleted: {at}.packages() "
                                             f"lists it with its pkg_id, which "
                                             f"{at}.delete_package() takes"), result.error
        assert agent.dags == {}  # nothing started, on either run


@pytest.mark.parametrize("fault", ["lost", "gateway", "misfit"])
def test_an_upload_that_may_have_stored_its_package_names_the_target_s_client(
        tmp_path, fault):
    """A rollout's uploads go through its own client of each target, not one the caller
    holds: a lost upload reply (or a gateway's page in its place), or one whose data does
    not fit, says how to list that target's packages with its ``ObshellClient(...)``, never
    ``client.packages()``."""
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with ExitStack() as stack:
        [agent] = agents(stack, 1, {0: {"new_upload": fault != "gateway"}})
        at = f"ObshellClient('127.0.0.1', {agent.port}, auth=...)"
        if fault == "lost":
            agent.drop_reply_after_next(path_prefix="/api/v1/package", method="POST")
        elif fault == "gateway":  # the older route: its page is the upload's, not the probe's
            agent.fail_next(status=502, path_prefix="/api/v1/upgrade/package")
        else:
            agent.edit_data_next(edit=lambda data: {**data, "name": 5},
                                 path_prefix="/api/v1/package", method="POST")
        report = rollout([agent], tmp_path / "r.db").upgrade_agent(VERSION, RELEASE,
                                                                   package=str(rpm))
        assert agent.dags == {}
    (result,) = report.results.values()
    said = result.error or ""
    assert result.outcome is TargetOutcome.UNKNOWN and "client." not in said, said
    if fault == "misfit":
        assert said.endswith(f"The agent said it stored the package: {at}.packages() "
                             "lists it"), said
    else:
        assert f"may have stored the package, or may still be storing it: {at}.packages() " \
            "lists it once stored. Running the rollout again uploads it only if it is not " \
            "listed then: each upload stores another copy" in said, said
        assert "Upload it again" not in said, said  # what the rollout does, not by hand


def _sent_packages(agent):
    """Uploads that carried a package, on either route (not the newer one's empty probe)."""
    return uploads(agent) + len(agent.requests_to("/api/v1/upgrade/package", "POST"))


def _listings(agent):
    return len(agent.requests_to("/api/v1/upgrade/package/info", "GET"))


def _upload_events(journal):
    """What the journal's events say of the upload step, oldest first."""
    db = sqlite3.connect(journal)
    try:
        return [row[0] for row in db.execute(
            "SELECT what FROM events WHERE step = 'upload' ORDER BY seq")]
    finally:
        db.close()


@pytest.mark.parametrize("fault", ["stored", "gateway", "reset"])
def test_a_rerun_after_a_lost_upload_reply_uploads_only_what_the_package_list_lacks(
        tmp_path, fault):
    """The upload's reply was lost: the target is unknown. The rerun lists the target's
    packages first: one the agent stored before its reply was lost is not sent again (one
    copy stays, journaled found stored); one it never stored (a gateway's page, a reset, on
    the older route) is uploaded then. The first run lists nothing."""
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    stored = fault == "stored"
    with ExitStack() as stack:
        [agent] = agents(stack, 1, {0: {"new_upload": stored}})
        if stored:
            agent.drop_reply_after_next(path_prefix="/api/v1/package", method="POST")
        elif fault == "gateway":
            agent.fail_next(status=502, path_prefix="/api/v1/upgrade/package")
        else:
            agent.reset_next(path_prefix="/api/v1/upgrade/package")
        journal = tmp_path / "r.db"
        (first,) = rollout([agent], journal).upgrade_agent(
            VERSION, RELEASE, package=str(rpm)).results.values()
        assert first.outcome is TargetOutcome.UNKNOWN, first
        assert "Running the rollout again uploads it only if it is not listed" in str(
            first.error)
        assert _listings(agent) == 0 and _sent_packages(agent) == 1, agent.requests
        assert len(agent.packages) == (1 if stored else 0)
        again = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, package=str(rpm))
        assert again.ok, str(again)
        assert _listings(agent) == 1 and posts(agent) == 1
        assert len(agent.packages) == 1  # one copy, either way
        assert _sent_packages(agent) == (1 if stored else 2)
        assert _upload_events(journal) == (["started", "done (found stored as package 1, "
                                            "not uploaded)"] if stored else [
            "started", "started", "done"])


@pytest.mark.parametrize("stored", [True, False])
def test_a_rerun_after_a_runner_stopped_during_an_upload_lists_first(tmp_path, stored):
    """The journal says the upload started, never that it ended (the runner was killed
    during it): the rerun uploads it only when the target's package list lacks it."""
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with ExitStack() as stack:
        [agent] = agents(stack, 1)
        if stored:  # the killed runner's upload got through
            with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
                client.upload_package(rpm)
        journal = _upload_started(tmp_path, agent)
        sent = uploads(agent)
        report = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, package=str(rpm))
        assert report.ok, str(report)
        assert len(agent.packages) == 1 and uploads(agent) == sent + (0 if stored else 1)
        assert _listings(agent) == 1 and posts(agent) == 1


def _upload_started(tmp_path, agent):
    """A journal whose runner was stopped while it uploaded to ``agent``'s target."""
    from obshell_sdk._journal import Journal

    journal = tmp_path / "r.db"
    (target,) = targets([agent])
    j = Journal(str(journal), {"kind": "agent", "version": VERSION, "release": RELEASE,
                               "upgrade_dir": None, "check": True}, [target])
    j.step(target, "upload", "started")
    j.close()
    return journal


@pytest.mark.parametrize("other", ["build", "architecture"])
def test_a_rerun_uploads_a_package_the_list_holds_only_another_of(tmp_path, other):
    """The list's row must be this RPM: the same name, version and release of another build
    (other bytes: its MD5 differs) or architecture is not it, so the rerun uploads it."""
    from obshell_sdk.testing import build_rpm

    rpm, theirs = tmp_path / "obshell.rpm", tmp_path / "theirs.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    theirs.write_bytes(build_rpm("obshell", VERSION, RELEASE, arch="aarch64") if
                       other == "architecture" else build_rpm(
                           "obshell", VERSION, RELEASE,
                           files={"/home/admin/oceanbase/bin/obshell": b"#!/bin/sh\n"}))
    with ExitStack() as stack:
        [agent] = agents(stack, 1)
        with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
            client.upload_package(theirs)
        journal = _upload_started(tmp_path, agent)
        report = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, package=str(rpm))
        assert report.ok, str(report)
        assert len(agent.packages) == 2 and agent.packages[-1][1] == rpm.read_bytes()


def test_the_list_is_searched_for_a_package_by_one_read_of_its_headers(tmp_path, monkeypatch):
    """The row that holds the package matches its name, version, release, architecture and
    MD5 (of another case: obshell lists it in hex), all from one read of the RPM's headers."""
    import builtins

    import attrs

    from obshell_sdk import _rpm
    from obshell_sdk._models import UpgradePackageInfo
    from obshell_sdk._targets import stored_copy
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    signature = _rpm.rpm_signature(str(rpm))
    assert signature is not None and signature.md5
    row = UpgradePackageInfo(pkg_id=2, name="obshell", version=VERSION, architecture="x86_64",
                             release_distribution=RELEASE, md5=signature.md5.hex().upper())
    opened = []
    monkeypatch.setattr(_rpm, "open", lambda *args, **kwargs: opened.append(args[0]) or (
        builtins.open(*args, **kwargs)), raising=False)
    listed = [attrs.evolve(row, pkg_id=1, md5="0" * 32), row]
    assert stored_copy(listed, str(rpm)) is row
    assert opened == [str(rpm)]


@pytest.mark.parametrize("fault", ["reset", "gateway"])
def test_a_lost_reply_to_the_upload_probe_is_unreachable_and_the_rerun_uploads(
        tmp_path, fault):
    """The upload route's empty probe stores nothing: its lost reply (or a gateway's page)
    leaves nothing under way, so the target is unreachable, not unknown; the rerun uploads."""
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with ExitStack() as stack:
        [agent] = agents(stack, 1)
        if fault == "reset":
            agent.reset_next(path_prefix="/api/v1/package")
        else:
            agent.fail_next(status=502, path_prefix="/api/v1/package")
        journal = tmp_path / "r.db"
        (first,) = rollout([agent], journal).upgrade_agent(
            VERSION, RELEASE, package=str(rpm)).results.values()
        assert first.outcome is TargetOutcome.UNREACHABLE, first
        assert str(first.error).endswith("nothing was stored; run the upload (or the upgrade "
                                         "call or rollout that uploaded it) again"), first.error
        assert agent.packages == [] and agent.dags == {} and uploads(agent) == 0
        again = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, package=str(rpm))
        assert again.ok, str(again)
        assert len(agent.packages) == 1 and uploads(agent) == 1


@pytest.mark.parametrize("fault", ["lost", "gateway"])
def test_a_read_that_lost_its_reply_is_unreachable_not_unknown(tmp_path, fault):
    """A GET changes nothing: its lost reply (or a gateway's page in its place) leaves nothing
    under way, so the target is unreachable (a rerun repeats it), not unknown."""
    with ExitStack() as stack:
        [agent] = agents(stack, 1)
        if fault == "lost":
            agent.drop_reply_after_next(path_prefix="/api/v1/info", method="GET")
        else:
            agent.fail_next(status=502, path_prefix="/api/v1/info", method="GET")
        journal = tmp_path / "r.db"
        (first,) = rollout([agent], journal).upgrade_agent(
            VERSION, RELEASE, check=False).results.values()
        assert first.outcome is TargetOutcome.UNREACHABLE, first
        assert "GET /api/v1/info" in str(first.error) and posts(agent) == 0, first.error
        again = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False)
        assert again.ok, str(again)
        assert posts(agent) == 1


def test_max_failures_skips_the_rest_and_a_rerun_starts_them(tmp_path):
    with ExitStack() as stack:
        fleet = agents(stack, 5, {0: {"fail_stage": 2, "fail_times": 1}})
        journal = tmp_path / "r.db"
        report = rollout(fleet, journal, canary=1, parallel=2).upgrade_agent(
            VERSION, RELEASE, check=False)
        assert [r.outcome for r in report.results.values()] == [
            TargetOutcome.FAILED] + [TargetOutcome.SKIPPED] * 4
        assert all("max_failures" in (r.error or "") for r in list(report.results.values())[1:])
        assert [posts(a) for a in fleet] == [1, 0, 0, 0, 0]
        report = rollout(fleet, journal).upgrade_agent(VERSION, RELEASE, check=False)
        assert [r.outcome for r in report.results.values()] == [
            TargetOutcome.FAILED] + [TargetOutcome.SUCCEEDED] * 4
        again = rollout(fleet, journal).upgrade_agent(VERSION, RELEASE, check=False)
        assert again == report and hash(again) == hash(report)  # frozen, so hashable


def test_a_target_a_rerun_starts_is_open_not_its_earlier_outcome_if_the_runner_dies(
        tmp_path, monkeypatch):
    """A skipped (or refused, or unreachable) target that a rerun starts is open in the
    journal: a runner that dies mid-upgrade left it "skipped", so `rollout status` said
    skipped (exit 1, "max_failures") while its upgrade ran, with a negative elapsed time."""
    from obshell_sdk._journal import Journal, read_targets

    with ExitStack() as stack:
        fleet = agents(stack, 3, {0: {"fail_stage": 2, "fail_times": 1}})
        journal = tmp_path / "r.db"
        first = rollout(fleet, journal, canary=1).upgrade_agent(VERSION, RELEASE, check=False)
        assert outcomes(first) == ["failed", "skipped", "skipped"]

        def dies(*args, **kwargs):
            raise RuntimeError("the runner died here (a test)")

        with monkeypatch.context() as patch:
            patch.setattr(Journal, "end", dies)
            with pytest.raises(RolloutStoppedError):
                rollout(fleet, journal).upgrade_agent(VERSION, RELEASE, check=False)
        records = {r.target: r for r in read_targets(str(journal))}
        for target in targets(fleet)[1:]:
            record = records[target]
            assert record.outcome is None and record.ended_at is None, record
            assert record.started_at is not None and record.steps["upgrade"].dag_id
        assert [posts(a) for a in fleet] == [1, 1, 1]
        last = rollout(fleet, journal).upgrade_agent(VERSION, RELEASE, check=False)
        assert outcomes(last) == ["failed", "succeeded", "succeeded"], str(last)
        assert [posts(a) for a in fleet] == [1, 1, 1]


@pytest.mark.parametrize("check", [False, True], ids=["upgrade", "pre-check"])
def test_a_failed_task_retried_by_hand_is_followed_on_by_the_rerun(tmp_path, check):
    """docs/rollouts.md: decide on a failed cluster's task by hand. A rerun reads that task
    again; once retried it goes on from there, and never creates a second DAG."""
    with ExitStack() as stack:
        fleet = agents(stack, 2, {0: {"fail_stage": 2, "fail_times": 1}})
        journal = tmp_path / "r.db"
        first = rollout(fleet, journal, max_failures=2).upgrade_agent(
            VERSION, RELEASE, check=check)
        failed = first.results[targets(fleet)[0]]
        assert failed.outcome is TargetOutcome.FAILED
        same = rollout(fleet, journal).upgrade_agent(VERSION, RELEASE, check=check)
        assert same.results[targets(fleet)[0]].outcome is TargetOutcome.FAILED  # not retried
        with ObshellClient(fleet[0].host, fleet[0].port, auth=PasswordAuth(PASSWORD)) as c:
            c.task(failed.dag_ids[-1]).retry().wait(30)
        fleet[0].set_dag_faults(fail_stage=None)  # the cause, fixed: later DAGs do not fail
        again = rollout(fleet, journal).upgrade_agent(VERSION, RELEASE, check=check)
        result = again.results[targets(fleet)[0]]
        assert result.outcome is TargetOutcome.SUCCEEDED, result.error
        assert result.dag_ids[:len(failed.dag_ids)] == failed.dag_ids
        assert [posts(a) for a in fleet] == [1, 1]  # the failed task was followed, not redone
        assert len(fleet[0].requests_to("/api/v1/agent/upgrade/check", "POST")) == int(check)


@pytest.mark.parametrize("by_hand", ["retry", "rollback"])
def test_a_task_retried_by_hand_and_still_running_is_followed_but_a_rollback_is_not(
        tmp_path, by_hand):
    """At the rerun the hand-made operation is still under way (the agent's scheduler runs
    its DAGs only every 5 s): a retry is followed to its end; a rollback leaves the target
    failed and is not counted again, so the other clusters start (max_failures=1)."""
    with ExitStack() as stack:
        fleet = agents(stack, 3, {0: {"fail_stage": 4, "fail_times": 1}})
        journal = tmp_path / "r.db"
        first = rollout(fleet, journal, parallel=1).upgrade_agent(VERSION, RELEASE, check=False)
        failed = first.results[targets(fleet)[0]]
        assert failed.outcome is TargetOutcome.FAILED
        assert [r.outcome for r in first.results.values()][1:] == [TargetOutcome.SKIPPED] * 2
        fleet[0].scheduler_period = 5.0
        with ObshellClient(fleet[0].host, fleet[0].port, auth=PasswordAuth(PASSWORD)) as c:
            getattr(c.task(failed.dag_ids[-1]), by_hand)()  # not awaited
        again = rollout(fleet, journal, parallel=1).upgrade_agent(VERSION, RELEASE, check=False)
        outcomes = [r.outcome for r in again.results.values()]
        first_outcome = TargetOutcome.SUCCEEDED if by_hand == "retry" else TargetOutcome.FAILED
        assert outcomes == [first_outcome, TargetOutcome.SUCCEEDED, TargetOutcome.SUCCEEDED]
        assert [posts(a) for a in fleet] == [1, 1, 1]


def test_a_rerun_over_part_of_the_fleet_touches_only_that_part(tmp_path):
    """The targets file trimmed to the clusters left: the journal's other targets are not
    reported, read or contacted (a KeyError before)."""
    with ExitStack() as stack:
        fleet = agents(stack, 2, {0: {"fail_stage": 2, "fail_times": 99}})
        journal = tmp_path / "r.db"
        rollout(fleet, journal, max_failures=2).upgrade_agent(VERSION, RELEASE, check=False)
        fleet[0].clear_requests()
        again = rollout(fleet[1:], journal).upgrade_agent(VERSION, RELEASE, check=False)
        assert list(again.results) == targets(fleet[1:])
        assert again.results[targets(fleet)[1]].outcome is TargetOutcome.SUCCEEDED
        assert fleet[0].requests == []


def test_a_journaled_task_id_that_names_another_task_on_the_agent_is_not_followed(tmp_path):
    """The address now answers for another agent, whose task 11 is an OceanBase check that
    succeeded: it is neither taken for the failed pre-check retried by hand nor followed."""
    journal = tmp_path / "r.db"
    with FakeAgent(password=PASSWORD, stage_seconds=0.03, fail_stage=2, fail_times=99) as a:
        port = a.port
        first = rollout([a], journal).upgrade_agent(VERSION, RELEASE)
    assert first.results[targets([a])[0]].outcome is TargetOutcome.FAILED
    with FakeAgent(password=PASSWORD, port=port, stage_seconds=0.03) as b:
        other = b.create_ob_upgrade_dag("4.3.5.1", "1.el7", check=True)
        b.finish_dag(other)
        again = rollout([b], journal).upgrade_agent(VERSION, RELEASE)
        assert again.results[targets([b])[0]].outcome is TargetOutcome.FAILED
        assert b.requests_to("/api/v1/agent/upgrade", "POST") == []



def test_a_journaled_task_followed_on_a_replaced_agent_is_unknown_not_believed(tmp_path):
    """A rerun follows a created task by its journaled id; the agent now there has another
    task under that id, which succeeded: the target is unknown, never succeeded by it."""
    journal = tmp_path / "r.db"
    with FakeAgent(password=PASSWORD, stage_seconds=5) as a:
        port = a.port
        first = rollout([a], journal).upgrade_agent(VERSION, RELEASE, check=False, timeout=0.3)
    assert first.results[targets([a])[0]].outcome is TargetOutcome.UNKNOWN
    with FakeAgent(password=PASSWORD, port=port, stage_seconds=0.03) as b:
        b.finish_dag(b.create_ob_upgrade_dag("4.3.5.1", "1.el7", check=True))
        result = rollout([b], journal).upgrade_agent(VERSION, RELEASE, check=False).results[
            targets([b])[0]]
        said = result.error or ""
        assert result.outcome is TargetOutcome.UNKNOWN and "not the 'Upgrade obshell" in said
        assert "is this the agent it was written with?" in said, said
        assert b.requests_to("/api/v1/agent/upgrade", "POST") == []
        assert len(b.requests_to(f"/api/v1/task/dag/{first.results[targets([a])[0]].dag_ids[0]}",
                                 "GET")) == 1  # refused on its first read, not followed


def test_a_create_reply_naming_another_task_is_not_journaled_and_a_rerun_looks_it_up(tmp_path):
    """The upgrade's POST is answered ``{"id": <the pre-check's id>}``: a task of another
    name, which ended. It is not journaled nor reported as the upgrade's task; the target is
    unknown, and a rerun looks the upgrade up by its name (the agent made it), never
    following the pre-check as the upgrade nor sending the call again."""
    journal = tmp_path / "r.db"
    with FakeAgent(password=PASSWORD, stage_seconds=0.03) as agent:
        [target] = targets([agent])
        agent.edit_data_next(2, edit=lambda data: data if "check" in data["name"] else {
            "id": _check_id(agent)}, path_prefix="/api/v1/agent/upgrade", method="POST")
        first = rollout([agent], journal).upgrade_agent(VERSION, RELEASE).results[target]
        check = _check_id(agent)
        assert first.outcome is TargetOutcome.UNKNOWN and first.dag_ids == (check,)
        said = first.error or ""
        assert f"task {check} is 'Upgrade check obshell" in said, said
        # what a rerun does with a step left sending, as a failed lookup says it (rerun_note)
        assert re.search(r"\. A rerun looks for it by its name and, from \d\d:\d\d:\d\d UTC "
                         r"\(300 s after the call\), sends it if the agent's last maintenance "
                         r"task shows the call made none; else, once sure no such task runs "
                         r"there, run this cluster alone with a new journal$", said), said
        steps = dict(sqlite3.connect(journal).execute("SELECT step, status FROM steps"))
        assert steps["upgrade"] == "sending", steps
        assert posts(agent) == 1
        polls = len(agent.requests_to(f"/api/v1/task/dag/{check}", "GET"))
        again = rollout([agent], journal).upgrade_agent(VERSION, RELEASE).results[target]
        assert again.outcome is TargetOutcome.SUCCEEDED, again.error
        assert posts(agent) == 1  # looked up, not sent again
        assert len(agent.requests_to(f"/api/v1/task/dag/{check}", "GET")) == polls
        assert len(again.dag_ids) == 2 and check in again.dag_ids


def _check_id(agent):
    """The id of the agent's one pre-check task."""
    [dag_id] = [i for i, d in agent.dags.items() if d.name.startswith("Upgrade check obshell")]
    return dag_id


def test_bad_input_is_refused_before_anything_is_sent(tmp_path):
    auth = PasswordAuth(PASSWORD)
    for bad in ([], ["nohost"], ["h:1", "h:1"], "h:1", [("h", 0)], [42]):
        with pytest.raises(InvalidArgumentError):
            Rollout(bad, auth=auth, journal=tmp_path / "j.db")
    with pytest.raises(InvalidArgumentError, match="parallel"):
        Rollout(["h:1"], auth=auth, journal=tmp_path / "j.db", parallel=0)
    with pytest.raises(InvalidArgumentError, match="version"):
        Rollout(["127.0.0.1:1"], auth=auth, journal=tmp_path / "j.db").upgrade_agent(
            "4.x", RELEASE)
    for twice in (["localhost:1", "LOCALHOST:1"], ["[::1]:1", "[0:0:0:0:0:0:0:1]:1"],
                  ["127.0.0.1:1", "[::ffff:127.0.0.1]:1"], ["h:1", ("H", 1)]):
        with pytest.raises(InvalidArgumentError, match="listed twice"):  # one agent, 2 spellings
            Rollout(twice, auth=auth, journal=tmp_path / "j.db")
    for typo, meant in (("paralell", "parallel"), ("timout", "timeout")):
        with pytest.raises(InvalidArgumentError, match=f"did you mean {meant}=") as info:
            Rollout(["h:1"], auth=auth, journal=tmp_path / "j.db", **{typo: 4})
        assert info.value.argument == typo
    assert not (tmp_path / "j.db").exists()


def test_a_rollout_s_repr_says_its_targets_journal_and_options_never_its_passwords(tmp_path):
    """It was ``<obshell_sdk.Rollout object at 0x...>``: nothing a notebook user could read."""
    journal = str(tmp_path / "fleet.db")
    fleet = ["db1:2886", ("db2", 2886), "db3:2886", "db4:2886", "db5:2886"]
    shown = repr(Rollout(fleet, auth=PasswordAuth("hunter2-secret", agent_password="agent-pw"),
                         journal=journal, canary=1, parallel=3, max_failures=2, https=True,
                         timeout=(5, 60)))
    assert shown == (f"<Rollout of 5 targets (db1:2886, db2:2886, db3:2886, and 2 more), "
                     f"journal {journal!r}, canary 1, parallel 3, max_failures 2, one "
                     "PasswordAuth, https=True, timeout=(5, 60)>")

    class PerTarget:  # a password source whose own repr would give it away
        def __call__(self, target):
            return PasswordAuth("hunter2-secret")

        def __repr__(self):
            return "PerTarget('hunter2-secret')"

    shown = repr(Rollout(["db1:2886"], auth=PerTarget(), journal=journal))
    assert shown == (f"<Rollout of 1 target (db1:2886), journal {journal!r}, canary 0, "
                     "parallel 4, max_failures 1, a PasswordAuth per target>")
    assert "hunter2" not in shown and not (tmp_path / "fleet.db").exists()  # no I/O


def test_a_journal_holds_one_rollout(tmp_path):
    with ExitStack() as stack:
        fleet = agents(stack, 1)
        journal = tmp_path / "r.db"
        rollout(fleet, journal).upgrade_agent(VERSION, RELEASE, check=False)
        with pytest.raises(InvalidArgumentError, match="another rollout") as info:
            rollout(fleet, journal).upgrade_agent("4.3.2.0", RELEASE, check=False)
        assert 'version: "4.3.1.0", not "4.3.2.0"' in str(info.value)  # what differs
        with pytest.raises(InvalidArgumentError) as info:
            rollout(fleet, journal).upgrade_agent(VERSION, RELEASE)
        assert str(info.value).count(", not ") == 1 and "check: false, not true" in str(
            info.value)


def _cli(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSHELL_")}
    env.update({"PYTHONPATH": str(ROOT), "OBSHELL_PASSWORD": PASSWORD, **(env_extra or {})})
    return [sys.executable, "-m", "obshell_sdk", *args], env


def _created(journal: Path) -> int:
    if not journal.exists():
        return 0
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT count(*) FROM steps WHERE step = 'upgrade' AND dag_id IS NOT "
                          "NULL").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def _start_runner(cmd, env, journal: Path, created: int) -> subprocess.Popen:
    """A rollout runner process, once its journal holds ``created`` upgrades (or after 30 s)."""
    runner = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while _created(journal) < created and time.monotonic() < deadline:
        time.sleep(0.05)
    return runner


def test_twenty_clusters_with_faults_and_a_runner_killed_mid_way(tmp_path):
    """Some fail, some restart with a new key, one loses a create reply, the runner is
    SIGKILLed and run again: every cluster ends as reported, each got one upgrade POST."""
    failing, restarting, lossy = {2, 11}, {5, 9, 14}, 7
    special = {i: {"fail_stage": 5, "fail_times": 99} for i in failing}
    special.update({i: {"restart_at_stage": 7, "restart_seconds": 0.4,
                        "restart_new_key_bits": 1024} for i in restarting})
    with ExitStack() as stack:
        fleet = [stack.enter_context(FakeAgent(password=PASSWORD, stage_seconds=0.15,
                                               **special.get(i, {}))) for i in range(20)]
        fleet[lossy].drop_reply_after_create = True
        (tmp_path / "targets").write_text("# the fleet\n" + "\n".join(targets(fleet)) + "\n")
        journal = tmp_path / "r.db"
        cmd, env = _cli("--json", "rollout", "agent", "--targets", str(tmp_path / "targets"),
                        "--journal", str(journal), "--parallel", "5", "--max-failures", "20",
                        "--no-check", VERSION, RELEASE)
        runner = _start_runner(cmd, env, journal, created=6)
        runner.send_signal(signal.SIGKILL)
        runner.communicate(timeout=10)
        assert _created(journal) >= 6, "the runner made too little progress before the kill"
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL, check=False)
        assert out.returncode == 1, out.stderr  # two clusters failed
        results = json.loads(out.stdout)["results"]
        for i, agent in enumerate(fleet):
            target = targets(fleet)[i]
            want = "failed" if i in failing else "succeeded"
            assert results[target]["outcome"] == want, (i, results[target])
            assert posts(agent) == 1, (i, posts(agent))  # never a second DAG
            dags = [d for d in agent.dags.values() if d.name.startswith("Upgrade obshell")]
            assert len(dags) == 1 and dags[0].generic_id in results[target]["dag_ids"]
        status = subprocess.run(_cli("rollout", "status", "--journal", str(journal))[0],
                                env=env, capture_output=True, text=True, timeout=30,
                                check=False)
        assert status.returncode == 1 and status.stdout.count("succeeded") == 18
        whole = [line for line in status.stdout.splitlines() if "injected failure" in line]
        assert len(whole) == 2, status.stdout  # each failure whole, below the table


def test_a_create_the_runner_did_not_see_answered_is_looked_up_never_resent(tmp_path, monkeypatch):
    """The journal says 'sending' (killed around the POST): look, and never resend unless
    the agent proves the call made nothing: an upgrade's DAG becomes the cluster's last
    maintenance DAG, so a last one listed before the call (or none) proves it."""
    import obshell_sdk._lookup
    from obshell_sdk._journal import Journal

    monkeypatch.setattr(obshell_sdk._lookup, "RECOVERY_SECONDS", 1.0)
    monkeypatch.setattr(obshell_sdk._lookup, "PROOF_SECONDS", 1.0)
    with ExitStack() as stack:
        fleet = agents(stack, 7)
        journal = tmp_path / "r.db"
        plan = {"kind": "agent", "version": VERSION, "release": RELEASE, "upgrade_dir": None,
                "check": False}
        j = Journal(str(journal), plan, targets(fleet))
        before = fleet[2].create_upgrade_dag("4.3.0.5", RELEASE)  # an old one, ended
        fleet[2].finish_dag(before)
        for target, existed, sent_at in zip(targets(fleet), (
                frozenset(), frozenset(), frozenset({before}), None, frozenset(),
                frozenset(), frozenset({"11"})), (time.time() - 2,) * 4 + (
                time.time() + 3600, time.time() - 2, time.time() - 2)):
            j.step(target, "upgrade", "sending", sent_at=sent_at, existed=existed)
        j.close()
        made = fleet[0].create_upgrade_dag(VERSION, RELEASE)  # the POST that did get through
        fleet[5].create_upgrade_dag("4.3.0.9", RELEASE)  # someone else's, since: not a proof
        fleet[0].fail_next(2, status=404, err_code="Task.NotFound",  # found, then reconnecting
                           path_prefix=f"/api/v1/task/dag/{made}")
        report = rollout(fleet, journal, max_failures=7).upgrade_agent(VERSION, RELEASE,
                                                                        check=False)
        found, proved, proved_too, unlisted, ahead, since, vanished = report.results.values()
        assert found.outcome is TargetOutcome.SUCCEEDED and found.dag_ids == (made,)
        for result in (proved, proved_too):  # no maintenance DAG, or only the one before
            assert result.outcome is TargetOutcome.SUCCEEDED and len(result.dag_ids) == 1
        # not known what was there, or when it was sent; another task since; one listed
        # before that the agent no longer shows (obshell deletes none): no proof
        for result in (unlisted, ahead, since, vanished):
            assert result.outcome is TargetOutcome.UNKNOWN and "not sent again" in result.error
            assert result.error.endswith("once sure no such task runs there, run this cluster "
                                         "alone with a new journal")
        assert "cannot prove the call made no task (what the agent listed before the call " \
            "is not known), so never sends it" in unlisted.error
        # sent "in an hour" (a clock stepped back): the proof's time is named, in UTC
        assert re.search(r"A rerun looks for it again and, from \d\d:\d\d:\d\d UTC \(1 s "
                         r"after the call\), sends it if the agent's last maintenance "
                         r"task shows the call made none; else", ahead.error), ahead.error
        for result in (since, vanished):  # the proof's time has passed: said so
            assert "shows the call made none (it did not now, or could not be read); " \
                "else, once sure" in result.error, result.error
        assert [posts(a) for a in fleet] == [0, 1, 1, 0, 0, 0, 0]


def test_an_ob_rollout_uploads_checks_upgrades_and_confirms_on_every_cluster(tmp_path):
    from obshell_sdk.testing import build_rpm

    version, release = "4.3.5.1", "101000012025052815.el7"
    packages = []
    for name in ("oceanbase-ce", "oceanbase-ce-libs"):
        path = tmp_path / f"{name}.rpm"
        path.write_bytes(build_rpm(name, version, release))
        packages.append(path)
    with ExitStack() as stack:
        fleet = [stack.enter_context(FakeAgent(
            password=PASSWORD, stages_per_poll=10, ob_version="4.3.5.0-100000202024123117",
            require_packages=True)) for _ in range(3)]
        report = rollout(fleet, tmp_path / "ob.db").upgrade_ob(
            version, release, packages=packages, mode="stopservice")
        assert report.ok, str(report)
        for agent in fleet:
            assert len(agent.requests_to("/api/v1/ob/upgrade", "POST")) == 1
            assert len(agent.inventory) >= 2


def test_an_ob_rollout_refuses_a_cluster_past_the_target_before_uploading_to_it(tmp_path):
    packages = ob_packages(tmp_path)[:2]
    with ExitStack() as stack:
        fleet = [stack.enter_context(FakeAgent(
            password=PASSWORD, stages_per_poll=10, ob_version=current, require_packages=True))
            for current in ("4.3.5.0-100000202024123117", "4.3.5.2-100000012025090101")]
        report = rollout(fleet, tmp_path / "ob.db").upgrade_ob(*OB_TARGET, packages=packages)
        assert outcomes(report) == ["succeeded", "refused"]
        past = report.results[targets(fleet)[1]]
        assert "runs OceanBase 4.3.5.2, newer than 4.3.5.1" in str(past.error)
        assert uploads(fleet[1]) == 0 and not fleet[1].requests_to("/api/v1/ob/upgrade/check")
        assert uploads(fleet[0]) == 2


@pytest.mark.parametrize("check", [True, False])
def test_an_ob_rollout_counts_a_cluster_at_the_target_build_as_done(tmp_path, check):
    # /info shows the version only: obshell's refusal (not newer than the build it runs)
    # tells the cluster at the target apart from one at an older build of it
    packages = ob_packages(tmp_path)[:2]
    version, release = OB_TARGET
    with ExitStack() as stack:
        fleet = [stack.enter_context(FakeAgent(
            password=PASSWORD, stages_per_poll=10, ob_version=current, require_packages=True))
            for current in (f"{version}-{release.split('.')[0]}", f"{version}-100000012025010101")]
        journal = tmp_path / "ob.db"
        report = rollout(fleet, journal).upgrade_ob(version, release, packages=packages,
                                                    check=check)
        assert outcomes(report) == ["succeeded", "succeeded"], str(report)
        there, older = (report.results[t] for t in targets(fleet))
        assert there.note is not None and there.note.startswith(
            f"already runs OceanBase {version}: obshell refused the upgrade as not newer")
        assert there.dag_ids == () and not fleet[0].dags
        assert older.note is None and len(older.dag_ids) == (2 if check else 1)
        again = rollout(fleet, journal).upgrade_ob(version, release, packages=packages,
                                                   check=check)
        assert again.ok and not fleet[0].dags  # the rerun finds nothing left to do
        assert len(fleet[1].requests_to("/api/v1/ob/upgrade", "POST")) == 1


def test_an_ob_cluster_at_the_target_with_a_failed_upgrade_holding_its_lock_is_not_done(
        tmp_path):
    # a rolling upgrade that failed after this agent's zone was reinstalled: its observer
    # (and so /info and obshell's version check) is at the target, other zones are not
    packages = ob_packages(tmp_path)[:2]
    version, release = OB_TARGET
    with FakeAgent(password=PASSWORD, stages_per_poll=10, require_packages=True,
                   ob_version=f"{version}-{release.split('.')[0]}") as agent:
        failed = agent.create_upgrade_dag("4.3.9.0", "1.el7")  # any lock-taking task
        agent.fail_dag(failed)
        report = rollout([agent], tmp_path / "ob.db").upgrade_ob(version, release,
                                                                 packages=packages)
        (result,) = report.results.values()
        assert result.outcome is TargetOutcome.REFUSED and "ToLowerVersion" in str(result.error)
        assert f"task {failed} 'Upgrade obshell 4.3.9.0-1.el7' is unfinished there, FAILED," \
            in str(result.error)  # what holds it, and so what to see to first
        assert not report.ok


def test_an_upgrade_proved_unsent_gets_the_packages_added_since_before_it_is_sent(
        tmp_path, monkeypatch):
    """The runner died around the upgrade's POST; the rerun is given the libs package it
    lacked. Uploads wait while a task may be under way: once the agent proves the POST made
    nothing, they go out before the upgrade is sent."""
    import obshell_sdk._lookup
    from obshell_sdk._journal import Journal
    from obshell_sdk._upload import package_label

    monkeypatch.setattr(obshell_sdk._lookup, "RECOVERY_SECONDS", 1.0)
    monkeypatch.setattr(obshell_sdk._lookup, "PROOF_SECONDS", 1.0)
    ce, libs = ob_packages(tmp_path)[:2]
    version, release = OB_TARGET
    with FakeAgent(password=PASSWORD, stages_per_poll=10, require_packages=True,
                   ob_version="4.3.5.0-100000202024123117") as agent:
        with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
            client.upload_package(ce)
        journal = tmp_path / "ob.db"
        plan = {"kind": "ob", "version": version, "release": release, "mode": "ROLLING",
                "upgrade_dir": None, "freeze_server": False, "check": False}
        (target,) = targets([agent])
        j = Journal(str(journal), plan, [target])
        j.step(target, f"upload {package_label(str(ce))}", "done")
        j.step(target, "upgrade", "sending", sent_at=time.time() - 2, existed=frozenset())
        j.close()
        report = rollout([agent], journal).upgrade_ob(version, release, packages=[ce, libs],
                                                      check=False)
        assert report.ok, str(report)
        assert len(agent.requests_to("/api/v1/ob/upgrade", "POST")) == 1
        assert sorted(row["name"] for row in agent.inventory) == ["oceanbase-ce",
                                                                 "oceanbase-ce-libs"]


def uploads(agent):
    """Packages sent (a client's first, empty POST only asks whether the route exists)."""
    return sum(1 for r in agent.requests_to("/api/v1/package", "POST") if r.body_bytes)


OB_TARGET = ("4.3.5.1", "101000012025052815.el7")
_OB_BEFORE = ("4.3.5.0", "100000202024123117.el7")


def ob_packages(tmp_path):
    """oceanbase-ce and -libs of the target, then of the version before: four files."""
    from obshell_sdk.testing import build_rpm

    made = []
    for label, (version, release) in (("", OB_TARGET), ("-old", _OB_BEFORE)):
        for name in ("oceanbase-ce", "oceanbase-ce-libs"):
            path = tmp_path / f"{name}{label}.rpm"
            path.write_bytes(build_rpm(name, version, release))
            made.append(path)
    return made


def ob_agent():
    """An agent running the version before, that checks the packages as obshell does."""
    return FakeAgent(password=PASSWORD, stages_per_poll=10, require_packages=True,
                     ob_version="-".join((_OB_BEFORE[0], _OB_BEFORE[1].split(".")[0])))


def test_an_ob_rollout_rerun_with_a_corrected_package_list_uploads_the_new_package(tmp_path):
    """Upload steps are named by the package, not its place in the list: the corrected
    package is uploaded on the rerun, the one already uploaded is not sent again."""
    version, release = OB_TARGET
    ce, libs, _, stale = ob_packages(tmp_path)
    with ob_agent() as agent:
        journal = tmp_path / "ob.db"
        first = rollout([agent], journal).upgrade_ob(version, release, packages=[ce, stale],
                                                     mode="stopservice")
        assert not first.ok and posts(agent, "/api/v1/ob/upgrade") == 0, str(first)
        sent = uploads(agent)
        second = rollout([agent], journal).upgrade_ob(version, release, packages=[ce, libs],
                                                      mode="stopservice")
        assert second.ok, str(second)
        assert uploads(agent) == sent + 1  # the corrected libs only
        assert posts(agent, "/api/v1/ob/upgrade") == 1


def test_a_missing_target_package_refuses_the_ob_target_and_the_corrected_list_goes_on(
        tmp_path):
    """obshell answers a missing target package with a raw error (500 Common.Unexpected
    "...rpm: record not found"), looked up before the DAG is made: the target is refused,
    not left unknown for good, and a rerun with the right package sends the check."""
    version, release = OB_TARGET
    ce, libs, stale, _ = ob_packages(tmp_path)
    with ob_agent() as agent:
        journal = tmp_path / "ob.db"
        first = rollout([agent], journal).upgrade_ob(version, release, packages=[stale, libs],
                                                     mode="stopservice")
        (result,) = first.results.values()
        assert result.outcome is TargetOutcome.REFUSED, str(first)
        assert "record not found" in (result.error or "")
        second = rollout([agent], journal).upgrade_ob(version, release, packages=[ce, libs],
                                                      mode="stopservice")
        assert second.ok, str(second)
        assert posts(agent, "/api/v1/ob/upgrade/check") == 2  # the first made no task
        assert posts(agent, "/api/v1/ob/upgrade") == 1


def test_an_ob_rollout_refuses_a_package_given_twice_before_sending_anything(tmp_path):
    from obshell_sdk.testing import build_rpm

    ce = tmp_path / "ce.rpm"
    ce.write_bytes(build_rpm("oceanbase-ce", "4.3.5.1", "101000012025052815.el7"))
    copy = tmp_path / "copy.rpm"
    copy.write_bytes(ce.read_bytes())
    with FakeAgent(password=PASSWORD) as agent:
        with pytest.raises(InvalidArgumentError, match=r"again \(first .*ce\.rpm"):
            rollout([agent], tmp_path / "ob.db").upgrade_ob(
                "4.3.5.1", "101000012025052815.el7", packages=[ce, copy])
        assert agent.requests == []


def test_ctrl_c_starts_no_new_cluster_and_a_rerun_finishes_the_job(tmp_path):
    """SIGINT mid-rollout: exit 130, running upgrades go on, the rerun creates no second DAG."""
    with ExitStack() as stack:
        fleet = [stack.enter_context(FakeAgent(password=PASSWORD, stage_seconds=0.2))
                 for _ in range(8)]
        (tmp_path / "targets").write_text("\n".join(targets(fleet)) + "\n")
        journal = tmp_path / "r.db"
        cmd, env = _cli("rollout", "agent", "--targets", str(tmp_path / "targets"), "--journal",
                        str(journal), "--parallel", "2", "--no-check", VERSION, RELEASE)
        runner = _start_runner(cmd, env, journal, created=2)
        runner.send_signal(signal.SIGINT)
        _, err = runner.communicate(timeout=20)
        assert runner.returncode == 130, err
        started = sum(posts(a) for a in fleet)
        assert 2 <= started < 8  # the running ones went on; no new cluster was started
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL, check=False)
        assert out.returncode == 0, out.stderr
        assert [posts(a) for a in fleet] == [1] * 8


def test_cli_says_a_failed_target_s_next_step_as_a_command_at_its_agent(tmp_path):
    with ExitStack() as stack:
        (agent,) = agents(stack, 1, {0: {"fail_stage": 6, "fail_times": 99}})
        targets_file = tmp_path / "fleet.txt"
        targets_file.write_text(f"127.0.0.1:{agent.port}\n")
        argv, env = _cli("rollout", "agent", "--targets", str(targets_file), "--journal",
                         str(tmp_path / "r.db"), VERSION, RELEASE, "--no-check")
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL, check=False)
    assert out.returncode == 1, out.stderr
    assert (f"see it with obshell-sdk --host 127.0.0.1 --port {agent.port} task show 11, then "
            "retry it (or roll back or skip it where its nodes allow) and run the "
            "rollout again") in out.stdout
    assert "client." not in out.stdout + out.stderr


def test_cli_rollout_status_as_json_and_tls_options_reach_every_client(tmp_path):
    with ExitStack() as stack:
        fleet = agents(stack, 2)
        targets = tmp_path / "fleet.txt"
        targets.write_text("".join(f"{a.host}:{a.port}\n" for a in fleet))
        journal = tmp_path / "fleet.db"
        argv, env = _cli("rollout", "agent", "--targets", str(targets), "--journal",
                         str(journal), VERSION, RELEASE, "--no-check", "--json")
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, check=False)
        assert done.returncode == 0, done.stderr
        argv, env = _cli("--json", "rollout", "status", "--journal", str(journal))
        status = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL, check=False)
        assert status.returncode == 0, status.stderr
        shown = json.loads(status.stdout)["targets"]
        assert len(shown) == 2
        for target in shown:  # every time as the report gives it: ISO 8601, UTC
            upgrade = target["steps"]["upgrade"]
            assert upgrade["sent_at"].endswith("+00:00"), upgrade
            assert target["started_at"].endswith("+00:00"), target
        argv, env = _cli("rollout", "status", "--journal", str(journal))
        text = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, check=False).stdout
        header, *rows = text.splitlines()[1:]
        assert header.split() == ["target", "step", "stage", "state", "note", "elapsed"]
        assert all("succeeded" in row and "tasks 11" in row for row in rows), text
        assert all(re.search(r"\d+s$", row) for row in rows), text  # elapsed, from the journal
        # --https against agents that speak plain HTTP: every client tries TLS, none succeeds.
        tls_journal = tmp_path / "tls.db"
        argv, env = _cli("rollout", "agent", "--targets", str(targets), "--journal",
                         str(tls_journal), "4.3.2.0", RELEASE, "--no-check", "--https",
                         "--max-failures", "2")
        tls = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL, check=False)
        assert tls.returncode != 0
        assert all(not a.requests_to("/api/v1/agent/upgrade", "POST")[1:] for a in fleet)
        assert all(len(a.requests_to("/api/v1/agent/upgrade", "POST")) == 1 for a in fleet)


def test_rollout_status_of_a_missing_journal_says_so_and_creates_nothing(tmp_path):
    missing = tmp_path / "nope.db"
    argv, env = _cli("rollout", "status", "--journal", str(missing))
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 2 and "does not exist" in out.stderr, out.stderr
    assert not missing.exists()
    argv, env = _cli("rollout", "status", "--journal", str(tmp_path))  # a directory
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 2 and "is not a file" in out.stderr, out.stderr


def _step_statuses(journal, target):
    return dict(sqlite3.connect(journal).execute(
        "SELECT step, status FROM steps WHERE target = ?", (target,)).fetchall())


def test_a_refused_target_is_tried_again_once_its_cause_is_fixed(tmp_path):
    """A wrong password for one cluster: `refused`, not a final `failed`, so the rerun with
    the right one upgrades it (a `failed` target is left alone, and so it was stuck)."""
    with ExitStack() as stack:
        fleet = agents(stack, 2)
        journal = tmp_path / "r.db"
        good, typo = targets(fleet)
        passwords = {good: PASSWORD, typo: "typo"}

        def run():
            return Rollout([good, typo], auth=lambda t: PasswordAuth(passwords[t]),
                           journal=journal, poll_policy=FAST, progress=False,
                           max_failures=2).upgrade_agent(VERSION, RELEASE)

        first = run()
        refused = first.results[typo]
        assert refused.outcome is TargetOutcome.REFUSED and refused.dag_ids == ()
        assert "WrongPasswordError" in (refused.error or "")
        assert first.results[good].outcome is TargetOutcome.SUCCEEDED
        assert _step_statuses(journal, typo) == {"check": "unsent"}
        assert fleet[1].dags == {}  # the agent made nothing
        passwords[typo] = PASSWORD
        again = run()
        assert again.ok, again
        assert len(fleet[1].dags) == 2 and posts(fleet[1]) == 1  # one check, one upgrade
        assert posts(fleet[0]) == 1  # the other one was left alone


def test_an_empty_password_a_target_was_given_and_refused_is_said_to_be_empty(tmp_path):
    """``auth=`` gives each target its password; an empty one is sent as given (a SINGLE
    agent takes any) and, refused, its target's error read like a typo's."""
    from conftest import AGENT_PASSWORD

    from obshell_sdk._journal import read_targets

    with ExitStack() as stack:
        fleet = agents(stack, 3, {2: {"agent_password": AGENT_PASSWORD}})
        empty_root, typo, empty_agent = targets(fleet)
        auths = {empty_root: PasswordAuth(""), typo: PasswordAuth("typo"),
                 empty_agent: PasswordAuth(PASSWORD, agent_password="")}
        journal = tmp_path / "r.db"
        report = Rollout(targets(fleet), auth=auths.__getitem__, journal=journal,
                         poll_policy=FAST, progress=False, max_failures=3
                         ).upgrade_agent(VERSION, RELEASE)
    assert outcomes(report) == ["refused"] * 3
    errors = {t: r.error or "" for t, r in report.results.items()}
    assert errors[empty_root].endswith(
        " (the root@sys password given for this target is empty: give auth= its password, "
        "then run the rollout again)"), errors[empty_root]
    assert "(the agent password given for this target is empty" in errors[empty_agent]
    assert "root@sys password given" not in errors[empty_agent]  # not the refused one
    assert "empty" not in errors[typo]  # a typo is no empty password
    assert {r.target: r.error for r in read_targets(str(journal))} == errors  # journaled so


def test_an_empty_password_an_old_agent_refused_is_said_to_be_the_likely_cause(tmp_path):
    """obshell before 4.3.1 refuses any auth failure with a bare code 10008: an empty password
    sent is then the likely cause, said as one (and nothing of a typo)."""
    from conftest import AGENT_PASSWORD

    from obshell_sdk._config import UNSAID

    with ExitStack() as stack:
        fleet = agents(stack, 3, {2: {"agent_password": AGENT_PASSWORD}})
        for agent in fleet:
            agent.numeric_errors = True  # as obshell 4.2.3 to 4.3.0 answers
        empty_root, typo, empty_agent = targets(fleet)
        auths = {empty_root: PasswordAuth(""), typo: PasswordAuth("typo"),
                 empty_agent: PasswordAuth(PASSWORD, agent_password="")}
        report = Rollout(targets(fleet), auth=auths.__getitem__, journal=tmp_path / "r.db",
                         poll_policy=FAST, progress=False, max_failures=3
                         ).upgrade_agent(VERSION, RELEASE)
    assert outcomes(report) == ["refused"] * 3
    errors = {t: r.error or "" for t, r in report.results.items()}
    assert "code 10008" in errors[typo] and "empty" not in errors[typo], errors[typo]
    assert errors[empty_root].endswith(
        " (the root@sys password given for this target is empty: give auth= its password, "
        f"then run the rollout again; {UNSAID})"), errors[empty_root]
    assert errors[empty_agent].endswith(
        f" (the agent password given for this target is empty: give auth= its password, then "
        f"run the rollout again; {UNSAID})"), errors[empty_agent]


def test_cli_rollout_says_an_empty_password_refused_with_the_variable_to_set(tmp_path):
    from conftest import AGENT_PASSWORD

    with ExitStack() as stack:
        (root, agent) = agents(stack, 2, {1: {"agent_password": AGENT_PASSWORD}})
        for fleet, variables, said in [
            (root, {"OBSHELL_PASSWORD": ""}, "(the root@sys password given for this target "
             "is empty: set OBSHELL_PASSWORD, then run the same command again)"),
            (agent, {"OBSHELL_AGENT_PASSWORD": ""}, "(the agent password given for this "
             "target is empty: set OBSHELL_AGENT_PASSWORD, then run the same command again)"),
        ]:
            targets_file, journal = tmp_path / "fleet.txt", tmp_path / f"{fleet.port}.db"
            targets_file.write_text(f"127.0.0.1:{fleet.port}\n")
            argv, env = _cli("rollout", "agent", "--targets", str(targets_file), "--journal",
                             str(journal), VERSION, RELEASE, env_extra=variables)
            out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120,
                                 stdin=subprocess.DEVNULL, check=False)
            assert out.returncode == 1, out.stderr
            assert said in out.stdout and "auth=" not in out.stdout, out.stdout
            argv, env = _cli("rollout", "status", "--journal", str(journal))
            status = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                                    stdin=subprocess.DEVNULL, check=False)
            assert said in status.stdout and "auth=" not in status.stdout, status.stdout


def test_a_create_refused_for_the_lock_is_sent_again_once_the_lock_is_free(tmp_path):
    """UnderMaintenance is a 500, but it says no DAG was made: the step is unsent."""
    with ExitStack() as stack:
        [agent] = agents(stack, 1)
        # The holder of the cluster's lock is made with hour-long stages: it holds the lock
        # until finished below (the agent's DAGs are time-driven, so stages_per_poll=0 left it
        # to end in 0.27 s, before the rollout's POST on a slow run; so did a stall of the
        # test between creating it and then slowing it down).
        agent.set_dag_progression(stage_seconds=3600)
        holder = agent.create_upgrade_dag(version="4.3.0.1")
        agent.set_dag_progression(stage_seconds=0.03)  # the rollout's own DAGs: agents()' pace
        journal = tmp_path / "r.db"
        first = rollout([agent], journal).upgrade_agent(VERSION, RELEASE)
        [result] = first.results.values()
        assert result.outcome is TargetOutcome.REFUSED
        assert "UnderMaintenanceError" in (result.error or "")
        assert _step_statuses(journal, targets([agent])[0]) == {"check": "done",
                                                                "upgrade": "unsent"}
        agent.set_dag_progression(stages_per_poll=9)
        agent.finish_dag(holder)
        again = rollout([agent], journal).upgrade_agent(VERSION, RELEASE)
        assert again.ok, again
        assert posts(agent) == 2 and posts(agent, "/api/v1/agent/upgrade/check") == 1


@pytest.mark.parametrize(("err_code", "outcome", "status"), [
    ("Common.Unexpected", TargetOutcome.UNKNOWN, "sending"),  # may follow the DAG (a panic)
    ("Agent.Unavailable", TargetOutcome.REFUSED, "unsent"),  # obshell's own: before the DAG
])
def test_a_create_answered_with_a_5xx_is_sent_again_only_when_it_made_nothing(
        tmp_path, err_code, outcome, status):
    with ExitStack() as stack:
        [agent] = agents(stack, 1)
        agent.fail_next(1, status=500, err_code=err_code,
                        path_prefix="/api/v1/agent/upgrade/check")
        journal = tmp_path / "r.db"
        [first] = rollout([agent], journal).upgrade_agent(VERSION, RELEASE).results.values()
        assert first.outcome is outcome, first
        assert _step_statuses(journal, targets([agent])[0]) == {"check": status}
        [again] = rollout([agent], journal).upgrade_agent(VERSION, RELEASE).results.values()
        checks = posts(agent, "/api/v1/agent/upgrade/check")
        if outcome is TargetOutcome.UNKNOWN:  # looked up, never re-sent
            assert "a rerun looks for it" in (first.error or "")
            assert again.outcome is TargetOutcome.UNKNOWN and checks == 1
            assert "error reply did not prove it made nothing" in (again.error or "")
        else:
            assert again.outcome is TargetOutcome.SUCCEEDED and checks == 2


def test_a_refusal_while_following_a_task_is_unknown_and_the_rerun_follows_it(tmp_path):
    """The task exists (and may hold the lock): not `refused`, which says nothing was made."""
    with ExitStack() as stack:
        [agent] = agents(stack, 1)
        agent.fail_next(1, status=400, err_code="Common.IllegalArgument",
                        path_prefix="/api/v1/task/dag/11")  # the pre-check's first poll
        journal = tmp_path / "r.db"
        [first] = rollout([agent], journal).upgrade_agent(VERSION, RELEASE).results.values()
        assert first.outcome is TargetOutcome.UNKNOWN and first.dag_ids == ("11",), first
        assert _step_statuses(journal, targets([agent])[0]) == {"check": "created"}
        [again] = rollout([agent], journal).upgrade_agent(VERSION, RELEASE).results.values()
        assert again.outcome is TargetOutcome.SUCCEEDED, again
        assert posts(agent, "/api/v1/agent/upgrade/check") == 1


def test_a_rerun_follows_its_journaled_task_through_not_found_while_the_agent_reconnects(
        tmp_path):
    """The journal holds the task's id, so a "not found" (the agent back from its restart,
    not reconnected to its cluster yet) is waited out, not taken for an unknown outcome."""
    with ExitStack() as stack:
        [agent] = agents(stack, 1)
        agent.fail_next(1, status=400, err_code="Common.IllegalArgument",
                        path_prefix="/api/v1/task/dag/11")  # the first run stops following
        journal = tmp_path / "r.db"
        [first] = rollout([agent], journal).upgrade_agent(VERSION, RELEASE).results.values()
        assert first.outcome is TargetOutcome.UNKNOWN and first.dag_ids == ("11",), first
        agent.fail_next(2, status=404, err_code="Task.NotFound",
                        path_prefix="/api/v1/task/dag/11")
        [again] = rollout([agent], journal).upgrade_agent(VERSION, RELEASE).results.values()
        assert again.outcome is TargetOutcome.SUCCEEDED, again
        assert posts(agent, "/api/v1/agent/upgrade/check") == 1


def test_an_auth_callable_that_raises_refuses_its_target_only(tmp_path):
    """The caller's own auth lookup failing for one cluster: that one is `refused` (nothing
    was sent); the others are upgraded and reported (the worker thread died, the report was
    lost and upgrade_agent raised KeyError)."""
    with ExitStack() as stack:
        fleet = agents(stack, 2)
        good, locked = targets(fleet)
        vault = {good: PASSWORD}

        def run():
            return Rollout([good, locked], auth=lambda t: PasswordAuth(vault[t]),
                           journal=tmp_path / "r.db", poll_policy=FAST, progress=False,
                           canary=0, max_failures=2).upgrade_agent(VERSION, RELEASE)

        first = run()
        assert first.results[good].outcome is TargetOutcome.SUCCEEDED
        refused = first.results[locked]
        assert refused.outcome is TargetOutcome.REFUSED, refused
        assert f"auth({locked!r}) raised KeyError" in (refused.error or "")
        assert fleet[1].requests == []
        vault[locked] = PASSWORD
        assert run().ok and posts(fleet[1]) == 1


def test_a_journal_that_cannot_be_one_is_refused_before_anything_is_sent(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("not a database, but 100 bytes of text. " * 3)
    with ExitStack() as stack:
        [agent] = agents(stack, 1)
        for journal in (tmp_path, other):  # a directory; another kind of file
            with pytest.raises(InvalidArgumentError, match="cannot hold a rollout journal"):
                rollout([agent], journal).upgrade_agent(VERSION, RELEASE)
        assert agent.requests == []
    assert other.read_text().startswith("not a database")


def test_a_worker_that_breaks_stops_the_rollout_and_its_error_reaches_the_caller(
        tmp_path, monkeypatch, caplog):
    """Not an ObshellError (a bug, a journal that can no longer be written): it is logged at
    once, no new cluster is started (the other worker ends the one it has), and the caller
    gets a RolloutStoppedError with the error as its cause and where each target stood."""
    import logging

    from obshell_sdk import _rollout_steps

    class Broken(RuntimeError):
        pass

    real = _rollout_steps.TargetRun.run

    def run(self, plan):
        if self.client.port == fleet[1].port:
            raise Broken("disk full")
        time.sleep(0.5)  # the other worker is still busy when the break comes
        return real(self, plan)

    monkeypatch.setattr(_rollout_steps.TargetRun, "run", run)
    with ExitStack() as stack:
        fleet = agents(stack, 6)
        journal = tmp_path / "r.db"
        with caplog.at_level(logging.ERROR, logger="obshell_sdk"), \
                pytest.raises(RolloutStoppedError, match="disk full") as info:
            rollout(fleet, journal, parallel=2, canary=0, max_failures=9).upgrade_agent(
                VERSION, RELEASE)
        assert any("rollout stopped" in r.getMessage() for r in caplog.records)
        assert isinstance(info.value.__cause__, Broken)
        assert info.value.target == targets(fleet)[1]
        assert outcomes(info.value.report) == [
            "succeeded", "unknown", "skipped", "skipped", "skipped", "skipped"]
        assert posts(fleet[0]) == 1  # the one in hand was finished
        assert [posts(a) for a in fleet[2:]] == [0, 0, 0, 0]  # nothing started after it
        monkeypatch.setattr(_rollout_steps.TargetRun, "run", real)
        again = rollout(fleet, journal, parallel=2, canary=0).upgrade_agent(VERSION, RELEASE)
        assert again.ok and [posts(a) for a in fleet] == [1] * 6


@contextmanager
def _journal_breaks_when(monkeypatch, target, step, status):
    """Within, the journal cannot be written once ``target``'s ``step`` reaches ``status``."""
    from obshell_sdk import _journal

    real = _journal.Journal.step

    def step_(self, target_, step_, status_, **kw):
        if (target_, step_, status_) == (target, step, status):
            raise sqlite3.OperationalError("disk I/O error")
        return real(self, target_, step_, status_, **kw)

    with monkeypatch.context() as patch:
        patch.setattr(_journal.Journal, "step", step_)
        yield


def test_a_journal_that_cannot_be_written_mid_run_stops_it_and_a_rerun_finds_the_task(
        tmp_path, monkeypatch):
    """The upgrade was created but not journaled: the caller is told the rollout stopped (not
    that a cluster failed) and which targets stand where; the rerun finds the task it made
    (journaled as being sent) and follows it, without a second upgrade."""
    with ExitStack() as stack:
        fleet = agents(stack, 3)
        journal = tmp_path / "r.db"
        with _journal_breaks_when(monkeypatch, targets(fleet)[1], "upgrade", "created"), \
                pytest.raises(RolloutStoppedError) as info:
            rollout(fleet, journal, canary=2).upgrade_agent(VERSION, RELEASE)  # a canary's turn
        error = info.value
        assert isinstance(error.__cause__, sqlite3.OperationalError)
        assert f"{targets(fleet)[1]}'s turn" in str(error) and "disk I/O error" in str(error)
        assert repr(str(journal)) in str(error) and "again" in str(error)
        assert outcomes(error.report) == ["succeeded", "unknown", "skipped"]
        assert error.report.results[targets(fleet)[2]].started_at is None
        hit = error.report.results[targets(fleet)[1]]  # what the journal holds of it
        assert hit.started_at is not None and len(hit.dag_ids) == 1  # its pre-check
        assert [posts(a) for a in fleet] == [1, 1, 0]
        again = rollout(fleet, journal).upgrade_agent(VERSION, RELEASE)
        assert again.ok and [posts(a) for a in fleet] == [1, 1, 1]


def test_a_journal_row_changed_by_hand_mid_run_is_a_stopped_rollout_not_bad_input(
        tmp_path, monkeypatch):
    """Clusters were started: not an InvalidArgumentError ("nothing was sent")."""
    from obshell_sdk import _rollout_steps

    real = _rollout_steps.TargetRun.run

    def run(self, plan):  # someone edits the journal while the upgrade runs
        real(self, plan)
        db = sqlite3.connect(journal)
        db.execute("UPDATE steps SET dag_id = 'abc' WHERE target = ?", (self.target,))
        db.commit()
        db.close()

    monkeypatch.setattr(_rollout_steps.TargetRun, "run", run)
    with ExitStack() as stack:
        fleet = agents(stack, 2)
        journal = tmp_path / "r.db"
        with pytest.raises(RolloutStoppedError, match="changed by hand") as info:
            rollout(fleet, journal, parallel=1).upgrade_agent(VERSION, RELEASE)
        assert isinstance(info.value.__cause__, InvalidArgumentError)
        assert not isinstance(info.value, InvalidArgumentError)
        assert outcomes(info.value.report) == [
            "unknown", "skipped"]
        assert [posts(a) for a in fleet] == [1, 0]


@pytest.mark.parametrize("as_json", [False, True])
def test_the_cli_says_a_stopped_rollout_with_its_report_and_exit_8(
        tmp_path, monkeypatch, capsys, as_json):
    from obshell_sdk._cli import main

    with ExitStack() as stack:
        fleet = agents(stack, 2)
        journal = tmp_path / "r.db"
        (tmp_path / "targets").write_text("\n".join(targets(fleet)) + "\n")
        monkeypatch.setenv("OBSHELL_PASSWORD", PASSWORD)
        with _journal_breaks_when(monkeypatch, targets(fleet)[0], "upgrade", "created"):
            code = main([*(["--json"] if as_json else []), "rollout", "agent", "--targets",
                         str(tmp_path / "targets"), "--journal", str(journal), "--parallel",
                         "1", VERSION, RELEASE])
        out, err = capsys.readouterr()
        assert code == 8
        if as_json:
            said = json.loads(out)
            assert [r["outcome"] for r in said["results"].values()] == ["unknown", "skipped"]
            assert said["stopped"]["target"] == targets(fleet)[0]
            assert "disk I/O error" in said["stopped"]["error"]
        else:
            assert f"{targets(fleet)[0]}  unknown" in out
            assert f"{targets(fleet)[1]}  skipped" in out
        assert "the rollout stopped" in err and "the report on stdout says" in err
        assert "run the same command again to resume it" in err
        assert "Traceback" not in err and ".report" not in err and str(journal) not in err
        assert [posts(a) for a in fleet] == [1, 0]


@pytest.mark.parametrize("history", [True, False])
def test_a_pre_check_made_but_not_journaled_and_ended_since_is_found_by_the_rerun(
        tmp_path, monkeypatch, history):
    """The runner stopped between the pre-check's reply and its journaling; by the rerun the
    pre-check has ended, so obshell lists it only in its whole history (4.2.6 on): the rerun
    finds it there and goes on, without a second pre-check. An older agent: unknown."""
    from obshell_sdk import _lookup

    monkeypatch.setattr(_lookup, "RECOVERY_SECONDS", 1.0)
    with FakeAgent(password=PASSWORD, stage_seconds=0.3) as agent:  # seconds, as real ones
        agent.dag_history = history
        journal = tmp_path / "r.db"
        with _journal_breaks_when(monkeypatch, targets([agent])[0], "check", "created"), \
                pytest.raises(RolloutStoppedError):
            rollout([agent], journal).upgrade_agent(VERSION, RELEASE)
        (check,) = agent.dags.values()
        deadline = time.monotonic() + 10
        while check.state != "SUCCEED" and time.monotonic() < deadline:
            time.sleep(0.02)
        again = rollout([agent], journal).upgrade_agent(VERSION, RELEASE)
        (result,) = again.results.values()
        assert result.outcome is (TargetOutcome.SUCCEEDED if history else
                                  TargetOutcome.UNKNOWN), str(again)
        assert posts(agent, "/api/v1/agent/upgrade/check") == 1
        assert posts(agent) == (1 if history else 0)


def test_a_system_exit_in_a_worker_reaches_the_caller_as_it_is(tmp_path):
    """Not ours to reword (an auth callable's SystemExit, say): raised as it is, and no new
    cluster starts after it."""
    def auth(target):
        if target == targets(fleet)[1]:
            raise SystemExit(3)
        return PasswordAuth(PASSWORD)

    with ExitStack() as stack:
        fleet = agents(stack, 4)
        journal = tmp_path / "r.db"
        with pytest.raises(SystemExit):
            rollout(fleet, journal, auth=auth, parallel=1).upgrade_agent(VERSION, RELEASE)
        assert [posts(a) for a in fleet] == [1, 0, 0, 0]


def test_a_rollout_stopped_while_revisiting_reports_failed_targets_as_failed(
        tmp_path, monkeypatch):
    """The journal says which ones failed: a stop among their revisits leaves them failed
    in the report, not unknown."""
    from obshell_sdk import _rollout_run

    failing = {"fail_stage": 2, "fail_times": 99}
    with ExitStack() as stack:
        fleet = agents(stack, 4, {0: failing, 1: failing, 2: failing})
        journal = tmp_path / "r.db"
        first = rollout(fleet, journal, max_failures=9).upgrade_agent(VERSION, RELEASE)
        assert first.count("failed") == 3, str(first)

        def revisit(*args):
            raise RuntimeError("a bug")

        monkeypatch.setattr(_rollout_run, "revisit", revisit)
        with pytest.raises(RolloutStoppedError) as info:
            rollout(fleet, journal, parallel=1).upgrade_agent(VERSION, RELEASE)
        assert outcomes(info.value.report) == [
            "failed", "failed", "failed", "succeeded"]


def test_another_program_s_database_is_not_taken_for_a_journal(tmp_path):
    import sqlite3

    other = tmp_path / "app.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    db.close()
    with ExitStack() as stack:
        [agent] = agents(stack, 1)
        with pytest.raises(InvalidArgumentError, match="holds other tables: notes"):
            rollout([agent], other).upgrade_agent(VERSION, RELEASE)
        assert agent.requests == []
    with sqlite3.connect(other) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master")]
    db.close()
    assert tables == ["notes"]  # none of the journal's added


def test_a_new_send_journals_its_own_task_listing_even_a_failed_one(tmp_path):
    """A rerun's POST whose listing failed must not be judged by the last run's listing."""
    from obshell_sdk._journal import Journal

    journal = Journal(str(tmp_path / "j.db"), {"kind": "agent"}, ["h:1"])
    try:
        journal.step("h:1", "check", "sending", sent_at=100.0, existed=frozenset({"111"}))
        journal.step("h:1", "check", "unsent")
        assert journal.target("h:1").steps["check"].existed == frozenset({"111"})
        journal.step("h:1", "check", "sending", sent_at=200.0, existed=None)
        step = journal.target("h:1").steps["check"]
        assert (step.sent_at, step.existed) == (200.0, None)
    finally:
        journal.close()



def test_a_journal_has_one_runner_at_a_time(tmp_path):
    """Two runners on one journal could each send a step's create call; the second is
    refused while the first holds it, and welcome once it is done."""
    from obshell_sdk._journal import Journal

    path = str(tmp_path / "j.db")
    first = Journal(path, {"kind": "agent"}, ["h:1"])
    try:
        with pytest.raises(InvalidArgumentError, match="in use by another runner"):
            Journal(path, {"kind": "agent"}, ["h:1"])
        with pytest.raises(InvalidArgumentError, match="in use"):
            Rollout(["h:1"], auth=PasswordAuth(PASSWORD), journal=path).upgrade_agent(
                VERSION, RELEASE)
        os.symlink(path, tmp_path / "alias.db")  # the same journal under another name
        with pytest.raises(InvalidArgumentError, match="in use by another runner"):
            Journal(str(tmp_path / "alias.db"), {"kind": "agent"}, ["h:1"])
    finally:
        first.close()
    Journal(path, {"kind": "agent"}, ["h:1"]).close()  # free again


def test_a_runner_that_cannot_take_the_lock_is_refused_never_run_unlocked(tmp_path,
                                                                          monkeypatch):
    from obshell_sdk import _runner_lock
    from obshell_sdk._journal import Journal

    missing = tmp_path / "nodir" / "j.db"  # a typo in its path is not a permissions matter
    with pytest.raises(InvalidArgumentError, match=r"its directory .*nodir does not exist; "
                       r"create it, or give a journal path in one that does"):
        Journal(str(missing), {"kind": "agent"}, ["h:1"])
    assert not missing.parent.exists()
    path = tmp_path / "j.db"
    (tmp_path / "j.db.lock").mkdir()  # no file to lock there
    with pytest.raises(InvalidArgumentError, match=r"cannot open its runner lock .*j\.db\.lock"):
        Journal(str(path), {"kind": "agent"}, ["h:1"])
    (tmp_path / "j.db.lock").rmdir()
    # another user's lock file (made 0644 by their runner) is opened for reading: the
    # flock still keeps the two runners apart
    opened = []
    real_open = os.open

    def as_another_user(name, flags, *mode):
        if name.endswith(".lock") and flags & os.O_RDWR:
            raise PermissionError(13, "Permission denied")
        opened.append(flags)
        return real_open(name, flags, *mode)

    os.close(real_open(str(path) + ".lock", os.O_CREAT | os.O_RDWR, 0o644))
    first = Journal(str(path), {"kind": "agent"}, ["h:1"])
    try:
        monkeypatch.setattr(_runner_lock.os, "open", as_another_user)
        with pytest.raises(InvalidArgumentError, match="in use by another runner"):
            Journal(str(path), {"kind": "agent"}, ["h:1"])
        assert opened == [os.O_RDONLY]
    finally:
        monkeypatch.undo()
        first.close()


def test_a_lock_file_removed_under_a_runner_taking_it_is_made_again_and_held(tmp_path,
                                                                           monkeypatch):
    """A refused runner removes the lock file it made, still holding it; a runner that
    opened that file meanwhile and locks it once freed must not run on a file no longer at
    the path (a third would make a new one and run beside it): it takes the new one."""
    from obshell_sdk import _runner_lock
    from obshell_sdk._runner_lock import RunnerLock

    path, lock = str(tmp_path / "j.db"), tmp_path / "j.db.lock"
    real_open = _runner_lock._open
    calls = []

    def removed_once_opened(name):
        got = real_open(name)
        calls.append(name)
        if len(calls) == 1:
            os.unlink(name)  # as the refused runner does, between this open and flock
        return got

    monkeypatch.setattr(_runner_lock, "_open", removed_once_opened)
    first = RunnerLock(path)
    monkeypatch.undo()
    try:
        assert lock.exists() and len(calls) == 2
        with pytest.raises(InvalidArgumentError, match="in use by another runner"):
            RunnerLock(path)
    finally:
        first.release()
    again = RunnerLock(path)  # free again; and a refused one removes only what it made
    again.release(refused=True)
    assert lock.exists()
    RunnerLock(str(tmp_path / "k.db")).release(refused=True)
    assert not (tmp_path / "k.db.lock").exists()


def test_a_lock_file_replaced_at_every_try_is_refused_not_spun_on(tmp_path, monkeypatch):
    """A file system where the lock path never names the file just locked (stat and fstat
    disagreeing) looped without end; after a bounded number of tries it is a typed error."""
    from obshell_sdk import _runner_lock
    from obshell_sdk._runner_lock import RunnerLock

    monkeypatch.setattr(_runner_lock, "_same_file", lambda fd, path: False)
    with pytest.raises(InvalidArgumentError, match="was a new file at each of 100 tries"):
        RunnerLock(str(tmp_path / "j.db"))
    monkeypatch.undo()
    RunnerLock(str(tmp_path / "j.db")).release()  # no descriptor was left holding it


def test_a_dangling_symlink_at_the_lock_path_makes_its_target_never_spins(tmp_path,
                                                                         monkeypatch):
    """O_EXCL sees a dangling link as a file, an open without O_CREAT as none: the taking
    looped on the two without end (the lock file made again after a refused runner's
    removal). As before the refused runner's cleanup, the link's target is made."""
    from obshell_sdk import _runner_lock
    from obshell_sdk._runner_lock import RunnerLock

    lock, target = tmp_path / "j.db.lock", tmp_path / "kept" / "j.lock"
    lock.symlink_to(target)
    opens = []
    real_open = os.open

    def counted(name, flags, *mode):
        if name == str(lock):
            opens.append(flags)
            assert len(opens) <= 10, "the lock's open loops"
        return real_open(name, flags, *mode)

    monkeypatch.setattr(_runner_lock.os, "open", counted)
    try:
        with pytest.raises(InvalidArgumentError, match=r"cannot open its runner lock"):
            RunnerLock(str(tmp_path / "j.db"))  # the link's directory is missing: said so
        target.parent.mkdir()
        RunnerLock(str(tmp_path / "j.db")).release(refused=True)  # not said made: left
    finally:
        monkeypatch.undo()
    assert target.exists() and lock.is_symlink()


@pytest.mark.parametrize("sql", [
    "UPDATE targets SET outcome = 'bogus'",
    "UPDATE steps SET existed = '5'",
    "UPDATE steps SET existed = '{\"a\": 1}'",
    "UPDATE steps SET dag_id = 'abc'",
    "UPDATE steps SET status = 'sending', dag_id = NULL, sent_at = 'yesterday'",
    "UPDATE steps SET status = 'zzz'",
    "UPDATE targets SET started_at = 'x'",
    "UPDATE targets SET position = 'x'",
    "UPDATE targets SET error = x'41'",  # a blob, not text
])
def test_a_journal_changed_by_hand_is_refused_with_a_typed_error(tmp_path, sql):
    """Rows no rollout writes: an InvalidArgumentError on `journal`, not a raw ValueError."""
    from obshell_sdk._journal_records import _OUTCOMES

    assert _OUTCOMES == {o.value for o in TargetOutcome}  # kept in step with the enum
    journal = tmp_path / "r.db"
    with ExitStack() as stack:
        fleet = agents(stack, 1, {0: {"fail_stage": 2, "fail_times": 99}})
        rollout(fleet, journal).upgrade_agent(VERSION, RELEASE)
        db = sqlite3.connect(journal)
        db.executescript(sql)
        db.close()
        fleet[0].clear_requests()
        with pytest.raises(InvalidArgumentError, match="changed by hand") as info:
            rollout(fleet, journal).upgrade_agent(VERSION, RELEASE)
        assert info.value.argument == "journal" and fleet[0].requests == []
        status = _cli("rollout", "status", "--journal", str(journal))
        out = subprocess.run(status[0], env=status[1], capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL, check=False)
        assert out.returncode == 2 and "changed by hand" in out.stderr, out.stderr


@pytest.mark.parametrize("plan", ["{bad", "5"])
def test_rollout_status_refuses_a_plan_changed_by_hand(tmp_path, plan):
    """A traceback and exit 1 (read as "a task failed") before; a usage error now."""
    journal = tmp_path / "r.db"
    with ExitStack() as stack:
        rollout(agents(stack, 1), journal).upgrade_agent(VERSION, RELEASE)
    db = sqlite3.connect(journal)
    db.execute("UPDATE meta SET value = ? WHERE key = 'plan'", (plan,))
    db.commit()
    db.close()
    status = _cli("rollout", "status", "--journal", str(journal))
    out = subprocess.run(status[0], env=status[1], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL, check=False)
    assert out.returncode == 2 and "changed by hand" in out.stderr, out.stderr


def _interrupted_script(stage_seconds: float, agents: int, after: str, before: str = "", *,
                        when: str) -> str:
    """A Python rollout SIGINTed once ``when`` holds, then ``after`` (with ``fleet``, ``exc``
    and ``let_go()``); ``before`` runs first (with ``fleet``).

    ``when`` (an expression, with ``fleet``) is checked every 10 ms from the start of the
    rollout: the interrupt comes at the moment the test needs, however slow the machine (a
    fixed delay raced the workers). If it does not hold within 30 s the script says
    ``NEVER READY`` and interrupts anyway. ``let_go()`` waits (up to 20 s) for the rollout's
    workers to end and returns the names of those still alive.
    """
    return f"""
import logging, os, signal, sys, threading, time
from obshell_sdk import PasswordAuth, PollPolicy, Rollout
from obshell_sdk.testing import FakeAgent
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
fleet = [FakeAgent(password="pw", stage_seconds={stage_seconds}).start()
         for _ in range({agents})]
rollout = Rollout([f"127.0.0.1:{{a.port}}" for a in fleet], auth=PasswordAuth("pw"),
                  journal=sys.argv[1], parallel=2, progress=False,
                  poll_policy=PollPolicy(initial=0.05, fraction=0.1, ceiling=0.2, jitter=0))

def workers():
    return [t.name for t in threading.enumerate() if t.name.startswith("obshell-rollout")]

def let_go(limit=20.0):
    deadline = time.monotonic() + limit
    while workers() and time.monotonic() < deadline:
        time.sleep(0.02)
    return workers()

{before}
def interrupt_when_ready():
    deadline = time.monotonic() + 30
    while not ({when}) and time.monotonic() < deadline:
        time.sleep(0.01)
    if not ({when}):
        print("NEVER READY", flush=True)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=interrupt_when_ready, daemon=True).start()
exc = None
try:
    rollout.upgrade_agent("4.3.1.0", "101000012025010101.el7", check=False)
except KeyboardInterrupt as interrupt:
    exc = interrupt
{after}
for a in fleet:
    a.stop()
"""


def _run_script(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """Run ``text`` (an :func:`_interrupted_script`) with a journal in ``tmp_path``.

    Its interrupt must have come at the moment the test needs, not 30 s later at random.
    """
    script = tmp_path / "run.py"
    script.write_text(text)
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "j.db")],
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True, timeout=60, check=False)
    assert "NEVER READY" not in out.stdout, (out.stdout, out.stderr)
    return out


_INTERRUPTED_IN_PYTHON = _interrupted_script(0.15, 4, """
print("NOTES", getattr(exc, "__notes__", ["(before 3.11)"]))
print("ALIVE", let_go())  # the workers let go of their tasks, quietly (the journal is closed)
""", when="any(a.requests_to(f'/api/v1/task/dag/{d}') for a in fleet for d in a.dags)")


def test_ctrl_c_in_python_says_how_to_resume_and_the_workers_end_quietly(tmp_path):
    out = _run_script(tmp_path, _INTERRUPTED_IN_PYTHON)
    assert "NOTES" in out.stdout and "ALIVE []" in out.stdout, (out.stdout, out.stderr)
    if sys.version_info >= (3, 11):
        assert "Run it again with journal" in out.stdout
    assert "ProgrammingError" not in out.stderr and "rollout stopped" not in out.stderr


def test_the_cli_report_says_its_hints_as_commands_aimed_at_each_target(tmp_path):
    """Not "pass the right one to PasswordAuth" or "client.last_maintenance_dag()": commands,
    with the target's --host and --port, since task ids repeat across agents."""
    with ExitStack() as stack:
        # Another upgrade holds this cluster's lock, for an hour: its agent's DAGs are
        # time-driven, so freezing new ones (stages_per_poll=0) would not hold this one.
        locked, other = agents(stack, 2, {0: {"stage_durations": [3600]}})
        locked.create_upgrade_dag()
        (tmp_path / "targets").write_text(f"{locked.host}:{locked.port}\n")
        cmd, env = _cli("rollout", "agent", "--targets", str(tmp_path / "targets"),
                        "--journal", str(tmp_path / "a.db"), "--no-check", VERSION, RELEASE)
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL, check=False)
        assert out.returncode == 1, out.stderr
        aimed = f"obshell-sdk --host {locked.host} --port {locked.port} task"
        for said in (out.stdout, out.stderr):  # nor the target's client, as Python has it
            assert f"{aimed} list" in said and "client." not in said, said
            assert "ObshellClient" not in said and "wait ID" in said, said
        cmd, env = _cli("--min-key-bits", "1024", "rollout", "status", "--journal",
                        str(tmp_path / "a.db"))
        status = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL, check=False)
        assert f"{aimed[:-5]} --min-key-bits 1024 task list" in status.stdout, status.stdout
        cmd, env = _cli("--json", "rollout", "status", "--journal", str(tmp_path / "a.db"))
        status = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL, check=False)
        (shown,) = json.loads(status.stdout)["targets"]
        assert f"{aimed} list" in shown["error"] and "client." not in shown["error"], shown
        (tmp_path / "targets").write_text(f"{other.host}:{other.port}\n")
        cmd, env = _cli("rollout", "agent", "--targets", str(tmp_path / "targets"),
                        "--journal", str(tmp_path / "b.db"), "--no-check", VERSION, RELEASE,
                        env_extra={"OBSHELL_PASSWORD": "wrong"})
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL, check=False)
        assert out.returncode == 1, out.stderr
        assert "OBSHELL_PASSWORD" in out.stdout and "PasswordAuth" not in out.stdout, out.stdout
        cmd, env = _cli("--json", "rollout", "agent", "--targets", str(tmp_path / "targets"),
                        "--journal", str(tmp_path / "c.db"), "--no-check", VERSION, RELEASE,
                        env_extra={"OBSHELL_PASSWORD": "wrong"})
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL, check=False)
        (result,) = json.loads(out.stdout)["results"].values()
        assert "OBSHELL_PASSWORD" in result["error"] and "PasswordAuth" not in result["error"]


def test_a_target_already_at_the_version_succeeds_untouched_with_a_note(tmp_path):
    """A fleet rerun with a new journal after some clusters were upgraded by hand: obshell
    would refuse their upgrade as not newer; they are left alone and reported succeeded."""
    with ExitStack() as stack:
        done = stack.enter_context(FakeAgent(password=PASSWORD, version=VERSION,
                                             release=RELEASE.split(".")[0]))
        [todo] = agents(stack, 1)
        report = rollout([done, todo], tmp_path / "r.db").upgrade_agent(VERSION, RELEASE)
        assert report.ok, str(report)
        first, second = report.results.values()
        assert first.note is not None and "already runs obshell" in first.note
        assert first.error is None and first.dag_ids == ()
        assert done.dags == {} and not [r for r in done.requests if r.method == "POST"]
        assert second.note is None and len(second.dag_ids) == 2
        assert "already runs obshell" in str(report)
        again = rollout([done, todo], tmp_path / "r.db").upgrade_agent(VERSION, RELEASE)
        assert again.results[first.target].note == first.note  # read back from the journal


def test_a_rerun_given_the_missing_package_uploads_it_to_a_failed_cluster(tmp_path):
    """Forgot the package: the pre-check fails at its download. A rerun with the package
    uploads it to the failed cluster too (a retry by hand before that fails alike) and says
    to retry; after the retry, the next rerun goes on and makes no second task."""
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with FakeAgent(password=PASSWORD, stage_seconds=0.03, require_packages=True) as agent:
        journal = tmp_path / "r.db"
        first = rollout([agent], journal).upgrade_agent(VERSION, RELEASE)
        (failed,) = first.results.values()
        assert failed.outcome is TargetOutcome.FAILED, str(first)
        second = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, package=str(rpm))
        (still,) = second.results.values()
        assert still.outcome is TargetOutcome.FAILED, str(second)
        assert uploads(agent) == 1 and "upload done now" in (still.error or "")
        assert "retry task 11 by hand" in (still.error or "")
        with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
            client.task(failed.dag_ids[0]).retry()
        third = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, package=str(rpm))
        assert third.ok, str(third)
        assert uploads(agent) == 1  # not sent again
        assert posts(agent, "/api/v1/agent/upgrade/check") == 1 and posts(agent) == 1


def test_failed_clusters_are_revisited_in_parallel_not_one_by_one(tmp_path, monkeypatch):
    """A rerun given the missing package revisits the failed clusters ``parallel`` at once:
    each may upload a large package. Each revisit waits here for the other one; one at a
    time, the first would wait in vain and break the barrier."""
    import threading

    from obshell_sdk import _rollout_run
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with ExitStack() as stack:
        fleet = agents(stack, 2, {0: {"require_packages": True}, 1: {"require_packages": True}})
        journal = tmp_path / "r.db"
        first = rollout(fleet, journal, max_failures=2).upgrade_agent(VERSION, RELEASE)
        assert first.count("failed") == 2, str(first)
        barrier, real = threading.Barrier(2, timeout=20), _rollout_run.revisit

        def revisit(*args):
            barrier.wait()
            return real(*args)

        monkeypatch.setattr(_rollout_run, "revisit", revisit)
        second = rollout(fleet, journal, parallel=2).upgrade_agent(
            VERSION, RELEASE, package=str(rpm))
        assert [uploads(a) for a in fleet] == [1, 1], str(second)
        assert all("upload done now" in (r.error or "") for r in second.results.values())


def test_a_package_new_to_a_rerun_is_not_uploaded_while_a_task_is_under_way(tmp_path):
    """The upgrade runs (the agent may be restarting for it): an upload given only now comes
    too late for it, and failing it would misreport the cluster as unreachable."""
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with FakeAgent(password=PASSWORD, stage_seconds=0.2) as agent:
        journal = tmp_path / "r.db"
        first = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False,
                                                        timeout=0.3)
        assert [r.outcome for r in first.results.values()] == [TargetOutcome.UNKNOWN]
        again = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False,
                                                        package=str(rpm))
        assert again.ok, str(again)
        assert uploads(agent) == 0 and posts(agent) == 1


def test_a_failed_task_retried_by_hand_is_followed_without_uploading_first(tmp_path):
    """The rerun reads the failed task before it uploads anything: a retry under way gets
    no upload (which, failing while the agent restarts, once left the target failed)."""
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with FakeAgent(password=PASSWORD, stage_seconds=0.05, fail_stage=2) as agent:
        journal = tmp_path / "r.db"
        first = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False)
        (failed,) = first.results.values()
        assert failed.outcome is TargetOutcome.FAILED, str(first)
        with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
            client.task(failed.dag_ids[0]).retry()
        again = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False,
                                                        package=str(rpm))
        assert again.ok, str(again)
        assert uploads(agent) == 0 and posts(agent) == 1


def test_a_target_at_the_version_whose_upgrade_failed_after_the_restart_is_not_a_success(
        tmp_path):
    """/info shows the new version once the agent restarted (stage 7 of 9); a failed
    upgrade after that still holds the lock: not "already there". Refused, and told why and
    what to do next (not obshell's "verify the parameters", the refusal of an upgrade sent
    to an agent at its version): nothing is sent."""
    with FakeAgent(password=PASSWORD, version=VERSION, release=RELEASE.split(".")[0]) as agent:
        dag = agent.create_upgrade_dag(VERSION, RELEASE)
        agent.set_dag_progression(stages_per_poll=0)
        agent.fail_dag(dag)
        report = rollout([agent], tmp_path / "r.db").upgrade_agent(VERSION, RELEASE)
        (result,) = report.results.values()
        assert result.outcome is TargetOutcome.REFUSED and result.note is None, str(report)
        said = result.error or ""
        assert said.startswith(f"already runs obshell {VERSION}-"), said
        assert f"task {dag} 'Upgrade obshell {VERSION}-{RELEASE}' is unfinished there, FAILED," \
            " and may hold the cluster's lock" in said, said
        assert f".task('{dag}').refresh(); wait for it to end, or, if it failed (or was " \
            "cancelled), retry it" in said
        assert "verify" not in said and not [r for r in agent.requests if r.method == "POST"]


def test_a_create_whose_outcome_was_never_recorded_gets_no_upload_before_its_lookup(
        tmp_path, monkeypatch):
    """A step journaled 'sending' may have made its task: a package new to the rerun is
    not uploaded before the lookup follows that task."""
    from obshell_sdk import OutcomeUnknownError, _creation
    from obshell_sdk.testing import build_rpm

    def lookup_fails(*args, **kwargs):
        raise OutcomeUnknownError("the lookup failed (a test)", method="POST",
                                  path="/api/v1/agent/upgrade", agent="a", dag_name="n")

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with FakeAgent(password=PASSWORD, stage_seconds=0.2) as agent:
        journal = tmp_path / "r.db"
        agent.drop_reply_after_create = True
        with monkeypatch.context() as patch:
            patch.setattr(_creation, "find_created_dag", lookup_fails)
            first = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False)
        assert [r.outcome for r in first.results.values()] == [TargetOutcome.UNKNOWN]
        again = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False,
                                                        package=str(rpm))
        assert again.ok, str(again)
        assert uploads(agent) == 0 and posts(agent) == 1


def test_suggested_commands_in_a_rollout_report_repeat_its_tls_options():
    import argparse

    from obshell_sdk import UnderMaintenanceError
    from obshell_sdk._cli_output import tls_words as _tls_words
    from obshell_sdk._cli_rollout import _aimed_at

    line = "UnderMaintenanceError: ... " + UnderMaintenanceError.hint
    args = argparse.Namespace(https=True, ca_bundle="/etc/ca b.pem", min_key_bits="512")
    said = _aimed_at("10.0.0.1:2886", line, _tls_words(args))
    assert ("obshell-sdk --host 10.0.0.1 --port 2886 --ca-bundle '/etc/ca b.pem' "
            "--min-key-bits 512 task list") in said, said
    plain = argparse.Namespace(https=False, ca_bundle=None, min_key_bits=None)
    assert "--port 2886 task list" in _aimed_at("10.0.0.1:2886", line, _tls_words(plain))


def test_rollout_status_as_json_gives_a_success_s_note_as_its_note(tmp_path):
    with FakeAgent(password=PASSWORD, version=VERSION, release=RELEASE.split(".")[0]) as agent:
        journal = tmp_path / "r.db"
        assert rollout([agent], journal).upgrade_agent(VERSION, RELEASE).ok
        argv, env = _cli("--json", "rollout", "status", "--journal", str(journal))
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL, check=False)
        (shown,) = json.loads(out.stdout)["targets"]
        assert shown["outcome"] == "succeeded" and shown["error"] is None
        assert "already runs obshell" in shown["note"]


_WORKERS_LET_GO = _interrupted_script(300, 2, """
alive = let_go()  # a stage lasts 300 s: no change to see; each worker lets go at its next poll
polls = lambda: sum(len([r for r in a.requests if "/task/dag/1" in r.uri]) for a in fleet)
before = polls()
time.sleep(0.5)
running = [sum(d.state == "RUNNING" for d in a.dags.values()) for a in fleet]
print("ALIVE", alive, "POLLS", polls() - before, "RUNNING", running)
""", when="all(any(a.requests_to(f'/api/v1/task/dag/{d}') for d in a.dags) for a in fleet)")


def test_after_ctrl_c_in_python_the_workers_stop_following_their_tasks(tmp_path):
    """A notebook survives Ctrl-C: the workers must not poll on for the tasks' whole length
    (they let go at their next poll, not at the next change they see, which may be many
    minutes away: the journal stayed locked till then; the tasks go on, a rerun follows)."""
    out = _run_script(tmp_path, _WORKERS_LET_GO)
    assert "ALIVE [] POLLS 0 " in out.stdout, (out.stdout, out.stderr)
    assert "RUNNING [1, 1]" in out.stdout  # the upgrades themselves went on


_RERUN_AT_ONCE = _interrupted_script(0.05, 1, before="""
fleet[0].hang_next(1, seconds=2.5, path_prefix="/api/v1/agent/upgrade")
""", when="fleet[0].requests_to('/api/v1/agent/upgrade', 'POST')", after="""
from obshell_sdk import InvalidArgumentError
try:
    rollout.upgrade_agent("4.3.1.0", "101000012025010101.el7", check=False)
    print("RERUN ran")
except InvalidArgumentError as refused:
    print("RERUN refused:", refused)
while any(t.name.startswith("obshell-") and t.name != "obshell-sdk-deadlines"
          for t in threading.enumerate()):
    time.sleep(0.05)
report = rollout.upgrade_agent("4.3.1.0", "101000012025010101.el7", check=False)
posts = [r for r in fleet[0].requests if r.uri.startswith("/api/v1/agent/upgrade")]
(later,) = report.results.values()
print("LATER", later.outcome.value, "POSTS", len(posts))
""")


_LET_GO_WHILE_POLLS_FAIL = _interrupted_script(0.2, 1, before="""
fleet[0].set_dag_faults(restart_at_stage=2)
fleet[0].restart_seconds = 120  # polls fail from about 0.3 s on: no snapshot to see
failed = threading.Event()

class FailedPolls(logging.Handler):
    def emit(self, record):
        if "poll(s) failed" in record.getMessage():
            failed.set()

logging.getLogger("obshell_sdk").addHandler(FailedPolls())
""", when="failed.is_set()", after="""
print("ALIVE", let_go())
""")


def test_after_ctrl_c_the_workers_let_go_while_their_agents_restart(tmp_path):
    """Every agent upgrade restarts its agent: while its polls fail, a worker saw no snapshot
    and let go only when a poll succeeded again or the failure budget (300 s) ran out."""
    out = _run_script(tmp_path, _LET_GO_WHILE_POLLS_FAIL)
    assert "ALIVE []" in out.stdout, (out.stdout, out.stderr)
    assert "poll(s) failed" in out.stderr  # it was interrupted while its polls failed


def test_a_rerun_following_an_unknown_target_s_task_keeps_its_start_time(tmp_path):
    with FakeAgent(password=PASSWORD, stage_seconds=0.15) as agent:
        journal = tmp_path / "r.db"
        first = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False,
                                                        timeout=0.3)
        (unknown,) = first.results.values()
        assert unknown.outcome is TargetOutcome.UNKNOWN, str(first)
        second = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False)
        (done,) = second.results.values()
        assert done.outcome is TargetOutcome.SUCCEEDED and posts(agent) == 1
        assert done.started_at == unknown.started_at  # the task's own start, not the rerun's
        assert (done.ended_at - done.started_at).total_seconds() > 0.5


def test_after_ctrl_c_the_journal_stays_locked_while_a_request_is_under_way(tmp_path):
    """A rerun started at once, in the same notebook, must not send again what an
    interrupted run's worker is still sending (an upload, a create call): it is refused
    until that worker has let go, then resumes the target."""
    out = _run_script(tmp_path, _RERUN_AT_ONCE)
    assert "RERUN refused:" in out.stdout and "interrupted" in out.stdout, (out.stdout,
                                                                            out.stderr)
    # the hung POST was never acted on (hang_next): one POST in all, and the later rerun,
    # which cannot tell it from a lost reply, says "unknown" instead of sending it again
    assert "LATER unknown POSTS 1" in out.stdout, (out.stdout, out.stderr)


def test_a_target_followed_on_after_a_retry_by_hand_is_open_again_if_the_runner_dies(
        tmp_path, monkeypatch):
    """Once a rerun decides to follow a retried task on, the journal no longer says the
    target failed: a runner that dies before the end leaves it open, and the next rerun
    finishes it (it stayed "failed" for good, its upgrade done and never followed)."""
    from obshell_sdk._journal import Journal

    with FakeAgent(password=PASSWORD, stage_seconds=0.03, fail_stage=3) as agent:
        journal = tmp_path / "r.db"
        first = rollout([agent], journal).upgrade_agent(VERSION, RELEASE)
        (failed,) = first.results.values()
        assert failed.outcome is TargetOutcome.FAILED, str(first)
        agent.set_dag_faults(fail_stage=None)
        with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
            client.task(failed.dag_ids[0]).retry().wait(30)

        def dies(*args, **kwargs):
            raise RuntimeError("the runner died here (a test)")

        with monkeypatch.context() as patch:
            patch.setattr(Journal, "end", dies)
            with pytest.raises(RolloutStoppedError) as info:
                rollout([agent], journal).upgrade_agent(VERSION, RELEASE)
            assert isinstance(info.value.__cause__, RuntimeError)
        last = rollout([agent], journal).upgrade_agent(VERSION, RELEASE)
        assert last.ok, str(last)
        assert posts(agent, "/api/v1/agent/upgrade/check") == 1 and posts(agent) == 1


def test_already_there_after_a_refused_create_is_a_success_not_refused_forever(tmp_path):
    """The lock holder that refused this rollout's upgrade was the same upgrade, by other
    means: once it ended, the rerun finds the target at the version (an 'unsent' step is
    no task)."""
    with FakeAgent(password=PASSWORD, stage_seconds=0.1) as agent:
        holder = agent.create_upgrade_dag(VERSION, RELEASE)
        journal = tmp_path / "r.db"
        first = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False)
        assert [r.outcome for r in first.results.values()] == [TargetOutcome.REFUSED]
        with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
            client.task(holder).wait(30)
        again = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False)
        (result,) = again.results.values()
        assert result.outcome is TargetOutcome.SUCCEEDED and "already runs" in (
            result.note or ""), str(again)
        assert posts(agent) == 1  # the refused one only


def test_a_target_whose_task_is_under_way_is_not_reported_skipped(tmp_path):
    """max_failures reached: no new cluster starts, but one whose task runs (retried by
    hand) is not "not started": unknown, and the rerun follows it."""
    import socket

    with socket.socket() as probe:  # a canary that cannot be reached
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    with FakeAgent(password=PASSWORD, stage_seconds=0.03, fail_stage=5) as agent:
        journal = tmp_path / "r.db"
        live = f"{agent.host}:{agent.port}"
        first = Rollout([live], auth=PasswordAuth(PASSWORD), journal=journal,
                        poll_policy=FAST, progress=False).upgrade_agent(VERSION, RELEASE,
                                                                        check=False)
        (failed,) = first.results.values()
        agent.set_dag_faults(fail_stage=None)
        agent.set_dag_progression(stages_per_poll=0)  # the retry stays under way
        with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
            client.task(failed.dag_ids[0]).retry()
        report = Rollout([dead, live], auth=PasswordAuth(PASSWORD), journal=journal,
                         poll_policy=FAST, progress=False, canary=1).upgrade_agent(
            VERSION, RELEASE, check=False)
        assert report.results[dead].outcome is TargetOutcome.UNREACHABLE
        held = report.results[live]
        assert held.outcome is TargetOutcome.UNKNOWN and "under way" in (held.error or "")
        agent.set_dag_progression(stage_seconds=0.03)
        last = Rollout([live], auth=PasswordAuth(PASSWORD), journal=journal,
                       poll_policy=FAST, progress=False).upgrade_agent(VERSION, RELEASE,
                                                                      check=False)
        assert last.ok, str(last)
        assert posts(agent) == 1


def test_a_failed_task_being_rolled_back_gets_no_upload(tmp_path):
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with FakeAgent(password=PASSWORD, stage_seconds=0.03, fail_stage=3) as agent:
        journal = tmp_path / "r.db"
        (failed,) = rollout([agent], journal).upgrade_agent(
            VERSION, RELEASE, check=False).results.values()
        with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
            client.task(failed.dag_ids[0]).rollback()
        again = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False,
                                                        package=str(rpm))
        assert [r.outcome for r in again.results.values()] == [TargetOutcome.FAILED]
        assert uploads(agent) == 0


def test_a_failed_task_that_cannot_be_read_says_so_in_the_result(tmp_path):
    with FakeAgent(password=PASSWORD, stage_seconds=0.03, fail_stage=3) as agent:
        journal = tmp_path / "r.db"
        rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False)
        agent.fail_next(5, status=503, path_prefix="/api/v1/task/dag/1")
        again = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False)
        (result,) = again.results.values()
        assert result.outcome is TargetOutcome.FAILED
        assert "in this run its task not read again" in (result.error or ""), result.error


def test_rollout_status_judges_a_run_s_targets_when_given_them(tmp_path):
    """A mistyped target of an earlier run stays in the journal: --targets leaves it out."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        typo = f"127.0.0.1:{probe.getsockname()[1]}"
    with FakeAgent(password=PASSWORD, stage_seconds=0.03) as agent:
        live = f"{agent.host}:{agent.port}"
        journal = tmp_path / "r.db"
        Rollout([live, typo], auth=PasswordAuth(PASSWORD), journal=journal, poll_policy=FAST,
                progress=False, max_failures=2).upgrade_agent(VERSION, RELEASE, check=False)
        (tmp_path / "fixed.txt").write_text(live + "\n")
        argv, env = _cli("rollout", "status", "--journal", str(journal))
        whole = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL, check=False)
        argv, env = _cli("rollout", "status", "--journal", str(journal), "--targets",
                         str(tmp_path / "fixed.txt"))
        part = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, check=False)
        assert whole.returncode == 1 and typo in whole.stdout
        assert part.returncode == 0 and typo not in part.stdout, part.stdout
        # A target the journal never saw (another part of the fleet, the wrong journal) is
        # said, and the rollout is not done: exit 8, not 0.
        (tmp_path / "more.txt").write_text(f"{live}\n127.0.0.1:1\n")
        for json_flag in ([], ["--json"]):
            argv, env = _cli("rollout", "status", "--journal", str(journal), "--targets",
                             str(tmp_path / "more.txt"), *json_flag)
            more = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL, check=False)
            assert more.returncode == 8, more.stdout + more.stderr
            assert "127.0.0.1:1" in more.stdout and "not in this journal" in more.stdout
        shown = {t["target"]: t for t in json.loads(more.stdout)["targets"]}
        assert shown["127.0.0.1:1"]["outcome"] is None
        assert shown["127.0.0.1:1"]["position"] is None and shown[live]["position"] == 0
        assert shown[live]["outcome"] == "succeeded"
        # times as a run's --json report gives them: ISO 8601, in UTC
        started = datetime.fromisoformat(shown[live]["started_at"])
        assert started.utcoffset() == timedelta(0)
        assert abs(started.timestamp() - time.time()) < 120


def test_a_skipped_target_was_not_started(tmp_path):
    with ExitStack() as stack:
        fleet = agents(stack, 2, {0: {"fail_stage": 2, "fail_times": 99}})
        report = rollout(fleet, tmp_path / "r.db", parallel=1).upgrade_agent(
            VERSION, RELEASE, check=False)
        skipped = report.results[targets(fleet)[1]]
        assert skipped.outcome is TargetOutcome.SKIPPED and skipped.started_at is None
        from obshell_sdk._journal import read_targets

        (record,) = [r for r in read_targets(str(tmp_path / "r.db"))
                     if r.target == skipped.target]
        assert record.started_at is None  # so `rollout status` shows no elapsed time


def test_a_failed_upload_to_a_failed_target_is_said_as_such(tmp_path):
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with FakeAgent(password=PASSWORD, stage_seconds=0.03, fail_stage=3) as agent:
        journal = tmp_path / "r.db"
        rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False)
        agent.fail_next(3, status=503, path_prefix="/api/v1/package")
        again = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False,
                                                        package=str(rpm))
        (result,) = again.results.values()
        assert result.outcome is TargetOutcome.FAILED
        assert "in this run an upload failed" in (result.error or ""), result.error


def test_a_package_given_after_a_skipped_check_goes_before_the_upgrade_it_makes(tmp_path):
    """The check failed for want of the package and was skipped by hand: the rerun follows
    it on, then uploads the package before it makes the upgrade (which failed without)."""
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with FakeAgent(password=PASSWORD, stage_seconds=0.03, require_packages=True) as agent:
        journal = tmp_path / "r.db"
        (failed,) = rollout([agent], journal).upgrade_agent(VERSION, RELEASE).results.values()
        assert failed.outcome is TargetOutcome.FAILED
        with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
            client.task(failed.dag_ids[0]).skip().wait(30)
        again = rollout([agent], journal).upgrade_agent(VERSION, RELEASE, package=str(rpm))
        assert again.ok, str(again)
        assert uploads(agent) == 1 and posts(agent) == 1


def test_already_there_after_a_finished_pre_check_is_a_success(tmp_path):
    """The pre-check ran (it holds no lock) and the upgrade was refused by another's lock,
    an upgrade to the same version that then ended: the rerun finds the target there."""
    with FakeAgent(password=PASSWORD, stage_seconds=0.1) as agent:
        holder = agent.create_upgrade_dag(VERSION, RELEASE)
        journal = tmp_path / "r.db"
        first = rollout([agent], journal).upgrade_agent(VERSION, RELEASE)
        assert [r.outcome for r in first.results.values()] == [TargetOutcome.REFUSED]
        with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
            client.task(holder).wait(30)
        again = rollout([agent], journal).upgrade_agent(VERSION, RELEASE)
        (result,) = again.results.values()
        assert result.outcome is TargetOutcome.SUCCEEDED, str(again)
        assert posts(agent) == 1  # the refused one only


@pytest.mark.parametrize("name", ["wave#1.db", "eu?west.db", "batch%201.db"])
def test_rollout_status_reads_a_journal_whose_name_has_uri_characters(tmp_path, name):
    """status opens the journal read only through an SQLite URI: a ``#`` or ``?`` in the
    name cut it there (no such table, and a stray empty file made), a ``%`` crashed."""
    with FakeAgent(password=PASSWORD, stage_seconds=0.03) as agent:
        journal = tmp_path / name
        assert rollout([agent], journal).upgrade_agent(VERSION, RELEASE, check=False).ok
        argv, env = _cli("rollout", "status", "--journal", str(journal))
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "succeeded" in out.stdout
        made = {p.name for p in tmp_path.iterdir()}
        assert made <= {name + tail for tail in ("", ".lock", "-journal", "-wal", "-shm")}, made


@pytest.mark.parametrize(("lines", "said"), [
    ("# nothing but a comment\n", ": no target given"),
    ("127.0.0.1\n", ", line 1: '127.0.0.1' is not 'host:port'\n"),
    ("# fleet\n127.0.0.1:1\n\n127.0.0.1 # db3\n", ", line 4: '127.0.0.1' is not 'host:port'\n"),
    ("127.0.0.1:1\n127.0.0.1:1\n", ": 127.0.0.1:1 is listed twice"),
    ("127.0.0.1:99999\n", ", line 1: port: must be between 1 and 65535, got 99999"),
    ("[zz::1]:2886\n", ", line 1: host: '[zz::1]' is neither a host name nor an IP address"),
    ("https://127.0.0.1:2890\n", ", line 1: host: 'https://127.0.0.1' looks like a URL; give "
     "the bare host, and the port and scheme as host:port and --https\n"),
])
def test_a_bad_targets_file_is_said_of_the_file_in_cli_words(tmp_path, lines, said):
    """Not "targets: no target given" or "is not 'host:port' or (host, port)": the option,
    the file (and the line, when one line is wrong), and no Python tuple form."""
    (tmp_path / "t.txt").write_text(lines)
    for command in (["rollout", "agent", VERSION, RELEASE], ["rollout", "status"]):
        argv, env = _cli(*command, "--targets", str(tmp_path / "t.txt"), "--journal",
                         str(tmp_path / "j.db"))
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL, check=False)
        assert out.returncode == 2, out.stderr
        assert f"--targets: {tmp_path / 't.txt'}{said}" in out.stderr, out.stderr
        assert "(host, port)" not in out.stderr and "port=" not in out.stderr


def test_a_target_past_the_version_is_refused_before_its_upload(tmp_path):
    """obshell refuses a lower version (Agent.Upgrade.ToLowerVersion) only after the package
    is uploaded: a target that already runs a newer obshell is refused, and sent nothing."""
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with ExitStack() as stack:
        newer = stack.enter_context(FakeAgent(password=PASSWORD, version="4.3.2.0"))
        [todo] = agents(stack, 1)
        report = rollout([newer, todo], tmp_path / "r.db").upgrade_agent(
            VERSION, RELEASE, package=str(rpm))
        past, done = report.results.values()
        assert past.outcome is TargetOutcome.REFUSED, str(report)
        assert f"obshell {VERSION}-101000012025010101 is older than the agent's 4.3.2.0" in (
            past.error or ""), past.error
        assert "ToLowerVersion" in (past.error or "") and past.dag_ids == ()
        assert newer.packages == [] and newer.dags == {}
        assert not [r for r in newer.requests if r.method == "POST"]
        assert done.outcome is TargetOutcome.SUCCEEDED and len(todo.packages) == 1


@pytest.mark.parametrize("parallel", [1, 2])
def test_one_agent_named_two_ways_is_upgraded_once(tmp_path, parallel):
    """``localhost:P`` and ``127.0.0.1:P`` are two names of one agent: each made its own
    pre-check there. The second name to reach it is refused, having sent nothing."""
    with FakeAgent(password=PASSWORD, stage_seconds=0.03) as agent, \
            FakeAgent(password=PASSWORD, stage_seconds=0.03) as later:
        names = [f"127.0.0.1:{agent.port}", f"localhost:{agent.port}"]
        report = Rollout([*names, f"127.0.0.1:{later.port}"], journal=tmp_path / "j.db",
                         poll_policy=FAST, progress=False, parallel=parallel,
                         auth=PasswordAuth(PASSWORD)).upgrade_agent(VERSION, RELEASE)
        # a name given twice is no cluster's failure: max_failures=1 skips none for it
        assert sorted(outcomes(report)) == ["refused", "succeeded", "succeeded"], str(report)
        refused = next(r for r in report.results.values() if r.outcome.value == "refused")
        other = next(n for n in names if n != refused.target)
        assert (refused.error or "").startswith(f"the same agent as target {other} (both "
                                                f"answer as 127.0.0.1:{agent.port}, process ")
        assert refused.error.endswith("name each agent one way in the targets; nothing was "
                                      "sent to it") and refused.dag_ids == ()
        assert posts(agent, "/api/v1/agent/upgrade/check") == 1 and posts(agent) == 1


def test_a_journal_whose_steps_page_is_damaged_is_refused_with_a_typed_error(tmp_path,
                                                                               monkeypatch):
    """A journal SQLite opens but cannot read (a damaged page, a bad copy): the resume is
    refused with an InvalidArgumentError on ``journal`` (not a raw sqlite3 error), nothing
    sent; ``rollout status`` says so too (exit 2, no traceback)."""
    journal = tmp_path / "r.db"
    with FakeAgent(password=PASSWORD, stage_seconds=0.03) as agent:
        target = targets([agent])[0]
        with _journal_breaks_when(monkeypatch, target, "upgrade", "created"), \
                pytest.raises(RolloutStoppedError):
            rollout([agent], journal).upgrade_agent(VERSION, RELEASE)
        db = sqlite3.connect(journal)  # the last connection closed: the WAL is in the file
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'steps'"
                             ).fetchone()
        db.close()
        with open(journal, "r+b") as f:  # the steps table's page, scribbled over
            f.seek((root - 1) * page_size)
            f.write(b"\x01" * page_size)
        agent.clear_requests()
        with pytest.raises(InvalidArgumentError, match="cannot be read") as info:
            rollout([agent], journal).upgrade_agent(VERSION, RELEASE)
        assert info.value.argument == "journal" and agent.requests == []
        assert posts(agent) == 0
        status = _cli("rollout", "status", "--journal", str(journal))
        out = subprocess.run(status[0], env=status[1], capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL, check=False)
        assert out.returncode == 2 and "cannot be read" in out.stderr, out.stderr



@pytest.mark.parametrize("parallel", [1, 2])
def test_a_new_name_of_an_agent_a_journal_knows_by_another_makes_no_second_task(
        tmp_path, monkeypatch, parallel):
    """A run stopped after ``127.0.0.1:P``'s pre-check was sent; the rerun lists that agent
    under a second name too (``localhost:P``, first). The new name sent nothing before, so
    it is the one refused: one pre-check and one upgrade on the agent, whatever the order."""
    from obshell_sdk import _lookup

    monkeypatch.setattr(_lookup, "RECOVERY_SECONDS", 1.0)
    with FakeAgent(password=PASSWORD, stage_seconds=0.3) as agent:
        old, new = f"127.0.0.1:{agent.port}", f"localhost:{agent.port}"
        journal = tmp_path / "r.db"
        with _journal_breaks_when(monkeypatch, old, "check", "created"), \
                pytest.raises(RolloutStoppedError):
            Rollout([old], journal=journal, poll_policy=FAST, progress=False,
                    auth=PasswordAuth(PASSWORD)).upgrade_agent(VERSION, RELEASE)
        report = Rollout([new, old], journal=journal, poll_policy=FAST, progress=False,
                         parallel=parallel, auth=PasswordAuth(PASSWORD)
                         ).upgrade_agent(VERSION, RELEASE)
        renamed, resumed = report.results.values()
        assert posts(agent, "/api/v1/agent/upgrade/check") == 1 and posts(agent) == 1
        assert resumed.outcome is TargetOutcome.SUCCEEDED, str(report)
        assert renamed.outcome is TargetOutcome.REFUSED and renamed.dag_ids == (), str(report)
        assert (renamed.error or "").startswith(f"the same agent as target {old} ")
