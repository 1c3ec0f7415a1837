"""obshell's refusal of a DAG operator, as a library user meets it: ``OperatorRefusedError``.

Over real sockets to the fake agent, which refuses as obshell does (``service/task/dag.go``):
by a step of the task (``...NotAllowed``) or by the task's state (``...NotFailedDag``,
``CancelFinishedDag``).
"""

from __future__ import annotations

import pickle

import pytest
from conftest import PASSWORD

import obshell_sdk
from obshell_sdk import (
    ApiError,
    BadRequestError,
    ObshellClient,
    Operator,
    PasswordAuth,
    TaskFailedError,
)
from obshell_sdk.testing import FakeAgent

VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"


def _refused():
    return obshell_sdk.OperatorRefusedError  # looked up at run time: absent before the fix


def client_for(agent: FakeAgent) -> ObshellClient:
    return ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD))


def _failed_upgrade(client: ObshellClient) -> str:
    task = client.upgrade_agent(VERSION, RELEASE)
    with pytest.raises(TaskFailedError):
        task.result(timeout=30, poll_interval=0.01)
    return task.id


def test_a_rollback_a_step_does_not_allow_is_an_operator_refused_error():
    """An agent upgrade failed at its last stage cannot be rolled back (its Restart obshell
    step takes no ROLLBACK): ``client.task(id).rollback()`` raises the typed refusal, still a
    ``BadRequestError``, naming the operator and what to do; the task is left as it was."""
    with FakeAgent(password=PASSWORD, fail_stage=9) as agent, client_for(agent) as client:
        dag_id = _failed_upgrade(client)
        with pytest.raises(BadRequestError) as info:
            client.task(dag_id).rollback()
    exc = info.value
    assert isinstance(exc, _refused()) and isinstance(exc, ApiError), type(exc)
    assert exc.operator is Operator.ROLLBACK and exc.by_step is True
    assert exc.err_code == "Task.Dag.Operator.RollbackNotAllowed" and exc.status == 400
    assert exc.hint == (f"A step of the task does not allow ROLLBACK; nothing was changed: read "
                        f"the task (client.task({dag_id!r}).refresh()) and apply an operator its "
                        "steps allow instead")
    assert str(exc).endswith(", trace id " + exc.trace_id + ". " + exc.hint), str(exc)
    assert "node Restart obshell cannot rollback" in str(exc)
    assert agent.dag(dag_id).state == "FAILED" and agent.dag(dag_id).operator == "RUN"


def test_a_skip_and_a_cancel_steps_do_not_allow_name_their_operator():
    """PASS of an upgrade failed at stage 2 (Restart obshell cannot pass) is refused as PASS;
    CANCEL while an OceanBase upgrade's script step runs (it takes no CANCEL) says to wait."""
    with FakeAgent(password=PASSWORD, fail_stage=2) as agent, client_for(agent) as client:
        dag_id = _failed_upgrade(client)
        with pytest.raises(_refused()) as skipped:
            client.task(dag_id).skip()
    with FakeAgent(password=PASSWORD, stage_seconds=600) as agent, client_for(agent) as client:
        ob_id = agent.create_ob_upgrade_dag()
        agent.set_dag_stage(ob_id, 11)  # Execute upgrade checker script: retry only
        with pytest.raises(_refused()) as cancelled:
            client.operate_dag(ob_id, "CANCEL")  # the unchecked form raises it too
        assert agent.dag(ob_id).state == "RUNNING"
    assert skipped.value.operator is Operator.PASS and skipped.value.by_step
    assert skipped.value.err_code == "Task.Dag.Operator.PassNotAllowed"
    assert "does not allow PASS (skip)" in skipped.value.hint
    assert cancelled.value.operator is Operator.CANCEL and cancelled.value.by_step
    assert cancelled.value.hint == (
        "A step of the task does not allow CANCEL while it runs; nothing was changed: wait for "
        f"it to end (client.task({ob_id!r}).wait()); if it fails, retry, roll back or skip it, "
        "where its steps allow")


