"""Bad input is refused with InvalidArgumentError before anything reaches the agent."""

from __future__ import annotations

import pytest
from conftest import PASSWORD

from obshell_sdk import InvalidArgumentError, ObshellClient, PasswordAuth, PollPolicy
from obshell_sdk.testing import FakeAgent


@pytest.fixture(scope="module")
def agent():
    with FakeAgent(password=PASSWORD) as a:
        yield a


@pytest.fixture
def client(agent):
    agent.clear_requests()
    with ObshellClient(agent.host, agent.port, auth=PasswordAuth(PASSWORD)) as c:
        yield c
    assert agent.requests == [], "a refused call must send nothing"


CTOR_CASES = [
    ({"host": ""}, "host"),
    ({"host": "   "}, "host"),
    ({"host": None}, "host"),
    ({"host": "http://10.0.0.1"}, "host"),
    ({"host": "10.0.0.1:2886"}, "host"),
    ({"host": "bad host"}, "host"),
    ({"host": "a/b"}, "host"),
    ({"host": "::zz::"}, "host"),
    ({"port": 0}, "port"),
    ({"port": 65536}, "port"),
    ({"port": "2886"}, "port"),
    ({"port": True}, "port"),
    ({"port": 28.86}, "port"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": -1}, "timeout"),
    ({"timeout": float("nan")}, "timeout"),
    ({"timeout": float("inf")}, "timeout"),
    ({"timeout": (1, 2, 3)}, "timeout"),
    ({"timeout": (5, "60")}, "timeout"),
    ({"timeout": "60"}, "timeout"),
    ({"https": "yes"}, "https"),
    ({"verify": "/no/such/ca-bundle.pem"}, "verify"),
    ({"verify": 1.5}, "verify"),
    ({"cert": "/no/such/client.pem", "https": True}, "cert"),
    ({"cert": ("a", "b", "c"), "https": True}, "cert"),
    ({"cert": __file__}, "cert"),  # a client certificate without https
    ({"auth": "password"}, "auth"),
    ({"session": object()}, "session"),
    ({"poll_policy": {"ceiling": 3}}, "poll_policy"),
]


@pytest.mark.parametrize(("kwargs", "argument"), CTOR_CASES,
                         ids=[f"{a}={k[a]!r}"[:40] for k, a in CTOR_CASES])
def test_client_constructor_refuses(kwargs, argument):
    args = {"host": "127.0.0.1", "port": 2886, "auth": None, **kwargs}
    host, port = args.pop("host"), args.pop("port")
    with pytest.raises(InvalidArgumentError) as info:
        ObshellClient(host, port, **args)
    assert info.value.argument == argument
    assert str(info.value).startswith(f"{argument}: ")


@pytest.mark.parametrize(
    ("host", "base"),
    [("fe80::1", "http://[fe80::1]:2886"), ("[::1]", "http://[::1]:2886"),
     ("10.0.0.1", "http://10.0.0.1:2886"), ("obshell-1.example", "http://obshell-1.example:2886")],
)
def test_hosts_accepted_and_ipv6_bracketed(host, base):
    with ObshellClient(host, auth=None) as c:
        assert c.base_url == base


UPGRADE_CASES = [
    (("", RELEASE := "101000012025010101.el7"), "version"),
    (("4.x.1", RELEASE), "version"),
    ((" 4.3.1.0", RELEASE), "version"),
    ((None, RELEASE), "version"),
    (("4.3.1.0", ""), "release"),
    (("4.3.1.0", "20250101"), "release"),
    (("4.3.1.0", 20250101.7), "release"),
    (("4.3.1.0", RELEASE, "relative/dir"), "upgrade_dir"),
    (("4.3.1.0", RELEASE, "/a/../../etc"), "upgrade_dir"),
    (("4.3.1.0", RELEASE, "/tmp/x;rm -rf"), "upgrade_dir"),
]


@pytest.mark.parametrize(("args", "argument"), UPGRADE_CASES)
@pytest.mark.parametrize("method", ["upgrade_agent", "check_agent_upgrade"])
def test_upgrade_arguments_refused_before_sending(client, method, args, argument):
    with pytest.raises(InvalidArgumentError) as info:
        getattr(client, method)(*args)
    assert info.value.argument == argument


TASK_IDS = ["", "abc", "9abc", "0123", "6123", "1", "2123", "-11", "1.5",
            "\uff11\uff12\uff13", None, 1.0, True, b"11", "11 ", "3" + "0" * 10]


@pytest.mark.parametrize("dag_id", TASK_IDS, ids=repr)
def test_bad_task_ids_refused(client, dag_id):
    with pytest.raises(InvalidArgumentError):
        client.get_dag(dag_id)
    with pytest.raises(InvalidArgumentError):
        client.task(dag_id)


def test_int_task_id_is_accepted_as_its_string(client, agent):
    assert client.task(11).id == "11"


@pytest.mark.parametrize("kwargs", [{"timeout": -1}, {"timeout": "5"}, {"poll_interval": 0},
                                    {"poll_interval": -0.5}, {"timeout": float("nan")}])
def test_wait_arguments_refused(client, kwargs):
    task = client.task("11")
    with pytest.raises(InvalidArgumentError):
        task.wait(**kwargs)


def test_show_details_must_be_a_bool(client):
    with pytest.raises(InvalidArgumentError):
        client.get_dag("11", show_details="yes")


@pytest.mark.parametrize("kwargs", [{"initial": 0}, {"ceiling": -1}, {"failure_budget": "x"},
                                    {"initial": 5, "ceiling": 1}, {"jitter": 1.5}])
def test_poll_policy_refuses_nonsense(kwargs):
    with pytest.raises(InvalidArgumentError):
        PollPolicy(**kwargs)


def test_a_signed_call_without_auth_says_how_to_give_it_and_sends_nothing():
    from obshell_sdk.testing import FakeAgent

    with FakeAgent(password="pw") as agent, \
            ObshellClient(agent.host, agent.port, auth=None) as client:
        with pytest.raises(InvalidArgumentError) as info:
            client.unfinished_dags()
        assert info.value.argument == "auth"
        assert "auth=PasswordAuth(" in str(info.value) and "OBSHELL_PASSWORD" in str(info.value)
        assert agent.requests == []


def test_a_task_create_without_auth_names_the_call_that_was_not_sent():
    """Not only the task listing the SDK reads before the POST, which the caller never made."""
    from obshell_sdk.testing import FakeAgent

    with FakeAgent(password="pw") as agent, \
            ObshellClient(agent.host, agent.port, auth=None) as client:
        with pytest.raises(InvalidArgumentError) as info:
            client.upgrade_agent(VERSION, RELEASE)
        assert info.value.argument == "auth"
        assert str(info.value).startswith("POST /api/v1/agent/upgrade was not sent: ")
        assert agent.requests == []


VERSION, RELEASE = "4.3.1.0", "101000012025010101.el7"
# Yes/no options read from a config file as strings ("false" is true to Python), and other
# values of the wrong kind: refused before the pre-check or the upload is sent.
WORKFLOW_CASES = [
    ("run_agent_upgrade", {"check": "false"}, "check"),
    ("run_agent_upgrade", {"check": None}, "check"),
    ("run_agent_upgrade", {"progress": "false"}, "progress"),
    ("run_agent_upgrade", {"on_progress": 5}, "on_progress"),
    ("run_ob_upgrade", {"check": "no"}, "check"),
    ("run_ob_upgrade", {"progress": 0}, "progress"),
    ("run_ob_upgrade", {"packages": 5}, "packages"),
    ("run_ob_upgrade", {"packages": "oceanbase-ce.rpm"}, "packages"),  # one path, not a list
]


@pytest.mark.parametrize(("method", "kwargs", "argument"), WORKFLOW_CASES,
                         ids=[f"{m}-{a}={k[a]!r}" for m, k, a in WORKFLOW_CASES])
def test_workflow_options_of_the_wrong_kind_are_refused_before_sending(
        client, method, kwargs, argument):
    with pytest.raises(InvalidArgumentError) as info:
        getattr(client, method)(VERSION, RELEASE, **kwargs)
    assert info.value.argument == argument


@pytest.mark.parametrize("kwargs", [{"progress": "no"}, {"on_progress": "print"}])
def test_wait_display_options_are_checked(client, kwargs):
    with pytest.raises(InvalidArgumentError):
        client.task("11").wait(**kwargs)


def test_rollout_yes_no_options_are_checked_before_anything_starts(agent, tmp_path):
    from obshell_sdk import Rollout

    target = [f"127.0.0.1:{agent.port}"]
    with pytest.raises(InvalidArgumentError, match="progress"):
        Rollout(target, auth=PasswordAuth(PASSWORD), journal=tmp_path / "r.db", progress="off")
    rollout = Rollout(target, auth=PasswordAuth(PASSWORD), journal=tmp_path / "r.db")
    agent.clear_requests()
    for method in ("upgrade_agent", "upgrade_ob"):
        with pytest.raises(InvalidArgumentError, match="check"):
            getattr(rollout, method)(VERSION, RELEASE, check="false")
    assert agent.requests == [] and not (tmp_path / "r.db").exists()


@pytest.mark.parametrize(("option", "value"), [("https", "false"), ("timeout", -1),
                                               ("trust_env", "no"), ("verify", 1.5)])
def test_rollout_client_options_are_checked_before_any_journal_or_cluster(
        agent, tmp_path, option, value):
    # they were checked per target: every target ended `refused`, after the journal was made
    from obshell_sdk import Rollout

    agent.clear_requests()
    with pytest.raises(InvalidArgumentError) as info:
        Rollout([f"127.0.0.1:{agent.port}"], auth=PasswordAuth(PASSWORD),
                journal=tmp_path / "r.db", **{option: value})
    assert info.value.argument == option
    assert agent.requests == [] and not (tmp_path / "r.db").exists()


def test_a_client_s_timeout_can_be_set_later_and_is_checked(client):
    # a plain attribute: `client.timeout = 5` made every later call raise TypeError
    with pytest.raises(InvalidArgumentError) as info:
        client.timeout = "60"
    assert info.value.argument == "timeout"
    client.timeout = 5
    assert client.timeout == (5.0, 5.0)
    client.timeout = (2, 30)
    assert client.timeout == (2.0, 30.0)


def test_refresh_force_must_be_a_bool(client):
    task = client.task(11)
    with pytest.raises(InvalidArgumentError, match="force"):
        task.refresh(force="no")  # a truthy string would have forced a fetch


@pytest.mark.parametrize("random", [5, "urandom", None])
def test_password_auth_random_must_be_a_function(random):
    with pytest.raises(InvalidArgumentError, match="random"):
        PasswordAuth(PASSWORD, random=random)


@pytest.mark.parametrize("returns", [b"short", "x" * 32, None, b"x" * 33])
def test_password_auth_random_must_return_the_bytes_asked_for_and_nothing_is_sent(
        agent, returns):
    auth = PasswordAuth(PASSWORD, random=lambda n: returns)
    with ObshellClient(agent.host, agent.port, auth=auth) as c:
        before = len(agent.requests_to("/api/v1/agent/upgrade", "POST"))
        with pytest.raises(InvalidArgumentError, match=r"random.*asked for 32"):
            c.upgrade_agent("4.3.1.0", "101000012025010101.el7")
        assert len(agent.requests_to("/api/v1/agent/upgrade", "POST")) == before
