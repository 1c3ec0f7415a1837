"""CPU cost of the steps our get_dag adds on top of the floor, each timed alone (no profiler).

    python3 benchmarks/breakdown.py PORT DAG_ID [REPEAT]

Prints one JSON line: microseconds of client CPU per call for each step (median of 5 batches).
The steps are what ``ObshellClient.get_dag`` does besides sending the request: sign the
header (RSA), build the per-call headers, decode the reply (JSON + envelope), build the typed
DagDetail. The floor's ``session.get`` vs handing a prepared request to the adapter (what
our client does with its own session) shows what ``Session.request``'s machinery costs.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from obshell_sdk import DagDetail, ObshellClient, PasswordAuth

PASSWORD = "bench-password"


def cpu_per_call(repeat: int, step: Callable[[], object]) -> float:
    batches = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(repeat):
            step()
        batches.append((time.process_time() - start) / repeat)
    return statistics.median(batches) * 1e6


def main() -> None:
    port, dag_id = int(sys.argv[1]), sys.argv[2]
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    client = ObshellClient("127.0.0.1", port, auth=PasswordAuth(PASSWORD))
    client.get_dag(dag_id)
    auth = client.auth
    assert auth is not None
    uri = f"/api/v1/task/dag/{dag_id}?show_details=true"
    url = client.base_url + uri
    headers = dict(auth.sign(client.agent, uri, None, time.time()).headers)
    session = requests.Session()
    session.trust_env = False
    content = session.get(url, headers=headers).content
    data = json.loads(content)["data"]

    def direct() -> None:
        resp = client._send_direct("GET", url, None, dict(headers), (5.0, 60.0))
        resp.content  # noqa: B018 - reading the body is the point
        resp.close()

    steps: dict[str, Callable[[], object]] = {
        "full get_dag (for reference)": lambda: client.get_dag(dag_id),
        "floor: session.get(url, headers)": lambda: session.get(url, headers=headers),
        "our direct path: prepared request to the adapter, read": lambda: direct(),
        "PasswordAuth.sign (RSA-1024 PKCS#1 v1.5 + base64)": lambda: auth.sign(
            client.agent, uri, None, time.time()),
        "trace id os.urandom(8).hex()": lambda: os.urandom(8).hex(),
        "json.loads(reply)": lambda: json.loads(content),
        "DagDetail.from_json(data) (typed model, 9 nodes)": lambda: DagDetail.from_json(data),
    }
    result = {name: round(cpu_per_call(repeat, step), 1) for name, step in steps.items()}
    client.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
