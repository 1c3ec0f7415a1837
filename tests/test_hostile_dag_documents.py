"""Hostile agents, class 4: nothing untyped escapes from a mutated DAG document.

A raw server serves DAG documents mutated the ways a broken agent (or proxy) could: stages
below 0 or above ``max_stage``, SUCCEED at stage 12 of 9, wrong types, missing keys, another
DAG's id, node lists that do not fit, stages going back and forth while RUNNING. Through
``get_dag()``, ``task.wait()`` and ``task.result()`` only ``ObshellError`` subclasses come
out, an impossible stage is a ``DecodeError`` (never a success), and a RUNNING DAG whose
stage wanders is followed on to its real end.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rawserver import RawAgent, RawReply, RawServer, dag_json, json_reply

from obshell_sdk import (
    DagDetail,
    DagOutcome,
    DecodeError,
    ObshellClient,
    ObshellError,
    PasswordAuth,
    TaskError,
)

STATES = ["PENDING", "READY", "RUNNING", "FAILED", "SUCCEED"]
OPERATORS = ["RUN", "RETRY", "ROLLBACK", "CANCEL", "PASS"]
REQUIRED = ["id", "dag_id", "name", "stage", "max_stage", "state", "operator"]
#: After the scripted documents: a reply that is not JSON ends every wait at once.
SENTINEL = RawReply(200, b"<html>end of script</html>", {"Content-Type": "text/html"})


class Script:
    """The documents served to ``GET /api/v1/task/dag/11``, one per request, then SENTINEL."""

    def __init__(self) -> None:
        self.docs: list[object] = []
        self.served = 0

    def load(self, docs: list[object]) -> None:
        self.docs, self.served = list(docs), 0

    def __call__(self, request):
        self.served += 1
        if self.served > len(self.docs):
            return SENTINEL
        return json_reply(self.docs[self.served - 1])


@pytest.fixture(scope="module")
def served():
    with RawServer() as server:
        agent = RawAgent(server)
        script = Script()
        agent.route("GET", "/api/v1/task/dag/11", script)
        with ObshellClient(server.host, server.port, auth=PasswordAuth("pw"),
                           timeout=(2, 3)) as client:
            yield client, script


# -- documents --------------------------------------------------------------------------------

wrong_values = st.sampled_from([None, "3", "", 3.5, [], {}, True, 11, -1, "11", 2**70])
mutations = st.one_of(
    st.tuples(st.just("stage"), st.integers(-3, 14)),
    st.tuples(st.just("max_stage"), st.integers(-2, 12)),
    st.tuples(st.just("state"), st.sampled_from([*STATES, "DONE", "succeed", ""])),
    st.tuples(st.just("operator"), st.sampled_from([*OPERATORS, "STOP"])),
    st.tuples(st.just("id"), st.sampled_from(["12", "011", "", "11 "])),
    st.tuples(st.sampled_from(REQUIRED), wrong_values),
    st.tuples(st.just("missing"), st.sampled_from(REQUIRED)),
    st.tuples(st.just("nodes"), st.sampled_from(["x", [1, 2], [], None, [{}]])),
)


@st.composite
def documents(draw, *, finished=None):
    state = draw(st.sampled_from(["RUNNING", "SUCCEED", "FAILED"]) if finished is None
                 else st.just(finished))
    stage = 9 if state == "SUCCEED" else draw(st.integers(1, 9))
    doc = dag_json("11", stage=stage, state=state, nodes=draw(st.booleans()))
    for change in draw(st.lists(mutations, max_size=2)):
        key, value = change
        if key == "missing":
            doc.pop(value, None)
        else:
            doc[key] = value
    return doc


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _parse(doc):
    """What get_dag("11") must make of ``doc``: the DagDetail, or the DecodeError to expect.

    The library's parser decides most of it; the stage rule is checked independently here:
    a document whose stage is outside 0..max_stage must never parse.
    """
    try:
        detail = DagDetail.from_json(doc)
    except DecodeError as exc:
        return exc
    impossible = (_is_int(doc.get("stage")) and _is_int(doc.get("max_stage"))
                  and not 0 <= doc["stage"] <= doc["max_stage"])
    assert not impossible, f"an impossible stage parsed: {doc!r}"
    assert _is_int(detail.stage) and _is_int(detail.max_stage) and isinstance(detail.id, str)
    if detail.id != "11":
        return DecodeError("another DAG")
    return detail


def _expected_wait(docs):
    """(the index of the document the wait ends on, the DagDetail or DecodeError it ends with).

    A DAG never changes its name: a document naming another is another DAG's.
    """
    name = None
    for i, doc in enumerate(docs):
        parsed = _parse(doc)
        if isinstance(parsed, DagDetail) and name not in (None, parsed.name):
            parsed = DecodeError("another DAG's name")
        if isinstance(parsed, DecodeError) or parsed.is_finished:
            return i, parsed
        name = parsed.name
    return len(docs), DecodeError("end of script")


def _run(call):
    try:
        return call()
    except ObshellError as exc:
        return exc
    except BaseException as exc:  # what must never happen: say which
        raise AssertionError(f"an untyped {type(exc).__name__} escaped: {exc!r}") from exc


# -- properties -------------------------------------------------------------------------------

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@SETTINGS
@given(doc=documents())
def test_get_dag_of_a_mutated_document(served, doc):
    client, script = served
    script.load([doc])
    expected = _parse(doc)
    got = _run(lambda: client.get_dag("11"))
    if isinstance(expected, DecodeError):
        assert isinstance(got, DecodeError), (doc, got)
        assert got.task_id == "11"  # the --json error document names the task
    else:
        assert isinstance(got, DagDetail) and got == expected


@SETTINGS
@given(docs=st.lists(documents(), min_size=1, max_size=5))
@example(docs=[dag_json("11", stage=2), dict(dag_json("11", stage=9, state="SUCCEED"), name="3")])
def test_wait_and_result_over_mutated_documents(served, docs):
    client, script = served
    stop, expected = _expected_wait(docs)

    script.load(docs)
    task = client.task("11")
    got = _run(lambda: task.wait(timeout=5, poll_interval=0.01))
    assert script.served == stop + 1, "the wait did not stop on the document it should"
    if isinstance(expected, DecodeError):
        assert isinstance(got, DecodeError), (docs, got)
        assert got.task_id == "11"
        assert task.snapshot is None or not task.snapshot.is_finished
    else:
        assert got == expected

    script.load(docs)
    task = client.task("11")
    got = _run(lambda: task.result(timeout=5, poll_interval=0.01))
    if isinstance(expected, DecodeError):
        assert isinstance(got, DecodeError), (docs, got)
    elif expected.outcome in (DagOutcome.SUCCEEDED, DagOutcome.PASSED):
        assert got == expected
    else:
        assert isinstance(got, TaskError) and got.detail == expected


@SETTINGS
@given(stages=st.lists(st.integers(0, 9), min_size=1, max_size=8),
       ending=st.sampled_from(["SUCCEED", "FAILED"]), nodes=st.booleans())
def test_stages_going_back_and_forth_while_running_are_followed_to_the_end(
        served, stages, ending, nodes):
    client, script = served
    final = dag_json("11", stage=9 if ending == "SUCCEED" else 4, state=ending, nodes=nodes)
    script.load([dag_json("11", stage=s, nodes=nodes) for s in stages] + [final])
    seen = []
    task = client.task("11")
    detail = _run(lambda: task.wait(timeout=5, poll_interval=0.01, on_progress=seen.append))
    assert isinstance(detail, DagDetail), detail
    assert detail.state.value == ending and detail.stage == final["stage"]
    assert script.served == len(stages) + 1
    assert seen[-1] == detail


# -- the examples named in the issue ------------------------------------------------------------


@pytest.mark.parametrize(("stage", "max_stage", "state"), [
    (12, 9, "SUCCEED"), (-1, 9, "RUNNING"), (10, 9, "RUNNING"), (3, -1, "FAILED"),
])
def test_an_impossible_stage_is_never_a_success(served, stage, max_stage, state):
    client, script = served
    doc = dag_json("11", stage=stage, max_stage=9, state=state)
    doc["max_stage"] = max_stage
    script.load([doc])
    with pytest.raises(DecodeError):
        client.get_dag("11")
    for follow in ("wait", "result"):
        script.load([dag_json("11", stage=2), doc])
        task = client.task("11")
        with pytest.raises(DecodeError):
            getattr(task, follow)(timeout=5, poll_interval=0.01)
        assert script.served == 2
        assert not task.done()


def test_documents_are_data_not_code(served):
    """A document that is valid JSON but not an object, at every level, is a DecodeError."""
    client, script = served
    for doc in ([], "11", 11, None, [dag_json("11")], {"contents": [dag_json("11")]},
                json.loads(json.dumps(dag_json("11", nodes=True)).replace('"sub_tasks": []',
                                                                          '"sub_tasks": {}'))):
        script.load([doc])
        with pytest.raises(DecodeError):
            client.get_dag("11")


@pytest.mark.parametrize("nodes", [True, False])
def test_a_cancelled_dag_said_succeeded_before_its_last_stage_is_never_a_success(served, nodes):
    """SUCCEED with operator CANCEL at stage 3 of 9 (its third node FAILED, the rest PENDING):
    a cancelled DAG ends FAILED + CANCEL. What its run did is no more done than a RUN's would
    be at that stage: never reported as succeeded."""
    client, script = served
    doc = dag_json("11", stage=3, state="FAILED", operator="CANCEL", nodes=nodes)
    doc["state"] = "SUCCEED"
    script.load([doc])
    with pytest.raises(DecodeError) as caught:
        client.get_dag("11")
    assert caught.value.where == "data.state"
    script.load([dag_json("11", stage=2), doc])
    task = client.task("11")
    with pytest.raises(DecodeError):
        task.result(timeout=5, poll_interval=0.01)
    assert not task.done()
