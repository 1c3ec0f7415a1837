"""The notebook cards: contrast in both themes, the stage timeline, and one card per cell.

The contrast test reads the style sheet the cards carry, resolves every text colour and
the background it sits on for the light and the dark theme, and computes the WCAG ratio.
The notebook test runs a small notebook with nbclient against a FakeAgent started inside
the kernel (127.0.0.1, stopped by the last cell; the kernel ends with the test).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest
from conftest import PASSWORD
from vectorlib import vectors

from obshell_sdk import (
    DagDetail,
    DagTask,
    ObshellClient,
    PasswordAuth,
    PollPolicy,
    Rollout,
    TaskCancelledError,
)
from obshell_sdk._render_html import dag_html, task_html
from obshell_sdk._render_rollout import rollout_table_html
from obshell_sdk._render_style import CARD_CSS, STATES
from obshell_sdk.testing import FakeAgent

# What JupyterLab's own themes paint under a card (--jp-layout-color0/1), per theme.
JUPYTERLAB_BACKGROUNDS = {"light": ["#ffffff"], "dark": ["#111111", "#212121"]}


# -- contrast ---------------------------------------------------------------------------


def _luminance(hex_colour: str) -> float:
    digits = hex_colour.lstrip("#")
    assert re.fullmatch(r"[0-9a-fA-F]{6}", digits), hex_colour
    channels = [int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two sRGB colours."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _rules(css: str, media: str = "") -> list[tuple[str, str, dict[str, str]]]:
    """(media condition, selector, declarations) of every rule, @media blocks flattened."""
    out, depth, start, prelude = [], 0, 0, ""
    for i, ch in enumerate(css):
        if ch == "{":
            if depth == 0:
                prelude, start = css[start:i].strip(), i + 1
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                body = css[start:i]
                if prelude.startswith("@media"):
                    out += _rules(body, prelude)
                else:
                    decls = dict(
                        (k.strip(), v.strip()) for k, _, v in
                        (d.partition(":") for d in body.replace("\n", "").split(";") if d.strip())
                    )
                    out.append((media, prelude, decls))
                start = i + 1
    return out


def _palette(decls: dict[str, str]) -> dict[str, str]:
    """``--ob-x`` -> the colour it stands for without a JupyterLab theme (the fallback)."""
    found = {}
    for key, value in decls.items():
        if key.startswith("--ob-"):
            match = re.fullmatch(r"var\(--jp-[\w-]+,\s*(#[0-9a-fA-F]{6})\)|(#[0-9a-fA-F]{6})",
                                 value)
            assert match, (key, value)
            found[key] = match.group(1) or match.group(2)
    return found


def _themes() -> dict[str, dict[str, str]]:
    rules = _rules(CARD_CSS)
    light = [d for m, s, d in rules if s == "div.obshell-card" and "--ob-fg" in d]
    dark = [d for m, s, d in rules if 'data-jp-theme-light="false"' in s]
    by_scheme = [d for m, s, d in rules if "prefers-color-scheme:dark" in m.replace(" ", "")]
    assert len(light) == len(dark) == len(by_scheme) == 1
    assert by_scheme[0] == dark[0]  # the media query and JupyterLab's dark theme agree
    return {"light": _palette(light[0]), "dark": _palette(dark[0])}


def _var(value: str) -> str:
    match = re.fullmatch(r"var\((--ob-[\w-]+)\)", value)
    assert match, value
    return match.group(1)


def _text_pairs() -> list[tuple[str, str, str]]:
    """(selector, text colour variable, background variable) of every rule setting a colour."""
    pairs = []
    for _, selector, decls in _rules(CARD_CSS):
        if "color" in decls:
            background = decls.get("background", "var(--ob-bg)")
            pairs.append((selector, _var(decls["color"]), _var(background)))
    return pairs


def test_the_contrast_check_can_fail():
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") < 4.5 < contrast("#757575", "#ffffff")
    assert contrast("#9e9d24", "#ffffff") < 4.5  # the old "passed" colour


def test_every_text_colour_reaches_4_5_to_1_in_both_themes():
    pairs = _text_pairs()
    # The card, muted text, the log box and a chip, a marker per state are all checked.
    checked = {fg for _, fg, _ in pairs}
    assert {"--ob-fg", "--ob-muted", "--ob-log-fg"} <= checked
    assert all(f"--ob-{s}-fg" in checked for s in STATES)
    low = []
    for theme, palette in _themes().items():
        for selector, fg, bg in pairs:
            grounds = [palette[bg]]
            if bg == "--ob-bg" and fg != "--ob-fg":  # our colours on JupyterLab's background
                grounds += JUPYTERLAB_BACKGROUNDS[theme]
            for ground in grounds:
                ratio = contrast(palette[fg], ground)
                if ratio < 4.5:
                    low.append(f"{theme}: {selector} {fg} on {ground}: {ratio:.2f}")
    assert not low, low


def test_bar_colours_stand_out_3_to_1_in_both_themes():
    for theme, palette in _themes().items():
        for state in STATES:
            line = palette[f"--ob-{state}-line"]
            for ground in (palette["--ob-bg"], palette["--ob-track"]):
                assert contrast(line, ground) >= 3.0, (theme, state, ground)


def test_css_is_scoped_to_the_card():
    for _, selector, _ in _rules(CARD_CSS):
        for part in selector.split(","):
            assert "div.obshell-card" in part, part


# -- the card ---------------------------------------------------------------------------


class _Cells(HTMLParser):
    """Text of each table row's cells, and the classes of each row."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[str, list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append((dict(attrs).get("class") or "", []))
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1][1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _rows(html: str) -> list[tuple[str, list[str]]]:
    parser = _Cells()
    parser.feed(html)
    return parser.rows[1:]  # without the header


def _data(name):
    return next(v["response"]["body"]["data"] for v in vectors() if v["name"] == name)


def test_failed_card_lists_every_stage_and_marks_the_failing_one():
    detail = DagDetail.from_json(_data("poll 4 (FAILED at stage 3)"))
    html = dag_html(detail)
    rows = _rows(html)
    assert [r[1][2] for r in rows] == [n.name for n in detail.nodes]
    assert [r[1][3] for r in rows[:4]] == ["SUCCEED", "SUCCEED", "FAILED", "PENDING"]
    assert [i for i, r in enumerate(rows) if "obshell-current" in r[0]] == [2]
    assert rows[2][1][0] == "\u2716"
    assert rows[0][1][4:] == ["05:21:21", "05:21:22", "0.2 s"]
    assert rows[3][1][4:] == ["not started", "", ""]  # Go's zero time: not started
    assert "started 2026-11-27 05:21:21 UTC" in html
    assert "ended 2026-11-27 05:21:22 UTC" in html and "elapsed 0.2 s" in html
    assert "mock failure at stage 3</code>" in html


def test_running_card_marks_the_running_stage_and_counts_elapsed_to_now():
    detail = DagDetail.from_json(_data("poll 2"))
    assert detail.start_time is not None
    now = detail.start_time + timedelta(seconds=75)
    html = dag_html(detail, now=now)
    rows = _rows(html)
    assert [i for i, r in enumerate(rows) if "obshell-current" in r[0]] == [1]
    assert rows[1][1][0] == "\u25b6" and rows[1][1][3] == "RUNNING"
    assert rows[1][1][5] == "\u2013" and rows[1][1][6].endswith("so far")
    assert "elapsed 1 min 15 s so far" in html
    assert "ended 20" not in html  # a running DAG's end_time means nothing
    assert 'aria-valuenow="11"' in html and "obshell-f-running" in html


def test_succeeded_card_marks_no_stage():
    detail = DagDetail.from_json(_data("dag detail until SUCCEED"))
    html = dag_html(detail)
    rows = _rows(html)
    assert not [r for r in rows if "obshell-current" in r[0]] and "obshell-s-succeeded" in html
    assert len(rows) == 9 and all(r[1][3] == "SUCCEED" for r in rows)


def cancelled_at_stage_2() -> DagDetail:
    """An upgrade cancelled at its second stage on the fake agent, which, as obshell's
    cancelHandler, ends that stage and its sub-task FAILED with operator CANCEL."""
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        task = client.upgrade_agent("4.3.1.0", "101000012025010101.el7")
        task.refresh()
        task.refresh()  # a poll-driven DAG: stage 2 runs
        with pytest.raises(TaskCancelledError):
            task.cancel().result(timeout=30, poll_interval=0.01)
    assert task.snapshot is not None and str(task.snapshot.progress) == "2/9"
    return task.snapshot


def test_a_cancelled_card_says_cancelled_and_never_failed():
    """What result() raises for it (TaskCancelledError) is what the card shows: the stage a
    CANCEL stopped and its sub-task are cancelled, not failed."""
    html = dag_html(cancelled_at_stage_2())
    body = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    assert "failed" not in body and "\u2716" not in body and "&#10006;" not in body
    assert 'obshell-s-cancelled">cancelled</span>' in body
    rows = _rows(html)
    assert [i for i, r in enumerate(rows) if "obshell-current" in r[0]] == [1]
    assert rows[1][1][0] == "\u25a0" and rows[1][1][3] == "FAILED (CANCEL)"
    assert 'obshell-s-cancelled">FAILED (CANCEL)</span>' in body
    assert 'obshell-m-cancelled">&#9632; cancelled:</span> Download all required' in body
    board = rollout_table_html([("t", "upgrade", "2/9", "FAILED (cancelled)", "", "1s")])
    assert 'obshell-s-cancelled">FAILED (cancelled)</span>' in board


def rolled_back_at_stage_3() -> DagDetail:
    """An upgrade that failed at its third stage on the fake agent, then rolled back: it ends
    SUCCEED with operator ROLLBACK at stage 1, its stages showing the states they had."""
    with FakeAgent(password=PASSWORD, fail_stage=3, stages_per_poll=9) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        task = client.upgrade_agent("4.3.1.0", "101000012025010101.el7")
        task.wait(timeout=30, poll_interval=0.01)
        detail = task.rollback().wait(timeout=30, poll_interval=0.01)
    assert str(detail.outcome) == "rolled back" and str(detail.progress) == "1/9"
    return detail


def test_a_rolled_back_card_says_its_steps_were_rolled_back_and_never_failed_now():
    """A walkthrough: a rolled-back task read as a failed one (its third stage FAILED with
    the error log, the first two SUCCEED). The stages it ran read rolled back, their states
    kept; the failure is one from before the rollback."""
    html = dag_html(rolled_back_at_stage_3())
    body = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    rows = _rows(html)
    assert [r[1][3] for r in rows[:4]] == ["SUCCEED (rolled back)", "SUCCEED (rolled back)",
                                           "FAILED (rolled back)", "PENDING"]
    assert body.count('obshell-s-rolled-back">') == 4  # the head's chip, and three stages
    assert not [r for r in rows if "obshell-current" in r[0]]
    assert "&#10006; failed before the rollback:</span> Check all required packages" in body
    assert "&#10006; failed:" not in body


def test_card_without_details_says_the_stages_were_not_read():
    html = dag_html(DagDetail.from_json(_data("dag detail, show_details=false")))
    assert "stage list not fetched yet" in html and "<table" not in html


def test_a_dag_not_started_yet_says_so_and_marks_no_stage():
    data = _data("poll 1")
    ready = dict(data, state="READY", start_time="0001-01-01T00:00:00Z",
                 nodes=[dict(n, state="PENDING", start_time="0001-01-01T00:00:00Z",
                             end_time="0001-01-01T00:00:00Z") for n in data["nodes"]])
    html = dag_html(DagDetail.from_json(ready))
    assert "task 11 · not started" in html and "started 0001" not in html
    assert 'obshell-s-pending">ready</span>' in html
    rows = _rows(html)
    assert all(r[1][4] == "not started" and "obshell-current" not in r[0] for r in rows)


def test_everything_the_agent_sent_is_escaped():
    data = _data("poll 4 (FAILED at stage 3)")
    evil = "<img src=x onerror=alert(1)>"
    nodes = [dict(n, name=evil, sub_tasks=[dict(t, name=evil, task_logs=[evil])
                                           for t in n["sub_tasks"]]) for n in data["nodes"]]
    detail = DagDetail.from_json(dict(data, id="11", name=evil, nodes=nodes))
    for html in (dag_html(detail), rollout_table_html([(evil,) * 6]), task_html(evil, None)):
        assert "<img" not in html and "&lt;img" in html


def test_a_rollout_report_is_a_card_of_its_targets_with_the_agents_words_escaped(tmp_path):
    """A report as a cell's last expression printed its attrs repr (every TargetResult, its
    datetimes and enums): now a card, drawn as the rollout's live table is, and a short repr."""
    evil = "<img src=x onerror=alert(1)> at stage {stage}"
    secret = "s3cret-<b>-password"
    fast = PollPolicy(initial=0.05, fraction=0.1, ceiling=0.2, jitter=0)
    with FakeAgent(password=secret, stage_seconds=0.03) as good, \
            FakeAgent(password=secret, stage_seconds=0.03, fail_stage=2, fail_times=99,
                      fail_message=evil) as bad:
        fleet = [f"127.0.0.1:{good.port}", f"127.0.0.1:{bad.port}"]
        journal = str(tmp_path / "fleet<1>.db")
        rollout = Rollout(fleet, auth=PasswordAuth(secret), journal=journal, max_failures=2,
                          progress=False, poll_policy=fast)
        report = rollout.upgrade_agent("4.3.1.0", "101000012025010101.el7")
    html = report._repr_html_()
    assert 'class="obshell-card obshell-rollout-report"' in html
    rows = [cells for _, cells in _rows(html)]
    assert [r[:3] for r in rows] == [[fleet[0], "succeeded", "11, 12"],
                                     [fleet[1], "failed", "11"]]
    assert re.fullmatch(r"[0-9.]+ s", rows[0][3]), rows[0]
    assert "failed at stage 2/5" in rows[1][4] and "<img src=x" in rows[1][4]  # as text
    body = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    assert "<img" not in body and "&lt;img src=x onerror=alert(1)&gt; at stage 2" in body
    assert 'obshell-s-succeeded">succeeded</span>' in body
    assert 'obshell-s-failed">failed</span>' in body
    assert "2 targets: 1 failed · 1 succeeded · journal " in body and "fleet&lt;1&gt;.db" in body
    assert repr(report) == f"<RolloutReport 2 targets: 1 failed, 1 succeeded; journal {journal!r}>"
    for shown in (html, repr(report), str(report), repr(rollout)):
        assert secret not in shown and "s3cret" not in shown


def test_times_in_other_zones_show_in_utc():
    data = _data("poll 4 (FAILED at stage 3)")
    detail = DagDetail.from_json(dict(data, start_time="2026-11-27T07:21:21+02:00",
                                      end_time="2026-11-27T07:22:31+02:00"))
    assert "started 2026-11-27 05:21:21 UTC" in dag_html(detail)
    assert "elapsed 1 min 10 s" in dag_html(detail, now=datetime.now(timezone.utc))


def test_task_not_fetched_yet_says_how_to_read_it():
    class Source:
        timeout = (5.0, 60.0)
        agent_clock_offset = None

        def get_dag(self, dag_id, show_details=True, *, timeout=None):
            return DagDetail.from_json(_data("dag detail until SUCCEED"))

    task = DagTask(Source(), "11")
    html = task._repr_html_()
    assert 'class="obshell-card obshell-task-unread"' in html and ".refresh()" in html
    task.refresh()
    assert 'class="obshell-card obshell-dag"' in task._repr_html_()


# -- in a notebook ----------------------------------------------------------------------

_SETUP = """\
from obshell_sdk import ObshellClient, PasswordAuth, TaskFailedError
from obshell_sdk.testing import FakeAgent

agent = FakeAgent(password="pw", adopt_target_version=False).start()
failing = FakeAgent(password="pw", fail_stage=3).start()
client = ObshellClient(agent.host, agent.port, auth=PasswordAuth("pw"))
bad = ObshellClient(failing.host, failing.port, auth=PasswordAuth("pw"))
fast = dict(timeout=60, poll_interval=0.01)
"""
_UPGRADE = 'client.upgrade_agent("4.3.1.0", "101000012025010101.el7")'
_CELLS = {
    "result last": f"t1 = {_UPGRADE}\nt1.result(**fast)",
    "result kept": f"t2 = {_UPGRADE}\ndetail = t2.result(**fast)",
    "by id": "t3 = client.task(t2.id)\nt3",
    "by id refreshed": "t3.refresh()\nt3",
    "waits then task": f"t4 = {_UPGRADE}\nt4.wait(**fast)\nt4.result(**fast)\nt4",
    "failed": ('t5 = bad.upgrade_agent("4.3.1.0", "101000012025010101.el7")\n'
               "try:\n    t5.result(**fast)\nexcept TaskFailedError as exc:\n    error = exc"),
}
_TEARDOWN = "client.close(); bad.close(); agent.stop(); failing.stop()"


def _run_notebook(tmp_path, cells=_CELLS, setup=_SETUP, teardown=_TEARDOWN):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    messages: dict[int, list[str]] = {}

    class Client(nbclient.NotebookClient):
        def process_message(self, msg, cell, cell_index):
            messages.setdefault(cell_index, []).append(msg["msg_type"])
            return super().process_message(msg, cell, cell_index)

    sources = [setup, *cells.values(), teardown]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    Client(nb, timeout=120, kernel_name="python3",
           resources={"metadata": {"path": str(tmp_path)}}).execute()
    return (dict(zip(cells, nb.cells[1:])),
            dict(zip(cells, (messages.get(i, []) for i in range(1, len(sources))))))


def _cards(cell) -> list[str]:
    return [o["data"]["text/html"] for o in cell.outputs
            if 'class="obshell-card' in o.get("data", {}).get("text/html", "")]


def test_a_notebook_shows_one_card_per_cell(tmp_path):
    cells, messages = _run_notebook(tmp_path)
    for name, cell in cells.items():
        assert not [o for o in cell.outputs if o.output_type == "error"], name
        assert len(_cards(cell)) == 1, (name, [o.output_type for o in cell.outputs])
    # Each live wait drew one display and updated it, whatever the number of waits.
    for name in ("result last", "result kept", "waits then task", "failed"):
        assert messages[name].count("display_data") == 1, name
        assert messages[name].count("update_display_data") >= 1, name
    for name in ("result last", "result kept", "by id refreshed", "waits then task"):
        card = _cards(cells[name])[0]
        assert "obshell-s-succeeded" in card and "stage 9/9" in card, name
    assert "not fetched yet" in _cards(cells["by id"])[0]
    failed = _cards(cells["failed"])[0]
    assert "obshell-s-failed" in failed and "injected failure at stage 3" in failed
    # The cell's result is the one card when the wait's DAG is the result; else the live one.
    assert cells["result last"].outputs[-1].output_type == "execute_result"
    assert [o.output_type for o in cells["result kept"].outputs] == ["display_data"]



_UPLOAD_SETUP = """\
import pathlib
from obshell_sdk import ObshellClient, PasswordAuth
from obshell_sdk.testing import FakeAgent, build_rpm

rpm = pathlib.Path("obshell-4.3.1.0-101000012025010101.el7.x86_64.rpm")
rpm.write_bytes(build_rpm("obshell", "4.3.1.0", "101000012025010101.el7"))
agent = FakeAgent(password="pw", stages_per_poll=10).start()
client = ObshellClient(agent.host, agent.port, auth=PasswordAuth("pw"))
"""
_UPLOAD = {"upgrade with a package": (
    'done = client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", package=str(rpm), '
    "timeout=60)")}


def test_a_notebook_shows_the_upload_as_a_line_above_the_cards(tmp_path):
    """``run_agent_upgrade(package=...)`` with no option: the upload is one plain output line,
    updated in place from what is sent to what was stored, then a card per task."""
    cells, messages = _run_notebook(tmp_path, _UPLOAD, _UPLOAD_SETUP,
                                    "client.close(); agent.stop()")
    outputs = cells["upgrade with a package"].outputs
    assert [o.output_type for o in outputs] == ["display_data"] * 3, outputs
    line = outputs[0]["data"]
    assert list(line) == ["text/plain"], line
    assert re.fullmatch(r"stored +1  obshell 4\.3\.1\.0-101000012025010101\.el7 x86_64  installed "
                        r"size \d+ bytes  uploaded in \d\.\d s", line["text/plain"]), line
    assert len(_cards(cells["upgrade with a package"])) == 2  # the pre-check and the upgrade
    sent = messages["upgrade with a package"]
    assert sent.count("display_data") == 3 and sent.count("update_display_data") >= 3


def test_a_card_shows_an_agent_s_escape_character_as_text():
    """HTML escaping leaves ESC alone; a card shows it as ``\\x1b``, never passes it on."""
    from rawserver import dag_json

    from obshell_sdk import DagDetail
    from obshell_sdk._render import dag_html

    doc = dag_json("11", name="Upgrade obshell \x1b[31mred", stage=2, state="RUNNING")
    card = dag_html(DagDetail.from_json(doc))
    assert "\x1b" not in card and "\\x1b" in card
