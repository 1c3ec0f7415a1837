"""Per-request context of the fake agent, shared by the pipeline and the handlers."""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Callable
from typing import Any, Optional

from ._auth import AuthHeader
from ._server import IncomingRequest
from ._state import AgentState


class Context:
    """One request on its way through the pipeline.

    Holds the agent state, the request, what was decoded from it so far, and callbacks to
    run once the answer has been sent.
    """

    def __init__(self, state: AgentState, req: IncomingRequest, now: float) -> None:
        self.state = state
        self.req = req
        self.now = now
        self.now_s = math.floor(now)
        path, _, query = req.target.partition("?")
        self.raw_path = path
        self.path = urllib.parse.unquote(path)
        self.query = urllib.parse.parse_qs(query, keep_blank_values=True)
        self.header: Optional[AuthHeader] = None
        self.body = req.body
        self.body_json: Any = None
        self.trace_id = ""
        self.after_send: list[Callable[[], None]] = []

    def after_dag_change(self) -> None:
        """Run pending agent restarts once this answer is out (a DAG reached its restart stage)."""
        if self.state.restart_pending:
            self.after_send.append(self.state.drain_restarts)
