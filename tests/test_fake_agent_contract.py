"""The fake agent as a user contract: its public surface stays, and its insides stay layered.

The request pipeline and the handlers see an explicit ``AgentState``, never the
``FakeAgent`` facade; the testing modules import each other without cycles (counting
imports inside functions), and stay small.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import obshell_sdk.testing
from obshell_sdk.testing import FakeAgent, FakeDag

#: the imported package's sources: the checkout's, or an installed one's (an sdist's tests)
PKG = Path(obshell_sdk.testing.__file__).parent
#: modules that serve requests: they get the state object, not the facade
SERVING = ("_app.py", "_handlers.py", "_routes.py", "_context.py", "_state.py")
FACADE_PRIVATES = {"_state", "_runner", "_faults", "_dags", "_key", "_record", "_log",
                   "_auth_config", "_drain_restarts", "_after_dag_change", "_spawn",
                   "_requests", "_listener", "_helpers"}

PUBLIC_METHODS = {
    "start": [], "stop": [], "requests_to": ["path", "method"], "clear_requests": [],
    "dag": ["dag_id"], "create_upgrade_dag": ["version", "release", "check"],
    "advance_dag": ["dag_id", "steps"], "set_dag_stage": ["dag_id", "stage"],
    "finish_dag": ["dag_id"], "fail_dag": ["dag_id", "message"],
    "set_dag_progression": ["stages_per_poll", "stage_seconds", "dag_id", "stage_durations"],
    "pause": ["seconds", "new_key_bits", "clock_offset"], "resume": [],
    "wait_listening": ["timeout"], "reset_next": ["n", "path_prefix"],
    "fail_next": ["n", "status", "err_code", "path_prefix", "message", "method"],
    "truncate_next": ["n", "path_prefix"], "hang_next": ["n", "seconds", "path_prefix"],
    "edit_data_next": ["n", "edit", "path_prefix", "method"],
    "clear_faults": [], "rotate_key": ["bits"], "set_clock_offset": ["seconds"], "now": [],
    "sync_version": [],
}
PUBLIC_PROPERTIES = ("base_url", "public_key_b64", "private_key_der", "requests", "dags",
                     "paused", "drop_reply_after_create", "version_release_display",
                     "clock_offset", "tls")
ATTRIBUTES = ("password", "agent_password", "identity", "version", "release", "supported_auth",
              "legacy_v1", "root_password_known", "host", "port", "pid", "packages",
              "adopt_target_version", "restart_seconds", "restart_new_key_bits", "started_at",
              "new_upload", "dag_history")
KWARGS = ("password", "agent_password", "identity", "version", "release", "supported_auth",
          "legacy_v1", "key_bits", "private_key", "clock_offset", "stage_seconds",
          "stages_per_poll", "fail_stage", "fail_times", "fail_message", "restart_at_stage",
          "restart_seconds", "restart_new_key_bits", "root_password_known", "host", "port",
          "tls", "adopt_target_version", "stage_durations", "new_upload")
#: keyword defaults that are part of the contract (None: follow the version the agent runs)
DEFAULTS = {"version": "4.3.0.0", "new_upload": None}


def _tree(name: str) -> ast.Module:
    return ast.parse((PKG / name).read_text(encoding="utf-8"))


def _local_imports(name: str) -> set[str]:
    """Testing modules ``name`` imports, anywhere in the file (functions and TYPE_CHECKING too)."""
    found: set[str] = set()
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0] + ".py")
            else:
                found.update(f"{alias.name}.py" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "obshell_sdk.testing."):
            found.add(node.module.split(".")[2] + ".py")  # type: ignore[union-attr]
    return found


@pytest.mark.parametrize("name", SERVING)
def test_serving_modules_never_touch_the_facade(name: str) -> None:
    source = (PKG / name).read_text(encoding="utf-8")
    assert "agent._" not in source
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Attribute):
            assert node.attr not in FACADE_PRIVATES, f"{name}:{node.lineno} .{node.attr}"
            assert node.attr != "agent", f"{name}:{node.lineno} reaches for the agent"
        if isinstance(node, ast.Name):
            assert node.id not in ("FakeAgent", "agent"), f"{name}:{node.lineno} {node.id}"
    assert not _local_imports(name) & {"_agent.py", "_lifecycle.py"}, name


def test_testing_modules_import_without_cycles() -> None:
    graph = {p.name: _local_imports(p.name) for p in PKG.glob("*.py")}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name in done:
            return
        for dep in sorted(graph.get(name, ())):
            visit(dep, (*path, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())


def test_testing_modules_stay_small() -> None:
    for path in PKG.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert text.count("\n") <= 350, f"{path.name}: {text.count(chr(10))} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                assert length <= 50, f"{path.name}:{node.name} has {length} lines"


def test_public_surface_is_kept() -> None:
    params = inspect.signature(FakeAgent.__init__).parameters
    assert all(params[k].kind is inspect.Parameter.KEYWORD_ONLY for k in KWARGS), KWARGS
    assert {k: params[k].default for k in DEFAULTS} == DEFAULTS
    for name, expected in PUBLIC_METHODS.items():
        names = [p for p in inspect.signature(getattr(FakeAgent, name)).parameters if p != "self"]
        assert names == expected, name
        assert getattr(FakeAgent, name).__doc__, name
    for name in (*PUBLIC_PROPERTIES, *ATTRIBUTES):
        assert getattr(FakeAgent, name).__doc__, name
    assert FakeDag.__doc__ and "finished_at" in FakeDag.__doc__


def test_attributes_read_and_write_through() -> None:
    agent = FakeAgent(password="p1", version="4.3.0.0", identity="SINGLE", port=0)
    assert (agent.password, agent.version, agent.identity) == ("p1", "4.3.0.0", "SINGLE")
    assert agent.supported_auth == ("v2",) and agent.packages == []
    agent.identity = "CLUSTER AGENT"
    agent.version = "4.3.1.0"
    with agent:
        assert agent.port != 0 and agent.base_url.endswith(f":{agent.port}")
        assert agent.version_release_display == "4.3.1.0"
        assert agent.identity == "CLUSTER AGENT"
