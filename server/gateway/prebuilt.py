"""Callback answers written to the connection as ready-made bytes.

aiohttp's `web.Response` builds every answer through a chain of small coroutines and a
header multidict, each time; for the answers the gateway sends, that chain is the largest
piece of Switchboard's own work per callback (docs/performance.md has the figures).

An answer is a status line and four headers, always the same ones:
`Content-Type`, `Content-Length`, `Date` and `Server` (aiohttp's own `Server` value, so
what a client sees does not change). An answer sent again within a second, such as the
empty 200 of every callback that expects none, is built once (`AnswerBytes`).

Only a request that keeps its connection open over HTTP/1.1 gets these bytes (the usual
SL case). HTTP/1.0, `Connection: close` and anything else unusual are answered by
`web.Response`, which knows the rules for closing and `Keep-Alive` (`prebuilt_ok`
decides, in the gateway's one answer path).

`PrebuiltResponse` is what aiohttp's request handler expects of a response (it awaits
`prepare(request)`, then `write_eof()`, then reads `keep_alive`). It writes through the
request's public `writer` and then drains it, as `web.Response` does: while a client does
not read its answers, the handler waits, aiohttp stops reading that connection, and the
client meets TCP backpressure (tests/test_prebuilt.py has such a client). Disconnects are
handled by aiohttp as before. Only the answers of the callback handler
(`CallbackEndpoint`) are built here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus

from aiohttp import HttpVersion11, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import SERVER_SOFTWARE

from server.sms.contract import EncodedResponse

_SERVER = SERVER_SOFTWARE.encode("ascii")


class PrebuiltResponse:
    """An answer whose status line, headers and body are already bytes."""

    __slots__ = ("data",)

    keep_alive = True
    """Only keep-alive HTTP/1.1 requests are answered this way (see `wire`)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter:
        writer = request.writer
        await writer.write(self.data)
        # As web.Response's write_eof does: wait while the client does not read (the
        # transport paused writing). write() alone drains only past 64 KiB per response, so
        # a pipelining client that never reads would have its answers pile up in memory.
        await writer.drain()
        return writer

    async def write_eof(self, data: bytes = b"") -> None:
        """Everything went out in `prepare`."""


class ClosingResponse(PrebuiltResponse):
    """Ready-made bytes that end the connection (`Connection: close` is in them): the
    gateway's refusals of requests it could not read (server/gateway/connection.py)."""

    __slots__ = ()

    keep_alive = False


def head(status: int, content_type: str, length: int, date: bytes, close: bool = False) -> bytes:
    """The status line and headers of an answer (`content_type` is the gateway's own
    constant, never a peer's text: it is checked for line breaks all the same)."""
    if "\r" in content_type or "\n" in content_type:
        raise ValueError("line break in a content type")
    reason = HTTPStatus(status).phrase
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s; charset=utf-8\r\nContent-Length: %d\r\nDate: %s\r\nServer: %s\r\n%s\r\n" % (
        status, reason.encode("ascii"), content_type.encode("ascii"), length, date, _SERVER,
        b"Connection: close\r\n" if close else b"",
    )


def refusal_bytes(status: int, reason: str) -> bytes:
    """A one-line refusal that closes the connection (`reason` is the gateway's own text)."""
    body = (reason + "\n").encode("utf-8")
    return head(status, "text/plain", len(body), formatdate(usegmt=True).encode("ascii"), close=True) + body


class AnswerBytes:
    """Answers as bytes. The `Date` header changes once a second, and so does what is kept:
    an answer sent again within the second (the empty 200 of every delivery report, the
    fallback of a burst that times out) is built once. At most `KEEP` answers are kept."""

    KEEP = 64

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._second = -1
        self._date = b""
        self._kept: dict[EncodedResponse, bytes] = {}

    def __call__(self, encoded: EncodedResponse) -> bytes:
        now = int(self._clock())
        if now != self._second:
            self._second = now
            self._date = formatdate(now, usegmt=True).encode("ascii")
            self._kept = {}
        data = self._kept.get(encoded)
        if data is None:
            body = encoded.body.encode("utf-8")
            data = head(encoded.status, encoded.content_type, len(body), self._date) + body
            if len(self._kept) < self.KEEP:
                self._kept[encoded] = data
        return data


def prebuilt_ok(request: web.BaseRequest) -> bool:
    """Whether `request` may be answered with ready-made bytes: HTTP/1.1 and keep-alive.
    Everything else gets aiohttp's `web.Response`, which closes connections by the rules."""
    return request.version == HttpVersion11 and request.keep_alive
