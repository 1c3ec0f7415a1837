"""Package upload: streamed, encrypted multipart that the fake agent decrypts and parses."""

from __future__ import annotations

import base64
import os
import pickle
import re
import threading
import time
from pathlib import Path

import pytest
from conftest import PASSWORD
from rpmlib import LEAD_SIZE, resigned, rpm_lead, signature_end, write_rpm
from test_create_behind_a_proxy import Proxy
from vectorlib import aes_decrypt

from obshell_sdk import (
    ApiError,
    AuthError,
    ConnectionLostError,
    DecodeError,
    InvalidArgumentError,
    ObshellClient,
    ObshellError,
    PackageChangedError,
    PackageDamagedError,
    PasswordAuth,
    ServerError,
    UpgradePackageInfo,
)
from obshell_sdk._package_calls import probe_lost
from obshell_sdk._upload import EncryptedMultipart
from obshell_sdk.testing import FakeAgent

RPM = "obshell-4.3.1.0-101000012025010101.el7.x86_64.rpm"


@pytest.fixture
def package(tmp_path):
    path = tmp_path / RPM
    write_rpm(path, os.urandom(300_000) + b"end")
    return path


@pytest.mark.parametrize("legacy", [False, True])
def test_upload_reaches_the_agent_intact(package, legacy):
    kw = {"legacy_v1": True, "version": "4.2.2.0", "supported_auth": None,
          "new_upload": False} if legacy else {}
    with FakeAgent(password=PASSWORD, **kw) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        info = client.upload_package(package)
        assert isinstance(info, UpgradePackageInfo)
        assert (info.name, info.version, info.release_distribution, info.architecture) == (
            "obshell", "4.3.1.0", "101000012025010101.el7", "x86_64")
        # obshell reports the MD5 of the RPM's signature (over header and payload).
        assert re.fullmatch("[0-9a-f]{32}", info.md5)
        assert info.size > 0 and info.gmt_modify is None
        assert agent.packages == [(RPM, package.read_bytes())]
        # An old agent gets the old, encrypted upload; a newer one /api/v1/package, whose
        # body goes in clear with the file's SHA-256 encrypted in a header.
        post = agent.requests_to("/api/v1/upgrade/package" if legacy else "/api/v1/package",
                                 "POST")[-1]
        assert post.status == 200
        assert post.headers["Content-Type"].startswith("multipart/form-data; boundary=")
        assert post.auth_kind == ("v1" if legacy else "v2")
        assert ("X-OCS-File-SHA256" in post.headers) is not legacy
        if not legacy:
            assert post.header_json["Ts"] != ""  # a long lifetime was signed
            assert int(post.header_json["Ts"]) > agent.now() + 500


def test_a_large_package_is_given_as_long_as_it_takes_at_the_slowest_link(package,
                                                                          monkeypatch):
    """The signed header's life (and the call's deadline) grow with the file, so a large
    package on a slow link is not refused as expired on arrival (and then sent again)."""
    from obshell_sdk import _package_calls

    monkeypatch.setattr(_package_calls, "_SLOWEST_LINK", 100)  # bytes a second, for the test
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        client.upload_package(package)
        post = agent.requests_to("/api/v1/package", "POST")[-1]
        expected = package.stat().st_size / 100  # about 3000 s, more than 600
        assert abs(int(post.header_json["Ts"]) - agent.now() - expected) < 30
        client.upload_package(package, lifetime=700)  # given: as given
        post = agent.requests_to("/api/v1/package", "POST")[-1]
        assert abs(int(post.header_json["Ts"]) - agent.now() - 700) < 30


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


def test_a_failed_upgrade_on_an_agent_before_4_3_0_is_refused_before_the_upload(package):
    """An agent before 4.3.0 sends no ``maintenance_type``: its failed upgrade, known by its
    name, holds the lock all the same, and the one-call upgrade sends nothing."""
    from obshell_sdk import TaskFailedError, UnderMaintenanceError

    version, release = "4.3.1.0", "101000012025010101.el7"
    with FakeAgent(password=PASSWORD, version="4.2.3.0", supported_auth=None,
                   new_upload=False, fail_stage=3) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(TaskFailedError):
            client.upgrade_agent(version, release).result(timeout=30)
        (held,) = client.unfinished_dags()
        assert held.maintenance_type is None  # as obshell before 4.3.0 sends it
        agent.clear_requests()
        with pytest.raises(UnderMaintenanceError) as info:
            client.run_agent_upgrade(version, release, package=package, timeout=60)
        assert [r.path for r in agent.requests if r.method != "GET"] == []
        assert agent.packages == [] and list(agent.dags) == [held.id]
    assert (info.value.status, info.value.err_code) == (0, "OB.Cluster.UnderMaintenanceWithDag")
    assert str(info.value).startswith(
        f"the upgrade was not started and nothing was uploaded: task {held.id} 'Upgrade "
        f"obshell {version}-{release}' failed and holds the cluster's maintenance lock")


def test_on_upload_hears_of_the_agent_package_and_not_of_one_refused_first(package):
    """The client's ``on_upload`` (an UploadCallback): the package just before it is sent,
    then what the agent stored, once it has."""
    told = []
    with FakeAgent(password=PASSWORD, stages_per_poll=10) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        def on_upload(path, stored):
            told.append((path, stored, len(agent.packages)))  # how many stored by then

        result = client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7",
                                          package=package, timeout=60, on_upload=on_upload)
        assert told == [(str(package), None, 0), (str(package), result.package, 1)]
        with pytest.raises(InvalidArgumentError, match="already runs"):  # not newer: refused
            client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", package=package,
                                     on_upload=on_upload)
        assert len(told) == 2 and len(agent.packages) == 1  # before the upload, and unsaid


def test_on_upload_is_checked_first_and_not_told_of_a_failed_upload(package):
    told = []
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(InvalidArgumentError, match="on_upload") as info:
            client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", package=package,
                                     on_upload="print")
        assert "must be a function taking a path" in str(info.value)
        assert agent.requests == []  # refused before any request
        agent.fail_next(2, status=500, err_code="Common.Unexpected",
                        path_prefix="/api/v1/package")  # the route's probe, then the upload
        with pytest.raises(ApiError):
            client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", package=package,
                                     on_upload=lambda *told_now: told.append(told_now))
        assert told == [(str(package), None)] and agent.packages == [] and agent.dags == {}


