"""What an exchange raised, as the SDK's transport errors: not sent, or maybe carried out.

The transport hands every exception of an exchange here. :func:`exchange_error` says
:class:`~obshell_sdk.ConnectError` only where the failure proves the request never left (no
connection to the agent, or to the proxy in front of it, was ever made, or the proxy refused
to open a tunnel to an HTTPS agent); any other failure after the request may have gone out is
a lost reply, :class:`~obshell_sdk.ConnectionLostError` or
:class:`~obshell_sdk.ReadTimeoutError`: the agent may have acted on it. That proof holds only
if nothing sent the request earlier: :func:`resending` finds a given session whose retries
could have. A reply that is not HTTP at all (another service's port) is a
:class:`~obshell_sdk.DecodeError`, as a reply that is not JSON is.
"""

from __future__ import annotations

import http.client
import re
from typing import Any, Optional, Union

import requests
import urllib3
import urllib3.exceptions
import urllib3.util

from ._exceptions import (
    ConnectError,
    ConnectionLostError,
    DecodeError,
    ObshellError,
    ReadTimeoutError,
    TransportError,
)
from ._request import scrub
from ._text import printable

__all__ = ["REPLY_EXCERPT", "exchange_error", "lost_read", "not_http", "reply_lost", "resending",
           "through_proxy"]

#: How much of a reply that cannot be read its error quotes (characters).
REPLY_EXCERPT = 120

#: The reasons that prove a TCP connection was never made (so nothing was sent on it).
_CONNECT_REASONS: tuple[type[BaseException], ...] = tuple(cls for cls in (
    urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError,
    getattr(urllib3.exceptions, "NameResolutionError", None),  # urllib3 2.x only
    ConnectionRefusedError) if cls is not None)


#: The methods the SDK sends that change something on the agent (a task, a package).
_WRITES = ("POST", "DELETE")
#: The methods that only read: a lost reply to one left nothing done on the agent.
_READS = ("GET", "HEAD")
#: How the simulated failures below show in urllib3's debug log.
_ASKING = "(obshell_sdk asks: would this Retry send a request again?)"


def resending(session: requests.Session, url: str) -> Optional[str]:
    """Why a given session may send a write to ``url`` again after it may have gone out.

    urllib3 retries as the adapter's ``max_retries`` says; a failed connection (nothing sent)
    is safe to retry, but a retry after a read error, a TLS error or a 5xx reply would send
    a task-creating POST twice. urllib3's own :class:`~urllib3.util.Retry` is asked what it
    would do after each, for every adapter that may carry a request to ``url``; the answer
    names that adapter's ``max_retries``. None when none would (an adapter of another kind is
    trusted).
    """
    for retry in _retries_for(session, url):
        why = _resends(retry)
        if why:
            return f"max_retries={retry!r} {why}"
    return None


def _retries_for(session: requests.Session, url: str) -> list[urllib3.util.Retry]:
    """The ``Retry`` of each adapter that may carry a request to ``url`` or below it.

    requests picks an adapter by the longest prefix of the whole URL: one mounted at
    ``url + "/api/"`` carries every call, though ``get_adapter(url)`` returns another.
    """
    below = url.rstrip("/").lower() + "/"
    adapters = [a for prefix, a in session.adapters.items() if prefix.lower().startswith(below)]
    try:
        adapters.append(session.get_adapter(url))
    except requests.exceptions.InvalidSchema:  # no adapter: nothing is ever sent
        pass
    found = [getattr(adapter, "max_retries", None) for adapter in adapters]
    return [retry for retry in found if isinstance(retry, urllib3.util.Retry)]


def _resends(retry: urllib3.util.Retry) -> Optional[str]:
    """What ``retry`` would send again after a write may have gone out; None if nothing.

    A ``Retry`` (a subclass) that cannot be asked, raising what urllib3's does not, is taken
    as one that may: it is refused, not let through or raised out of the client.
    """
    try:
        return _asked(retry)
    except Exception as exc:
        return f"cannot be asked what it re-sends ({type(exc).__name__}: {exc})"