def test_an_operator_the_tasks_state_no_longer_takes_says_it_changed():
    """The task was read FAILED, then retried elsewhere: ``retry()`` (checked against what was
    read) reaches obshell, which refuses it (RetryNotFailedDag); read RUNNING, then failed:
    ``cancel()`` is refused (CancelFinishedDag). Either says the task changed since."""
    with FakeAgent(password=PASSWORD, stage_seconds=600) as agent, client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        agent.set_dag_stage(task.id, 3)
        agent.fail_dag(task.id)
        assert task.refresh(force=True).state.value == "FAILED"
        agent.set_dag_stage(task.id, 3)  # someone else retried it: RUNNING again
        with pytest.raises(_refused()) as retried:
            task.retry()
        assert task.refresh(force=True).state.value == "RUNNING"
        agent.fail_dag(task.id)
        with pytest.raises(_refused()) as cancelled:
            task.cancel()
    assert retried.value.operator is Operator.RETRY and retried.value.by_step is False
    assert retried.value.err_code == "Task.Dag.Operator.RetryNotFailedDag"
    assert retried.value.hint == (
        "The task changed since it was read (it is not FAILED); nothing was changed: read it "
        f"again (client.task({task.id!r}).refresh()) to see where it stands")
    assert cancelled.value.operator is Operator.CANCEL and cancelled.value.by_step is False
    assert cancelled.value.err_code == "Task.Dag.Operator.CancelFinishedDag"
    assert "(it has ended)" in cancelled.value.hint


def test_an_operator_refused_error_pickles_with_what_it_carries():
    with FakeAgent(password=PASSWORD, fail_stage=2) as agent, client_for(agent) as client:
        dag_id = _failed_upgrade(client)
        with pytest.raises(_refused()) as info:
            client.task(dag_id).skip()
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is _refused() and str(back) == str(info.value)
    assert back.__dict__ == info.value.__dict__
    assert back.operator is Operator.PASS and back.hint == info.value.hint and back.by_step


def test_only_obshells_operator_refusals_are_operator_refused_errors():
    """Exactly the eight codes; an unknown operator (NotSupport) or a node's PASS refusal is
    another 400, a plain ``BadRequestError``."""
    from obshell_sdk._errcodes import error_class_for

    codes = [f"Task.Dag.Operator.{op}{why}" for op in ("Retry", "Rollback", "Pass", "Cancel")
             for why in ("NotAllowed", "NotFailedDag")]
    codes = [c.replace("CancelNotFailedDag", "CancelFinishedDag") for c in codes]
    for code in codes:
        assert error_class_for(400, code, 0) is _refused(), code
    for code in ("Task.Dag.Operator.NotSupport", "Task.Node.Operator.PassNotAllowed",
                 "Task.Dag.Operator.RetryNotAllowedSoon", "Common.BindJsonFailed"):
        assert error_class_for(400, code, 0) is BadRequestError, code
    assert "OperatorRefusedError" in obshell_sdk.__all__


def test_a_refused_operator_drops_the_snapshot_so_refresh_reads_the_task_again():
    """Read FAILED, retried elsewhere, then ``retry()`` refused: the task changed since it was
    read, so the old ending is dropped and a plain ``refresh()`` (no ``force``) fetches it."""
    with FakeAgent(password=PASSWORD, stage_seconds=600) as agent, client_for(agent) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        agent.set_dag_stage(task.id, 3)
        agent.fail_dag(task.id)
        assert task.refresh(force=True).state.value == "FAILED" and task.done()
        agent.set_dag_stage(task.id, 3)  # someone else retried it: RUNNING again
        with pytest.raises(_refused()):
            task.retry()
        assert not task.done()
        assert task.refresh().state.value == "RUNNING"


def test_a_step_refusal_keeps_the_snapshot_nothing_changed():
    """A step refused ROLLBACK: the task is as it was read (FAILED), so the DagTask keeps it."""
    with FakeAgent(password=PASSWORD, fail_stage=9) as agent, client_for(agent) as client:
        task = client.task(_failed_upgrade(client))
        task.refresh()
        with pytest.raises(_refused()):
            task.rollback()
        assert task.done() and task.snapshot is not None
        assert task.snapshot.state.value == "FAILED"
