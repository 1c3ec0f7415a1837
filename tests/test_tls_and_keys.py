"""HTTPS with a private CA, mutual TLS, and obshell's 512-bit keys (and the switch to 1024)."""

from __future__ import annotations

import base64
import ssl

import pytest
from conftest import PASSWORD

from obshell_sdk import ConnectError, DagOutcome, ObshellClient, PasswordAuth, TransportError
from obshell_sdk.testing import FakeAgent

VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"


def _server_context(pki, *, require_client_cert=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki / "server.pem", pki / "server.key")
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki / "ca.pem")
    return ctx


def test_https_with_a_private_ca(pki):
    with FakeAgent(password=PASSWORD, tls=_server_context(pki)) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD), https=True,
                          verify=str(pki / "ca.pem")) as client:
        assert client.base_url.startswith("https://")
        detail = client.upgrade_agent(VERSION, RELEASE).result(timeout=30, poll_interval=0.01)
        assert detail.outcome is DagOutcome.SUCCEEDED


def test_certificate_is_verified_by_default(pki):
    with FakeAgent(password=PASSWORD, tls=_server_context(pki)) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD),
                          https=True) as client:
        with pytest.raises(ConnectError) as info:
            client.info()
        assert "TLS" in str(info.value) and "verify=" in str(info.value)
        assert agent.requests == []


def test_mutual_tls(pki):
    ctx = _server_context(pki, require_client_cert=True)
    with FakeAgent(password=PASSWORD, tls=ctx) as agent:
        with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD), https=True,
                           verify=str(pki / "ca.pem"),
                           cert=(str(pki / "client.pem"), str(pki / "client.key"))) as client:
            assert client.info().identity == "CLUSTER AGENT"
        with ObshellClient(agent.host, agent.port, auth=None, https=True,
                           verify=str(pki / "ca.pem")) as anonymous, \
                pytest.raises(TransportError):
            anonymous.info()


def test_plain_http_to_a_tls_agent_is_a_transport_error(pki):
    with FakeAgent(password=PASSWORD, tls=_server_context(pki)) as agent, \
            ObshellClient(agent.host, agent.port, auth=None, timeout=5) as client:
        with pytest.raises(TransportError):
            client.info()


def test_512_bit_agent_key_then_1024_after_restart():
    """obshell up to 4.4.1 has 512-bit keys (53-byte RSA chunks); an upgrade brings 1024."""
    with FakeAgent(password=PASSWORD, key_bits=512, stage_seconds=0.05, restart_at_stage=7,
                   restart_seconds=0.5, restart_new_key_bits=1024) as agent, \
            ObshellClient(agent.host, agent.port,
                          auth=PasswordAuth(PASSWORD, min_key_bits=512)) as client:
        task = client.upgrade_agent(VERSION, RELEASE)
        assert task.result(timeout=60).outcome is DagOutcome.SUCCEEDED
        # Each header is whole RSA blocks of the key it was made for: 64 bytes, then 128.
        post = agent.requests_to("/api/v1/agent/upgrade", "POST")[0]
        polls = [r for r in agent.requests if r.status == 200 and r.uri.startswith("/api/v1/task")]
        first, last = (base64.b64decode(r.headers["X-OCS-Header"]) for r in (post, polls[-1]))
        assert len(first) % 64 == 0 and len(first) % 128 != 0
        assert len(last) % 128 == 0 and agent.public_key_b64 != ""
        codes = [r.err_code for r in agent.requests if r.err_code]
        assert codes.count("Security.Authentication.Header.DecryptFailed") <= 1


def test_given_session_keeps_its_verify_setting(pki):
    import requests

    session = requests.Session()
    session.verify = str(pki / "ca.pem")
    with FakeAgent(password=PASSWORD, tls=_server_context(pki)) as agent:
        client = ObshellClient(agent.host, agent.port, auth=None, https=True, session=session)
        assert client.info().identity == "CLUSTER AGENT"  # verified with the session's CA
        with pytest.raises(ConnectError, match="TLS"):
            ObshellClient(agent.host, agent.port, auth=None, https=True).info()


def test_a_ca_bundle_without_https_is_refused_before_anything_is_sent(tmp_path):
    """A CA bundle means "verify the agent's HTTPS"; without https it would send the password
    in plain HTTP, verified by nothing."""
    from obshell_sdk import InvalidArgumentError

    bundle = tmp_path / "ca.pem"
    bundle.write_text("not read\n")
    with FakeAgent(password=PASSWORD) as agent:
        with pytest.raises(InvalidArgumentError) as info:
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD),
                          verify=str(bundle))
        assert info.value.argument == "verify" and "https=True" in str(info.value)
        env = {"OBSHELL_HOST": agent.host, "OBSHELL_PORT": str(agent.port),
               "OBSHELL_PASSWORD": PASSWORD, "OBSHELL_CA_BUNDLE": str(bundle)}
        with pytest.raises(InvalidArgumentError) as info:
            ObshellClient.from_env(env)
        assert info.value.argument == "OBSHELL_CA_BUNDLE" and "OBSHELL_HTTPS=1" in str(info.value)
        assert agent.requests == []
        # What the caller passes wins over the environment, and is judged as a whole.
        with ObshellClient.from_env(env, https=True) as client:
            assert client.base_url.startswith("https://")
        ObshellClient.from_env(env, verify=False).close()  # the bundle is not used


def test_a_failed_https_rollout_target_says_how_to_see_its_task_over_https(pki, tmp_path):
    from obshell_sdk import PollPolicy, Rollout

    with FakeAgent(password=PASSWORD, tls=_server_context(pki), stage_seconds=0.02,
                   fail_stage=3, fail_times=99) as agent:
        report = Rollout([f"127.0.0.1:{agent.port}"], auth=PasswordAuth(PASSWORD),
                         journal=tmp_path / "j.db", https=True, verify=str(pki / "ca.pem"),
                         poll_policy=PollPolicy(initial=0.02, ceiling=0.05, jitter=0),
                         progress=False).upgrade_agent(VERSION, RELEASE)
    (result,) = report.results.values()
    assert result.outcome.value == "failed", str(report)
    assert f"see it with ObshellClient('127.0.0.1', {agent.port}, https=True, ..., auth=...)" \
        ".task(" in (result.error or ""), result.error
