"""``obshell-sdk package list|upload|delete`` against the fake agent, as a shell runs it."""

from __future__ import annotations

import json
import os
import re

import pytest
from conftest import PASSWORD
from test_cli import run, same, upload_lines

from obshell_sdk.testing import FakeAgent, build_rpm
from obshell_sdk.testing._rpmbuild import default_files

VERSION, RELEASE = "4.3.5.1", "101000012025052815.el7"


@pytest.fixture
def rpms(tmp_path):
    made = []
    for name in ("oceanbase-ce", "oceanbase-ce-libs"):
        path = tmp_path / f"{name}.rpm"
        path.write_bytes(build_rpm(name, VERSION, RELEASE))
        made.append(str(path))
    return made


def test_upload_list_and_delete(rpms):
    with FakeAgent(password=PASSWORD) as agent:
        out = run(agent, "package", "list")
        assert (out.returncode, out.stdout) == (0, "no packages\n")
        out = run(agent, "package", "upload", *rpms)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert len(lines) == 2 and lines[0].split()[:3] == [
            "1", "oceanbase-ce", f"{VERSION}-{RELEASE}"]
        assert out.stderr.count("obshell-sdk: stored ") == 2  # each as it is stored
        assert [row["name"] for row in agent.inventory] == ["oceanbase-ce-libs", "oceanbase-ce"]
        listed = json.loads(run(agent, "package", "list", "--json").stdout)["packages"]
        assert [(r["pkg_id"], r["name"]) for r in listed] == [
            (2, "oceanbase-ce-libs"), (1, "oceanbase-ce")]
        out = run(agent, "package", "delete", "1", "--json")
        assert out.returncode == 0 and json.loads(out.stdout)["deleted"]["name"] == "oceanbase-ce"
        assert [row["name"] for row in agent.inventory] == ["oceanbase-ce-libs"]


def test_upload_says_each_package_as_upgrade_package_does_and_json_stays_one_document(rpms):
    with FakeAgent(password=PASSWORD) as agent:
        out = run(agent, "--json", "package", "upload", *rpms)
        assert out.returncode == 0, out.stderr
        where = f"{agent.host}:{agent.port}"
        assert upload_lines(out.stderr) == [
            ("uploading", rpms[0], where), ("stored", "oceanbase-ce"),
            ("uploading", rpms[1], where), ("stored", "oceanbase-ce-libs")], out.stderr
        uploaded = json.loads(out.stdout)["uploaded"]  # the whole of stdout
        assert [row["name"] for row in uploaded] == ["oceanbase-ce", "oceanbase-ce-libs"]


def test_an_upload_says_a_small_package_s_size_and_the_time_it_took(rpms, tmp_path):
    """A package of a few hundred bytes was said ``(0.0 MiB)``, and each row the upload
    stored ended in ``-`` (the agent's answer has no time): its size in bytes, KiB or MiB,
    and in its row how long the upload took."""
    big = tmp_path / "oceanbase-ce-big.rpm"  # padded past a MiB: the RPM still reads
    files = {**default_files("oceanbase-ce", VERSION),
             "/home/admin/oceanbase/bin/observer": os.urandom(1_200_000)}
    big.write_bytes(build_rpm("oceanbase-ce", VERSION, RELEASE, files=files))
    sizes = [os.path.getsize(rpms[1]), big.stat().st_size]
    assert sizes[0] < 1024 and 2**20 < sizes[1] < 2 * 2**20
    with FakeAgent(password=PASSWORD) as agent:
        out = run(agent, "package", "upload", rpms[1], str(big))
    assert out.returncode == 0, out.stderr
    assert f"uploading {rpms[1]} ({sizes[0]} bytes) to " in out.stderr, out.stderr
    assert f"uploading {big} ({sizes[1] / 2**20:.1f} MiB) to " in out.stderr, out.stderr
    rows = out.stdout.splitlines()
    assert len(rows) == 2 and all(re.search(r"  uploaded in \d+\.\d s$", row) for row in rows), \
        out.stdout
    assert "  installed size 1.1 MiB  uploaded in " in rows[1], out.stdout  # not the file's


