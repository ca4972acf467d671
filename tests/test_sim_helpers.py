"""Shared pieces for the simulator tests: a tiny programmable gateway (a real aiohttp
app on a real socket) that records every callback it receives."""

from __future__ import annotations

import asyncio
from typing import Callable

from aiohttp import web

from server.sms.contract import parse_callback

Answer = Callable[[dict[str, str]], web.StreamResponse]


def empty(fields: dict[str, str]) -> web.Response:
    return web.Response(text="")


class TinyGateway:
    """Records callbacks (form fields, content type) and answers with `self.answer(fields)`,
    which may be a coroutine function."""

    def __init__(self, answer: Answer = empty) -> None:
        self.answer = answer
        self.received: list[dict[str, str]] = []
        self.content_types: list[str] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.content_types.append(request.content_type)
        fields = {key: value for key, value in (await request.post()).items() if isinstance(value, str)}
        self.received.append(fields)
        self.arrived.set()
        result = self.answer(fields)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/sl", self.handle)
        return app

    def of_type(self, kind: str) -> list[dict[str, str]]:
        return [fields for fields in self.received if fields.get("type") == kind]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async def poll() -> None:
            while not predicate():
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), timeout)


async def serve(aiohttp_server, gateway: TinyGateway) -> str:
    """Start the tiny gateway on a free loopback port; returns its URL."""
    server = await aiohttp_server(gateway.app())
    return str(server.make_url("/sl"))


def assert_well_formed(fields: dict[str, str]) -> None:
    callback = parse_callback(fields)
    assert callback.warnings == (), (fields, callback.warnings)
