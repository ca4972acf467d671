"""The simulated SL against small real gateways: every callback type arrives well-formed,
responses have the documented effects on the SL's state, and each way of breaking the
contract is reported with its reason."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import datetime, timezone

import pytest
from aiohttp import web

from data.phones import normalise_phone
from server.sms.contract import CallbackType, parse_bool, parse_callback
from server.gateway.runner import free_port
from server.sms.dates import parse_sl_date
from server.sms.segments import count_segments
from server.simulator.judge import judge_response
from server.simulator.numbers import phone_key
from server.simulator.parts import numbered_parts
from server.simulator.sl import SimulatedSL
from server.simulator.stamps import sent_at_stamp
from server.simulator.texters import Crowd, make_texters

from .test_sim_helpers import TinyGateway, assert_well_formed, serve

PHONE = "5551230001"


def fast_sl(url: str | None, **options) -> SimulatedSL:
    options = {"seed": 7, "delivery_delay": 0.01, "reply_delay": 0.01, "reply_chance": 0.0, "timeout": 5.0} | options
    return SimulatedSL(url, api_key="sim-key", **options)


async def test_a_crowd_sends_every_callback_type_well_formed(aiohttp_server):
    gateway = TinyGateway(lambda fields: web.Response(text="Thanks!" if fields["type"] == "incoming_message" else ""))
    url = await serve(aiohttp_server, gateway)
    sl = fast_sl(url, reply_chance=0.5)
    crowd = Crowd(sl, rate=400.0, population=12, session_idle=0.05)
    try:
        await crowd.run(count=500)
        await gateway.wait_for(lambda: {t.value for t in CallbackType} <= {f["type"] for f in gateway.received})
    finally:
        await sl.close()
    assert set(gateway.content_types) == {"application/x-www-form-urlencoded"}
    for fields in gateway.received:
        assert fields["api_key"] == "sim-key"
        assert_well_formed(fields)
    incoming = gateway.of_type("incoming_message")
    texters = {t.phone for t in crowd.texters}
    assert all(normalise_phone(f["phone_number"]) in texters for f in incoming)
    # a real SL writes numbers with and without the country code: the app meets every form
    forms = {f["phone_number"] for f in incoming if normalise_phone(f["phone_number"]) == crowd.texters[0].phone}
    assert len(forms) >= 2, forms
    assert {len(f["phone_number"]) for f in incoming} >= {10, 11, 12}
    assert all(f.get("carrier_id") and f.get("carrier_name") for f in incoming)
    spellings = {f[name] for f in incoming for name in ("auto_subscribe", "auto_responded") if name in f}
    assert len(spellings) >= 4  # a mix of documented boolean spellings
    assert any(parse_bool(f.get("auto_subscribe", "")) for f in incoming)
    assert any(parse_bool(f.get("auto_responded", "")) for f in incoming)
    assert gateway.of_type("session_closed")
    assert not sl.violations


def test_sent_at_comes_in_every_shape_and_each_reads_back_as_the_moment_sent():
    now = datetime(2026, 11, 27, 22, 5, 9, tzinfo=timezone.utc)
    rng = random.Random(5)
    stamps = {sent_at_stamp(rng, now) for _ in range(300)}
    assert stamps == {"2026-11-27T22:05:09Z", "11-27-2026 10:05:09 PM", "Fri, 27 Nov 2026 22:05:09 +0000",
                      "1795817109", "Fri Nov 27 17:05:09 -0500 2026"}
    assert {parse_sl_date(stamp, now=now) for stamp in stamps} == {now.isoformat()}


async def test_texters_are_reproducible_from_the_seed():
    first = make_texters(random.Random(3), 10)
    again = make_texters(random.Random(3), 10)
    assert [(t.name, t.phone, t.carrier) for t in first] == [(t.name, t.phone, t.carrier) for t in again]
    assert len({t.phone for t in first}) == 10
    assert all(t.phone.startswith("555") and len(t.phone) == 10 for t in first)


async def test_plain_reply_is_delivered_in_parts_with_delivery_reports(aiohttp_server):
    long_reply = "Our menu: " + "pepperoni, margherita, veggie, hawaiian. " * 9
    gateway = TinyGateway(lambda f: web.Response(text=long_reply if f["type"] == "incoming_message" else ""))
    url = await serve(aiohttp_server, gateway)
    sl = fast_sl(url)
    try:
        exchange = await sl.incoming(PHONE, "PIZZA", carrier=("1", "Verizon"))
        assert exchange is not None and exchange.verdict.ok and exchange.verdict.reply == long_reply
        ids = [m.message_id for m in sl.messages.values() if m.phone == PHONE]
        assert len(ids) == len(numbered_parts(long_reply)) == 3
        assert [sl.messages[i].text[:6] for i in ids] == ["(1/3) ", "(2/3) ", "(3/3) "]
        await gateway.wait_for(lambda: sum(parse_bool(f["final"]) is True
                                           for f in gateway.of_type("delivery_report")) == 3)
    finally:
        await sl.close()
    reports = gateway.of_type("delivery_report")
    for message_id in map(str, ids):
        mine = [r for r in reports if r["message_id"] == message_id]
        assert [r["status"] for r in mine][0] == "4" and mine[-1]["status"] in ("1", "2")
        assert [parse_bool(r["final"]) for r in mine] == [False, True]
    assert sl.phone(PHONE).received == [long_reply]


async def test_json_close_session_and_reprocess(aiohttp_server):
    def answer(fields):
        if fields["type"] == "incoming_message" and fields["body"] == "switch":
            return web.json_response({"body": "Switching to SURF", "close_session": True, "reprocess": "SURF"})
        return web.Response(text="")

    gateway = TinyGateway(answer)
    url = await serve(aiohttp_server, gateway)
    sl = fast_sl(url)
    try:
        await sl.incoming(PHONE, "PIZZA")
        assert sl.phone(PHONE).session_open
        exchange = await sl.incoming(PHONE, "switch")
        assert exchange.verdict.close_session and exchange.verdict.reprocess == "SURF"
        await gateway.wait_for(lambda: any(f.get("body") == "SURF" for f in gateway.of_type("incoming_message")))
    finally:
        await sl.close()
    kinds = [(f["type"], f.get("body") or f.get("phone_numbers")) for f in gateway.received
             if f["type"] != "delivery_report"]
    assert kinds == [("incoming_message", "PIZZA"), ("incoming_message", "switch"),
                     ("session_closed", PHONE), ("incoming_message", "SURF")]
    assert any(m.text == "Switching to SURF" for m in sl.messages.values())
    # The reprocessed text reached the app as a new message and opened a session again.
    assert sl.phone(PHONE).session_open


async def test_close_session_alone_closes_the_session_in_the_table(aiohttp_server):
    gateway = TinyGateway(lambda f: web.Response(text='{"close_session": "yes"}')
                          if f["type"] == "incoming_message" else web.Response())
    url = await serve(aiohttp_server, gateway)
    sl = fast_sl(url, follow_ups=False)
    try:
        exchange = await sl.incoming(PHONE, "bye")
    finally:
        await sl.close()
    assert exchange.verdict.ok and exchange.verdict.close_session and exchange.verdict.reply == ""
    assert not sl.phone(PHONE).session_open
    assert not sl.messages  # nothing to deliver


async def test_subscription_tags_are_recorded(aiohttp_server):
    gateway = TinyGateway(lambda f: web.Response(text="vip, new-member,summer_2026")
                          if f["type"] == "subscription_created" else web.Response(text=""))
    url = await serve(aiohttp_server, gateway)
    sl = fast_sl(url)
    try:
        await sl.incoming(PHONE, "JOIN", auto_subscribe=True)
    finally:
        await sl.close()
    assert [f["type"] for f in gateway.received] == ["incoming_message", "subscription_created"]
    assert parse_bool(gateway.received[0]["auto_subscribe"]) is True
    assert sl.phone(PHONE).subscribed
    assert sl.phone(PHONE).tags == ("vip", "new-member", "summer_2026")


async def test_opt_out_and_in_words_become_blacklist_callbacks(aiohttp_server):
    gateway = TinyGateway()
    url = await serve(aiohttp_server, gateway)
    sl = fast_sl(url)
    try:
        await sl.incoming(PHONE, "JOIN", auto_subscribe=True)
        await sl.incoming(PHONE, "re: stop")
        assert await sl.incoming(PHONE, "hello?") is None  # blacklisted: not routed
        await sl.incoming(PHONE, "Opt In")
        await sl.incoming(PHONE, "hello again")
    finally:
        await sl.close()
    assert [f["type"] for f in gateway.received] == [
        "incoming_message", "subscription_created", "phone_blacklisted", "subscription_canceled",
        "phone_unblacklisted", "incoming_message"]
    for fields in gateway.received:
        assert_well_formed(fields)


async def test_several_expired_sessions_close_in_one_callback(aiohttp_server):
    gateway = TinyGateway()
    url = await serve(aiohttp_server, gateway)
    sl = fast_sl(url)
    other = "5551230002"
    try:
        await sl.incoming(PHONE, "PIZZA")
        await sl.incoming(other, "SURF")
        await asyncio.sleep(0.05)
        assert set(sl.expired_sessions(0.01)) == {PHONE, other}
        assert await sl.close_sessions(sl.expired_sessions(0.01)) == [PHONE, other]
        assert await sl.close_sessions([PHONE]) == []  # already closed: nothing to tell
    finally:
        await sl.close()
    closed = gateway.of_type("session_closed")
    assert [f["phone_numbers"] for f in closed] == [f"{PHONE},{other}"]
    assert parse_callback(closed[0]).phones == (PHONE, other)


async def test_a_delivered_message_may_get_an_answer_from_the_phone(aiohttp_server):
    gateway = TinyGateway(lambda f: web.Response(text="Which size?" if f["body"] == "PIZZA" else "")
                          if f["type"] == "incoming_message" else web.Response())
    url = await serve(aiohttp_server, gateway)
    sl = fast_sl(url, reply_chance=1.0, failure_rate=0.0)
    try:
        await sl.incoming(PHONE, "PIZZA")
        await gateway.wait_for(lambda: len(gateway.of_type("incoming_message")) == 2)
    finally:
        await sl.close()
    second = gateway.of_type("incoming_message")[1]
    assert second["phone_number"] == PHONE and second["body"] != "PIZZA"


# ------------------------------------------------------------------ contract violations

BREAKING = [
    ("incoming_message", 500, "oops", "HTTP 500 instead of 200"),
    ("delivery_report", 404, "", "HTTP 404 instead of 200"),
    ("incoming_message", 303, "", "HTTP 303 instead of 200, Location: /login (the SL does not follow redirects)"),
    ("delivery_report", 301, "", "HTTP 301 instead of 200, Location: /login"),
    # declared JSON (see `_answer`): then it must be a JSON object
    ("incoming_message", 200, '{"body": "hi"', "response is declared JSON but is not valid JSON"),
    ("incoming_message", 200, "[1, 2]", "JSON response is not an object"),
    ("incoming_message", 200, '{"close_session": "maybe"}', "'close_session' is not a boolean"),
    ("incoming_message", 200, '{"close_session": 2}', "'close_session' is not a boolean"),
    ("incoming_message", 200, '{"body": 5}', "'body' is not a string"),
    ("incoming_message", 200, '{"body": null}', "'body' is not a string"),
    ("incoming_message", 200, '{"reprocess": ["SURF"]}', "'reprocess' is not a string"),
    ("subscription_created", 200, "vip,<b>gold</b>", "tag(s) with characters outside"),
    ("subscription_created", 200, '{"tags": ["vip"]}', "tag(s) with characters outside"),
]


def _answer(status: int, body: str) -> web.Response:
    """The gateway's answer: JSON-looking bodies declared application/json, redirects to /login."""
    if 300 <= status < 400:
        return web.Response(status=status, headers={"Location": "/login"})
    kind = "application/json" if body[:1] in ("{", "[") else "text/plain"
    return web.Response(status=status, text=body, content_type=kind)


