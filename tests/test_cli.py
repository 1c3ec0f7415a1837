"""The command line, run as a real process (python -m obshell_sdk) against the fake agent."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PASSWORD, ROOT, sigterm_while_following

from obshell_sdk import InvalidArgumentError, ObshellClient
from obshell_sdk.testing import FakeAgent, build_rpm

VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"


def run(agent, *args, password=PASSWORD, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSHELL_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if password is not None:
        env["OBSHELL_PASSWORD"] = password
    env.update(env_extra or {})
    at = [] if "rollout" in args else ["--host", agent.host, "--port", str(agent.port)]
    cmd = [sys.executable, "-m", "obshell_sdk", *at, *args]  # a rollout's are its --targets
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)


def same(agent):
    """How the CLI's suggested commands start after ``run``: on the same agent."""
    return f"obshell-sdk --host {agent.host} --port {agent.port}"


_UPLOADING = re.compile(r"uploading (.+) \((\d+ bytes|\d+\.\d [KMG]iB)\) to (\S+)")
_STORED = re.compile(r"obshell-sdk: stored +\d+  (\S+) .*  uploaded in \d+\.\d s")


def upload_lines(stderr):
    """What a command said of its uploads on stderr (piped), in order.

    ``("uploading", path, host:port)`` before each upload, ``("stored", name)`` after it.
    """
    said = []
    for line in stderr.splitlines():
        if _UPLOADING.fullmatch(line):
            said.append(("uploading", *_UPLOADING.fullmatch(line).group(1, 3)))
        elif _STORED.fullmatch(line):
            said.append(("stored", _STORED.fullmatch(line)[1]))
    return said


@pytest.fixture
def agent():
    with FakeAgent(password=PASSWORD) as a:
        yield a


def test_info_text_and_json(agent):
    out = run(agent, "info", password=None)
    assert out.returncode == 0, out.stderr
    assert "CLUSTER AGENT" in out.stdout and "4.3.0.0" in out.stdout
    out = run(agent, "--json", "info", password=None)
    assert json.loads(out.stdout)["identity"] == "CLUSTER AGENT"
    assert all(r.auth_kind is None for r in agent.requests)


def test_info_names_the_cluster_s_oceanbase_version_when_the_agent_reports_one():
    with FakeAgent(password=PASSWORD, ob_version="4.3.5.0-100000202024123117") as agent:
        out = run(agent, "info", password=None)
    assert out.returncode == 0 and "OceanBase 4.3.5.0-100000202024123117" in out.stdout


def test_upgrade_wait_succeeds_and_prints_json(agent):
    out = run(agent, "--json", "upgrade", VERSION, RELEASE, "--wait", "--timeout", "60")
    assert out.returncode == 0, out.stderr
    detail = json.loads(out.stdout)
    assert detail["state"] == "SUCCEED" and detail["stage"] == 9
    assert PASSWORD not in out.stdout + out.stderr


def test_upgrade_without_wait_prints_the_new_task(agent):
    out = run(agent, "upgrade", VERSION, RELEASE)
    assert out.returncode == 0, out.stderr
    assert "task 1" in out.stdout and "READY" in out.stdout


@pytest.mark.parametrize("fail_stage, code, state", [(None, 0, "SUCCEED"), (2, 1, "FAILED")])
def test_a_check_is_followed_and_its_exit_code_says_how_it_ended(fail_stage, code, state):
    """A script reads exit 0 as "the check passed": it must not mean "the check started"."""
    with FakeAgent(password=PASSWORD, fail_stage=fail_stage) as agent:
        out = run(agent, "--json", "upgrade", VERSION, RELEASE, "--check", "--timeout", "60")
        assert out.returncode == code, out.stderr
        assert json.loads(out.stdout)["state"] == state
        assert [r.path for r in agent.requests if r.method == "POST"] == [
            "/api/v1/agent/upgrade/check"]


def test_failed_task_exits_1_and_shows_the_log():
    with FakeAgent(password=PASSWORD, fail_stage=3) as agent:
        out = run(agent, "upgrade", VERSION, RELEASE, "--wait")
        assert out.returncode == 1
        assert "injected failure at stage 3" in out.stdout + out.stderr
        dag_id = next(iter(agent.dags))
        show = run(agent, "--json", "task", "show", dag_id)
        assert show.returncode == 0 and json.loads(show.stdout)["state"] == "FAILED"
        retried = run(agent, "task", "retry", dag_id, "--wait")
        assert retried.returncode == 0, retried.stderr
        assert "SUCCEED" in retried.stdout


def test_a_running_task_holding_the_lock_is_waited_for_not_retried():
    with FakeAgent(password=PASSWORD, stage_seconds=5) as agent:
        assert run(agent, "upgrade", VERSION, RELEASE).returncode == 0
        second = run(agent, "upgrade", "4.3.1.1", RELEASE)
        assert second.returncode == 11, second.stderr  # locked: a code of its own
        assert f"if it is running, {same(agent)} task wait ID" in second.stderr
        assert f"if it failed (or was cancelled), {same(agent)} task retry" in second.stderr


def test_a_failed_task_holding_the_lock_refuses_package_before_anything_is_uploaded(tmp_path):
    """obshell refused it only after the upload and the pre-check (exit 11 all the same)."""
    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with FakeAgent(password=PASSWORD, fail_stage=3) as agent:
        assert run(agent, "upgrade", VERSION, RELEASE, "--wait").returncode == 1
        (dag_id,) = agent.dags
        agent.clear_requests()
        out = run(agent, "--json", "upgrade", VERSION, RELEASE, "--package", str(rpm))
        assert [r.path for r in agent.requests if r.method != "GET"] == []  # nor a pre-check
    assert out.returncode == 11, out.stderr
    assert (f"the upgrade was not started and nothing was uploaded: task {dag_id} 'Upgrade "
            f"obshell {VERSION}-{RELEASE}' failed and holds the cluster's maintenance lock: "
            "obshell refuses an upgrade until it is retried to success, rolled back or skipped. "
            "If it failed for a package it lacked, upload it, then retry the task "
            f"({same(agent)} task retry ID --package RPM does both). The task named in the "
            f"message holds the lock ({same(agent)} task list finds it): if it is running, "
            f"{same(agent)} task wait ID; if it failed (or was cancelled), {same(agent)} task "
            "retry|rollback|skip ID, as its steps allow\n") in out.stderr, out.stderr
    error = json.loads(out.stdout)["error"]
    assert (error["type"], error["err_code"]) == ("UnderMaintenanceError",
                                                  "OB.Cluster.UnderMaintenanceWithDag")