def test_a_package_row_says_its_size_is_the_installed_size_not_the_file_s(rpms):
    """``package list`` showed ``x86_64  432 bytes`` after an upload said ``uploading x.rpm
    (1.2 KiB)``: two sizes, neither named. obshell stores the RPM header's installed size
    (upgrade family §5): the row says so, in the list as in the upload's rows."""
    with FakeAgent(password=PASSWORD) as agent:
        uploaded = run(agent, "package", "upload", rpms[0])
        listed = run(agent, "package", "list")
        size = agent.inventory[0]["size"]
    assert uploaded.returncode == listed.returncode == 0, uploaded.stderr + listed.stderr
    assert size != os.path.getsize(rpms[0])  # the fake's stand-in: two sizes that differ
    said = f" x86_64  installed size {size} bytes  "
    assert said in listed.stdout and said in uploaded.stdout, listed.stdout + uploaded.stdout
    assert f"stored     1  oceanbase-ce {VERSION}-{RELEASE}{said}" in uploaded.stderr, \
        uploaded.stderr


@pytest.mark.parametrize(("args", "said"), [
    (("list", "3"), "RPM|ID: package list takes nothing more"),
    (("upload",), "RPM: package upload needs the RPM files"),
    (("delete",), "ID: package delete needs one package id"),
    (("delete", "x"), "ID: package delete needs one package id"),
    (("delete", "0"), "ID: package delete needs one package id"),
    (("delete", "1", "2"), "ID: package delete needs one package id"),
    (("list", "--upload-timeout", "5"), "--upload-timeout: bounds package upload only"),
    (("upload", "/nonexistent.rpm"), "RPM: '/nonexistent.rpm' is not a file"),
])
def test_bad_input_is_refused_before_anything_is_sent(args, said):
    with FakeAgent(password=PASSWORD) as agent:
        out = run(agent, "package", *args)
        assert out.returncode == 2 and said in out.stderr, out.stderr
        assert agent.requests == []


def test_a_package_given_twice_is_refused_before_anything_is_sent(rpms):
    with FakeAgent(password=PASSWORD) as agent:
        out = run(agent, "package", "upload", rpms[0], rpms[1], rpms[0])
        assert out.returncode == 2 and "give each package once" in out.stderr
        assert agent.requests == []


@pytest.mark.parametrize("damaged", [0, 1], ids=["first", "second"])
def test_a_damaged_package_is_refused_before_any_is_sent(rpms, damaged):
    """Every file is checked before the first is sent: a damaged second one no longer finds
    the first stored (and said as uploading)."""
    with open(rpms[damaged], "r+b") as file:  # a byte of its payload flipped
        file.seek(-50, 2)
        byte = file.read(1)[0]
        file.seek(-50, 2)
        file.write(bytes([byte ^ 1]))
    with FakeAgent(password=PASSWORD) as agent:
        out = run(agent, "--json", "package", "upload", *rpms)
        assert not agent.requests_to("/api/v1/package") and agent.inventory == []
    assert out.returncode == 2, out.stderr
    assert f"RPM: {rpms[damaged]!r} fails the check obshell makes of an RPM (rpm -K's MD5): " \
           "the MD5 of its header and payload is " in out.stderr, out.stderr
    assert "download it again, then run the command again" in out.stderr
    assert json.loads(out.stdout)["error"]["argument"] == "RPM"
    assert upload_lines(out.stderr) == [] and "uploading" not in out.stderr, out.stderr


