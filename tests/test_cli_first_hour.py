"""The CLI as a newcomer meets it: options anywhere, --version, help, task ids, progress, Ctrl-C.

Every test runs ``python -m obshell_sdk`` as a real process against the fake agent.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from conftest import PASSWORD, closed_port, proxy_from_env
from test_cli import upload_lines

import obshell_sdk
from obshell_sdk import ObshellClient, PasswordAuth
from obshell_sdk._cli_output import Output, Progress
from obshell_sdk.testing import FakeAgent

VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"
ROOT = Path(__file__).resolve().parents[1]
#: where the obshell_sdk under test lives (the checkout, or site-packages for an sdist's tests)
SRC = Path(obshell_sdk.__file__).resolve().parents[1]


def _env(agent=None, password=PASSWORD):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSHELL_")}
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    if agent is not None:
        env.update(OBSHELL_HOST=agent.host, OBSHELL_PORT=str(agent.port))
    if password is not None:
        env["OBSHELL_PASSWORD"] = password
    return env


def cli(*args, agent=None, password=PASSWORD, timeout=60):
    return subprocess.run([sys.executable, "-m", "obshell_sdk", *args], capture_output=True,
                          text=True, env=_env(agent, password), timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def _sigint_as_on_a_terminal():
    # A suite started in the background by a shell inherits SIGINT ignored, and so would the
    # CLI: Ctrl-C must reach it as it does from a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen(*args, agent, stderr=subprocess.PIPE):
    return subprocess.Popen([sys.executable, "-m", "obshell_sdk", *args], env=_env(agent),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                            text=True, preexec_fn=_sigint_as_on_a_terminal)


def read_until_closed(leader, proc):
    """Everything the process writes to its terminal (a pty), until it exits."""
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the other side closed: the process is gone
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    os.close(leader)
    return seen


def test_version_prints_the_package_version():
    out = cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"obshell-sdk {obshell_sdk.__version__}"


def test_help_names_defaults_environment_and_exit_codes():
    text = cli("--help").stdout
    for needed in ("OBSHELL_HOST", "OBSHELL_PASSWORD", "default 2886", "exit codes",
                   "does not apply to the task's state or steps", "130"):
        assert needed in text, needed
    upgrade = cli("upgrade", "--help").stdout
    assert "default: 3600" in upgrade and "--json" in upgrade
    assert "task list" in cli("task", "--help").stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_options_before_or_after_the_subcommand(where):
    with FakeAgent(password=PASSWORD) as agent:
        given = ["--host", agent.host, "--port", str(agent.port), "--json"]
        command = ["upgrade", VERSION, RELEASE, "--wait", "--timeout", "60"]
        out = cli(*(given + command if where == "before" else command + given))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["state"] == "SUCCEED"


def test_the_task_id_is_printed_at_once_and_ctrl_c_names_it_again():
    with FakeAgent(password=PASSWORD, stage_seconds=30) as agent:
        proc = popen("upgrade", VERSION, RELEASE, "--wait", agent=agent)
        try:
            first = proc.stderr.readline()  # before the task has ended (it takes 270 s)
            assert "task 11" in first and "obshell-sdk task wait 11" in first
            assert agent.dag("11").state != "SUCCEED"
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == 130
        assert "task 11 keeps running" in err and "obshell-sdk task cancel 11" in err
        assert "Traceback" not in err
        assert "stopped waiting" not in err  # the library's own warning: said once, by the CLI
        listed = cli("task", "list", agent=agent)
        assert listed.returncode == 0
        unfinished = listed.stdout.split("last maintenance")[0]
        assert "task 11" in unfinished and "RUNNING" in unfinished


def test_task_list_as_json_on_an_agent_without_tasks():
    with FakeAgent(password=PASSWORD) as agent:
        out = cli("task", "list", "--json", agent=agent)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"unfinished": [], "last_maintenance": None}


def test_a_terminal_gets_one_updating_line_a_pipe_plain_lines():
    with FakeAgent(password=PASSWORD, stage_seconds=0.3) as agent:
        piped = cli("upgrade", VERSION, RELEASE, "--wait", agent=agent)
        assert piped.returncode == 0, piped.stderr
        assert "\r" not in piped.stderr and "task 11 stage 9/9 SUCCEED\n" in piped.stderr
        leader, follower = pty.openpty()
        proc = popen("upgrade", "4.3.2.0", RELEASE, "--wait", agent=agent, stderr=follower)
        os.close(follower)
        seen = read_until_closed(leader, proc)
    text = seen.decode()
    assert proc.returncode == 0, text
    assert "\r\x1b[Ktask 12 stage " in text and "SUCCEED" in text
    assert text.count("\n") <= 3  # the announcement, the final line; no stream of lines


def test_a_terminal_gets_an_upload_as_the_updating_line_a_pipe_as_a_plain_one(tmp_path):
    import fcntl
    import re
    import struct
    import termios

    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / "obshell.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with FakeAgent(password=PASSWORD) as agent:
        piped = cli("package", "upload", str(rpm), agent=agent)
        assert piped.returncode == 0, piped.stderr
        assert "\r" not in piped.stderr and piped.stderr.startswith(
            f"uploading {rpm} ({rpm.stat().st_size} bytes) to {agent.host}:{agent.port}\n"
            "obshell-sdk: stored "
            "    1  obshell 4.3.1.0-"), piped.stderr
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 300, 0, 0))
        proc = popen("package", "upload", str(rpm), agent=agent, stderr=follower)
        os.close(follower)
        text = read_until_closed(leader, proc).decode()
    assert proc.returncode == 0, text
    # drawn in place with its clock; kept, the clock stopped; then what the agent stored
    drawn = (f"\r\x1b[Kuploading {rpm} ({rpm.stat().st_size} bytes) to "
             f"{agent.host}:{agent.port}  0:0")
    assert text.startswith(drawn), text
    _, last = text.rsplit("\r\x1b[K", 1)
    assert re.fullmatch(r"uploading .+  0:\d\d\r\nobshell-sdk: stored     2  obshell 4\.3\.1\.0-"
                        r".+  uploaded in \d\.\d s\r\n", last), text


def test_a_note_on_a_terminal_leaves_the_progress_line_whole():
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        detail = client.get_dag(agent.create_upgrade_dag())
    err = io.StringIO()
    progress = Progress(Output(False, io.StringIO(), err), tty=True)
    progress(detail)
    progress.note("a poll failed")
    progress.close()
    line = f"task {detail.id} stage 1/9 "
    _, after_draw = err.getvalue().split(f"\r\x1b[K{line}", 1)
    # cleared, the note on a line of its own, then the progress line drawn again
    assert "\r\x1b[Kobshell-sdk: a poll failed\n\r\x1b[K" + line in after_draw


@pytest.mark.parametrize("argv", [
    ["info", "--password", "hunter2-secret"],
    ["info", "--password=hunter2-secret"],
    ["task", "hunter2-secret", "11"],
    ["upgrade", "4.3.1.0", "x.el7", "--timeout", "hunter2-secret"],
    ["info", "hunter2-secret"],
    ["info", "-phunter2-secret"],  # as mysql -pPASSWORD: a short option with its value
    ["-phunter2-secret", "info"],
    ["upgrade", "4.3.1.0", "x.el7", "--u=hunter2-secret"],  # "ambiguous option: --u=..."
    # argparse shows a value as its repr: in double quotes when it holds a single one
    ["hunter2's-secret"],
    ["--min-key-bits", "x'hunter2\"", "info"],  # both quotes: '\'' escaped inside
    ["info", "--json=hunter2's"],  # "ignored explicit argument"
    ["upgrade", "4.3.1.0", "x.el7", "--u=hunter2\nsecret"],  # typed as is, over two lines
    ["info", "--", "--hunter2-secret"],  # after "--", a value, however it starts
    # after a misspelled password option, its value, however it starts
    ["--pasword", "--hunter2-secret", "info"],
    ["task", "--passowrd", "--hunter2-secret", "list"],
    # a password option in any case, or under another name: what follows it, however it starts
    ["info", "--PASSWORD", "--hunter2"],
    ["info", "--PASSWD", "--x9-secret"],
    ["info", "--pwd", "--S3cr3t!"],
    ["info", "--agent-pw", "--Tr0ub4dor&3"],
    ["info", "-P", "--x"],
    ["info", "--passphrase", "--x"],
    ["--Token", "--x", "info"],
    ["task", "list", "--secret-key", "--x"],
    # after an option no command takes (it may take a value), what starts with '-' too
    ["info", "--api-key", "--hunter2"],
    ["--frob", "--hunter2", "info"],
    ["task", "--wiat", "--hunter2", "list"],
])
def test_usage_errors_never_echo_what_was_typed(argv):
    typed = [w for w in argv if "hunter2" in w or w in ("--x9-secret", "--S3cr3t!",
                                                         "--Tr0ub4dor&3", "--x")]
    for out in (cli(*argv), cli("--json", *argv)):
        assert out.returncode == 2
        said = out.stdout + "".join(line for line in out.stderr.splitlines(True)
                                    if "error:" in line)  # the usage names options only
        assert not [w for w in typed if w in said], out.stdout + out.stderr
        assert "hunter2" not in out.stdout + out.stderr
        assert "error:" in out.stderr


@pytest.mark.parametrize("argv", [
    ["--password", "hunter2-secret", "info"],
    ["task", "list", "--password=hunter2-secret"],
    ["--json", "info", "--agent-password", "hunter2-secret"],
    ["task", "--passwd", "hunter2-secret", "list"],
    ["upgrade", "--password", "hunter2-secret"],  # its value taken for VERSION: "required"
    ["rollout", "status", "--password=hunter2-secret"],
    ["info", "-phunter2-secret"],  # mysql's way
    ["-p", "hunter2-secret", "info"],
    ["info", "--pasword", "hunter2-secret"],  # misspelled
    ["--passowrd=hunter2-secret", "info"],
])
def test_a_password_option_says_where_passwords_go(argv):
    """argparse said only "invalid choice" (before the subcommand) or "unrecognized arguments"."""
    out = cli(*argv)
    assert out.returncode == 2 and "hunter2" not in out.stdout + out.stderr
    assert "there is no password option" in out.stderr, out.stderr
    assert "set OBSHELL_PASSWORD (root@sys) or OBSHELL_AGENT_PASSWORD" in out.stderr


@pytest.mark.parametrize("argv, prog, said", [
    (["--hots", "127.0.0.1", "info"], "obshell-sdk", "--hots (did you mean --host?)"),
    (["--hots=127.0.0.1", "info"], "obshell-sdk", "--hots (did you mean --host?)"),
    (["--jsn", "info"], "obshell-sdk", "--jsn (did you mean --json?)"),
    (["upgrade", VERSION, RELEASE, "--wiat"], "obshell-sdk upgrade",
     "--wiat (did you mean --wait?)"),
    (["task", "--wiat", "11"], "obshell-sdk task", "--wiat (did you mean --wait?)"),
    (["info", "--password", "hunter2-secret"], "obshell-sdk info",
     "--password (there is no password option, on purpose"),
    (["rollout", "agent", VERSION, RELEASE, "--targets", "t", "--journal", "j", "--hots", "h"],
     "obshell-sdk rollout agent", "--hots (did you mean --host? a rollout's agents are the "
     "host:port lines of its --targets FILE)"),  # not --https, which it takes
])
def test_a_mistyped_option_is_said_unknown_by_its_command_with_the_one_meant(argv, prog, said):
    """``--hots 127.0.0.1 info`` was "argument COMMAND: invalid choice" (the host taken for
    the command), and an option after a command was said under the top level's usage,
    which names none of the command's options."""
    with FakeAgent(password=PASSWORD) as agent:
        out = cli(*argv, agent=agent)
        assert out.returncode == 2 and agent.requests == [], out.stderr
    assert out.stderr.startswith(f"usage: {prog} "), out.stderr
    assert f"{prog}: error: unrecognized arguments: {said}" in out.stderr, out.stderr
    assert "invalid choice" not in out.stderr and "hunter2" not in out.stdout + out.stderr
    out = cli("--json", *argv)  # the same words in --json's document
    assert said in json.loads(out.stdout)["error"]["message"]


