"""DagTask's polling rules, driven by a scripted DAG source (no network: the policy is pure)."""

from __future__ import annotations

import logging

import pytest
from vectorlib import vectors

from obshell_sdk import (
    ConnectError,
    DagDetail,
    DagTask,
    DecodeError,
    PollPolicy,
    ServerError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotFoundError,
    TaskRolledBackError,
    TaskTimeoutError,
    TaskUnreachableError,
    WrongPasswordError,
)

BASE = next(v["response"]["body"]["data"] for v in vectors()
            if v["name"] == "dag detail until SUCCEED")


def dag(state="RUNNING", operator="RUN", stage=4):
    return DagDetail.from_json(dict(BASE, state=state, operator=operator, stage=stage))


def api(cls, status, err_code):
    return cls(status=status, err_code=err_code, code=0, message="m", trace_id="", method="GET",
               path="/p")


class Script:
    """Answers get_dag from a list of DagDetails or exceptions."""

    timeout = (5.0, 60.0)  # the client's (connect, read) timeout, read by each poll
    agent_clock_offset = None  # no reply timestamps: polls keep the policy's plain interval
    agent = "127.0.0.1:2886"  # named in log lines

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def get_dag(self, dag_id, show_details=True, *, timeout=None):
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


FAST = PollPolicy(initial=0.001, fraction=0.001, ceiling=0.002, jitter=0)


def test_interval_grows_with_time_followed_up_to_the_ceiling():
    p = PollPolicy(jitter=0)
    assert p.interval(0) == 0.5 and p.interval(5) == pytest.approx(1.0)
    assert p.interval(1000) == 3.0
    assert [p.retry_interval(n) for n in (1, 2, 3, 10)] == pytest.approx([0.5, 1.0, 2.0, 3.0])
    jittered = PollPolicy(jitter=0.1)
    assert all(0.9 * 1.0 <= jittered.interval(5) <= 1.1 * 1.0 for _ in range(50))
    assert all(jittered.interval(1000) <= 3.0 for _ in range(50))  # jitter never passes it
    assert p.evolve(ceiling=10).ceiling == 10 and p.ceiling == 3.0


def test_default_policy_never_polls_more_than_twice_a_second():
    p = PollPolicy()
    for followed in (0, 0.1, 1, 2, 2.5, 3, 10, 100):
        assert all(p.interval(followed) >= 0.5 for _ in range(50))
        assert all(p.retry_interval(n) >= 0.5 for n in (1, 2, 5) for _ in range(20))


@pytest.mark.parametrize("kwargs", [{"initial": 0}, {"initial": -1}, {"ceiling": float("nan")},
                                    {"jitter": 1.0}, {"jitter": -0.1}, {"initial": 5, "ceiling": 1},
                                    {"failure_budget": "soon"}])
def test_policy_refuses_bad_knobs_with_a_typed_error(kwargs):
    from obshell_sdk import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="PollPolicy"):
        PollPolicy(**kwargs)


def test_on_progress_fires_on_changes_only_and_finished_task_is_not_polled_again():
    src = Script(dag(stage=4), dag(stage=4), dag(stage=5), dag("SUCCEED", stage=9))
    task = DagTask(src, "11", policy=FAST)
    seen = []
    final = task.wait(timeout=5, on_progress=seen.append)
    assert [d.stage for d in seen] == [4, 5, 9] and final.stage == 9
    assert src.calls == 4
    task.wait(timeout=5)
    task.result(timeout=5)
    task.refresh()
    assert src.calls == 4


def test_transient_failures_are_ridden_out():
    src = Script(dag(), ConnectError("refused", method="GET", path="/p", agent="a"),
                 api(ServerError, 503, ""), api(TaskNotFoundError, 404, "Task.NotFound"),
                 dag("SUCCEED", stage=9))
    assert DagTask(src, "11", policy=FAST).result(timeout=5).stage == 9


@pytest.mark.parametrize(("status", "retried"), [(408, True), (429, True), (503, True),
                                                 (403, False), (200, False)])
def test_a_page_that_is_not_obshells_is_retried_only_when_it_asks_for_a_retry(status, retried):
    """A proxy's 408 (timeout) or 429 (too many requests) page, or a 5xx, is worth a repeat;
    a 403 page or a broken 200 reply is not."""
    page = DecodeError("not JSON", status=status, method="GET", path="/p")
    src = Script(dag(), page, dag("SUCCEED", stage=9))
    if retried:
        assert DagTask(src, "11", policy=FAST).result(timeout=5).stage == 9
    else:
        with pytest.raises(DecodeError):
            DagTask(src, "11", policy=FAST).wait(timeout=5)
        assert src.calls == 2


def test_not_found_before_the_task_was_ever_seen_is_final():
    src = Script(api(TaskNotFoundError, 404, "Task.NotFound"))
    with pytest.raises(TaskNotFoundError):
        DagTask(src, "11", policy=FAST).wait(timeout=5)


