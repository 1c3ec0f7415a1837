"""What each group of API calls needs from the client: :class:`ObshellClient` provides it.

The client's calls are grouped by area (tasks, packages) in modules of their own; each group
is a class the client is assembled from, and reaches the rest of the client only through
this protocol. A group derives from :data:`CallsBase`: the protocol for type checkers, plain
``object`` at run time, so that no public signature names it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Protocol

from ._request import Request
from ._transport import Timeout

__all__ = ["Caller", "CallsBase"]


class Caller(Protocol):
    """The part of the client a group of calls uses."""

    #: Whether the agent has the new upload (``/api/v1/package``); None until asked.
    _new_upload: Optional[bool]

    @property
    def timeout(self) -> tuple[float, float]:
        """The client's ``(connect, read)`` timeout."""
        ...

    @property
    def agent(self) -> str:
        """``host:port`` as messages show it."""
        ...

    def call(self, method: str, path: str, *, query: str = "", body: Optional[Any] = None,
             signed: bool = True, timeout: Optional[Timeout] = None) -> Any:
        """Send one call; the reply's data."""
        ...

    def _send(self, request: Request, timeout: Optional[Timeout] = None) -> Any:
        """Send a prepared request; its envelope."""
        ...


if TYPE_CHECKING:
    CallsBase = Caller
else:
    CallsBase = object
