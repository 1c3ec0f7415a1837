"""A measured client process: one SDK (ours or the official one) and the floor.

    client.py ours|official|floor

``ours`` runs with the repo's venv and ``obshell_sdk``; ``official`` with the venv of PyPI
``obshell==0.0.9`` (it never imports ``obshell_sdk``); ``floor`` with the repo's venv but
without ``obshell_sdk``: a bare poller at the 2-polls-a-second cap. Only the small classes
below differ; the rest is shared. Prints ``{"pid"}`` (and, for ours, ``"sdk"``: the
``obshell_sdk/__init__.py`` it imported), then answers one JSON line per command:

``{"op": "calls", "mode": "sdk"|"floor"|"work", "port": P, "dag": ID, "n": N}``
    N calls of get_dag (details on) in a row -> ``{"wall", "cpu"}`` seconds for all N.
``{"op": "follow", "timeout": s, "tasks": [{"port", "dag", "warm", "at"}, ...]}``
    one client per agent (kept for later commands) and one thread per task; each client
    first gets DAG ``warm`` (learns the auth dialect and key, opens its connection). Then
    answers ``{"ready": true}`` and reads ``{"base": t}``: at ``base + at`` (``time.time()``)
    each thread follows ``dag`` with the SDK's own waiting call -> ``{"runs": [{"late",
    "noticed"}, ...]}``.

The floor is a bare ``requests.Session`` (``trust_env`` off, as our client's session) that
re-sends one request signed here, once, with a 24-hour lifetime: no signing and no JSON per
call; only the status is checked. The ``work`` mode (ours' process only) is the floor doing
no more than the issue has every get_dag do: sign afresh, read the reply capped, parse its
JSON and build a ``DagDetail`` with the SDK's one decoder; none of the SDK's other code.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

PASSWORD = "bench-password"
HOST = "127.0.0.1"


class Ours:
    """obshell_sdk, through its public API."""

    def __init__(self, port: int) -> None:
        from obshell_sdk import ObshellClient, PasswordAuth

        self.client = ObshellClient(HOST, port, auth=PasswordAuth(PASSWORD))

    def get_dag(self, dag_id: str) -> object:
        return self.client.get_dag(dag_id)

    def wait(self, dag_id: str, timeout: float) -> None:
        self.client.task(dag_id).wait(timeout=timeout, progress=False)


class Official:
    """PyPI obshell 0.0.9: ClientV1.get_dag, and wait_dag_succeed (a poll every 3 s)."""

    def __init__(self, port: int) -> None:
        from obshell import ClientV1
        from obshell.auth.password import PasswordAuth

        self.client = ClientV1(HOST, port, auth=PasswordAuth(PASSWORD))

    def get_dag(self, dag_id: str) -> object:
        return self.client.get_dag(dag_id)

    def wait(self, dag_id: str, timeout: float) -> None:  # it has no deadline of its own
        self.client.wait_dag_succeed(dag_id)


class Floor:
    """The floor for waiting: a bare ``requests.Session`` re-sending one GET of the DAG.

    Signed once per wait, sent when called and then 0.5 s after each reply (the cap of two
    polls a second, as the agent sees them), until the reply's state is SUCCEED or FAILED.
    No SDK; the reply's JSON is parsed only to read the state: what any poller at the cap at
    a fixed pace sees.
    """

    PERIOD = 0.5

    def __init__(self, port: int) -> None:
        import requests

        self.session = requests.Session()
        self.session.trust_env = False
        self.base = f"http://{HOST}:{port}"
        self.key = self.session.get(self.base + "/api/v1/secret",
                                    timeout=10).json()["data"]["public_key"]

    def _state(self, url: str, headers: dict[str, str]) -> str:
        reply = self.session.get(url, headers=headers, timeout=10)
        return str(reply.json()["data"]["state"])

    def _signed(self, dag_id: str) -> tuple[str, dict[str, str]]:
        uri = f"/api/v1/task/dag/{dag_id}?show_details=true"
        return self.base + uri, {"X-OCS-Header": sign_v2(self.key, uri, lifetime=86400)}

    def get_dag(self, dag_id: str) -> object:
        return self._state(*self._signed(dag_id))

    def wait(self, dag_id: str, timeout: float) -> None:
        url, headers = self._signed(dag_id)
        start = time.monotonic()
        while self._state(url, headers) not in ("SUCCEED", "FAILED"):
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"DAG {dag_id} still running after {timeout} s")
            time.sleep(self.PERIOD)


def sign_v2(public_key_b64: str, uri: str, lifetime: float) -> str:
    """An ``X-OCS-Header`` value: RSA PKCS#1 v1.5 of the header JSON, in k-11 byte blocks."""
    return signer(public_key_b64)(uri, lifetime)


