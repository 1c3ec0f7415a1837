"""How the notebook cards look: a light and a dark palette, and the scoped CSS built from them.

Every rule is scoped under ``div.obshell-card`` and every colour is a custom property
``--ob-*``, so nothing leaks into the notebook and the palettes are the only colours used.
The card's text, background and border follow JupyterLab's theme (``--jp-ui-font-color1``,
``--jp-layout-color1``, ``--jp-border-color2``), with the palette's values as fallbacks
elsewhere. The dark palette applies in a dark JupyterLab theme (``data-jp-theme-light`` on
the body), a dark VS Code theme (``vscode-dark`` on the body) and, outside those two, when
the browser prefers a dark scheme (``prefers-color-scheme``). Every text colour reaches
4.5:1 against the background it sits on in both palettes (tests/test_notebook_cards.py
reads this CSS and computes the ratios).
"""

from __future__ import annotations

__all__ = ["CARD_CSS", "PALETTES", "STATES", "state_class"]

#: The states a chip, a bar fill or a marker can show (CSS class suffixes).
STATES = ("succeeded", "running", "failed", "cancelled", "rolled-back", "passed", "pending")

#: Palette entries a JupyterLab theme provides: ``--ob-<key>`` is ``var(--jp-..., value)``.
_JUPYTER = {"fg": "--jp-ui-font-color1", "bg": "--jp-layout-color1",
            "border": "--jp-border-color2"}

#: Per theme: card text and background, muted text, lines, the log box, and for each state
#: its chip text (``-fg``) on its chip background (``-bg``) and its bar colour (``-line``).
PALETTES: dict[str, dict[str, str]] = {
    "light": {
        "fg": "#1f2328", "bg": "#ffffff", "muted": "#59636e", "border": "#d1d9e0",
        "track": "#eef1f4", "log-fg": "#1f2328", "log-bg": "#f6f8fa",
        "succeeded-fg": "#116329", "succeeded-bg": "#dafbe1", "succeeded-line": "#1a7f37",
        "running-fg": "#0550ae", "running-bg": "#ddf4ff", "running-line": "#0969da",
        "failed-fg": "#a40e26", "failed-bg": "#ffebe9", "failed-line": "#cf222e",
        "cancelled-fg": "#6f4a36", "cancelled-bg": "#f3ebe6", "cancelled-line": "#8d6e63",
        "rolled-back-fg": "#953800", "rolled-back-bg": "#fff1e5", "rolled-back-line": "#bc4c00",
        "passed-fg": "#6a5b00", "passed-bg": "#fbf5d0", "passed-line": "#8a7000",
        "pending-fg": "#4b535d", "pending-bg": "#eef1f4", "pending-line": "#6e7781",
    },
    "dark": {
        "fg": "#e6edf3", "bg": "#1b1f24", "muted": "#9ea7b3", "border": "#3d444d",
        "track": "#2f353d", "log-fg": "#e6edf3", "log-bg": "#0f1318",
        "succeeded-fg": "#8ddb8c", "succeeded-bg": "#163a23", "succeeded-line": "#3fb950",
        "running-fg": "#8cc4ff", "running-bg": "#10304f", "running-line": "#4493f8",
        "failed-fg": "#ffa9a1", "failed-bg": "#4a1a1f", "failed-line": "#f85149",
        "cancelled-fg": "#dcc0b2", "cancelled-bg": "#3a2c25", "cancelled-line": "#b08f80",
        "rolled-back-fg": "#ffba85", "rolled-back-bg": "#472a10", "rolled-back-line": "#db6d28",
        "passed-fg": "#e7d675", "passed-bg": "#3a3413", "passed-line": "#c9ad2f",
        "pending-fg": "#c1c8d1", "pending-bg": "#2f353d", "pending-line": "#8b949e",
    },
}

_CARD = "div.obshell-card"
_DARK = ('body[data-jp-theme-light="false"] div.obshell-card,body.vscode-dark div.obshell-card,'
         "body.vscode-high-contrast:not(.vscode-high-contrast-light) div.obshell-card")
_DARK_BY_SCHEME = ("body:not([data-jp-theme-light]):not(.vscode-light)"
                   ":not(.vscode-high-contrast-light) div.obshell-card")