def _upload_lines(package, agent):
    return (f"uploading {package} (293.9 KiB) to {agent.host}:{agent.port}",
            "stored     1  obshell 4.3.1.0-101000012025010101.el7 x86_64  ")


def test_progress_shows_the_upload_before_the_tasks(package, capsys):
    """``progress=True`` (stderr a file or a pipe here): a line as the package goes, one
    when it is stored, then the tasks' lines; the default stays silent outside notebooks."""
    with FakeAgent(password=PASSWORD, stages_per_poll=10) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", package=package,
                                 timeout=60, progress=True)
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\r" not in err, repr(err)
    lines = err.splitlines()
    sending, stored = _upload_lines(package, agent)
    assert lines[0] == sending and lines[1].startswith(stored), lines
    assert re.search(r"  uploaded in \d\.\d s$", lines[1]), lines
    assert lines[2].startswith("task 11 "), lines
    with FakeAgent(password=PASSWORD, stages_per_poll=10) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", package=package,
                                 timeout=60)
    assert capsys.readouterr() == ("", "")


def test_progress_on_a_terminal_redraws_the_upload_and_ends_a_failed_one(package, capsys,
                                                                         monkeypatch):
    from obshell_sdk import _render_live

    monkeypatch.setattr(_render_live, "is_terminal", lambda stream: True)  # a line redrawn
    monkeypatch.setenv("COLUMNS", "300")  # nothing cut
    with FakeAgent(password=PASSWORD, stages_per_poll=10) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", package=package,
                                 timeout=60, progress=True)
    sending, stored = _upload_lines(package, agent)
    first, rest = capsys.readouterr().err.split("\n", 1)
    assert first.startswith(f"\r\x1b[K{sending}\r\x1b[K{stored}"), repr(first)
    assert rest.startswith("\r\x1b[Ktask 11 "), repr(rest)
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        agent.fail_next(2, status=500, err_code="Common.Unexpected",
                        path_prefix="/api/v1/package")
        with pytest.raises(ApiError):
            client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", package=package,
                                     progress=True)
    sending, _ = _upload_lines(package, agent)
    assert capsys.readouterr().err == f"\r\x1b[K{sending}\n"  # ended before the traceback


@pytest.mark.parametrize(("version", "release"), [("4.2.2.1", "101000012025010101.el7"),
                                                  ("4.3.1.0", "101000012025010102.el7")])
def test_run_agent_upgrade_refuses_a_package_that_is_not_the_target(package, version, release):
    # The package is obshell 4.3.1.0-101000012025010101.el7: nothing is started for another.
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(InvalidArgumentError, match=r"is obshell 4\.3\.1\.0-1010") as info:
            client.run_agent_upgrade(version, release, package=package, timeout=60)
        assert info.value.argument == "package" and "nothing was uploaded" in str(info.value)
        assert agent.dags == {} and agent.requests == []  # read here: not even uploaded


@pytest.mark.parametrize(("running", "said"), [
    ("4.3.1.0", r"already runs obshell 4\.3\.1\.0-101000012025010101"),
    ("4.3.2.0", r"obshell 4\.3\.1\.0-101000012025010101 is older than the agent's 4\.3\.2\.0-1"),
])
def test_run_agent_upgrade_refuses_a_version_not_newer_before_uploading(package, running, said):
    """obshell refuses an upgrade to a version not newer (Agent.Upgrade.ToLowerVersion), but
    only after the upload: the package is not sent for nothing."""
    release = "101000012025010101" if running == "4.3.1.0" else "1"
    with FakeAgent(password=PASSWORD, version=running, release=release) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(InvalidArgumentError, match=said) as info:
            client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", package=package)
        assert info.value.argument == "version"
        assert "Agent.Upgrade.ToLowerVersion" in str(info.value)
        assert "nothing was uploaded" in str(info.value)
        assert agent.packages == [] and agent.dags == {}
        assert [r.path for r in agent.requests] == ["/api/v1/info"]


def test_the_version_order_is_obshell_s():
    """lib/pkg CompareVersion: dotted numbers, then the build number, as numbers."""
    from obshell_sdk._targets import _version_key

    assert _version_key("4.3.1.0-9") < _version_key("4.3.1.0-10") < _version_key("4.3.10.0-1")
    assert _version_key("4.3.1-5") < _version_key("4.3.1.0-1")  # fewer numbers: older
    assert _version_key("4.3.1.0") == _version_key("4.3.1.0-x") == ([4, 3, 1, 0], 0)
    # Go's Atoi saturates past 64 bits (obshell ignores its error); Python's int() would
    # refuse a string of 4300 digits or more, from an agent's /info.
    assert _version_key("9" * 5000) == ([2**63 - 1], 0)
    assert _version_key("4.3.1.0-" + "1" * 4301) == ([4, 3, 1, 0], 2**63 - 1)
    assert _version_key("4.+3.x.0-+12") == ([4, 3, 0, 0], 12)  # as Atoi reads them
    assert _version_key("4.3.1.00-010") == _version_key("4.3.1.0-10")


def test_the_package_header_is_read_as_rpm_itself_writes_it():
    """A package made by rpmbuild (RPM 4.18, tests/vectors/README.md), not by the fake
    agent's own writer: its name, version and release are read from its header."""
    from obshell_sdk._rpm import rpm_header, rpm_signature

    vectors = Path(__file__).parent / "vectors"
    real = vectors / "obshell-4.6.0.0-101000012025020101.el7.x86_64.rpm"
    header = rpm_header(str(real))
    assert header is not None and header[:4] == (
        "obshell", "4.6.0.0", "101000012025020101.el7", "x86_64")
    assert header.identity == ("obshell", "4.6.0.0", "101000012025020101.el7")
    assert header.label == "obshell-4.6.0.0-101000012025020101.el7.x86_64"
    signature = rpm_signature(str(real))
    assert signature is not None and header.md5 == signature.md5 and len(header.md5 or "") == 16
    assert rpm_header(str(vectors / "README.md")) is None  # not an RPM: left to the agent