def test_a_misspelt_option_after_another_is_named_not_counted_as_its_value():
    """``--jsn --verbsoe`` said "1 extra value given": the second was taken for the first's
    value. A word near one of our options is an option; a word near none stays unshown."""
    out = cli("task", "show", "3", "--jsn", "--verbsoe")
    assert out.returncode == 2, out.stderr
    assert ("obshell-sdk task: error: unrecognized arguments: --jsn (did you mean --json?) "
            "--verbsoe (did you mean --verbose?)\n") in out.stderr, out.stderr
    out = cli("info", "--jsn", "--qx7-hunter2")
    assert out.returncode == 2 and "hunter2" not in out.stdout + out.stderr
    assert "1 extra value given (values are not shown)" in out.stderr, out.stderr


def test_every_unknown_option_before_the_command_is_named_with_the_one_meant():
    """Only the first was named: argparse took the value after it for the command, and the
    options after that went unsaid."""
    out = cli("--hots", "127.0.0.1", "--prot", "2886", "--jsn", "info")
    assert out.returncode == 2 and "2886" not in out.stderr and "127.0" not in out.stderr
    assert ("obshell-sdk: error: unrecognized arguments: --hots (did you mean --host?) --prot "
            "(did you mean --port?) --jsn (did you mean --json?)\n") in out.stderr, out.stderr
    out = cli("task", "--wiat", "x", "--exits", "show", "11")  # before an ACTION alike
    assert ("obshell-sdk task: error: unrecognized arguments: --wiat (did you mean --wait?) "
            "--exits (did you mean --exists?)\n") in out.stderr, out.stderr
    # A password option among them is said first, and no value is shown.
    out = cli("--hots", "h", "--password", "hunter2-secret", "--prot", "2886", "info")
    assert out.returncode == 2 and "hunter2" not in out.stdout + out.stderr
    said = out.stderr.partition("obshell-sdk: error: unrecognized arguments: ")[2]
    assert said.startswith("--password (there is no password option, on purpose"), out.stderr
    assert said.endswith(" --hots (did you mean --host?) --prot (did you mean --port?)\n")


@pytest.mark.parametrize("argv, prog, said", [
    (["rollout", "--journal=j.db", "status"], "rollout status", [
        "obshell-sdk rollout: error: unrecognized arguments: --journal (give it after the kind: "
        "rollout agent, ob or status)",
        "obshell-sdk rollout status: error: the following arguments are required: --journal"]),
    (["rollout", "--targets=t", "agent", VERSION, RELEASE], "rollout agent", [
        "obshell-sdk rollout: error: unrecognized arguments: --targets (give it after the kind: "
        "rollout agent, ob or status)",
        "obshell-sdk rollout agent: error: the following arguments are required: --targets, "
        "--journal"]),
    (["rollout", "--journal=j.db"], "rollout", [  # the kind missing: said by the same level
        "obshell-sdk rollout: error: unrecognized arguments: --journal (give it after the kind: "
        "rollout agent, ob or status)",
        "obshell-sdk rollout: error: the following arguments are required: KIND (choose from "
        "'agent', 'ob', 'status')"]),
    (["--hots=h", "info", "--prot=2886"], "info", [
        "obshell-sdk: error: unrecognized arguments: --hots (did you mean --host?)",
        "obshell-sdk info: error: unrecognized arguments: --prot (did you mean --port?)"]),
    (["--jsn", "upgrade", VERSION], "upgrade", [
        "obshell-sdk: error: unrecognized arguments: --jsn (did you mean --json?)",
        "obshell-sdk upgrade: error: the following arguments are required: RELEASE\nVERSION "
        "and RELEASE are two arguments, e.g. 4.2.1.1 101000062023110109.el7 (not "
        "4.2.1.1-101000062023110109.el7)"]),
    (["task", "--wiat"], "task", [
        "obshell-sdk task: error: unrecognized arguments: --wiat (did you mean --wait?)",
        "obshell-sdk task: error: the following arguments are required: ACTION (choose from "
        "'list', 'show', 'wait', 'retry', 'rollback', 'cancel', 'skip')"]),
    (["--hots=h", "rollout", "status", "--password=hunter2-secret"], "rollout status", [
        "obshell-sdk rollout status: error: unrecognized arguments: --password (there is no "
        "password option, on purpose, as a command line is seen by other users and kept in "
        "shell history: set OBSHELL_PASSWORD (root@sys) or OBSHELL_AGENT_PASSWORD, or leave "
        "them unset to be asked on a terminal)",  # first, wherever it was typed
        "obshell-sdk: error: unrecognized arguments: --hots (did you mean --host?)"]),
])
def test_an_option_left_at_the_level_it_was_given_at_is_said_with_the_commands_error(
        argv, prog, said):
    """The command's own error ("required") was said alone: the option given before it, at a
    level that does not take it (often the very option said missing), went unnamed. Each
    level's error is said, the outer one first, under the command's usage."""
    out = cli(*argv)
    assert out.returncode == 2 and "hunter2" not in out.stdout + out.stderr
    assert out.stderr.startswith(f"usage: obshell-sdk {prog} "), out.stderr
    assert out.stderr.endswith("\n".join(said) + "\n"), out.stderr
    out = cli("--json", *argv)  # the same words in --json's document, as its other messages
    bare = [line.partition(": error: ")[2] for line in said]  # without "prog: error:"
    assert json.loads(out.stdout)["error"]["message"] == "\n".join(bare)


@pytest.mark.parametrize("argv, option", [
    (["upgrade", VERSION, RELEASE, "--upgrade-dir", "--my-dir"], "--upgrade-dir"),
    (["--host", "-x", "info"], "--host"),
    # a value that is the prefix of two options: "ambiguous option: --u could match ..."
    (["upgrade", "--upgrade-dir", "--u", VERSION, RELEASE], "--upgrade-dir"),
    (["rollout", "agent", VERSION, RELEASE, "--journal", "j", "--targets", "--t"], "--targets"),
])
def test_a_value_that_starts_with_a_dash_is_said_to_go_after_an_equals_sign(argv, option):
    """argparse said "expected one argument" of the option, or took its value for an option
    and named that ("ambiguous option"), and neither said how to give such a value."""
    out = cli(*argv)
    assert out.returncode == 2 and "ambiguous" not in out.stderr, out.stderr
    assert out.stderr.endswith(f": error: argument {option}: expected one argument (a value that "
                               f"starts with '-' is read as an option: give it as "
                               f"{option}=VALUE)\n"), out.stderr


def test_a_mistyped_command_or_action_is_said_with_the_one_meant():
    out = cli("infoo")
    assert out.returncode == 2 and out.stderr.rstrip().endswith("(did you mean info?)")
    assert "infoo" not in out.stderr  # what was typed is never echoed
    out = cli("task", "shwo", "11")
    assert out.returncode == 2 and out.stderr.rstrip().endswith("(did you mean show?)")
    assert "shwo" not in out.stderr  # what was typed is never echoed


