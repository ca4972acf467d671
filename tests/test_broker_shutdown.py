"""Stopping while a text is still arriving: the gateway answers every held request at
shutdown (Gateway.answer_held, through Broker.resolve_all), and a request whose body was
still on the wire then is held a moment later. It must get the shutdown fallback at once,
not wait out its deadline while the server waits for it and finally cuts it off."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlencode

from server.broker import Broker
from server.config import GatewayConfig

from .conftest import INCOMING


async def test_a_text_still_arriving_at_shutdown_gets_the_fallback_at_once(gateway_server, store):
    broker = Broker()
    server = await gateway_server(GatewayConfig(fallback="Back soon", reply_timeout=30), broker, store)
    body = urlencode(INCOMING).encode()
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
    await writer.drain()
    await asyncio.sleep(0.1)  # the request is in, its body is not

    server.gateway.answer_held()  # what the gateway's runner does when it stops
    writer.write(body[10:])
    await writer.drain()
    started = time.monotonic()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    answer = await reader.readexactly(length)
    writer.close()
    await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 200") and answer == b"Back soon"
    assert time.monotonic() - started < 1
    assert broker.pending_count == 0