def test_an_rpm_header_that_cannot_be_read_is_left_to_the_agent(tmp_path):
    """Whatever is wrong with a header, the reader says "cannot tell" (None), never raises
    nor reads without bound: the agent, which reads the package too, has the last word."""
    import struct

    from obshell_sdk._rpm import rpm_header
    from obshell_sdk.testing import build_rpm

    good = build_rpm("obshell", "4.6.0.0", "1.el7")
    sig_count, sig_size = struct.unpack(">II", good[104:112])
    main = 96 + 16 + sig_count * 16 + sig_size
    main += -main % 8
    count, _ = struct.unpack(">II", good[main + 8:main + 16])

    def identity(data: bytes):
        path = tmp_path / "p.rpm"
        path.write_bytes(data)
        header = rpm_header(str(path))
        return None if header is None else header.identity

    assert identity(good) == ("obshell", "4.6.0.0", "1.el7")
    assert identity(good[:96 + 16 + 4]) is None  # cut inside the signature header
    assert identity(good[:main + 20]) is None  # cut inside the index
    assert identity(good[:main + 16 + count * 16 + 4]) is None  # cut inside the store
    huge = good[:main + 8] + struct.pack(">II", 2**27, 2**31) + good[main + 16:]
    assert identity(huge) is None  # a header larger than any real one: not read
    assert identity(good[:main] + b"\0" * 16 + good[main + 16:]) is None  # no header magic
    no_name = good.replace(b"obshell\0", b"\0bshell\0", 1)  # an empty NAME string
    assert identity(no_name) is None


def test_run_agent_upgrade_refuses_bad_input_first(tmp_path):
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(InvalidArgumentError):
            client.run_agent_upgrade("4.3.1.0", "1.el7", package=tmp_path / "none.rpm")
        with pytest.raises(InvalidArgumentError):
            client.run_agent_upgrade("x", "1.el7")
        assert agent.requests == []


def test_upload_timeout_reaches_the_upload_of_every_workflow(package, tmp_path):
    """``upload_timeout`` is how long the upload's signed header lives (and its deadline),
    in ``run_agent_upgrade``, ``run_ob_upgrade`` and both rollouts."""
    from obshell_sdk import Rollout
    from obshell_sdk.testing import build_rpm

    def signed_life(agent):
        post = [r for r in agent.requests_to("/api/v1/package", "POST") if r.body_bytes][-1]
        return int(post.header_json["Ts"]) - agent.now()

    ob = tmp_path / "oceanbase-ce.rpm"
    ob.write_bytes(build_rpm("oceanbase-ce", "4.3.5.1", "101000012025052815.el7"))
    with FakeAgent(password=PASSWORD, stages_per_poll=10) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", package=package,
                                 check=False, upload_timeout=4000)
        assert abs(signed_life(agent) - 4000) < 30
        client.run_ob_upgrade("4.3.5.1", "101000012025052815.el7", packages=[ob],
                              upload_timeout=5000)
        assert abs(signed_life(agent) - 5000) < 30
    for kind in ("agent", "ob"):
        with FakeAgent(password=PASSWORD, stages_per_poll=10) as agent:
            rollout = Rollout([f"{agent.host}:{agent.port}"], auth=PasswordAuth(PASSWORD),
                              journal=tmp_path / f"{kind}.db", progress=False)
            if kind == "agent":
                rollout.upgrade_agent("4.3.1.0", "101000012025010101.el7", package=package,
                                      upload_timeout=6000)
            else:
                rollout.upgrade_ob("4.3.5.1", "101000012025052815.el7", packages=[ob],
                                   upload_timeout=6000)
            assert abs(signed_life(agent) - 6000) < 30


def test_an_upload_timeout_below_the_read_timeout_still_bounds_the_upload(package):
    """The caller's bound is the bound: a hung upload ends after it, not after the client's
    (longer) read timeout."""
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD),
                          timeout=(5, 30)) as client:
        client.upload_package(package)  # learns the route and the key
        agent.hang_next(1, seconds=10, path_prefix="/api/v1/package")
        started = time.monotonic()
        with pytest.raises(ObshellError):
            client.upload_package(package, lifetime=1)
        assert time.monotonic() - started < 5
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD),
                          timeout=(5, 30)) as client:
        agent.hang_next(1, seconds=10, path_prefix="/api/v1/package")  # the route's probe
        started = time.monotonic()
        with pytest.raises(ObshellError):
            client.upload_package(package, lifetime=1)
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("bad", [0, -1, "600", float("nan"), True, 86401])
def test_a_bad_upload_timeout_is_refused_before_sending(package, tmp_path, bad):
    from obshell_sdk import Rollout

    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        rollout = Rollout([f"{agent.host}:{agent.port}"], auth=PasswordAuth(PASSWORD),
                          journal=tmp_path / "r.db", progress=False)
        for call in (lambda: client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7",
                                                      package=package, upload_timeout=bad),
                     lambda: client.run_ob_upgrade("4.3.5.1", "1.el7", packages=[package],
                                                   upload_timeout=bad),
                     lambda: rollout.upgrade_agent("4.3.1.0", "101000012025010101.el7",
                                                   package=package, upload_timeout=bad),
                     lambda: rollout.upgrade_ob("4.3.5.1", "1.el7", packages=[package],
                                                upload_timeout=bad)):
            with pytest.raises(InvalidArgumentError, match="upload_timeout"):
                call()
        assert agent.requests == []