_TASK_ID_MEANT = "'11' looks like a task id, which goes after ACTION: did you mean obshell-sdk task"
_PACKAGE_LIST = ("'7' looks like a package id: obshell-sdk package list shows each package "
                 "with its id (there is no package show; package delete ID removes one)")


@pytest.mark.parametrize(("argv", "meant"), [
    (["task", "11"], f"{_TASK_ID_MEANT} show 11 (or task wait 11)?"),
    (["--port", "1", "task", "11", "--json"], f"{_TASK_ID_MEANT} show 11 (or task wait 11)?"),
    (["task", "11", "retry", "--wait"], f"{_TASK_ID_MEANT} retry 11?"),
    (["task", "11", "list"], f"{_TASK_ID_MEANT} show 11 (or task wait 11)?"),
    (["package", "7"], _PACKAGE_LIST),  # package delete 7 is never guessed: it deletes
    (["package", "7", "delete"], "'7' looks like a package id, which goes after ACTION: did "
                                 "you mean obshell-sdk package delete 7?"),
])
def test_an_id_typed_where_the_action_goes_is_said_with_the_command_meant(argv, meant):
    """``task 11`` said only "invalid choice (choose from 'list', 'show', ...)": a number
    typed there is an id, and the error says the command it goes with; --json's document
    says the same, as it does every usage error. Nothing is sent."""
    with FakeAgent(password=PASSWORD) as agent:
        out = cli(*argv, agent=agent)
    assert out.returncode == 2 and agent.requests == [], out.stderr
    command = "task" if "task" in argv else "package"
    said = out.stderr.splitlines()[-1].partition(f"obshell-sdk {command}: error: ")[2]
    assert re.fullmatch(r"argument ACTION: invalid choice \(choose from [^()]+\); "
                        + re.escape(meant), said), out.stderr
    document = {"error": {"exit": 2, "message": said}} if "--json" in argv else None
    assert (json.loads(out.stdout) if out.stdout else None) == document, out.stdout


@pytest.mark.parametrize("command", ["task", "package"])
def test_only_a_word_of_digits_where_the_action_goes_is_said_back(command):
    """A number there is said back as the id it is; anything else (it may be a password in
    the wrong place) is never shown, as before."""
    out = cli(command, "--", "12")
    assert out.returncode == 2 and "'12' looks like a " in out.stderr, out.stderr
    for word in ["s3cr3t", "0x12", "12a", "-12", "\uff11\uff12", "1" * 201]:
        out = cli(command, "--", word)
        assert out.returncode == 2 and word not in out.stderr, out.stderr
        assert re.search(r": error: argument ACTION: invalid choice \(choose from [^()]+\)\n\Z",
                         out.stderr), out.stderr


def test_a_refused_operator_has_its_own_exit_code_and_a_cli_hint():
    with FakeAgent(password=PASSWORD) as agent:
        assert cli("upgrade", VERSION, RELEASE, "--wait", agent=agent).returncode == 0
        out = cli("task", "retry", "11", agent=agent)
        assert out.returncode == 9
        assert "obshell-sdk task show 11" in out.stderr and "client." not in out.stderr


def test_a_timed_out_wait_says_which_command_picks_it_up():
    with FakeAgent(password=PASSWORD, stage_seconds=30) as agent:
        started = time.monotonic()
        out = cli("upgrade", VERSION, RELEASE, "--wait", "--timeout", "1", agent=agent)
        assert out.returncode == 6 and time.monotonic() - started < 30
        assert "obshell-sdk task wait 11" in out.stderr and "client." not in out.stderr


def test_a_lost_create_reply_points_at_task_list():
    with FakeAgent(password=PASSWORD, stage_seconds=30) as agent:
        agent.drop_reply_after_create = True
        out = cli("upgrade", VERSION, RELEASE, agent=agent)
        # The fake agent created it: the SDK finds it, reports it, never sends it again.
        assert out.returncode == 0, out.stderr
        assert "task 11" in out.stderr
        assert len(agent.requests_to("/api/v1/agent/upgrade", "POST")) == 1


def test_a_failed_task_suggests_the_cli_operators():
    with FakeAgent(password=PASSWORD, fail_stage=2) as agent:
        out = cli("upgrade", VERSION, RELEASE, "--wait", agent=agent)
        assert out.returncode == 1
        assert "obshell-sdk task retry 11 --wait" in out.stderr


def test_a_task_created_unfollowed_says_how_to_follow_it_and_what_ready_means():
    """A walkthrough: upgrade without --wait said "follow it again with", though nothing
    had followed it, and showed READY (running) for a task not started yet."""
    import attrs

    from obshell_sdk._dag import DagState, Operator
    from obshell_sdk._render import dag_line

    with FakeAgent(password=PASSWORD, stage_seconds=600) as agent:
        out = cli("upgrade", VERSION, RELEASE, agent=agent)
        assert out.returncode == 0, out.stderr
        assert (f"task 11 (Upgrade obshell {VERSION}-{RELEASE}) created; follow it with: "
                "obshell-sdk task wait 11 --exists\n") in out.stderr
        assert "again" not in out.stderr
        assert "  READY (waiting for the agent to start it), stage 1/9\n" in out.stdout
        with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
            seen = client.task("11").refresh()
        agent.finish_dag("11")
        followed = cli("task", "wait", "11", agent=agent)
        assert followed.returncode == 0, followed.stderr
        assert "; follow it again with: obshell-sdk task wait 11 --exists" in followed.stderr
    ready = attrs.evolve(seen, state=DagState.READY, operator=Operator.ROLLBACK)  # sent, not
    assert "[1/9] READY (waiting for the agent to roll it back)" in dag_line(ready)  # run yet


def test_a_cancelled_upgrade_says_it_holds_the_lock_and_the_command_that_frees_it():
    """It said only "was cancelled", though the cluster stays locked until the task is
    retried, rolled back or skipped."""
    with FakeAgent(password=PASSWORD, stage_seconds=60) as agent:
        assert cli("upgrade", VERSION, RELEASE, agent=agent).returncode == 0
        assert cli("task", "cancel", "11", agent=agent).returncode == 0
        out = cli("task", "wait", "11", agent=agent)
        assert out.returncode == 1, out.stderr
        assert "was cancelled; it holds the cluster's lock" in out.stderr
        # cancelled at stage 1: its later Restart obshell step cannot pass, so no skip
        assert out.stderr.rstrip().endswith("Next: obshell-sdk task retry 11 --wait (or "
                                            "rollback)")


def test_a_check_whose_download_found_no_package_names_the_retry_with_its_package():
    """A pre-check holds no lock and gets no "retry" line of its own: the package one still
    names its command (not "the command below", with nothing below)."""
    with FakeAgent(password=PASSWORD, require_packages=True, stages_per_poll=3) as agent:
        out = cli("upgrade", VERSION, RELEASE, "--check", agent=agent)
        assert out.returncode == 1, out.stderr
        assert out.stderr.rstrip().endswith("Next: obshell-sdk task retry 11 --package RPM --wait")


@pytest.mark.parametrize("command", ["upgrade", "upgrade-ob"])
def test_a_failed_check_says_what_to_do_next_and_task_list_all_finds_it_again(command):
    """A failed pre-check exited 1 with no "Next:" line (an upgrade's failure has one), and
    ``task list`` showed "unfinished tasks: none" after it: it holds no lock, so it is not
    unfinished. The cluster's history (``task list --all``) lists it."""
    with FakeAgent(password=PASSWORD, fail_stage=2, ob_version="4.3.5.0") as agent:
        out = cli(command, "4.3.5.1", RELEASE, "--check", agent=agent)
        assert out.returncode == 1, out.stderr
        assert out.stderr.rstrip().endswith(
            "\nNext: fix the cause, then run the pre-check again (the same command): it holds "
            "no lock; obshell-sdk task show 11 shows its logs"), out.stderr
        listed = cli("task", "list", agent=agent)
        assert listed.returncode == 0 and "unfinished tasks:\n  none" in listed.stdout
        history = cli("task", "list", "--all", agent=agent)
        assert history.returncode == 0, history.stderr
        assert history.stdout.startswith(
            "every task of the cluster, finished ones too:\n  task 11 Upgrade check ")
        assert "FAILED" in history.stdout and "Upgrade check " in history.stdout
        as_json = json.loads(cli("--json", "task", "list", "--all", agent=agent).stdout)
        assert [(d["id"], d["state"], d["outcome"]) for d in as_json["all"]] == [
            ("11", "FAILED", "failed")]


def test_a_failed_check_on_an_agent_before_4_3_holds_no_lock_and_its_upgrade_does():
    """An agent before 4.3.0 sends no ``maintenance_type``: its failed pre-check was said to
    keep the cluster locked, with a "task retry" line and no "run the pre-check again" one.
    Known by its name, it holds no lock; the upgrade itself still does."""
    with FakeAgent(password=PASSWORD, fail_stage=2, version="4.2.3.0") as agent:
        out = cli("upgrade", VERSION, RELEASE, "--check", agent=agent)
        assert out.returncode == 1, out.stderr
        assert "locked" not in out.stderr and "task retry" not in out.stderr, out.stderr
        assert out.stderr.rstrip().endswith(
            "\nNext: fix the cause, then run the pre-check again (the same command): it holds "
            "no lock; obshell-sdk task show 11 shows its logs"), out.stderr
        upgrade = cli("upgrade", VERSION, RELEASE, "--wait", agent=agent)
        assert upgrade.returncode == 1, upgrade.stderr
        assert "The cluster stays locked" in upgrade.stderr, upgrade.stderr
        assert "\nNext: obshell-sdk task retry 12 --wait" in upgrade.stderr, upgrade.stderr
        assert "run the pre-check again" not in upgrade.stderr