def test_deleting_a_package_the_cluster_does_not_hold_is_said(rpms):
    # obshell answers a delete of any id with success: the CLI looks first. It exits as "not
    # found" does (10, as task show of a missing task), not 2, "nothing was sent": it was.
    with FakeAgent(password=PASSWORD) as agent:
        out = run(agent, "package", "delete", "7")
        assert out.returncode == 10, out.stderr
        assert f"no package 7 on the cluster at {agent.host}:{agent.port}" in out.stderr
        assert "nothing was deleted" in out.stderr, out.stderr
        assert not agent.requests_to("/api/v1/upgrade/package/7", "DELETE")
        assert agent.requests_to("/api/v1/upgrade/package/info", "GET")  # it was sent
        error = json.loads(run(agent, "--json", "package", "delete", "7").stdout)["error"]
    assert error["exit"] == 10 and error["type"] == "NotFoundError", error
    assert error["agent"] == f"{agent.host}:{agent.port}"
    # the command it suggests reaches the same agent, as a suggested task command does
    assert f"{same(agent)} package list shows the ids" in out.stderr, out.stderr


def test_a_wrong_password_is_said_before_any_upload(rpms):
    # the newer upload route checks no password: the CLI makes a signed read first
    with FakeAgent(password=PASSWORD) as agent:
        out = run(agent, "package", "upload", rpms[0], password="wrong")
        assert out.returncode == 3 and "the package upload was not sent" in out.stderr
        assert not [r for r in agent.requests_to("/api/v1/package", "POST") if r.body_bytes]
        assert agent.inventory == []


def test_ctrl_c_says_what_the_package_command_may_have_done():
    from obshell_sdk._cli_interrupt import interrupted
    from obshell_sdk._cli_parser import build_parser

    def said(*args: str) -> str:
        return interrupted(build_parser().parse_args(["package", *args]), None)

    assert said("list") == "interrupted"
    assert said("upload", "a.rpm") == ("interrupted before any package was sent: nothing was "
                                       "stored; start again with the same command")
    upload = build_parser().parse_args(["package", "upload", "a.rpm", "b.rpm"])
    assert interrupted(upload, None, uploaded=1, uploading="b.rpm") == (
        "interrupted while uploading b.rpm (the agent may or may not have stored it). "
        "obshell-sdk package list shows the packages stored; start again with the same command")
    assert interrupted(upload, None, uploaded=1).startswith(
        "interrupted after 1 of the 2 packages were stored, the others not sent. ")
    assert "may have been deleted" in said("delete", "3")


def test_ctrl_c_while_an_upload_s_packages_are_checked_says_nothing_was_stored(
        rpms, monkeypatch, capsys):
    """Interrupted while the files are read for their check (before any is sent): ``package
    upload`` and ``upgrade-ob --package`` say nothing was sent (not that it may be stored)."""
    from obshell_sdk import _package_calls, _workflow
    from obshell_sdk._cli import main

    def interrupted(path, *, sha256):
        raise KeyboardInterrupt

    for module in (_workflow, _package_calls):  # wherever the check is made
        monkeypatch.setattr(module, "check_package_digest", interrupted, raising=False)
    monkeypatch.setenv("OBSHELL_PASSWORD", PASSWORD)
    with FakeAgent(password=PASSWORD) as agent:
        where = ["--host", agent.host, "--port", str(agent.port)]
        for command, made in ((["package", "upload", *rpms], ""),
                              (["upgrade-ob", VERSION, RELEASE, "--package", rpms[0],
                                "--package", rpms[1]], "; no task was created")):
            code = main([*where, *command])
            err = capsys.readouterr().err
            assert code == 130, err
            assert err.endswith(f"interrupted before any package was sent{made}: nothing was "
                                "stored; start again with the same command\n"), err
            assert "may have stored the package" not in err and "uploading" not in err, err
        assert not agent.requests_to("/api/v1/package", "POST") and not agent.dags


def test_package_alone_names_only_the_action_as_required():
    """``package`` alone said ``ACTION, RPM|ID`` were required, yet ``package list`` takes no
    RPM or ID: only the action is."""
    with FakeAgent(password=PASSWORD) as agent:
        out = run(agent, "package")
        assert out.returncode == 2 and agent.requests == []
    assert out.stderr.rstrip().endswith("the following arguments are required: ACTION "
                                        "(choose from 'list', 'upload', 'delete')"), out.stderr