@pytest.mark.parametrize(
    ("content", "why"),
    [(b"", "is empty"), (b"rpm bytes" * 1000, "not an RPM package: it starts with 72 70 6d 20"),
     (b"PK\x03\x04" + bytes(200), "not the RPM lead magic"),
     (rpm_lead()[:95], "95 bytes, shorter than the 96-byte RPM lead"),
     (rpm_lead()[:4], "4 bytes, shorter")],
    ids=["empty", "text", "zip", "lead-95", "magic-only"],
)
def test_empty_or_non_rpm_file_is_refused_before_sending(tmp_path, content, why):
    path = tmp_path / "obshell-4.3.1.0-1.el7.x86_64.rpm"
    path.write_bytes(content)
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(InvalidArgumentError) as info:
            client.upload_package(path)
        assert info.value.argument == "path"
        assert why in str(info.value) and str(path) in str(info.value)
        with pytest.raises(InvalidArgumentError, match="RPM"):
            client.run_agent_upgrade("4.3.1.0", "1.el7", package=path)
        assert agent.requests == []


HINT = "The file is damaged or changed: check it (rpm -K FILE) or download it again, then retry"


def _damaged(data: bytes, damage: str) -> bytes:
    """``data``, an RPM, damaged as a download or a disk may damage it."""
    header = signature_end(data)
    return {"truncated": data[:-1000],  # a download cut short
            "flipped": data[:-2000] + bytes([data[-2000] ^ 1]) + data[-1999:],  # the payload
            "header": data[:header + 40] + bytes([data[header + 40] ^ 0x80]) + data[header + 41:],
            "longer": data + b"\n",  # something appended
            "in-signature": data[:LEAD_SIZE + 40]}[damage]  # cut inside the signature header


@pytest.mark.parametrize("legacy", [False, True], ids=["new", "old"])
@pytest.mark.parametrize(("damage", "why"), [
    ("truncated", "it is cut short: 1000 bytes missing (its header and payload are "),
    ("flipped", "the MD5 of its header and payload is "),
    ("header", "the MD5 of its header and payload is "),
    ("longer", "it has 1 byte too many (its header and payload are "),
    ("in-signature", "it is cut short: its 136 bytes end inside its RPM signature header"),
])
def test_a_damaged_package_is_refused_before_anything_is_sent(package, legacy, damage, why):
    """obshell's MD5 check would refuse it only once all of it arrived: the SDK checks first."""
    package.write_bytes(_damaged(package.read_bytes(), damage))
    kw = {"legacy_v1": True, "version": "4.2.2.0", "supported_auth": None,
          "new_upload": False} if legacy else {}
    with FakeAgent(password=PASSWORD, **kw) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(InvalidArgumentError) as info:
            client.upload_package(package)
        assert agent.requests == []  # not even the probe of the newer upload
        with pytest.raises(InvalidArgumentError):
            client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", package=package)
        assert not [r for r in agent.requests if "package" in r.path]  # a signed read only
        assert agent.packages == []
    exc = info.value
    assert exc.argument == "path" and not isinstance(exc, ApiError)
    assert str(exc).startswith(f"path: {str(package)!r} fails the check obshell makes of an "
                               f"RPM (rpm -K's MD5): {why}"), str(exc)
    assert str(exc).endswith(". It was not sent. " + HINT), str(exc)


def test_what_passes_the_check_is_sent_as_before_the_file_read_once_for_it(package,
                                                                         monkeypatch):
    """An intact RPM: one read of the file gives the MD5 check and the newer upload's SHA-256
    (which the agent verifies). One whose signature has no MD5 is left to the agent."""
    from obshell_sdk import _rpm

    passes: list[str] = []
    real = _rpm._digest

    def counted(path, start, feed):
        passes.append(path)
        return real(path, start, feed)

    monkeypatch.setattr(_rpm, "_digest", counted)
    data = package.read_bytes()
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        client.upload_package(package)
        assert agent.requests_to("/api/v1/package", "POST")[-1].status == 200
        assert agent.packages == [(RPM, data)] and passes == [str(package)]
        package.write_bytes(resigned(data, [(1000, 4, [len(data) - signature_end(data)])]))
        with pytest.raises(ServerError, match="rpm: tag not found: RPMSIGTAG_MD5"):
            client.upload_package(package)
        assert len(agent.requests_to("/api/v1/package", "POST")) == 3  # probe, 2 uploads


@pytest.mark.parametrize("legacy", [False, True], ids=["new", "old"])
def test_a_package_damaged_after_the_check_is_said_so_by_the_agent(package, legacy,
                                                                   monkeypatch):
    """Changed on disk between the SDK's check and the upload: obshell's MD5 check refuses it
    (a 500 Common.Unexpected), said as PackageDamagedError with what to do. (The newer upload's
    SHA-256, read here after the change, lets the body through to that check.)"""
    from obshell_sdk import _package_calls

    real = _package_calls.check_package_digest

    def then_damaged(path, *, sha256):
        digest = real(path, sha256=False)
        package.write_bytes(_damaged(package.read_bytes(), "flipped"))
        return digest

    monkeypatch.setattr(_package_calls, "check_package_digest", then_damaged)
    with FakeAgent(password=PASSWORD, new_upload=not legacy) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(PackageDamagedError) as info:
            client.upload_package(package)
        assert agent.packages == []
    exc = info.value
    assert isinstance(exc, ServerError)  # still: what caught it before catches it
    assert (exc.status, exc.err_code, exc.message) == (
        500, "Common.Unexpected", "MD5 checksum validation failed")
    assert str(exc).endswith(f": MD5 checksum validation failed, trace id {exc.trace_id}. "
                             + HINT), str(exc)


def test_a_package_changed_while_it_is_sent_is_said_so_and_sent_once(package, monkeypatch):
    """Rewritten on disk between the SDK's SHA-256 pass and the upload (something still
    writing it): obshell's VerifyFile finds other bytes than the digest sent, a 401
    Security.Authentication.File.Sha256Mismatch. No password was refused: not an AuthError
    (whose hint says to check the password, and which the auth flow may mend by signing and
    sending again), but PackageChangedError, which says what to do; the file went once."""
    from obshell_sdk import _package_calls

    _rewritten_after_its_check(_package_calls, monkeypatch)
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(PackageChangedError) as info:
            client.upload_package(package)
        posts = agent.requests_to("/api/v1/package", "POST")
        assert [bool(r.body_bytes) for r in posts] == [False, True]  # the route's probe, one
        assert posts[1].status == 401 and agent.packages == []
    exc = info.value
    assert isinstance(exc, PackageDamagedError) and not isinstance(exc, AuthError)
    assert (exc.status, exc.err_code, exc.message) == (
        401, "Security.Authentication.File.Sha256Mismatch", "File SHA256 mismatch")
    assert str(exc).endswith(f"File SHA256 mismatch, trace id {exc.trace_id}. {exc.hint}")
    assert "nothing is writing it" in exc.hint and "password" not in str(exc).lower()
    assert type(exc).__module__ == "obshell_sdk"
    assert type(pickle.loads(pickle.dumps(exc))) is PackageChangedError


