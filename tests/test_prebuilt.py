"""Answers as ready-made bytes (server/gateway/prebuilt.py), read off a raw socket from the real
gateway: framing a keep-alive client can rely on (pipelined requests, UTF-8 bodies), the
same headers aiohttp's `web.Response` sends, and aiohttp's own path for HTTP/1.0 and
`Connection: close`."""

from __future__ import annotations

import asyncio
import socket
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

import pytest
from aiohttp.http import SERVER_SOFTWARE

from server.broker import Broker
from server.config import GatewayConfig
from server.sms.contract import EMPTY_RESPONSE, Decision, EncodedResponse
from server.gateway.prebuilt import AnswerBytes, head

from .conftest import INCOMING
from .test_gateway import Operator

REPORT = b"type=delivery_report&api_key=k&message_id=%d&final=1&status=1"


def post(body: bytes, version: str = "1.1", extra: str = "") -> bytes:
    return (f"POST / HTTP/{version}\r\nHost: sl\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body


async def read_answer(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    """One HTTP answer: status line, headers (lower-case names, each once), body by Content-Length."""
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status, *lines = raw[:-4].split(b"\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        assert name.lower() not in headers, f"header {name} sent twice"
        headers[name.lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    return status, headers, body


async def test_pipelined_reports_each_get_a_whole_answer_and_the_connection_stays(gateway_server, store):
    server = await gateway_server(GatewayConfig(), Broker(), store)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"".join(post(REPORT % n) for n in range(3)))  # three in one segment
    answers = [await read_answer(reader) for _ in range(3)]
    for status, headers, body in answers:
        assert status == b"HTTP/1.1 200 OK"
        assert headers == {
            "content-type": "text/plain; charset=utf-8",
            "content-length": "0",
            "date": headers["date"],
            "server": SERVER_SOFTWARE,
        }
        assert body == b""
        assert abs(parsedate_to_datetime(headers["date"]).timestamp() - time.time()) < 5
    writer.write(post(REPORT % 3))  # and the connection is still good for more
    assert (await read_answer(reader))[0] == b"HTTP/1.1 200 OK"
    writer.close()
    assert sorted(cb.fields["message_id"] for cb in store.recent_callbacks()) == ["0", "1", "2", "3"]


async def test_a_held_reply_in_utf8_is_framed_by_its_bytes(gateway_server, store):
    broker = Broker()
    reply = "Café ☕ open till 9 — 🎉"
    Operator(broker, Decision(reply=reply))
    server = await gateway_server(GatewayConfig(), broker, store)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(post(urlencode(INCOMING).encode()) + post(REPORT % 7))
    status, headers, body = await read_answer(reader)
    assert status == b"HTTP/1.1 200 OK"
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert body.decode("utf-8") == reply and int(headers["content-length"]) == len(reply.encode())
    # the pipelined report's answer starts exactly where the reply's body ended
    assert (await read_answer(reader))[:2][0] == b"HTTP/1.1 200 OK"
    writer.close()


async def test_a_json_decision_keeps_its_content_type(gateway_server, store):
    broker = Broker()
    Operator(broker, Decision(reply="Bye", close_session=True))
    server = await gateway_server(GatewayConfig(), broker, store)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(post(urlencode(INCOMING).encode()))
    status, headers, body = await read_answer(reader)
    writer.close()
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert body == store.response_for(store.recent_callbacks()[0].seq).body.encode()


@pytest.mark.parametrize(("version", "extra"), [("1.0", ""), ("1.1", "Connection: close\r\n")])
async def test_closing_clients_get_aiohttps_answer_and_the_same_headers(gateway_server, store, version, extra):
    """A client that will not keep the connection gets `web.Response`, which knows the
    rules; its headers are the ready-made ones, plus `Connection: close` on HTTP/1.1."""
    server = await gateway_server(GatewayConfig(), Broker(), store)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(post(REPORT % 1))
    fast = await read_answer(reader)
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(post(REPORT % 2, version, extra))
    status, headers, body = await read_answer(reader)
    assert status == f"HTTP/{version} 200 OK".encode()
    if version == "1.1":
        assert headers.pop("connection") == "close"
    headers["date"] = fast[1]["date"]
    assert (headers, body) == fast[1:]
    assert await asyncio.wait_for(reader.read(), 5) == b""  # and the server closed it
    writer.close()


async def test_a_client_that_never_reads_meets_backpressure_not_a_growing_buffer(gateway_server, store):
    """A pipelining client that stops reading: its answers must not pile up in the server's
    memory. The handler waits for the transport to drain, aiohttp stops reading the
    connection, and the client's sends block (found by review: without the drain the
    buffer grew by 136 bytes a request, 26 MB in a minute)."""
    server = await gateway_server(GatewayConfig(), Broker(), store)
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", server.port))
    # one pipelined stream of 20,000 reports (about 3 MB), never cancelled halfway
    sender = asyncio.ensure_future(loop.sock_sendall(sock, b"".join(post(REPORT % n) for n in range(20_000))))
    try:
        while not server.runner.server.connections:
            await asyncio.sleep(0.01)
        (connection,) = server.runner.server.connections
        # small kernel buffers on the server's side too, so what is not sent shows in asyncio's
        connection.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        # one connection is answered in order, a round each: about 1,000 a second here
        # until it stops taking requests (1 s without one more), 2,000 are taken, or 4 s pass
        deadline, seen, still_since = loop.time() + 4, -1, loop.time()
        while loop.time() < deadline and seen < 2_000 and loop.time() - still_since < 1:
            await asyncio.sleep(0.05)
            if server.gateway.stats.received != seen:
                seen, still_since = server.gateway.stats.received, loop.time()
        buffered = connection.transport.get_write_buffer_size()
        processed = server.gateway.stats.received
    finally:
        sender.cancel()
        sock.close()
    assert buffered <= 128 * 1024, f"{buffered} bytes of answers queued for a client that does not read"
    assert 0 < processed < 2_000, f"{processed} callbacks taken from a client that reads nothing"


def test_an_answer_is_built_once_a_second_and_dated():
    now = [0.2]
    answers = AnswerBytes(clock=lambda: now[0])
    first = answers(EMPTY_RESPONSE)
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b"\r\n\r\n")
    assert b"\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n" in first
    now[0] = 0.9
    assert answers(EMPTY_RESPONSE) is first  # the same second: the same bytes, not rebuilt
    assert answers(EncodedResponse("", "text/plain")) is first  # an equal answer is the same answer
    now[0] = 1.0
    assert b"\r\nDate: Thu, 01 Jan 1970 00:00:01 GMT\r\n" in answers(EMPTY_RESPONSE)
    reply = answers(EncodedResponse("é", "text/plain"))
    assert reply.endswith(b"Content-Length: 2\r\nDate: Thu, 01 Jan 1970 00:00:01 GMT\r\n"
                          b"Server: " + SERVER_SOFTWARE.encode() + b"\r\n\r\n\xc3\xa9")


def test_what_is_kept_for_a_second_is_bounded():
    answers = AnswerBytes(clock=lambda: 5.0)
    for n in range(AnswerBytes.KEEP + 10):  # operator replies: each one different
        assert answers(EncodedResponse(f"reply {n}", "text/plain")).endswith(f"reply {n}".encode())
    assert len(answers._kept) == AnswerBytes.KEEP


def test_a_line_break_in_a_content_type_is_refused():
    with pytest.raises(ValueError):
        head(200, "text/plain\r\nX-Injected: 1", 0, b"Thu, 01 Jan 1970 00:00:00 GMT")
