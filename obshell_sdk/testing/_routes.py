"""Route table of the fake agent: method and path to handler, with what the route does.

A route that creates a task (a DAG) says so here, with ``creates_task=True``, and nowhere
else: the pipeline applies the faults that concern task creation (``drop_reply_after_create``)
to exactly these routes (the agent upgrade and its check, the OB upgrade and its check).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from . import _handlers as h
from . import _obupgrade as ob
from . import _pkghandlers as pkg
from ._context import Context

Handler = Callable[[Context], Any]

#: Path prefixes whose routes need a valid auth header (obshell's ``Verify`` route classes).
PROTECTED_PREFIXES = ("/api/v1/agent/", "/api/v1/task/", "/api/v1/upgrade/", "/api/v1/ob/")


@dataclass(frozen=True)
class Route:
    """A handler and what the route is.

    ``creates_task``: a successful answer means the agent created a task (DAG) for the caller.
    """

    handler: Handler
    creates_task: bool = False


_STATIC: dict[tuple[str, str], Route] = {
    ("GET", "/api/v1/info"): Route(h.info),
    ("GET", "/api/v1/secret"): Route(h.secret),
    ("GET", "/api/v1/time"): Route(h.server_time),
    ("GET", "/api/v1/status"): Route(h.status),
    ("POST", "/api/v1/status"): Route(h.status),
    ("POST", "/api/v1/agent/upgrade"): Route(h.upgrade_agent, creates_task=True),
    ("POST", "/api/v1/agent/upgrade/check"): Route(h.check_agent_upgrade, creates_task=True),
    ("GET", "/api/v1/task/dag/maintain/ob"): Route(h.maintain_ob),
    ("GET", "/api/v1/task/dag/unfinish"): Route(h.unfinished),
    ("GET", "/api/v1/task/dag/ob/unfinish"): Route(h.unfinished),
    ("GET", "/api/v1/task/dags/ob"): Route(h.all_cluster_dags),
    ("POST", "/api/v1/ob/upgrade"): Route(ob.ob_upgrade, creates_task=True),
    ("POST", "/api/v1/ob/upgrade/check"): Route(ob.ob_upgrade_check, creates_task=True),
    ("POST", "/api/v1/upgrade/package"): Route(pkg.upload_package),
    ("GET", "/api/v1/upgrade/package/info"): Route(pkg.package_info),
    ("POST", "/api/v1/upgrade/params/backup"): Route(ob.params_backup),
    ("POST", "/api/v1/upgrade/params/restore"): Route(ob.params_restore),
    ("POST", "/api/v1/upgrade/env/check"): Route(ob.env_check),
    ("POST", "/api/v1/package"): Route(pkg.new_upload),  # VerifyFile only, no Verify
}

#: ``/api/v1/task/<kind>/:id`` routes (gin: static routes win over ``:id``).
_BY_ID: dict[tuple[str, str], Route] = {
    ("GET", "dag"): Route(h.get_dag),
    ("POST", "dag"): Route(h.operate_dag),
    ("GET", "sub_task"): Route(h.get_sub_task),
    ("GET", "node"): Route(h.get_node),
}

_SUB_TASK_LOGS = Route(h.sub_task_logs)
_DELETE_PACKAGE = Route(pkg.delete_package)


def route(method: str, path: str) -> Optional[Route]:
    """The route for ``method`` and (unquoted) ``path``, or ``None`` (404)."""
    found = _STATIC.get((method, path))
    if found is not None:
        return found
    parts = path.split("/")
    if len(parts) == 6 and parts[:4] == ["", "api", "v1", "task"] and parts[5]:
        return _BY_ID.get((method, parts[4]))
    if (len(parts) == 7 and parts[:5] == ["", "api", "v1", "task", "sub_task"]
            and parts[6] == "logs" and parts[5] and method == "GET"):
        return _SUB_TASK_LOGS
    if (method == "DELETE" and len(parts) == 6 and parts[5]
            and parts[:5] == ["", "api", "v1", "upgrade", "package"]):
        return _DELETE_PACKAGE
    return None


def task_creating_routes() -> list[tuple[str, str]]:
    """(method, path) of every route declared task-creating."""
    return [key for key, r in _STATIC.items() if r.creates_task]


def is_protected(path: str) -> bool:
    """Whether requests to ``path`` must carry a valid auth header."""
    return path.startswith(PROTECTED_PREFIXES)