def _rewritten_after_its_check(module, monkeypatch):
    """``module``'s check of a package, then the file rewritten: other bytes than its digest."""
    real = module.check_package_digest

    def then_rewritten(path, *, sha256):
        digest = real(path, sha256=sha256)
        write_rpm(path, os.urandom(300_000) + b"new")  # a whole RPM again, other bytes
        return digest

    monkeypatch.setattr(module, "check_package_digest", then_rewritten)


def test_a_package_changed_while_it_is_sent_names_that_file_as_it_was_given(package,
                                                                           monkeypatch):
    """Which file the agent refused is said (several may be uploaded in turn), by the path
    the caller gave: relative stays relative. It is the error's ``file`` too, which a
    pickled copy (a process pool's) keeps."""
    from obshell_sdk import _package_calls

    _rewritten_after_its_check(_package_calls, monkeypatch)
    monkeypatch.chdir(package.parent)
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(PackageChangedError) as info:
            client.upload_package(RPM)
        assert agent.packages == []
    exc = info.value
    assert exc.file == RPM
    assert str(exc).startswith(f"uploading {RPM!r}: POST /api/v1/package on "), str(exc)
    assert str(package) not in str(exc)
    copy = pickle.loads(pickle.dumps(exc))
    assert (type(copy), copy.file, str(copy)) == (PackageChangedError, RPM, str(exc))


def test_a_package_changed_while_run_agent_upgrade_sends_it_says_to_run_that_call_again(
        package, monkeypatch):
    """The one-call upgrade uploads, checks and upgrades: its caller runs it again, rather
    than "upload it again" (after which it would upload once more)."""
    from obshell_sdk import _workflow

    _rewritten_after_its_check(_workflow, monkeypatch)
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(PackageChangedError) as info:
            client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", package=package)
        assert agent.packages == [] and agent.dags == {}
    assert info.value.file == str(package)
    assert "run the upload (or the upgrade call or rollout that uploaded it) again" in \
        str(info.value)


def _stored_as_another(tmp_path, monkeypatch, *, id_said: bool = True) -> InvalidArgumentError:
    """run_agent_upgrade of a package the SDK cannot read and the agent reads as another:
    the refusal, once the agent stored it (under the id it said, or under one it did not)."""
    import attrs

    from obshell_sdk import _targets
    from obshell_sdk.testing import build_rpm

    wrong = tmp_path / "obshell.rpm"
    wrong.write_bytes(build_rpm("obshell", "4.3.0.9", "101000012025010101.el7"))
    monkeypatch.setattr(_targets, "rpm_header", lambda path: None)  # "unreadable"
    if not id_said:
        upload = ObshellClient._upload_checked
        monkeypatch.setattr(ObshellClient, "_upload_checked", lambda self, *a, **k: attrs.evolve(
            upload(self, *a, **k), pkg_id=0))
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(InvalidArgumentError) as info:
            client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", package=wrong)
        assert [row["pkg_id"] for row in agent.inventory] == [1] and agent.dags == {}
    assert info.value.argument == "package"
    return info.value


def test_run_agent_upgrade_says_a_package_the_agent_read_as_another_stays_stored(
        tmp_path, monkeypatch):
    """A header the SDK cannot read is left to the agent; when the agent reads it as
    another package, nothing is started, but the package was stored: said so, with how to
    delete it."""
    said = str(_stored_as_another(tmp_path, monkeypatch))
    assert "read the package as obshell 4.3.0.9-101000012025010101.el7" in said, said
    assert said.endswith("or the version and release of this one (nothing was started, but "
                         "the agent stored it). It stays stored until deleted: "
                         "client.delete_package(1) (client.packages() lists it)"), said
    assert "as package" not in said and said.count("(1)") == 1, said  # its id said once


def test_run_agent_upgrade_says_where_to_find_a_stored_package_whose_id_was_not_said(
        tmp_path, monkeypatch):
    """An agent that did not say the stored package's id: how to find it, not a placeholder
    ``client.delete_package(ID)``."""
    said = str(_stored_as_another(tmp_path, monkeypatch, id_said=False))
    assert said.endswith("It stays stored until deleted: client.packages() lists it with its "
                         "pkg_id, which client.delete_package() takes"), said
    assert "(ID)" not in said


def test_a_bare_lead_passes_the_check_and_the_agent_judges_the_rest(tmp_path):
    from obshell_sdk._upload import check_package_path

    path = tmp_path / RPM
    path.write_bytes(rpm_lead())
    assert check_package_path(path) == str(path)
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        try:
            client.upload_package(path)
        except InvalidArgumentError:  # pragma: no cover - the failure this test is about
            raise
        except ObshellError:
            pass  # the agent may refuse a lead without a package after it
        assert [r for r in agent.requests_to("/api/v1/package", "POST") if r.body_bytes]


@pytest.mark.parametrize("path", ["", "a\x00b.rpm", "\ud800.rpm", "/no/such/dir/x.rpm"],
                         ids=["empty", "nul", "surrogate", "missing"])
def test_impossible_paths_are_refused(path):
    from obshell_sdk._upload import check_package_path

    with pytest.raises(InvalidArgumentError):
        check_package_path(path)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file names")
def test_awkward_file_names_stay_inside_the_quoted_filename(tmp_path):
    name = b'obshell "x"\\ \r\nX-Evil: 1 \xff.rpm'
    path = os.path.join(os.fsencode(tmp_path), name)
    write_rpm(path)
    stream = EncryptedMultipart(os.fsdecode(path), None)
    head = stream.read().split(b"\r\n\r\n", 1)[0]
    assert head.count(b"\r\n") == 2  # boundary, disposition, type: no header was injected
    assert b'filename="obshell _x__ __X-Evil: 1 \xff.rpm"' in head


