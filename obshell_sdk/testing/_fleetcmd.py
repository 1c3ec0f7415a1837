"""The command channel of a :class:`~obshell_sdk.testing.FakeFleet`, agent side.

A command is a tuple ``(kind, index, *arguments)`` naming one agent of a group by its index;
:func:`run_command` carries it out on that :class:`~obshell_sdk.testing.FakeAgent` and returns
a picklable answer. :func:`worker_main` is a worker process: it starts its group of agents,
answers commands from its pipe until told to stop (or until the pipe closes, when the parent
went away), and stops every agent before it exits.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from ._agent import FakeAgent

_log = logging.getLogger("obshell_sdk.testing")

def _dag_states(agent: FakeAgent) -> dict[str, dict[str, Any]]:
    return {
        dag_id: {"name": d.name, "state": d.state, "operator": d.operator, "stage": d.stage,
                 "max_stage": d.max_stage, "finished_at": d.finished_at}
        for dag_id, d in agent.dags.items()
    }


def _set_faults(agent: FakeAgent, faults: dict[str, Any]) -> None:
    agent.set_dag_faults(fail_stage=faults.get("fail_stage"),
                         fail_times=faults.get("fail_times", 1),
                         fail_message=faults.get("fail_message"),
                         restart_at_stage=faults.get("restart_at_stage"))
    agent.restart_new_key_bits = faults.get("restart_new_key_bits")
    agent.drop_reply_after_create = bool(faults.get("drop_reply_after_create", False))


def run_command(agents: Sequence[FakeAgent], command: tuple[Any, ...]) -> Any:
    """Carry out ``command`` on ``agents[command[1]]`` and return its answer.

    ``("call", i, name, args, kwargs)`` calls a public method; ``("get", i, name)`` and
    ``("set", i, name, value)`` read and write a public attribute; ``("faults", i, dict)``
    sets the DAG faults (``set_dag_faults``), ``restart_new_key_bits`` and
    ``drop_reply_after_create``; ``("counts", i)`` counts the requests by (method, path);
    ``("dags", i)`` gives each DAG's name, state, operator, stage, max_stage and finished_at;
    ``("key", i)`` gives the public key.
    """
    kind, agent = command[0], agents[command[1]]
    if kind in ("call", "get", "set") and str(command[2]).startswith("_"):
        raise AttributeError(f"{command[2]} is not public")
    if kind == "call":
        return getattr(agent, command[2])(*command[3], **command[4])
    if kind == "get":
        return getattr(agent, command[2])
    if kind == "set":
        setattr(agent, command[2], command[3])
        return None
    if kind == "faults":
        _set_faults(agent, command[2])
        return None
    if kind == "counts":
        return dict(Counter((r.method, r.path) for r in agent.requests))
    if kind == "dags":
        return _dag_states(agent)
    if kind == "key":
        return agent.public_key_b64
    raise ValueError(f"unknown fleet command {kind!r}")


def _serve(conn: Connection, agents: list[FakeAgent]) -> None:
    while True:
        try:
            command = conn.recv()
        except (EOFError, OSError):  # the parent went away: stop
            return
        if command[0] == "stop":
            return
        try:
            answer: tuple[str, Any] = ("ok", run_command(agents, command))
        except Exception as exc:  # answered to the parent, which raises it
            answer = ("error", f"{type(exc).__name__}: {exc}")
        conn.send(answer)


def worker_main(conn: Connection, count: int, agent_kwargs: dict[str, Any]) -> None:
    """A worker process: start ``count`` agents, answer commands, stop them all at the end."""
    agents: list[FakeAgent] = []
    try:
        for _ in range(count):
            agents.append(FakeAgent(**agent_kwargs).start())
        conn.send(("ok", [f"{a.host}:{a.port}" for a in agents]))
        _serve(conn, agents)
    except Exception as exc:
        _log.exception("fake fleet worker failed")
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass
    finally:
        for agent in agents:
            agent.stop()
        try:
            conn.send(("stopped", None))
        except OSError:
            pass
        conn.close()