def _asked(retry: urllib3.util.Retry) -> Optional[str]:
    """:func:`_resends`, raising what an odd ``Retry`` raises."""
    listed = {s for s in retry.status_forcelist or () if isinstance(s, int)}  # urllib3's test
    for method in _WRITES:
        for error in (urllib3.exceptions.ProtocolError("Connection aborted."),
                      urllib3.exceptions.SSLError("TLS failed")):
            if _retries(retry, method, error=error):
                return f"re-sends a {method} that failed with {type(error).__name__}"
        for status in sorted({413, 429, 503, *listed}):
            if retry.is_retry(method, status, has_retry_after=True) and _retries(
                    retry, method, response=urllib3.HTTPResponse(
                        status=status, headers={"Retry-After": "1"})):
                return f"re-sends a {method} answered with HTTP {status}"
    return None


def _retries(retry: urllib3.util.Retry, method: str, **failure: Any) -> bool:
    """Whether ``retry`` allows another attempt after ``failure`` (it raises when it does not)."""
    try:
        retry.increment(method, _ASKING, **failure)
    except (urllib3.exceptions.MaxRetryError, urllib3.exceptions.ProtocolError,
            urllib3.exceptions.SSLError):
        return False
    return True


def exchange_error(exc: Exception, fired: bool, seconds: float, method: str, path: str,
                   agent: str, *, maybe_sent: bool = False) -> Union[TransportError, DecodeError]:
    """Map what an exchange raised to the SDK's transport errors.

    ``maybe_sent``: the request may have gone out (on a session we cannot watch, any time),
    so any failure not proven to come before it is a lost reply: the agent may have acted.
    A reply that is not HTTP at all is a :class:`DecodeError` (:func:`not_http`).
    """
    where: dict[str, Any] = {"method": method, "path": path, "agent": agent}
    scrub(exc)  # it is chained as the error's __cause__
    if fired:  # cut while connecting (a proxy's tunnel, a TLS handshake) or while reading
        return (_no_reply(f"the call's {seconds:g} s", where) if maybe_sent else
                ConnectError(f"no connection within the call's {seconds:g} s; the request was "
                             "not sent", **where))
    other = ConnectionLostError if maybe_sent else TransportError
    if not isinstance(exc, requests.RequestException):
        return other(f"the exchange failed ({type(exc).__name__}: {exc})", **where)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ConnectError("timed out connecting; is the agent up and the port right?", **where)
    if isinstance(exc, requests.exceptions.ReadTimeout) or isinstance(  # in the body: wrapped
            _root(exc), urllib3.exceptions.ReadTimeoutError):  # unsent: TLS handshake, tunnel
        return (_no_reply("the read timeout", where) if maybe_sent else
                ConnectError("timed out connecting (TLS handshake or proxy tunnel); not sent",
                             **where))
    if isinstance(exc, requests.exceptions.SSLError):
        if maybe_sent and "CERTIFICATE_VERIFY_FAILED" not in str(exc):  # not the handshake
            return ConnectionLostError("the connection failed after the request may have gone "
                                       f"out ({_reason(exc)})", **where)
        return ConnectError(
            f"TLS failed ({_reason(exc)}); check https=, verify= (CA bundle) and cert=", **where)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return _connection_error(exc, where)
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError,
                        requests.exceptions.ContentDecodingError)):
        return ConnectionLostError(f"reply cut short ({_reason(exc)})", **where)
    return other(_reason(exc), **where)


def _no_reply(within: str, where: dict[str, Any]) -> ReadTimeoutError:
    """No complete reply ``within`` a time: a read changed nothing; a write may have been done."""
    method = where["method"]
    if method in _READS:
        return ReadTimeoutError(f"no complete reply within {within} (the agent answered too "
                                "slowly, or not at all: is it up, and is this its port?); a "
                                f"{method} changes nothing, so it is safe to run again", **where)
    return ReadTimeoutError(f"no complete reply within {within} (the agent answered too "
                            "slowly); the request may still have been carried out", **where)


