"""The gateway through aiohttp's test client on the app factory: held replies,
the timeout fallback, immediate types, rejections, and lenient body formats."""

from __future__ import annotations

import asyncio
import json

import pytest

from server.broker import Broker, ExchangeEnded, ExchangeHeld, HeldItem, RequestRejected
from server.config import AppKey, GatewayConfig
from server.sms.contract import Decision

from .conftest import INCOMING


class Operator:
    """A broker subscriber that answers held items with a scripted decision."""

    def __init__(self, broker: Broker, decision: Decision | None) -> None:
        self.broker = broker
        self.decision = decision
        self.held: list[HeldItem] = []
        self.ended: list[ExchangeEnded] = []
        broker.subscribe(self)

    def __call__(self, event) -> None:
        if isinstance(event, ExchangeHeld):
            self.held.append(event.item)
            if self.decision is not None:
                asyncio.get_running_loop().call_later(0.05, self.broker.answer, event.item.seq, self.decision)
        elif isinstance(event, ExchangeEnded):
            self.ended.append(event)


@pytest.fixture
def make_client(aiohttp_client, gateway_server, store):
    async def make(decision: Decision | None = None, **config):
        broker = Broker()
        operator = Operator(broker, decision)
        client = await aiohttp_client(await gateway_server(GatewayConfig(**config), broker, store))
        return client, operator

    return make


async def test_held_message_is_answered_with_the_operator_reply(make_client, store):
    client, operator = await make_client(Decision(reply="We are here!"))
    response = await client.post("/", data=INCOMING)
    assert response.status == 200
    assert await response.text() == "We are here!"
    assert response.content_type == "text/plain"
    assert len(operator.held) == 1 and operator.held[0].record.parsed["body"] == INCOMING["body"]
    saved = store.response_for(operator.held[0].seq)
    assert saved is not None and saved.body == "We are here!" and saved.answered_by == "operator"
    thread = store.thread("5551234567")
    assert [e.direction for e in thread] == ["in", "out"]


async def test_close_session_and_reprocess_are_json(make_client):
    client, _ = await make_client(Decision(reply="bye", close_session=True, reprocess="other kw"))
    response = await client.post("/", data=INCOMING)
    assert response.content_type == "application/json"
    assert json.loads(await response.text()) == {"body": "bye", "close_session": True, "reprocess": "other kw"}


async def test_deadline_sends_the_fallback_and_marks_timed_out(make_client, store):
    client, operator = await make_client(None, reply_timeout=0.2, fallback="Back soon")
    response = await client.post("/", data=INCOMING)
    assert await response.text() == "Back soon"
    assert operator.ended[0].outcome == "timed_out"
    saved = store.response_for(operator.held[0].seq)
    assert saved.outcome == "timed_out" and saved.answered_by == "fallback"


async def test_subscription_created_is_held_for_tags(make_client):
    client, operator = await make_client(Decision(tags=("vip", "event 2026")))
    response = await client.post("/", data={"type": "subscription_created", "api_key": "k", "phone_number": "5551234567"})
    assert await response.text() == "vip,event 2026"
    assert operator.held[0].record.type == "subscription_created"


@pytest.mark.parametrize("kind,fields", [
    ("delivery_report", {"message_id": "1", "final": "1", "status": "1"}),
    ("session_closed", {"phone_numbers": "5551234567"}),
    ("subscription_canceled", {"phone_number": "5551234567"}),
    ("phone_blacklisted", {"phone_number": "5551234567"}),
    ("phone_unblacklisted", {"phone_number": "5551234567"}),
    ("auto_reply_loop", {"phone_number": "5551234567"}),
    ("not_a_documented_type", {"phone_number": "5551234567"}),
])
async def test_other_types_are_answered_at_once_and_recorded(make_client, store, kind, fields):
    client, operator = await make_client(None)
    response = await client.post("/", data={"type": kind, "api_key": "k", **fields})
    assert response.status == 200
    assert await response.text() == ""
    assert operator.held == []
    recent = store.recent_callbacks(5)
    assert recent[-1].type == kind


async def test_contract_warnings_are_recorded(make_client, store):
    client, _ = await make_client(None)
    response = await client.post("/", data={"type": "delivery_report", "api_key": "k", "message_id": "1", "final": "maybe", "status": "7"})
    assert response.status == 200
    record = store.recent_callbacks(1)[-1]
    assert any("final" in w for w in record.warnings)
    assert any("status 7" in w for w in record.warnings)


async def test_no_type_is_400_with_a_reason(make_client):
    client, _ = await make_client(None)
    response = await client.post("/", data={"phone_number": "5551234567"})
    assert response.status == 400
    assert "missing 'type'" in await response.text()


