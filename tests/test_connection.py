"""The gateway's connections on raw sockets: requests aiohttp's parser refuses get the
gateway's own one-line refusal (counted, shown, nothing echoed), a head must be complete
in time, `Expect` is checked however the body arrives, a refused compressed body is not
inflated further, and idle keep-alive connections stay."""

from __future__ import annotations

import asyncio
import gzip
import logging
import re
import time
import zlib

import pytest

from server.broker import Broker, RequestRejected
from server.config import GatewayConfig

DELIVERY = b"type=delivery_report&api_key=k&message_id=m1&final=1&status=1"


def _post(body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n" + extra
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


async def _answer(reader: asyncio.StreamReader, timeout: float = 3) -> tuple[bytes, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), timeout)
    return status.encode(), headers, body


@pytest.fixture
async def serve(gateway_server, store):
    async def start(**config):
        broker = Broker()
        heard: list[RequestRejected] = []
        broker.subscribe(lambda event: heard.append(event) if isinstance(event, RequestRejected) else None)
        server = await gateway_server(GatewayConfig(**config), broker, store)
        return server, heard

    return start


@pytest.mark.parametrize("request_bytes", [
    b"POST /?api_key=secret-key-1 HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n",
    b"post /?api_key=secret-key-1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /?api_key=secret-key-1\x01 HTTP/9.9\r\n\r\n",
    b"POST /?api_key=secret-key-1 HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 9000 + b"\r\n\r\n",
], ids=["bad header", "lowercase method", "bad request line", "header too long"])
async def test_a_request_the_parser_refuses_gets_our_one_line_400(serve, caplog, request_bytes):
    server, heard = await serve()
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(request_bytes)
    status, headers, body = await _answer(reader)
    assert status == b"HTTP/1.1 400 Bad Request"
    assert headers["connection"] == "close"
    text = body.decode()
    assert text.endswith("\n") and text.count("\n") == 1 and text.startswith("malformed request: ")
    assert "secret" not in text and "api_key" not in text
    assert await asyncio.wait_for(reader.read(), 3) == b""  # closed
    writer.close()
    # counted and shown like every other refusal; no traceback, no echo in any log
    assert [(event.status, event.reason) for event in heard] == [(400, text.strip())]
    assert server.gateway.stats.rejected == 1
    assert not [r for r in caplog.records if r.exc_info or "secret" in r.getMessage()]


async def test_expect_other_than_continue_is_417_when_the_body_came_in_the_same_packet(serve, store):
    server, heard = await serve()
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(_post(DELIVERY, b"Expect: 200-ok\r\n"))  # head and body in one write
    status, _, body = await _answer(reader)
    assert status == b"HTTP/1.1 417 Expectation Failed" and body == b"unknown Expect: '200-ok'\n"
    writer.close()
    assert store.recent_callbacks() == [] and [e.status for e in heard] == [417]


async def test_a_head_not_complete_in_time_is_closed_with_408(serve):
    server, heard = await serve(head_timeout=0.3)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    started = time.monotonic()
    status = b""
    for byte in b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: yyyyyyyyyyyyyyyy":  # a byte every 50 ms
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            break
        await asyncio.sleep(0.05)
        if reader.at_eof() or len(reader._buffer):  # the answer is in
            break
    status, _, body = await _answer(reader)
    assert status == b"HTTP/1.1 408 Request Timeout" and body == b"request head not complete within 0.3 s\n"
    assert 0.25 < time.monotonic() - started < 1.0
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()
    assert [event.status for event in heard] == [408]


async def test_a_connection_that_sends_nothing_is_closed_quietly(serve):
    server, heard = await serve(head_timeout=0.3)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    assert heard == []  # no request, so no refusal to show


async def test_idle_keep_alive_connections_from_one_address_stay_open(serve, store):
    """The SL sends many callbacks at once from one address: 500 connections, each answered,
    idle for longer than the head deadline, then used again."""
    server, _ = await serve(head_timeout=0.3)
    conns = []
    for _ in range(500):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(_post(DELIVERY))
        conns.append((reader, writer))
    assert {(await _answer(reader))[0] for reader, _ in conns} == {b"HTTP/1.1 200 OK"}
    await asyncio.sleep(0.6)
    for reader, writer in conns:
        writer.write(_post(DELIVERY))
    assert {(await _answer(reader))[0] for reader, _ in conns} == {b"HTTP/1.1 200 OK"}
    for _, writer in conns:
        writer.close()
    assert store.stats().callbacks == 1000


async def test_a_refused_gzip_body_is_not_inflated_past_the_cap(serve):
    """58 KB inflating to 60 MB: the 413 came at once, but the inflating went on (210 ms of
    CPU a request, here); the rest is now dropped unread and the connection closes."""
    server, heard = await serve()
    bomb = gzip.compress(b"body=" + b"x" * 60_000_000, 9)
    cpu = []
    for _ in range(3):
        started = time.process_time()
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(_post(bomb, b"Content-Encoding: gzip\r\n"))
        status, _, body = await _answer(reader)
        assert status.startswith(b"HTTP/1.1 413") and re.fullmatch(rb"body larger than \d+ bytes\n", body)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
        writer.close()
        cpu.append(time.process_time() - started)
    assert min(cpu) < 0.03, cpu  # server and client together, in this process
    assert [event.status for event in heard] == [413] * 3


@pytest.mark.parametrize("encoding,body,status", [
    ("gzip", gzip.compress(DELIVERY[:30]) + gzip.compress(DELIVERY[30:]), 200),  # two members, one body
    ("deflate", zlib.compress(DELIVERY), 200),
    ("deflate", zlib.compress(DELIVERY)[2:-4], 200),  # raw deflate, no zlib header
    ("identity", DELIVERY, 200),
    ("gzip", gzip.compress(DELIVERY)[:-9], 400),  # cut short
    ("br", DELIVERY, 415),
])
async def test_content_encodings_the_gateway_inflates_itself(serve, store, encoding, body, status):
    server, _ = await serve()
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(_post(body, f"Content-Encoding: {encoding}\r\n".encode()))
    got, _, text = await _answer(reader)
    writer.close()
    assert int(got.split()[1]) == status, text
    if status == 200:
        assert store.recent_callbacks(1)[0].fields["message_id"] == "m1"
    else:
        assert text.count(b"\n") == 1 and (b"content-encoding" in text.lower())


async def test_a_bomb_is_inflated_no_further_than_the_cap(serve):
    """The cap is what a body may cost, compressed or not: 64 KiB + 1 inflated, then 413."""
    server, _ = await serve(max_body=1000)
    exact = gzip.compress(b"body=" + b"x" * 995)  # 1,000 bytes inflated: accepted
    over = gzip.compress(b"body=" + b"x" * 996)
    for body, status in ((exact, 400), (over, 413)):  # 400: no 'type', but read
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(_post(body, b"Content-Encoding: gzip\r\n"))
        got, _, _ = await _answer(reader)
        writer.close()
        assert int(got.split()[1]) == status