def test_a_package_changed_while_it_is_sent_is_not_said_as_a_wrong_password(
        rpms, monkeypatch, capsys):
    """obshell's 401 Security.Authentication.File.Sha256Mismatch: the file changed between
    the SDK's read of its SHA-256 and the upload. Exit 5 (the agent refused the call), not 3
    with "check the password"; what to do is said, and the file went once. (In-process, to
    rewrite the file at that moment.)"""
    from obshell_sdk import _package_calls, _workflow
    from obshell_sdk._cli import main

    real = _package_calls.check_package_digest

    def then_rewritten(path, *, sha256):
        digest = real(path, sha256=sha256)
        with open(path, "wb") as file:  # still being written: another build of it
            file.write(build_rpm("oceanbase-ce", VERSION, "101000012025052816.el7"))
        return digest

    for module in (_workflow, _package_calls):  # wherever the check is made
        monkeypatch.setattr(module, "check_package_digest", then_rewritten)
    for name in ("OBSHELL_HOST", "OBSHELL_PORT", "OBSHELL_AGENT_PASSWORD", "OBSHELL_HTTPS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OBSHELL_PASSWORD", PASSWORD)
    with FakeAgent(password=PASSWORD) as agent:
        code = main(["--host", agent.host, "--port", str(agent.port), "--json", "package",
                     "upload", *rpms])
        uploads = [r for r in agent.requests_to("/api/v1/package", "POST") if r.body_bytes]
        assert [r.status for r in uploads] == [401] and agent.inventory == []
    out = capsys.readouterr()
    assert code == 5, out.err
    assert "Security.Authentication.File.Sha256Mismatch" in out.err
    assert "this file was not stored: make sure nothing is writing it, then run the command " \
        "again" in out.err, out.err
    assert "PASSWORD" not in out.err and "password" not in out.err.lower()
    error = json.loads(out.out)["error"]
    assert (error["exit"], error["type"], error["status"]) == (5, "PackageChangedError", 401)


def test_a_package_changed_while_upgrade_ob_sends_it_says_that_file_was_not_stored(
        rpms, monkeypatch, capsys):
    """``upgrade-ob --package CE --package LIBS``, LIBS rewritten after its check: CE is
    stored, LIBS refused (401 File.Sha256Mismatch). Exit 5; the CLI says this file was not
    stored (not "nothing was stored": CE was) and to run the command again (not "upload it
    again": the command uploads and upgrades)."""
    from obshell_sdk import _package_calls, _workflow
    from obshell_sdk._cli import main

    real = _workflow.check_package_digest

    def libs_rewritten(path, *, sha256):
        digest = real(path, sha256=sha256)
        if path == rpms[1]:  # still being written: another build of it
            with open(path, "wb") as file:
                file.write(build_rpm("oceanbase-ce-libs", VERSION, "101000012025052816.el7"))
        return digest

    for module in (_workflow, _package_calls):  # wherever the check is made
        monkeypatch.setattr(module, "check_package_digest", libs_rewritten)
    monkeypatch.setenv("OBSHELL_PASSWORD", PASSWORD)
    with FakeAgent(password=PASSWORD) as agent:
        code = main(["--host", agent.host, "--port", str(agent.port), "upgrade-ob", VERSION,
                     RELEASE, "--package", rpms[0], "--package", rpms[1]])
        uploads = [r for r in agent.requests_to("/api/v1/package", "POST") if r.body_bytes]
        assert [r.status for r in uploads] == [200, 401] and not agent.dags
    err = capsys.readouterr().err
    assert code == 5, err
    assert "PackageChangedError" in err or "Sha256Mismatch" in err, err
    assert err.rstrip().endswith("this file was not stored: make sure nothing is writing it, "
                                 "then run the command again"), err
    assert "nothing was stored" not in err and "upload it again" not in err, err


