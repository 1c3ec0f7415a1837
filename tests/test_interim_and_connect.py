"""Below the HTTP of a call: interim (1xx) replies read past.

An interim reply (``102 Processing``, ``103 Early Hints``) is never the agent's answer: the
final reply after it is read, on the same connection; a connection whose final reply was not
read is never given back to the pool.
"""

from __future__ import annotations

import http.client
import time

import pytest
import requests
import requests.adapters
from rawserver import RawReply, RawServer, envelope, http_reply

from obshell_sdk import ConnectionLostError, ObshellClient, ReadTimeoutError

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
