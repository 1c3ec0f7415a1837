"""obshell's own checks in the upgrade family, as its source (61ee147) makes them.

The upgrade directory's characters (the SDK refuses them before sending, the fake agent as
obshell does), a newer package's payload (xz-compressed cpio), and how an upgrade's
required packages are looked up. Over real sockets.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import pytest
from test_fake_agent import PWD, call
from test_fake_agent_upgrade_family import OB_NOW, TARGET, error, upload_new

from obshell_sdk import InvalidArgumentError
from obshell_sdk._endpoints import UpgradeAgentRequest, UpgradeObRequest
from obshell_sdk.testing import FakeAgent, build_rpm

# obshell's CheckPathValid (ob/utils/path.go): "^[a-zA-Z0-9\u4e00-\u9fa5\\-_:@/\\.]*$", so
# the CJK range ends at U+9FA5 (龥); U+9FA6 and after are refused.
_PATTERN = "^[a-zA-Z0-9\u4e00-\u9fa5\\-_:@/\\.]*$"
_PAST_RANGE = "/data/\u9fa6"


@pytest.fixture
def agent() -> Any:
    with FakeAgent(password=PWD, ob_version=OB_NOW) as a:
        yield a


@pytest.mark.parametrize("make", [
    lambda d: UpgradeAgentRequest("4.3.5.1", "1.el7", d),
    lambda d: UpgradeObRequest("4.3.5.1", "1.el7", upgrade_dir=d),
])
def test_sdk_refuses_an_upgrade_dir_past_obshells_cjk_range(make: Any) -> None:
    make("/data/\u4e00\u9fa5")  # the range's ends are fine
    with pytest.raises(InvalidArgumentError, match=r"U\+4E00 to U\+9FA5"):
        make(_PAST_RANGE)


@pytest.mark.parametrize("path", ["/api/v1/ob/upgrade/check", "/api/v1/agent/upgrade"])
def test_fake_refuses_an_upgrade_dir_as_check_path_valid_does(agent: FakeAgent,
                                                               path: str) -> None:
    body = dict(TARGET, upgradeDir=_PAST_RANGE)
    if path == "/api/v1/agent/upgrade":
        body = {"version": "4.3.1.0", "release": "1.el7", "upgradeDir": _PAST_RANGE}
    r = call(agent, "POST", path, body)
    assert error(r) == (400, "Common.InvalidPath",
                        f"Path '{_PAST_RANGE}' is not valid: should match pattern {_PATTERN}")
    r = call(agent, "POST", path, dict(body, upgradeDir="/tmp/x\n"))  # Go's $: end of text
    assert error(r) == (400, "Common.InvalidPath",
                        f"Path '/tmp/x\n' is not valid: should match pattern {_PATTERN}")
    r = call(agent, "POST", path, dict(body, upgradeDir="/a/../.."))
    assert error(r) == (400, "Common.InvalidPath",
                        "Path '/a/../..' is not valid: should not lead to directory traversal "
                        "issues when joined with a generated parent path")


# -- upload: the dependency YAML is read only from an xz-compressed cpio payload ---------------
@pytest.mark.parametrize("compressor,expected", [
    ("gzip", "Unsupported compression 'gzip', the supported compression is 'xz'"),
    ("none", "Unsupported compression '', the supported compression is 'xz'"),
])
def test_newer_ob_package_must_be_xz(agent: FakeAgent, compressor: str, expected: str) -> None:
    rpm = build_rpm("oceanbase-ce", "4.3.5.1", "101000012025052815.el7", compressor=compressor)
    r = upload_new(agent, rpm)
    assert error(r) == (400, "Package.Compression.NotSupported", expected)
    # a package that is not newer has no YAML read, so any compression goes
    same = build_rpm("oceanbase-ce", "4.3.5.0", "100000202024123117.el7", compressor=compressor)
    assert upload_new(agent, same).status_code == 200


def test_newer_ob_package_must_have_a_cpio_payload(agent: FakeAgent) -> None:
    rpm = build_rpm("oceanbase-ce", "4.3.5.1", "101000012025052815.el7")
    at = rpm.index(b"cpio\0")  # PAYLOADFORMAT; the MD5 covers it, so mend the signature too
    r = upload_new(agent, _resigned(rpm[:at] + b"cpix" + rpm[at + 4:]))
    assert error(r) == (400, "Package.Format.Invalid", "Unsupported payload format 'cpix', the "
                        "supported payload format is 'cpio'")


def _resigned(rpm: bytes) -> bytes:
    """``rpm`` with its signature's MD5 (tag 1004) made right again after an edit."""
    count = struct.unpack(">I", rpm[96 + 8:96 + 12])[0]
    store = 96 + 16 + 16 * count
    for i in range(count):
        tag, _, offset, _ = struct.unpack(">IIII", rpm[96 + 16 + 16 * i:96 + 32 + 16 * i])
        if tag == 1004:
            at = store + offset
            digest = hashlib.md5(rpm[rpm.index(b"\x8e\xad\xe8", at):]).digest()
            return rpm[:at] + digest + rpm[at + 16:]
    raise AssertionError("no MD5 in the signature")


# -- the required packages are looked up by build number and the release's last part -----------
def test_required_packages_are_matched_on_build_and_last_distribution_part() -> None:
    # checkForAllRequiredPkgsExist looks each package up by `release` (the build number) and
    # `distribution` = the part after the release's LAST dot; the stored `distribution` is
    # the part after its first dot. A release of three parts is found as the target package
    # (full release_distribution) but never as a required one.
    release = "101000012025052815.el7.1"
    with FakeAgent(password=PWD, ob_version=OB_NOW, require_packages=True) as strict:
        for name in ("oceanbase-ce", "oceanbase-ce-libs"):
            assert upload_new(strict, build_rpm(name, "4.3.5.1", release)).status_code == 200
        r = call(strict, "POST", "/api/v1/ob/upgrade/check",
                 {"version": "4.3.5.1", "release": release})
        assert error(r) == (400, "OB.Package.NotExist", "These packages are missing: "
                            "'[oceanbase-ce-4.3.5.1-101000012025052815.1.x86_64.rpm "
                            "oceanbase-ce-libs-4.3.5.1-101000012025052815.1.x86_64.rpm]'")