def test_json_names_the_package_that_changed_while_it_was_sent(rpms, monkeypatch, capsys):
    """``upgrade-ob --package CE --package LIBS --json``, LIBS rewritten after its check:
    stderr's "uploading ..." line names it, and so must the error, in its message (as
    given) and its ``file``: a script reading stdout alone sees no other line."""
    from obshell_sdk import _package_calls, _workflow
    from obshell_sdk._cli import main

    real = _workflow.check_package_digest

    def libs_rewritten(path, *, sha256):
        digest = real(path, sha256=sha256)
        if path == rpms[1]:
            with open(path, "wb") as file:
                file.write(build_rpm("oceanbase-ce-libs", VERSION, "101000012025052816.el7"))
        return digest

    for module in (_workflow, _package_calls):
        monkeypatch.setattr(module, "check_package_digest", libs_rewritten)
    monkeypatch.setenv("OBSHELL_PASSWORD", PASSWORD)
    with FakeAgent(password=PASSWORD) as agent:
        code = main(["--host", agent.host, "--port", str(agent.port), "--json", "upgrade-ob",
                     VERSION, RELEASE, "--package", rpms[0], "--package", rpms[1]])
    out = capsys.readouterr()
    error = json.loads(out.out)["error"]
    assert (code, error["exit"], error["type"]) == (5, 5, "PackageChangedError"), out.err
    assert error["file"] == rpms[1]
    assert error["message"].startswith(f"uploading {rpms[1]!r}: POST /api/v1/package on ")
    assert rpms[0] not in error["message"]
    assert out.err.rstrip().endswith(error["message"]), out.err  # the same words on stderr


def test_upgrade_package_the_agent_read_as_another_says_it_was_stored_and_how_to_delete_it(
        tmp_path, monkeypatch, capsys):
    """``upgrade --package`` whose header the SDK cannot read: the agent stores it, reads
    it as another version, and the command exits 2 (bad input), though, unlike the other
    exits 2, the package was sent: said plainly, with the commands to list or delete it."""
    from obshell_sdk import _targets
    from obshell_sdk._cli import main

    wrong = tmp_path / "obshell.rpm"
    wrong.write_bytes(build_rpm("obshell", "4.3.0.9", RELEASE))
    monkeypatch.setattr(_targets, "rpm_header", lambda path: None)  # "unreadable"
    monkeypatch.setenv("OBSHELL_PASSWORD", PASSWORD)
    with FakeAgent(password=PASSWORD) as agent:
        code = main(["--host", agent.host, "--port", str(agent.port), "--json", "upgrade",
                     VERSION, RELEASE, "--package", str(wrong)])
        assert [row["pkg_id"] for row in agent.inventory] == [1] and agent.dags == {}
    out = capsys.readouterr()
    error = json.loads(out.out)["error"]
    assert (code, error["exit"], error["argument"]) == (2, 2, "--package"), out.err
    said = error["message"]
    assert said.startswith(f"--package: the agent read the package as obshell 4.3.0.9-{RELEASE}"
                           f", not obshell {VERSION}-{RELEASE}"), said
    assert said.endswith("or the version and release of this one (nothing was started, but "
                         f"the agent stored it). It stays stored until deleted: {same(agent)} "
                         f"package delete 1 ({same(agent)} package list shows it)"), said
    assert "as package" not in said and said.count("delete 1") == 1, said  # its id said once
    assert "client." not in out.err


def _retry_of_a_failed_ob_upgrade(agent):
    dag_id = agent.create_ob_upgrade_dag(VERSION, RELEASE)
    agent.fail_dag(dag_id)
    return dag_id