def test_a_wrong_password_is_refused_before_any_package_goes_out(package, tmp_path):
    """obshell's newer upload route checks no password: a signed read comes first, so a
    wrong password does not cost an upload (to every cluster of a rollout)."""
    from obshell_sdk import Rollout, TargetOutcome, WrongPasswordError
    from obshell_sdk.testing import build_rpm

    ob = tmp_path / "oceanbase-ce.rpm"
    ob.write_bytes(build_rpm("oceanbase-ce", "4.3.5.1", "101000012025052815.el7"))
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth("wrong")) as client:
        not_sent = (r"^the package upload was not sent: GET /api/v1/task/dag/unfinish on "
                    f"{re.escape(client.agent)} failed")
        with pytest.raises(WrongPasswordError, match=not_sent):
            client.run_agent_upgrade("4.3.1.0", "101000012025010101.el7", package=package)
        with pytest.raises(WrongPasswordError, match=not_sent):
            client.run_ob_upgrade("4.3.5.1", "101000012025052815.el7", packages=[ob])
        report = Rollout([f"{agent.host}:{agent.port}"], auth=PasswordAuth("wrong"),
                         journal=tmp_path / "r.db", progress=False).upgrade_agent(
            "4.3.1.0", "101000012025010101.el7", package=package)
        (refused,) = report.results.values()
        assert refused.outcome is TargetOutcome.REFUSED
        assert "the package upload was not sent" in (refused.error or "")
        assert not [r for r in agent.requests if r.body_bytes and "package" in r.uri]


_UNKNOWN_ROUTE_423 = (400, b'{"successful":false,"timestamp":"2023-11-01T00:00:00Z","duration":0,'
                      b'"status":400,"traceId":"","error":{"code":1000,'
                      b'"message":"Element not found: 404 not found"}}')
_LEGACY_FILE_MISSING = (500, b'{"successful":false,"timestamp":"2024-05-01T00:00:00Z",'
                        b'"duration":0,"status":500,"traceId":"","error":{"code":1002,'
                        b'"message":"Unexpected error: http: no such file"}}')


@pytest.mark.parametrize(("probe", "new_upload"), [(_UNKNOWN_ROUTE_423, False),
                                                   (_LEGACY_FILE_MISSING, True)])
def test_the_upload_route_is_told_by_the_probe_s_answer_in_every_era(package, probe, new_upload):
    # 4.2.3 answered an unknown route 400 with code 1000 (PROTOCOL §1); 4.2.6 had the new
    # route but no errCodes yet: its refusal of the empty upload is a legacy code. The proxy
    # gives the probe that answer; the route is asked about once per client.
    with FakeAgent(password=PASSWORD, new_upload=new_upload) as agent:
        proxy = Proxy(agent)
        thread = threading.Thread(target=proxy.serve_forever, daemon=True)
        thread.start()
        try:
            with ObshellClient("127.0.0.1", proxy.port, auth=PasswordAuth(PASSWORD)) as client:
                proxy.answer["/api/v1/package"] = probe
                for _ in range(2):
                    assert client.upload_package(package).name == "obshell"
        finally:
            proxy.shutdown()
            proxy.server_close()
            thread.join()
        old = agent.requests_to("/api/v1/upgrade/package", "POST")
        new = agent.requests_to("/api/v1/package", "POST")  # the proxy answered the probe
        assert (len(old), len(new)) == ((0, 2) if new_upload else (2, 0))  # no second probe
        assert all(r.body_bytes for r in new)


_OB_RUNNING = "4.3.5.0-100000202024123117"
_OB_VERSION, _OB_RELEASE = "4.3.5.1", "101000012025052815.el7"

#: A fault of the upload's POST (armed just before it goes), and the error it raises.
_UPLOAD_FAULTS = {
    "500": (lambda agent: agent.fail_next(status=500, err_code="Common.Unexpected",
                                          path_prefix="/api/v1/package"), ServerError),
    "lost": (lambda agent: agent.drop_reply_after_next(path_prefix="/api/v1/package",
                                                       method="POST"), ConnectionLostError),
    "misfit": (lambda agent: agent.edit_data_next(edit=lambda data: {**data, "name": 5},
                                                  path_prefix="/api/v1/package",
                                                  method="POST"), DecodeError),
}


def _names_the_file_once(exc, file, agent):
    """``exc`` starts with the upload's file, said once, then its request; text and args agree."""
    said = str(exc)
    assert said.startswith(f"uploading {file!r}: POST /api/v1/package on {agent}"), said
    assert said.count(file) == 1 and said.count("uploading") == 1, said
    assert exc.args == (said,)
    copy = pickle.loads(pickle.dumps(exc))  # a process pool's copy says the same
    assert (type(copy), str(copy), copy.__dict__) == (type(exc), said, exc.__dict__)


@pytest.mark.parametrize("fault", list(_UPLOAD_FAULTS))
def test_a_one_call_upgrade_s_failed_upload_names_that_file_once(tmp_path, fault):
    """``run_ob_upgrade(packages=[ce, libs])``, libs' upload failing (a 500, its reply lost,
    a reply that does not fit): the error names libs, as given, once, and not ce, which
    was stored; ``file`` stays the Package* errors' (the file was not the cause here)."""
    from obshell_sdk._cli_errors import error_fields
    from obshell_sdk.testing import build_rpm

    arm, error = _UPLOAD_FAULTS[fault]
    ce, libs = (str(tmp_path / f"{name}.rpm") for name in ("oceanbase-ce", "oceanbase-ce-libs"))
    for path in (ce, libs):
        Path(path).write_bytes(build_rpm(Path(path).stem, _OB_VERSION, _OB_RELEASE))

    with FakeAgent(password=PASSWORD, ob_version=_OB_RUNNING) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        def on_upload(path, stored):
            if (path, stored) == (libs, None):  # just before libs goes
                arm(agent)

        with pytest.raises(error) as info:
            client.run_ob_upgrade(_OB_VERSION, _OB_RELEASE, packages=[ce, libs],
                                  on_upload=on_upload)
        assert agent.dags == {}
    exc = info.value
    assert not isinstance(exc, PackageDamagedError) and "file" not in error_fields(exc)
    _names_the_file_once(exc, libs, client.agent)
    assert ce not in str(exc)


