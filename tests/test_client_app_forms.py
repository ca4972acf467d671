"""What the SL's public client apps and their tests send (contract NOTES.md), through the
real gateway on a loopback port into the real store: epoch-second and Ruby `Time#to_s`
`sent_at` values, the undocumented thread `tag`, and one texter in every written form."""

from __future__ import annotations

from server.broker import Broker
from server.config import GatewayConfig
from server.frontends.headless import FallbackAnswerer

from .conftest import INCOMING


async def _post_all(aiohttp_client, gateway_server, store, bodies: list[dict[str, str]]) -> list[int]:
    broker = Broker()
    broker.subscribe(FallbackAnswerer(broker, "Thanks"))
    client = await aiohttp_client(await gateway_server(GatewayConfig(), broker, store))
    for body in bodies:
        response = await client.post("/", data=body)
        assert response.status == 200, await response.text()
        assert await response.text() == "Thanks"
    return [record.seq for record in store.recent_callbacks(len(bodies))]


async def test_client_app_dates_and_thread_tag_are_read_and_stored(aiohttp_client, gateway_server, store):
    sent = [
        {**INCOMING, "sent_at": "1373614147", "tag": "spring-promo"},
        {**INCOMING, "sent_at": "Fri Jul 12 14:29:07 +0700 2013"},
    ]
    seqs = await _post_all(aiohttp_client, gateway_server, store, sent)
    records = sorted((store.callback(seq) for seq in seqs), key=lambda r: r.seq)
    assert [r.parsed["sent_at"] for r in records] == ["2013-07-12T07:29:07+00:00"] * 2
    assert [r.parsed["sent_at_raw"] for r in records] == [body["sent_at"] for body in sent]
    assert [r.parsed["tag"] for r in records] == ["spring-promo", ""]
    assert all(r.warnings == () for r in records)  # neither date is "not a date" any more


async def test_every_written_form_files_under_one_thread(aiohttp_client, gateway_server, store):
    forms = ["5557000801", "15557000801", "+1 (555) 700-0801"]
    await _post_all(aiohttp_client, gateway_server, store,
                    [{**INCOMING, "phone_number": form, "body": f"via {form}"} for form in forms])
    thread = store.thread("5557000801")
    assert [e.text for e in thread if e.direction == "in"] == [f"via {form}" for form in forms]