def test_task_retry_checks_every_package_before_it_sends_one(rpms):
    """``task retry ID --package A --package B``, B damaged: nothing is sent, A is not said as
    uploading, and the task is not retried; sound, both go, in order, then the retry."""
    good = f"{rpms[1]}.good"
    with open(rpms[1], "rb") as file, open(good, "wb") as copy:
        copy.write(file.read())
    with open(rpms[1], "r+b") as file:
        file.truncate(file.seek(0, 2) - 100)  # a download cut short
    with FakeAgent(password=PASSWORD) as agent:
        dag_id = _retry_of_a_failed_ob_upgrade(agent)
        out = run(agent, "--json", "task", "retry", dag_id, "--package", rpms[0],
                  "--package", rpms[1])
        assert out.returncode == 2, out.stderr
        assert not agent.requests_to("/api/v1/package", "POST") and agent.inventory == []
        assert agent.dag(dag_id).state == "FAILED"  # not retried
        assert f"--package: {rpms[1]!r} fails the check obshell makes of an RPM" in out.stderr
        assert upload_lines(out.stderr) == [] and "uploading" not in out.stderr, out.stderr
        out = run(agent, "task", "retry", dag_id, "--package", rpms[0], "--package", good)
        assert out.returncode == 0, out.stderr
        where = f"{agent.host}:{agent.port}"
        assert upload_lines(out.stderr) == [
            ("uploading", rpms[0], where), ("stored", "oceanbase-ce"),
            ("uploading", good, where), ("stored", "oceanbase-ce-libs")], out.stderr
        assert agent.dag(dag_id).state != "FAILED"  # retried once both were stored


def test_ctrl_c_while_a_retry_s_packages_are_checked_says_the_retry_was_not_sent(
        rpms, monkeypatch, capsys):
    """Interrupted while the files are read for their check (before any is sent): the retry
    was not sent, which is what the CLI says (not that it may have been applied)."""
    from obshell_sdk import _package_calls, _workflow
    from obshell_sdk._cli import main

    def interrupted(path, *, sha256):
        raise KeyboardInterrupt

    for module in (_workflow, _package_calls):  # wherever the check is made
        monkeypatch.setattr(module, "check_package_digest", interrupted, raising=False)
    with FakeAgent(password=PASSWORD) as agent:
        dag_id = _retry_of_a_failed_ob_upgrade(agent)
        monkeypatch.setenv("OBSHELL_PASSWORD", PASSWORD)
        code = main(["--host", agent.host, "--port", str(agent.port), "task", "retry", dag_id,
                     "--package", rpms[0], "--package", rpms[1]])
        assert not agent.requests_to("/api/v1/package", "POST")
        assert agent.dag(dag_id).state == "FAILED"
    err = capsys.readouterr().err
    assert code == 130, err
    assert (f"interrupted before any package was sent; retry of task {dag_id} was not sent: "
            "nothing was stored; start again with the same command") in err, err
    assert "uploading" not in err and "may have been applied" not in err, err


def _libs_misfit(data):
    """The upload reply's data, for oceanbase-ce-libs one the SDK cannot read."""
    return {**data, "name": 5} if data["name"] == "oceanbase-ce-libs" else data


@pytest.mark.parametrize(("fault", "exit_code", "error_type"), [
    ("500", 5, "ServerError"), ("lost", 8, "ConnectionLostError"), ("misfit", 7, "DecodeError")])
def test_a_failed_upload_names_its_file_once_on_stderr_and_in_json(rpms, fault, exit_code,
                                                                   error_type):
    """An upload that fails (a 500 on the older route, its reply lost, a reply that does not
    fit: the last in ``upgrade-ob --package CE --package LIBS``, CE stored first) names the
    file, as given, once in the error; stderr's last line is the ``--json`` message."""
    ce, libs = rpms
    args = ["package", "upload", libs]
    with FakeAgent(password=PASSWORD, new_upload=fault != "500") as agent:
        if fault == "500":
            agent.fail_next(status=500, err_code="Common.Unexpected",
                            path_prefix="/api/v1/upgrade/package")
        elif fault == "lost":
            agent.drop_reply_after_next(path_prefix="/api/v1/package", method="POST")
        else:
            agent.edit_data_next(2, edit=_libs_misfit, path_prefix="/api/v1/package",
                                 method="POST")
            args = ["upgrade-ob", VERSION, RELEASE, "--package", ce, "--package", libs]
        out = run(agent, "--json", *args)
        assert not agent.dags
    assert out.returncode == exit_code, out.stderr
    error = json.loads(out.stdout)["error"]
    assert error["type"] == error_type and "file" not in error
    message = error["message"]
    assert message.startswith(f"uploading {libs!r}: POST /api/v1/"), message
    assert message.count(libs) == 1 and ce not in message, message
    assert out.stderr.rstrip().endswith(message) and out.stderr.count(f"{libs!r}") == 1, \
        out.stderr