def test_agent_text_the_terminal_cannot_encode_is_escaped_not_a_crash():
    # Real agents answer in Chinese with Accept-Language: zh; a stdout in ASCII (a cron job,
    # a C locale) once ended the CLI with a UnicodeEncodeError, losing the task's failure.
    ascii_out = {"PYTHONIOENCODING": "ascii"}
    with FakeAgent(password=PASSWORD, fail_stage=1,
                   fail_message="\u5931\u8d25 at stage {stage} \u2717") as agent:
        out = run(agent, "upgrade", VERSION, RELEASE, "--wait", env_extra=ascii_out)
        assert "Traceback" not in out.stderr, out.stderr
        assert out.returncode == 1
        assert "\\u5931\\u8d25 at stage 1" in out.stdout + out.stderr
        show = run(agent, "task", "show", next(iter(agent.dags)), env_extra=ascii_out)
        assert show.returncode == 0, show.stderr
        assert "\\u5931" in show.stdout


@pytest.mark.parametrize("action", ["rollback", "skip"])
def test_operators_on_a_failed_task(action):
    expected = {"rollback": "ROLLBACK", "skip": "PASS"}[action]
    # obshell skips an agent upgrade only at its last step (its Restart obshell step cannot
    # pass), and rolls it back only before that step
    with FakeAgent(password=PASSWORD, fail_stage=2 if action == "rollback" else 9) as agent:
        failed = run(agent, "upgrade", VERSION, RELEASE, "--wait", "--json")
        assert failed.returncode == 1 and json.loads(failed.stdout)["outcome"] == "failed"
        dag_id = next(iter(agent.dags))
        out = run(agent, "--json", "task", action, dag_id, "--wait")
        detail = json.loads(out.stdout)
        assert detail["operator"] == expected and detail["state"] == "SUCCEED"
        # what state and operator mean together, next to them: no table to rebuild
        assert detail["outcome"] == {"rollback": "rolled back", "skip": "passed"}[action]
        assert list(detail)[list(detail).index("operator") + 1] == "outcome"
        listed = json.loads(run(agent, "--json", "task", "list").stdout)["last_maintenance"]
        assert listed["outcome"] == detail["outcome"] and listed["id"] == dag_id
        # Rolled back or skipped as asked: exit 0 (a rollback says what it left).
        assert out.returncode == 0, out.stderr
        if action == "rollback":
            assert (f"task {dag_id} was rolled back, as asked: what it was to do did not "
                    "happen; the cluster's lock is free\n") in out.stderr
            # Followed for the upgrade itself, a rolled-back one did not happen: exit 1.
            assert run(agent, "task", "wait", dag_id).returncode == 1
            shown = run(agent, "task", "show", dag_id).stdout.splitlines()
            assert shown[1:4] == ["  SUCCEED (rolled back), stage 1/9: every step it had run "
                                  "was undone", "  1. SUCCEED  Create upgrade dir (rolled back)",
                                  "  2. FAILED   Download all required packages (rolled back)"]
            assert shown[4].endswith(" (before the rollback): ERROR: [Common.Unexpected]: "
                                     "Unexpected error: injected failure at stage 2"), shown
            assert shown[5] == "  3. PENDING  Check all required packages"  # never run


def test_cancel_a_running_task_and_refuse_a_second_cancel():
    with FakeAgent(password=PASSWORD, stage_seconds=30) as agent:
        assert run(agent, "upgrade", VERSION, RELEASE).returncode == 0
        dag_id = next(iter(agent.dags))
        out = run(agent, "task", "cancel", dag_id, "--wait", "--timeout", "30")
        assert out.returncode == 0, out.stderr  # what was asked
        assert out.stderr.rstrip().endswith(
            f"task {dag_id} was cancelled, as asked; it holds the cluster's lock, as a failed "
            f"task does, until it is retried, rolled back or skipped\nNext: {same(agent)} task "
            f"retry {dag_id} --wait (or rollback)"), out.stderr
        assert f"task {dag_id} stage 1/9 FAILED (cancelled)\n" in out.stderr  # its last line
        assert "  1. FAILED   Create upgrade dir (cancelled)\n" in out.stdout  # where it stopped
        again = run(agent, "task", "cancel", dag_id)
        assert again.returncode == 9 and "only a task not yet ended" in again.stderr


def test_wait_timeout_exits_6(agent):
    with FakeAgent(password=PASSWORD, stage_seconds=30) as slow:
        assert run(slow, "upgrade", VERSION, RELEASE).returncode == 0
        dag_id = next(iter(slow.dags))
        out = run(slow, "task", "wait", dag_id, "--timeout", "0.3")
        assert out.returncode == 6 and dag_id in out.stderr


def test_exit_codes_for_bad_input_auth_and_unreachable(agent):
    bad = run(agent, "task", "show", "9abc")
    assert bad.returncode == 2 and "task id" in bad.stderr
    short = run(agent, "task", "show", "21")  # a typo of a node's or a longer id
    assert short.returncode == 2 and "those have 17 digits or more" in short.stderr
    assert " task list lists the running tasks' ids" in short.stderr
    assert "client." not in short.stderr
    short = run(agent, "--json", "task", "show", "21")
    error = json.loads(short.stdout)["error"]
    assert error["argument"] == "ID" and error["type"] == "InvalidArgumentError", error
    missing = run(agent, "--json", "upgrade", VERSION, RELEASE, "--package", "/nonexistent.rpm")
    assert json.loads(missing.stdout)["error"]["argument"] == "--package", missing.stdout
    for argv in (("task", "wait"), ("task", "wait", "1x")):  # one name for the task id: ID
        out = run(agent, "--json", *argv)
        assert json.loads(out.stdout)["error"]["argument"] == "ID", out.stdout
    out = run(agent, "--json", "upgrade", "4.3", RELEASE)
    assert json.loads(out.stdout)["error"]["argument"] == "VERSION", out.stdout
    assert json.loads(out.stdout)["error"]["message"].startswith("VERSION: '4.3' is not")
    out = run(agent, "--json", "--ca-bundle", "/nonexistent/ca.pem", "info")
    assert json.loads(out.stdout)["error"]["argument"] == "--ca-bundle", out.stdout
    assert "--ca-bundle: CA bundle '/nonexistent/ca.pem' does not exist" in out.stdout
    assert agent.requests == []
    wrong = run(agent, "task", "show", "11", password="nope")
    assert wrong.returncode == 3 and "password" in wrong.stderr.lower()
    assert "set the right one in OBSHELL_PASSWORD (root@sys)" in wrong.stderr, wrong.stderr
    assert "OBSHELL_AGENT_PASSWORD" not in wrong.stderr  # the agent said which it refused
    missing = run(agent, "task", "show", "11", password=None)
    assert missing.returncode == 2 and "OBSHELL_PASSWORD" in missing.stderr
    agent.stop()
    gone = run(agent, "info", password=None)
    assert gone.returncode == 4 and "cannot connect" in gone.stderr
    gone = run(agent, "task", "wait", "11")  # its advice joins the message as a sentence
    assert "reachable? If the agent is restarting" in gone.stderr, gone.stderr


