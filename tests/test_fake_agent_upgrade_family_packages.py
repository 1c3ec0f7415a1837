"""FakeAgent's package endpoints over real sockets, and build_rpm (upgrade family §5, §6).

Both uploads (the old, encrypted one behind ``Verify``; the new one behind ``VerifyFile``),
the inventory, deletion, and the RPM reader/writer of ``obshell_sdk.testing``.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from rpmlib import resigned, signature_end
from test_fake_agent import PWD, _rsa_b64, call
from test_fake_agent_upgrade_family import OB_NOW, error, multipart, upload_new, upload_old

from obshell_sdk.testing import FakeAgent, build_rpm
from obshell_sdk.testing._rpm import RpmError, read_rpm

OBSHELL = build_rpm("obshell", "4.3.1.0", "20250101.el7")
BO_KEYS = ["pkg_id", "name", "version", "release_distribution", "distribution", "release",
           "architecture", "size", "payload_size", "chunk_count", "md5", "upgrade_dep_yaml",
           "gmt_modify"]


@pytest.fixture
def agent() -> Any:
    with FakeAgent(password=PWD, ob_version=OB_NOW) as a:
        yield a


# -- build_rpm and the reader ------------------------------------------------------------------
def test_build_rpm_round_trip() -> None:
    pkg = read_rpm(OBSHELL)
    assert (pkg.name, pkg.version, pkg.release, pkg.arch) == (
        "obshell", "4.3.1.0", "20250101.el7", "x86_64")
    assert pkg.payload_size == len(OBSHELL) - 96 - OBSHELL.index(b"\x8e\xad\xe8", 200) + 96
    assert [f.path for f in pkg.files] == ["/home/admin/oceanbase/bin/obshell"]
    files = {"/opt/x/": b"", "/opt/x/a.txt": b"hello", "/opt/y": b"!" * 10}
    for compressor in ("xz", "gzip", "none"):
        custom = read_rpm(build_rpm("tool", "1.0", "1.el8", "aarch64", files,
                                    compressor=compressor))
        assert custom.arch == "aarch64" and custom.size == 15 and custom.compressor in (
            compressor, "")
        assert [(f.path, f.is_dir) for f in custom.files] == [
            ("/opt/x", True), ("/opt/x/a.txt", False), ("/opt/y", False)]
        assert custom.payload_file("/opt/x/a.txt") == b"hello"


def test_ob_package_carries_its_dependency_yaml() -> None:
    pkg = read_rpm(build_rpm("oceanbase-ce", "4.3.5.1", "1.el7"))
    assert pkg.has_file("/home/admin/oceanbase/etc/upgrade_health_checker.py")
    yaml = pkg.payload_file("/home/admin/oceanbase/etc/oceanbase_upgrade_dep.yml")
    assert yaml is not None and b"4.3.5.1" in yaml


_SIGNED = len(OBSHELL) - signature_end(OBSHELL)  # the header and payload
_MD5 = bytes.fromhex(read_rpm(OBSHELL).md5)


@pytest.mark.parametrize("data,text", [
    (b"", "EOF"),
    (b"not an rpm", "unexpected EOF"),
    (b"PK\x03\x04" + b"\0" * 200, "rpm: invalid file descriptor"),
    (OBSHELL[:-1] + bytes([OBSHELL[-1] ^ 1]), "MD5 checksum validation failed"),
    (OBSHELL + b"x", "MD5 checksum validation failed"),
    (OBSHELL[:120], "unexpected EOF"),
    (OBSHELL[:300], "MD5 checksum validation failed"),
    (resigned(OBSHELL, [(1004, 7, _MD5)]), "rpm: tag not found: RPMSIGTAG_SIZE"),
    # cavaliergopher/rpm v1.2.0, which obshell builds with, reads no LONGSIZE (tag 270)
    (resigned(OBSHELL, [(270, 4, [_SIGNED]), (1004, 7, _MD5)]),
     "rpm: tag not found: RPMSIGTAG_SIZE"),
    (resigned(OBSHELL, [(1000, 6, str(_SIGNED)), (1004, 7, _MD5)]),  # not an integer
     "rpm: tag not found: RPMSIGTAG_SIZE"),
    (resigned(OBSHELL, [(1000, 4, [_SIGNED])]), "rpm: tag not found: RPMSIGTAG_MD5"),
])
def test_reader_refuses_what_is_not_a_sound_rpm(data: bytes, text: str) -> None:
    assert read_rpm(resigned(OBSHELL, [(1000, 4, [_SIGNED]), (1004, 7, _MD5)])).md5 == _MD5.hex()
    with pytest.raises(RpmError) as info:
        read_rpm(data)
    assert str(info.value) == text


@pytest.mark.skipif(shutil.which("rpm") is None, reason="rpm(8) not installed")
def test_rpm_tool_reads_what_build_rpm_writes(tmp_path: Path) -> None:
    path = tmp_path / "ob.rpm"
    path.write_bytes(build_rpm("oceanbase-ce-libs", "4.3.5.1", "1.el7"))
    listed = subprocess.run(["rpm", "-qpl", str(path)], capture_output=True, text=True,
                            check=True).stdout.split()
    assert listed == ["/home/admin/oceanbase/lib", "/home/admin/oceanbase/lib/libaio.so.1"]
    checked = subprocess.run(["rpm", "-K", "--nosignature", str(path)], capture_output=True,
                             text=True, check=True).stdout
    assert "digests OK" in checked


# -- POST /api/v1/package (VerifyFile) ---------------------------------------------------------
def test_new_upload_needs_no_password(agent: FakeAgent) -> None:
    r = upload_new(agent, OBSHELL)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert list(data) == BO_KEYS
    assert (data["pkg_id"], data["name"], data["release"], data["distribution"]) == (
        1, "obshell", "20250101", "el7")
    assert data["gmt_modify"] == "0001-01-01T00:00:00Z" and data["upgrade_dep_yaml"] == ""
    assert data["size"] == read_rpm(OBSHELL).size and data["chunk_count"] == 1
    with_header = upload_new(agent, OBSHELL, auth=True)  # decrypted, never verified
    assert with_header.status_code == 200 and with_header.json()["data"]["pkg_id"] == 2
    (rec, _) = agent.requests_to("/api/v1/package")
    assert rec.body_bytes == multipart(OBSHELL)


@pytest.mark.parametrize("kw,expected", [
    ({"digest": "0" * 64}, (401, "Security.Authentication.File.Sha256Mismatch",
                            "File SHA256 mismatch")),
    ({"sha_header": ""}, (401, "Security.Authentication.File.Sha256Mismatch",
                          "File SHA256 mismatch")),
    ({"digest": "UPPER"}, (401, "Security.Authentication.File.Sha256Mismatch",
                           "File SHA256 mismatch")),
    ({"sha_header": "!!!!"}, (401, "Common.Unauthorized",
                              "Unauthorized: decrypt file sha256 failed: illegal base64 data at "
                              "input byte 0")),
    ({"sha_header": base64.b64encode(b"\x01" * 128).decode()},
     (401, "Common.Unauthorized",
      "Unauthorized: decrypt file sha256 failed: crypto/rsa: decryption error")),
])
def test_verify_file_refusals(agent: FakeAgent, kw: dict[str, Any],
                              expected: tuple[int, str, str]) -> None:
    import hashlib

    if kw.get("digest") == "UPPER":
        kw["digest"] = hashlib.sha256(OBSHELL).hexdigest().upper()
    r = upload_new(agent, OBSHELL, **kw)
    assert error(r) == expected and "data" not in r.json()
    body = r.json()["error"]
    assert body.get("code") == (10008 if expected[1] == "Common.Unauthorized" else None)
    assert agent.inventory == []


def test_verify_file_uses_the_agents_key(agent: FakeAgent) -> None:
    other = FakeAgent()
    digest = __import__("hashlib").sha256(OBSHELL).hexdigest().encode()
    r = upload_new(agent, OBSHELL, sha_header=_rsa_b64(other.public_key_b64, digest))
    assert error(r)[1] == "Common.Unauthorized"


def test_new_upload_refusals(agent: FakeAgent) -> None:
    no_part = requests.post(agent.base_url + "/api/v1/package", data=b"x", timeout=5,
                            headers={"Content-Type": "text/plain"})
    assert error(no_part) == (500, "Request.File.Missing", "File 'file' in the request is "
                              "missing: request Content-Type isn't multipart/form-data")
    assert "data" not in no_part.json()
    agent.identity = "SINGLE"
    assert error(upload_new(agent, OBSHELL, digest="0" * 64))[1] == (
        "Security.Authentication.File.Sha256Mismatch")  # VerifyFile runs first
    assert error(upload_new(agent, OBSHELL))[1] == "Agent.Identify.NotSupportOperation"
    agent.identity = "CLUSTER AGENT"
    agent.new_upload = False
    assert error(upload_new(agent, OBSHELL)) == (404, "Common.NotFound",
                                                 "Element not found: 404 not found")


@pytest.mark.parametrize("content,expected", [
    (b"x" * 200, (500, "Common.Unexpected", "rpm: invalid file descriptor")),
    (build_rpm("mysql", "8.0.0", "1.el7"), (400, "OB.Package.Name.NotSupport",
     "Unsupported name 'mysql', the supported names are [obshell, oceanbase-ce, "
     "oceanbase-ce-libs]")),
    (build_rpm("oceanbase", "4.3.5.1", "1.el7"), (400, "OB.Package.Name.NotSupport",
     "Unsupported name 'oceanbase', the supported names are [obshell, oceanbase-ce, "
     "oceanbase-ce-libs]")),
    (build_rpm("obshell", "4.3.1.0", "20250101"), (400, "Package.ReleaseFormat.Invalid",
     "failed to check version and release: Release format 20250101 is illegal")),
    (build_rpm("obshell", "4.1.0.0", "1.el7"), (400, "Agent.OBVersionNotSupported",
     "failed to check version and release: Unsupported OB version '4.1.0.0', the minimum "
     "supported version is '4.2.0.0'")),
    (build_rpm("obshell", "4.3.1.0", "1.el7", files={"/usr/bin/obshell": b"x"}),
     (500, "OB.Package.MissingFile", "These files are missing in package 'obshell': "
      "'[/home/admin/oceanbase/bin/obshell]'")),
    (build_rpm("oceanbase-ce", "4.3.5.1", "1.el7",
               files={"/home/admin/oceanbase/bin/observer": b"x"}),
     (500, "OB.Package.MissingFile", "These files are missing in package 'oceanbase-ce': "
      "'[/home/admin/oceanbase/bin/obshell /home/admin/oceanbase/etc/upgrade_checker.py "
      "/home/admin/oceanbase/etc/upgrade_pre.py "
      "/home/admin/oceanbase/etc/upgrade_health_checker.py "
      "/home/admin/oceanbase/etc/upgrade_post.py "
      "/home/admin/oceanbase/etc/oceanbase_upgrade_dep.yml]'")),
    (build_rpm("oceanbase-ce-libs", "4.3.5.1", "1.el7", files={"/home/admin/oceanbase/x": b""}),
     (500, "OB.Package.MissingFile", "These files are missing in package 'oceanbase-ce-libs': "
      "'/home/admin/oceanbase/lib'")),
])
def test_package_checks_on_both_uploads(agent: FakeAgent, content: bytes,
                                        expected: tuple[int, str, str]) -> None:
    r = upload_new(agent, content)
    assert error(r) == expected and "data" not in r.json()
    agent.strict_upload = True
    old = upload_old(agent, content)
    assert error(old) == expected and old.json()["data"] is None
    assert agent.inventory == [] and agent.packages == []


def test_same_build_needs_no_upgrade_scripts(agent: FakeAgent) -> None:
    bare = {"/home/admin/oceanbase/bin/observer": b"x", "/home/admin/oceanbase/bin/obshell": b"y"}
    same_version = build_rpm("oceanbase-ce", "4.3.5.0", "100000302025010101.el7", files=bare)
    assert upload_new(agent, same_version).status_code == 200
    diagnostic = build_rpm("oceanbase-diagnostic-tool", "1.0", "1.el7", files={})
    assert upload_new(agent, diagnostic).status_code == 200  # accepted unchecked
    with FakeAgent(password=PWD, edition="business", ob_version=OB_NOW) as business:
        ob = build_rpm("oceanbase", "4.3.5.1", "1.el7",
                       files={"/home/admin/oceanbase/bin/observer": b"x"})
        assert error(upload_new(business, ob))[1] == "OB.Package.MissingFile"  # scripts
        assert upload_new(business, build_rpm("oceanbase", "4.3.5.1", "1.el7")).ok


# -- POST /api/v1/upgrade/package (old, encrypted) ---------------------------------------------
def test_old_upload_answers_go_field_names(agent: FakeAgent) -> None:
    rpm = build_rpm("oceanbase-ce", "4.3.5.1", "101000012025052815.el7")
    r = upload_old(agent, rpm, "ob.rpm")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert list(data) == ["PkgId", "Name", "Version", "ReleaseDistribution", "Distribution",
                          "Release", "Architecture", "Size", "PayloadSize", "ChunkCount", "Md5",
                          "UpgradeDepYaml", "GmtModify"]
    assert data["UpgradeDepYaml"].startswith("- version: 4.3.5.1")
    assert (data["Md5"], data["PayloadSize"]) == (read_rpm(rpm).md5, read_rpm(rpm).payload_size)
    assert data["GmtModify"] == "0001-01-01T00:00:00Z"
    (row,) = agent.inventory
    assert row["upgrade_dep_yaml"] == "" and row["gmt_modify"].endswith("Z")
    assert agent.packages == [("ob.rpm", rpm)]


def test_old_upload_stays_lenient_with_non_rpms_unless_strict(agent: FakeAgent) -> None:
    r = upload_old(agent, b"rpm bytes" * 10, "obshell-4.3.1.0-20250101.el7.x86_64.rpm")
    assert r.status_code == 200 and r.json()["data"]["Release"] == "20250101"
    agent.strict_upload = True
    refused = upload_old(agent, b"rpm bytes" * 20, "obshell-4.3.1.0-20250101.el7.x86_64.rpm")
    assert error(refused) == (500, "Common.Unexpected", "rpm: invalid file descriptor")
    missing = call(agent, "POST", "/api/v1/upgrade/package")
    assert error(missing)[:2] == (500, "Request.File.Missing")


# -- GET /api/v1/upgrade/package/info and DELETE /api/v1/upgrade/package/{id} ------------------
def test_inventory_newest_first_one_row_per_package(agent: FakeAgent) -> None:
    empty = call(agent, "GET", "/api/v1/upgrade/package/info")
    assert empty.json()["data"] == {"contents": []}
    upload_new(agent, OBSHELL)
    upload_new(agent, build_rpm("oceanbase-ce-libs", "4.3.5.1", "1.el7"))
    upload_old(agent, OBSHELL)
    rows = call(agent, "GET", "/api/v1/upgrade/package/info").json()["data"]["contents"]
    assert [(r["pkg_id"], r["name"]) for r in rows] == [(3, "obshell"),
                                                        (2, "oceanbase-ce-libs")]
    assert list(rows[0]) == BO_KEYS and rows[0]["gmt_modify"] != "0001-01-01T00:00:00Z"
    assert call(agent, "DELETE", "/api/v1/upgrade/package/3").status_code == 200
    rows = call(agent, "GET", "/api/v1/upgrade/package/info").json()["data"]["contents"]
    assert [r["pkg_id"] for r in rows] == [2, 1]  # the older duplicate shows again


@pytest.mark.parametrize("pkg_id,expected", [
    ("99", (200, "", "")),
    ("+1", (200, "", "")),
    ("abc", (400, "Request.Query.Param.Illegal", "Query parameter 'id' is illegal%!(EXTRA "
     'string=strconv.Atoi: parsing "abc": invalid syntax)')),
    ("99999999999999999999", (400, "Request.Query.Param.Illegal", "Query parameter 'id' is "
     'illegal%!(EXTRA string=strconv.Atoi: parsing "99999999999999999999": value out of '
     "range)")),
    ("0", (400, "Request.Path.Param.Empty", "Path parameter 'pkg_id' is empty")),
    ("-4", (400, "Request.Path.Param.Empty", "Path parameter 'pkg_id' is empty")),
])
def test_delete(agent: FakeAgent, pkg_id: str, expected: tuple[int, str, str]) -> None:
    upload_new(agent, OBSHELL)
    r = call(agent, "DELETE", f"/api/v1/upgrade/package/{pkg_id}")
    if expected[0] == 200:
        assert r.status_code == 200 and "data" not in r.json() and r.json()["successful"]
        assert len(agent.inventory) == (0 if pkg_id == "+1" else 1)
    else:
        assert error(r) == expected


def test_non_cluster_agents_refuse_the_package_endpoints(agent: FakeAgent) -> None:
    agent.identity = "SINGLE"
    for method, uri in (("GET", "/api/v1/upgrade/package/info"),
                        ("DELETE", "/api/v1/upgrade/package/1")):
        r = call(agent, method, uri)
        assert error(r)[:2] == (400, "Agent.Identify.NotSupportOperation")
        assert "data" not in r.json()
    old = upload_old(agent, OBSHELL)
    assert error(old)[1] == "Agent.Identify.NotSupportOperation" and old.json()["data"] is None


def test_new_upload_still_decrypts_a_header_that_is_sent(agent: FakeAgent) -> None:
    headers = {"Content-Type": "multipart/form-data; boundary=b0undary",
               "X-OCS-Header": base64.b64encode(b"\x02" * 128).decode()}
    r = requests.post(agent.base_url + "/api/v1/package", headers=headers,
                      data=multipart(OBSHELL), timeout=5)
    assert error(r)[:2] == (401, "Security.Authentication.Header.DecryptFailed")
    assert r.json()["traceId"] == ""
