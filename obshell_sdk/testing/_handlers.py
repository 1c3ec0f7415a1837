"""Handlers of the fake agent: one function per endpoint, given the request :class:`Context`.

Handlers read and change the agent only through ``ctx.state`` (an ``AgentState``); the route
table that maps method and path to them is in ``_routes.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._context import Context
from ._dags import parse_generic_id
from ._errors import NO_DATA, ApiError, NoRouteError, PanicError
from ._golike import GoField, rfc3339
from ._params import bind, check_path, require_cluster_agent, split_release, version_key

_UPGRADE_FIELDS = (
    GoField("Version", "version", "string"),
    GoField("Release", "release", "string"),
    GoField("UpgradeDir", "upgradeDir", "string"),
)
_UPGRADE_REQUIRED = (("Version", "UpgradeCheckParam.Version"),
                     ("Release", "UpgradeCheckParam.Release"))
_OPERATOR_FIELDS = (GoField("Operator", "operator", "string"),)
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False", ""}


def _id(ctx: Context) -> str:
    return ctx.path.split("/")[5]


def info(ctx: Context) -> Any:
    """``GET /api/v1/info``."""
    a = ctx.state
    a.sync_version()
    data: dict[str, Any] = {
        "pid": a.pid, "state": 2, "startAt": int(a.started_at * 1e9),
        "homePath": "/home/admin/obshell", "obVersion": a.ob_version,
        "architecture": a.architecture,
        "ip": a.host, "port": a.port, "zone": "", "identity": a.identity,
        "version": a.version_release_display, "isObproxyAgent": False,
        "security": a.agent_password is not None,
    }
    if a.supported_auth is not None:
        data["supportedAuth"] = list(a.supported_auth)
    return data


def secret(ctx: Context) -> Any:
    """``GET /api/v1/secret``."""
    a = ctx.state
    return {"ip": a.host, "port": a.port, "public_key": a.key.public_key_b64}


def server_time(ctx: Context) -> Any:
    """``GET /api/v1/time``: the server clock, Go ``time.Time`` JSON form."""
    return rfc3339(ctx.state.now())


def status(ctx: Context) -> Any:
    """``GET /api/v1/status`` (camelCase keys)."""
    a = ctx.state
    return {
        "agent": {"ip": a.host, "port": a.port, "identity": a.identity},
        "state": 2, "version": a.version_release_display, "pid": a.pid,
        "startAt": int(a.started_at * 1e9), "port": a.port, "obState": 3, "sqlPort": 2881,
        "underMaintenance": False,
    }


def upgrade_agent(ctx: Context) -> Any:
    """``POST /api/v1/agent/upgrade``: create the 9-stage upgrade DAG (task-creating)."""
    return _upgrade(ctx, check=False)


def check_agent_upgrade(ctx: Context) -> Any:
    """``POST /api/v1/agent/upgrade/check``: create the 5-stage pre-check DAG (task-creating)."""
    return _upgrade(ctx, check=True)


def _upgrade(ctx: Context, *, check: bool) -> Any:
    a = ctx.state
    values = bind(ctx.body, "UpgradeCheckParam", "param.UpgradeCheckParam", _UPGRADE_FIELDS,
                  _UPGRADE_REQUIRED)
    require_cluster_agent(a.identity, f"{a.host}:{a.port}")
    upgrade_dir = values["UpgradeDir"]
    if upgrade_dir:
        problem = check_path(upgrade_dir)
        if problem is not None:
            raise ApiError(400, "Common.InvalidPath",
                           f"Path '{upgrade_dir}' is not valid: {problem}", data_null=True)
    version, release = values["Version"], values["Release"]
    build, _ = split_release(release)
    target = f"{version}-{build}"
    current = f"{a.sync_version()}-{a.release}"
    if version_key(target) <= version_key(current):
        raise ApiError(400, "Agent.Upgrade.ToLowerVersion",
                       f"Target version {target} is not greater than current version {current}. "
                       "Please verify if the parameters have been filled out correctly",
                       data_null=True)
    dag = a.dags.create(version, release, check=check, upgrade_dir=upgrade_dir.strip())
    return dag.to_json(a.host, a.port, details=False, fresh=True)


def _show_details(ctx: Context) -> bool:
    values = ctx.query.get("show_details")
    if not values:
        return True
    if values[0] in _TRUE:
        return True
    if values[0] in _FALSE:
        return False
    raise PanicError("invalid show_details")


def get_dag(ctx: Context) -> Any:
    """``GET /api/v1/task/dag/{id}`` (advances poll-driven DAGs)."""
    a = ctx.state
    dag = a.dags.lookup(_id(ctx))
    details = _show_details(ctx)
    a.dags.on_poll(dag)
    with a.dags.lock:
        data = dag.to_json(a.host, a.port, details=details)
    ctx.after_dag_change()
    return data


def operate_dag(ctx: Context) -> Any:
    """``POST /api/v1/task/dag/{id}`` with ``{"operator": ...}``; answers without data."""
    a = ctx.state
    dag_id = _id(ctx)
    parse_generic_id(dag_id)
    values = bind(ctx.body, "DagOperator", "task.DagOperator", _OPERATOR_FIELDS,
                  (("Operator", "DagOperator.Operator"),))
    dag = a.dags.lookup(dag_id)
    a.dags.operate(dag, values["Operator"])
    return NO_DATA


def get_sub_task(ctx: Context) -> Any:
    """``GET /api/v1/task/sub_task/{id}``."""
    return _standalone_json(ctx, ctx.state.dags.find_sub_task)


def get_node(ctx: Context) -> Any:
    """``GET /api/v1/task/node/{id}``; ``show_details=false`` panics in obshell (500)."""
    if not _show_details(ctx):
        raise PanicError("show_details=false dereferences a nil pointer in obshell")
    return _standalone_json(ctx, ctx.state.dags.find_node)


def _standalone_json(ctx: Context, find: Callable[[str], Any]) -> Any:
    """A node or sub-task looked up on its own: its DAG-view JSON with ``additional_data``."""
    a = ctx.state
    with a.dags.lock:
        data = find(_id(ctx)).to_json(a.host, a.port)
    data["additional_data"] = {}
    return data


def sub_task_logs(ctx: Context) -> Any:
    """``GET /api/v1/task/sub_task/{id}/logs`` -> ``{"contents": [...]}``."""
    a = ctx.state
    with a.dags.lock:
        task = a.dags.find_sub_task(ctx.path.split("/")[5])
        logs = None if task.logs is None else list(task.logs)
    return {"contents": logs}


def maintain_ob(ctx: Context) -> Any:
    """``GET /api/v1/task/dag/maintain/ob``: last cluster maintenance DAG (single object)."""
    a = ctx.state
    details = _show_details(ctx)
    with a.dags.lock:
        dags = [d for d in a.dags.all() if d.maintenance_type == 2]
        if not dags:
            raise ApiError(404, "Task.NotFound", "Task not found: Cluster is not under maintenance")
        return dags[-1].to_json(a.host, a.port, details=details)


def unfinished(ctx: Context) -> Any:
    """``GET /api/v1/task/dag/unfinish`` and ``/dag/ob/unfinish`` (``contents`` null if none)."""
    a = ctx.state
    details = _show_details(ctx)
    with a.dags.lock:
        items = [d.to_json(a.host, a.port, details=details) for d in a.dags.all() if d.unfinished]
    return {"contents": items or None}


def all_cluster_dags(ctx: Context) -> Any:
    """``GET /api/v1/task/dags/ob``: every DAG, finished ones too (``contents`` ``[]`` if none).

    A 404 when the agent predates it (``dag_history`` false).
    """
    a = ctx.state
    if not a.dag_history:
        raise NoRouteError()
    details = _show_details(ctx)
    with a.dags.lock:
        return {"contents": [d.to_json(a.host, a.port, details=details) for d in a.dags.all()]}
