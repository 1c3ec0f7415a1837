"""What each group of API calls needs from the client: :class:`ObshellClient` provides it.

The client's calls are grouped by area (tasks, packages, upgrades) in modules of their own;
each group is a class the client is assembled from, and reaches the rest of the client (and
the calls of the other groups) only through this protocol. A group derives from
:data:`CallsBase`: the protocol for type checkers, plain ``object`` at run time, so that no
public signature names it. A call reads its reply's data through ``_read`` (a list call's
with :func:`contents`): what does not fit names the request and the agent.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, TypeVar, Union

from ._dag import DagDetail
from ._decode import decode_contents
from ._endpoints import R, TaskEndpoint
from ._models import AgentInfo, UpgradePackageInfo
from ._request import Request
from ._task import DagTask
from ._transport import Timeout

__all__ = ["Caller", "CallsBase", "contents"]

T = TypeVar("T")


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

    def _read(self, read: Callable[[Any], T], method: str, path: str, *, query: str = "",
              signed: bool = True, timeout: Optional[Timeout] = None) -> T:
        """Send one call; its data as ``read`` reads it (a misfit names the call and agent)."""
        ...

    def _send(self, request: Request, timeout: Optional[Timeout] = None) -> Any:
        """Send a prepared request; its envelope."""
        ...

    def _create_task(
        self, endpoint: TaskEndpoint[R], request: R,
        on_send: Optional[Callable[[Optional[frozenset[str]], float], None]] = None,
    ) -> DagTask:
        """Create a task through ``endpoint`` exactly once; the task it made."""
        ...

    def info(self) -> AgentInfo:
        """The agent's ``/api/v1/info``."""
        ...

    def unfinished_dags(self, *, timeout: Optional[Timeout] = None) -> list[DagDetail]:
        """The DAGs not finished (a task call)."""
        ...

    def upload_package(
        self, path: Union[str, os.PathLike[str]], *, lifetime: Optional[float] = None,
        timeout: Optional[Timeout] = None,
    ) -> UpgradePackageInfo:
        """Upload an RPM; what the agent stored (a package call)."""
        ...

    def _upload_checked(self, file: str, sha256: Optional[str],
                        lifetime: Optional[float] = None) -> UpgradePackageInfo:
        """Upload an RPM checked already, its SHA-256 reused (a package call)."""
        ...


if TYPE_CHECKING:
    CallsBase = Caller
else:
    CallsBase = object


def contents(build: Callable[[Any, str], T]) -> Callable[[Any], list[T]]:
    """A reader of a list call's data, ``{"contents": [...]}``: each item built by ``build``."""
    return lambda data: [build(item, f"data.contents[{i}]")
                         for i, item in enumerate(decode_contents(data))]
