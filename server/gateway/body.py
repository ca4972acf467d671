"""A callback's body, read with bounded work: at most the cap of raw bytes, and at most the
cap of inflated bytes for a compressed one.

aiohttp's own decompression (off here: `auto_decompress=False`, server/gateway/runner.py) inflates
ahead of the reader up to its buffer's high-water mark, and went on inflating after the
413 while it lingered: a 58 KB gzip body that inflates to 60 MB cost 210 ms of CPU a
request; with lingering cut short it still inflated 1.5 MB (six 256 KiB steps). Here the
body is inflated in one `decompress(data, cap + 1)` call: past the cap is a 413, and no byte
more is inflated.
"""

from __future__ import annotations

import zlib

from aiohttp import HttpVersion11, web


class BodyRefused(Exception):
    """The body was not (wholly) read: answer `status` with the one-line `reason`."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_body(request: web.BaseRequest, limit: int) -> bytes:
    """The body; BodyRefused (413) when it is larger than `limit` bytes, raw or inflated
    (each request's client_max_size is `limit`, so aiohttp stops reading as soon as it is
    exceeded), 417 for an `Expect` other than 100-continue, 400 for a body that does not
    decode. `Expect: 100-continue` is answered before reading a body the client is holding
    back (curl does this for bodies over 1 KB)."""
    try:
        content = request.content
        headers = request.headers
        expect = headers.get("Expect")
        if expect is not None and expect.lower() != "100-continue":
            # whether or not the body came in the same packet
            raise BodyRefused(417, f"unknown Expect: {expect[:60]!r}")
        if content.is_eof():
            # The whole body is already buffered (the usual small callback): take it as is,
            # without read()'s loop and copies.
            body = content.read_nowait()
        else:
            if request.content_length is not None and request.content_length > limit:
                raise too_large(limit)  # before asking for it (100-continue)
            if expect is not None and request.version == HttpVersion11:
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large(limit) from None
    except web.RequestPayloadError as exc:
        # A malformed chunked body: the client's fault, a 400 (not a 503 through never_500).
        # aiohttp's text spans two lines.
        cause = getattr(exc.__cause__, "message", None) or str(exc)
        raise BodyRefused(400, f"request body could not be read: {' '.join(str(cause).split())}") from None
    if len(body) > limit:
        raise too_large(limit)
    encoding = headers.get("Content-Encoding")
    if encoding is not None and body:
        return inflate(body, encoding, limit)
    return body


def too_large(limit: int) -> BodyRefused:
    return BodyRefused(413, f"body larger than {limit} bytes")


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """`body` decoded from its Content-Encoding (gzip, deflate, identity), at most `limit`
    bytes inflated: BodyRefused 413 past that, 400 for a body that does not decode, 415 for
    an encoding this gateway does not read (br, zstd, ...)."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return body
    wbits = _WBITS.get(name)
    if wbits is None:
        # RFC 9110 15.5.16: an unsupported content coding is a 415
        raise BodyRefused(415, f"unsupported Content-Encoding {encoding[:40]!r}: send gzip, deflate or none")
    if name == "deflate" and body[0] & 0x0F != 8:
        wbits = -zlib.MAX_WBITS  # raw deflate without the zlib header, as some clients send it
    out = []
    left = limit + 1
    try:
        while body and left > 0:  # concatenated gzip members are one body
            decoder = zlib.decompressobj(wbits)
            chunk = decoder.decompress(body, left)
            out.append(chunk)
            left -= len(chunk)
            if decoder.unconsumed_tail or (not decoder.eof and left <= 0):
                break
            if not decoder.eof:
                raise zlib.error("truncated")
            body = decoder.unused_data
    except zlib.error:
        raise BodyRefused(400, f"request body could not be read: it does not decode as content-encoding {name}") from None
    if left <= 0:
        raise too_large(limit)
    return b"".join(out)