def signer(public_key_b64: str) -> Callable[[str, float], str]:
    """``sign_v2`` with the agent's key read once: ``(uri, lifetime) -> X-OCS-Header``."""
    from Crypto.Cipher import PKCS1_v1_5
    from Crypto.PublicKey import RSA

    key = RSA.import_key(base64.b64decode(public_key_b64))
    cipher, step = PKCS1_v1_5.new(key), key.size_in_bytes() - 11

    def sign(uri: str, lifetime: float) -> str:
        plain = json.dumps({"Auth": PASSWORD, "Ts": str(int(time.time() + lifetime)),
                            "Uri": uri, "Keys": None}, separators=(",", ":")).encode()
        blocks = [cipher.encrypt(plain[i:i + step]) for i in range(0, len(plain), step)]
        return base64.b64encode(b"".join(blocks)).decode("ascii")

    return sign


def sdk_call(sdk: Any, port: int, dag_id: str) -> Callable[[], object]:
    client = sdk(port)
    return lambda: client.get_dag(dag_id)


def floor_call(sdk: Any, port: int, dag_id: str) -> Callable[[], None]:
    import requests

    session = requests.Session()
    session.trust_env = False
    base = f"http://{HOST}:{port}"
    key = session.get(base + "/api/v1/secret", timeout=10).json()["data"]["public_key"]
    uri = f"/api/v1/task/dag/{dag_id}?show_details=true"
    url, headers = base + uri, {"X-OCS-Header": sign_v2(key, uri, lifetime=86400)}

    def call() -> None:
        status = session.get(url, headers=headers).status_code
        if status != 200:
            raise RuntimeError(f"floor request answered {status}")

    return call


def work_call(sdk: Any, port: int, dag_id: str) -> Callable[[], object]:
    """The floor plus the work every get_dag must do, and nothing of the SDK but its decoder."""
    import requests

    from obshell_sdk import DagDetail

    session = requests.Session()
    session.trust_env = False
    base = f"http://{HOST}:{port}"
    sign = signer(session.get(base + "/api/v1/secret", timeout=10).json()["data"]["public_key"])
    uri = f"/api/v1/task/dag/{dag_id}?show_details=true"

    def call() -> object:
        headers = {"X-OCS-Header": sign(uri, 60)}  # signed per call, as the SDK signs
        reply = session.get(base + uri, headers=headers, timeout=10, stream=True)
        body, cap = bytearray(), 16 * 1024 * 1024  # capped as it is read, as the SDK reads
        for chunk in reply.iter_content(64 * 1024):
            body += chunk
            if len(body) > cap:
                raise RuntimeError("reply over the cap")
        envelope = json.loads(body)
        if reply.status_code != 200 or not envelope["successful"]:
            raise RuntimeError(f"work request answered {reply.status_code}")
        return DagDetail.from_json(envelope["data"])

    return call


def follow(sdk: Any, cmd: dict[str, Any], made: dict[int, Any]) -> dict[str, Any]:
    tasks = cmd["tasks"]
    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        for task in tasks:
            if task["port"] not in made:
                made[task["port"]] = sdk(task["port"])
        clients = [made[t["port"]] for t in tasks]
        list(pool.map(lambda c, t: c.get_dag(t["warm"]), clients, tasks))
        print(json.dumps({"ready": True}), flush=True)
        base = json.loads(sys.stdin.readline())["base"]

        def one(client: Any, task: dict[str, Any]) -> dict[str, Any]:
            start = base + task["at"]
            time.sleep(max(0.0, start - time.time()))
            late = time.time() - start
            try:
                client.wait(task["dag"], cmd["timeout"])
            except Exception as exc:  # reported, not raised: the other threads go on
                return {"late": late, "error": repr(exc)}
            return {"late": late, "noticed": time.time()}

        return {"runs": list(pool.map(one, clients, tasks))}


def main(sdk_name: str) -> None:
    sdk = {"ours": Ours, "official": Official, "floor": Floor}[sdk_name]
    calls: dict[tuple[str, int, str], Callable[[], object]] = {}
    followers: dict[int, Any] = {}
    hello: dict[str, Any] = {"pid": os.getpid()}
    if sdk_name == "ours":  # which tree this process measures (run.py checks a baseline's)
        import obshell_sdk

        hello["sdk"] = obshell_sdk.__file__
    print(json.dumps(hello), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "calls":
            key = (cmd["mode"], cmd["port"], cmd["dag"])
            if key not in calls:
                make = {"floor": floor_call, "work": work_call}.get(cmd["mode"], sdk_call)
                calls[key] = make(sdk, cmd["port"], cmd["dag"])
            call = calls[key]
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for _ in range(cmd["n"]):
                call()
            answer = {"wall": time.perf_counter() - wall0, "cpu": time.process_time() - cpu0}
        elif cmd["op"] == "follow":
            answer = follow(sdk, cmd, followers)
        else:
            answer = {"error": f"unknown op {cmd['op']!r}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
