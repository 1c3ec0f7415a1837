"""Suite-wide fixtures: the fake agent, test certificates, and a redaction check over logs."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import pytest

import obshell_sdk
import obshell_sdk._lookup

if TYPE_CHECKING:
    from obshell_sdk.testing import FakeAgent

pytest_plugins = ["obshell_sdk.testing.pytest_plugin"]

#: Every password the suite hands to the SDK. None of them may ever appear in what it logs.
PASSWORD = "Root-Pa55-7f3c"
AGENT_PASSWORD = "Agent-Pa55-91ab"
SECRETS = (PASSWORD, AGENT_PASSWORD)
#: The root of the obshell_sdk under test (the checkout, or site-packages for an sdist's tests).
ROOT = Path(obshell_sdk.__file__).resolve().parents[1]


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


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def proxy_from_env(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Clients made from now on send through the proxy at ``url``, read from the environment.

    It is set as requests reads it (HTTP_PROXY, HTTPS_PROXY); the variables that would bypass
    or replace it (NO_PROXY, ALL_PROXY, the lowercase ones) are cleared.
    """
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.setenv("HTTPS_PROXY", url)


def sigterm_while_following(agent: FakeAgent, *args: str, task_id: Optional[str] = None,
                            ready: Optional[Callable[[], bool]] = None) -> tuple[int, str, str]:
    """Run ``obshell-sdk --host H --port P --json ARGS`` on ``agent``, and SIGTERM it once it
    has read the task it follows twice: the first read's reply was taken in (the task is known
    to exist). The task is ``task_id``, else the first DAG the agent holds (the command's own).
    ``ready``, when given, says when to send it instead.

    Returns the exit code, stdout and stderr; the process never outlives the call.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSHELL_")}
    env.update(PYTHONPATH=str(ROOT), OBSHELL_PASSWORD=PASSWORD)
    proc = subprocess.Popen(
        [sys.executable, "-m", "obshell_sdk", "--host", agent.host, "--port", str(agent.port),
         "--json", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True)

    def reads() -> int:
        followed = task_id if task_id is not None else next(iter(agent.dags), None)
        if followed is None:  # the command has not made its task yet
            return 0
        return len(agent.requests_to(f"/api/v1/task/dag/{followed}", "GET"))

    try:
        deadline = time.monotonic() + 30
        while not (ready() if ready is not None else reads() >= 2):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    return proc.returncode, stdout, stderr


@pytest.fixture
def raw():
    """A raw agent (:class:`RawServer` and the :class:`RawAgent` that routes its replies)."""
    from rawserver import RawAgent, RawServer

    with RawServer() as server:
        yield server, RawAgent(server)


@pytest.fixture
def short_recovery(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lost create's lookup gets 1 s, not its minute."""
    monkeypatch.setattr(obshell_sdk._lookup, "RECOVERY_SECONDS", 1.0)


@pytest.fixture
def sdk_log_lines() -> list[str]:
    """Everything the SDK logged so far in this run (for tests that check the recorder)."""
    return _RECORDER.lines


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    d = tmp_path_factory.mktemp("pki")
    # Python 3.13 verifies strictly (VERIFY_X509_STRICT): the CA needs its key usage, and
    # leaf certificates their authority key id, as a real PKI would give them.
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    (d / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", f"{name}.pem",
                 cwd=d)
    return d
