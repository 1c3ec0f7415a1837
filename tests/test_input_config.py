"""OBSHELL_* variables are refused, naming the variable, when they cannot be what they say."""

from __future__ import annotations

import json

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


# -- the command line's password: from the environment, or asked for on a terminal ----------


def _prompting(monkeypatch, typed="typed-secret", tty=True):
    from obshell_sdk import _config

    asked = []

    def getpass(prompt):
        asked.append(prompt)
        if isinstance(typed, BaseException):
            raise typed
        return typed

    monkeypatch.setattr(_config.getpass, "getpass", getpass)
    monkeypatch.setattr(_config.sys.stdin, "isatty", lambda: tty, raising=False)
    return _config, asked


def _accepted(auth, **agent_options):
    """Whether a FakeAgent started with ``agent_options`` takes what ``auth`` signs."""
    from obshell_sdk import ObshellClient, WrongPasswordError
    from obshell_sdk.testing import FakeAgent

    with FakeAgent(**agent_options) as agent, \
            ObshellClient(agent.host, agent.port, auth=auth) as client:
        try:
            client.unfinished_dags()
        except WrongPasswordError:
            return False
        return True


def test_the_cli_asks_for_a_missing_password_on_a_terminal(monkeypatch):
    config, asked = _prompting(monkeypatch)
    auth = config.prompted_auth_from_env(config.Environment(BASE), "root@sys password: ")
    assert asked == ["root@sys password: "]
    assert auth.min_key_bits == 1024 and "typed-secret" not in repr(auth)
    assert "agent_password=None" in repr(auth)  # none was asked for
    assert _accepted(auth, password="typed-secret")  # signs with what was typed
    assert not _accepted(auth, password="another-secret")


def test_an_agent_password_alone_is_used_as_from_env_uses_it(monkeypatch):
    """The CLI's auth is ``from_env``'s whenever the environment holds a password."""
    config, asked = _prompting(monkeypatch)
    env = config.Environment({**BASE, "OBSHELL_AGENT_PASSWORD": "agent-pw"})
    auth = config.prompted_auth_from_env(env, "root@sys password: ")
    from_env = config.auth_from_env(env)
    assert asked == []
    for made in (auth, from_env):
        assert repr(made) == repr(from_env) and "agent_password='***'" in repr(made)
        # The agent password signs for an agent that has one; else the root@sys one, empty.
        assert _accepted(made, password="root-pw", agent_password="agent-pw")
        assert not _accepted(made, password="root-pw", agent_password="other-pw")
        assert _accepted(made, password="")
        assert not _accepted(made, password="root-pw")


def test_a_password_in_the_environment_is_never_asked_for(monkeypatch):
    config, asked = _prompting(monkeypatch)
    env = config.Environment({**BASE, "OBSHELL_PASSWORD": "env-secret",
                              "OBSHELL_MIN_KEY_BITS": "512"})
    assert config.prompted_auth_from_env(env, "p: ").min_key_bits == 512
    assert asked == []


def test_without_a_terminal_the_error_names_the_variable(monkeypatch):
    config, asked = _prompting(monkeypatch, tty=False)
    with pytest.raises(InvalidArgumentError) as info:
        config.prompted_auth_from_env(config.Environment(BASE), "p: ")
    assert info.value.argument == "OBSHELL_PASSWORD" and asked == []


def test_a_bad_variable_is_refused_before_the_password_is_asked_for(monkeypatch):
    config, asked = _prompting(monkeypatch)
    with pytest.raises(InvalidArgumentError) as info:
        config.prompted_auth_from_env(
            config.Environment({**BASE, "OBSHELL_MIN_KEY_BITS": "768"}), "p: ")
    assert info.value.argument == "OBSHELL_MIN_KEY_BITS" and asked == []


