"""Review of the upgrade family against obshell's source (61ee147), over real sockets.

Each test pins one point where the SDK or the fake agent differed from obshell.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_fake_agent import PWD, call
from test_fake_agent_upgrade_family import OB_NOW, TARGET, error

from obshell_sdk import InvalidArgumentError
from obshell_sdk._endpoints import UpgradeAgentRequest, UpgradeObRequest
from obshell_sdk.testing import FakeAgent

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
    with pytest.raises(InvalidArgumentError):
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
