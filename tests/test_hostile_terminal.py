"""Hostile agents, class 7: what the agent says cannot drive the user's terminal.

DAG names, node names, sub-task logs, failure and error messages and ``/info`` fields come
from the agent; the command line prints them with control characters escaped (ESC, CR, BEL,
the C1 range): an agent cannot clear the screen, move the cursor, set the window title or
overwrite a line. Run as ``python -m obshell_sdk`` against the fake agent and a raw server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PASSWORD
from rawserver import RawAgent, RawReply, RawServer, dag_json, envelope, json_reply

import obshell_sdk
from obshell_sdk.testing import FakeAgent

VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"
ROOT = Path(obshell_sdk.__file__).resolve().parents[1]
#: Clear the screen, set the window title, carriage return, bell, CSI (C1), NEL (C1), and
#: a right-to-left override and isolate (the line shown in another order than written).
EVIL = ("\x1b[2J\x1b]0;pwned\x07 back\rOVERWRITE \x9b31m red \x85 \x1b[1A"
        " \u202edesrever\u2066 ")
CONTROLS = ("\x1b", "\x07", "\r", "\x9b", "\x85", "\u202e", "\u2066")
#: In a header line, CR (and NEL) would end the line, and only Latin-1 goes: the rest stays.
EVIL_HEADER = "".join(c for c in EVIL if ord(c) < 0x100).replace("\r", " ").replace("\x85", " ")


def _cli(host, port, *args, password=PASSWORD):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSHELL_")}
    env.update(PYTHONPATH=str(ROOT), OBSHELL_HOST=host, OBSHELL_PORT=str(port),
               PYTHONIOENCODING="utf-8")
    if password is not None:
        env["OBSHELL_PASSWORD"] = password
    run = subprocess.run([sys.executable, "-m", "obshell_sdk", *args], capture_output=True,
                         env=env, timeout=30, stdin=subprocess.DEVNULL, check=False)
    return run.returncode, run.stdout.decode("utf-8"), run.stderr.decode("utf-8")


def _assert_clean(stdout, stderr, *, must_show=("pwned", "OVERWRITE")):
    for stream, text in (("stdout", stdout), ("stderr", stderr)):
        raw = [repr(c) for c in CONTROLS if c in text]
        assert not raw, f"{stream} carries raw {', '.join(raw)}: {text!r}"
    for word in must_show:  # escaped, not dropped
        assert word in stdout + stderr


@pytest.mark.parametrize("json_output", [False, True])
def test_failure_message_with_escapes_from_the_fake_agent(json_output):
    with FakeAgent(password=PASSWORD, fail_stage=2, stages_per_poll=9,
                   fail_message=f"disk full {EVIL}") as agent:
        flags = ["--json"] if json_output else []
        code, out, err = _cli(agent.host, agent.port, *flags, "upgrade", VERSION, RELEASE,
                              "--wait", "--timeout", "20")
        assert code == 1, err
        _assert_clean(out, err)
        dag_id = next(iter(agent.dags))
        code, out, err = _cli(agent.host, agent.port, *flags, "task", "show", dag_id)
        assert code == 0, err
        _assert_clean(out, err)


def _evil_dag(state="FAILED"):
    dag = dag_json("11", name=f"Upgrade {EVIL}", stage=2, max_stage=3, state=state)
    dag["nodes"] = [
        {"id": f"11{i}", "node_id": i, "name": f"step {i} {EVIL}",
         "state": "SUCCEED" if i < 2 else (state if i == 2 else "PENDING"),
         "operator": "RUN", "additional_data": None,
         "sub_tasks": [{"id": f"11{i}", "task_id": i, "name": f"sub {EVIL}",
                        "state": "SUCCEED" if i < 2 else (state if i == 2 else "PENDING"),
                        "operator": "RUN", "execute_times": 1,
                        "execute_agent": {"ip": "127.0.0.1", "port": 2886},
                        "task_logs": [f"log line {EVIL}", f"ERROR: {EVIL}"]}]}
        for i in (1, 2, 3)
    ]
    return dag


@pytest.fixture
def evil_agent():
    with RawServer() as server:
        agent = RawAgent(server, version=f"4.3.0.0 {EVIL}")
        agent.route("GET", "/api/v1/task/dag/11", lambda request: json_reply(_evil_dag()))
        agent.route("POST", "/api/v1/task/dag/11", lambda request: json_reply(
            status=400, error={"errCode": "Request.Param.Invalid", "code": 2000,
                               "message": f"refused {EVIL}"}))
        agent.route("GET", "/api/v1/task/dag/12", lambda request: RawReply(
            200, f"<html>{EVIL}</html>".encode(), {"Content-Type": f"text/html {EVIL_HEADER}"}))
        yield server


@pytest.mark.parametrize(("args", "code"), [
    (["task", "show", "11"], 0),
    (["task", "wait", "11", "--timeout", "5"], 1),
    (["task", "retry", "11"], 5),
    (["task", "show", "12"], 7),
    (["info"], 0),
    (["--json", "task", "show", "11"], 0),
])
def test_raw_agent_texts_are_escaped(evil_agent, args, code):
    got, out, err = _cli(evil_agent.host, evil_agent.port, *args)
    assert got == code, err
    _assert_clean(out, err, must_show=("pwned",))


def test_verbose_log_lines_are_escaped_too():
    """A poll fails with an agent message full of escapes, then the task ends: with -v."""
    with RawServer() as server:
        agent = RawAgent(server)
        polls = []

        def dag_11(request):
            polls.append(request)
            if len(polls) == 1:
                return RawReply(503, envelope(status=503, error={
                    "errCode": "Unknown", "code": 1, "message": f"busy {EVIL}"}))
            return json_reply(dag_json("11", stage=9, state="SUCCEED"))

        agent.route("GET", "/api/v1/task/dag/11", dag_11)
        code, out, err = _cli(server.host, server.port, "-v", "task", "wait", "11",
                              "--timeout", "10")
    assert code == 0, err
    _assert_clean(out, err)


_SCRIPT = """
import sys
from obshell_sdk import ObshellClient, PasswordAuth
client = ObshellClient(sys.argv[1], int(sys.argv[2]), auth=PasswordAuth(sys.argv[3]))
{body}
"""


@pytest.mark.parametrize("body", [
    "client.task('11').result(timeout=5, progress=False)",  # TaskFailedError: names and logs
    "client.operate_dag('11', 'RETRY')",  # BadRequestError: the agent's message
    "client.get_dag('12')",  # DecodeError: the page's content type
])
def test_a_script_s_traceback_is_escaped_too(evil_agent, body):
    # not the CLI: a plain script whose uncaught error Python prints on stderr
    run = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(body=body), evil_agent.host, str(evil_agent.port),
         PASSWORD],
        capture_output=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"})
    err = run.stderr.decode("utf-8")
    assert run.returncode == 1 and "obshell_sdk." in err, err
    _assert_clean("", err, must_show=("pwned",))


def test_an_error_keeps_the_agent_s_raw_text_in_its_attributes():
    from obshell_sdk import BadRequestError

    error = BadRequestError(status=400, err_code="X", code=1, message=f"no {EVIL}",
                            trace_id="", method="GET", path="/p")
    assert error.message == f"no {EVIL}" and EVIL not in str(error)
    assert "no \\x1b[2J\\x1b]0;pwned\\x07 back\\x0dOVERWRITE" in str(error)


def test_newlines_and_tabs_stay_in_an_error_s_text_but_a_lone_cr_is_escaped():
    from obshell_sdk import ObshellError

    text = str(ObshellError("boom\n\tat main.go:5\r\nnext\rOVERWRITE"))
    assert text == "boom\n\tat main.go:5\nnext\\x0dOVERWRITE"



def test_the_agent_s_words_cannot_forge_a_line_in_an_error_or_a_log():
    """An agent's newline inside its message, a log line or a package name stays escaped:
    only the SDK's own text starts new lines."""
    from rawserver import dag_json

    from obshell_sdk import ServerError
    from obshell_sdk._dag import DagDetail
    from obshell_sdk._render import failure_line, failure_message

    err = ServerError(status=500, err_code="Common.Unexpected", code=0, trace_id="t",
                      message="disk full\nobshell-sdk: task 11 succeeded", method="GET",
                      path="/p")
    assert "\n" not in str(err) and "disk full\\x0aobshell-sdk" in str(err)
    assert err.message.count("\n") == 1  # the attribute keeps the raw text
    doc = dag_json("11", stage=3, state="FAILED", nodes=True)
    doc["nodes"][2]["sub_tasks"] = [{
        "id": "1101", "task_id": 1, "name": "Download\nFAKE", "state": "FAILED",
        "operator": "RUN", "structName": "x", "additional_data": None,
        "execute_times": 1, "execute_agent": {"ip": "127.0.0.1", "port": 2886},
        "task_logs": ["ok", "x" * 5000 + "\nobshell-sdk: the cluster is unlocked"],
        "start_time": "2026-11-30T00:00:00Z", "end_time": "2026-11-30T00:00:01Z"}]
    detail = DagDetail.from_json(doc)
    message = failure_message("task 11", detail)
    assert not any(line.startswith("obshell-sdk") or line.startswith("FAKE")
                   for line in message.splitlines())
    line = failure_line("task 11", detail)
    assert "\n" not in line and len(line) < 1300  # one line, the log cut at 1000 characters
