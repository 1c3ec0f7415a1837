"""Pytest plugin providing the ``fake_agent`` fixture.

Enable it with ``pytest_plugins = ["obshell_sdk.testing.pytest_plugin"]``::

    def test_info(fake_agent):
        import requests
        r = requests.get(fake_agent.base_url + "/api/v1/info")
        assert r.json()["data"]["identity"] == "CLUSTER AGENT"
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import FakeAgent


@pytest.fixture
def fake_agent() -> Iterator[FakeAgent]:
    """A started :class:`FakeAgent` with default settings, stopped after the test."""
    agent = FakeAgent().start()
    try:
        yield agent
    finally:
        agent.stop()
