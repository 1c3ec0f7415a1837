"""Notebook users: the HTML cards, and a real notebook from examples/ run under nbclient."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from vectorlib import vectors

from obshell_sdk import DagDetail, DagTask
from obshell_sdk._render import dag_html

ROOT = Path(__file__).resolve().parents[1]


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.classes: dict[str, str] = {}
        self._stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        self._stack.append(dict(attrs).get("class", ""))

    def handle_endtag(self, tag):
        self._stack.pop()

    def handle_data(self, data):
        for cls in self._stack:
            if cls:
                self.classes[cls] = self.classes.get(cls, "") + data


def _parse(html):
    p = _Collect()
    p.feed(html)
    p.close()
    assert not p._stack, "unbalanced HTML"
    return p.classes


def _dag(name):
    return DagDetail.from_json(next(v["response"]["body"]["data"] for v in vectors()
                                    if v["name"] == name))


def test_failed_dag_card_shows_name_state_stage_and_failing_log():
    html = dag_html(_dag("poll 4 (FAILED at stage 3)"))
    parts = _parse(html)
    assert parts["obshell-name"] == "Upgrade obshell 4.3.1.0-20250101.el7"
    assert "FAILED" in parts["obshell-state"] and "failed" in parts["obshell-state"]
    assert "stage 3/9" in parts["obshell-stage"]
    assert "Check all required packages" in parts["obshell-stage"]
    assert parts["obshell-log"].endswith("mock failure at stage 3")
    assert 'width:22%' in html  # stages 1 and 2 of 9 done


def test_card_escapes_what_the_agent_sent():
    data = next(v["response"]["body"]["data"] for v in vectors()
                if v["name"] == "poll 4 (FAILED at stage 3)")
    evil = dict(data, name="<script>alert(1)</script>")
    html = dag_html(DagDetail.from_json(evil))
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_task_card_before_and_after_fetch():
    class Source:
        timeout = (5.0, 60.0)
        agent_clock_offset = None

        def get_dag(self, dag_id, show_details=True, *, timeout=None):
            return _dag("dag detail until SUCCEED")

    task = DagTask(Source(), "11")
    assert "not fetched yet" in task._repr_html_()
    task.refresh()
    assert "SUCCEED" in _parse(task._repr_html_())["obshell-state"]


def test_example_notebook_runs():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(ROOT / "examples" / "upgrade_agent.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    htmls = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    # The final DagDetail renders as a card that says SUCCEED at stage 9/9.
    assert any("SUCCEED" in h and "9/9" in h for h in htmls)
    # Live progress was shown through display updates while waiting.
    assert any(o.output_type in ("display_data", "update_display_data") for o in outputs)
    # No cell shows a card twice, and a task picked up by id says it was not fetched yet.
    for cell in nb.cells:
        cards = [o for o in cell.get("outputs", [])
                 if 'class="obshell-card' in o.get("data", {}).get("text/html", "")]
        assert len(cards) <= 1, cell.source
    assert any("not fetched yet" in h and "obshell-task-unread" in h for h in htmls)
    # The rollout drew its live table and ended with every cluster succeeded.
    assert any("obshell-rollout-card" in h for h in htmls)
    # Its report, a cell's last expression, is a card too: a row per cluster, not an attrs repr.
    reports = [h for h in htmls if "obshell-rollout-report" in h]
    assert len(reports) == 1 and reports[0].count('obshell-s-succeeded">succeeded<') == 3
    assert any(o.get("data", {}).get("text/plain") == "True" for o in outputs
               if o.output_type == "execute_result")


def test_a_rollout_shown_as_a_cells_result_leaves_one_table():
    """The live table gives way to the report's card when the cell's result is that report."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    setup = ("import os, tempfile\n"
             "from obshell_sdk import PasswordAuth, Rollout\n"
             "from obshell_sdk.testing import FakeAgent\n"
             "fleet = []\n"
             "def rollout():\n"
             "    agents = [FakeAgent(password='pw', stage_seconds=0.05).start() for _ in 'ab']\n"
             "    fleet.extend(agents)\n"
             "    return Rollout([f'127.0.0.1:{a.port}' for a in agents], auth=PasswordAuth('pw'),"
             " journal=os.path.join(tempfile.mkdtemp(), 'j.db'))")
    run = "rollout().upgrade_agent('4.3.1.0', '101000012025010101.el7')"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in (
        setup, run, f"report = {run}", "for a in fleet:\n    a.stop()")])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    assert not [o for c in nb.cells for o in c.outputs if o.output_type == "error"]

    def shown(cell, cls):
        return sum(cls in o.get("data", {}).get("text/html", "") for o in cell.outputs)

    assert (shown(nb.cells[1], "obshell-rollout-card"),
            shown(nb.cells[1], "obshell-rollout-report")) == (0, 1)
    # Not the cell's result: the table stays, and no report is shown.
    assert (shown(nb.cells[2], "obshell-rollout-card"),
            shown(nb.cells[2], "obshell-rollout-report")) == (1, 0)
