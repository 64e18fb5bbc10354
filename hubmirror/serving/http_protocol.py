"""uvicorn's HTTP/1.1 protocol (h11) with a bound on the time a client may take to send a request's head: uvicorn
has none, so a client that trickles header bytes holds its connection, and a few hundred hold the server.

The head of each request (the first, and every later one on a kept-alive connection) must arrive within
`HUBMIRROR_HEADER_TIMEOUT` seconds (10) of the connection or of the previous response; else the connection is closed.
A request's body and the answer are bounded elsewhere (`bodies.py`, the response itself)."""

from __future__ import annotations

import os

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_ENV = "HUBMIRROR_HEADER_TIMEOUT"
DEFAULT_HEADER_TIMEOUT = 10.0


class HeadTimeoutH11(H11Protocol):
    _head_timer = None
    _awaited = None  # the request cycle there was when the timer started: a new one means the head arrived

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is not None and self.cycle is not self._awaited:
            self._head_timer.cancel()
            self._head_timer = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._head_timer is None:
            self._start_head_timer()  # the next request's head, on this kept-alive connection

    def connection_lost(self, exc) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        seconds = float(os.environ.get(HEADER_TIMEOUT_ENV) or DEFAULT_HEADER_TIMEOUT)
        self._awaited = self.cycle
        self._head_timer = self.loop.call_later(seconds, self._head_too_slow)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.cycle is self._awaited and not self.transport.is_closing():
            self.transport.close()