def test_task_list_all_goes_with_list_only_and_an_older_agent_says_what_it_lacks():
    with FakeAgent(password=PASSWORD) as agent:
        out = cli("task", "show", "11", "--all", agent=agent)
        assert out.returncode == 2 and "--all: goes with task list" in out.stderr, out.stderr
        assert agent.requests == []  # refused before anything was sent
        empty = cli("task", "list", "--all", agent=agent)
        assert empty.stdout == "every task of the cluster, finished ones too:\n  none\n"
        # A refusal of the call itself (a code of its own) is not a missing route.
        agent.fail_next(status=400, err_code="Agent.Identify.NotSupportOperation",
                        path_prefix="/api/v1/task/dags/ob")
        refused = cli("task", "list", "--all", agent=agent)
        assert refused.returncode == 5 and "no task history" not in refused.stderr, refused.stderr
        agent.dag_history = False  # an agent before 4.2.6: no such route
        old = cli("task", "list", "--all", agent=agent)
        assert old.returncode == 5, old.stderr
        assert old.stderr.rstrip().endswith(
            "The agent keeps no task history it can list (obshell before 4.2.6: obshell-sdk info "
            "shows its version); obshell-sdk task list shows the unfinished tasks"), old.stderr


def test_a_download_that_found_no_package_says_to_upload_it_then_retry(tmp_path):
    """The CLI has a way to upload for a retry: task retry ID --package RPM, which the
    failure names (the Python call it names otherwise is no way out at the command line)."""
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / f"obshell-{VERSION}-{RELEASE}.x86_64.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    with FakeAgent(password=PASSWORD, require_packages=True, stages_per_poll=3) as agent:
        out = cli("upgrade", VERSION, RELEASE, "--wait", agent=agent)
        assert out.returncode == 1, out.stderr
        assert ("The agent has no package of this version: upload it, then retry the task "
                "(obshell-sdk task retry ID --package RPM does both)") in out.stderr
        assert "obshell-sdk task retry 11 --package RPM --wait" in out.stderr
        assert "client." not in out.stderr
        refused = cli("task", "show", "11", "--package", str(rpm), agent=agent)
        assert refused.returncode == 2 and "--package" in refused.stderr
        other = tmp_path / "obshell-4.3.2.0-1.el7.x86_64.rpm"  # not the package the task names
        other.write_bytes(build_rpm("obshell", "4.3.2.0", "1.el7"))
        for wrong, said in ((other, "not obshell 4.3.1.0-"), (tmp_path / "none.rpm", "")):
            refused = cli("task", "retry", "11", "--package", str(wrong), agent=agent)
            assert refused.returncode == 2 and "--package: " in refused.stderr, refused.stderr
            assert said in refused.stderr
        assert not agent.requests_to("/api/v1/package", "POST")  # nothing went out
        agent.drop_reply_after_next(path_prefix="/api/v1/package", method="POST")
        lost = cli("task", "retry", "11", "--package", str(rpm), agent=agent)
        assert lost.returncode == 8, lost.stderr  # the upload's outcome: unknown
        assert "retry was not sent: run the command again once package list shows what is " \
            "stored, with --package only for the RPMs it lacks" in lost.stderr, lost.stderr
        assert "may have applied" not in lost.stderr
        assert agent.dag("11").state == "FAILED"  # indeed, no retry
        done = cli("task", "retry", "11", "--package", str(rpm), "--wait", agent=agent)
        assert done.returncode == 0, done.stderr
        assert upload_lines(done.stderr) == [  # said as upgrade --package says it
            ("uploading", str(rpm), f"{agent.host}:{agent.port}"), ("stored", "obshell")]
        uploads = len(agent.requests_to("/api/v1/package", "POST"))
        assert uploads >= 1
        again = cli("task", "retry", "11", "--package", str(rpm), agent=agent)
        assert again.returncode == 9, again.stderr  # not FAILED: refused, nothing uploaded
        assert len(agent.requests_to("/api/v1/package", "POST")) == uploads


def test_an_agent_with_a_512_bit_key_needs_min_key_bits_and_the_hint_says_so():
    with FakeAgent(password=PASSWORD, key_bits=512) as agent:
        refused = cli("task", "list", agent=agent)
        assert refused.returncode != 0 and "512-bit" in refused.stderr
        assert "--min-key-bits 512" in refused.stderr and "PasswordAuth(" not in refused.stderr
        assert not agent.requests_to("/api/v1/task/dag/unfinish")  # the password never left
        assert cli("task", "list", "--min-key-bits", "512", agent=agent).returncode == 0
        env_way = subprocess.run([sys.executable, "-m", "obshell_sdk", "task", "list"],
                                 env={**_env(agent), "OBSHELL_MIN_KEY_BITS": "512"},
                                 capture_output=True, text=True, timeout=60, check=False)
        assert env_way.returncode == 0, env_way.stderr
        bad = cli("task", "list", "--min-key-bits", "300", agent=agent)
        assert bad.returncode == 2 and "--min-key-bits" in bad.stderr
        bad_env = subprocess.run([sys.executable, "-m", "obshell_sdk", "task", "list"],
                                 env={**_env(agent), "OBSHELL_MIN_KEY_BITS": "300"},
                                 capture_output=True, text=True, timeout=60, check=False)
        assert bad_env.returncode == 2 and "OBSHELL_MIN_KEY_BITS" in bad_env.stderr


def test_from_env_reads_min_key_bits():
    from obshell_sdk import ObshellClient

    with FakeAgent(password=PASSWORD, key_bits=512) as agent:
        env = {"OBSHELL_HOST": agent.host, "OBSHELL_PORT": str(agent.port),
               "OBSHELL_PASSWORD": PASSWORD, "OBSHELL_MIN_KEY_BITS": "512"}
        with ObshellClient.from_env(env) as client:
            assert client.unfinished_dags() == []


def test_a_failed_upgrade_is_not_offered_cancel_and_is_rolled_back_as_the_hint_says():
    """obshell refuses CANCEL for a FAILED DAG (getNodeCanCancel: IsFinished = FAILED or
    SUCCEED): the hint names retry, rollback and skip only, and cancel is refused unsent.
    Failed at stage 2, it cannot be skipped (its Restart obshell step cannot pass), so the
    hint does not offer it; it is rolled back, which frees the lock."""
    with FakeAgent(password=PASSWORD, fail_stage=2) as agent:
        failed = cli("upgrade", VERSION, RELEASE, "--wait", agent=agent)
        assert failed.returncode == 1
        assert failed.stderr.rstrip().endswith(
            "Next: obshell-sdk task retry 11 --wait (or rollback)"), failed.stderr
        agent.clear_requests()
        refused = cli("task", "cancel", "11", agent=agent)
        assert refused.returncode == 9 and agent.dag("11").operator == "RUN"
        assert [r.path for r in agent.requests if r.method == "POST"] == []
        out = cli("task", "skip", "11", agent=agent)
        assert out.returncode == 9 and "PassNotAllowed" in out.stderr, out.stderr
        assert out.stderr.rstrip().endswith(
            "obshell does not allow skip here: a step of the task cannot be skipped; nothing "
            "was changed\nNext: obshell-sdk task retry 11 --wait (or rollback)"), out.stderr
        out = cli("task", "rollback", "11", "--wait", agent=agent)
        assert out.returncode == 0 and agent.dag("11").operator == "ROLLBACK", out.stderr
        assert cli("upgrade", "4.3.2.0", RELEASE, agent=agent).returncode == 0  # lock released


@pytest.mark.parametrize("stage, refused, then", [
    (9, "rollback", "retry 11 --wait (or skip)"),
    (7, "skip", "retry 11 --wait (its steps allow neither rollback nor skip)"),
])
def test_an_operator_obshell_refuses_says_the_ones_the_failed_task_takes(stage, refused, then):
    """A walkthrough: skip of an upgrade that failed before its last step was refused with
    the agent's words only (exit 5, "node Restart obshell cannot pass"), after a failure
    whose hint had offered it. An agent upgrade is skipped only at stage 9 and rolled back
    only before stage 7: the hint names what the task takes; a refusal is a state refusal
    (exit 9, as the SDK's own), said with what to do instead."""
    with FakeAgent(password=PASSWORD, fail_stage=stage) as agent:
        failed = cli("upgrade", VERSION, RELEASE, "--wait", agent=agent)
        assert failed.returncode == 1
        assert failed.stderr.rstrip().endswith(f"Next: obshell-sdk task {then}"), failed.stderr
        out = cli("--json", "task", refused, "11", agent=agent)
        assert out.returncode == 9, out.stderr
        assert out.stderr.rstrip().endswith(f"nothing was changed\nNext: obshell-sdk task {then}")
        error = json.loads(out.stdout)["error"]
        assert error["exit"] == 9 and error["err_code"].endswith("NotAllowed"), error
        assert error["type"] == "OperatorRefusedError", error  # a BadRequestError, typed
        # the library's hint is not said: the CLI's advice follows the agent's words
        assert f"trace id {error['trace_id']}. obshell does not allow {refused} here" in out.stderr
        assert agent.dag("11").state == "FAILED" and agent.dag("11").operator == "RUN"