@pytest.mark.parametrize(("kind", "status", "body", "reason"), BREAKING)
async def test_contract_breaking_responses_are_reported(aiohttp_server, kind, status, body, reason):
    gateway = TinyGateway(lambda f: _answer(status, body))
    url = await serve(aiohttp_server, gateway)
    sl = fast_sl(url, follow_ups=False)
    fields = {"type": kind, "phone_number": PHONE, "body": "hi", "sent_at": "2026-11-27T10:00:00Z",
              "message_id": "1", "status": "1", "final": "1"}
    try:
        exchange = await sl.post(fields)
    finally:
        await sl.close()
    assert not exchange.verdict.ok
    assert len(exchange.verdict.violations) == 1
    assert reason in exchange.verdict.violations[0]
    assert "\n" not in exchange.verdict.violations[0]
    assert sl.violations == [exchange]
    assert not sl.messages and sl.phone(PHONE).tags == ()  # nothing applied


ACCEPTED = [
    ("incoming_message", "", {}),
    ("incoming_message", "   ", {}),
    ("incoming_message", "Hello there", {"reply": "Hello there"}),
    ("incoming_message", '{"body": "x", "close_session": true}', {"reply": "x", "close_session": True}),
    ("incoming_message", '{"close_session": "TRUE"}', {"close_session": True}),
    ("incoming_message", '{"close_session": 0, "reprocess": "SURF"}', {"reprocess": "SURF"}),
    ("subscription_created", "", {}),
    ("subscription_created", "a b,c-d, e_f", {"tags": ("a b", "c-d", "e_f")}),
    ("delivery_report", "whatever: ignored", {}),
]