def _connection_error(exc: requests.exceptions.ConnectionError,
                      where: dict[str, Any]) -> Union[TransportError, DecodeError]:
    """A failed connection: not sent only if no TCP connection (to agent or proxy) was made.

    urllib3's ProxyError ("Unable to connect to proxy") wraps more than a failure to connect:
    a proxy that read the request and then closed the connection too (urllib3 asks whether
    the connection reached the proxy after closing it; 1.x wraps any socket error through a
    proxy), and a failed TLS handshake with an ``https://`` proxy. Only the wrapped reason,
    the TCP connection's own failure, proves that nothing was sent.
    """
    root = _root(exc)
    if isinstance(root, _CONNECT_REASONS):
        return ConnectError(
            f"cannot connect ({_reason(exc)}); is the agent running and reachable?", **where)
    if isinstance(root, urllib3.exceptions.ProxyError):
        original = root.original_error
        if isinstance(original, _CONNECT_REASONS):
            reason = _plain(original) or type(original).__name__
            return ConnectError(f"cannot connect to the proxy{_proxy(exc)} ({reason}); the "
                                f"request was not sent. {_PROXY_ADVICE}", **where)
        refused = _TUNNEL_REFUSED.match(str(original))
        if refused:  # the proxy's answer to CONNECT, before any request
            return ConnectError(f"the proxy{_proxy(exc)} refused to open a tunnel to the agent "
                                f"({_tunnel_answer(exc, refused)}); the request was not sent. "
                                f"{_PROXY_ADVICE}", **where)
    line = _first_line(root)
    if line is not None:
        return _not_http_reply(line, where)
    return ConnectionLostError(
        f"connection lost before the reply was complete ({_reason(exc)})", **where)


def _first_line(reason: Any) -> Optional[str]:
    """The first line of a reply that is not HTTP at all (SQL, SSH, TLS), else None.

    http.client's BadStatusLine, but not RemoteDisconnected (no reply at all), nor a line
    that starts as HTTP's do: a status line cut short (``HTT``, ``HTTP/1.1 2``) is a lost
    reply, and a blank line may be left over from the connection's previous reply.
    """
    found = next((a for a in (reason, *getattr(reason, "args", ())) if isinstance(
        a, http.client.BadStatusLine) and not isinstance(a, http.client.RemoteDisconnected)),
        None)
    line = getattr(found, "line", None)
    if not isinstance(line, str) or not line.strip() or line.startswith("HTTP/") or \
            "HTTP/".startswith(line):
        return None
    return line


def _not_http_reply(line: str, where: dict[str, Any]) -> DecodeError:
    """A reply that is not HTTP: another service's port, most likely (OceanBase's SQL port).

    Its bytes are quoted escaped, on one line. After a write it proves nothing: an agent's
    reply garbled on the way would look the same (:func:`reply_lost` says so).
    """
    then = ("" if where["method"] in _READS else
            "; if it is, the agent may have carried out the request")
    return DecodeError("the reply is not HTTP: is this obshell's port (2886 by default; 2881 "
                       f"is OceanBase's SQL port)?{then}", excerpt=line[:REPLY_EXCERPT],
                       **where)


_PROXY_ADVICE = (
    "Check the proxy settings (HTTP_PROXY, HTTPS_PROXY or ALL_PROXY, in either case, or a given "
    "session's proxies), or reach the agent without a proxy: add its host to NO_PROXY, or pass "
    "ObshellClient(..., trust_env=False)")
#: How http.client words a proxy's refusal of CONNECT (an HTTPS agent's tunnel): no request
#: to the agent has gone anywhere yet.
_TUNNEL_REFUSED = re.compile(r"Tunnel connection failed:\s*")


def through_proxy(proxy: Optional[str]) -> str:
    """What to say of a reply not obshell's that came through ``proxy`` (its URL); "" for none.

    The proxy is named without its credentials, with how to reach the agent without it: its
    own error page (a 502: it could not reach the agent) reads like a server that is no agent.
    """
    if not proxy:
        return ""
    try:
        url = urllib3.util.parse_url(proxy if "://" in proxy else f"http://{proxy}")
    except ValueError:  # requests could not have sent through it either
        return ""
    if not url.host:
        return ""
    name = f"{url.scheme or 'http'}://{url.host}" + (f":{url.port}" if url.port else "")
    return (f"it came through the proxy {name}: is it the agent's reply, or the proxy's own? "
            f"{_PROXY_ADVICE}")