def test_the_next_line_names_every_operator_when_a_step_is_not_known():
    """Which operators a step takes is known by its name (obshell's upgrades): a step of
    another name leaves all three offered, "where its steps allow", never a guess."""
    import attrs

    from obshell_sdk._cli_next import next_line

    with FakeAgent(password=PASSWORD, fail_stage=2) as agent, ObshellClient(
            agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        detail = client.task(client.upgrade_agent(VERSION, RELEASE).id).wait(
            timeout=30, poll_interval=0.01)
    assert next_line("11", detail) == "\nNext: obshell-sdk task retry 11 --wait (or rollback)"
    nodes = list(detail.nodes or ())
    nodes[5] = attrs.evolve(nodes[5], name="Some step of a newer obshell")
    unknown = attrs.evolve(detail, nodes=tuple(nodes))
    assert next_line("11", unknown) == ("\nNext: obshell-sdk task retry 11 --wait (or "
                                        "rollback, skip, where its steps allow)")
    assert next_line("11", unknown, refused="skip") == (
        "\nNext: obshell-sdk task retry 11 --wait (or rollback, where its steps allow)")


def test_a_cancel_obshell_refuses_says_to_wait_for_the_task():
    """An OceanBase upgrade's script steps take no CANCEL: obshell refuses it while one
    runs; the task keeps running, so the next step is to wait for it."""
    with FakeAgent(password=PASSWORD, stage_seconds=600) as agent:
        dag_id = agent.create_ob_upgrade_dag()
        agent.set_dag_stage(dag_id, 11)  # Execute upgrade checker script: retry only
        out = cli("task", "cancel", dag_id, agent=agent)
        assert out.returncode == 9 and "CancelNotAllowed" in out.stderr, out.stderr
        assert out.stderr.rstrip().endswith(
            "obshell does not allow cancel here: a step of the task cannot be cancelled; "
            f"nothing was changed\nNext: wait for it to end: obshell-sdk task wait {dag_id} "
            "(if it fails, retry, rollback or skip it, where its steps allow)"), out.stderr
        assert agent.dag(dag_id).state == "RUNNING"


@pytest.mark.parametrize("argv, message", [
    (["upgrade", VERSION, RELEASE, "--wait", "--timeout", "-1"], "--timeout"),
    (["upgrade", VERSION, RELEASE, "--check", "--package", "x.rpm"], "--package"),
    (["task", "list", "11"], "task list takes no task id"),
    (["task", "show", "11", "--wait"], "task show does not wait"),
    (["task", "show"], "needs a task id"),
    (["--port", "abc", "info"], "port number from 1 to 65535"),
])
def test_what_would_be_ignored_or_is_malformed_is_refused_before_sending(argv, message):
    with FakeAgent(password=PASSWORD) as agent:
        out = cli(*argv, agent=agent)
        assert out.returncode == 2 and message in out.stderr, out.stderr
        assert "OBSHELL_PORT" not in out.stderr
        assert not [r for r in agent.requests if r.method == "POST"]


def test_usage_errors_go_to_stderr_and_never_echo_an_explicit_argument():
    out = cli("--json", "task")  # stdout: the usage error as --json's one document
    assert out.returncode == 2 and "usage:" in out.stderr and "usage:" not in out.stdout
    said = ("the following arguments are required: ACTION (choose from 'list', 'show', 'wait', "
            "'retry', 'rollback', 'cancel', 'skip')")
    assert json.loads(out.stdout)["error"] == {  # its message as bare as any other's
        "exit": 2, "message": said}, out.stdout
    assert f"obshell-sdk task: error: {said}" in out.stderr  # which command said it
    out = cli("--json", "info", "--https=hunter2-secret")
    assert out.returncode == 2 and "hunter2" not in out.stdout + out.stderr
    out = cli("info", "--https=hunter2-secret")
    assert out.returncode == 2 and "hunter2" not in out.stdout + out.stderr
    # Python 3.13 reads this as -v -h -u...: help, exit 0; earlier ones as a usage error.
    out = cli("-vhunter2-secret", "info")
    assert "hunter2" not in out.stdout + out.stderr


def test_cli_errors_speak_cli_for_every_error_class_with_a_hint():
    import re

    from obshell_sdk import ApiError
    from obshell_sdk._cli_errors import cli_message
    from obshell_sdk._errcodes import CODE_HINTS, error_class_for, with_code_hint

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    hinted = [c for c in subclasses(ApiError) if c.hint]
    assert len(hinted) >= 6
    for cls in hinted:
        exc = cls(status=400, err_code="X.Y", code=0, message="m", trace_id="t",
                  method="GET", path="/p")
        text = cli_message(exc)
        assert "PasswordAuth" not in text and "client." not in text, (cls, text)
        assert not re.search(r"[a-z_]\(", text), (cls, text)
    assert CODE_HINTS  # and the hints of errCodes whose class has none
    for err_code, hint in CODE_HINTS.items():
        exc = with_code_hint(error_class_for(400, err_code, 0)(
            status=400, err_code=err_code, code=0, message="m", trace_id="t", method="POST",
            path="/p"))
        assert str(exc).endswith(". " + hint), err_code
        text = cli_message(exc)
        assert "PasswordAuth" not in text and "client." not in text, (err_code, text)
        assert not re.search(r"[a-z_]\(", text), (err_code, text)


def test_a_wrong_password_and_a_missing_task_name_the_cli_way_out():
    with FakeAgent(password=PASSWORD) as agent:
        wrong = cli("task", "list", agent=agent, password="not-it")
        assert wrong.returncode == 3 and "OBSHELL_PASSWORD" in wrong.stderr
        assert "PasswordAuth" not in wrong.stderr and "not-it" not in wrong.stderr
        missing = cli("task", "show", "199", agent=agent)
        assert missing.returncode == 10 and "obshell-sdk task list" in missing.stderr


def _cli_with(agent, **variables):
    env = dict(_env(agent, password=None), **variables)
    return subprocess.run([sys.executable, "-m", "obshell_sdk", "task", "list"],
                          capture_output=True, text=True, env=env, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)


def test_an_empty_password_variable_refused_is_said_to_be_empty():
    """``OBSHELL_PASSWORD=`` (set, but empty) was sent, as it must be (a SINGLE agent takes
    any password), and refused as a wrong password, with no word that it was empty."""
    with FakeAgent(password=PASSWORD, agent_password="agent-secret") as agent:
        root = _cli_with(agent, OBSHELL_PASSWORD="")
        assert root.returncode == 3, root.stderr
        assert root.stderr.rstrip().endswith("(OBSHELL_PASSWORD is set but empty)"), root.stderr
        agent_pw = _cli_with(agent, OBSHELL_PASSWORD=PASSWORD, OBSHELL_AGENT_PASSWORD="")
        assert agent_pw.returncode == 3, agent_pw.stderr
        assert "(OBSHELL_AGENT_PASSWORD is set but empty)" in agent_pw.stderr, agent_pw.stderr
        assert "OBSHELL_PASSWORD is set" not in agent_pw.stderr  # not the refused one
    with FakeAgent(password=PASSWORD) as agent:  # only the agent password given, empty
        only = _cli_with(agent, OBSHELL_AGENT_PASSWORD="")
        assert only.returncode == 3, only.stderr
        assert "(OBSHELL_AGENT_PASSWORD is set but empty)" not in only.stderr  # not sent
        assert "OBSHELL_PASSWORD is not set, so an empty root@sys password was sent" \
            in only.stderr, only.stderr
        typo = _cli_with(agent, OBSHELL_PASSWORD="not-it")
        assert typo.returncode == 3 and "empty" not in typo.stderr, typo.stderr
    with FakeAgent(password=PASSWORD, identity="SINGLE") as agent:  # takes any: still sent
        single = _cli_with(agent, OBSHELL_PASSWORD="")
        assert single.returncode == 0, single.stderr


def test_ctrl_c_while_waiting_for_a_task_by_id_names_it():
    with FakeAgent(password=PASSWORD, stage_seconds=30) as agent:
        agent.create_upgrade_dag(VERSION, RELEASE)
        proc = popen("task", "wait", "11", agent=agent)
        try:
            assert "task 11" in proc.stderr.readline()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == 130 and "obshell-sdk task wait 11" in err


def test_the_terminal_line_is_cut_to_the_terminal_width():
    import fcntl
    import struct
    import termios

    with FakeAgent(password=PASSWORD, stage_seconds=0.4) as agent:
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
        proc = popen("upgrade", VERSION, RELEASE, "--wait", agent=agent, stderr=follower)
        os.close(follower)
        seen = read_until_closed(leader, proc)
    assert proc.returncode == 0
    drawn = [part for line in seen.decode().split("\x1b[K") for part in [line.split("\r")[0]]
             if part.startswith("task 11 stage")]
    assert drawn and all(len(part) <= 39 for part in drawn), drawn


def test_a_failing_poll_is_told_at_once_in_command_words():
    with FakeAgent(password=PASSWORD) as agent:
        dag = agent.create_upgrade_dag()
        agent.fail_next(2, status=503)
        out = cli("task", "wait", dag, agent=agent)
        assert out.returncode == 0, out.stderr
        notes = [line for line in out.stderr.splitlines() if "poll(s) failed" in line]
        assert len(notes) == 1
        assert notes[0].startswith(f"obshell-sdk: task {dag}: 1 poll(s) failed in 0 s")
        assert notes[0].endswith("check the agent's address and the task id; retrying for up "
                                 "to 300 s more")
        assert "Traceback" not in out.stderr and "WARNING" not in out.stderr


def test_a_bad_task_id_is_named_as_the_command_line_names_it():
    with FakeAgent(password=PASSWORD) as agent:
        out = cli("task", "show", "abc", agent=agent)
    assert out.returncode == 2
    assert out.stderr == ("obshell-sdk: 'abc' is not a task id: ids are decimal digits, "
                          "such as '1123'\n")


def test_the_cli_notes_say_library_hints_as_commands_and_survive_a_broken_stderr(capsys):
    from obshell_sdk._cli import _Notes

    class Broken(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    err = io.StringIO()
    notes = _Notes(Progress(Output(False, io.StringIO(), err), tty=False))
    record = logging.LogRecord("obshell_sdk", logging.WARNING, __file__, 1,
                               "see client.task('11').wait()", None, None)
    notes.handle(record)
    assert err.getvalue() == "obshell-sdk: see obshell-sdk task wait 11\n"
    notes = _Notes(Progress(Output(False, io.StringIO(), Broken()), tty=False))
    notes.handle(record)  # reported the logging way, never raised into the SDK's work
    assert "BrokenPipeError" in capsys.readouterr().err


@pytest.mark.parametrize("host, where", [("https://127.0.0.1", "--port and --https"),
                                         ("http://127.0.0.1", "--port (http is the default)"),
                                         ("127.0.0.1:2886", "--port")])
def test_a_bad_host_option_is_named_as_the_option_in_the_command_lines_words(host, where):
    out = cli("--host", host, "info", password=None)
    assert out.returncode == 2
    assert out.stderr.startswith("obshell-sdk: --host: ") and where in out.stderr
    assert "OBSHELL_HOST" not in out.stderr and "port=" not in out.stderr
    assert ("--https" in out.stderr) == host.startswith("https"), out.stderr  # http: no TLS


@pytest.mark.parametrize("host, where", [
    ("https://127.0.0.1", "OBSHELL_PORT and OBSHELL_HTTPS=1"),
    ("http://127.0.0.1", "OBSHELL_PORT (http is the default)")])
def test_a_bad_host_variable_is_named_with_the_variables_for_port_and_scheme(host, where):
    # an http:// URL was told to set OBSHELL_HTTPS=1 too, which a plain-HTTP agent refuses
    env = {**_env(password=None), "OBSHELL_HOST": host}
    out = subprocess.run([sys.executable, "-m", "obshell_sdk", "info"], capture_output=True,
                         text=True, env=env, timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert out.returncode == 2 and "OBSHELL_HOST: " in out.stderr
    assert where in out.stderr and "port=" not in out.stderr, out.stderr
    assert ("HTTPS" in out.stderr) == host.startswith("https"), out.stderr


def test_task_wait_on_a_wrong_port_exits_4_at_once_as_task_show_does():
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**_env(), "OBSHELL_HOST": "127.0.0.1", "OBSHELL_PORT": str(port)}
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "obshell_sdk", "task", "wait", "11"],
                         capture_output=True, text=True, env=env, timeout=60,
                         stdin=subprocess.DEVNULL, check=False)
    assert out.returncode == 4, out.stderr
    assert time.monotonic() - started < 30 and "retrying" not in out.stderr
    # ... and says how to wait through an agent that is restarting for its upgrade
    assert "obshell-sdk task wait 11 --exists" in out.stderr, out.stderr


