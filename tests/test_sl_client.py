"""SLClient against the simulated SL API on a real socket, and against broken SLs:
results and one-line errors, never an exception."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from server.gateway.runner import free_port
from server.simulator.sl import SimulatedSL
from server.simulator.sl_api import make_sl_api
from server.sl_client import SendResult, SLClient

from .test_sim_helpers import TinyGateway, serve

KEY = "sl-key"
PHONE = "5551230001"


@pytest.fixture
async def sl_and_client(aiohttp_server):
    sl = SimulatedSL(None, api_key=KEY, seed=1, flood_limit=3)
    server = await aiohttp_server(make_sl_api(sl, KEY))
    client = SLClient(str(server.make_url("/api/")), KEY)
    yield sl, client
    await client.close()
    await sl.close()


async def test_send_message_returns_the_ids(sl_and_client):
    sl, client = sl_and_client
    result = await client.send_message(PHONE, "hello " * 40, action_expected=True)
    assert result.error == "" and len(result.message_ids) == 2
    assert all(int(i) in sl.messages for i in result.message_ids)
    assert sl.phone(PHONE).session_open


async def test_negative_ids_are_explained(sl_and_client):
    sl, client = sl_and_client
    result = await client.send_message("12345", "hi")
    assert result == SendResult(message_ids=("-1",), error="-1: invalid phone number", phone="12345")
    sl.phone(PHONE).blacklisted = True
    result = await client.send_message(PHONE, "hi")
    assert result.message_ids == ("-2",) and result.error.startswith("-2: phone is blacklisted")
    sl.phone(PHONE).blacklisted = False
    for _ in range(3):
        assert (await client.send_message(PHONE, "hi")).error == ""
    result = await client.send_message(PHONE, "hi")
    assert result.error.startswith("-3: flood limit")


async def test_http_500_gives_the_first_line(sl_and_client):
    _, client = sl_and_client
    result = await client.send_message(PHONE, "")
    assert result.message_ids == ()
    assert result.error == "send_message: HTTP 500: missing parameter 'body'"
    wrong = SLClient(client.base_url, "not-the-key")
    try:
        assert (await wrong.send_message(PHONE, "hi")).error == "send_message: HTTP 500: invalid api_key"
        assert await wrong.close_sessions([PHONE]) == "close_sessions: HTTP 500: invalid api_key"
        assert await wrong.delivery_status(["1"]) == {}
    finally:
        await wrong.close()


async def test_close_sessions_and_delivery_status(sl_and_client):
    sl, client = sl_and_client
    result = await client.send_message(PHONE, "hi", action_expected=True)
    assert await client.close_sessions([PHONE]) == ""
    assert not sl.phone(PHONE).session_open
    assert await client.close_sessions(["42"]) == "close_sessions: HTTP 500: invalid phone number '42' (10 digits with or without country code)"
    assert await client.delivery_status(list(result.message_ids) + ["777"]) == {result.message_ids[0]: 0}


async def test_close_sessions_reaches_the_gateway(aiohttp_server):
    gateway = TinyGateway()
    sl = SimulatedSL(await serve(aiohttp_server, gateway), api_key=KEY, seed=1)
    server = await aiohttp_server(make_sl_api(sl, KEY))
    client = SLClient(str(server.make_url("/api")), KEY)  # no trailing slash: still fine
    try:
        await sl.incoming(PHONE, "PIZZA")
        assert await client.close_sessions([PHONE]) == ""
        await gateway.wait_for(lambda: bool(gateway.of_type("session_closed")))
    finally:
        await client.close()
        await sl.close()
    assert gateway.of_type("session_closed")[0]["phone_numbers"] == PHONE


async def test_unreachable_sl_is_a_one_line_error():
    url = f"http://127.0.0.1:{free_port()}/api/"
    client = SLClient(url, KEY)
    try:
        result = await client.send_message(PHONE, "hi")
        assert result.message_ids == ()
        assert result.error.startswith(f"cannot reach the SL at {url}send_message: ")
        assert "\n" not in result.error
        assert (await client.close_sessions([PHONE])).startswith("cannot reach the SL at ")
        assert await client.delivery_status(["1"]) == {}
    finally:
        await client.close()


@pytest.mark.parametrize("base_url", ["not a url", "ftp://example.invalid/api/", "http://[::1/api/"])
async def test_bad_base_url_never_raises(base_url):
    client = SLClient(base_url, KEY)
    try:
        result = await client.send_message(PHONE, "hi")
        assert result.error.startswith("cannot reach the SL at ")
    finally:
        await client.close()


async def test_broken_sl_answers(aiohttp_server):
    async def handler(request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if method == "send_message":
            return web.Response(text="<html>not json</html>")
        if method == "delivery_status":
            return web.json_response({"1": "x", "2": 1, "3": None})
        if method == "close_sessions":
            return web.Response(status=502, text="Bad gateway\nsecond line\n")
        return web.Response(text="{}")

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/api/{method}", handler)
    app.router.add_route("*", "/slow/api/{method}", slow)
    server = await aiohttp_server(app)
    client = SLClient(str(server.make_url("/api/")), KEY, timeout=0.3)
    try:
        assert (await client.send_message(PHONE, "hi")).error == "send_message: the SL answered something that is not JSON"
        assert await client.delivery_status(["1", "2", "3"]) == {"2": 1}
        assert await client.close_sessions([PHONE]) == "close_sessions: HTTP 502: Bad gateway"
        slow = SLClient(str(server.make_url("/slow/api/")), KEY, timeout=0.3)
        try:
            error = await slow.close_sessions([PHONE])
            assert error.startswith("cannot reach the SL at ") and error.endswith(": no answer within 0.3 s")
        finally:
            await slow.close()
    finally:
        await client.close()


async def test_close_is_idempotent():
    client = SLClient("http://127.0.0.1:1/api/", KEY)
    await client.close()
    await client.close()
