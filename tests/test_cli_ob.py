"""``obshell-sdk upgrade-ob``: OceanBase's upgrade on one cluster, against the fake agent.

Each test runs the command line as a real process (``python -m obshell_sdk``), as
``tests/test_cli.py`` does for ``upgrade``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import PASSWORD, sigterm_while_following
from test_cli import run, same, upload_lines

from obshell_sdk.testing import FakeAgent, build_rpm

VERSION, RELEASE = "4.3.5.1", "101000012025052815.el7"
RUNNING = "4.3.5.0-100000202024123117"  # the cluster's OceanBase before the upgrade
ROLLING = f"OB rolling upgrade {VERSION}-{RELEASE}"
STOP_SERVICE = f"OB stop service upgrade {VERSION}-{RELEASE}"
CHECK = f"Upgrade check OB {VERSION}-{RELEASE}"


def ob_agent(**kw):
    kw.setdefault("stages_per_poll", 30)  # a followed DAG ends at its first poll or so
    return FakeAgent(password=PASSWORD, ob_version=RUNNING, **kw)


def rpm(tmp_path, name, version=VERSION, release=RELEASE, file=None):
    path = tmp_path / (file or f"{name}-{version}-{release}.x86_64.rpm")
    path.write_bytes(build_rpm(name, version, release))
    return str(path)


@pytest.fixture
def rpms(tmp_path):
    return [rpm(tmp_path, "oceanbase-ce"), rpm(tmp_path, "oceanbase-ce-libs")]


def posts(agent):
    return [r.path for r in agent.requests if r.method == "POST"]


def test_without_wait_it_starts_the_upgrade_and_says_how_to_follow_it():
    with ob_agent(stages_per_poll=0) as agent:
        out = run(agent, "upgrade-ob", VERSION, RELEASE)
        assert out.returncode == 0, out.stderr
        (dag_id,) = agent.dags
        assert f"task {dag_id}: {ROLLING}" in out.stdout and "READY" in out.stdout
        assert (f"task {dag_id} ({ROLLING}) created; follow it with: {same(agent)} task wait "
                f"{dag_id} --exists") in out.stderr, out.stderr  # not followed yet: no "again"
        assert posts(agent) == ["/api/v1/ob/upgrade"]  # no pre-check, nothing uploaded
        (post,) = agent.requests_to("/api/v1/ob/upgrade", "POST")
        assert post.body_json == {"version": VERSION, "release": RELEASE, "mode": "ROLLING",
                                  "freeze_server": False}
        again = run(agent, "upgrade-ob", VERSION, RELEASE)  # it holds the cluster's lock
        assert again.returncode == 11, again.stderr
        assert f"if it is running, {same(agent)} task wait ID" in again.stderr


def test_wait_follows_the_upgrade_to_its_end():
    with ob_agent() as agent:
        out = run(agent, "upgrade-ob", VERSION, RELEASE, "--wait", "--timeout", "60")
        assert out.returncode == 0, out.stderr
        (dag_id,) = agent.dags
        assert out.stdout.startswith(f"task {dag_id}: {ROLLING}\n  SUCCEED"), out.stdout
        assert f"task {dag_id} stage 30/30 SUCCEED\n" in out.stderr  # progress: on stderr
    with ob_agent() as agent:  # the mode (any case), a freeze and a directory are sent
        out = run(agent, "--json", "upgrade-ob", VERSION, RELEASE, "--wait", "--mode",
                  "stopservice", "--freeze-server", "--upgrade-dir", "/data/ob-upgrade")
        assert out.returncode == 0, out.stderr
        detail = json.loads(out.stdout)
        assert (detail["name"], detail["state"]) == (STOP_SERVICE, "SUCCEED")
        (post,) = agent.requests_to("/api/v1/ob/upgrade", "POST")
        assert post.body_json == {"version": VERSION, "release": RELEASE, "mode": "STOPSERVICE",
                                  "freeze_server": True, "upgradeDir": "/data/ob-upgrade"}


def test_a_failed_upgrade_exits_1_with_its_dag_and_what_to_do_next():
    with ob_agent(fail_stage=14) as agent:
        out = run(agent, "--json", "upgrade-ob", VERSION, RELEASE, "--wait")
        assert out.returncode == 1, out.stderr
        (dag_id,) = agent.dags
        assert json.loads(out.stdout)["state"] == "FAILED"  # one document: the DAG
        assert "injected failure at stage 14" in out.stderr
        assert f"Next: {same(agent)} task retry {dag_id} --wait" in out.stderr, out.stderr


def test_a_rolling_upgrade_refused_for_too_few_zones_says_the_mode_that_works():
    """obshell says a ROLLING upgrade needs 3 zones; the command names its other mode."""
    with ob_agent(zones=2) as agent:
        out = run(agent, "upgrade-ob", VERSION, RELEASE)
        assert out.returncode == 5, out.stderr
        assert "OB.Upgrade.UnableToRollingUpgrade" in out.stderr
        assert "Upgrade it with --mode STOPSERVICE instead: all its servers restart at once, " \
            "so it stops serving meanwhile\n" in out.stderr, out.stderr
        assert agent.dags == {}
        out = run(agent, "upgrade-ob", VERSION, RELEASE, "--mode", "STOPSERVICE", "--wait")
        assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(("fail_stage", "code", "state"), [(None, 0, "SUCCEED"),
                                                           (2, 1, "FAILED")])
def test_check_runs_only_the_pre_check_and_its_exit_code_says_how_it_ended(fail_stage, code,
                                                                            state):
    with ob_agent(fail_stage=fail_stage) as agent:
        out = run(agent, "--json", "upgrade-ob", VERSION, RELEASE, "--check", "--upgrade-dir",
                  "/data/ob-upgrade")
        assert out.returncode == code, out.stderr
        detail = json.loads(out.stdout)
        assert (detail["name"], detail["state"], detail["max_stage"]) == (CHECK, state, 6)
        assert posts(agent) == ["/api/v1/ob/upgrade/check"]
        (post,) = agent.requests_to("/api/v1/ob/upgrade/check", "POST")
        assert post.body_json == {"version": VERSION, "release": RELEASE,
                                  "upgradeDir": "/data/ob-upgrade"}


def test_package_uploads_checks_upgrades_follows_and_confirms(rpms):
    with ob_agent(require_packages=True) as agent:
        out = run(agent, "--json", "upgrade-ob", VERSION, RELEASE, "--package", rpms[0],
                  "--package", rpms[1], "--mode", "STOPSERVICE")
        assert out.returncode == 0, out.stderr
        detail = json.loads(out.stdout)  # the upgrade's DAG, as upgrade --package writes it
        assert (detail["name"], detail["state"]) == (STOP_SERVICE, "SUCCEED")
        assert sorted(row["name"] for row in agent.inventory) == [
            "oceanbase-ce", "oceanbase-ce-libs"]
        assert [d.name for d in agent.dags.values()] == [CHECK, STOP_SERVICE]
        assert agent.ob_version.startswith(f"{VERSION}-")  # what /info confirmed


def test_package_says_each_upload_on_stderr_and_leaves_json_on_stdout_alone(rpms):
    """OceanBase RPMs are hundreds of MB: each upload is said as it starts and ends, on
    stderr, before the pre-check's task; stdout is the upgrade's DAG, one JSON document."""
    with ob_agent() as agent:
        out = run(agent, "--json", "upgrade-ob", VERSION, RELEASE, "--package", rpms[0],
                  "--package", rpms[1])
        assert out.returncode == 0, out.stderr
        where = f"{agent.host}:{agent.port}"
        assert upload_lines(out.stderr) == [
            ("uploading", rpms[0], where), ("stored", "oceanbase-ce"),
            ("uploading", rpms[1], where), ("stored", "oceanbase-ce-libs")], out.stderr
        assert out.stderr.rindex("obshell-sdk: stored ") < out.stderr.index("obshell-sdk: task ")
        (dag_id,) = [i for i, d in agent.dags.items() if d.name == ROLLING]
        assert out.stdout == run(agent, "--json", "task", "show", dag_id).stdout  # that alone
        assert json.loads(out.stdout)["state"] == "SUCCEED"


def test_a_package_upgrade_whose_version_does_not_show_exits_1_as_documented(rpms):
    """The task succeeded, /info still shows the old version: exit 1, which the exit codes
    said was only a task failed, cancelled or rolled back."""
    from obshell_sdk._cli_parser import EXIT_CODES

    with ob_agent(adopt_target_version=False) as agent:  # the cluster stays on RUNNING
        out = run(agent, "--json", "upgrade-ob", VERSION, RELEASE, "--package", rpms[0],
                  "--package", rpms[1])
        upgrade_id = max(agent.dags, key=int)
    assert out.returncode == 1, out.stderr
    assert (f"task {upgrade_id} succeeded but the agent reports OceanBase '{RUNNING}', not "
            f"'{VERSION}'; check the cluster and {same(agent)} info again") in out.stderr
    assert "Next:" not in out.stderr  # nothing to retry
    assert json.loads(out.stdout)["state"] == "SUCCEED"
    said = dict(EXIT_CODES)[1]
    assert said.endswith(", or the new version did not show")
    page = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()  # or sdist
    assert "| 1 | the task ended badly: failed, cancelled or rolled back; or, with `--package`, " \
        "it succeeded but the agent does not report the new version" in page


def test_a_package_the_cluster_lacks_is_refused_with_the_option_that_gives_it(rpms):
    """obshell refuses the upgrade (and its pre-check) without the packages: exit 5, no task,
    and the hint names --package (the Python hint names client.upload_package)."""
    with ob_agent(require_packages=True) as agent:
        out = run(agent, "--json", "upgrade-ob", VERSION, RELEASE, "--wait")
        assert out.returncode == 5, out.stderr
        assert "record not found" in out.stderr and "client." not in out.stderr
        assert ("Upload the packages it names first: give each RPM with --package (OceanBase "
                "CE needs oceanbase-ce and oceanbase-ce-libs)") in out.stderr, out.stderr
        error = json.loads(out.stdout)["error"]
        assert (error["exit"], error["type"]) == (5, "PackageMissingError")
        out = run(agent, "upgrade-ob", VERSION, RELEASE, "--package", rpms[0])  # no libs
        assert out.returncode == 5, out.stderr
        assert "oceanbase-ce-libs" in out.stderr and "with --package" in out.stderr
        assert [row["name"] for row in agent.inventory] == ["oceanbase-ce"]
        out = run(agent, "upgrade-ob", VERSION, RELEASE, "--check")  # which takes no --package
        assert out.returncode == 5, out.stderr
        assert (f"Upload the packages it names first: {same(agent)} package upload RPM... "
                "(OceanBase CE") in out.stderr and "--package" not in out.stderr, out.stderr
        assert agent.dags == {}


def test_a_damaged_package_says_to_check_it_or_download_it_again(rpms):
    """A truncated RPM is refused before it is sent (obshell's MD5 check would refuse it only
    once it all arrived): exit 2, what is wrong and what to do; no pre-check. Every package is
    checked before the first is sent: the sound one, given first, is not sent either (nor
    said as uploading)."""
    with open(rpms[1], "r+b") as file:
        file.truncate(file.seek(0, 2) - 100)  # a download cut short
    with ob_agent() as agent:
        out = run(agent, "--json", "upgrade-ob", VERSION, RELEASE, "--package", rpms[0],
                  "--package", rpms[1])
        assert agent.inventory == []  # the sound one neither
        assert not agent.requests_to("/api/v1/package", "POST")  # not even the route's probe
        assert agent.dags == {}  # no pre-check
    assert upload_lines(out.stderr) == [] and "uploading" not in out.stderr, out.stderr
    assert out.returncode == 2, out.stderr
    assert f"--package: {rpms[1]!r} fails the check obshell makes of an RPM (rpm -K's MD5): " \
           "it is cut short: 100 bytes missing" in out.stderr, out.stderr
    assert out.stderr.endswith("It was not sent. The file is damaged or changed: check it (rpm "
                               "-K FILE) or download it again, then run the command again\n"), \
        out.stderr
    error = json.loads(out.stdout)["error"]
    assert (error["type"], error["argument"]) == ("InvalidArgumentError", "--package")


@pytest.mark.parametrize(("args", "said"), [
    (("--mode", "BOGUS"), "--mode: 'BOGUS' is not one of ROLLING, STOPSERVICE"),
    (("--mode", ""), "--mode: '' is not one of ROLLING, STOPSERVICE"),
    (("--upgrade-dir", "relative/dir"), "--upgrade-dir: "),
    (("--check", "--mode", "ROLLING"), "--mode: says how the upgrade runs; the pre-check "
     "takes no mode"),
    (("--check", "--freeze-server"), "--freeze-server: goes with the upgrade; the pre-check "
     "freezes nothing"),
    (("--check", "--package", "{ce}"), "--package: uploads, then checks and upgrades; with "
     "--check, upload first ({same} package upload RPM...)"),
    (("--timeout", "5"), "--timeout: bounds a wait: add --wait"),
    (("--upload-timeout", "5"), "--upload-timeout: bounds each --package upload"),
    (("--package", "/nonexistent.rpm"), "--package: '/nonexistent.rpm' is not a file"),
    (("--package", "{obshell}"), "is obshell 4.3.1.0-101000012025010101.el7, not an "
     "OceanBase package"),
    (("--package", "{ce}", "--package", "{copy}"), "give each package once"),
    (("--package", "{el8}",), "is oceanbase-ce 4.3.5.1-101000012025052815.el8, not of the "
     "target's release 101000012025052815.el7"),
])
def test_bad_input_is_refused_before_anything_is_sent_or_asked(tmp_path, args, said):
    files = {"ce": rpm(tmp_path, "oceanbase-ce"),
             "copy": rpm(tmp_path, "oceanbase-ce", file="copy.rpm"),
             "obshell": rpm(tmp_path, "obshell", "4.3.1.0", "101000012025010101.el7"),
             "el8": rpm(tmp_path, "oceanbase-ce", release="101000012025052815.el8")}
    with ob_agent() as agent:
        given = [a.format(**files) for a in args]
        out = run(agent, "upgrade-ob", VERSION, RELEASE, *given, password=None)  # no prompt
        assert out.returncode == 2, out.stderr
        assert said.format(same=same(agent)) in out.stderr, out.stderr
        assert agent.requests == []


def test_bad_input_in_json_names_the_option_and_bad_usage_shows_its_usage():
    with ob_agent() as agent:
        out = run(agent, "--json", "upgrade-ob", VERSION, RELEASE, "--mode", "FAST")
        error = json.loads(out.stdout)["error"]
        assert (out.returncode, error["exit"], error["argument"]) == (2, 2, "--mode")
        assert error["type"] == "InvalidArgumentError"
        out = run(agent, "upgrade-ob", "4.3", RELEASE)
        assert out.returncode == 2 and "VERSION: '4.3' is not" in out.stderr
        out = run(agent, "upgrade-ob", f"{VERSION}-{RELEASE}")
        assert out.returncode == 2 and "usage: obshell-sdk upgrade-ob " in out.stderr
        assert "required: RELEASE\nVERSION and RELEASE are two arguments" in out.stderr
        assert agent.requests == []


def test_help_lists_the_command_and_its_options():
    with ob_agent() as agent:
        top = run(agent, "--help")
        helped = run(agent, "upgrade-ob", "--help")
    assert "upgrade-ob          upgrade OceanBase on the cluster" in top.stdout, top.stdout
    assert "needs 3 zones or more, 2 on shared storage" in " ".join(helped.stdout.split())
    for option in ("--mode MODE", "--freeze-server", "--upgrade-dir DIR", "--check",
                   "--package RPM", "--upload-timeout SECONDS", "--wait", "(default: 7200)"):
        assert option in helped.stdout, option


def test_sigterm_while_following_says_the_upgrade_keeps_running():
    """Said as Ctrl-C is (exit 143): the task runs on, and how to follow or stop it."""
    with ob_agent(stages_per_poll=0) as agent:  # the upgrade stays running
        code, stdout, stderr = sigterm_while_following(agent, "upgrade-ob", VERSION, RELEASE,
                                                       "--wait")
        (dag_id,) = agent.dags
    assert code == 143, stderr
    assert f"task {dag_id} keeps running on the agent" in stderr
    assert f"{same(agent)} task wait {dag_id} --exists" in stderr
    assert f"{same(agent)} task cancel {dag_id}" in stderr
    error = json.loads(stdout)["error"]
    assert (error["exit"], error["task_id"]) == (143, dag_id)


def test_a_package_pre_check_that_did_not_pass_says_the_upgrade_was_not_started(rpms):
    """--package's pre-check, stopped, timed out or failed, was said as the upgrade would be
    (its lock held, "keeps running"): the upgrade was never started, and how to start it."""
    start = ("the upgrade was not started: once pre-check {id} has passed ({same} task wait "
             "{id} --exists), start it with the same command without --package (the packages "
             "are uploaded), and with --wait")
    packages = ("--package", rpms[0], "--package", rpms[1])
    with ob_agent(require_packages=True, stages_per_poll=0) as agent:  # the check runs on
        code, stdout, stderr = sigterm_while_following(agent, "upgrade-ob", VERSION, RELEASE,
                                                       *packages)
        (check_id,) = agent.dags
        said = start.format(id=check_id, same=same(agent))
        assert code == 143, stderr
        assert (f"interrupted; pre-check {check_id} keeps running on the agent (it takes no "
                f"lock), and {said}") in stderr, stderr
        assert "holds the cluster's lock" not in stderr
        assert json.loads(stdout)["error"]["task_id"] == check_id
        out = run(agent, "upgrade-ob", VERSION, RELEASE, *packages, "--timeout", "0.5")
        assert out.returncode == 6, out.stderr
        check_id = max(agent.dags, key=int)
        assert "\nT" + start.format(id=check_id, same=same(agent))[1:] in out.stderr, out.stderr
        out = run(agent, "upgrade-ob", VERSION, RELEASE, *packages, "--timeout", "0.5",
                  "--upload-timeout", "60")  # which the command without --package refuses
        assert out.returncode == 6 and "without --package and --upload-timeout (the " \
            "packages are uploaded)" in out.stderr, out.stderr
        assert "/api/v1/ob/upgrade" not in posts(agent)
    with ob_agent(require_packages=True, fail_stage=2) as agent:
        out = run(agent, "upgrade-ob", VERSION, RELEASE, *packages)
        assert out.returncode == 1, out.stderr
        assert out.stderr.endswith("injected failure at stage 2\nThe upgrade was not started; "
                                   "once the cause is fixed, run the command again.\n"), \
            out.stderr
    with ob_agent(fail_stage=2) as agent:  # a pre-check on its own says nothing of it
        out = run(agent, "upgrade-ob", VERSION, RELEASE, "--check")
        assert out.returncode == 1 and "not started" not in out.stderr, out.stderr


def test_sigterm_during_an_upload_says_no_task_was_created(rpms):
    """The uploads come before the pre-check's POST: no task can exist yet, whatever was sent.

    It said "a task the agent may have created keeps running" (obshell-sdk task list).
    """
    packages = ("--package", rpms[0], "--package", rpms[1])
    with ob_agent(new_upload=False) as agent:  # the upload's own path: the probe is not hung
        agent.hang_next(1, path_prefix="/api/v1/upgrade/package")
        code, stdout, stderr = sigterm_while_following(
            agent, "upgrade-ob", VERSION, RELEASE, *packages,
            ready=lambda: bool(agent.requests_to("/api/v1/upgrade/package", "POST")))
        assert not agent.dags and not agent.packages
    assert code == 143, stderr
    assert stderr.endswith(f"interrupted while uploading {rpms[0]} (the agent may or may not "
                           f"have stored it); no task was created. {same(agent)} package list "
                           "shows the packages stored; start again with the same command\n"), \
        stderr
    assert "task list" not in stderr and "keeps running" not in stderr
    assert "task_id" not in json.loads(stdout)["error"]


def test_ctrl_c_during_package_says_what_may_have_been_done():
    from obshell_sdk import DagDetail
    from obshell_sdk._cli_interrupt import interrupted
    from obshell_sdk._cli_parser import build_parser

    args = build_parser().parse_args(["upgrade-ob", VERSION, RELEASE, "--package", "ce.rpm",
                                      "--package", "libs.rpm"])
    text = interrupted(args, None, uploaded=1, uploading="libs.rpm")  # uploading the second
    assert text.startswith("interrupted while uploading libs.rpm (the agent may or may not "
                           "have stored it); no task was created")
    text = interrupted(args, None, uploaded=1)  # between the two: no task either
    assert text.startswith("interrupted after 1 of the 2 packages were stored, the others not "
                           "sent; no task was created. obshell-sdk package list shows the "
                           "packages stored")
    assert interrupted(args, None, uploaded=0) == (  # logging in, before the first one
        "interrupted before any package was sent; no task was created: nothing was stored; "
        "start again with the same command")
    text = interrupted(args, None, uploaded=2)  # both stored: the pre-check's POST
    assert text.startswith("interrupted; the packages may have been uploaded, and a task")
    assert interrupted(args, None) == text  # not known: as before

    def ended(dag_id: str, name: str) -> DagDetail:
        return DagDetail.from_json({"id": dag_id, "dag_id": int(dag_id[1:]), "name": name,
                                    "stage": 6, "max_stage": 6, "state": "SUCCEED",
                                    "operator": "RUN"})

    text = interrupted(args, "12", ended("12", CHECK))  # the upgrade's POST comes next
    assert "after pre-check 12 ended; the upgrade's task may have been created" in text
    text = interrupted(args, "13", ended("13", ROLLING))  # confirming the version then
    assert text == "interrupted after task 13 ended: obshell-sdk task show 13"


@pytest.mark.parametrize(("word", "said"), [
    ("ob", "OceanBase's own upgrade is a command of its own: obshell-sdk upgrade-ob VERSION "
           "RELEASE"),
    ("agent", "upgrade VERSION RELEASE upgrades the agents (obshell): drop 'agent'"),
])
def test_a_kind_typed_after_upgrade_as_after_rollout_says_the_command_meant(word, said):
    """``rollout ob`` and ``rollout agent`` name the kind after the command; ``upgrade ob V R``
    was said as "an extra value" and ``upgrade ob V`` as a bad VERSION."""
    with ob_agent() as agent:
        for given in ((VERSION, RELEASE), (VERSION,)):
            out = run(agent, "upgrade", word, *given)
            assert out.returncode == 2, out.stderr
            assert f"obshell-sdk upgrade: error: VERSION: '{word}' is not a version: {said}" \
                in out.stderr, out.stderr
        assert agent.requests == []