def test_a_proxy_nothing_listens_on_says_so_and_how_to_go_around_it(monkeypatch):
    # was "connection lost before the reply was complete (Unable to connect to proxy ...)";
    # a shell user has no trust_env=: the hint says to unset the variables instead
    port = closed_port()
    proxy_from_env(monkeypatch, f"http://127.0.0.1:{port}")
    with FakeAgent(password=PASSWORD) as agent:
        out = cli("task", "list", agent=agent)
        assert agent.requests == []
    assert out.returncode == 4, out.stderr
    assert f"cannot connect to the proxy http://127.0.0.1:{port}" in out.stderr, out.stderr
    assert "the request was not sent" in out.stderr and "NO_PROXY" in out.stderr
    assert "ALL_PROXY, in either case), or reach the agent without a proxy: add its host to " \
        "NO_PROXY, or unset those variables" in out.stderr, out.stderr
    assert "session" not in out.stderr
    assert "trust_env" not in out.stderr and "ObshellClient" not in out.stderr


@pytest.mark.parametrize("command", [("info",), ("task", "show", "11")])
def test_a_proxy_s_own_page_is_said_to_have_come_through_it(monkeypatch, command):
    # was exit 7 with "is this an obshell agent, and is --https (OBSHELL_HTTPS) right?" only:
    # HTTP_PROXY sent the call to a proxy that answered with a 502 page, never named
    from rawserver import RawServer

    with RawServer() as proxy:
        proxy.set_reply(502, b"<html><body>502 Bad Gateway</body></html>",
                        {"Content-Type": "text/html"})
        proxy_from_env(monkeypatch, f"http://127.0.0.1:{proxy.port}")
        with FakeAgent(password=PASSWORD) as agent:
            out = cli(*command, agent=agent)
            assert agent.requests == []
    assert out.returncode == 7, out.stderr
    assert f"it came through the proxy http://127.0.0.1:{proxy.port}: is it the agent's " \
        "reply, or the proxy's own?" in out.stderr, out.stderr
    assert "add its host to NO_PROXY, or unset those variables" in out.stderr, out.stderr
    assert "session" not in out.stderr and "trust_env" not in out.stderr


def test_a_version_release_given_as_one_argument_gets_a_hint():
    out = cli("upgrade", "4.6.0.0-101000012025020101.el7")
    assert out.returncode == 2
    assert "required: RELEASE" in out.stderr and "two arguments" in out.stderr


OBSHELL_RPM = "obshell-4.4.0.0-101000012025020101.el7.x86_64.rpm"
CE_RPM = "oceanbase-ce-4.3.5.1-101000012025052815.el7.x86_64.rpm"


@pytest.mark.parametrize("args, said", [
    (("upgrade", OBSHELL_RPM), "give upgrade VERSION RELEASE --package FILE (from its name: "
     "VERSION 4.4.0.0 RELEASE 101000012025020101.el7)"),
    (("upgrade", f"/srv/rpms/{OBSHELL_RPM}", "101000012025020101.el7", "--wait"),
     "give upgrade VERSION RELEASE --package FILE (from its name: VERSION 4.4.0.0 RELEASE "
     "101000012025020101.el7)"),
    (("upgrade-ob", CE_RPM), "give upgrade-ob VERSION RELEASE --package FILE (from its name: "
     "VERSION 4.3.5.1 RELEASE 101000012025052815.el7)"),
    (("upgrade", CE_RPM), "oceanbase-ce is upgraded by upgrade-ob: give upgrade-ob VERSION "
     "RELEASE --package FILE (from its name: VERSION 4.3.5.1 RELEASE 101000012025052815.el7)"),
    (("upgrade", "obshell.rpm"), "give upgrade VERSION RELEASE --package FILE, VERSION and "
     "RELEASE as the RPM's file name gives them (obshell-VERSION-RELEASE.ARCH.rpm)"),
    (("rollout", "agent", "--targets", "t.txt", "--journal", "r.db", OBSHELL_RPM,
      "101000012025020101.el7"), "give rollout agent --targets FILE --journal FILE VERSION "
     "RELEASE --package FILE (from its name: VERSION 4.4.0.0 RELEASE 101000012025020101.el7)"),
    (("rollout", "ob", CE_RPM), "give rollout ob --targets FILE --journal FILE VERSION RELEASE "
     "--package FILE (from its name: VERSION 4.3.5.1 RELEASE 101000012025052815.el7)"),
    (("rollout", "agent", CE_RPM), "oceanbase-ce is upgraded by rollout ob: give rollout ob "
     "--targets FILE --journal FILE VERSION RELEASE --package FILE (from its name: VERSION "
     "4.3.5.1 RELEASE 101000012025052815.el7)"),
    (("rollout", "ob", "ob.rpm"), "give rollout ob --targets FILE --journal FILE VERSION "
     "RELEASE --package FILE, VERSION and RELEASE as the RPM's file name gives them "
     "(oceanbase-ce-VERSION-RELEASE.ARCH.rpm)"),
])
def test_an_rpm_given_as_version_says_how_to_give_it(args, said):
    """``upgrade obshell-4.4.0.0-....rpm`` said "required: RELEASE" with an example of
    another version: where VERSION and RELEASE come from went unsaid."""
    out = cli(*args)
    assert out.returncode == 2
    assert f"error: argument VERSION: takes a version, not an RPM: {said}\n" in out.stderr, \
        out.stderr
    assert "required" not in out.stderr


@pytest.mark.parametrize("command, name", [("upgrade", "obshell"),
                                           ("upgrade-ob", "oceanbase-ce")])
def test_help_says_version_and_release_come_from_the_rpm_s_file_name(command, name):
    helped = " ".join(cli(command, "--help").stdout.split())
    assert f"(from the RPM's file name: {name}-VERSION-RELEASE.ARCH.rpm)" in helped
    assert "(from the RPM's file name, as VERSION)" in helped


@pytest.mark.parametrize("command, what", [
    (("upgrade",), "obshell RPM"), (("upgrade-ob",), "an RPM"),
    (("rollout", "agent"), "obshell RPM"), (("rollout", "ob"), "an OceanBase RPM"),
    (("task",), "upload this RPM")])
def test_help_names_package_s_value_an_rpm_as_every_command_does(command, what):
    """``rollout ob --help`` said ``--package PACKAGE`` and "RPM to upload": which RPM, and
    that a PACKAGE is a file, went unsaid where every other command says ``--package RPM``."""
    helped = cli(*command, "--help").stdout
    assert "--package RPM" in helped and "PACKAGE" not in helped, helped
    assert what in " ".join(helped.split()), helped


