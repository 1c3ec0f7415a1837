"""FakeFleet: many fake agents at once, in this process or in worker processes.

Every agent has its own key, port and cluster. In-process (the default) the agents are plain
:class:`~obshell_sdk.testing.FakeAgent` objects; with ``processes=True`` groups of agents run
in ``spawn``-ed worker processes, controlled through a pipe per worker (``_fleetcmd.py``).
Either way each agent is reached through a :class:`FleetAgent` with the same methods, and
:meth:`FakeFleet.stop` ends everything the fleet started: agents, threads, processes.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, Optional

from ._agent import FakeAgent
from ._dags import check_faults
from ._fleetcmd import run_command, worker_main


class _Local:
    """The command channel to agents of this process."""

    def __init__(self, agents: Sequence[FakeAgent]) -> None:
        self.agents = list(agents)

    def request(self, command: tuple[Any, ...]) -> Any:
        return run_command(self.agents, command)

    def close(self) -> None:
        for agent in self.agents:
            agent.stop()


class _Remote:
    """The command channel to one worker process (thread-safe: one command at a time)."""

    def __init__(self, process: BaseProcess, conn: Connection, timeout: float) -> None:
        self.process = process
        self.conn = conn
        self.timeout = timeout
        self.lock = threading.Lock()

    def receive(self, timeout: float) -> Any:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"fake fleet worker {self.process.name} did not answer")
        status, value = self.conn.recv()
        if status == "error":
            raise RuntimeError(f"fake fleet worker {self.process.name}: {value}")
        return value

    def request(self, command: tuple[Any, ...]) -> Any:
        with self.lock:
            self.conn.send(command)
            return self.receive(self.timeout)

    def close(self) -> None:
        with self.lock:
            try:
                self.conn.send(("stop",))
                while self.conn.poll(10) and self.conn.recv()[0] != "stopped":
                    pass
            except (OSError, EOFError):
                pass
            self.conn.close()
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class FleetAgent:
    """One agent of a :class:`FakeFleet`; the same methods wherever the agent runs.

    ``target`` is ``"127.0.0.1:PORT"``, ``base_url`` its URL. Results and arguments cross a
    process boundary when the fleet runs ``processes=True``, so they must be picklable.
    """

    def __init__(self, target: str, channel: Any, index: int,
                 local: Optional[FakeAgent] = None) -> None:
        self.target: str = target
        self.base_url: str = local.base_url if local is not None else f"http://{target}"
        self._channel = channel
        self._index = index
        self._local = local

    @property
    def fake(self) -> FakeAgent:
        """The :class:`FakeAgent` itself (in-process fleets only; ``RuntimeError`` otherwise)."""
        if self._local is None:
            raise RuntimeError("this agent runs in a worker process: use call/get/set")
        return self._local

    @property
    def public_key_b64(self) -> str:
        """The agent's current public key, as ``/api/v1/secret`` gives it."""
        return str(self._channel.request(("key", self._index)))

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a public :class:`FakeAgent` method, e.g. ``call("reset_next", 2)``."""
        return self._channel.request(("call", self._index, method, args, kwargs))

    def get(self, name: str) -> Any:
        """Read a public :class:`FakeAgent` attribute or property, e.g. ``get("version")``."""
        return self._channel.request(("get", self._index, name))

    def set(self, name: str, value: Any) -> None:
        """Write a public :class:`FakeAgent` attribute, e.g. ``set("python_ok", False)``."""
        self._channel.request(("set", self._index, name, value))

    def set_faults(self, *, fail_stage: Optional[int] = None, fail_times: int = 1,
                   fail_message: Optional[str] = None, restart_at_stage: Optional[int] = None,
                   restart_new_key_bits: Optional[int] = None,
                   drop_reply_after_create: bool = False) -> None:
        """Faults of the DAGs created from now on, and of the next task-creating reply.

        ``restart_at_stage`` with ``restart_new_key_bits`` restarts the agent with a new key
        when a maintenance DAG starts that stage; ``fail_stage`` fails that stage
        ``fail_times`` times; ``drop_reply_after_create`` drops the next create's reply.
        ``None`` clears a fault.
        """
        check_faults(fail_stage, fail_times, restart_at_stage)  # here, not in the worker
        faults = {"fail_stage": fail_stage, "fail_times": fail_times,
                  "fail_message": fail_message, "restart_at_stage": restart_at_stage,
                  "restart_new_key_bits": restart_new_key_bits,
                  "drop_reply_after_create": drop_reply_after_create}
        self._channel.request(("faults", self._index, faults))

    def request_counts(self) -> dict[tuple[str, str], int]:
        """How many requests the agent received, by (method, path without query)."""
        counts: dict[tuple[str, str], int] = self._channel.request(("counts", self._index))
        return counts

    def dag_states(self) -> dict[str, dict[str, Any]]:
        """Each DAG by generic id: name, state, operator, stage, max_stage, finished_at."""
        states: dict[str, dict[str, Any]] = self._channel.request(("dags", self._index))
        return states

    def __repr__(self) -> str:
        return f"FleetAgent({self.target})"


class FakeFleet:
    """``n`` fake agents, each its own key, port and cluster, for many-agent tests and benchmarks.

    ``FakeFleet(n, **agent_kwargs)`` passes ``agent_kwargs`` to every
    :class:`~obshell_sdk.testing.FakeAgent` (``port`` is always chosen by the system). Use it
    as a context manager or call :meth:`start` / :meth:`stop`; ``targets`` lists
    ``"127.0.0.1:PORT"``, ``agents`` the :class:`FleetAgent` handles, ``fleet[target]`` one.

    ``processes=True`` runs the agents in worker processes (``per_process`` agents each;
    default: one worker per CPU), for benchmarks with many agents; their ``agent_kwargs``
    must then be picklable, and a script that starts such a fleet needs the usual
    ``if __name__ == "__main__":`` guard of :mod:`multiprocessing`'s ``spawn``. ``timeout``
    bounds the start of a worker and each command.
    """

    def __init__(self, n: int, *, processes: bool = False, per_process: Optional[int] = None,
                 timeout: float = 60.0, **agent_kwargs: Any) -> None:
        if n < 1:
            raise ValueError(f"a fleet needs at least one agent, not {n}")
        self.n: int = n
        self.processes: bool = processes
        self.per_process: int = per_process or math.ceil(n / min(n, os.cpu_count() or 1))
        self.timeout: float = timeout
        self.agent_kwargs: dict[str, Any] = {**agent_kwargs, "port": 0}
        self.agents: list[FleetAgent] = []
        self._channels: list[Any] = []
        self._lock = threading.Lock()

    @property
    def targets(self) -> list[str]:
        """``"127.0.0.1:PORT"`` of every agent, in start order."""
        return [a.target for a in self.agents]

    def __getitem__(self, target: str) -> FleetAgent:
        """The agent at ``target`` (``KeyError`` if none)."""
        for agent in self.agents:
            if agent.target == target:
                return agent
        raise KeyError(target)

    def __iter__(self) -> Iterator[FleetAgent]:
        return iter(list(self.agents))

    def __len__(self) -> int:
        return len(self.agents)

    def start(self) -> FakeFleet:
        """Start every agent (a no-op when started); on any error, stop what started and raise."""
        with self._lock:
            if self._channels:
                return self
            try:
                if self.processes:
                    self._start_workers()
                else:
                    self._start_local()
            except BaseException:
                self._stop_locked()
                raise
        return self

    def _start_local(self) -> None:
        local = _Local([])
        self._channels.append(local)
        for index in range(self.n):
            agent = FakeAgent(**self.agent_kwargs)
            local.agents.append(agent)
            agent.start()
            self.agents.append(FleetAgent(f"{agent.host}:{agent.port}", local, index, agent))

    def _start_workers(self) -> None:
        context = multiprocessing.get_context("spawn")
        sizes = [min(self.per_process, self.n - i) for i in range(0, self.n, self.per_process)]
        for number, size in enumerate(sizes):
            parent, child = context.Pipe()
            process = context.Process(target=worker_main, args=(child, size, self.agent_kwargs),
                                      name=f"fake-fleet-{number}", daemon=True)
            try:
                process.start()
            except BaseException:
                parent.close()
                raise
            finally:
                child.close()
            self._channels.append(_Remote(process, parent, self.timeout))
        for channel in self._channels:
            targets = channel.receive(self.timeout)
            self.agents += [FleetAgent(t, channel, i) for i, t in enumerate(targets)]

    def stop(self) -> None:
        """Stop every agent and worker process; returns once all of them are gone."""
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        channels, self._channels = self._channels, []
        self.agents = []
        first: Optional[BaseException] = None
        for channel in channels:
            try:
                channel.close()
            except BaseException as exc:  # close the others first, then report it
                first = first or exc
        if first is not None:
            raise first

    def __enter__(self) -> FakeFleet:
        return self.start()

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = "processes" if self.processes else "in-process"
        return f"FakeFleet({self.n} agents, {where}, {len(self.agents)} running)"