@pytest.mark.parametrize(("kind", "body", "effects"), ACCEPTED)
def test_responses_that_keep_the_contract(kind, body, effects):
    verdict = judge_response(kind, 200, body)
    assert verdict.ok, verdict.violations
    assert verdict.reply == effects.get("reply", "")
    assert verdict.close_session == effects.get("close_session", False)
    assert verdict.reprocess == effects.get("reprocess", "")
    assert verdict.tags == effects.get("tags", ())


async def test_a_slow_gateway_is_a_timeout_violation(aiohttp_server):
    async def slow(fields):
        await asyncio.sleep(2)
        return web.Response(text="late")

    gateway = TinyGateway(slow)
    url = await serve(aiohttp_server, gateway)
    sl = fast_sl(url, timeout=0.3)
    try:
        exchange = await sl.post({"type": "incoming_message", "phone_number": PHONE, "body": "hi",
                                  "sent_at": "2026-11-27T10:00:00Z"})
    finally:
        await sl.close()
    assert exchange.verdict.violations == ("no response within 0.3 s",)
    assert exchange.status == 0


async def test_connection_refused_is_a_violation():
    sl = fast_sl(f"http://127.0.0.1:{free_port()}/sl")
    try:
        exchange = await sl.post({"type": "auto_reply_loop", "phone_number": PHONE})
    finally:
        await sl.close()
    assert len(exchange.verdict.violations) == 1
    assert exchange.verdict.violations[0].startswith("cannot reach the gateway: ")


