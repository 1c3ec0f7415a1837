"""Caller input is checked as obshell checks it, in ASCII, and bounded, before any I/O."""

from __future__ import annotations

import pytest

from obshell_sdk import InvalidArgumentError, ObshellClient, PollPolicy, UpgradeAgentRequest
from obshell_sdk._validate import (
    MAX_SECONDS,
    brief_repr,
    check_dag_id,
    check_operator,
    check_seconds,
    check_timeout,
)

ARABIC_INDIC = "\u0664.\u0662.\u0661.\u0661"  # "4.2.1.1" in Arabic-Indic digits
RELEASE = "101000062023110109.el7"


@pytest.mark.parametrize(
    "version",
    [ARABIC_INDIC, "4.2.1.\u0661", "\uff14.2.1.1", "4.2.1.1\x00", "4.2.1.1\n", "4\x7f.2",
     "4.2.\u00851", "4", "4.", ".4.2", "4..2", "4.2.1.1-1", "+4.2", "4.2" * 40, "\ud800",
     # not four numbers, or with leading zeros: no obshell or OceanBase 4.x version looks so
     "4.2", "4.4", "4.2.1", "4.4.0.0.0.0", "04.5.0.0", "4.2.1.01"],
)
def test_versions_refused(version):
    with pytest.raises(InvalidArgumentError) as info:
        UpgradeAgentRequest(version, RELEASE)
    assert info.value.argument == "version"


@pytest.mark.parametrize("version", ["4.2.1.1", "4.2.0.0", "4.3.10.0", "10.0.0.1"])
def test_versions_accepted(version):
    assert UpgradeAgentRequest(version, RELEASE).version == version


def test_a_short_version_is_refused_before_anything_is_sent():
    from obshell_sdk import ObshellClient, PasswordAuth
    from obshell_sdk.testing import FakeAgent

    with FakeAgent(password="pw") as agent, \
            ObshellClient(agent.host, agent.port, auth=PasswordAuth("pw")) as client:
        with pytest.raises(InvalidArgumentError, match="four dotted numbers"):
            client.upgrade_agent("4.4", RELEASE)
        assert agent.requests == []


@pytest.mark.parametrize(
    "release",
    ["\u0661\u0660\u0661.el7", "101\uff10.el7", "101.el7\x00", "\x00101.el7", "101.e\tl7",
     "101.el7\x7f", "101.el\u00857", "101.el7/../x", "101/el7.x", "101..el7", "101.el7.",
     ".el7", "el7", "abc.el7", "-1.el7", "101.\u00e9l7", "101.el7 ", "1" * 200 + ".el7",
     "\udcff.el7"],
)
def test_releases_refused(release):
    with pytest.raises(InvalidArgumentError) as info:
        UpgradeAgentRequest("4.2.1.1", release)
    assert info.value.argument == "release"


def test_a_version_release_copied_from_a_package_name_is_refused_saying_which_part_to_pass():
    # "4.3.4.0-101000012025020101.el7" passed the build-number check ("4" is digits), and
    # obshell took it: an upgrade started for a package that does not exist.
    with pytest.raises(InvalidArgumentError, match=r"'101000062023110109\.el7'") as info:
        UpgradeAgentRequest("4.2.1.1", "4.2.1.1-101000062023110109.el7")
    assert info.value.argument == "release" and "contains '-'" in str(info.value)


@pytest.mark.parametrize("release", ["101000012025020101.el7.x86_64", "1.el7.rpm",
                                     "1.el7.x86_64.rpm", "1.el8.aarch64", "1.el7.noarch",
                                     "1.el7.X86_64"])
def test_a_release_with_a_file_name_tail_is_refused_saying_which_part_to_pass(release):
    # obshell takes these: an upgrade DAG starts, fails at downloading the package that
    # does not exist, and holds the cluster's lock.
    with pytest.raises(InvalidArgumentError, match=r"the release is '101000062023110109\.el7'"):
        UpgradeAgentRequest("4.2.1.1", release)


@pytest.mark.parametrize("release", [RELEASE, "1.el7", "100000012024010112.al8",
                                     "101000062023110109.el8_5", "1.2.el7"])
def test_releases_accepted(release):
    assert UpgradeAgentRequest("4.2.1.1", release).release == release


@pytest.mark.parametrize(
    "upgrade_dir",
    ["/data/up\x00grade", "/data/\x01", "/data/\x7f", "/data/\u0085", "/data/\t", "/" * 5000,
     "/data/../etc", "data", " /data", "/data/\udcff"],
)
def test_upgrade_dirs_refused(upgrade_dir):
    with pytest.raises(InvalidArgumentError) as info:
        UpgradeAgentRequest("4.2.1.1", RELEASE, upgrade_dir)
    assert info.value.argument == "upgrade_dir"


@pytest.mark.parametrize("upgrade_dir", [None, "", "/data/upgrade", "/数据/升级", "/a/b..c"])
def test_upgrade_dirs_accepted(upgrade_dir):
    UpgradeAgentRequest("4.2.1.1", RELEASE, upgrade_dir)