_RULES = f"""
{_CARD}{{color:var(--ob-fg);background:var(--ob-bg);border:1px solid var(--ob-border);
border-radius:6px;padding:10px 14px;margin:2px 0;max-width:780px;box-sizing:border-box;
font-family:var(--jp-ui-font-family,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif);
font-size:13px;line-height:1.45;text-align:left;overflow-x:auto}}
{_CARD} .obshell-head{{display:flex;flex-wrap:wrap;align-items:baseline;gap:2px 10px}}
{_CARD} .obshell-name{{font-weight:600;font-size:14px}}
{_CARD} .obshell-muted{{color:var(--ob-muted)}}
{_CARD} .obshell-chip{{display:inline-block;padding:0 7px;border-radius:10px;font-size:12px;
font-weight:600;white-space:nowrap;line-height:1.6}}
{_CARD} .obshell-bar{{height:8px;border-radius:4px;background:var(--ob-track);overflow:hidden;
margin:8px 0 4px}}
{_CARD} .obshell-fill{{height:100%}}
{_CARD} table.obshell-table{{border-collapse:collapse;margin:6px 0 2px;width:100%;
table-layout:auto;font-size:12.5px}}
{_CARD} table.obshell-table tr:nth-child(n){{background:transparent}}
{_CARD} table.obshell-table th{{color:var(--ob-muted);font-weight:600;text-align:left;
border-bottom:1px solid var(--ob-border);padding:2px 10px 2px 0;white-space:nowrap}}
{_CARD} table.obshell-table td{{text-align:left;vertical-align:baseline;padding:2px 10px 2px 0;
border:none;white-space:nowrap}}
{_CARD} table.obshell-table td.obshell-wrap{{white-space:normal;width:100%}}
{_CARD} tr.obshell-current td{{font-weight:600}}
{_CARD} .obshell-mark{{width:1em;text-align:center}}
{_CARD} .obshell-failure{{margin-top:6px}}
{_CARD} code{{color:var(--ob-log-fg);background:var(--ob-log-bg);border-radius:3px;
padding:1px 4px;font-family:var(--jp-code-font-family,ui-monospace,Menlo,Consolas,monospace);
font-size:12px;white-space:pre-wrap;word-break:break-word}}
"""


def _declarations(palette: dict[str, str]) -> str:
    return ";".join(
        f"--ob-{key}:var({_JUPYTER[key]},{value})" if key in _JUPYTER else f"--ob-{key}:{value}"
        for key, value in palette.items()
    )


def _state_rules() -> str:
    return "\n".join(
        f"{_CARD} .obshell-s-{s}{{color:var(--ob-{s}-fg);background:var(--ob-{s}-bg)}}\n"
        f"{_CARD} .obshell-f-{s}{{background:var(--ob-{s}-line)}}\n"
        f"{_CARD} .obshell-m-{s}{{color:var(--ob-{s}-fg)}}"
        for s in STATES
    )


#: The style sheet every card carries (in a ``<style>`` element; repeating it is harmless).
CARD_CSS = (
    f"{_CARD}{{{_declarations(PALETTES['light'])}}}\n"
    f"{_DARK}{{{_declarations(PALETTES['dark'])}}}\n"
    f"@media (prefers-color-scheme:dark){{{_DARK_BY_SCHEME}{{"
    f"{_declarations(PALETTES['dark'])}}}}}"
    + _RULES + _state_rules() + "\n"
)

_BY_WORD = {
    "succeed": "succeeded", "succeeded": "succeeded", "running": "running",
    "failed": "failed", "cancelled": "cancelled", "rolled back": "rolled-back",
    "rolled_back": "rolled-back", "passed": "passed",
    "refused": "failed", "unreachable": "failed",  # rollout outcomes that want a person
}


def state_class(state: str) -> str:
    """The state class suffix for a state or outcome word (``SUCCEED``, ``rolled back``, ...).

    A state with its outcome in parentheses (``FAILED (cancelled)``) is the outcome's.
    Anything not known (``PENDING``, ``READY``, ``waiting``, ``skipped``...) is ``pending``.
    """
    word = state.lower()
    if word.endswith(")") and " (" in word:
        word = word[word.rindex(" (") + 2:-1]
    return _BY_WORD.get(word, "pending")