async def test_oversized_or_oddly_encoded_responses(aiohttp_server):
    def answer(fields):
        if fields["type"] == "incoming_message":
            return web.Response(body=b"caf\xe9 \xff", headers={"Content-Type": "text/plain; charset=no-such"})
        return web.Response(text="x" * 5000)

    gateway = TinyGateway(answer)
    url = await serve(aiohttp_server, gateway)
    sl = fast_sl(url, follow_ups=False, max_response_bytes=1000)
    try:
        odd = await sl.post({"type": "incoming_message", "phone_number": PHONE, "body": "hi",
                             "sent_at": "2026-11-27T10:00:00Z"})
        big = await sl.post({"type": "phone_blacklisted", "phone_number": PHONE})
    finally:
        await sl.close()
    assert odd.verdict.ok and odd.verdict.reply.startswith("caf")
    assert big.verdict.violations == ("response longer than 1000 bytes",)


async def test_no_gateway_means_nothing_is_posted():
    sl = fast_sl(None)
    try:
        exchange = await sl.incoming(PHONE, "hello")
    finally:
        await sl.close()
    assert exchange is not None and not exchange.sent and sl.posted == 0


async def test_max_callbacks_budget(aiohttp_server):
    gateway = TinyGateway()
    url = await serve(aiohttp_server, gateway)
    sl = fast_sl(url, max_callbacks=3)
    try:
        for _ in range(5):
            await sl.post({"type": "auto_reply_loop", "phone_number": PHONE})
    finally:
        await sl.close()
    assert len(gateway.received) == 3 and sl.completed == 3


@pytest.mark.parametrize("text", [
    "a" * 161, "a" * 459, "a" * 460, "é" * 500, "€" * 200, "😀" * 100, "ç" * 71, "x" * 3000,
    "hello " * 300, "a" * 152 + "€" + "a" * 152,
])
def test_numbered_parts_fit_one_segment_each_and_rebuild_the_text(text):
    parts = numbered_parts(text)
    total = len(parts)
    assert total > 1
    rebuilt = ""
    for n, part in enumerate(parts, 1):
        prefix = f"({n}/{total}) "
        assert part.startswith(prefix)
        assert count_segments(part).segments == 1, (n, part)
        rebuilt += part[len(prefix):]
    assert rebuilt == text


def test_short_texts_go_as_they_are():
    assert numbered_parts("hi") == ["hi"]
    assert numbered_parts("a" * 160) == ["a" * 160]


@pytest.mark.parametrize(("raw", "key"), [
    ("5551234567", "5551234567"), ("+1 (555) 123-4567", "5551234567"), ("15551234567", "5551234567"),
    ("44555123456", "44555123456"), ("12345", None), ("555123456789", None), ("", None),
])
def test_phone_keys(raw, key):
    assert phone_key(raw) == key


def test_violation_and_warning_reasons_are_one_line():
    verdict = judge_response("incoming_message", 200, json.dumps({"body": "x", "a\nb": 1, "close_session": "a\nb"}))
    assert verdict.violations and all("\n" not in v for v in verdict.violations)
    assert verdict.warnings and all("\n" not in w for w in verdict.warnings)