@pytest.mark.parametrize("command", ["package", "upgrade-ob"])
def test_a_package_removed_after_its_check_is_said_as_bad_input_not_a_traceback(
        rpms, command, monkeypatch, capsys):
    """LIBS passes its check, then is removed before it is sent (CE first): exit 2, the
    option or argument that gave it and what became of it, never a FileNotFoundError's
    traceback; CE stays stored, nothing of LIBS went. (In-process, to remove it then.)"""
    from obshell_sdk import _package_calls, _workflow
    from obshell_sdk._cli import main

    real = _workflow.check_package_digest

    def libs_removed(path, *, sha256):
        digest = real(path, sha256=sha256)
        if path == rpms[1]:
            os.remove(path)
        return digest

    for module in (_workflow, _package_calls):  # wherever the check is made
        monkeypatch.setattr(module, "check_package_digest", libs_removed)
    monkeypatch.setenv("OBSHELL_PASSWORD", PASSWORD)
    args = (["package", "upload", *rpms] if command == "package" else
            ["upgrade-ob", VERSION, RELEASE, "--package", rpms[0], "--package", rpms[1]])
    with FakeAgent(password=PASSWORD, ob_version="4.3.5.0-100000202024123117") as agent:
        code = main(["--host", agent.host, "--port", str(agent.port), "--json", *args])
        assert [row["name"] for row in agent.inventory] == ["oceanbase-ce"] and not agent.dags
        assert len([r for r in agent.requests_to("/api/v1/package", "POST") if r.body_bytes]) == 1
    out = capsys.readouterr()
    assert code == 2, out.err
    name = "RPM" if command == "package" else "--package"
    said = (f"{name}: {rpms[1]!r} cannot be read (No such file or directory): it was removed or "
            "changed since it was checked, and was not sent")
    assert out.err.rstrip().endswith(said) and "Traceback" not in out.err, out.err
    error = json.loads(out.out)["error"]
    assert (error["exit"], error["type"], error["argument"]) == (2, "InvalidArgumentError", name)


def test_a_package_that_shrinks_while_it_is_sent_is_said_not_stored_exit_5(
        rpms, monkeypatch, capsys):
    """Cut short by its own file (it shrank under the streaming request): exit 5 with what
    to do (not 8, "the agent may have stored it"), the file named once, no traceback."""
    from obshell_sdk import _upload
    from obshell_sdk._cli import main

    class Shrinking(_upload.EncryptedMultipart):
        def __init__(self, file, key_iv):
            super().__init__(file, key_iv)
            os.truncate(file, 96)  # its RPM lead only

    monkeypatch.setattr(_upload, "EncryptedMultipart", Shrinking)
    monkeypatch.setenv("OBSHELL_PASSWORD", PASSWORD)
    with FakeAgent(password=PASSWORD) as agent:
        code = main(["--host", agent.host, "--port", str(agent.port), "--json", "package",
                     "upload", rpms[0]])
        assert agent.inventory == []
    out = capsys.readouterr()
    assert code == 5, out.err
    assert f"uploading {rpms[0]!r}: POST /api/v1/package on {agent.host}:{agent.port}: the " \
        "upload was cut short: the file could not be read to its end (it ended after 96 of " \
        "its " in out.err, out.err
    assert out.err.rstrip().endswith("so the agent got part of it and stored nothing. Make "
                                     "sure nothing is writing or removing the file, then run "
                                     "the command again"), out.err
    assert out.err.count(repr(rpms[0])) == 1 and "Traceback" not in out.err, out.err
    error = json.loads(out.out)["error"]
    assert (error["exit"], error["type"], error["file"]) == (5, "PackageChangedError", rpms[0])
    assert "status" not in error and "trace_id" not in error  # the SDK's own finding


