"""Render the notebook cards in headless Chromium, in light and dark themes (run by hand).

    python3 benchmarks/render_cards.py /tmp/cards            # writes the HTML pages and PNGs
    python3 benchmarks/render_cards.py /tmp/cards --chromium /usr/bin/chromium

One page holds several cards (running, succeeded, failed with its log line, rolled back,
not fetched yet, a rollout table). It is shot four times:

* ``plain-light.png`` / ``plain-dark.png``: a bare page (as in VS Code, the classic notebook
  or an exported HTML file), with the browser preferring a light / a dark scheme;
* ``jupyterlab-light.png`` / ``jupyterlab-dark.png``: the cards inside a page that sets
  JupyterLab's theme variables and ``data-jp-theme-light`` the way JupyterLab 4's light and
  dark themes do (and some of its table rules), with the browser preferring the *opposite*
  scheme, so the JupyterLab theme must win.

Needs Chromium (Debian: ``apt-get install chromium``) and the repo on ``PYTHONPATH`` (or the
repo's ``.venv``). Nothing is downloaded; the pages are local files.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obshell_sdk import DagDetail
from obshell_sdk._render_html import dag_html, task_html
from obshell_sdk._render_rollout import rollout_table_html

NOW = datetime(2026, 11, 30, 10, 0, 0, tzinfo=timezone.utc)
ZERO = "0001-01-01T00:00:00Z"
NODES = ("Create upgrade dir", "Download all required packages", "Check all required packages",
         "Unpack all required packages", "Backup for upgrade", "Install new obshell",
         "Restart obshell", "Upgrade post table maintain", "Remove upgrade check task dir")


def _t(moment: Optional[datetime]) -> str:
    return ZERO if moment is None else moment.isoformat().replace("+00:00", "Z")


def _dag(dag_id: str, name: str, states: list[str], *, operator: str = "RUN",
         log: Optional[str] = None, started: float = 300.0) -> DagDetail:
    """A DAG of len(NODES) stages: stage i is in states[i] (missing ones PENDING)."""
    states = states + ["PENDING"] * (len(NODES) - len(states))
    start = NOW - timedelta(seconds=started)
    nodes, at = [], start
    for i, (node, state) in enumerate(zip(NODES, states), start=1):
        took = timedelta(seconds=[2.4, 41, 3.2, 12, 8.5, 5, 36, 4, 1.1][i - 1])
        begin = at if state != "PENDING" else None
        end = at + took if state in ("SUCCEED", "FAILED") else None
        at = at + took if end else at
        logs = [f"INFO step {node}", log] if state == "FAILED" and log else []
        sub = {"id": f"1{i}", "task_id": i, "name": node, "state": state, "operator": "RUN",
               "start_time": _t(begin), "end_time": _t(end), "execute_times": 1,
               "execute_agent": {"ip": "10.0.0.12", "port": 2886}, "task_logs": logs}
        nodes.append({"id": f"1{i}", "node_id": i, "name": node, "state": state,
                      "operator": "RUN", "start_time": _t(begin), "end_time": _t(end),
                      "sub_tasks": [sub]})
    stage = next((i for i, s in enumerate(states, 1) if s in ("RUNNING", "FAILED")), len(NODES))
    finished = all(s == "SUCCEED" for s in states) or "FAILED" in states
    dag_state = ("FAILED" if "FAILED" in states else "SUCCEED" if finished else "RUNNING")
    data: dict[str, Any] = {
        "id": dag_id, "dag_id": int(dag_id), "name": name, "stage": stage,
        "max_stage": len(NODES), "state": dag_state, "operator": operator,
        "start_time": _t(start), "end_time": _t(at if finished else None), "nodes": nodes,
    }
    return DagDetail.from_json(data)


def cards() -> list[str]:
    """The cards on the page, in order."""
    ok = ["SUCCEED"] * len(NODES)
    return [
        dag_html(_dag("21", "Upgrade obshell 4.3.1.0-101000012025010101.el7",
                      ["SUCCEED"] * 6 + ["RUNNING"], started=130), now=NOW),
        dag_html(_dag("22", "Upgrade obshell 4.3.1.0-101000012025010101.el7", ok), now=NOW),
        dag_html(_dag("23", "Upgrade obshell 4.3.1.0 <b>not bold</b>",
                      ["SUCCEED", "SUCCEED", "FAILED"],
                      log="ERROR: [Common.Unexpected]: Unexpected error: package "
                          "obshell-4.3.1.0-101000012025010101.el7.x86_64.rpm: checksum "
                          "mismatch (want 9f2c..., got 0000...)"), now=NOW),
        dag_html(_dag("24", "Upgrade obshell 4.3.1.0-101000012025010101.el7", ok,
                      operator="ROLLBACK"), now=NOW),
        task_html("25", None),
        rollout_table_html([
            ("10.0.0.12:2886", "upgrade_agent", "9/9", "succeeded", "", "2m 31s"),
            ("10.0.0.13:2886", "upgrade_agent", "4/9", "RUNNING", "", "58s"),
            ("10.0.0.14:2886", "upgrade_agent", "3/9", "failed",
             "task 11 failed at stage 3/9 'Check all required packages'", "1m 02s"),
            ("10.0.0.15:2886", "", "-", "waiting", "", ""),
        ]),
    ]


_JUPYTERLAB = {  # JupyterLab 4's theme-light-extension / theme-dark-extension values
    "light": {"--jp-layout-color0": "#ffffff", "--jp-layout-color1": "#ffffff",
              "--jp-ui-font-color1": "rgba(0,0,0,0.87)", "--jp-border-color2": "#e0e0e0",
              "--jp-ui-font-family": "system-ui, -apple-system, 'Segoe UI', sans-serif"},
    "dark": {"--jp-layout-color0": "#111111", "--jp-layout-color1": "#212121",
             "--jp-ui-font-color1": "rgba(255,255,255,0.87)", "--jp-border-color2": "#424242",
             "--jp-ui-font-family": "system-ui, -apple-system, 'Segoe UI', sans-serif"},
}
# A few of JupyterLab's rules for rendered HTML that a card must withstand.
_JUPYTERLAB_RULES = """
.jp-RenderedHTMLCommon table{border-collapse:collapse;border:none;font-size:12px;
  table-layout:fixed;margin-left:auto;margin-right:auto}
