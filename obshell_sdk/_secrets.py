"""Passwords that never show themselves: masked in repr and str, refused by pickle.

A password is wrapped the moment it is handed in and revealed only inside the expression
that encrypts it, so it cannot reach a log line, an exception, a traceback's locals or a
pickle.
"""

from __future__ import annotations

from typing import NoReturn, Optional

__all__ = ["Secret", "wrap_secret"]


class Secret:
    """A password that never shows itself: masked repr and str, no pickling."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The password itself, for the one expression that encrypts it."""
        return self._value

    def is_empty(self) -> bool:
        """Whether it is the empty string: the one thing of it that may be said."""
        return not self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("obshell_sdk refuses to pickle a password")


def wrap_secret(value: object, *, optional: bool = False) -> tuple[Optional[Secret], str]:
    """Wrap a password at once; or say why it cannot be sent (never echoing it).

    Nothing is raised here: the caller drops the plaintext from its frame first, so no
    traceback ever shows it.
    """
    if value is None and optional:
        return None, ""
    if not isinstance(value, str):
        return None, f"must be a string{' or None' if optional else ''}, got {type(value).__name__}"
    try:
        value.encode("utf-8")
        problem = "holds a NUL character, which obshell cannot take" if "\x00" in value else ""
    except UnicodeEncodeError:
        problem = "cannot be encoded as UTF-8 (a lone surrogate); it could never be sent"
    return (None if problem else Secret(value)), problem
