"""Shared fixtures: a real history store in a temp dir, the real gateway on a free port,
and helpers to post callbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import pytest
from aiohttp.test_utils import BaseTestServer

from data.store import HistoryStore
from server.broker import Broker
from server.config import GatewayConfig
from server.gateway.endpoint import Gateway
from server.gateway.runner import GatewayRunner

INCOMING = {
    "type": "incoming_message",
    "api_key": "key-1",
    "phone_number": "5551234567",
    "body": "Hello, is anyone there?",
    "sent_at": "2026-11-27T10:00:00Z",
    "carrier_name": "TestCarrier",
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    history = HistoryStore.open(tmp_path / "history")
    yield history
    history.close()


class GatewayTestServer(BaseTestServer):
    """aiohttp's test server (free loopback port, `make_url`, works with `aiohttp_client`)
    running the production runner: same low-level server, settings and shutdown."""

    def __init__(self, gateway: Gateway) -> None:
        super().__init__()
        self.gateway = gateway

    async def _make_runner(self, **kwargs: Any) -> GatewayRunner:
        return GatewayRunner(self.gateway)


@pytest.fixture
async def gateway_server() -> AsyncIterator[Callable[..., Awaitable[GatewayTestServer]]]:
    """`await gateway_server(config, broker, store)`: the real gateway, serving; closed after the test."""
    servers: list[GatewayTestServer] = []

    async def serve(config: GatewayConfig, broker: Broker, store: HistoryStore) -> GatewayTestServer:
        server = GatewayTestServer(Gateway(config, broker, store))
        await server.start_server()
        servers.append(server)
        return server

    yield serve
    for server in servers:
        await server.close()


async def wait_until(pilot, condition, timeout: float = 6.0) -> None:
    """Let the real app run (pilot pauses) until `condition()` holds; fail after `timeout` s."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)
