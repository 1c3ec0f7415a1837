"""OBSHELL_* variables are refused, naming the variable, when they cannot be what they say."""

from __future__ import annotations

import pytest

from obshell_sdk import InvalidArgumentError, ObshellClient

BASE = {"OBSHELL_HOST": "127.0.0.1"}


@pytest.mark.parametrize(
    ("env", "variable"),
    [({"OBSHELL_HTTPS": "maybe"}, "OBSHELL_HTTPS"), ({"OBSHELL_HTTPS": "\u03bfn"}, "OBSHELL_HTTPS"),
     ({"OBSHELL_HTTPS": "1\x00"}, "OBSHELL_HTTPS"), ({"OBSHELL_HTTPS": "tru"}, "OBSHELL_HTTPS"),
     ({"OBSHELL_PORT": "\u0662\u0668\u0668\u0666"}, "OBSHELL_PORT"),
     ({"OBSHELL_PORT": "\uff12\uff18\uff18\uff16"}, "OBSHELL_PORT"),
     ({"OBSHELL_PORT": "0"}, "OBSHELL_PORT"), ({"OBSHELL_PORT": "65536"}, "OBSHELL_PORT"),
     ({"OBSHELL_PORT": "9" * 5000}, "OBSHELL_PORT"), ({"OBSHELL_PORT": "-1"}, "OBSHELL_PORT"),
     ({"OBSHELL_PORT": "28_86"}, "OBSHELL_PORT"), ({"OBSHELL_PORT": "2886\x00"}, "OBSHELL_PORT"),
     ({"OBSHELL_PORT": 2886}, "OBSHELL_PORT"), ({"OBSHELL_HOST": "b\u00fccher.example"},
                                                "OBSHELL_HOST"),
     ({"OBSHELL_HOST": "h\x00st"}, "OBSHELL_HOST"), ({"OBSHELL_HOST": b"10.0.0.1"},
                                                     "OBSHELL_HOST"),
     ({"OBSHELL_HOST": "fe80::1%e th0"}, "OBSHELL_HOST"),
     ({"OBSHELL_CA_BUNDLE": 1}, "OBSHELL_CA_BUNDLE"),
     ({"OBSHELL_PASSWORD": ["s3cret"]}, "OBSHELL_PASSWORD"),
     ({"OBSHELL_AGENT_PASSWORD": 12345}, "OBSHELL_AGENT_PASSWORD")],
)
def test_bad_variables_refused_by_name(env, variable):
    with pytest.raises(InvalidArgumentError) as info:
        ObshellClient.from_env({**BASE, **env})
    assert info.value.argument == variable
    assert "s3cret" not in str(info.value) and "12345" not in str(info.value)


@pytest.mark.parametrize("environ", [[("OBSHELL_HOST", "h")], "OBSHELL_HOST=h", 5])
def test_environ_must_be_a_mapping(environ):
    with pytest.raises(InvalidArgumentError) as info:
        ObshellClient.from_env(environ)
    assert info.value.argument == "environ"


@pytest.mark.parametrize(("port", "https"), [("1", "on"), (" 65535 ", "OFF"), ("02886", "")])
def test_good_variables_accepted(port, https):
    env = {**BASE, "OBSHELL_PORT": port, "OBSHELL_HTTPS": https, "OBSHELL_PASSWORD": None}
    with ObshellClient.from_env(env) as client:
        assert client.port == int(port) and client.auth is None


def test_a_scoped_ipv6_host_from_the_environment():
    with ObshellClient.from_env({"OBSHELL_HOST": "fe80::1%eth0"}) as client:
        assert client.base_url == "http://[fe80::1%25eth0]:2886"
