"""What a rollout target's error says to do next names that target's own client.

The library's errors say it as calls on the caller's ``client`` (``client.info()``); a
rollout's user has no such variable, one client per target being made inside the run.
"""

from __future__ import annotations

import re
from contextlib import ExitStack

from conftest import PASSWORD

from obshell_sdk import PasswordAuth, PollPolicy, Rollout, TargetOutcome
from obshell_sdk.testing import FakeAgent

VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"
FAST = PollPolicy(initial=0.05, fraction=0.1, ceiling=0.2, jitter=0)


def _rollout(fleet, tmp_path, **kw):
    return Rollout([f"127.0.0.1:{a.port}" for a in fleet], auth=PasswordAuth(PASSWORD),
                   journal=tmp_path / "r.db", poll_policy=FAST, progress=False,
                   max_failures=len(fleet), **kw)


def _errors(report):
    return [r.error or "" for r in report.results.values()]


def _own(agent):
    """How a target's error names its client."""
    return f"ObshellClient('127.0.0.1', {agent.port}, auth=...)."


def _bare(text):
    """The calls ``text`` makes on a bare ``client``, which a rollout's user does not have."""
    return re.findall(r"(?<![\w.])client\.\w+\(", text)


def test_an_error_class_and_an_error_code_hint_name_the_targets_client(tmp_path):
    """UnderMaintenanceError's hint (its class's) and Agent.Upgrade.ToLowerVersion's (its
    errCode's, CODE_HINTS) as a target's error: each call on that target's client."""
    with ExitStack() as stack:
        locked, lower = (stack.enter_context(FakeAgent(password=PASSWORD, **kw)) for kw in (
            {"stage_durations": [3600]}, {"stage_seconds": 0.03}))
        locked.create_upgrade_dag()  # holds this cluster's lock for an hour
        lower.fail_next(1, status=400, err_code="Agent.Upgrade.ToLowerVersion",
                        path_prefix="/api/v1/agent/upgrade")
        report = _rollout([locked, lower], tmp_path).upgrade_agent(VERSION, RELEASE,
                                                                   check=False)
    held, refused = _errors(report)
    assert held.startswith("UnderMaintenanceError"), held
    assert f"({_own(locked)}last_maintenance_dag() finds it)" in held, held
    assert f"if it is running, {_own(locked)}task(dag.id).wait(); if it failed" in held, held
    assert f"{_own(lower)}info() shows its version" in refused, refused
    assert _bare(held) == _bare(refused) == [], (held, refused)


def test_a_timed_out_follow_names_the_targets_client(tmp_path):
    """The rollout's timeout ran out while following a task: wait again on its client."""
    with FakeAgent(password=PASSWORD, stage_seconds=5) as agent:
        report = _rollout([agent], tmp_path).upgrade_agent(VERSION, RELEASE, check=False,
                                                           timeout=0.3)
    [result] = report.results.values()
    said = result.error or ""
    assert result.outcome is TargetOutcome.UNKNOWN and said.startswith("TaskTimeoutError"), said
    [dag_id] = result.dag_ids
    assert f"wait again with {_own(agent)}task('{dag_id}', exists=True).wait()" in said, said
    assert _bare(said) == [], said


def test_a_create_reply_naming_another_task_names_the_targets_client(tmp_path):
    """The upgrade's POST answered with the pre-check's id: the target's error says to look
    for the upgrade on the target's client, not on a ``client`` the user does not have."""
    with FakeAgent(password=PASSWORD, stage_seconds=0.03) as agent:
        agent.edit_data_next(2, edit=lambda data: data if "check" in data["name"] else {
            "id": next(i for i, d in agent.dags.items() if "check" in d.name)},
            path_prefix="/api/v1/agent/upgrade", method="POST")
        [said] = _errors(_rollout([agent], tmp_path).upgrade_agent(VERSION, RELEASE))
    assert f"look for it ({_own(agent)}unfinished_dags() and {_own(agent)}" \
        "last_maintenance_dag(); a pre-check that ended is only in the agent's task history, " \
        f"{_own(agent)}cluster_dags(), or its dashboard)" in said, said
    assert _bare(said) == [], said


def test_the_agents_own_words_are_never_taken_for_a_hint(tmp_path):
    """Only the SDK's hints are said on the target's client: the agent's own text, which may
    read like a call on some ``client`` (a Go panic, a file's name), is kept as it was."""
    words = "http client.do(req): EOF reading /tmp/client.info(1).rpm"
    with FakeAgent(password=PASSWORD, stage_seconds=0.03) as agent:
        agent.fail_next(1, status=400, err_code="Agent.Upgrade.ToLowerVersion", message=words,
                        path_prefix="/api/v1/agent/upgrade")
        [said] = _errors(_rollout([agent], tmp_path).upgrade_agent(VERSION, RELEASE,
                                                                    check=False))
    assert words in said, said
    assert f"{_own(agent)}info() shows its version" in said, said
