"""Package upload: streamed, encrypted multipart that the fake agent decrypts and parses."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from conftest import PASSWORD
from vectorlib import aes_decrypt

from obshell_sdk import InvalidArgumentError, ObshellClient, PasswordAuth, UpgradePackageInfo
from obshell_sdk._upload import EncryptedMultipart
from obshell_sdk.testing import FakeAgent

RPM = "obshell-4.3.1.0-101000012025010101.el7.x86_64.rpm"


@pytest.fixture
def package(tmp_path):
    path = tmp_path / RPM
    path.write_bytes(os.urandom(300_000) + b"end")
    return path


@pytest.mark.parametrize("legacy", [False, True])
def test_upload_reaches_the_agent_intact(package, legacy):
    kw = {"legacy_v1": True, "version": "4.2.2.0", "supported_auth": None} if legacy else {}
    with FakeAgent(password=PASSWORD, **kw) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        info = client.upload_package(package)
        assert isinstance(info, UpgradePackageInfo)
        assert (info.name, info.version, info.release_distribution, info.architecture) == (
            "obshell", "4.3.1.0", "101000012025010101.el7", "x86_64")
        assert info.md5 == hashlib.md5(package.read_bytes()).hexdigest()
        assert info.size == package.stat().st_size and info.gmt_modify is None
        assert agent.packages == [(RPM, package.read_bytes())]
        post = agent.requests_to("/api/v1/upgrade/package")[0]
        assert post.headers["Content-Type"].startswith("multipart/form-data; boundary=")
        assert post.auth_kind == ("v1" if legacy else "v2")
        if not legacy:
            assert post.header_json["Ts"] != ""  # a long lifetime was signed
            assert int(post.header_json["Ts"]) > agent.now() + 500


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 47, 48, 49, 48 * 1024 + 5])
def test_streamed_body_equals_one_shot_encryption(tmp_path, size):
    path = tmp_path / "p.rpm"
    path.write_bytes(os.urandom(size))
    key_iv = bytes(range(32))
    stream = EncryptedMultipart(str(path), key_iv)
    chunks = []
    while chunk := stream.read(1000):
        chunks.append(chunk)
    body = b"".join(chunks)
    assert len(body) == len(stream)
    plain = aes_decrypt(body, key_iv)
    assert plain.startswith(f"--{stream.boundary}\r\n".encode())
    assert path.read_bytes() in plain and plain.endswith(f"--{stream.boundary}--\r\n".encode())
    base64.b64decode(body, validate=True)


def test_plain_stream_for_v1(tmp_path):
    path = tmp_path / "p.rpm"
    path.write_bytes(b"x" * 100)
    stream = EncryptedMultipart(str(path), None)
    body = stream.read()
    assert len(body) == len(stream) and b"x" * 100 in body


def test_missing_or_unreadable_file_is_refused_before_sending(tmp_path):
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(InvalidArgumentError, match="is not a file"):
            client.upload_package(tmp_path / "missing.rpm")
        with pytest.raises(InvalidArgumentError, match="is not a file"):
            client.upload_package(tmp_path)
        with pytest.raises(InvalidArgumentError):
            client.upload_package(42)
        if os.geteuid() != 0:  # root can read anything
            locked = tmp_path / "locked.rpm"
            locked.write_bytes(b"x")
            locked.chmod(0)
            with pytest.raises(InvalidArgumentError, match="not readable"):
                client.upload_package(locked)
        assert agent.requests == []


def test_run_agent_upgrade_does_the_whole_workflow(package):
    from obshell_sdk import DagOutcome

    with FakeAgent(password=PASSWORD, stage_seconds=0.02, restart_at_stage=7,
                   restart_seconds=0.3) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        seen = []
        result = client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", package=package,
                                          timeout=60, on_progress=seen.append)
        assert result.package is not None and result.package.name == "obshell"
        assert result.check is not None and result.check.max_stage == 5
        assert result.upgrade.outcome is DagOutcome.SUCCEEDED
        assert result.info.version_number == "4.3.1.0"
        names = {d.name.split(" ")[1] for d in seen}
        assert names == {"check", "obshell"}  # "Upgrade check obshell ..." and "Upgrade obshell"


def test_run_agent_upgrade_refuses_bad_input_first(tmp_path):
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(InvalidArgumentError):
            client.run_agent_upgrade("4.3.1.0", "1.el7", package=tmp_path / "none.rpm")
        with pytest.raises(InvalidArgumentError):
            client.run_agent_upgrade("x", "1.el7")
        assert agent.requests == []
