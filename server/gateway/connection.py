"""The gateway's HTTP connections: aiohttp's connection handler with the gateway's own
refusals, a deadline for the request head, and a way to stop reading a refused body.

- A request aiohttp's parser refuses (a bad header, a lowercase method, a bad request line)
  used to get aiohttp's `HTTP/1.0 400` with the parser's text (the request line, an
  `api_key` in its query string included) and a traceback on stderr, and was counted
  nowhere. Here it goes through the gateway's refusal (`Refuse`): a one-line reason that
  never echoes the peer's bytes, counted and shown like every other refusal, no traceback.
- A head (request line and headers) must be complete within `head_timeout` seconds of its
  first byte, or of the connection opening: slow clients sending a byte every 250 ms used
  to keep their connections for the keep-alive timeout (75 s). An idle keep-alive
  connection between requests is not affected, and nothing counts connections per peer
  address (the SL sends its callbacks from one address, over many connections at once).
- `stop_reading()`: the rest of a refused body is dropped unparsed (bodies are inflated,
  with a bound, by server/gateway/body.py, not by aiohttp); the connection closes after the refusal.

The hot path is `data_received`: one call and a comparison more than aiohttp's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, LineTooLong
from aiohttp.web_protocol import RequestHandler

from server.gateway.descriptors import AcceptGate
from server.gateway.prebuilt import ClosingResponse, refusal_bytes

DISCARD_SECONDS = 2.0
"""How long the rest of a refused body is read and dropped before the connection closes."""

Refuse = Callable[[str, int, str], None]
"""(peer, status, reason): count the refusal and tell the console (the gateway's one path)."""

_SAFE_REASON = re.compile(r"[A-Za-z][A-Za-z0-9 ,.-]{0,79}")


def parse_refusal_reason(exc: BaseException | None) -> str:
    """A one-line reason for a request the HTTP parser refused, without the peer's bytes:
    llhttp's own description (a fixed text such as "Invalid method encountered") when there
    is one, else the kind of error."""
    if isinstance(exc, LineTooLong):
        return "malformed request: a line of the request head is too long"
    message = str(getattr(exc, "message", "") or "")
    if "HTTPS traffic" in message:
        return "malformed request: HTTPS sent to an HTTP port"
    parts = [part.strip() for part in message.split(":")]
    if parts and parts[0] == "Bad status line" and len(parts) > 1:
        parts = parts[1:]
    if parts and _SAFE_REASON.fullmatch(parts[0]):
        return f"malformed request: {parts[0]}"
    if isinstance(exc, BadHttpMethod):
        return "malformed request: invalid method"
    return f"malformed request: {type(exc).__name__ if exc is not None else 'unreadable'}"


class GatewayConnection(RequestHandler):
    """One client connection (see the module docstring)."""

    __slots__ = ("_refuse", "_head_timeout", "_head_timer", "_head_started", "_body")

    def __init__(self, manager: "GatewayHTTPServer", *, loop: Any, refuse: Refuse, head_timeout: float,
                 **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._refuse = refuse
        self._head_timeout = head_timeout
        self._head_timer: Any = None
        self._head_started = False
        """Part of a head has arrived (a refusal is owed when its deadline passes)."""
        self._body: Any = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._head_timer = self._loop.call_later(self._head_timeout, self._head_late)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        count = self._request_count
        super().data_received(data)
        if self._request_count != count:
            # a head is complete (or refused): its body, if any, is the payload's business
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            self._head_started = False
            self._body = self._messages[-1][1] if self._messages else None
        elif data and (self._body is None or self._body.is_eof()):
            self._head_started = True
            if self._head_timer is None:
                self._head_timer = self._loop.call_later(self._head_timeout, self._head_late)

    def _head_late(self) -> None:
        """The head's deadline: close the connection (with a 408 if it sent part of a head)."""
        self._head_timer = None
        transport = self.transport
        if transport is None or self._force_close or self._close:
            return
        if self._request_in_progress:
            # a pipelined head behind a request still being answered: judge it afterwards
            self._head_timer = self._loop.call_later(self._head_timeout, self._head_late)
            return
        if not self._head_started:
            self.force_close()  # it sent nothing: nothing unread, nothing to answer
            return
        reason = f"request head not complete within {self._head_timeout:g} s"
        self._refuse(_peer(transport), 408, reason)
        # Answer, end our side, and read (dropping it) what is still coming for a moment:
        # closing with unread bytes would reset the connection and lose the 408.
        self._close = True  # data_received parses nothing from here on
        transport.write(refusal_bytes(408, reason))
        if transport.can_write_eof():
            transport.write_eof()
        self._loop.call_later(DISCARD_SECONDS, self.force_close)

    def stop_reading(self) -> None:
        """Parse no more of this connection (the rest of a refused body is not decoded) and
        close it once the answer is out. Until then, for at most
        DISCARD_SECONDS, what the client still sends is read and dropped: closing a socket
        with unread bytes resets it, and the client would lose the refusal."""
        self._lingering_time = DISCARD_SECONDS
        self.close()  # data_received parses nothing from here on
        self._buffer_paused = False
        self._reading_paused = False
        self._resume_transport_reading()

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's parser refused the request (400), or a handler raised (500; the
        gateway's handlers answer their own errors, so this is a bug): the gateway's one-line
        refusal, counted and shown, with no traceback and nothing of the request echoed."""
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was already sent on this connection")
        if status == 400:
            reason = parse_refusal_reason(exc)
        else:
            status = 503
            reason = f"switchboard could not handle this request: {type(exc).__name__ if exc else 'error'}"
        self._refuse(request.remote or "", status, reason)
        return ClosingResponse(refusal_bytes(status, reason))


def _peer(transport: Any) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


class GatewayHTTPServer(web.Server):
    """aiohttp's low-level server making `GatewayConnection`s."""

    def __init__(self, handler: Any, *, refuse: Refuse, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._refuse = refuse
        self._head_timeout = head_timeout
        self.gate: AcceptGate | None = None
        """Set once listening (server/gateway/runner.py): told of each new connection's descriptor."""

    def connection_made(self, handler: RequestHandler, transport: Any) -> None:
        super().connection_made(handler, transport)
        gate = self.gate
        if gate is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                gate.opened(sock.fileno())

    def __call__(self) -> GatewayConnection:
        return GatewayConnection(self, loop=self._loop, refuse=self._refuse, head_timeout=self._head_timeout,
                                 **self._kwargs)
