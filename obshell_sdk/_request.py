"""One HTTP request as the SDK means it: what the client asks for and what goes on the wire.

The client describes a call as a :class:`Request`; the auth flow turns it into the signed
request the transport sends (headers added, the body encrypted). Nothing here does I/O.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import attrs

__all__ = ["CREDENTIAL_HEADERS", "BodyStream", "Request", "scrub"]

#: Makes a streamed body from the AES key and IV the auth header carries (None: send it
#: unencrypted): returns the file-like body and its Content-Type.
BodyStream = Callable[[Optional[bytes]], tuple[Any, str]]


@attrs.frozen
class Request:
    """A request to one agent.

    ``target`` is the request-target exactly as it goes on the wire (``/api/v1/x?y=z``): it is
    what gets signed. Before signing, ``body`` is the plaintext JSON (bytes) or None; after,
    it is what is sent (the encrypted text, or a file-like ``stream`` body). ``signed`` False
    sends the request as it is. ``stream`` makes a body from the header's AES key (uploads);
    ``lifetime`` overrides how long the signed header stays valid. ``file_sha256`` (hex) asks
    for the new upload's file check: the body goes in clear, the digest encrypted.
    """

    method: str
    target: str
    body: Any = attrs.field(default=None, repr=lambda body: "None" if body is None else "...")
    #: Shown by name only: a signed header is a credential for its target while it lasts.
    headers: dict[str, str] = attrs.field(factory=dict,
                                          repr=lambda h: repr(dict.fromkeys(h, "***")))
    signed: bool = True
    stream: Optional[BodyStream] = attrs.field(default=None, eq=False)
    lifetime: Optional[float] = None
    file_sha256: Optional[str] = None

    @property
    def path(self) -> str:
        """The target without its query, for messages."""
        return self.target.partition("?")[0]


#: The headers that carry a credential: a signed header opens its target while it lives.
CREDENTIAL_HEADERS = ("X-OCS-Header", "X-OCS-Agent-Header", "X-OCS-Auth")


def scrub(exc: BaseException) -> None:
    """Mask the credential headers of the request a ``requests`` exception keeps.

    The SDK chains such an exception as its error's ``__cause__``: an error reporter that
    walks it (``error.__cause__.request.headers``) must not find a live signed header.
    """
    response = getattr(exc, "response", None)
    for prepared in (getattr(exc, "request", None), getattr(response, "request", None)):
        headers = getattr(prepared, "headers", None)
        for name in CREDENTIAL_HEADERS:
            if headers is not None and name in headers:
                headers[name] = "***"