def test_not_found_for_a_task_known_to_exist_is_ridden_out():
    """``exists=True``: the caller made the task, so "not found" is its agent reconnecting."""
    src = Script(*[api(TaskNotFoundError, 404, "Task.NotFound")] * 2, dag("SUCCEED", stage=9))
    assert DagTask(src, "11", policy=FAST, exists=True).result(timeout=5).stage == 9
    assert src.calls == 3


def test_a_task_said_to_exist_but_never_reached_is_not_said_to_be_running():
    src = Script(*[api(TaskNotFoundError, 404, "Task.NotFound")] * 1000)
    with pytest.raises(TaskTimeoutError) as info:
        DagTask(src, "11", policy=FAST, exists=True).wait(timeout=0.05)
    text = str(info.value)
    assert "never answered for it" in text and "keeps running" not in text
    assert text.endswith("wait again with client.task('11', exists=True).wait()")


def test_auth_errors_are_not_retried():
    src = Script(dag(), api(WrongPasswordError, 401, "x"), dag("SUCCEED", stage=9))
    with pytest.raises(WrongPasswordError):
        DagTask(src, "11", policy=FAST).wait(timeout=5)
    assert src.calls == 2


def test_failure_budget_ends_with_unreachable():
    refused = ConnectError("refused", method="GET", path="/p", agent="a")
    src = Script(dag(), *([refused] * 1000))
    policy = FAST.evolve(failure_budget=0.05)
    with pytest.raises(TaskUnreachableError) as info:
        DagTask(src, "11", policy=policy).wait(timeout=5)
    assert info.value.task_id == "11" and info.value.last_error is refused
    assert "refused" in str(info.value) and info.value.failures >= 2


@pytest.mark.parametrize(("state", "operator", "error"), [
    ("SUCCEED", "ROLLBACK", TaskRolledBackError), ("FAILED", "CANCEL", TaskCancelledError)])
def test_result_reads_the_ending(state, operator, error):
    with pytest.raises(error) as info:
        DagTask(Script(dag(state, operator)), "11", policy=FAST).result(timeout=5)
    assert info.value.task_id == "11"


def test_passed_task_returns_with_a_warning(caplog):
    caplog.set_level(logging.WARNING, logger="obshell_sdk")
    assert DagTask(Script(dag("SUCCEED", "PASS")), "11", policy=FAST).result(timeout=5)
    assert "PASS" in caplog.text


def test_ctrl_c_stops_waiting_and_names_the_task(caplog):
    def interrupt(_):
        raise KeyboardInterrupt

    caplog.set_level(logging.WARNING, logger="obshell_sdk")
    with pytest.raises(KeyboardInterrupt) as info:
        DagTask(Script(dag()), "11", policy=FAST).wait(timeout=5, on_progress=interrupt)
    assert "client.task('11', exists=True).wait()" in caplog.text
    assert "keeps running" in caplog.text
    # the traceback says it too, with no logging set up: a note (3.11+) or its message
    shown = "".join(getattr(info.value, "__notes__", [])) or str(info.value)
    assert "client.task('11', exists=True).wait()" in shown


def test_ctrl_c_ends_the_progress_line_before_the_traceback(capsys, monkeypatch):
    from obshell_sdk import _render_live

    monkeypatch.setattr(_render_live, "is_terminal", lambda stream: True)  # a line redrawn

    def interrupt(detail):
        if detail.stage >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        DagTask(Script(dag(stage=1), dag(stage=2)), "11", policy=FAST).wait(
            timeout=5, progress=True, on_progress=interrupt)
    err = capsys.readouterr().err
    assert err.startswith("\r\x1b[Ktask 11") and err.count("\n") == 1, repr(err)
    assert err.endswith("\n")  # the line the traceback would have continued is ended


def test_the_progress_line_is_cut_to_the_terminal_so_it_can_be_redrawn(capsys, monkeypatch):
    from obshell_sdk import _render_live

    monkeypatch.setattr(_render_live, "is_terminal", lambda stream: True)
    monkeypatch.setenv("COLUMNS", "30")  # a wrapped line leaves its first rows behind
    DagTask(Script(dag(stage=1), dag("SUCCEED", stage=9)), "11", policy=FAST).wait(
        timeout=5, progress=True)
    drawn = capsys.readouterr().err.replace("\n", "").split("\r\x1b[K")[1:]
    assert len(drawn) == 2 and all(0 < len(line) <= 29 for line in drawn), drawn
    assert drawn[0].startswith("task 11") and drawn[0].endswith("…")


def test_wait_zero_polls_once():
    src = Script(dag("SUCCEED", stage=9))
    assert DagTask(src, "11", policy=FAST).wait(timeout=0).stage == 9
    assert src.calls == 1


