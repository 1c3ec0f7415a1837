"""Below the SDK's HTTP connections: reading past interim (1xx) replies to the final one.

:class:`FinalResponse` is http.client's response read past every interim (1xx) reply to the
final one: http.client skips only ``100 Continue``, and took a ``102 Processing`` or ``103 Early
Hints`` for the reply, giving its connection back to the pool with the real reply still to come,
there to answer the next request sent on it. RFC 9110 (15.2) asks a client to read past interim
replies it did not expect; ``101 Switching Protocols``, never asked for, stays final (the
transport refuses it and closes its connection).
"""

from __future__ import annotations

import http.client

__all__ = ["FinalResponse"]


class FinalResponse(http.client.HTTPResponse):
    """http.client's response, whose :meth:`begin` reads past interim (1xx) replies but 101.

    Installed as ``response_class`` of the SDK's connections, the hook http.client gives for
    it. Each interim reply's headers are read as a final reply's are (at most 100 lines of
    64 KiB each); a flood of interim replies ends at the call's deadline, whose watchdog cuts
    the socket.
    """

    def begin(self) -> None:
        """Read the status line and headers of the final reply (after any interim ones)."""
        super().begin()
        while 100 <= self.status < 200 and self.status != 101:
            # begin() reads a reply only while ``headers`` is None (it is set once read):
            # cleared, the next call reads the next status line and headers afresh.
            self.headers = self.msg = None  # type: ignore[assignment]
            super().begin()
            if self.headers is None:  # a begin() that would not read again: never spin
                raise http.client.HTTPException("cannot read past an interim reply")
