"""Hostile agents, class 3: what a reply can cost in memory is bounded.

A gzip bomb (1.5 MB inflating to 1.5 GB) is refused with ``DecodeError`` while the client's
peak RSS grows by far less than 300 MB (measured in a subprocess, under an address-space
limit so that a regression fails instead of swapping); the SDK asks for
``Accept-Encoding: identity``. A lying ``Content-Length`` is never trusted, JSON nested
100000 (or 100) deep is a ``DecodeError``, and the cap is ``ObshellClient(max_reply_bytes=)``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from rawserver import RawReply, RawServer, envelope, http_reply

import obshell_sdk
from obshell_sdk import (
    ConnectionLostError,
    DecodeError,
    InvalidArgumentError,
    ObshellClient,
    ReadTimeoutError,
)

ROOT = Path(obshell_sdk.__file__).resolve().parents[1]
INFO = {"identity": "SINGLE", "version": "4.3.0.0", "ip": "127.0.0.1", "port": 2886,
        "supportedAuth": ["v2"]}
GOOD = envelope(INFO)
MiB = 1 << 20
INFLATED = 1536 * MiB


def _gzip_bomb() -> bytes:
    """gzip of 1.5 GiB of zeros, made from one 1 MiB deflate block repeated (never inflated).

    After a full flush a deflate stream starts afresh, so compressing the same MiB again gives
    the same bytes: 1536 copies of that block are a valid stream of 1536 MiB of zeros.
    """
    zeros = bytes(MiB)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflate.compress(zeros)
    deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(INFLATED // MiB):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = crc.to_bytes(4, "little") + (INFLATED % 2**32).to_bytes(4, "little")
    return header + block * (INFLATED // MiB) + deflate.flush() + trailer


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = _gzip_bomb()
    assert len(data) < 2 * MiB
    probe = zlib.decompressobj(31)
    assert probe.decompress(data[:64 * 1024], 16 * MiB) == bytes(16 * MiB)  # it is real gzip
    return data


#: Run in a subprocess: one call to warm up, then the bomb under an address-space limit.
CLIENT = r"""
import json, resource, sys
from obshell_sdk import ObshellClient
host, port = sys.argv[1], int(sys.argv[2])
client = ObshellClient(host, port, auth=None, timeout=(5, 10))
client.info()
def vm_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + 1024 * 1024 * 1024, hard))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    client.call("GET", "/bomb", signed=False)
    outcome = "returned"
except BaseException as exc:
    outcome = type(exc).__name__
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "grew_kib": after - before}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_gzip_bomb_is_refused_in_bounded_memory(bomb):
    with RawServer() as server:
        def handler(request):
            if request.target == "/bomb":
                return RawReply(200, bomb, {"Content-Encoding": "gzip",
                                            "Content-Type": "application/json"})
            return RawReply(200, GOOD)

        server.handler = handler
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        started = time.monotonic()
        run = subprocess.run([sys.executable, "-c", CLIENT, server.host, str(server.port)],
                             capture_output=True, text=True, timeout=60, env=env, check=False)
        elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["outcome"] == "DecodeError", result
    assert result["grew_kib"] < 300 * 1024, f"peak RSS grew by {result['grew_kib'] // 1024} MiB"
    assert elapsed < 15
    bomb_request = next(r for r in server.requests if r.target == "/bomb")
    assert bomb_request.headers.get("accept-encoding") == "identity"


def test_every_request_asks_for_an_uncompressed_reply():
    with RawServer() as server:
        server.set_reply(200, GOOD)
        with ObshellClient(server.host, server.port, auth=None) as client:
            client.info()
            client.call("POST", "/x", body={"a": 1}, signed=False)
    assert [r.headers.get("accept-encoding") for r in server.requests] == ["identity"] * 2


# -- Content-Length lies --------------------------------------------------------------------


def _serve(replies):
    """A handler answering the n-th request with replies[n] (the last one from then on)."""
    seen = []

    def handler(request):
        seen.append(request)
        return replies[min(len(seen), len(replies)) - 1]

    return handler


def _then_set(wire, sent):
    """``wire``, then ``sent`` set: its last bytes are on the socket (a sleep only guessed)."""
    yield from wire
    sent.set()


def test_content_length_too_small_is_not_trusted_for_the_rest():
    """The first reply claims 10 bytes and sends a whole envelope plus a smuggled reply, some
    at once and some later: the call fails, and the next call gets its own reply."""
    smuggled = http_reply(200, envelope({**INFO, "identity": "SMUGGLED"}))
    sent = threading.Event()
    lying = RawReply(200, wire=_then_set(
        [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + GOOD, 0.2, smuggled], sent))
    with RawServer() as server:
        server.handler = _serve([lying, RawReply(200, GOOD)])
        with ObshellClient(server.host, server.port, auth=None, timeout=(2, 3)) as client:
            with pytest.raises(DecodeError):
                client.info()
            assert sent.wait(10)  # the smuggled reply has arrived
            assert client.info().identity == "SINGLE"
            assert client.info().identity == "SINGLE"


def test_content_length_exact_then_smuggled_reply_is_not_read_as_the_next_one():
    smuggled = http_reply(200, envelope({**INFO, "identity": "SMUGGLED"}))
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(GOOD)}\r\n\r\n".encode()
    with RawServer() as server:
        sent = threading.Event()
        server.handler = _serve([RawReply(200, wire=_then_set([head + GOOD, 0.2, smuggled], sent)),
                                 RawReply(200, GOOD)])
        with ObshellClient(server.host, server.port, auth=None, timeout=(2, 3)) as client:
            assert client.info().identity == "SINGLE"
            assert sent.wait(10)  # the smuggled reply has arrived
            assert client.info().identity == "SINGLE"


