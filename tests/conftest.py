"""Suite-wide fixtures: the fake agent, and a redaction check over everything the SDK logged."""

from __future__ import annotations

import logging
import traceback

import pytest

pytest_plugins = ["obshell_sdk.testing.pytest_plugin"]

#: Every password the suite hands to the SDK. None of them may ever appear in what it logs.
PASSWORD = "Root-Pa55-7f3c"
AGENT_PASSWORD = "Agent-Pa55-91ab"
SECRETS = (PASSWORD, AGENT_PASSWORD)


class _Recorder(logging.Handler):
    """Keeps every record the SDK logs during the whole run, formatted with tracebacks."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        self.lines.append(f"{record.name}: {text}")


_RECORDER = _Recorder()


def pytest_sessionstart(session: pytest.Session) -> None:
    logger = logging.getLogger("obshell_sdk")
    logger.addHandler(_RECORDER)
    logger.setLevel(logging.DEBUG)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = [line for line in _RECORDER.lines if any(s in line for s in SECRETS)]
    logging.getLogger("obshell_sdk").removeHandler(_RECORDER)
    if leaks:
        session.exitstatus = 1
        example = leaks[0][:200]
        for secret in SECRETS:
            example = example.replace(secret, "<PASSWORD>")
        raise pytest.UsageError(
            f"a password appeared in {len(leaks)} SDK log records, e.g. {example!r}"
        )


@pytest.fixture
def sdk_log_lines() -> list[str]:
    """Everything the SDK logged so far in this run (for tests that check the recorder)."""
    return _RECORDER.lines