#: How an upload whose route probe lost its reply ends, for a Python caller.
_PROBE_LOST = (". That was the SDK's empty probe of the upload route, before the package was "
               "sent: nothing was stored; run the upload (or the upgrade call or rollout that "
               "uploaded it) again")


@pytest.mark.parametrize("fault", ["reset", "gateway"])
def test_an_upload_whose_route_probe_is_cut_names_the_file_and_says_nothing_was_stored(
        package, fault):
    """The first upload asks the agent which route it has with an empty POST: that POST's
    reply lost (or a gateway's page in its place) is the upload's failure too, said with its
    file; the probe stores nothing and the package was not sent, so it says so and to upload
    again (which then stores it once), never "may have stored"."""
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        if fault == "reset":
            agent.reset_next(path_prefix="/api/v1/package")
        else:
            agent.fail_next(status=502, path_prefix="/api/v1/package")
        with pytest.raises((ConnectionLostError, DecodeError)) as info:
            client.upload_package(package)
        assert agent.packages == []
        assert not [r for r in agent.requests_to("/api/v1/package", "POST") if r.body_bytes]
        again = client.upload_package(package)  # as the error says
        assert [p.pkg_id for p in client.packages()] == [again.pkg_id]
    _names_the_file_once(info.value, str(package), client.agent)
    said = str(info.value)
    assert said.endswith(_PROBE_LOST) and said.count(_PROBE_LOST) == 1, said
    assert "may have stored the package" not in said  # the probe stores nothing


def test_the_probe_s_lost_reply_is_known_by_a_mark_on_its_error_not_by_its_words(package):
    """``probe_lost`` reads what the probe set on its error where it was raised: the error
    still tells after its message grew (or was pickled), and an error of another request
    that ends with the same words is not taken for it (that request may have stored one)."""
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        agent.reset_next(path_prefix="/api/v1/package")
        with pytest.raises(ConnectionLostError) as info:
            client.upload_package(package)
    exc = info.value
    assert probe_lost(exc) and probe_lost(pickle.loads(pickle.dumps(exc)))
    exc._prefix_message("", ". Said after it, by a caller")
    assert probe_lost(exc), str(exc)
    other = ConnectionLostError(f"connection lost{_PROBE_LOST}", method="POST",
                                path="/api/v1/package", agent=client.agent)
    assert str(other).endswith(_PROBE_LOST) and not probe_lost(other)


def test_an_error_s_message_is_prefixed_once_and_keeps_its_attributes():
    exc = ServerError(status=500, err_code="Common.Unexpected", code=0, message="boom",
                      trace_id="t1", method="POST", path="/api/v1/package", agent="h:1")
    before = dict(exc.__dict__)
    for _ in range(2):
        exc._prefix_message("uploading 'a.rpm': ")
    assert exc.args == ("uploading 'a.rpm': POST /api/v1/package on h:1 failed: HTTP 500 "
                        "Common.Unexpected: boom, trace id t1",)
    assert str(exc) == exc.args[0] and exc.__dict__ == before
    bare = ObshellError()
    bare._prefix_message("x: ")
    bare._prefix_message("x: ")
    assert (bare.args, str(bare)) == (("x: ",), "x: ")


def _not_sent(exc, file):
    """``exc`` refuses ``file``, gone since its check, as the checks before sending do."""
    assert type(exc) is InvalidArgumentError and exc.argument == "path"
    assert str(exc) == (f"path: {file!r} cannot be read (No such file or directory): it was "
                        "removed or changed since it was checked, and was not sent"), str(exc)


@pytest.mark.parametrize("legacy", [False, True], ids=["new", "old"])
@pytest.mark.parametrize("upload_timeout", [None, 60.0], ids=["default", "given"])
def test_a_package_removed_before_it_is_sent_is_refused_not_sent(tmp_path, legacy,
                                                                 upload_timeout):
    """``run_ob_upgrade(packages=[ce, libs])``, libs removed just before it goes (from
    ``on_upload``): InvalidArgumentError naming it, never a raw FileNotFoundError, wherever
    the file is read first (its size for the default lifetime; else as the request is
    signed); ce stays stored, nothing of libs went, no task."""
    from obshell_sdk.testing import build_rpm

    ce, libs = (str(tmp_path / f"{name}.rpm") for name in ("oceanbase-ce", "oceanbase-ce-libs"))
    for path in (ce, libs):
        Path(path).write_bytes(build_rpm(Path(path).stem, _OB_VERSION, _OB_RELEASE))
    with FakeAgent(password=PASSWORD, ob_version=_OB_RUNNING, new_upload=not legacy) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        def on_upload(path, stored):
            if (path, stored) == (libs, None):
                os.remove(libs)

        with pytest.raises(ObshellError) as info:
            client.run_ob_upgrade(_OB_VERSION, _OB_RELEASE, packages=[ce, libs],
                                  on_upload=on_upload, upload_timeout=upload_timeout)
        route = "/api/v1/upgrade/package" if legacy else "/api/v1/package"
        assert len([r for r in agent.requests_to(route, "POST") if r.body_bytes]) == 1  # ce
        assert [row["name"] for row in agent.inventory] == ["oceanbase-ce"] and not agent.dags
    _not_sent(info.value, libs)


