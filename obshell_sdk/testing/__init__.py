"""A fake obshell agent for tests: a real HTTP server on 127.0.0.1 that answers like obshell.

It speaks the wire protocol of the real agent (RSA-encrypted auth headers,
AES-encrypted bodies, obshell's envelope, errCodes and DAG JSON), so any correct
obshell client works against it. It never imports the client side of
:mod:`obshell_sdk`.

Example::

    import requests
    from obshell_sdk.testing import FakeAgent

    with FakeAgent(password="Root@123", stages_per_poll=2, fail_stage=3) as agent:
        info = requests.get(agent.base_url + "/api/v1/info").json()["data"]
        assert info["identity"] == "CLUSTER AGENT"
        # ... sign and POST /api/v1/agent/upgrade with any client, then poll
        # GET /api/v1/task/dag/<id>?show_details=true: each GET advances 2 stages,
        # stage 3 fails once; POST {"operator": "RETRY"} resumes it.
        agent.reset_next(1)          # next request: connection reset, no answer
        agent.hang_next(1, seconds=5)  # next task request: read, then no answer for 5 s
        agent.pause(2.0)             # refuse connections for 2 s (agent "restart")
        assert [r.status for r in agent.requests][:1] == [200]

Faults hit every endpoint where they plausibly happen: ``reset_next``, ``truncate_next``,
``hang_next`` and ``fail_next`` take a ``path_prefix`` (``fail_next`` a ``method`` too: an
operator's POST, not the read of its task); ``drop_reply_after_create`` hits the
next task-creating POST (``/api/v1/agent/upgrade``, ``/api/v1/agent/upgrade/check``,
``/api/v1/ob/upgrade`` and ``/api/v1/ob/upgrade/check``), and ``drop_reply_after_next``
(a ``path_prefix`` and a ``method``) any request that succeeds: it is carried out, its reply
lost (an operator applied, a package stored); ``edit_data_next`` (the same) answers such a
request with other data, an obshell reply the SDK cannot read.

The upgrade family (OceanBase upgrade and check, package uploads, inventory and deletion,
parameter backup/restore, environment check) answers as obshell's own handlers do; build
the packages to upload with :func:`build_rpm`::

    rpm = build_rpm("oceanbase-ce", "4.3.5.1", "101000012025052815.el7")
    with FakeAgent(ob_version="4.3.5.0-100000202024123117", require_packages=True) as agent:
        ...  # POST it to /api/v1/package with X-OCS-File-SHA256, then POST /api/v1/ob/upgrade

:class:`FakeFleet` runs many agents at once, in this process or in worker processes.

Timing: ``FakeAgent(stage_durations=[0.1, 2.0, 0.1])`` makes DAGs time-driven with stage 1
lasting 0.1 s, stage 2 lasting 2 s and every later stage 0.1 s; ``FakeDag.finished_at`` is
the wall-clock ``time.time()`` at which the agent marked a DAG SUCCEED or FAILED.

With pytest, enable the fixture ``fake_agent`` with
``pytest_plugins = ["obshell_sdk.testing.pytest_plugin"]``.
"""

from __future__ import annotations

from ._agent import FakeAgent
from ._dagmodel import FakeDag, FakeNode, FakeSubTask
from ._fleet import FakeFleet, FleetAgent
from ._record import RecordedRequest
from ._rpmbuild import build_rpm

__all__ = ["FakeAgent", "FakeDag", "FakeFleet", "FakeNode", "FakeSubTask", "FleetAgent",
           "RecordedRequest", "build_rpm"]
