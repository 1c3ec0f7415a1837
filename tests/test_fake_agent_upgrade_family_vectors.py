"""Replay the recorded upgrade-family exchanges against FakeAgent and compare.

The vectors (``obshell-wire-upgrade-family.jsonl``) come from a recorder set up as community
edition, 3 zones, current build 4.3.5.0-100000202024123117 (PROTOCOL-upgrade-family.md §9).
They are read from ``tests/vectors``, where the recorded file is kept.

Replay rules (the recorder polled between the recorded lines without recording every poll):

* a "dag detail at end" line is replayed once the DAG has ended, so the fake is advanced to
  its end first (``advance_dag``), then the recorded GET is sent;
* the recorder kept its versions after an upgrade succeeded (``adopt_target_version=False``);
* ``task_logs`` of sub-tasks that have not run: ``[]`` in the vectors, ``null`` in obshell
  (PROTOCOL.md §9.3) and in the fake; accepted for PENDING sub-tasks;
* ``-stage-seconds 0`` means poll-driven DAGs; ``-require-package`` is ``require_packages``.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import time
from collections.abc import Iterator
from typing import Any, Optional

import pytest
from vectorlib import compare_replies, private_key_der, scenarios, vectors

from obshell_sdk.testing import FakeAgent

NAME = "obshell-wire-upgrade-family.jsonl"
OB_VERSION = "4.3.5.0-100000202024123117"



def agent_for(flags: list[str]) -> FakeAgent:
    """A fake agent set up as the recorder was for ``server_flags``."""
    kw: dict[str, Any] = {"private_key": private_key_der(), "release": "", "edition": "community",
                          "zones": 3, "ob_version": OB_VERSION, "adopt_target_version": False}
    it: Iterator[str] = iter(flags)
    for flag in it:
        if flag == "-require-package":
            kw["require_packages"] = True
            continue
        value = next(it)
        if flag == "-password":
            kw["password"] = value
        elif flag == "-stages-per-get":
            kw["stages_per_poll"] = int(value)
        elif flag == "-stage-seconds":
            kw["stage_seconds"] = float(value) or None
        else:  # pragma: no cover - a new flag in the vectors
            raise AssertionError(f"unknown server flag {flag}")
    return FakeAgent(**kw)


def replay(agent: FakeAgent, vec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Send the recorded request byte for byte (multipart bodies from ``body_b64``)."""
    req = vec["request"]
    agent.set_clock_offset(vec["client_now_unix"] - time.time())
    if req.get("body_b64") is not None:
        body: Optional[bytes] = base64.b64decode(req["body_b64"])
    else:
        body = req["body"].encode() if req["body"] is not None else None
    conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=10)
    try:
        conn.request(req["method"], req["uri"], body=body, headers=req["headers"])
        resp = conn.getresponse()
        raw = resp.read()
        assert resp.getheader("Content-Type") == "application/json"
        return resp.status, json.loads(raw)
    finally:
        conn.close()


def _run_to_end(agent: FakeAgent, vec: dict[str, Any]) -> None:
    data = vec["response"]["body"].get("data") or {}
    if vec["request"]["method"] == "GET" and data.get("state") in ("SUCCEED", "FAILED"):
        dag = agent.dag(data["id"])
        for _ in range(200):
            if dag.state in ("SUCCEED", "FAILED"):
                break
            agent.advance_dag(dag.generic_id)


SCENARIOS = scenarios(NAME)


@pytest.mark.parametrize("scenario,vecs", SCENARIOS, ids=[s for s, _ in SCENARIOS])
def test_replay_scenario(scenario: str, vecs: list[dict[str, Any]]) -> None:
    with agent_for(vecs[0]["server_flags"]) as agent:
        for vec in vecs:
            _run_to_end(agent, vec)
            status, body = replay(agent, vec)
            expected = vec["response"]
            where = f"{scenario}/{vec['name']}"
            assert status == expected["status"], f"{where}: {body}"
            compare_replies(expected["body"], body, where)
            if expected["body"]["traceId"] == "":
                assert body["traceId"] == "", where
            else:
                assert re.fullmatch(r"[0-9a-f]{16}", body["traceId"]), where


def test_every_vector_is_replayed() -> None:
    assert sum(len(v) for _, v in SCENARIOS) == 28


def test_recorded_file_digest_is_what_the_header_carries() -> None:
    """``plaintext.file_sha256`` is the hex digest of the file part the recorder sent."""
    import hashlib

    from obshell_sdk.testing._pkghandlers import multipart_file

    uploads = [v for v in vectors(NAME) if v["request"]["uri"] == "/api/v1/package"]
    assert len(uploads) == 3
    for vec in uploads:
        req = vec["request"]
        _, content, _ = multipart_file(base64.b64decode(req["body_b64"]),
                                       req["headers"]["Content-Type"])
        assert content is not None
        digest = vec["plaintext"]["file_sha256"]
        if vec["response"]["status"] == 200:
            assert hashlib.sha256(content).hexdigest() == digest


def test_recorded_upload_is_recorded_with_its_clear_body() -> None:
    vec = next(v for v in vectors(NAME) if v["name"] == "package upload (/api/v1/package) ok")
    with agent_for(vec["server_flags"]) as agent:
        status, _ = replay(agent, vec)
        (rec,) = agent.requests
        assert status == 200 and rec.auth_kind == "v2" and rec.body_json is None
        assert rec.body_bytes == base64.b64decode(vec["request"]["body_b64"])
        assert agent.packages[0][0] == "obshell-4.3.1.0-20250101.el7.x86_64.rpm"