@pytest.mark.parametrize("command", [("upgrade",), ("rollout", "agent"), ("rollout", "ob")])
def test_usage_names_version_and_release_as_messages_and_docs_do(command):
    """The usage line said ``version release`` while every message, hint and page says
    VERSION and RELEASE (``VERSION: '4.3' is not ...``, ``VERSION and RELEASE are two
    arguments``)."""
    files = ("--targets", "t.txt", "--journal", "j.db") if command[0] == "rollout" else ()
    out = cli(*command, *files, "4.6.0.0-101000012025020101.el7")
    assert out.returncode == 2
    usage = out.stderr.partition(": error: ")[0].rpartition("\n")[0]  # before "prog: error"
    assert usage.rstrip().endswith(" VERSION RELEASE"), out.stderr
    assert "required: RELEASE\nVERSION and RELEASE are two arguments" in out.stderr, out.stderr
    helped = cli(*command, "--help").stdout
    assert "  VERSION " in helped and "  RELEASE " in helped and "  version " not in helped


def test_tls_hints_name_the_cli_options_not_python_keywords():
    """``--https`` against a plain-HTTP agent: the hint says --https and --ca-bundle (a shell
    user has no https=, verify= or cert=), and so does a reply that is not JSON."""
    from obshell_sdk._cli_errors import cli_words

    with FakeAgent(password=PASSWORD) as agent:
        out = cli("--https", "info", agent=agent)
    assert out.returncode == 4, out.stderr
    assert "--https and --ca-bundle" in out.stderr and "https=" not in out.stderr, out.stderr
    said = cli_words("HTTP 200 reply is not JSON (text/html); is this an obshell agent, and "
                     "is https= right?")
    assert said.endswith("is --https (OBSHELL_HTTPS) right?"), said


def test_a_server_that_is_no_obshell_agent_is_named_as_every_other_error_names_it():
    """A plain web server's 404 page: ``GET /api/v1/info: HTTP 404 reply is not JSON``, where
    every other error says on which agent; ``--json`` gave no ``agent`` either."""
    from rawserver import RawServer

    with RawServer() as server:
        server.set_reply(404, b"<html><body>Not Found</body></html>",
                         {"Content-Type": "text/html"})
        env = dict(_env(password=None), OBSHELL_HOST=server.host, OBSHELL_PORT=str(server.port))
        out = subprocess.run([sys.executable, "-m", "obshell_sdk", "--json", "info"],
                             capture_output=True, text=True, env=env, timeout=60,
                             stdin=subprocess.DEVNULL, check=False)
    agent = f"{server.host}:{server.port}"
    assert out.returncode == 7, out.stderr
    assert f"GET /api/v1/info on {agent}: HTTP 404 reply is not JSON" in out.stderr, out.stderr
    assert json.loads(out.stdout)["error"]["agent"] == agent


@pytest.mark.parametrize("command", [("info",), ("task", "list"), ("package", "list")])
def test_a_port_that_is_not_http_says_it_on_one_line_and_which_port_obshell_has(command):
    """OceanBase's SQL port (2881) given for the agent's: exit 4, "connection lost ...
    (Connection aborted: J\\x00\\x00\\x00" and a raw newline, no hint; a plain web server
    on a wrong port got exit 7 and a hint."""
    from rawserver import RawReply, RawServer
    from test_transport_paths import MYSQL_GREETING, NOT_HTTP

    with RawServer(greeting=MYSQL_GREETING) as server:
        server.handler = lambda request: RawReply(0, wire=[], close=True)
        env = dict(_env(), OBSHELL_HOST=server.host, OBSHELL_PORT=str(server.port))
        out = subprocess.run([sys.executable, "-m", "obshell_sdk", "--json", *command],
                             capture_output=True, text=True, env=env, timeout=60,
                             stdin=subprocess.DEVNULL, check=False)
    assert out.returncode == 7, out.stderr
    assert out.stderr.startswith("obshell-sdk: GET /api/v1/"), out.stderr
    assert f"{server.host}:{server.port}: {NOT_HTTP}" in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr[:-1].isprintable(), out.stderr
    error = json.loads(out.stdout)["error"]
    assert (error["type"], error["exit"]) == ("DecodeError", 7) and "status" not in error


def test_usage_errors_name_what_the_usage_line_shows():
    """``task`` alone names ACTION, as the usage line and --help do (it named a Python
    ``action`` the usage never showed), and a stray value is said to be one."""
    out = cli("task")
    assert out.returncode == 2 and "ACTION [ID]" in out.stderr, out.stderr
    assert out.stderr.rstrip().endswith("the following arguments are required: ACTION (choose "
                                        "from 'list', 'show', 'wait', 'retry', 'rollback', "
                                        "'cancel', 'skip')"), out.stderr
    assert "list, show, wait, retry, rollback, cancel or skip" in cli("task", "--help").stdout
    extra = cli("task", "show", "11", "hunter2-secret")
    assert extra.returncode == 2 and "1 extra value given" in extra.stderr
    assert "hunter2" not in extra.stderr


@pytest.mark.parametrize("argv, missing, choices", [
    ((), "COMMAND", "'info', 'upgrade', 'upgrade-ob', 'task', 'package', 'rollout'"),
    (("task",), "ACTION", "'list', 'show', 'wait', 'retry', 'rollback', 'cancel', 'skip'"),
    (("--json", "task"), "ACTION", "'list', 'show', 'wait', 'retry', 'rollback', 'cancel', "
     "'skip'"),
    (("package",), "ACTION", "'list', 'upload', 'delete'"),
    (("rollout",), "KIND", "'agent', 'ob', 'status'"),
])
def test_a_command_s_word_left_out_is_a_usage_error_that_lists_its_choices(argv, missing,
                                                                           choices):
    """``task`` alone said "required: ACTION" and no more: what ACTION may be is said, as an
    invalid one says it (argparse shows them only where the usage does)."""
    out = cli(*argv)
    said = f"the following arguments are required: {missing} (choose from {choices})"
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert said in out.stderr.splitlines()[-1], out.stderr
    if "--json" in argv:
        assert json.loads(out.stdout)["error"]["message"] == said, out.stdout


@pytest.mark.parametrize("argv, said", [
    (["task", "show", "17", "18"], "obshell-sdk task: error: task show takes one ID; "
     "1 extra value given (values are not shown)"),
    (["task", "wait", "17", "18", "19"], "obshell-sdk task: error: task wait takes one "
     "ID; 2 extra values given (values are not shown)"),
    # task list takes none: it refuses one ("task list takes no task id")
    (["task", "list", "17", "18"], "obshell-sdk task: error: task list takes no ID; "
     "1 extra value given (values are not shown)"),
    (["upgrade", VERSION, RELEASE, "x.el7"], "obshell-sdk upgrade: error: upgrade takes "
     "VERSION RELEASE; 1 extra value given (values are not shown)"),
    (["info", "17"], "obshell-sdk info: error: info takes options only; 1 extra value given "
     "(values are not shown)"),
    (["task", "show", "17", "18", "--wiat"], "obshell-sdk task: error: unrecognized arguments: "
     "--wiat (did you mean --wait?); task show takes one ID; 1 extra value given "
     "(values are not shown)"),
])
def test_an_extra_value_is_said_with_what_the_command_takes(argv, said):
    """``task show 17 18`` said ``unrecognized arguments: (an extra value: values are not
    shown, as one may be a password)``: neither what was wrong nor what the command takes."""
    out = cli(*argv)
    assert out.returncode == 2 and out.stderr.rstrip().endswith(said), out.stderr
    assert "18" not in out.stderr.partition(": error: ")[2] and "x.el7" not in out.stderr
    doc = json.loads(cli("--json", *argv).stdout)["error"]
    assert doc["message"] == said.partition(": error: ")[2], doc


def test_the_example_never_starts_an_upgrade_it_was_not_given():
    """Without --version and --release it started a made-up upgrade (its old defaults)."""
    with FakeAgent(password=PASSWORD) as agent:
        done = subprocess.run([sys.executable, str(ROOT / "examples" / "upgrade_agent.py")],
                              capture_output=True, text=True, env=_env(agent), timeout=60,
                              stdin=subprocess.DEVNULL, check=False)
        assert done.returncode == 2, done.stderr
        assert "give --host (or OBSHELL_HOST), --version and --release; or --demo" in done.stderr
        assert agent.requests == []
        done = subprocess.run([sys.executable, str(ROOT / "examples" / "upgrade_agent.py"),
                               "--version", "v" + VERSION, "--release", RELEASE],
                              capture_output=True, text=True, env=_env(agent), timeout=60,
                              stdin=subprocess.DEVNULL, check=False)
        assert done.returncode == 2 and "version: " in done.stderr, done.stderr
        assert done.stdout == "" and agent.requests == []  # a usage error, before any request
        done = subprocess.run([sys.executable, str(ROOT / "examples" / "upgrade_agent.py"),
                               "--version", VERSION, "--release", RELEASE],
                              capture_output=True, text=True, env=_env(agent), timeout=60,
                              stdin=subprocess.DEVNULL, check=False)
        assert done.returncode == 0, done.stderr  # OBSHELL_HOST and OBSHELL_PORT are read
        assert f"agent {agent.host}:{agent.port}" in done.stdout


