"""Handlers of the fake agent: one function per endpoint, given the request :class:`Context`.

Handlers read and change the agent only through ``ctx.state`` (an ``AgentState``); the route
table that maps method and path to them is in ``_routes.py``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any, Optional

from ._context import Context
from ._dags import parse_generic_id
from ._errors import NO_DATA, ApiError, PanicError
from ._golike import GoField, decode_struct, parse_go_json, rfc3339

_UPGRADE_FIELDS = (
    GoField("Version", "version", "string"),
    GoField("Release", "release", "string"),
    GoField("UpgradeDir", "upgradeDir", "string"),
)
_OPERATOR_FIELDS = (GoField("Operator", "operator", "string"),)
_PATH_CHARS = re.compile(r"^[A-Za-z0-9\u4e00-\u9fff\-_:@/.]*$")
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False", ""}


def _id(ctx: Context) -> str:
    return ctx.path.split("/")[5]


def info(ctx: Context) -> Any:
    """``GET /api/v1/info``."""
    a = ctx.state
    data: dict[str, Any] = {
        "pid": a.pid, "state": 2, "startAt": int(a.started_at * 1e9),
        "homePath": "/home/admin/obshell", "obVersion": "", "architecture": "x86_64",
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


def _bind(ctx: Context, fields: tuple[GoField, ...], struct: str, path: str) -> dict[str, Any]:
    def fail(text: str) -> ApiError:
        return ApiError(400, "Common.BindJsonFailed", f"Bind JSON failed: {text}")

    try:
        parsed = parse_go_json(ctx.body)
    except ValueError as exc:
        raise fail(str(exc)) from None
    values, error = decode_struct(parsed, struct, fields, type_path=path)
    if error is not None:
        raise fail(error)
    missing = [
        f"Key: '{struct}.{f.go_name}' Error:Field validation for '{f.go_name}' "
        "failed on the 'required' tag"
        for f in fields if f.go_name in ("Version", "Release", "Operator") and not values[f.go_name]
    ]
    if missing:
        raise fail("\n".join(missing))
    return values


def _check_path(path: str) -> Optional[str]:
    if not path.startswith("/"):
        return "should start with '/'"
    if not _PATH_CHARS.match(path):
        return "contains illegal characters"
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return "should not escape from '/' with '..'"
        elif part not in ("", "."):
            depth += 1
    return None


def _version_key(text: str) -> tuple[tuple[int, ...], int]:
    version, _, build = text.partition("-")
    nums = tuple(int(p) if p.isdigit() else 0 for p in version.split("."))
    return nums, int(build) if build.isdigit() else 0


def upgrade_agent(ctx: Context) -> Any:
    """``POST /api/v1/agent/upgrade``: create the 9-stage upgrade DAG (task-creating)."""
    return _upgrade(ctx, check=False)


def check_agent_upgrade(ctx: Context) -> Any:
    """``POST /api/v1/agent/upgrade/check``: create the 5-stage pre-check DAG (task-creating)."""
    return _upgrade(ctx, check=True)


def _upgrade(ctx: Context, *, check: bool) -> Any:
    a = ctx.state
    values = _bind(ctx, _UPGRADE_FIELDS, "UpgradeCheckParam", "param.UpgradeCheckParam")
    if a.identity != "CLUSTER AGENT":
        raise ApiError(400, "Agent.Identify.NotSupportOperation",
                       f"'{a.host}:{a.port}' is '{a.identity}', instead of 'CLUSTER AGENT', "
                       "does not support this operation", data_null=True)
    upgrade_dir = values["UpgradeDir"]
    if upgrade_dir:
        problem = _check_path(upgrade_dir)
        if problem is not None:
            raise ApiError(400, "Common.InvalidPath",
                           f"Path '{upgrade_dir}' is not valid: {problem}", data_null=True)
    version, release = values["Version"], values["Release"]
    if "." not in release:
        raise ApiError(400, "Package.ReleaseFormat.Invalid",
                       f"Release format {release} is illegal", data_null=True)
    target = f"{version}-{release[: release.rfind('.')]}"
    current = f"{a.sync_version()}-{a.release}"
    if _version_key(target) <= _version_key(current):
        raise ApiError(400, "Agent.Upgrade.ToLowerVersion",
                       f"Target version {target} is not greater than current version {current}. "
                       "Please verify if the parameters have been filled out correctly",
                       data_null=True)
    dag = a.dags.create(version, release, check=check)
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
    values = _bind(ctx, _OPERATOR_FIELDS, "DagOperator", "task.DagOperator")
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


_RPM_NAME = re.compile(
    r"^(?P<name>.+)-(?P<version>[^-]+)-(?P<release>[^-]+)\.(?P<arch>[^.]+)\.rpm$")


def upload_package(ctx: Context) -> Any:
    """``POST /api/v1/upgrade/package``: encrypted multipart with part ``file``."""
    a = ctx.state
    if a.identity != "CLUSTER AGENT":
        raise ApiError(400, "Agent.Identify.NotSupportOperation",
                       f"'{a.host}:{a.port}' is '{a.identity}', instead of 'CLUSTER AGENT', "
                       "does not support this operation", data_null=True)
    ctype = ctx.req.header_lookup("Content-Type") or ""
    filename, content = _multipart_file(ctx.body, ctype)
    if content is None:
        raise ApiError(500, "Request.File.Missing",
                       "File 'file' in the request is missing: http: no such file", data_null=True)
    m = _RPM_NAME.match(filename or "")
    name, version, rel, arch = (m.group("name"), m.group("version"), m.group("release"),
                                m.group("arch")) if m else ("obshell", "", "", "x86_64")
    if "." not in rel:
        raise ApiError(400, "Package.ReleaseFormat.Invalid", f"Release format {rel} is illegal",
                       data_null=True)
    record = {
        "PkgId": len(a.packages) + 1, "Name": name, "Version": version,
        "ReleaseDistribution": rel, "Distribution": rel.rsplit(".", 1)[-1],
        "Release": rel.rsplit(".", 1)[0], "Architecture": arch, "Size": len(content),
        "PayloadSize": len(content), "ChunkCount": max(1, -(-len(content) // (8 << 20))),
        "Md5": hashlib.md5(content).hexdigest(),  # noqa: S324 - the agent reports MD5
        "UpgradeDepYaml": "", "GmtModify": "0001-01-01T00:00:00Z",
    }
    a.packages.append((filename or "", content))
    return record


def _multipart_file(body: bytes, content_type: str) -> tuple[Optional[str], Optional[bytes]]:
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        return None, None
    delim = b"--" + m.group(1).encode("latin-1")
    for part in body.split(delim)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        disp = next((line for line in head.decode("latin-1").split("\r\n")
                     if line.lower().startswith("content-disposition")), "")
        if re.search(r'\bname="?file"?(;|$|\s)', disp):
            fn = re.search(r'filename="([^"]*)"', disp)
            return (fn.group(1) if fn else None), data[:-2] if data.endswith(b"\r\n") else data
    return None, None
