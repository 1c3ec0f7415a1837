"""The ``rollout`` commands' words: each target's hints said as commands aimed at its agent."""

from __future__ import annotations

import json

from conftest import AGENT_PASSWORD, PASSWORD

from obshell_sdk._cli import main
from obshell_sdk.testing import FakeAgent

VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"
ROOT_SAID = "set the right one in OBSHELL_PASSWORD (root@sys)"
AGENT_SAID = "set the right one in OBSHELL_AGENT_PASSWORD (the agent password)"


def _lines_of(text, target):
    """The lines of ``text`` that are about ``target`` (its report row, its live line)."""
    return [line for line in text.splitlines() if line.startswith(target + " ")]


def test_a_refused_password_names_only_the_variable_the_agent_said_it_refused(
        tmp_path, monkeypatch, capsys):
    """The agent says which password it refused (its errCode): the report, the live lines,
    ``--json`` and ``rollout status`` name that variable alone, as the single-agent CLI does,
    not both."""
    monkeypatch.setenv("OBSHELL_PASSWORD", "wrong-root")
    monkeypatch.setenv("OBSHELL_AGENT_PASSWORD", "wrong-agent")
    with FakeAgent(password=PASSWORD, agent_password=AGENT_PASSWORD) as with_agent, \
            FakeAgent(password=PASSWORD) as root_only:
        by_agent = f"127.0.0.1:{with_agent.port}"  # refuses the agent password
        by_root = f"127.0.0.1:{root_only.port}"  # refuses the root@sys password
        fleet = tmp_path / "fleet.txt"
        fleet.write_text(f"{by_agent}\n{by_root}\n")
        journal = str(tmp_path / "r.db")
        code = main(["rollout", "agent", "--targets", str(fleet), "--journal", journal,
                     "--max-failures", "2", VERSION, RELEASE])
        out = capsys.readouterr()
        assert code == 1, out.err
        assert main(["--json", "rollout", "status", "--journal", journal]) == 1
        status = {t["target"]: t["error"] for t in json.loads(capsys.readouterr().out)["targets"]}
        assert main(["rollout", "status", "--journal", journal]) == 1
        status_text = capsys.readouterr().out
    for target, said, not_said in ((by_agent, AGENT_SAID, ROOT_SAID),
                                   (by_root, ROOT_SAID, AGENT_SAID)):
        shown = {"report": _lines_of(out.out, target), "live": _lines_of(out.err, target),
                 "status": _lines_of(status_text, target)[-1:], "json": [status[target]]}
        for where, lines in shown.items():
            refused = [line for line in lines if "The password was refused" in line]
            assert refused, (where, lines)
            for line in refused:
                assert line.endswith(said) and not_said not in line, (where, line)
