"""A lost create reply's lookup reads the agent's whole task history within its own time.

When the lists held no task of the call's name, the lookup reads the history once (a
pre-check that ended already; an upgrade no longer the last maintenance task): a hung
history cannot stretch the lookup past its minute (:data:`RECOVERY_SECONDS`), however long
the client's read timeout. Real sockets on 127.0.0.1: a :class:`RawServer` answering like
obshell, whose history route hangs.
"""

from __future__ import annotations

import time

import pytest
from conftest import PASSWORD
from rawserver import RawReply

from obshell_sdk import ObshellClient, OutcomeUnknownError, PasswordAuth

VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"
#: A reply cut after its status line: the POST went out, its reply was lost.
CUT = RawReply(200, wire=[b"HTTP/1.1 200 OK\r\n"], close=True)
HISTORY = "/api/v1/task/dags/ob"


@pytest.mark.parametrize(("create", "path"), [
    ("upgrade_agent", "/api/v1/agent/upgrade"),  # the locked path reads the history too
    ("check_agent_upgrade", "/api/v1/agent/upgrade/check"),
])
def test_a_hung_history_cannot_stretch_a_lost_create_s_lookup(raw, short_recovery, create,
                                                              path):
    server, agent = raw
    agent.route("POST", path, lambda request: CUT)
    agent.route("GET", HISTORY, lambda request: RawReply(200, wire=[20.0], close=True))
    with ObshellClient(server.host, server.port, auth=PasswordAuth(PASSWORD),
                       timeout=(2, 8)) as client:
        client.unfinished_dags()  # dialect and key known: what follows is the call alone
        started = time.monotonic()
        with pytest.raises(OutcomeUnknownError):
            getattr(client, create)(VERSION, RELEASE)
        elapsed = time.monotonic() - started
    assert [r.target.partition("?")[0] for r in server.requests].count(HISTORY) == 1
    assert [r.method for r in server.requests if r.target == path] == ["POST"]
    # the listing before the POST and the POST are instant: the lookup's 1 s, and slack
    assert elapsed < 1.0 + 2.0, f"a 1 s lookup took {elapsed:.1f} s"