def test_a_package_removed_between_its_check_and_its_upload_is_refused(package, monkeypatch):
    """``upload_package``: the file passed its checks, then went before the upload (read
    as the request is signed): refused, the upload not sent, the route's probe alone went."""
    from obshell_sdk import _package_calls

    real = _package_calls.check_package_digest

    def then_removed(path, *, sha256):
        digest = real(path, sha256=sha256)
        os.remove(path)
        return digest

    monkeypatch.setattr(_package_calls, "check_package_digest", then_removed)
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(ObshellError) as info:
            client.upload_package(package)
        assert [bool(r.body_bytes) for r in agent.requests_to("/api/v1/package")] == [False]
        assert agent.packages == []
    _not_sent(info.value, str(package))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_a_package_made_unreadable_after_its_check_is_refused(package, monkeypatch):
    from obshell_sdk import _package_calls

    real = _package_calls.check_package_digest

    def then_locked(path, *, sha256):
        digest = real(path, sha256=sha256)
        os.chmod(path, 0)
        return digest

    monkeypatch.setattr(_package_calls, "check_package_digest", then_locked)
    with FakeAgent(password=PASSWORD) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(InvalidArgumentError, match=r"cannot be read \(Permission denied\)"
                           r": it was removed or changed since it was checked, and was not "
                           "sent"):
            client.upload_package(package, lifetime=60)
        assert agent.packages == []


def test_the_sha256_of_a_package_gone_since_its_check_is_a_refusal(tmp_path):
    """The newer upload reads the file's SHA-256 itself when the check did not."""
    from obshell_sdk._upload import package_request

    with pytest.raises(InvalidArgumentError) as info:
        package_request(str(tmp_path / "gone.rpm"), 600.0, new=True)
    _not_sent(info.value, str(tmp_path / "gone.rpm"))


def _shrunk_once_opened(monkeypatch, path):
    """``path`` cut to its RPM lead once its upload's body has opened it: the read of it that
    the request streams comes up short (something rewriting it in place)."""
    from obshell_sdk import _upload

    class Shrinking(EncryptedMultipart):
        def __init__(self, file, key_iv):
            super().__init__(file, key_iv)
            if file == str(path):
                os.truncate(file, LEAD_SIZE)

    monkeypatch.setattr(_upload, "EncryptedMultipart", Shrinking)


@pytest.mark.parametrize("legacy", [False, True], ids=["new", "old"])
def test_a_package_that_shrinks_while_it_is_sent_is_said_changed_not_a_lost_reply(
        package, legacy, monkeypatch):
    """The file shrank under the streaming request: the SDK cut the body short, so the
    agent got part of it and stored nothing. PackageChangedError (status 0: the SDK's own
    finding, no agent sent it), named with its file once, never a lost reply (which says
    the agent may have stored it) nor a raw OSError; not sent again."""
    _shrunk_once_opened(monkeypatch, package)
    size = package.stat().st_size
    route = "/api/v1/upgrade/package" if legacy else "/api/v1/package"
    with FakeAgent(password=PASSWORD, new_upload=not legacy) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        with pytest.raises(PackageDamagedError) as info:
            client.upload_package(package)
        assert not [r for r in agent.requests_to(route, "POST") if r.body_bytes]  # cut short
        assert agent.packages == []
    exc = info.value
    assert type(exc) is PackageChangedError and not isinstance(exc, ConnectionLostError)
    assert (exc.status, exc.err_code, exc.trace_id, exc.file) == (0, "", "", str(package))
    said = str(exc)
    assert said == (f"uploading {str(package)!r}: POST {route} on {client.agent}: the upload "
                    "was cut short: the file could not be read to its end (it ended after "
                    f"{LEAD_SIZE} of its {size} bytes), "
                    f"so the agent got part of it and stored nothing. {exc.hint}"), said
    # its own next step: no agent refused a digest, nothing was altered on the way
    assert "altered" not in said and "not stored" not in said and "removing" in exc.hint
    assert isinstance(exc.__cause__, ConnectionLostError)
    copy = pickle.loads(pickle.dumps(exc))
    assert (type(copy), str(copy), copy.file) == (PackageChangedError, said, exc.file)


#: How an upload whose reply was lost ends, for a Python caller.
_MAYBE_STORED = (". The agent may have stored the package, or may still be storing it: "
                 "client.packages() lists it once stored. Upload it again only if it is not "
                 "listed: each upload stores another copy, and the list shows only the newest")


@pytest.mark.parametrize("legacy", [False, True], ids=["new", "old"])
def test_a_lost_upload_reply_says_the_package_may_be_stored_and_to_look_before_sending_again(
        package, legacy):
    """The agent stored the package, then its reply was lost: the error says it may be, how
    to see it, and to upload it again only if it is not listed, as another upload stores
    another copy (the list then shows the newer one alone)."""
    route = "/api/v1/upgrade/package" if legacy else "/api/v1/package"
    with FakeAgent(password=PASSWORD, new_upload=not legacy) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        agent.drop_reply_after_next(path_prefix=route, method="POST")
        with pytest.raises(ConnectionLostError) as info:
            client.upload_package(package)
        first = client.packages()
        again = client.upload_package(package)
        listed = client.packages()
    said = str(info.value)
    assert said.startswith(f"uploading {str(package)!r}: POST {route} on ") and \
        said.endswith(_MAYBE_STORED), said
    assert said.count(_MAYBE_STORED) == 1 and info.value.args == (said,)
    assert len(first) == 1 and [p.pkg_id for p in listed] == [again.pkg_id] != [first[0].pkg_id]


def test_a_gateway_s_page_for_an_upload_says_the_package_may_be_stored(package):
    """A 502 page in place of the agent's reply (a proxy's, not JSON): the agent may have
    stored it all the same."""
    with FakeAgent(password=PASSWORD, new_upload=False) as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as client:
        agent.fail_next(status=502, path_prefix="/api/v1/upgrade/package")
        with pytest.raises(DecodeError) as info:
            client.upload_package(package)
    assert info.value.status == 502 and str(info.value).endswith(_MAYBE_STORED), str(info.value)


def test_an_error_s_message_is_ended_once_and_keeps_its_attributes():
    exc = ConnectionLostError("connection lost", method="POST", path="/api/v1/package",
                              agent="h:1")
    before = dict(exc.__dict__)
    for _ in range(2):
        exc._prefix_message("", ". Next")
        exc._prefix_message("uploading 'a.rpm': ", ". Next")
    assert exc.args == ("uploading 'a.rpm': POST /api/v1/package on h:1: connection lost. Next",)
    assert exc.__dict__ == before