async def test_api_key_checked_when_configured(make_client, store):
    client, _ = await make_client(None, api_keys=(AppKey("shop", "s3cret"),))
    refused = await client.post("/", data={"type": "auto_reply_loop", "phone_number": "5551234567", "api_key": "wrong"})
    assert refused.status == 403
    assert "api_key not accepted" in await refused.text()
    missing = await client.post("/", data={"type": "auto_reply_loop", "phone_number": "5551234567"})
    assert missing.status == 403 and "missing" in await missing.text()
    ok = await client.post("/", data={"type": "auto_reply_loop", "phone_number": "5551234567", "api_key": "s3cret"})
    assert ok.status == 200
    assert store.stats().callbacks == 1
    assert store.recent_callbacks(1)[-1].app == "shop"
    health = await (await client.get("/healthz")).json()
    assert health["totals"]["forbidden"] == 2


async def test_oversized_body_is_413(make_client):
    client, _ = await make_client(None, max_body=1024)
    response = await client.post("/", data={"type": "incoming_message", "body": "x" * 5000})
    assert response.status == 413
    assert "larger than 1024 bytes" in await response.text()


async def test_json_and_query_string_are_accepted(make_client):
    client, operator = await make_client(Decision(reply="ok"))
    as_json = await client.post("/", json=INCOMING)
    assert await as_json.text() == "ok"
    as_query = await client.post("/", params=INCOMING)
    assert await as_query.text() == "ok"
    assert [item.record.parsed["body"] for item in operator.held] == [INCOMING["body"]] * 2