def test_content_length_too_large_then_closed_is_a_lost_reply():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    with RawServer() as server:
        server.handler = _serve([RawReply(200, wire=[head + GOOD], close=True),
                                 RawReply(200, GOOD)])
        with ObshellClient(server.host, server.port, auth=None, timeout=(2, 3)) as client:
            with pytest.raises(ConnectionLostError):
                client.info()
            assert client.info().identity == "SINGLE"


def test_content_length_too_large_and_kept_open_is_a_timeout():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    with RawServer() as server:
        server.handler = _serve([RawReply(200, wire=[head + GOOD, 10.0]), RawReply(200, GOOD)])
        with ObshellClient(server.host, server.port, auth=None, timeout=(1, 1.5)) as client:
            started = time.monotonic()
            with pytest.raises(ReadTimeoutError):
                client.info()
            assert time.monotonic() - started < 1.5 + 1
            assert client.info().identity == "SINGLE"


def test_a_body_that_stalls_past_the_read_timeout_is_a_read_timeout():
    """urllib3's read timeout inside the body (requests wraps it as a ConnectionError)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    with RawServer() as server:
        server.handler = _serve([RawReply(200, wire=[head + GOOD, 10.0]), RawReply(200, GOOD)])
        # the call's deadline (5 s) is far off: the socket's own 1 s read timeout ends it
        with ObshellClient(server.host, server.port, auth=None, timeout=(5, 1)) as client:
            with pytest.raises(ReadTimeoutError, match="read timeout"):
                client.info()
            assert client.info().identity == "SINGLE"


def test_a_huge_content_length_is_refused_at_the_cap_not_read():
    """It claims a terabyte and streams spaces: refused once the cap is passed, quickly."""
    sent = []

    def endless():
        yield b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n"
        for _ in range(4096):  # up to 256 MiB, never all of it
            sent.append(1)
            yield b" " * 65536

    with RawServer() as server:
        server.handler = _serve([RawReply(200, wire=endless()), RawReply(200, GOOD)])
        with ObshellClient(server.host, server.port, auth=None, timeout=(2, 10),
                           max_reply_bytes=1 * MiB) as client:
            started = time.monotonic()
            with pytest.raises(DecodeError, match="max_reply_bytes"):
                client.info()
            assert time.monotonic() - started < 5
            assert client.info().identity == "SINGLE"
    assert len(sent) < 1024  # far less than the 64 MiB it would have cost to read on


# -- deep JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [100, 100000])
@pytest.mark.parametrize("where", ["reply", "data"])
def test_deeply_nested_json_is_a_decode_error(depth, where):
    nested = b"[" * depth + b"]" * depth
    body = nested if where == "reply" else (
        b'{"successful": true, "status": 200, "data": ' + nested + b"}")
    with RawServer() as server:
        server.set_reply(200, body, {"Content-Type": "application/json"})
        with ObshellClient(server.host, server.port, auth=None) as client:
            with pytest.raises(DecodeError):
                client.call("GET", "/api/v1/anything", signed=False)
            with pytest.raises(DecodeError):
                client.info()


@pytest.mark.parametrize("levels, refused", [(64, False), (65, True)])
def test_depth_limit_is_exactly_64_levels_below_the_envelope(levels, refused):
    # The envelope is level 0; arrays nested ``levels`` deep inside its data reach that level.
    nested = b"[" * levels + b"]" * levels
    body = b'{"successful": true, "status": 200, "data": ' + nested + b"}"
    with RawServer() as server:
        server.set_reply(200, body, {"Content-Type": "application/json"})
        with ObshellClient(server.host, server.port, auth=None) as client:
            if refused:
                with pytest.raises(DecodeError, match="more than 64 levels"):
                    client.call("GET", "/api/v1/anything", signed=False)
            else:
                data = client.call("GET", "/api/v1/anything", signed=False)
                for _ in range(levels - 1):
                    data = data[0]
                assert data == []


def test_deep_json_in_an_error_reply_is_a_decode_error_too():
    nested = b"{\"a\": " * 100000 + b"1" + b"}" * 100000
    with RawServer() as server:
        server.set_reply(500, nested, {"Content-Type": "application/json"})
        with ObshellClient(server.host, server.port, auth=None) as client:
            with pytest.raises(DecodeError):
                client.info()


# -- the knob ---------------------------------------------------------------------------------


def test_max_reply_bytes_is_a_knob():
    big = envelope({**INFO, "padding": "x" * 5000})
    with RawServer() as server:
        server.set_reply(200, big, {"Content-Type": "application/json"})
        with ObshellClient(server.host, server.port, auth=None, max_reply_bytes=4096) as client:
            with pytest.raises(DecodeError, match="max_reply_bytes"):
                client.info()
        with ObshellClient(server.host, server.port, auth=None, max_reply_bytes=8192) as client:
            assert client.info().identity == "SINGLE"
        with ObshellClient(server.host, server.port, auth=None) as client:
            assert client.info().identity == "SINGLE"


@pytest.mark.parametrize("bad", [0, 1023, 2**31 + 1, True, 4096.0, "4096", None])
def test_max_reply_bytes_refuses_nonsense(bad):
    with pytest.raises(InvalidArgumentError, match="max_reply_bytes"):
        ObshellClient("127.0.0.1", 1, auth=None, max_reply_bytes=bad)