@pytest.mark.parametrize(
    "value", [MAX_SECONDS + 1, 1e300, 10**400, -(10**400), float("inf"), float("-inf"),
              float("nan"), -1, 0, True, None, "5", b"5", [5], 1j],
)
def test_seconds_refused(value):
    with pytest.raises(InvalidArgumentError):
        check_seconds(value, "timeout")


def test_seconds_bounds():
    assert check_seconds(MAX_SECONDS, "t") == float(MAX_SECONDS)
    assert check_seconds(0, "t", allow_zero=True) == 0.0
    assert check_seconds(1e-9, "t") == 1e-9


@pytest.mark.parametrize(
    "value", [(1, 2, 3), (), (1,), (5, "60"), ("5", 60), [5, 60], (5, (60,)), ((5, 6), 7),
              (5, None), (5, 1e300), {5, 60}, {"connect": 5}, "60", b"60", None, True],
)
def test_timeouts_refused(value):
    with pytest.raises(InvalidArgumentError) as info:
        check_timeout(value, "timeout")
    assert info.value.argument == "timeout"
    with pytest.raises(InvalidArgumentError):
        ObshellClient("127.0.0.1", auth=None, timeout=value)


def test_a_huge_timeout_is_refused_when_given_not_later():
    with pytest.raises(InvalidArgumentError, match="at most"):
        ObshellClient("127.0.0.1", auth=None, timeout=1e300)
    with ObshellClient("127.0.0.1", 1, auth=None) as client:
        with pytest.raises(InvalidArgumentError, match="at most"):
            client.task("11").wait(timeout=1e300)
        with pytest.raises(InvalidArgumentError, match="at most"):
            client.get_dag("11", timeout=(5, 10**30))


@pytest.mark.parametrize(
    "dag_id", ["1" + "0" * 200, 10**200, 10**5000, -1, "\u0661\u0661", "1\u0661", "11\x00",
               "1" * 10**6],
    ids=["201-chars", "201-digit-int", "huge-int", "negative", "arabic", "mixed", "nul", "1MB"],
)
def test_task_ids_refused(dag_id):
    with pytest.raises(InvalidArgumentError) as info:
        check_dag_id(dag_id)
    assert len(str(info.value)) < 300


def test_task_ids_up_to_200_digits_accepted():
    assert check_dag_id("1" * 200) == "1" * 200
    assert check_dag_id(10**199 + 1) == str(10**199 + 1)


@pytest.mark.parametrize("operator", ["pa\u017fs", "RETRY\x00", "\u0280etry", None, 1])
def test_operators_in_ascii_only(operator):
    with pytest.raises(InvalidArgumentError):
        check_operator(operator)


@pytest.mark.parametrize(
    "knobs",
    [{"initial": float("nan")}, {"initial": 1e300}, {"ceiling": float("inf")},
     {"failure_budget": 10**400}, {"fraction": 0}, {"fraction": 1.5}, {"fraction": "0.2"},
     {"jitter": -0.1}, {"jitter": 1}, {"jitter": float("nan")}, {"jitter": None},
     {"initial": True}, {"initial": [1]}, {"initial": 5, "ceiling": 1}],
)
def test_poll_policy_refuses_every_bad_knob(knobs):
    with pytest.raises(InvalidArgumentError):
        PollPolicy(**knobs)
    with pytest.raises(InvalidArgumentError):
        PollPolicy().evolve(**knobs)


def test_poll_policy_evolve_refuses_unknown_knobs():
    with pytest.raises(InvalidArgumentError) as info:
        PollPolicy().evolve(celing=10)
    assert info.value.argument == "celing"


def test_brief_repr_never_raises_nor_floods():
    class Hostile:
        def __repr__(self):
            raise RuntimeError("no")

    nested: list = []
    for _ in range(100_000):
        nested = [nested]
    assert brief_repr(Hostile()) == "a Hostile"
    assert brief_repr(10**5000).startswith("an integer of")
    assert len(brief_repr("x" * 10**6)) == 60
    assert brief_repr(nested)


def test_a_create_refuses_a_request_model_of_another_endpoint_before_sending():
    """Each task-creating endpoint declares its request model; a create checks it."""
    from obshell_sdk import UpgradeAgentRequest, UpgradeObRequest
    from obshell_sdk._creation import create_dag
    from obshell_sdk._endpoints import AGENT_UPGRADE, OB_UPGRADE

    sent = []
    with pytest.raises(InvalidArgumentError, match="takes a UpgradeObRequest") as info:
        create_dag(sent.append, OB_UPGRADE, UpgradeAgentRequest("4.2.1.1", RELEASE), None)
    assert info.value.argument == "request" and sent == []
    with pytest.raises(InvalidArgumentError):
        create_dag(sent.append, AGENT_UPGRADE, UpgradeObRequest("4.3.5.0", RELEASE), None)
    assert sent == []
