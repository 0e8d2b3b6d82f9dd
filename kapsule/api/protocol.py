"""uvicorn's HTTP/1.1 protocol with a header timeout: a connection must send a whole request head in
``header_timeout_s`` or it is closed.

uvicorn times out idle keep-alive connections but not a request that arrives slowly: 150 connections
that each sent half a request head stayed open indefinitely, each holding a socket and a slot. The
clock starts when the connection opens, or when the next request's first bytes arrive on a kept-alive
one, and stops once h11 has the whole head (a slow body is the route's to judge, not this one's).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderTimeoutProtocol(H11Protocol):
    """``H11Protocol`` that closes a connection whose request head is not complete in time."""

    def __init__(self, *args: Any, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def _watch_head(self) -> None:
        """Run the clock while a head is awaited and bytes of it (or none yet, on a new connection) came."""
        awaiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        kept_alive_and_silent = self.conn.their_state is h11.IDLE and self.timeout_keep_alive_task is not None
        if awaiting and not kept_alive_and_silent and self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._too_slow)
        elif not awaiting:
            self._stop_clock()

    def _stop_clock(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def header_timeout_protocol(header_timeout_s: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class uvicorn's ``http=`` option takes, with the timeout bound."""
    return functools.partial(HeaderTimeoutProtocol, header_timeout_s=header_timeout_s)  # type: ignore[return-value]
