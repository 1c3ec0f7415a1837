"""Fuzzing every public entry point that takes caller input, with hypothesis.

Whatever a caller passes (text with NUL, surrogates or other scripts' digits, huge and
non-finite numbers, bools, None, bytes, lists, nested tuples), each call either succeeds,
or raises :class:`InvalidArgumentError` without a single connection being made, or (its
input accepted) fails at the agent with some other :class:`ObshellError`. Nothing else:
no raw ValueError, OverflowError, UnicodeEncodeError, TypeError, RecursionError...

The agent is a listener on 127.0.0.1 that counts the connections it accepts and closes each
at once: a call returns only after the listener accepted (and counted) its connections, so
"no new connection" is exact.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any, Callable

import pytest
import requests
from conftest import PASSWORD
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from rpmlib import rpm_lead

from obshell_sdk import (
    ConnectError,
    InvalidArgumentError,
    ObshellClient,
    ObshellError,
    PasswordAuth,
    PollPolicy,
    UpgradeAgentRequest,
)

FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


_REFUSAL = (b'{"successful": false, "status": 400, "traceId": "", "data": null, "error": '
            b'{"code": 2000, "errCode": "Common.IllegalArgument", "message": "fuzz agent"}}')
_REPLY = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_REFUSAL), _REFUSAL))


_BARRIER = b"BARRIER\r\n\r\n"
_STOP = b"STOP\r\n\r\n"


class ConnectionCounter:
    """Counts connections on 127.0.0.1; answers each request with a 400 envelope, then closes.

    A definite refusal (not a cut connection) keeps accepted input quick: a task-creating
    POST is not "lost", so no task lists are searched; a poll fails for good at once.
    Connections are served one by one, in the order they were made: :meth:`settle` sends a
    marker connection and waits for it, so every connection made before it has been counted
    (even one whose client gave up before it was accepted).
    """

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port: int = self._sock.getsockname()[1]
        self._count = 0
        self._marker = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            conn, _ = self._sock.accept()
            with conn:
                conn.settimeout(2)
                head = b""
                try:
                    while b"\r\n\r\n" not in head and len(head) < 65536:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        head += chunk
                    if head == _BARRIER:
                        self._marker.set()
                        continue
                    if head == _STOP:
                        return
                    self._count += 1
                    conn.sendall(_REPLY)
                except OSError:
                    self._count += 1

    def settle(self) -> int:
        """The number of connections made so far, every one of them counted."""
        self._marker.clear()
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as marker:
            marker.sendall(_BARRIER)
            assert self._marker.wait(60), "the counting server stopped"  # queued ones: 2 s each
        return self._count

    def close(self) -> None:
        """Stop serving, after every connection made so far was counted."""
        # The server stops on a connection of its own, served in turn: a flag checked between
        # connections stopped it early when set while one was still being served.
        self.settle()
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as stop:
            stop.sendall(_STOP)
        self._thread.join(60)
        assert not self._thread.is_alive(), "the counting server did not stop"
        self._sock.close()


@pytest.fixture(scope="module")
def counter() -> Iterator[ConnectionCounter]:
    server = ConnectionCounter()
    yield server
    server.close()


FAST = PollPolicy(initial=0.001, fraction=0.001, ceiling=0.001, jitter=0, failure_budget=0.001)


@pytest.fixture(scope="module")
def client(counter: ConnectionCounter) -> Iterator[ObshellClient]:
    with ObshellClient("127.0.0.1", counter.port, auth=PasswordAuth(PASSWORD), timeout=2,
                       poll_policy=FAST) as c:
        yield c


def outcome(counter: ConnectionCounter, call: Callable[[], Any]) -> str:
    """Run ``call``: "ok", "refused" (asserting nothing was sent) or "failed at the agent"."""
    note = event if currently_in_test_context() else (lambda _: None)
    before = counter.settle()
    try:
        result = call()
    except InvalidArgumentError:
        assert counter.settle() == before, "refused input reached the network"
        note("refused")
        return "refused"
    except ObshellError as exc:
        # A timeout of a few ms is the caller's to give: it may run out before any connection.
        out_of_time = isinstance(exc, ConnectError) and re.search(
            r"(no connection within|ran out before this request).*not sent", str(exc))
        assert out_of_time or counter.settle() > before, "an ObshellError that is not " \
            "InvalidArgumentError, yet no connection was made: the caller's fault was not " \
            "called one"
        note("failed at the agent")
        return "failed at the agent"
    if isinstance(result, ObshellClient):
        result.close()
    note("ok")
    return "ok"


# -- strategies --------------------------------------------------------------------------

#: Text from the whole of Unicode, lone surrogates and C0/C1 controls included.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=24)
ODD_TEXT = st.sampled_from([
    "", " ", "\x00", "\ud800", "\udcff", "\u0661\u0662", "\uff11", "\u00b2", "..", "/",
    "1\x00", "\x85", "\x7f", "\r\n", "1e300", "nan", "4.2.1.1", "\u0664.\u0662.\u0661.\u0661",
    "101000062023110109.el7", "\u0661\u0660\u0661.el7", "1.el7", "/data/upgrade",
    "/data/../x", "fe80::1%eth0", "fe80::1%", "127.0.0.1", "::1", "[::1]", "x" * 5000,
])
TEXT = st.one_of(ODD_TEXT, ANY_TEXT)
NUMBERS = st.one_of(
    st.integers(), st.floats(), st.sampled_from([10**400, -(10**400), 2**63, 10**7 + 1, 1e300,
                                                 -0.0, 5e-324]),
    # Past Python's 4300-digit str() limit: built lazily, as hypothesis reprs its strategies.
    st.sampled_from([4400, -4400]).map(lambda n: 10**n if n > 0 else -(10**-n)),
    st.decimals(allow_nan=True, places=3), st.fractions(), st.complex_numbers(max_magnitude=10),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT, st.binary(max_size=12))
ANYTHING = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                            st.tuples(inner), st.dictionaries(TEXT, inner, max_size=2),
                            st.frozensets(st.integers(), max_size=2)),
    max_leaves=6,
)
#: The same without integers past Python's 4300-digit str() limit (see test_call_huge_ints).
REPRABLE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT, st.binary(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                            st.dictionaries(TEXT, inner, max_size=2)),
    max_leaves=6,
)
SECONDS = st.one_of(st.floats(min_value=0.001, max_value=5), ANYTHING)
TIMEOUTS = st.one_of(st.none(), SECONDS, st.tuples(SECONDS, SECONDS),
                     st.tuples(SECONDS, SECONDS, SECONDS), st.lists(SECONDS, max_size=2))
TASK_IDS = st.one_of(st.sampled_from(["11", 11, "1" * 201, 10**200, "\u0661\u0661", "2" * 17]),
                     st.integers(), ANYTHING)
VERSIONS = st.one_of(st.sampled_from(["4.2.1.1", "4.3.1.0"]), TEXT, ANYTHING)
RELEASES = st.one_of(st.sampled_from(["101000062023110109.el7", "1.el7"]), TEXT, ANYTHING)
DIRS = st.one_of(st.sampled_from([None, "", "/data/upgrade", "/数据"]), TEXT, ANYTHING)


# -- entry points that never touch the network ----------------------------------------------

@FUZZ
@given(host=st.one_of(ODD_TEXT, ANYTHING), port=st.one_of(st.just(2886), ANYTHING),
       https=st.one_of(st.booleans(), ANYTHING), verify=st.one_of(st.none(), ANYTHING),
       cert=st.one_of(st.none(), ANYTHING), timeout=TIMEOUTS,
       poll_policy=st.one_of(st.none(), st.just(FAST), ANYTHING),
       accept_language=st.one_of(st.none(), st.just("zh-CN"), ANYTHING),
       session=st.one_of(st.none(), st.just(requests.Session()), ANYTHING))
def test_client_constructor(counter, host, port, https, verify, cert, timeout, poll_policy,
                            accept_language, session):
    kwargs = {"https": https, "verify": verify, "cert": cert, "poll_policy": poll_policy,
              "accept_language": accept_language, "session": session}
    if timeout is not None:
        kwargs["timeout"] = timeout
    before = counter.settle()
    assert outcome(counter, lambda: ObshellClient(host, port, auth=None, **kwargs)) in (
        "ok", "refused")
    assert counter.settle() == before


@FUZZ
@given(password=TEXT, agent_password=st.one_of(st.none(), TEXT, ANYTHING),
       lifetime=st.one_of(st.just(60), REPRABLE, st.decimals(allow_nan=True, places=2)),
       version=st.one_of(st.none(), TEXT, REPRABLE))
def test_password_auth(counter, password, agent_password, lifetime, version):
    assert outcome(counter, lambda: PasswordAuth(password, agent_password, lifetime, version)) in (
        "ok", "refused")


@pytest.mark.parametrize("knob", ["lifetime", "version"])
def test_password_auth_refuses_a_huge_int(counter, knob):
    assert outcome(counter, lambda: PasswordAuth("", **{knob: 10**4400})) == "refused"


@pytest.mark.parametrize("password", ["\ud800", "ab\udcffcd", "\udfff"])
@pytest.mark.parametrize("which", ["password", "agent_password"])
def test_a_password_that_cannot_be_utf8_is_refused_when_built(password, which):
    kwargs = {"password": "", which: password}
    with pytest.raises(InvalidArgumentError) as info:
        PasswordAuth(**kwargs)
    assert info.value.argument == which


@FUZZ
@given(version=VERSIONS, release=RELEASES, upgrade_dir=DIRS)
def test_upgrade_request(counter, version, release, upgrade_dir):
    assert outcome(counter, lambda: UpgradeAgentRequest(version, release, upgrade_dir)) in (
        "ok", "refused")


@FUZZ
@given(knobs=st.dictionaries(
    st.sampled_from(["initial", "fraction", "ceiling", "jitter", "failure_budget"]),
    st.one_of(st.floats(min_value=0, max_value=10), ANYTHING), max_size=5))
def test_poll_policy(counter, knobs):
    assert outcome(counter, lambda: PollPolicy(**knobs)) in ("ok", "refused")
    assert outcome(counter, lambda: PollPolicy().evolve(**knobs)) in ("ok", "refused")


_NAMES = ["OBSHELL_HOST", "OBSHELL_PORT", "OBSHELL_PASSWORD", "OBSHELL_AGENT_PASSWORD",
          "OBSHELL_HTTPS", "OBSHELL_CA_BUNDLE"]


@FUZZ
@given(environ=st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(_NAMES), TEXT),
                    st.one_of(st.sampled_from(["127.0.0.1", "2886", "on", "off", "1"]), TEXT,
                              ANYTHING), max_size=6),
    st.fixed_dictionaries({"OBSHELL_HOST": st.sampled_from(["127.0.0.1", "fe80::1%eth0"])},
                          optional={n: TEXT for n in _NAMES[1:]}),
    ANYTHING))
def test_client_from_env(counter, environ):
    assert outcome(counter, lambda: ObshellClient.from_env(environ)) in ("ok", "refused")


# -- calls: refused ones send nothing ------------------------------------------------------

@FUZZ
@given(version=VERSIONS, release=RELEASES, upgrade_dir=DIRS,
       method=st.sampled_from(["upgrade_agent", "check_agent_upgrade"]))
def test_upgrade_calls(counter, client, version, release, upgrade_dir, method):
    outcome(counter, lambda: getattr(client, method)(version, release, upgrade_dir))


@FUZZ
@given(dag_id=TASK_IDS, show_details=st.one_of(st.booleans(), ANYTHING), timeout=TIMEOUTS,
       operator=st.one_of(st.sampled_from(["RETRY", "pass", "RUN", "pa\u017fs"]), ANYTHING))
def test_task_calls(counter, client, dag_id, show_details, timeout, operator):
    outcome(counter, lambda: client.get_dag(dag_id, show_details, timeout=timeout))
    outcome(counter, lambda: client.task(dag_id))
    outcome(counter, lambda: client.operate_dag(dag_id, operator))
    outcome(counter, lambda: client.get_node(dag_id))
    outcome(counter, lambda: client.sub_task_logs(dag_id))


@FUZZ
@given(method=st.one_of(st.sampled_from(["GET", "POST", "get"]), TEXT, REPRABLE),
       path=st.one_of(st.sampled_from(["/api/v1/info", "/a b", "/\u00e9"]),
                      TEXT.map(lambda t: "/" + t), REPRABLE),
       query=st.one_of(st.just(""), TEXT, REPRABLE), body=st.one_of(st.none(), ANYTHING),
       signed=st.one_of(st.booleans(), ANYTHING), timeout=TIMEOUTS)
def test_call(counter, client, method, path, query, body, signed, timeout):
    outcome(counter, lambda: client.call(method, path, query=query, body=body, signed=signed,
                                         timeout=timeout))


class _NoRepr:
    def __repr__(self) -> str:
        raise RuntimeError("this object has no repr")


@pytest.mark.parametrize("argument", ["method", "path", "query"])
@pytest.mark.parametrize("value", [10**4400, _NoRepr()], ids=["huge-int", "no-repr"])
def test_call_refuses_values_that_cannot_be_shown(counter, client, argument, value):
    kwargs = {"method": "GET", "path": "/api/v1/info", "query": "", argument: value}
    assert outcome(counter, lambda: client.call(kwargs.pop("method"), kwargs.pop("path"),
                                                **kwargs)) == "refused"


@pytest.mark.parametrize("depth", [10_000])
def test_call_with_a_body_too_deep_for_json(counter, client, depth):
    body: Any = []
    for _ in range(depth):
        body = [body]
    assert outcome(counter, lambda: client.call("POST", "/x", body=body)) == "refused"


@FUZZ
@given(timeout=st.one_of(st.none(), st.just(0), SECONDS),
       poll_interval=st.one_of(st.none(), SECONDS))
def test_task_wait(counter, client, timeout, poll_interval):
    task = client.task("11")
    outcome(counter, lambda: task.wait(timeout=timeout, poll_interval=poll_interval))


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("packages"))


@FUZZ
@given(content=st.one_of(st.binary(max_size=200),
                         st.binary(max_size=100).map(lambda b: rpm_lead() + b),
                         st.binary(max_size=95).map(lambda b: b"\xed\xab\xee\xdb" + b)),
       name=st.text(st.characters(min_codepoint=32, exclude_characters="/\x7f",
                                  exclude_categories=("Cs",)), min_size=1, max_size=16),
       lifetime=st.one_of(st.just(600.0), ANYTHING), timeout=TIMEOUTS)
def test_upload_package_files(counter, client, package_dir, content, name, lifetime, timeout):
    if name in (".", ".."):
        name = "p.rpm"
    path = os.path.join(package_dir, name)
    with open(path, "wb") as file:
        file.write(content)
    try:
        result = outcome(counter, lambda: client.upload_package(path, lifetime=lifetime,
                                                                timeout=timeout))
    finally:
        os.unlink(path)
    if not (content.startswith(b"\xed\xab\xee\xdb") and len(content) >= 96):
        assert result == "refused"


@FUZZ
@given(path=st.one_of(ODD_TEXT, ANYTHING, st.binary(max_size=12)))
def test_upload_package_paths(counter, client, path):
    outcome(counter, lambda: client.upload_package(path))