def test_password_is_not_accepted_on_the_command_line(agent):
    out = run(agent, "--password", PASSWORD, "info")
    assert out.returncode == 2  # argparse usage error: there is no such option


def test_from_env(agent):
    env = {"OBSHELL_HOST": agent.host, "OBSHELL_PORT": str(agent.port),
           "OBSHELL_PASSWORD": PASSWORD}
    with ObshellClient.from_env(env) as client:
        assert client.upgrade_agent(VERSION, RELEASE).result(timeout=60).stage == 9
    with pytest.raises(InvalidArgumentError, match="OBSHELL_HOST"):
        ObshellClient.from_env({})
    with pytest.raises(InvalidArgumentError, match="OBSHELL_PORT"):
        ObshellClient.from_env({"OBSHELL_HOST": "h", "OBSHELL_PORT": "x"})


def test_from_env_keywords_stand_in_for_their_variables(agent):
    """A keyword wins over its variable, so the variable is not needed, nor read: a missing
    OBSHELL_HOST or a broken OBSHELL_PORT or OBSHELL_HTTPS beside host=, port=, https=."""
    env = {"OBSHELL_PORT": "abc", "OBSHELL_HTTPS": "maybe", "OBSHELL_PASSWORD": PASSWORD}
    with ObshellClient.from_env(env, host=agent.host, port=agent.port, https=False) as client:
        assert client.info().version
    with pytest.raises(InvalidArgumentError, match="OBSHELL_PORT"):  # the others still count
        ObshellClient.from_env(env, host=agent.host, https=False)
    with pytest.raises(InvalidArgumentError, match="OBSHELL_HTTPS"):
        ObshellClient.from_env(env, host=agent.host, port=agent.port)
    bundle = {"OBSHELL_HOST": agent.host, "OBSHELL_HTTPS": "1", "OBSHELL_CA_BUNDLE": "/no/ca"}
    with pytest.raises(InvalidArgumentError, match="pass https=True"):  # not "set ..._HTTPS"
        ObshellClient.from_env(bundle, https=False)
    ObshellClient.from_env(bundle, verify=False).close()  # the bundle is not read at all


def test_upgrade_with_package_uploads_checks_upgrades_and_confirms(agent, tmp_path):
    rpm = tmp_path / f"obshell-{VERSION}-{RELEASE}.x86_64.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    out = run(agent, "--json", "upgrade", VERSION, RELEASE, "--package", str(rpm))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "SUCCEED"
    assert agent.packages and agent.packages[0][1] == rpm.read_bytes()
    assert [d.name.split(" ")[1] for d in agent.dags.values()] == ["check", "obshell"]


def test_upgrade_with_package_says_its_upload_on_stderr_and_only_the_dag_on_stdout(tmp_path):
    """An upload may take minutes: what is sent, where, and when it is stored are said on
    stderr; stdout keeps the upgrade's DAG alone, as text or one JSON document."""
    rpm = tmp_path / f"obshell-{VERSION}-{RELEASE}.x86_64.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    for output in (["--json"], []):
        with FakeAgent(password=PASSWORD, stages_per_poll=9) as agent:
            out = run(agent, *output, "upgrade", VERSION, RELEASE, "--package", str(rpm))
            assert out.returncode == 0, out.stderr
            assert upload_lines(out.stderr) == [
                ("uploading", str(rpm), f"{agent.host}:{agent.port}"), ("stored", "obshell")]
            assert out.stderr.index("uploading ") < out.stderr.index("obshell-sdk: task ")
            shown = run(agent, *output, "task", "show", "12")  # the upgrade, after the check
            assert out.stdout == shown.stdout, out.stdout  # and nothing else
            assert "SUCCEED" in out.stdout and "uploading" not in out.stdout


def test_upgrade_with_package_to_the_running_version_uploads_nothing(tmp_path):
    rpm = tmp_path / f"obshell-{VERSION}-{RELEASE}.x86_64.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with FakeAgent(password=PASSWORD, version=VERSION, release=RELEASE.split(".")[0]) as agent:
        out = run(agent, "upgrade", VERSION, RELEASE, "--package", str(rpm), "--wait")
        assert out.returncode == 2, out.stderr
        assert f"already runs obshell {VERSION}-" in out.stderr
        assert "nothing was uploaded" in out.stderr
        assert agent.packages == [] and agent.dags == {}


def test_a_target_obshell_refuses_as_not_newer_says_to_give_a_newer_one():
    """Without --package the SDK knows no version: obshell refuses it (exit 5, as the exit
    code table says), and the hint, not obshell's "verify the parameters", says what to do."""
    with FakeAgent(password=PASSWORD, version="4.3.2.0") as agent:
        out = run(agent, "upgrade", VERSION, RELEASE)
        assert out.returncode == 5, out.stderr
        assert "Agent.Upgrade.ToLowerVersion" in out.stderr
        assert out.stderr.rstrip().endswith(
            f"Give a target newer than the obshell the agent runs: {same(agent)} info shows its "
            "version")
        assert "client." not in out.stderr and agent.dags == {}


def test_a_single_agent_s_refusal_says_to_use_a_cluster_agent():
    with FakeAgent(password=PASSWORD, identity="SINGLE") as agent:
        out = run(agent, "upgrade", VERSION, RELEASE, "--check")
        assert out.returncode == 5, out.stderr
        assert "Agent.Identify.NotSupportOperation" in out.stderr
        assert out.stderr.rstrip().endswith(
            f"Use an agent of a deployed cluster instead (identity CLUSTER AGENT): {same(agent)} "
            "info shows an agent's identity")


def test_a_single_agent_is_refused_before_the_package_is_uploaded(tmp_path):
    """It would refuse the upload only once it was sent; /info, read for the version check,
    says it first. Exit 5, as the agent's own refusal."""
    rpm = tmp_path / f"obshell-{VERSION}-{RELEASE}.x86_64.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with FakeAgent(password=PASSWORD, identity="SINGLE") as agent:
        out = run(agent, "--json", "upgrade", VERSION, RELEASE, "--package", str(rpm))
        assert out.returncode == 5, out.stderr
        assert "nothing was uploaded" in out.stderr and "is a SINGLE agent" in out.stderr
        assert f"{same(agent)} info shows an agent's identity" in out.stderr
        error = json.loads(out.stdout)["error"]
        assert (error["type"], error["err_code"]) == (
            "BadRequestError", "Agent.Identify.NotSupportOperation")
        assert upload_lines(out.stderr) == [] and agent.packages == []
        assert {r.path for r in agent.requests} == {"/api/v1/info"}