def _tunnel_answer(exc: BaseException, refused: re.Match[str]) -> str:
    """The proxy's answer to CONNECT (cut to 200 characters); a 407 says what to do."""
    answer = refused.string[refused.end():].strip()
    answer = answer if len(answer) <= 200 else answer[:200] + "..."
    if not answer.startswith("407"):
        return answer
    pool = getattr(exc.args[0] if exc.args else None, "pool", None)
    sent = any(str(name).lower() == "proxy-authorization"
               for name in getattr(pool, "proxy_headers", None) or {})
    if sent:
        return (f"{answer}: it refused the user and password it was given; check them: in its "
                "URL, characters such as @ : / % must be percent-encoded")
    return f"{answer}: it wants a user and password, given in its URL as user:password@host"


def _proxy(exc: BaseException) -> str:
    """The proxy a requests ProxyError is about, as " scheme://host:port" to follow a word.

    urllib3's pool keeps the proxy's URL; its credentials are left out. "" when it says none.
    """
    arg = exc.args[0] if exc.args else None
    proxy = getattr(getattr(arg, "pool", None), "proxy", None)
    host, port = getattr(proxy, "host", None), getattr(proxy, "port", None)
    if not isinstance(host, str) or not host:
        return ""
    scheme = getattr(proxy, "scheme", None) or "http"
    return f" {scheme}://{host}" + (f":{port}" if isinstance(port, int) else "")


def _root(exc: BaseException) -> Any:
    """The underlying reason of a requests ConnectionError (through urllib3's MaxRetryError)."""
    arg = exc.args[0] if exc.args else None
    return arg.reason if isinstance(arg, urllib3.exceptions.MaxRetryError) else arg


def _words(reason: object) -> str:
    """A reason's text; one that wraps another reads "Connection aborted: ...", not a tuple."""
    args = reason.args if isinstance(reason, BaseException) else ()
    if len(args) != 2 or not isinstance(args[0], str) or not isinstance(args[1], BaseException):
        return str(reason)
    inner = _words(args[1])
    return args[0].rstrip(".") + ("" if inner in args[0] else f": {inner}")


def _reason(exc: BaseException) -> str:
    """The words of what a requests exception wraps, or its class's name."""
    return _plain(_root(exc) or exc) or type(exc).__name__


def _plain(reason: object) -> str:
    """A reason's words without the reprs of urllib3's objects ("" when nothing is left)."""
    text = _words(reason)
    # urllib3 prefixes reasons with a connection object's repr (``<...>: `` in 1.x,
    # ``HTTPConnection(host=..., port=...): `` in 2.x); keep the useful tail.
    text = text.split(">: ", 1)[-1]
    text = re.sub(r"^\w+\([^()]*\):\s*", "", text)
    while text.endswith(")") and text.count(")") > text.count("("):  # a repr's tail
        text = text[:-1]
    return printable(text.strip("'\" \r\n"))  # bytes of the reply on one line, escaped


def reply_lost(exc: ObshellError) -> bool:
    """Whether ``exc`` says a sent request's reply was lost: the agent may have carried it out.

    A lost reply (:class:`ConnectionLostError`, its read timeout included), or a gateway's 5xx
    page in its place (a :class:`DecodeError` of status 500 or more: a proxy's 502 or 504), or
    a reply that is not HTTP (:func:`not_http`): another service's, or the agent's garbled.
    """
    return isinstance(exc, ConnectionLostError) or (
        isinstance(exc, DecodeError) and (exc.status >= 500 or not_http(exc)))


def lost_read(exc: ObshellError) -> bool:
    """Whether ``exc`` is a read's lost reply (:func:`reply_lost` of a GET or HEAD).

    A read did nothing on the agent, so sending it again is safe (``method`` says what it was).
    """
    return reply_lost(exc) and getattr(exc, "method", "") in _READS


def not_http(exc: DecodeError) -> bool:
    """Whether ``exc`` is of a reply that is not HTTP at all: no status, its start quoted."""
    return exc.status == 0 and bool(exc.excerpt)
