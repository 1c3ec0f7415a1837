"""Terminal-safe text: what an agent wrote, with the characters a terminal acts on escaped.

Used by every error message (:class:`~obshell_sdk.ObshellError` escapes its own text) and by
every rendering a terminal may show. Standard library only.
"""

from __future__ import annotations

__all__ = ["is_terminal", "printable"]

# C0 controls, DEL and C1 controls: what a terminal may act on instead of showing. And
# the bidirectional marks, embeddings, overrides and isolates, with which a terminal that
# lays out right-to-left text would show the line in another order than it was written. And
# Unicode's line and paragraph separators, which end a line for str.splitlines, editors and
# log viewers: an agent's text could fake a line of ours with them.
_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7f, 0xa0))} | {
    c: f"\\u{c:04x}" for c in (*_BIDI, 0x2028, 0x2029)}
# A newline and a tab move nothing already shown; a CR before a newline ends the line too.
_CONTROLS_BUT_NEWLINE = {c: e for c, e in _CONTROLS.items() if c not in (0x09, 0x0A)}


def printable(text: str, *, keep_newlines: bool = False) -> str:
    r"""``text`` with control characters written as hex escapes: safe to print on a terminal.

    Everything that came from the agent (names, messages, logs) goes through this before a
    terminal sees it, so an agent cannot move the cursor, clear the screen or fake a line,
    nor reorder one with bidirectional controls (written ``\u202e``, ...), nor start one
    with a Unicode line or paragraph separator (``\u2028``, ``\u2029``).
    With ``keep_newlines`` a newline and a tab stay, and CRLF becomes a newline. Escaping
    twice changes nothing more: a backslash is not a control character.
    """
    if keep_newlines:
        return text.replace("\r\n", "\n").translate(_CONTROLS_BUT_NEWLINE)
    return text.translate(_CONTROLS)


def is_terminal(stream: object) -> bool:
    """Whether ``stream`` is a terminal (else control codes would land in a file or a pipe)."""
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):  # no such method, or a closed stream
        return False
