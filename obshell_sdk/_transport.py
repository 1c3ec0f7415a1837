"""The signed-call plumbing under ObshellClient: sign, send, map errors, recover once."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, MutableMapping
from datetime import datetime
from typing import Any, Callable, Optional, Union

import requests
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict

from ._auth import PasswordAuth, SignedRequest
from ._exceptions import (
    AuthError,
    AuthExpiredError,
    ConnectionLostError,
    DecodeError,
    DecryptFailedError,
    InvalidArgumentError,
    ObshellError,
    PasswordKindError,
)
from ._http import ReplyTooLargeError, envelope_from_response, read_capped, transport_error
from ._models import AgentInfo, AgentSecret, Envelope
from ._validate import check_language, check_timeout
from ._wire import p_str, p_time

__all__ = ["TRACE_HEADER", "BodyFactory", "Cert", "Timeout", "Transport"]

log = logging.getLogger("obshell_sdk")

TRACE_HEADER = "X-OBSHELL-Trace-ID"
Timeout = Union[float, tuple[float, float]]
Cert = Union[str, tuple[str, str]]
#: Makes a request body from the signing result (None when unsigned): (data, extra headers).
BodyFactory = Callable[[Optional[SignedRequest]], tuple[Any, Mapping[str, str]]]


class Transport:
    """Signed calls to one agent; :class:`ObshellClient` adds the API on top."""

    auth: Optional[PasswordAuth]
    agent: str
    base_url: str
    timeout: tuple[float, float]
    _session: requests.Session
    _verify: Union[bool, str]
    _cert: Optional[Cert]
    _proxies: Optional[MutableMapping[str, str]]
    _closed: bool
    _uris: dict[str, tuple[str, str]]
    _owns_session: bool
    _accept_language: Optional[str]

    @property
    def accept_language(self) -> Optional[str]:
        """The language tag sent as ``Accept-Language`` (None: the agent's default, English)."""
        return self._accept_language

    @accept_language.setter
    def accept_language(self, value: Optional[str]) -> None:
        self._accept_language = check_language(value)

    def info(self) -> AgentInfo:
        """``GET /api/v1/info``: identity, version and auth abilities of the agent (no auth)."""
        envelope = self.call("GET", "/api/v1/info", signed=False)
        return AgentInfo.from_json(envelope.data)

    def server_time(self) -> Optional[datetime]:
        """``GET /api/v1/time``: the agent's clock (no auth)."""
        envelope = self.call("GET", "/api/v1/time", signed=False)
        return p_time(p_str(envelope.data, "data"), "data")

    def call(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        body: Optional[Any] = None,
        signed: bool = True,
        timeout: Optional[Timeout] = None,
    ) -> Envelope:
        """Send one call and return its envelope; the building block of every method.

        ``path`` and ``query`` go on the wire exactly as given (they are signed byte for byte);
        ``body`` is JSON-encoded (and AES-encrypted under auth v2).
        A signed call whose header the agent cannot decrypt (its key changed) or finds expired
        (clocks disagree) is signed again and sent once more: the agent rejected it before
        doing anything, so this never runs an operation twice.
        """
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()

        def json_body(signed_req: Optional[SignedRequest]) -> tuple[Any, dict[str, str]]:
            if signed_req is None:
                return data, {}
            extra = {"Content-Type": "application/json"} if data is not None else {}
            return signed_req.body, extra

        return self.send_signed(method, path, query=query, body=json_body, plain_body=data,
                                signed=signed, timeout=timeout)

    def send_signed(
        self,
        method: str,
        path: str,
        *,
        body: BodyFactory,
        query: str = "",
        plain_body: Optional[bytes] = None,
        signed: bool = True,
        timeout: Optional[Timeout] = None,
        lifetime: Optional[float] = None,
        stream_key: bool = False,
    ) -> Envelope:
        """Like :meth:`call`, with the body made by ``body(signed_request)`` on every attempt.

        For streamed uploads: ``stream_key`` puts a fresh AES key in the header (returned in
        ``SignedRequest.key_iv``) for the factory to encrypt with; ``lifetime`` overrides the
        header's lifetime. ``plain_body`` is what is signed when the body is small bytes.
        """
        if self._closed:
            raise ObshellError("this ObshellClient is closed; make a new one")
        method = method.upper()
        uri, url = self._wire_uri(path, query)
        limit = self.timeout if timeout is None else check_timeout(timeout, "timeout")
        if not signed:
            data, headers = body(None)
            return self._send(method, path, uri, url, data, dict(headers), limit)
        auth = self.auth
        if auth is None:
            raise InvalidArgumentError(
                "auth",
                f"{method} {path} needs credentials: ObshellClient(..., auth=PasswordAuth(...))",
            )
        key_refetched = clock_fixed = relearned = False
        while True:
            signed_req = self._sign(auth, uri, plain_body, lifetime, stream_key,
                                    reuse=method == "GET")
            data, extra = body(signed_req)
            headers = dict(signed_req.headers)
            if signed_req.version == "v1" or stream_key:
                headers.update(extra)
            try:
                return self._send(method, path, uri, url, data, headers, limit)
            except DecryptFailedError:
                if key_refetched:
                    raise
                key_refetched = True
                log.info("agent %s could not decrypt our header; refetching its key", self.agent)
                auth.forget_key(self.agent, signed_req.key)
            except AuthExpiredError:
                if clock_fixed or not self._measure_clock(auth):
                    raise
                clock_fixed = True
            except AuthError as exc:
                # The agent may have changed under us (upgraded from 4.2.2, agent password set
                # or cleared): ask it again once. It rejected the call before doing anything.
                if relearned or not _may_be_stale(exc):
                    raise
                relearned = True
                log.info("agent %s refused our header (%s); asking it how to sign again",
                         self.agent, exc.err_code or exc.code)
                auth.forget_agent(self.agent)

    def _sign(
        self, auth: PasswordAuth, uri: str, body: Optional[bytes], lifetime: Optional[float],
        stream_key: bool, *, reuse: bool = False,
    ) -> SignedRequest:
        """Sign, fetching what the agent's auth needs first (another thread may drop a key)."""
        for _ in range(5):
            self._ensure_auth(auth)
            try:
                return auth.sign(self.agent, uri, body, time.time(), lifetime=lifetime,
                                 stream_key=stream_key, reuse=reuse)
            except LookupError:
                continue
        raise ObshellError(f"agent {self.agent}: its key kept changing while signing; try again")

    def _wire_uri(self, path: str, query: str) -> tuple[str, str]:
        """The request-target exactly as ``requests`` sends it, and the full URL.

        The request-target is what gets signed.
        """
        raw = f"{path}?{query}" if query else path
        found = self._uris.get(raw)
        if found is None:
            prepared = requests.PreparedRequest()
            prepared.prepare_url(self.base_url + raw, None)
            assert prepared.url is not None
            found = (prepared.path_url, prepared.url)
            if len(self._uris) < 1024:
                self._uris[raw] = found
        return found

    def _ensure_auth(self, auth: PasswordAuth) -> None:
        state = auth.state(self.agent)
        if state.version is not None and state.key is not None:
            return
        with state.fetch_lock:  # one fetch per agent, however many threads ask
            if state.version is None:
                auth.learn_agent(self.agent, self.info())
            if state.key is None:
                reply = self.call("GET", "/api/v1/secret", signed=False)
                secret = AgentSecret.from_json(reply.data)
                try:
                    auth.learn_key(self.agent, secret.public_key)
                except ValueError as exc:
                    raise DecodeError(str(exc), where="data.public_key") from None

    def _measure_clock(self, auth: PasswordAuth) -> bool:
        """Learn how far the agent's clock is from ours; True if that changes our expiry times."""
        before = time.time()
        try:
            agent_now = self.server_time()
        except ObshellError as exc:
            log.info("agent %s: could not read its clock (%s)", self.agent, exc)
            return False
        after = time.time()
        if agent_now is None:
            return False
        offset = agent_now.timestamp() - (before + after) / 2
        old = auth.state(self.agent).clock_offset
        auth.set_clock_offset(self.agent, offset)
        log.warning(
            "agent %s: its clock is %+.1f s from ours; signing with that offset", self.agent, offset
        )
        return abs(offset - old) >= 1.0

    def _send(
        self,
        method: str,
        path: str,
        uri: str,
        url: str,
        data: Any,
        headers: dict[str, str],
        timeout: tuple[float, float],
    ) -> Envelope:
        headers[TRACE_HEADER] = os.urandom(8).hex()
        if self._accept_language:
            headers["Accept-Language"] = self._accept_language
        started = time.monotonic()
        session = self._session
        try:
            if (self._owns_session and (data is None or type(data) is bytes)
                    and not session.cookies):
                resp = self._send_direct(method, url, data, headers, timeout)
            else:
                resp = session.request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    timeout=timeout,
                    verify=self._verify,
                    cert=self._cert,
                    proxies=self._proxies,
                    allow_redirects=False,
                    stream=True,
                )
            try:
                content = read_capped(resp)
            finally:
                resp.close()
        except requests.RequestException as exc:
            raise transport_error(exc, method=method, path=path, agent=self.agent) from exc
        except ReplyTooLargeError as exc:
            raise DecodeError(f"{method} {path}: {exc}", status=resp.status_code) from None
        if content is None:
            raise ConnectionLostError(
                "reply shorter than its Content-Length (connection cut)",
                method=method, path=path, agent=self.agent,
            )
        log.debug(
            "%s %s -> %d in %.0f ms (trace %s)", method, uri, resp.status_code,
            (time.monotonic() - started) * 1000, headers[TRACE_HEADER],
        )
        return envelope_from_response(resp, content, method=method, path=path)

    def _send_direct(
        self,
        method: str,
        url: str,
        data: Optional[bytes],
        headers: dict[str, str],
        timeout: tuple[float, float],
    ) -> requests.Response:
        """What ``Session.request`` does for our own session, without its generic machinery.

        Our session has no cookies, auth, hooks or params and reads no environment per call
        (that was done once), and we never follow redirects; so the request is prepared
        directly and handed to the session's adapter. That is a third of a call's CPU.
        A cookie the agent (or a proxy before it) sets is still kept, and from then on calls
        go through ``Session.request``, which sends it back.
        """
        session = self._session
        prepared = requests.PreparedRequest()
        prepared.method = method
        prepared.url = url
        merged: CaseInsensitiveDict[Union[str, bytes]] = CaseInsensitiveDict(session.headers)
        merged.update(headers)
        prepared.headers = merged  # type: ignore[assignment]
        prepared.prepare_body(data, None)  # body and Content-Length, exactly as requests sets them
        resp = session.get_adapter(url).send(
            prepared, stream=True, timeout=timeout, verify=self._verify, cert=self._cert,
            proxies=self._proxies or {},
        )
        if "Set-Cookie" in resp.headers:
            extract_cookies_to_jar(  # type: ignore[no-untyped-call]
                session.cookies, prepared, resp.raw
            )
        return resp


def _may_be_stale(exc: AuthError) -> bool:
    """Tell whether this rejection may come from auth settings the agent has since outgrown."""
    return (
        isinstance(exc, PasswordKindError)
        or exc.err_code == "Request.Header.NotFound"
        or (not exc.err_code and exc.code == 10008)
    )