@pytest.mark.parametrize("command", ["package", "upgrade-ob", "task"])
def test_a_lost_upload_reply_says_the_package_may_be_stored_and_what_to_run(
        rpms, command, tmp_path):
    """The upload's reply lost (exit 8): the package may have been stored, ``package list``
    on that agent shows it once stored, and to upload again only what it lacks (each upload
    stores another copy); then what the command did not do."""
    from test_cli import RELEASE as AGENT_RELEASE
    from test_cli import VERSION as AGENT_VERSION

    stored = "obshell" if command == "task" else "oceanbase-ce"
    again = ("run the command again once package list shows what is stored, with --package "
             "only for the RPMs it lacks")
    with FakeAgent(password=PASSWORD, ob_version="4.3.5.0-100000202024123117") as agent:
        agent.drop_reply_after_next(path_prefix="/api/v1/package", method="POST")
        if command == "task":
            dag_id = agent.create_upgrade_dag(AGENT_VERSION, AGENT_RELEASE)
            agent.fail_dag(dag_id)
            rpm = tmp_path / "obshell.rpm"
            rpm.write_bytes(build_rpm("obshell", AGENT_VERSION, AGENT_RELEASE))
            args = ["task", "retry", dag_id, "--package", str(rpm)]
            then = f"The retry was not sent: {again}"
        elif command == "package":
            args = ["package", "upload", *rpms]
            then = "Upload again only the RPMs package list lacks"
        else:
            args = ["upgrade-ob", VERSION, RELEASE, "--package", rpms[0], "--package", rpms[1]]
            then = f"The upgrade was not started: {again}"
        out = run(agent, "--json", *args)
        assert [row["name"] for row in agent.inventory] == [stored]
        assert len(agent.dags) == (command == "task")  # the failed task alone; not retried
    assert out.returncode == 8, out.stderr
    said = (f"(Connection aborted: Remote end closed connection without response). The agent "
            f"may have stored the package, or may still be storing it: {same(agent)} package "
            "list shows it once stored. Upload it again only if it is not listed: each upload "
            f"stores another copy, and the list shows only the newest. {then}")
    assert out.stderr.rstrip().endswith(said), out.stderr
    assert "client." not in out.stderr and out.stderr.count("may have stored the package") == 1
    error = json.loads(out.stdout)["error"]
    assert error["message"].endswith(said) and error["type"] == "ConnectionLostError", error


@pytest.mark.parametrize(("command", "fault"), [
    ("package", "reset"), ("package", "gateway"), ("upgrade-ob", "reset")])
def test_a_lost_reply_to_the_upload_route_s_probe_says_nothing_was_stored(
        rpms, command, fault):
    """The empty POST that asks which upload route the agent has stores nothing: its lost
    reply (or a gateway's page) is no unknown outcome (not exit 8, not "look at package
    list first"): nothing was stored, run the command again, and that run stores it once."""
    args = ["package", "upload", rpms[0]] if command == "package" else [
        "upgrade-ob", VERSION, RELEASE, "--package", rpms[0], "--package", rpms[1]]
    with FakeAgent(password=PASSWORD, ob_version="4.3.5.0-100000202024123117",
                   stage_seconds=0) as agent:
        if fault == "reset":
            agent.reset_next(path_prefix="/api/v1/package")
        else:
            agent.fail_next(status=502, path_prefix="/api/v1/package")
        out = run(agent, "--json", *args)
        assert agent.inventory == [] and agent.dags == {}
        again = run(agent, *args)
        assert again.returncode == 0, again.stderr
        assert len(agent.inventory) == (1 if command == "package" else 2)
    assert out.returncode == (4 if fault == "reset" else 7), out.stderr
    said = ("That was the SDK's empty probe of the upload route, before the package was "
            "sent: nothing was stored; run the command again")
    assert out.stderr.rstrip().endswith(said), out.stderr
    assert "package list" not in out.stderr and "may have stored" not in out.stderr
    assert "client." not in out.stderr and "upload (or" not in out.stderr, out.stderr
    error = json.loads(out.stdout)["error"]
    assert error["message"].endswith(said) and error["exit"] == out.returncode, error
