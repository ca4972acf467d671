"""One texter, one thread, in the simulated SL and the SL client: `5557000801`,
`15557000801` and `+1 (555) 700-0801` are the same phone for the SL API (delivery,
blacklist, flood limit, sessions) and for what the console files a sent message under.
Real sockets throughout: the SL API and a recording gateway on loopback ports."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp import web

from data.phones import normalise_phone
from server.simulator.sl import SimulatedSL
from server.simulator.sl_api import make_sl_api
from server.sl_client import SLClient

from .test_sim_helpers import TinyGateway, serve

KEY = "sl-key"
TEXTER = "5557000801"
FORMS = ("5557000801", "15557000801", "+1 (555) 700-0801")


@pytest.fixture
async def sl_api(aiohttp_server):
    """(sl, client, gateway): the simulated SL posting to a recording gateway, and the
    console's SLClient talking to its API."""
    made: list[tuple[SimulatedSL, SLClient]] = []

    async def make(**options) -> tuple[SimulatedSL, SLClient, TinyGateway]:
        gateway = TinyGateway()
        options = {"seed": 1, "delivery_delay": 0.01, "reply_chance": 0.0} | options
        sl = SimulatedSL(await serve(aiohttp_server, gateway), api_key=KEY, **options)
        server = await aiohttp_server(make_sl_api(sl, KEY))
        client = SLClient(str(server.make_url("/api/")), KEY)
        made.append((sl, client))
        return sl, client, gateway

    yield make
    for sl, client in made:
        await client.close()
        await sl.close()


@pytest.mark.parametrize("written", FORMS)
async def test_send_message_in_any_form_reaches_the_one_texter(sl_api, written):
    sl, client, _ = await sl_api()
    await sl.incoming(TEXTER, "PIZZA")
    result = await client.send_message(written, f"to {written}")
    assert result.error == "" and len(result.message_ids) == 1
    assert result.phone == TEXTER  # what the console files the sent message under
    assert sl.phone(TEXTER).received == [f"to {written}"]
    assert sl.messages[int(result.message_ids[0])].phone == TEXTER
    assert set(sl.phones) == {TEXTER}  # no second texter made up from another form


async def test_an_opt_out_in_one_form_blacklists_every_form(sl_api):
    sl, client, gateway = await sl_api()
    await sl.incoming("15557000801", "STOP")
    for written in FORMS:
        result = await client.send_message(written, "still there?")
        assert result.message_ids == ("-2",) and result.phone == TEXTER
    await sl.incoming("+1 (555) 700-0801", "START")
    assert [normalise_phone(f["phone_number"]) for f in gateway.received] == [TEXTER, TEXTER]
    assert [f["type"] for f in gateway.received] == ["phone_blacklisted", "phone_unblacklisted"]
    assert (await client.send_message("5557000801", "welcome back")).error == ""


async def test_the_flood_limit_counts_one_texter_whatever_the_form(sl_api):
    sl, client, _ = await sl_api(flood_limit=3)
    for written in FORMS:
        assert (await client.send_message(written, "hi")).error == ""
    for written in FORMS:
        result = await client.send_message(written, "one more")
        assert result.error == "-3: flood limit reached for this phone"
    assert (await client.send_message("5557000802", "another texter")).error == ""
    assert len(sl.phone(TEXTER).received) == 3


async def test_send_messages_and_close_sessions_read_every_form(sl_api):
    sl, client, gateway = await sl_api()
    await sl.incoming(TEXTER, "PIZZA")
    recipients = {"15557000801": {"name": "Ann"}, "+1 (555) 700-0801": {"name": "Ann again"}}
    async with aiohttp.ClientSession() as session:
        async with session.post(client.base_url + "send_messages", data={
                "api_key": KEY, "template": "Hi {{name}}", "recipients": json.dumps(recipients)}) as response:
            assert response.status == 200
            assert len((await response.json())["message_ids"].split(",")) == 2
    assert sl.phone(TEXTER).received == ["Hi Ann", "Hi Ann again"]
    assert await client.close_sessions(["+1 (555) 700-0801"]) == ""
    assert sl.phone(TEXTER).session_open is False
    await gateway.wait_for(lambda: bool(gateway.of_type("session_closed")))
    closed = gateway.of_type("session_closed")[0]["phone_numbers"]
    assert normalise_phone(closed) == TEXTER


async def test_the_client_sends_the_number_as_the_operator_wrote_it(aiohttp_server):
    asked: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        asked.append(dict(await request.post()))
        return web.json_response({"message_ids": "77"})

    app = web.Application()
    app.router.add_post("/api/{method}", record)
    server = await aiohttp_server(app)
    client = SLClient(str(server.make_url("/api/")), KEY)
    try:
        result = await client.send_message("+1 (555) 700-0801", "hi")
        assert await client.close_sessions(["15557000801"]) == ""
    finally:
        await client.close()
    assert result.message_ids == ("77",) and result.phone == TEXTER
    assert [a.get("phone_number") or a.get("phone_numbers") for a in asked] == ["+1 (555) 700-0801", "15557000801"]


async def test_an_unreachable_sl_still_names_the_texter():
    client = SLClient("http://127.0.0.1:1/api/", KEY)
    try:
        result = await client.send_message("+1 (555) 700-0801", "hi")
    finally:
        await client.close()
    assert result.error.startswith("cannot reach the SL at ") and result.phone == TEXTER


async def test_callbacks_write_one_texter_in_several_forms_and_the_sl_keeps_one_state(sl_api):
    sl, _, gateway = await sl_api(seed=4)
    for n in range(30):
        await sl.incoming(TEXTER, f"message {n}")
    written = [f["phone_number"] for f in gateway.of_type("incoming_message")]
    assert {normalise_phone(w) for w in written} == {TEXTER}
    assert {"5557000801", "15557000801"} <= set(written)  # with and without the country code
    assert set(sl.phones) == {TEXTER}
    plain, _, plain_gateway = await sl_api(seed=4, mixed_forms=False)
    await plain.incoming("+1 (555) 700-0801", "hi")
    assert plain_gateway.received[0]["phone_number"] == TEXTER