def test_the_cli_names_a_missing_host_before_asking_for_a_password(monkeypatch, capsys):
    from obshell_sdk._cli import main

    _, asked = _prompting(monkeypatch)
    for name in ("OBSHELL_HOST", "OBSHELL_PASSWORD", "OBSHELL_AGENT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert main(["upgrade", "4.2.1.1", "1.el7"]) == 2
    assert asked == [] and "OBSHELL_HOST" in capsys.readouterr().err


def test_a_rollout_names_a_bad_https_variable_before_asking_for_a_password(
        monkeypatch, capsys, tmp_path):
    from obshell_sdk._cli import main

    _, asked = _prompting(monkeypatch)
    monkeypatch.delenv("OBSHELL_PASSWORD", raising=False)
    monkeypatch.setenv("OBSHELL_HTTPS", "maybe")
    targets = tmp_path / "targets.txt"
    targets.write_text("127.0.0.1:1\n")
    code = main(["rollout", "agent", "--targets", str(targets), "--journal",
                 str(tmp_path / "j.db"), "4.2.1.1", "1.el7"])
    assert code == 2 and asked == [] and "OBSHELL_HTTPS" in capsys.readouterr().err


def test_end_of_input_at_the_prompt_is_a_clear_error(monkeypatch):
    config, asked = _prompting(monkeypatch, typed=EOFError())
    with pytest.raises(InvalidArgumentError) as info:
        config.prompted_auth_from_env(config.Environment(BASE), "p: ")
    assert info.value.argument == "OBSHELL_PASSWORD" and "end of input" in str(info.value)
    assert asked == ["p: "]


@pytest.mark.parametrize(("lines", "options", "named"), [
    ("", [], "targets"), ("hostonly\n", [], "targets"),
    ("127.0.0.1:1\n127.0.0.1:1\n", [], "targets"),
    ("127.0.0.1:1\n", ["--parallel", "0"], "--parallel"),
    ("127.0.0.1:1\n", ["--max-failures", "-1"], "--max-failures"),
])
def test_a_rollout_refuses_bad_targets_and_numbers_before_asking(
        monkeypatch, capsys, tmp_path, lines, options, named):
    from obshell_sdk._cli import main

    _, asked = _prompting(monkeypatch)
    monkeypatch.delenv("OBSHELL_PASSWORD", raising=False)
    targets = tmp_path / "targets.txt"
    targets.write_text(lines)
    try:
        code = main(["rollout", "agent", "--targets", str(targets), "--journal",
                     str(tmp_path / "j.db"), *options, "4.2.1.1", "1.el7"])
    except SystemExit as exc:  # a usage error, from the parser
        code = exc.code
    assert code == 2 and asked == [] and named in capsys.readouterr().err


def test_an_environment_refuses_to_be_pickled_as_passwordauth_does():
    import pickle

    from obshell_sdk import _config as config

    env = config.Environment({**BASE, "OBSHELL_PASSWORD": "pickled-secret-77"})
    with pytest.raises(TypeError, match="refuses to pickle") as info:
        pickle.dumps(env)
    assert "pickled-secret-77" not in str(info.value)


def test_an_empty_password_typed_at_the_prompt_and_refused_is_said_to_be_empty(
        monkeypatch, capsys):
    """Enter at the root@sys prompt sends an empty password, as it must (a SINGLE agent takes
    any); refused, it read like a typo, with no word that nothing was typed."""
    from conftest import PASSWORD

    from obshell_sdk._cli import main
    from obshell_sdk._config import ENV_VARIABLES, UNSAID
    from obshell_sdk.testing import FakeAgent

    for name in ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    empty = ("(an empty password was typed at the prompt: run the command again and type the "
             "root@sys password, or set OBSHELL_PASSWORD)")
    with FakeAgent(password=PASSWORD) as agent:
        where = ["--host", agent.host, "--port", str(agent.port)]
        _, asked = _prompting(monkeypatch, typed="")
        assert main([*where, "task", "list"]) == 3
        err = capsys.readouterr().err
        assert asked == ["root@sys password: "] and err.rstrip().endswith(empty), err
        assert main([*where, "--json", "task", "list"]) == 3
        assert empty in json.loads(capsys.readouterr().out)["error"]["message"]
        _prompting(monkeypatch, typed="not-it")  # a typo is no empty password
        assert main([*where, "task", "list"]) == 3
        err = capsys.readouterr().err
        assert "empty" not in err and "not-it" not in err, err
    with FakeAgent(password=PASSWORD) as agent:  # as obshell before 4.3.1: a bare 10008
        agent.numeric_errors = True
        _prompting(monkeypatch, typed="")
        assert main(["--host", agent.host, "--port", str(agent.port), "task", "list"]) == 3
        err = capsys.readouterr().err
        assert err.rstrip().endswith(f"{empty[:-1]}; {UNSAID})"), err  # the likely cause
    with FakeAgent(password=PASSWORD, identity="SINGLE") as agent:  # takes any: still sent
        _prompting(monkeypatch, typed="")
        assert main(["--host", agent.host, "--port", str(agent.port), "task", "list"]) == 0