def test_the_example_sends_an_empty_obshell_password_as_given():
    """An empty OBSHELL_PASSWORD was taken for none (without a terminal: "set
    OBSHELL_PASSWORD", exit 2); as for the CLI and from_env it is the password, and the
    agent is the one to refuse it."""
    with FakeAgent(password=PASSWORD) as agent:
        done = subprocess.run([sys.executable, str(ROOT / "examples" / "upgrade_agent.py"),
                               "--version", VERSION, "--release", RELEASE],
                              capture_output=True, text=True, env=_env(agent, password=""),
                              timeout=60, stdin=subprocess.DEVNULL, check=False)
        assert done.returncode == 1 and "set OBSHELL_PASSWORD" not in done.stderr, done.stderr
        assert "The password was refused" in done.stderr, done.stderr
        assert agent.requests != []


def test_the_example_uploads_the_package_it_is_given_then_checks_and_upgrades(tmp_path):
    """It had no --package: against an agent without the RPM (as a real one is, until it is
    uploaded) the upgrade failed at "Download all required packages", holding the lock. With
    --package it runs the whole workflow: upload, pre-check, upgrade, follow, confirm."""
    from obshell_sdk.testing import build_rpm

    rpm = tmp_path / f"obshell-{VERSION}-{RELEASE}.x86_64.rpm"
    rpm.write_bytes(build_rpm("obshell", VERSION, RELEASE))
    other = tmp_path / "obshell-4.3.2.0-1.el7.x86_64.rpm"  # not the target's
    other.write_bytes(build_rpm("obshell", "4.3.2.0", "1.el7"))

    def example(agent, package):
        return subprocess.run([sys.executable, str(ROOT / "examples" / "upgrade_agent.py"),
                               "--version", VERSION, "--release", RELEASE, "--package",
                               str(package)], capture_output=True, text=True, env=_env(agent),
                              timeout=90, stdin=subprocess.DEVNULL, check=False)

    with FakeAgent(password=PASSWORD, require_packages=True, stages_per_poll=3) as agent:
        wrong = example(agent, other)
        assert wrong.returncode == 2, wrong.stderr  # refused by its header, nothing sent
        assert "is obshell 4.3.2.0-1.el7, not obshell " + VERSION in wrong.stderr
        assert not agent.requests_to("/api/v1/package", "POST") and not agent.dags
        done = example(agent, rpm)
        assert done.returncode == 0, done.stderr
        assert [name for name, _ in agent.packages] == [rpm.name]
        out = done.stdout
        said = [out.index(line) for line in (
            f"uploading {rpm}\n", f"uploaded {rpm}: package 1 on the agent\n",
            f"task 11: Upgrade check obshell {VERSION}-{RELEASE}\n", "  [5/5] SUCCEED",
            f"task 12: Upgrade obshell {VERSION}-{RELEASE}\n", "  [9/9] SUCCEED",
            f"task 12 succeeded; agent now runs obshell {VERSION}-")]
        assert said == sorted(said), out


def test_the_example_is_configured_as_from_env_reads_it():
    """The example read only OBSHELL_HOST and OBSHELL_PORT: an agent with a 512-bit key (and
    OBSHELL_MIN_KEY_BITS=512) or one behind OBSHELL_HTTPS could not be upgraded with it."""
    with FakeAgent(password=PASSWORD, key_bits=512) as agent:
        env = dict(_env(agent), OBSHELL_MIN_KEY_BITS="512")
        done = subprocess.run([sys.executable, str(ROOT / "examples" / "upgrade_agent.py"),
                               "--version", VERSION, "--release", RELEASE, "--port",
                               str(agent.port), "--timeout", "60"],
                              capture_output=True, text=True, env=env, timeout=90,
                              stdin=subprocess.DEVNULL, check=False)
        assert done.returncode == 0, done.stderr
        assert f"task 11 succeeded; agent now runs obshell {VERSION}" in done.stdout


def test_the_demo_says_the_restart_and_the_new_key_it_promises():
    """The README promises a restart and a new key mid-upgrade; --demo showed neither (the
    progress jumped from stage 6 to 9/9), and -v buried them among urllib3's DEBUG lines. The
    SDK's own events are said now, in order with the progress, once each, and nothing else."""
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "upgrade_agent.py"),
                           "--demo"], capture_output=True, text=True, env=_env(password=None),
                          timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    said = [out.index(line) for line in (
        "RUNNING Install new obshell",
        "obshell_sdk.testing: fake agent restarting at stage 7 of DAG 11",
        "the agent may be restarting",
        "could not decrypt our header; fetching its key again",
        "task 11 on 127.0.0.1:",  # ...: reachable again
        "[9/9] SUCCEED")]
    assert said == sorted(said), out
    assert out.count("poll(s) failed") == 1, out  # a run of failed polls is said once
    assert "urllib3" not in out + done.stderr and "DEBUG" not in out + done.stderr, out


def test_the_rollout_example_without_options_is_a_usage_error():
    """It exited 1 with a bare message and no usage line, where upgrade_agent.py exits 2."""
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "rollout.py")],
                          capture_output=True, text=True, env=_env(), timeout=60,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("usage: rollout.py"), done.stderr
    assert done.stderr.rstrip().endswith(
        "error: give --targets, --journal, --version and --release (or --demo)"), done.stderr


def test_the_rollout_example_says_what_is_missing_instead_of_a_traceback(tmp_path):
    """With neither OBSHELL_PASSWORD nor a terminal it asked all the same and died in getpass
    (EOFError); a targets file it could not read, or a malformed target, was a traceback too."""
    fleet, binary = tmp_path / "fleet.txt", tmp_path / "fleet.bin"
    fleet.write_text("  # the fleet, as the CLI reads it\n127.0.0.1  # db1\n", encoding="utf-8")
    binary.write_bytes(b"\xff\xfe\x00")  # not text

    def example(targets, password=PASSWORD):
        return subprocess.run(
            [sys.executable, str(ROOT / "examples" / "rollout.py"), "--targets", str(targets),
             "--journal", str(tmp_path / "fleet.db"), "--version", VERSION, "--release", RELEASE],
            capture_output=True, text=True, env=_env(password=password), timeout=60,
            stdin=subprocess.DEVNULL, check=False)

    for done, said in [
        (example(fleet, password=None), "set OBSHELL_PASSWORD to the root@sys password"),
        (example(tmp_path / "missing.txt"), "cannot read --targets"),
        (example(binary), "cannot read --targets"),
        (example(fleet), "rollout refused: targets: '127.0.0.1' is not 'host:port'"),
        # an empty OBSHELL_PASSWORD is a password, as for the CLI: not asked for again
        (example(fleet, password=""), "rollout refused: targets: '127.0.0.1' is not 'host:port'"),
    ]:
        assert done.returncode == 1 and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "fleet.db").exists()


def test_the_rollout_example_says_a_stopped_rollout_with_where_each_target_stood(tmp_path):
    """A rollout stopped on an error of its own (RolloutStoppedError), not a cluster's: the
    example prints its report and says it stopped. Here the journal's row of the canary's
    pre-check is changed by hand while that pre-check runs: its turn ends on reading it back."""
    fleet_file, journal = tmp_path / "fleet.txt", tmp_path / "fleet.db"
    with FakeAgent(password=PASSWORD, stages_per_poll=0) as canary, \
            FakeAgent(password=PASSWORD) as other:  # the canary's pre-check waits for the edit
        fleet = [f"{a.host}:{a.port}" for a in (canary, other)]
        fleet_file.write_text("\n".join(fleet) + "\n", encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "rollout.py"), "--targets", str(fleet_file),
             "--journal", str(journal), "--version", VERSION, "--release", RELEASE],
            env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        try:
            deadline = time.monotonic() + 30
            # followed: the pre-check is journaled (its task id written before the first read)
            while not canary.dags or not canary.requests_to(
                    f"/api/v1/task/dag/{next(iter(canary.dags))}", "GET"):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
            (check,) = canary.dags
            with closing(sqlite3.connect(journal)) as db, db:
                assert db.execute("UPDATE steps SET dag_id = 'abc' WHERE dag_id = ?",
                                  (check,)).rowcount == 1
            canary.set_dag_progression(stages_per_poll=30)  # the upgrade to come ends at once
            canary.set_dag_progression(stages_per_poll=30, dag_id=check)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
            proc.wait()
        assert other.requests == []  # the canary's turn stopped the rollout
    assert proc.returncode == 1, stderr
    assert f"rollout stopped: the rollout stopped in {fleet[0]}'s turn on InvalidArgumentError" \
        in stderr, stderr
    assert "changed by hand" in stderr and "rollout refused" not in stderr
    assert "Traceback" not in stderr
    *rows, total = stdout.splitlines()  # the report: where each target stood, then the counts
    assert [row.split()[:2] for row in rows] == [[fleet[0], "unknown"], [fleet[1], "skipped"]]
    assert total == f"2 targets: 1 skipped, 1 unknown (journal {journal})", stdout


def test_the_example_escapes_what_the_agent_wrote():
    """Code users copy: the step names and versions it prints come from the agent, so a
    terminal escape in one must reach the terminal escaped."""
    def hostile(data):
        for node in data.get("nodes") or ():
            node["name"] += "\x1b[2J\u2028"
        return data

    with FakeAgent(password=PASSWORD, stages_per_poll=3) as agent:
        agent.edit_data_next(100, edit=hostile, path_prefix="/api/v1/task/dag/", method="GET")
        done = subprocess.run([sys.executable, str(ROOT / "examples" / "upgrade_agent.py"),
                               "--version", VERSION, "--release", RELEASE],
                              capture_output=True, text=True, env=_env(agent), timeout=60,
                              stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr
    assert "\\x1b[2J\\u2028" in done.stdout, done.stdout
    assert "\x1b" not in done.stdout and "\u2028" not in done.stdout