async def test_a_form_not_in_utf8_naming_no_charset_is_kept_as_windows_1252(make_client, store):
    """Refusing it would lose the texter's message: it is recorded, with a contract warning."""
    client, operator = await make_client(Decision(reply="merci"))
    response = await client.post("/", data=b"type=incoming_message&phone_number=5551234567&body=caf%E9",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 200 and await response.text() == "merci"
    record = operator.held[0].record
    assert record.parsed["body"] == "café"
    assert any("read as Windows-1252" in warning for warning in record.warnings)
    assert store.recent_callbacks(1)[0].warnings == record.warnings


async def test_invalid_utf8_under_a_named_utf8_charset_is_400_not_500(make_client):
    client, _ = await make_client(None)
    response = await client.post("/", data=b"type=incoming_message&body=%FF",
                                 headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    assert response.status == 400
    assert await response.text() == "urlencoded body is not valid utf-8\n"


async def test_healthz_reports_pending_and_totals(make_client):
    client, _ = await make_client(None, reply_timeout=5)
    task = asyncio.create_task(client.post("/", data=INCOMING))
    for _ in range(100):
        health = await (await client.get("/healthz")).json()
        if health["pending"] == 1:
            break
        await asyncio.sleep(0.02)
    assert health["pending"] == 1 and health["totals"]["held"] == 1
    task.cancel()


async def test_overflow_beyond_max_pending_gets_the_fallback_at_once(make_client, store):
    client, operator = await make_client(None, max_pending=1, reply_timeout=5, fallback="busy")
    first = asyncio.create_task(client.post("/", data=INCOMING))
    while not operator.held:
        await asyncio.sleep(0.01)
    second = await client.post("/", data={**INCOMING, "phone_number": "5559999999"})
    assert await second.text() == "busy"
    assert any(event.outcome == "overflow" for event in operator.ended)
    operator.broker.answer(operator.held[0].seq, Decision(reply="first"))
    assert await (await first).text() == "first"


@pytest.mark.parametrize("path", ["/", "/healthz"])
async def test_a_bug_in_a_handler_is_a_503_with_its_reason_not_a_500(make_client, monkeypatch, path):
    """The callback endpoint has never_500's guard written inline; both routes must keep it.
    A bug cannot be produced for real, so one is planted in a real component."""
    import server.gateway.endpoint as gateway

    client, _ = await make_client()

    def broken(*args, **kwargs):
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(gateway, "parse_callback", broken)
    monkeypatch.setattr(gateway.GatewayStats, "as_dict", broken)
    if path == "/":
        response = await client.post(path, data={"type": "delivery_report", "api_key": "k"})
    else:
        response = await client.get(path)
    assert response.status == 503
    assert await response.text() == "switchboard could not handle this request: ZeroDivisionError\n"


async def test_wrong_paths_and_methods_get_a_one_line_reason_and_the_console_hears(aiohttp_client, gateway_server, store):
    """The gateway routes by itself (aiohttp's low-level server): an SL pointed at the wrong
    URL gets a 404 naming the right one, and the operator sees it as a rejection."""
    broker = Broker()
    heard: list[RequestRejected] = []
    broker.subscribe(lambda event: heard.append(event) if isinstance(event, RequestRejected) else None)
    client = await aiohttp_client(await gateway_server(GatewayConfig(path="/sms"), broker, store))

    wrong_path = await client.post("/", data=INCOMING)
    assert wrong_path.status == 404
    assert await wrong_path.text() == "no such path: callbacks are POSTed to /sms (POST /)\n"
    # a query string may carry the api_key: it is not echoed, nor shown in the console
    with_key = await client.post("/in?api_key=secret-key-1", data=INCOMING)
    assert await with_key.text() == "no such path: callbacks are POSTed to /sms (POST /in)\n"
    wrong_method = await client.get("/sms")
    assert wrong_method.status == 405 and wrong_method.headers["Allow"] == "POST"
    assert await wrong_method.text() == "GET not allowed: callbacks are POSTed to /sms (GET /sms)\n"
    health_post = await client.post("/healthz")
    assert health_post.status == 405 and health_post.headers["Allow"] == "GET"
    assert [(event.status, event.peer) for event in heard] == [(404, "127.0.0.1")] * 2 + [(405, "127.0.0.1")] * 2
    assert not any("secret" in event.reason for event in heard)
    right = await client.post("/sms", data={"type": "delivery_report", "message_id": "m1", "final": "1", "status": "1"})
    assert right.status == 200
    health = await (await client.get("/healthz")).json()
    assert health["totals"]["rejected"] == 4 and health["totals"]["received"] == 1
    assert len(store.recent_callbacks()) == 1


async def _raw_exchange(port: int, head: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    return reader, writer, await asyncio.wait_for(reader.readline(), 3)


async def test_expect_100_continue_is_answered_before_the_body(gateway_server, store):
    """curl sends `Expect: 100-continue` for bodies over 1 KB and holds the body back until
    it hears 100 (or a second passes): the gateway must say it."""
    server = await gateway_server(GatewayConfig(), Broker(), store)
    body = ("type=delivery_report&message_id=long&final=1&status=1&note=" + "x" * 3000).encode()
    head = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    reader, writer, first = await _raw_exchange(server.port, head)
    assert first == b"HTTP/1.1 100 Continue\r\n"
    assert await reader.readline() == b"\r\n"
    writer.write(body)
    assert await asyncio.wait_for(reader.readline(), 3) == b"HTTP/1.1 200 OK\r\n"
    writer.close()
    assert store.recent_callbacks()[0].fields["message_id"] == "long"


async def test_an_unknown_expectation_is_417(gateway_server, store):
    broker = Broker()
    heard: list[RequestRejected] = []
    broker.subscribe(lambda event: heard.append(event) if isinstance(event, RequestRejected) else None)
    server = await gateway_server(GatewayConfig(), broker, store)
    head = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Expect: teapot\r\nContent-Length: 10\r\n\r\n")
    reader, writer, first = await _raw_exchange(server.port, head)
    assert first == b"HTTP/1.1 417 Expectation Failed\r\n"
    rest = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    length = int(rest.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert await asyncio.wait_for(reader.readexactly(length), 3) == b"unknown Expect: 'teapot'\n"
    writer.close()
    assert store.recent_callbacks() == []
    # refused like every other request the gateway turns away: counted, and the console hears
    assert [(event.status, event.reason) for event in heard] == [(417, "unknown Expect: 'teapot'")]
    assert server.gateway.stats.rejected == 1


@pytest.mark.parametrize("given,shown", [
    ("demo", "app ••••"), ("12345678", "app ••••"), ("sk-live-123456789", "app …6789"),
    ("shop=sk-live-123456789", "shop"), ("demo=demo", "app ••••"), ("x-demo-x=demo", "app ••••"),
])
def test_an_app_named_after_its_key_shows_at_most_the_last_four_characters(given, shown):
    """`--api-key demo` used to show the whole key in the status bar (named 'app …demo')."""
    app = AppKey.parse(given)
    assert app.name == shown


async def test_an_unconfigured_gateway_records_keys_masked(make_client, store):
    """With no --api-key, each callback's app is its key, masked: what the console shows."""
    client, _ = await make_client(None)
    for key in ("demo", "sk-live-123456789"):
        response = await client.post("/", data={"type": "auto_reply_loop", "api_key": key, "phone_number": "5551234567"})
        assert response.status == 200
    assert [record.app for record in store.recent_callbacks(2)] == ["••••", "…6789"]