.jp-RenderedHTMLCommon td,.jp-RenderedHTMLCommon th{text-align:right;vertical-align:middle;
  padding:.5em;border:none}
.jp-RenderedHTMLCommon tbody tr:nth-child(odd){background:var(--jp-layout-color0)}
.jp-RenderedHTMLCommon code{background-color:var(--jp-layout-color2, #eee)}
"""


def page(theme: Optional[str]) -> str:
    """The page: bare (``theme`` None) or dressed as JupyterLab's ``light``/``dark`` theme."""
    body_attr, style = "", "body{margin:16px;font-family:sans-serif}"
    if theme is not None:
        values = ";".join(f"{k}:{v}" for k, v in _JUPYTERLAB[theme].items())
        body_attr = f' data-jp-theme-light="{str(theme == "light").lower()}"'
        style += (f":root{{{values}}} body{{background:var(--jp-layout-color0);"
                  f"color:var(--jp-ui-font-color1)}}" + _JUPYTERLAB_RULES)
    grid = "".join(f'<div class="jp-RenderedHTMLCommon">{c}</div>' for c in cards())
    return (f'<!doctype html><html><head><meta charset="utf-8">'
            f'<meta name="color-scheme" content="light dark"><style>{style}'
            ".grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:14px}"
            f"</style></head><body{body_attr}><div class=\"grid\">{grid}</div></body></html>")


def shoot(chromium: str, html_file: Path, png: Path, dark: bool, size: str) -> None:
    """Screenshot ``html_file`` into ``png`` with the browser preferring a dark or light scheme."""
    with tempfile.TemporaryDirectory() as profile:
        args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={size}",
                f"--blink-settings=preferredColorScheme={0 if dark else 1}"]
        if dark:
            args.append("--force-dark-mode")
        subprocess.run([*args, html_file.as_uri()], check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="directory for the pages and PNGs")
    parser.add_argument("--chromium", default=None, help="the browser (default: on PATH)")
    parser.add_argument("--window-size", default="1500,1250")
    args = parser.parse_args()
    chromium = args.chromium or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None)
    if chromium is None:
        sys.exit("no Chromium found: apt-get install chromium, or pass --chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    shots = {"plain-light": (None, False), "plain-dark": (None, True),
             "jupyterlab-light": ("light", True), "jupyterlab-dark": ("dark", False)}
    for name, (theme, prefer_dark) in shots.items():
        html_file = args.out / f"{name}.html"
        html_file.write_text(page(theme), encoding="utf-8")
        shoot(chromium, html_file, args.out / f"{name}.png", prefer_dark, args.window_size)
        print(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
