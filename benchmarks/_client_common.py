"""What both measured client processes share (stdlib only: the official SDK's venv imports it).

Constants, the JSON line each process prints, a timed loop, and the command line that maps
``percall|wait|many|memory|baseline`` to a client module's functions.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable
from typing import Any

PASSWORD = "bench-password"
VERSION, RELEASE = "4.3.1.0", "1.el7"


def emit(payload: dict[str, Any]) -> None:
    payload["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(payload), flush=True)


def timed(calls: int, call: Callable[[], object]) -> dict[str, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        call()
    return {"wall": time.perf_counter() - wall0, "cpu": time.process_time() - cpu0}


def dispatch(argv: list[str], modes: dict[str, Callable[..., None]]) -> None:
    """Run the mode named by ``argv[0]`` with its arguments converted."""
    mode, args = argv[0], argv[1:]
    if mode == "percall":
        modes["percall"](int(args[0]), args[1], int(args[2]), int(args[3]))
    elif mode == "wait":
        modes["wait"](int(args[0]), int(args[1]), float(args[2]))
    elif mode == "many":
        modes["many"](int(args[0]), [int(p) for p in args[1:]])
    elif mode == "memory":
        modes["memory"](int(args[0]))
    elif mode == "baseline":
        import requests  # noqa: F401

        emit({})
    else:
        raise SystemExit(f"unknown mode {mode!r}")
