"""Below the HTTP of a call: interim (1xx) replies read past, and connects within its time.

An interim reply (``102 Processing``, ``103 Early Hints``) is never the agent's answer: the
final reply after it is read, on the same connection; a connection whose final reply was not
read is never given back to the pool. A host's addresses are tried in turn, each attempt cut
to what is left of the call, with the socket options urllib3 would set.
"""

from __future__ import annotations

import http.client
import socket
import time

import pytest
import requests
import requests.adapters
from conftest import closed_port
from rawserver import RawReply, RawServer, envelope, http_reply

from obshell_sdk import ConnectError, ConnectionLostError, ObshellClient, ReadTimeoutError

INFO = envelope({"identity": "SINGLE", "version": "4.3.0.0", "ip": "127.0.0.1", "port": 2886,
                 "supportedAuth": ["v2"]})
OTHER = envelope({"identity": "CLUSTER AGENT", "version": "4.3.0.0", "ip": "127.0.0.1",
                  "port": 2886, "supportedAuth": ["v2"]})
JSON = {"Content-Type": "application/json"}
INTERIM = (b"HTTP/1.1 102 Processing\r\n\r\n"
           b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\nLink: </b>\r\n\r\n")


def _info(server: RawServer, **kwargs: object) -> ObshellClient:
    kwargs.setdefault("timeout", (1, 2))
    return ObshellClient(server.host, server.port, auth=None, **kwargs)  # type: ignore[arg-type]


def test_interim_replies_are_read_past_and_the_connection_is_kept_in_step():
    replies = iter([INTERIM + http_reply(200, INFO, JSON), http_reply(200, OTHER, JSON)])
    with RawServer() as server:
        server.handler = lambda request: RawReply(200, wire=[next(replies)])
        with _info(server) as client:
            assert client.info().identity == "SINGLE"
            assert client.info().identity == "CLUSTER AGENT"  # its own reply, not a leftover
        first, second = server.requests
        assert first.peer == second.peer  # the connection was read whole, then reused


def test_a_flood_of_interim_replies_ends_at_the_call_s_deadline():
    def flood():
        ends = time.monotonic() + 8
        while time.monotonic() < ends:
            yield INTERIM * 20
            yield 0.001

    with RawServer() as server:
        server.handler = lambda request: RawReply(200, wire=flood(), close=True)
        with _info(server) as client:
            started = time.monotonic()
            with pytest.raises(ReadTimeoutError):
                client.info()
            assert time.monotonic() - started < 3


@pytest.mark.parametrize("session", [False, True], ids=["own-pool", "given-session"])
def test_an_interim_reply_taken_as_final_is_a_lost_reply_and_its_connection_closed(session):
    """``101 Switching Protocols`` (never asked for) ends the exchange on the SDK's pool; a
    given session's adapter takes any 1xx for the reply. Either way the reply is lost and the
    connection is never reused, for the agent's real reply may still come on it."""
    status_line = b"HTTP/1.1 102 Processing\r\n\r\n" if session else (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
    replies = iter([status_line + http_reply(200, INFO, JSON), http_reply(200, OTHER, JSON)])
    given = None
    if session:
        given = requests.Session()
        given.mount("http://", requests.adapters.HTTPAdapter(max_retries=0))
    with RawServer() as server:
        server.handler = lambda request: RawReply(200, wire=[next(replies)])
        with _info(server, session=given) as client:
            with pytest.raises(ConnectionLostError, match="interim reply"):
                client.info()
            assert client.info().identity == "CLUSTER AGENT"
        first, second = server.requests
        assert first.peer != second.peer
    if given is not None:
        given.close()


def test_a_python_whose_response_begin_reads_once_only_cannot_spin(monkeypatch):
    """The SDK reads past an interim reply by calling http.client's ``begin()`` again with
    its headers cleared; a Python whose ``begin()`` would not read again loses the reply
    rather than loop without end."""
    real = http.client.HTTPResponse.begin

    def once(self):
        if not getattr(self, "begun", False):
            self.begun = True
            real(self)

    monkeypatch.setattr(http.client.HTTPResponse, "begin", once)
    with RawServer() as server:
        server.handler = lambda request: RawReply(200, wire=[INTERIM + http_reply(200, INFO,
                                                                                   JSON)])
        with _info(server) as client, pytest.raises(ConnectionLostError, match="interim"):
            client.info()


def test_interim_replies_over_tls_are_read_past_too(pki):
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    with RawServer(tls=context) as server:
        server.handler = lambda request: RawReply(200, wire=[INTERIM + http_reply(200, INFO,
                                                                                   JSON)])
        with _info(server, https=True, verify=str(pki / "ca.pem")) as client:
            assert client.info().identity == "SINGLE"


@pytest.fixture
def resolve(monkeypatch):
    """``resolve(addresses)``: ``agent.test`` resolves to these ``(host, port)`` addresses."""
    real = socket.getaddrinfo
    addresses: list[tuple[str, int]] = []

    def getaddrinfo(host, *args, **kwargs):
        if host != "agent.test":
            return real(host, *args, **kwargs)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", address) for address in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return addresses.extend


def test_an_address_that_refuses_is_passed_over_for_the_next(resolve):
    with RawServer() as server:
        server.set_reply(200, INFO, JSON)
        resolve([("127.0.0.1", closed_port()), ("127.0.0.1", server.port)])
        with ObshellClient("agent.test", server.port, auth=None, timeout=(1, 2)) as client:
            assert client.info().identity == "SINGLE"
        assert len(server.requests) == 1


def test_every_address_refusing_is_a_connect_error():
    with ObshellClient("127.0.0.1", closed_port(), auth=None, timeout=(1, 2)) as client:
        with pytest.raises(ConnectError, match="cannot connect"):
            client.info()


def test_a_host_no_resolver_knows_is_a_connect_error_saying_why(resolve):
    resolve([])
    with ObshellClient("agent.test", 2886, auth=None, timeout=(1, 2)) as client:
        with pytest.raises(ConnectError, match="Name or service not known") as info:
            client.info()
    assert isinstance(info.value.__cause__, requests.ConnectionError)


def test_connections_keep_urllib3_s_socket_options():
    """TCP_NODELAY, as urllib3 sets it: a small request is not held back by Nagle."""
    from obshell_sdk._deadline import CallDeadline, new_session

    with RawServer() as server:
        server.set_reply(200, INFO, JSON)
        session = new_session()
        with CallDeadline(10):
            reply = session.get(f"http://{server.host}:{server.port}/", timeout=5, stream=True)
            sock = reply.raw.connection.sock
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            reply.close()
        session.close()