def test_suggested_commands_carry_the_agent_options_given_on_the_command_line(agent):
    """A pasted suggestion must reach the same agent: task ids repeat across agents."""
    out = run(agent, "upgrade", VERSION, RELEASE)  # no --wait: says how to follow it
    assert out.returncode == 0, out.stderr
    assert f"{same(agent)} task wait 11 --exists" in out.stderr
    env = {"OBSHELL_HOST": agent.host, "OBSHELL_PORT": str(agent.port)}
    cmd = [sys.executable, "-m", "obshell_sdk", "task", "wait", "12", "--exists",
           "--timeout", "0.5"]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(ROOT),
                                "OBSHELL_PASSWORD": PASSWORD, **env},
                           stdin=subprocess.DEVNULL, check=False)
    assert "wait again with obshell-sdk task wait 12 --exists" in plain.stderr, plain.stderr


def test_upload_timeout_bounds_the_package_upload_and_needs_a_package(agent, tmp_path):
    rpm = tmp_path / f"obshell-{VERSION}-{RELEASE}.x86_64.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    out = run(agent, "upgrade", VERSION, RELEASE, "--upload-timeout", "5")
    assert out.returncode == 2 and "--upload-timeout" in out.stderr and "--package" in out.stderr
    out = run(agent, "upgrade", VERSION, RELEASE, "--package", str(rpm), "--upload-timeout",
              "90000")  # more than a day: refused by the parser, naming the option
    assert out.returncode == 2 and "--upload-timeout" in out.stderr and "a day" in out.stderr
    targets = tmp_path / "targets"
    targets.write_text(f"{agent.host}:{agent.port}\n")
    out = run(agent, "rollout", "agent", "--targets", str(targets), "--journal",
              str(tmp_path / "r.db"), VERSION, RELEASE, "--upload-timeout", "5")
    assert out.returncode == 2 and "--upload-timeout" in out.stderr and "--package" in out.stderr
    assert agent.requests == []
    out = run(agent, "upgrade", VERSION, RELEASE, "--package", str(rpm), "--upload-timeout",
              "4000")
    assert out.returncode == 0, out.stderr
    post = [r for r in agent.requests_to("/api/v1/package", "POST") if r.body_bytes][-1]
    assert abs(int(post.header_json["Ts"]) - agent.now() - 4000) < 30


def test_task_retry_takes_upload_timeout_for_its_package_as_upgrade_does(agent, tmp_path):
    """``task retry ID --package RPM --upload-timeout SECONDS``: the same option, meaning and
    type as ``upgrade --package``'s; refused without a package, or above a day."""
    rpm = tmp_path / f"obshell-{VERSION}-{RELEASE}.x86_64.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    dag_id = agent.create_upgrade_dag(VERSION, RELEASE)
    agent.fail_dag(dag_id)
    out = run(agent, "task", "retry", dag_id, "--upload-timeout", "5")
    assert out.returncode == 2, out.stderr
    assert "--upload-timeout: bounds each --package upload: give --package" in out.stderr
    out = run(agent, "task", "retry", dag_id, "--package", str(rpm), "--upload-timeout",
              "90000")  # more than a day: refused by the parser, naming the option
    assert out.returncode == 2 and "--upload-timeout" in out.stderr and "a day" in out.stderr
    out = run(agent, "task", "show", dag_id, "--upload-timeout", "5")
    assert out.returncode == 2 and "--upload-timeout" in out.stderr, out.stderr
    assert agent.requests == []
    out = run(agent, "task", "retry", dag_id, "--package", str(rpm), "--upload-timeout", "4000")
    assert out.returncode == 0, out.stderr
    post = [r for r in agent.requests_to("/api/v1/package", "POST") if r.body_bytes][-1]
    assert abs(int(post.header_json["Ts"]) - agent.now() - 4000) < 30  # the header lives 4000 s
    assert agent.dag(dag_id).state != "FAILED"  # and the task was retried


def test_a_retry_given_another_version_s_package_says_to_give_the_task_s_target(agent, tmp_path):
    """A retry takes no version or release: "or the version and release of this one", as
    ``upgrade --package`` says it, is no way out here. The task names its target."""
    other = "4.3.1.1"
    rpm = tmp_path / f"obshell-{other}-{RELEASE}.x86_64.rpm"
    rpm.write_bytes(build_rpm("obshell", other, RELEASE))
    dag_id = agent.create_upgrade_dag(VERSION, RELEASE)
    agent.fail_dag(dag_id)
    out = run(agent, "task", "retry", dag_id, "--package", str(rpm))
    assert out.returncode == 2, out.stderr
    assert out.stderr.rstrip().endswith(
        f"--package: {str(rpm)!r} is obshell {other}-{RELEASE}, not obshell {VERSION}-{RELEASE}: "
        f"give the failed task's target package ({same(agent)} task show {dag_id} names its "
        "version and release); nothing was uploaded, and the retry was not sent"), out.stderr
    assert "version and release of this one" not in out.stderr
    assert not agent.requests_to("/api/v1/package", "POST") and agent.dag(dag_id).state == "FAILED"


def test_from_env_keeps_passwords_out_of_traceback_locals():
    env = {"OBSHELL_HOST": "http://not-a-host", "OBSHELL_PASSWORD": PASSWORD}
    with pytest.raises(InvalidArgumentError) as info:
        ObshellClient.from_env(env)
    tb = info.value.__traceback__.tb_next  # skip this test's own frame, which holds env
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            assert PASSWORD not in repr(value)
        tb = tb.tb_next


