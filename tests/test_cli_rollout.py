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


def _stored_as_another(tmp_path, monkeypatch):
    """An obshell RPM the SDK cannot read (so it is sent), which the agent reads as 4.3.0.9."""
    from obshell_sdk import _targets
    from obshell_sdk.testing import build_rpm

    wrong = tmp_path / "wrong.rpm"
    wrong.write_bytes(build_rpm("obshell", "4.3.0.9", RELEASE))
    monkeypatch.setattr(_targets, "rpm_header", lambda path: None)  # "unreadable"
    monkeypatch.setenv("OBSHELL_PASSWORD", PASSWORD)
    return wrong


def test_a_package_stored_as_another_is_said_with_the_delete_of_its_own_cluster(
        tmp_path, monkeypatch, capsys):
    """Each cluster stored the package under its own id: each target's line says the
    ``package delete`` of that id, aimed at that target, not a Python call."""
    from obshell_sdk import ObshellClient, PasswordAuth
    from obshell_sdk.testing import build_rpm

    wrong = _stored_as_another(tmp_path, monkeypatch)
    older = tmp_path / "older.rpm"
    older.write_bytes(build_rpm("obshell", "4.3.0.1", RELEASE))
    with FakeAgent(password=PASSWORD) as fresh, FakeAgent(password=PASSWORD) as used:
        with ObshellClient(used.host, used.port, auth=PasswordAuth(PASSWORD)) as client:
            client.upload_package(older)  # package 1 there: the wrong one becomes its 2
        fleet = tmp_path / "fleet.txt"
        fleet.write_text(f"127.0.0.1:{fresh.port}\n127.0.0.1:{used.port}\n")
        code = main(["rollout", "agent", "--targets", str(fleet), "--journal",
                     str(tmp_path / "r.db"), "--max-failures", "2", "--package", str(wrong),
                     VERSION, RELEASE])
        out = capsys.readouterr()
        assert code == 1, out.err
        assert [r["pkg_id"] for r in fresh.inventory] == [1] and fresh.dags == {}
        assert sorted(r["pkg_id"] for r in used.inventory) == [1, 2] and used.dags == {}
    for agent, pkg_id in ((fresh, 1), (used, 2)):
        at = f"obshell-sdk --host 127.0.0.1 --port {agent.port}"
        (line,) = _lines_of(out.out, f"127.0.0.1:{agent.port}")
        assert line.endswith(f"It stays stored until deleted: {at} package delete {pkg_id} "
                             f"({at} package list shows it)"), line
    assert "client." not in out.out + out.err and "ObshellClient" not in out.out + out.err


def test_a_package_stored_under_an_id_not_said_is_found_by_package_list(
        tmp_path, monkeypatch, capsys):
    """No id from the agent: the line says how to find it, never ``package delete ID``."""
    import attrs

    from obshell_sdk import ObshellClient

    wrong = _stored_as_another(tmp_path, monkeypatch)
    upload = ObshellClient._upload_checked
    monkeypatch.setattr(ObshellClient, "_upload_checked", lambda self, *a, **k: attrs.evolve(
        upload(self, *a, **k), pkg_id=0))  # an agent that did not say the id
    with FakeAgent(password=PASSWORD) as agent:
        fleet = tmp_path / "fleet.txt"
        fleet.write_text(f"127.0.0.1:{agent.port}\n")
        code = main(["rollout", "agent", "--targets", str(fleet), "--journal",
                     str(tmp_path / "r.db"), "--package", str(wrong), VERSION, RELEASE])
        out = capsys.readouterr()
        assert code == 1 and [r["pkg_id"] for r in agent.inventory] == [1], out.err
    at = f"obshell-sdk --host 127.0.0.1 --port {agent.port}"
    (line,) = _lines_of(out.out, f"127.0.0.1:{agent.port}")
    assert line.endswith(f"It stays stored until deleted: {at} package list shows it with "
                         f"its id, which {at} package delete takes"), line
    assert "delete ID" not in line and "client." not in out.out + out.err


def test_a_lost_upload_reply_says_package_list_aimed_at_its_target(tmp_path, monkeypatch,
                                                                   capsys):
    """The library names the target's ``ObshellClient(...)`` for a lost upload reply; the
    command line says ``package list`` aimed at that target instead, no Python call, and
    what running the command again does: it lists first, and finds the package stored."""
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    monkeypatch.setenv("OBSHELL_PASSWORD", PASSWORD)
    with FakeAgent(password=PASSWORD, stage_seconds=0.03) as agent:
        agent.drop_reply_after_next(path_prefix="/api/v1/package", method="POST")
        fleet = tmp_path / "fleet.txt"
        fleet.write_text(f"127.0.0.1:{agent.port}\n")
        journal = str(tmp_path / "r.db")
        argv = ["rollout", "agent", "--targets", str(fleet), "--journal", journal,
                "--package", str(rpm), VERSION, RELEASE]
        code = main(argv)
        out = capsys.readouterr()
        assert code == 8 and agent.dags == {}, out.err
        assert main(["rollout", "status", "--journal", journal]) == 8
        status = capsys.readouterr().out
        assert main(argv) == 0, capsys.readouterr().err
        assert len(agent.packages) == 1  # found stored: not sent again
    at = f"obshell-sdk --host 127.0.0.1 --port {agent.port}"
    said = (f"may have stored the package, or may still be storing it: {at} package list "
            "shows it once stored. Running the same command again uploads it only if it is "
            "not listed then: each upload stores another copy")
    (line,) = _lines_of(out.out, f"127.0.0.1:{agent.port}")
    assert said in line, line
    (line,) = _lines_of(status, f"127.0.0.1:{agent.port}")[-1:]  # the error, below the table
    assert said in line, status
    assert "client." not in out.out + out.err + status, out
    assert "ObshellClient" not in out.out + out.err + status, out