def test_timeout_names_the_failing_polls():
    from obshell_sdk import TaskTimeoutError

    refused = ConnectError("refused", method="GET", path="/p", agent="a")
    src = Script(dag(), *([refused] * 1000))
    with pytest.raises(TaskTimeoutError) as info:
        DagTask(src, "11", policy=FAST).wait(timeout=0.05)
    assert info.value.last_error is refused and "refused" in str(info.value)


def test_operator_forgets_the_old_ending_even_if_the_refresh_fails():
    class Source(Script):
        def operate_dag(self, dag_id, operator):
            self.operated = operator

    refused = ConnectError("refused", method="GET", path="/p", agent="a")
    src = Source(dag("FAILED", stage=3), refused, dag("RUNNING", stage=3),
                 dag("SUCCEED", stage=9))
    task = DagTask(src, "11", policy=FAST)
    task.refresh()
    assert task.retry() is task and task.snapshot is None and not task.done()
    assert task.result(timeout=5).stage == 9


def test_wait_returns_the_ending_its_own_loop_saw_whatever_another_caller_does():
    """One DagTask may be shared by threads: another thread's retry() (here in a progress
    callback, at the very point a wait sees the end) clears and replaces ``task.snapshot``.
    The wait still returns the ending it saw, and result() judges that one."""
    class Source(Script):
        def operate_dag(self, dag_id, operator):
            self.operated = operator

    src = Source(dag("RUNNING", stage=3), dag("FAILED", stage=3), dag("RUNNING", stage=3))
    task = DagTask(src, "11", policy=FAST)
    revived = []

    def retry_when_failed(detail):
        if detail.state.value == "FAILED" and not revived:
            revived.append(task.retry().snapshot)  # the other caller: reads RUNNING back

    final = task.wait(timeout=5, on_progress=retry_when_failed)
    assert final.state.value == "FAILED" and revived[0].state.value == "RUNNING"
    assert task.snapshot is revived[0] and src.calls == 3  # nothing polled after the end
    src.answers = [dag("RUNNING", stage=3), dag("FAILED", stage=3), dag("RUNNING", stage=3)]
    task, revived[:] = DagTask(src, "11", policy=FAST), []
    with pytest.raises(TaskFailedError):  # the FAILED ending it saw, not the RUNNING one
        task.result(timeout=5, on_progress=retry_when_failed)


def test_progress_fraction_counts_done_stages():
    assert dag(stage=1).progress.fraction == 0.0
    assert dag(stage=4).progress.fraction == pytest.approx(3 / 9)
    assert dag("SUCCEED", stage=9).progress.fraction == 1.0


def test_errors_pickle():
    import pickle

    from obshell_sdk import (
        ApiError,
        InvalidArgumentError,
        RolloutReport,
        RolloutStoppedError,
        TaskFailedError,
        TransportError,
    )

    errors = [
        InvalidArgumentError("port", "bad"),
        ConnectError("refused", method="GET", path="/p", agent="a"),
        api(WrongPasswordError, 401, "x"),
        TaskFailedError("failed", task_id="11", detail=dag("FAILED")),
        RolloutStoppedError("stopped", target="h:1", report=RolloutReport({}, "j.db")),
    ]
    for err in errors:
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)
        assert back.__dict__.keys() == err.__dict__.keys()
    assert issubclass(ApiError, Exception) and issubclass(TransportError, Exception)


def test_a_task_never_seen_is_not_said_to_keep_running():
    """A wait that never reached the agent (wrong port) must not claim the task runs on: it
    fails at once, as reading the task once does; with ``exists=True`` it is the agent
    restarting, retried until the deadline."""
    import socket
    import time

    from obshell_sdk import ConnectError, ObshellClient, PasswordAuth, TaskTimeoutError

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with ObshellClient("127.0.0.1", port, auth=PasswordAuth("pw")) as client:
        started = time.monotonic()
        with pytest.raises(ConnectError):
            client.task("11").wait(timeout=30, progress=False)
        assert time.monotonic() - started < 10  # not the wait's 30 s, nor the budget
        with pytest.raises(TaskTimeoutError) as info:
            client.task("11", exists=True).wait(timeout=0.3, progress=False)
    text = str(info.value)
    assert "keeps running" not in text
    assert "cannot connect" in text and "?." not in text


def test_progress_to_a_file_is_a_line_per_change_without_control_codes(capsys):
    """progress=True with stderr a file or a pipe (cron, CI): a log, not a redrawn line."""
    DagTask(Script(dag(stage=1), dag(stage=2), dag("SUCCEED", stage=9)), "11",
            policy=FAST).wait(timeout=5, progress=True)
    err = capsys.readouterr().err  # pytest's capture is no terminal
    assert "\x1b" not in err and "\r" not in err, repr(err)
    lines = err.splitlines()
    assert len(lines) == 3 and "[1/9]" in lines[0] and "SUCCEED" in lines[-1], lines