def test_bad_environment_is_a_usage_error(agent):
    # --port on the command line would win, so call without --host/--port
    cmd = [sys.executable, "-m", "obshell_sdk", "info"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OBSHELL_HOST": "127.0.0.1", "OBSHELL_PORT": "x"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert out.returncode == 2 and "--port" in out.stderr
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OBSHELL_HTTPS": "0",
           "OBSHELL_HOST": agent.host, "OBSHELL_PORT": str(agent.port)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert out.returncode == 0, out.stderr  # "0" does not switch HTTPS on


def test_info_refuses_what_from_env_refuses(agent):
    """One configuration layer: a variable ``from_env`` refuses, the CLI refuses too, even
    for ``info``, which signs nothing."""
    bad = {"OBSHELL_MIN_KEY_BITS": "7"}
    with pytest.raises(InvalidArgumentError):
        ObshellClient.from_env({"OBSHELL_HOST": agent.host, "OBSHELL_PASSWORD": PASSWORD, **bad})
    out = run(agent, "info", env_extra=bad)
    assert out.returncode == 2 and "OBSHELL_MIN_KEY_BITS" in out.stderr
    assert agent.requests == []


def test_an_agent_password_alone_is_not_prompted_over(agent):
    out = run(agent, "task", "list", password=None,
              env_extra={"OBSHELL_AGENT_PASSWORD": "agent-secret"})
    assert "no terminal to prompt on" not in out.stderr
    assert agent.requests and agent.requests[-1].auth_kind is not None  # it signed and sent
    with FakeAgent(password=PASSWORD, agent_password="agent-secret") as guarded:
        out = run(guarded, "task", "list", env_extra={"OBSHELL_AGENT_PASSWORD": "wrong"})
        assert out.returncode == 3 and "IncorrectAgentPassword" in out.stderr, out.stderr
        assert "set the right one in OBSHELL_AGENT_PASSWORD (the agent password)" in out.stderr
        assert "OBSHELL_PASSWORD (root@sys)" not in out.stderr  # not the one refused


def test_task_wait_exists_waits_out_not_found_while_the_agent_reconnects(agent):
    """A task the user started, picked up while its agent answers "not found" (restarting)."""
    dag_id = agent.create_upgrade_dag(VERSION, RELEASE)
    agent.fail_next(2, status=404, err_code="Task.NotFound",
                    path_prefix=f"/api/v1/task/dag/{dag_id}")
    plain = run(agent, "task", "wait", dag_id)
    assert plain.returncode != 0 and "task wait ID --exists" in plain.stderr, plain.stderr
    assert "client.task" not in plain.stderr
    out = run(agent, "task", "wait", dag_id, "--exists", "--timeout", "60")
    assert out.returncode == 0, out.stderr
    assert "SUCCEED" in out.stdout


def test_exists_on_an_id_that_does_not_exist_times_out_without_claiming_it_runs(agent):
    out = run(agent, "task", "wait", "19", "--exists", "--timeout", "1")
    assert out.returncode == 6, out.stderr
    assert "never answered for it" in out.stderr and "keeps running" not in out.stderr
    assert f"{same(agent)} task wait 19 --exists" in out.stderr
    assert "client." not in out.stderr  # the quoted "not found" is said in CLI words too
    assert "wait for it" not in out.stderr  # what --exists did already is not advised again
    agent.clear_requests()
    show = run(agent, "task", "show", "19", "--exists")
    assert show.returncode == 2 and "--exists" in show.stderr and agent.requests == []


def test_json_failures_leave_one_document_on_stdout(agent, tmp_path):
    """cmd --json | jq never reads nothing: a failure with no result says itself as JSON; a
    followed task's failure gives the DAG (also after an upload, as upgrade --wait does)."""
    for args in (("task", "show", "11", "--timeout", "abc"), ("--port", "99999999", "info")):
        usage = run(agent, "--json", *args)  # refused by the grammar itself
        assert usage.returncode == 2 and "usage:" in usage.stderr, usage.stderr
        assert json.loads(usage.stdout)["error"]["exit"] == 2
        assert "abc" not in usage.stdout  # a typed value is never echoed (a password?)
    assert run(agent, "task", "show", "11", "--timeout", "abc").stdout == ""  # no --json
    out = run(agent, "--json", "task", "show", "19")
    assert out.returncode == 10 and "not found" in out.stderr.lower(), out.stderr
    error = json.loads(out.stdout)["error"]
    assert error["exit"] == 10 and "task list" in error["message"]
    assert error["type"] == "TaskNotFoundError" and error["err_code"] == "Task.NotFound"
    assert error["status"] == 404 and isinstance(error.get("code", 0), int)
    assert error["agent"] == f"{agent.host}:{agent.port}" and error["trace_id"]
    assert f"{same(agent)} task list" in error["message"]  # aimed at this agent, as stderr
    agent.set_dag_faults(fail_stage=2, fail_times=99)
    rpm = tmp_path / f"obshell-{VERSION}-{RELEASE}.x86_64.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    out = run(agent, "--json", "upgrade", VERSION, RELEASE, "--package", str(rpm))
    assert out.returncode == 1, out.stderr
    failed = json.loads(out.stdout)  # the failed check, one document: no error's beside it
    assert failed["state"] == "FAILED" and failed["name"].startswith("Upgrade check obshell")


def test_timeout_without_a_wait_is_refused_before_anything_is_sent(agent):
    for args in (("upgrade", VERSION, RELEASE), ("task", "show", "11"), ("task", "list"),
                 ("task", "cancel", "11")):
        out = run(agent, *args, "--timeout", "5")
        said = "use task wait ID" if args[1] in ("show", "list") else "add --wait"
        assert out.returncode == 2 and f"--timeout: bounds a wait: {said}" in out.stderr, args
    assert agent.requests == []


def test_an_operator_whose_reply_is_lost_is_an_unknown_outcome(agent):
    """The agent may have applied it: exit 8 (not 4, "unreachable"), with where to look."""
    task_id = agent.create_upgrade_dag(VERSION, RELEASE)
    agent.fail_dag(task_id)
    agent.drop_reply_after_next(path_prefix=f"/api/v1/task/dag/{task_id}", method="POST")
    out = run(agent, "--json", "task", "retry", task_id)
    assert out.returncode == 8, out.stderr
    assert out.stderr.count("may have applied retry") == 1, out.stderr  # said once
    assert f"{same(agent)} task show {task_id}" in out.stderr
    assert f"follow it: {same(agent)} task wait {task_id}" in out.stderr
    assert "client." not in out.stderr and "not sent again" in out.stderr
    assert json.loads(out.stdout)["error"]["exit"] == 8
    assert agent.dag(task_id).state != "FAILED"  # it was applied, indeed


def test_an_operator_answered_with_a_500_says_it_may_have_been_applied(agent):
    """obshell's 500 to the operator's POST may come after it applied it: an API error (exit
    5) that says so in the lost reply's words, not sent again, with where to look."""
    task_id = agent.create_upgrade_dag(VERSION, RELEASE)
    agent.fail_dag(task_id)
    agent.fail_next(status=500, err_code="Common.Unexpected",
                    path_prefix=f"/api/v1/task/dag/{task_id}", method="POST")
    out = run(agent, "--json", "task", "retry", task_id)
    assert out.returncode == 5, out.stderr
    assert "HTTP 500 Common.Unexpected" in out.stderr, out.stderr
    assert out.stderr.count("may have applied retry") == 1, out.stderr
    assert f"{same(agent)} task show {task_id}" in out.stderr
    assert f"follow it: {same(agent)} task wait {task_id}" in out.stderr
    assert "client." not in out.stderr and "not sent again" in out.stderr
    assert json.loads(out.stdout)["error"]["exit"] == 5
    assert len(agent.requests_to(f"/api/v1/task/dag/{task_id}", "POST")) == 1


def test_a_reply_whose_data_does_not_fit_is_said_with_its_agent_as_a_page_is(agent):
    """Exit 7 (not obshell's reply), on stderr and in --json's error naming the agent that
    sent it and the request, as for a proxy's page in the agent's place."""
    task_id = agent.create_upgrade_dag(VERSION, RELEASE)
    where = f"{agent.host}:{agent.port}"

    def bad_node(data):
        return {**data, "nodes": [{**data["nodes"][0], "state": 7}, *data["nodes"][1:]]}

    for json_out in ([], ["--json"]):
        agent.edit_data_next(edit=bad_node, path_prefix=f"/api/v1/task/dag/{task_id}")
        out = run(agent, *json_out, "task", "show", task_id)
        assert out.returncode == 7, out.stderr
        assert (f"GET /api/v1/task/dag/{task_id} on {where}: data.nodes[0].state: expected "
                "a string, got a number") in out.stderr
    error = json.loads(out.stdout)["error"]
    assert (error["type"], error["agent"], error["task_id"]) == ("DecodeError", where, task_id)
    assert error["message"].startswith(f"GET /api/v1/task/dag/{task_id} on {where}: ")
    agent.fail_next(status=502, path_prefix=f"/api/v1/task/dag/{task_id}")  # a proxy's page
    page = json.loads(run(agent, "--json", "task", "show", task_id).stdout)["error"]
    assert page["exit"] == 7 and page["agent"] == where
    assert page["message"].startswith(f"GET /api/v1/task/dag/{task_id} on {where}: ")


def test_sigterm_during_a_retry_s_upload_says_the_retry_was_not_sent(tmp_path):
    """``task retry ID --package RPM`` uploads, then retries: cut short while uploading, it
    said the retry "may have been applied"."""
    rpm = tmp_path / f"obshell-{VERSION}-{RELEASE}.x86_64.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with FakeAgent(password=PASSWORD, new_upload=False) as agent:
        dag_id = agent.create_upgrade_dag(VERSION, RELEASE)
        agent.fail_dag(dag_id)
        agent.hang_next(1, path_prefix="/api/v1/upgrade/package")
        code, stdout, stderr = sigterm_while_following(
            agent, "task", "retry", dag_id, "--package", str(rpm),
            ready=lambda: bool(agent.requests_to("/api/v1/upgrade/package", "POST")))
        assert agent.dag(dag_id).state == "FAILED"  # not retried
    assert code == 143, stderr
    assert stderr.endswith(f"interrupted while uploading {rpm} (the agent may or may not have "
                           f"stored it); retry of task {dag_id} was not sent. {same(agent)} "
                           "package list shows the packages stored; start again with the same "
                           "command\n"), stderr
    assert "may have been applied" not in stderr
    assert json.loads(stdout)["error"]["task_id"] == dag_id  # the task it is about, unretried


def test_sigterm_is_handled_as_ctrl_c(agent):
    """CI cancels, systemd and timeout(1) send SIGTERM: said as Ctrl-C is, exit 143."""
    task_id = agent.create_upgrade_dag(VERSION, RELEASE)
    agent.set_dag_progression(stages_per_poll=0, dag_id=task_id)  # this one stays running
    code, stdout, stderr = sigterm_while_following(agent, "task", "wait", task_id,
                                                   task_id=task_id)
    assert code == 143, stderr
    assert f"task {task_id} keeps running" in stderr
    error = json.loads(stdout)["error"]
    assert error | {"message": ""} == {"exit": 143, "message": "", "task_id": task_id}


def test_bad_input_is_named_by_its_option_and_found_before_the_password(agent, tmp_path):
    out = run(agent, "upgrade", VERSION, RELEASE, "--package", str(tmp_path / "none.rpm"))
    assert out.returncode == 2 and "obshell-sdk: --package: " in out.stderr, out.stderr
    out = run(agent, "rollout", "status", "--journal", str(tmp_path / "none.db"))
    assert out.returncode == 2 and "obshell-sdk: --journal: " in out.stderr, out.stderr
    targets = tmp_path / "targets.txt"
    targets.write_text(f"{agent.host}:{agent.port}\n")
    rollout = ("rollout", "ob", "--targets", str(targets), "--journal", str(tmp_path / "j.db"))
    obshell_rpm = tmp_path / "obshell.rpm"
    obshell_rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    for args, said in ((("--mode", "BOGUS", "4.3.5.1", RELEASE), "--mode: 'BOGUS'"),
                       (("4.3", RELEASE), "VERSION: '4.3'"),
                       (("--package", str(obshell_rpm), "4.3.5.1", RELEASE),
                        "--package: '" + str(obshell_rpm) + "' is obshell")):
        out = run(agent, *rollout, *args, password=None)  # no password, no terminal
        assert out.returncode == 2 and said in out.stderr, out.stderr
    for args, said in ((("4.3", RELEASE), "VERSION: '4.3'"),  # not "set OBSHELL_PASSWORD"
                       ((VERSION, RELEASE, "--upgrade-dir", "up"), "--upgrade-dir: 'up'"),
                       ((VERSION, RELEASE, "--upload-timeout", "9"), "--upload-timeout: ")):
        out = run(agent, "upgrade", *args, password=None)
        assert out.returncode == 2 and said in out.stderr, out.stderr
    assert agent.requests == [] and not (tmp_path / "j.db").exists()


def test_a_retry_obshell_refuses_after_its_packages_were_stored_says_they_stay():
    """``task retry ID --package RPM``: the packages go first, then the retry; a retry obshell
    refuses (exit 9) leaves them stored, which is said (not "nothing was changed")."""
    from obshell_sdk import OperatorRefusedError
    from obshell_sdk._cli_errors import exit_code, said
    from obshell_sdk._cli_parser import build_parser

    refused = OperatorRefusedError(status=400, err_code="Task.Dag.Operator.RetryNotFailedDag",
                                   code=0, message="dag is not failed", trace_id="t",
                                   method="POST", path="/api/v1/task/dag/19")
    assert exit_code(refused) == 9
    retry = build_parser().parse_args(["task", "retry", "19", "--package", "a.rpm"])
    text = said(retry, refused)
    assert "the retry was not applied; the packages stay stored: see where it stands: " \
        "obshell-sdk task show 19" in text and "nothing was changed" not in text, text
    alone = said(build_parser().parse_args(["task", "retry", "19"]), refused)
    assert "nothing was changed" in alone, alone  # no package: true as it was


def test_ctrl_c_during_task_list_names_no_task():
    from obshell_sdk._cli_interrupt import interrupted as _interrupted
    from obshell_sdk._cli_parser import build_parser

    text = _interrupted(build_parser().parse_args(["task", "wait", "19"]), None)
    assert "before task 19 was read" in text
    text = _interrupted(build_parser().parse_args(["task", "cancel", "19"]), None)
    assert "cancel of task 19" in text and "may have been applied" in text  # not "unread"
    assert "obshell-sdk task show 19" in text
    retry = build_parser().parse_args(["task", "retry", "19", "--package", "a.rpm", "--package",
                                       "b.rpm"])
    text = _interrupted(retry, None, uploaded=0, uploading="a.rpm")  # the retry comes after
    assert text == ("interrupted while uploading a.rpm (the agent may or may not have stored "
                    "it); retry of task 19 was not sent. obshell-sdk package list shows the "
                    "packages stored; start again with the same command"), text
    assert _interrupted(retry, None, uploaded=1).startswith(
        "interrupted after 1 of the 2 packages were stored, the others not sent; retry of task "
        "19 was not sent. obshell-sdk package list shows the packages stored")
    assert "may have been applied" in _interrupted(retry, None, uploaded=2)  # sent, maybe
    upgrade = build_parser().parse_args(["upgrade", "4.3.1.0", "1.el7", "--package", "a.rpm"])
    text = _interrupted(upgrade, None, uploaded=0, uploading="a.rpm")  # during the upload
    assert text == ("interrupted while uploading a.rpm (the agent may or may not have stored "
                    "it); no task was created. obshell-sdk package list shows the packages "
                    "stored; start again with the same command")
    assert _interrupted(upgrade, None, uploaded=0) == (  # its file checked: none was sent
        "interrupted before any package was sent; no task was created: nothing was stored; "
        "start again with the same command")
    text = _interrupted(upgrade, None, uploaded=1)  # the pre-check's POST, then
    assert "package may have been uploaded" in text and "task list" in text
    from obshell_sdk import DagDetail

    def ended(dag_id: str, name: str) -> DagDetail:
        return DagDetail.from_json({"id": dag_id, "dag_id": int(dag_id[1:]), "name": name,
                                    "stage": 5, "max_stage": 5, "state": "SUCCEED",
                                    "operator": "RUN"})

    check = ended("12", "Upgrade check obshell 4.3.1.0-1.el7")
    text = _interrupted(upgrade, "12", check)  # its pre-check ended; the upgrade's POST
    assert "after pre-check 12 ended; the upgrade's task may have been created" in text
    running = _interrupted(upgrade, "12", None, check.name)  # its pre-check runs: no upgrade
    assert "pre-check 12 keeps running on the agent (it takes no lock), and the upgrade was " \
        "not started" in running and "(the package is uploaded)" in running, running
    check_only = build_parser().parse_args(["upgrade", "4.3.1.0", "1.el7", "--check"])
    assert "lock" not in _interrupted(check_only, "12")  # a pre-check takes none
    assert "holds the cluster's lock" in _interrupted(upgrade, "13")
    assert "task 12 keeps running" not in text and "obshell-sdk task list" in text
    assert _interrupted(build_parser().parse_args(["task", "list"]), None) == "interrupted"
    rollout = ["rollout", "agent", "--targets", "t.txt", "--journal", "my fleet.db", "4.3.1.0",
               "1.el7"]
    text = _interrupted(build_parser().parse_args(rollout), None)
    assert "obshell-sdk rollout status --journal 'my fleet.db'" in text and "resume" in text
    status = ["rollout", "status", "--journal", "my fleet.db"]
    assert _interrupted(build_parser().parse_args(status), None) == "interrupted"
    done = ended("13", "Upgrade obshell 4.3.1.0-1.el7")  # confirming the version then
    text = _interrupted(upgrade, "13", done)
    assert text == "interrupted after task 13 ended: obshell-sdk task show 13"
    for argv in (["task", "wait", "13"], ["task", "retry", "13", "--package", "a.rpm"]):
        text = _interrupted(build_parser().parse_args(argv), "13", done)
        assert text == "interrupted after task 13 ended: obshell-sdk task show 13"


def test_an_option_a_rollout_does_not_take_is_said_by_it_with_what_to_give_instead(agent,
                                                                                     tmp_path):
    """``--host`` after ``rollout agent`` was said under the top level's usage, which offers
    --host: a rollout's agents come from its --targets file, and the message says so."""
    targets, journal = tmp_path / "targets", tmp_path / "r.db"
    targets.write_text(f"{agent.host}:{agent.port}\n")
    files = ("--targets", str(targets), "--journal", str(journal))
    from_targets = "(a rollout's agents are the host:port lines of its --targets FILE)"
    for argv, prog, said in (
            (("rollout", "agent", VERSION, RELEASE, *files, "--host", agent.host),
             "rollout agent", f"--host {from_targets}"),
            (("rollout", "ob", VERSION, RELEASE, *files, f"--port={agent.port}"),
             "rollout ob", f"--port {from_targets}"),
            (("rollout", *files, "agent", VERSION, RELEASE), "rollout",
             "--targets (give it after the kind: rollout agent, ob or status)"),
            (("rollout", "--https", "status", "--journal", str(journal)), "rollout",
             "--https (give it after the kind: rollout agent, ob or status)")):
        out = run(agent, *argv)
        assert out.returncode == 2, out.stderr
        assert out.stderr.startswith(f"usage: obshell-sdk {prog} "), out.stderr
        assert f"obshell-sdk {prog}: error: unrecognized arguments: {said}" in out.stderr, (
            out.stderr)
    for before in (("--host", agent.host), (f"--port={agent.port}",)):  # the top level took it
        for kind in (("agent", VERSION, RELEASE, *files), ("status", "--journal", str(journal))):
            out = run(agent, *before, "rollout", *kind)
            assert out.returncode == 2, out.stderr  # it was dropped without a word
            name = before[0].partition("=")[0]
            said = f"{name}: a rollout's agents are the host:port lines of its --targets FILE"
            assert f"{said}: drop it" in out.stderr, out.stderr
    assert agent.requests == [] and not journal.exists()


def test_tls_options_word_the_commands_rollout_status_suggests_before_or_after_it(tmp_path):
    """``--https rollout status`` was taken (the commands it suggests carry --https), ``rollout
    status --https`` refused ("it talks to no agent"): status talks to none, but the commands
    it suggests do, and neither the journal nor the targets file says how. Taken alike."""
    with FakeAgent(password=PASSWORD, stage_durations=[3600]) as locked:
        locked.create_upgrade_dag()  # another upgrade holds the cluster's lock: a hint
        targets, journal = tmp_path / "targets", tmp_path / "r.db"
        targets.write_text(f"{locked.host}:{locked.port}\n")
        done = run(locked, "rollout", "agent", VERSION, RELEASE, "--targets", str(targets),
                   "--journal", str(journal), "--no-check")
        assert done.returncode == 1, done.stderr
        sent = len(locked.requests)
        status = ("rollout", "status", "--journal", str(journal))
        aimed = f"obshell-sdk --host {locked.host} --port {locked.port}"
        assert f"{aimed} task list" in run(locked, *status).stdout
        for tls in (("--https",), ("--ca-bundle", str(tmp_path / "ca.pem")),
                    ("--min-key-bits", "512")):
            before, after = run(locked, *tls, *status), run(locked, *status, *tls)
            assert before.returncode == after.returncode == 1, before.stderr + after.stderr
            assert before.stdout == after.stdout, (before.stdout, after.stdout)
            assert f"{aimed} {' '.join(tls)} task list" in after.stdout, after.stdout
        assert len(locked.requests) == sent  # status talks to no agent


def test_a_refused_journal_leaves_no_lock_file_the_refused_run_made(agent, tmp_path):
    """A journal refused (not a database, another program's, a directory, another rollout's)
    left the JOURNAL.lock its runner made beside it; a lock it did not make stays, held or
    not."""
    import shutil
    import sqlite3

    from obshell_sdk._runner_lock import RunnerLock

    targets = tmp_path / "targets"
    targets.write_text(f"{agent.host}:{agent.port}\n")

    def rollout(journal, kind="agent", version=VERSION):
        return run(agent, "rollout", kind, version, RELEASE, "--targets", str(targets),
                   "--journal", str(journal), "--no-check")

    earlier = tmp_path / "earlier.db"
    assert rollout(earlier).returncode == 0  # a journal, and the lock its run made
    sent = len(agent.requests)
    shutil.copy(earlier, tmp_path / "copied.db")  # a journal without its lock beside it
    (tmp_path / "noise.db").write_bytes(b"\x07" * 4096)
    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("CREATE TABLE accounts (id INTEGER)")
    (tmp_path / "folder.db").mkdir()
    shutil.copy(earlier, tmp_path / "tampered.db")  # this rollout's, its rows unreadable
    with sqlite3.connect(tmp_path / "tampered.db") as db:
        db.execute("UPDATE targets SET outcome = 'bogus'")
    ob = ("ob", "4.3.5.1")
    for name, said, kind in (("noise.db", "cannot hold a rollout journal", ob),
                             ("other.db", "it holds other tables: accounts", ob),
                             ("folder.db", "cannot hold a rollout journal", ob),
                             ("copied.db", "holds another rollout", ob),
                             ("tampered.db", "changed by hand", ("agent", VERSION))):
        out = rollout(tmp_path / name, *kind)
        assert out.returncode == 2 and said in out.stderr, out.stderr
        assert not (tmp_path / f"{name}.lock").exists(), name
    for made_before in (True, False):  # the lock of a run before, or of one running
        held = None if made_before else RunnerLock(str(tmp_path / "copied.db"))
        journal = earlier if made_before else tmp_path / "copied.db"
        out = rollout(journal, "ob", "4.3.5.1")
        assert out.returncode == 2, out.stderr
        assert Path(f"{journal}.lock").exists(), out.stderr
        if held is not None:
            assert "in use by another runner" in out.stderr
            assert rollout(journal, "ob", "4.3.5.1").returncode == 2  # still held
            held.release()
    assert len(agent.requests) == sent  # all refused before a request


def test_rollout_status_says_the_plan_in_words_and_its_json_keeps_it_as_is(agent, tmp_path):
    """The text said the plan as the journal's raw JSON (``rollout {"check": false, ...}``)."""
    targets, journal = tmp_path / "targets", tmp_path / "r.db"
    targets.write_text(f"{agent.host}:{agent.port}\n")
    out = run(agent, "rollout", "agent", VERSION, RELEASE, "--targets", str(targets),
              "--journal", str(journal), "--no-check", "--upgrade-dir", "/data/upgrade")
    assert out.returncode == 0, out.stdout + out.stderr
    out = run(agent, "rollout", "status", "--journal", str(journal))
    assert out.returncode == 0, out.stderr
    plan, header, row = out.stdout.splitlines()
    assert plan == (f"rollout agent {VERSION} {RELEASE} "
                    "(pre-check: no, upgrade dir: /data/upgrade)"), out.stdout
    assert header.split()[0] == "target" and "succeeded" in row
    out = run(agent, "--json", "rollout", "status", "--journal", str(journal))
    assert json.loads(out.stdout)["plan"] == {"kind": "agent", "version": VERSION,
                                              "release": RELEASE, "check": False,
                                              "upgrade_dir": "/data/upgrade"}


def test_an_ob_rollout_without_its_packages_says_to_give_them_with_package(tmp_path):
    """The package-missing hint in the CLI's words: its option, not client.upload_package."""
    with FakeAgent(password=PASSWORD, ob_version="4.3.5.0-100000202024123117",
                   require_packages=True) as ob:
        targets = tmp_path / "targets"
        targets.write_text(f"{ob.host}:{ob.port}\n")
        out = run(ob, "rollout", "ob", "--targets", str(targets), "--journal",
                  str(tmp_path / "r.db"), "4.3.5.1", "101000012025052815.el7")
        assert out.returncode == 1, out.stdout + out.stderr
        said = out.stdout + out.stderr
        assert "record not found" in said and "give each RPM with --package" in said, said
        assert "client.upload_package" not in said
        assert ob.dags == {}


def test_the_exit_codes_documented_are_the_codes_used():
    """docs/cli.md's table, --help's list and what the CLI returns name the same codes."""
    import re

    from obshell_sdk import _cli_errors
    from obshell_sdk._cli_parser import EXIT_CODES

    page = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()  # or sdist
    section = page.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    table = section.split("| code | meaning |", 1)[1].split("\n\n", 1)[0]
    documented = {int(n) for n in re.findall(r"^\| (\d+) \|", table, re.M)}
    helped = {code for code, _ in EXIT_CODES}
    used = {v for k, v in vars(_cli_errors).items() if k.startswith("EXIT_")}
    assert documented == helped == used, (documented, helped, used)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    listed = readme.split("pick it up again. Exit codes: ", 1)[1].split("has the table", 1)[0]
    assert {int(n) for n in re.findall(r"\b(\d+)\s+[a-z(]", listed)} == used, listed
    # and as --help says them: 0 after rollback|cancel --wait, obshell's refusals, packages
    said = " ".join(listed.split())
    for words in ("0 done (a followed task succeeded, or ended as `task rollback|cancel ID "
                  "--wait` asked)", "refused before sending or by obshell",
                  "10 no such task, or package"):
        assert words in said, said


def test_the_exit_codes_say_the_one_exit_2_after_an_upload():
    """Exit 2 is input refused before anything is sent, but for ``upgrade --package`` of a
    package the agent read as another: it was stored first. docs/cli.md's table, --help's
    list and the README's say so alike."""
    from obshell_sdk._cli_parser import EXIT_CODES

    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "cli.md").read_text().split("## Exit codes", 1)[1]
    readme = " ".join((root / "README.md").read_text().split())
    readme = readme.split("pick it up again. Exit codes: ", 1)[1]
    rows = {"docs/cli.md": page.split("\n| 2 |", 1)[1].split("\n", 1)[0],
            "--help": dict(EXIT_CODES)[2],
            "README.md": readme.split(" 2 ", 1)[1].split(", 3 credentials", 1)[0]}
    for where, row in rows.items():
        row = " ".join(row.split())
        assert "upgrade --package" in row and "stored" in row, (where, row)
