"""The simulated SL HTTP API through aiohttp's test client: each method with GET query or
POST form params, its errors (HTTP 500 + one line), negative ids, message splitting,
and the callbacks the calls cause at the gateway."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from data.phones import normalise_phone
from server.sms.contract import parse_bool
from server.simulator.sl import SimulatedSL
from server.simulator.sl_api import make_sl_api

from .test_sim_helpers import TinyGateway, assert_well_formed, serve

KEY = "sl-key"
PHONE = "5551230001"


@pytest.fixture
async def api(aiohttp_client):
    sls: list[SimulatedSL] = []

    async def make(gateway_url: str | None = None, **options):
        options = {"seed": 1, "delivery_delay": 0.01, "reply_delay": 0.01, "reply_chance": 0.0} | options
        sl = SimulatedSL(gateway_url, api_key=KEY, **options)
        sls.append(sl)
        return sl, await aiohttp_client(make_sl_api(sl, KEY))

    yield make
    for sl in sls:
        await sl.close()


async def call(client, method: str, *, get: bool = False, **params) -> tuple[int, str]:
    params = {"api_key": KEY} | params
    if get:
        response = await client.get(f"/api/{method}", params=params)
    else:
        response = await client.post(f"/api/{method}", data=params)
    return response.status, await response.text()


async def test_send_message_by_get_and_by_post(api):
    sl, client = await api()
    status, text = await call(client, "send_message", get=True, phone_number="+1(555)123-0001", body="test")
    assert status == 200
    first = json.loads(text)["message_ids"]
    status, text = await call(client, "send_message", phone_number=PHONE, body="again")
    second = json.loads(text)["message_ids"]
    assert int(second) == int(first) + 1
    assert [m.text for m in sl.messages.values()] == ["test", "again"]
    assert {m.phone for m in sl.messages.values()} == {PHONE}


async def test_long_body_is_split_into_numbered_parts(api):
    sl, client = await api()
    body = "word " * 80  # 400 GSM-7 characters: three parts
    status, text = await call(client, "send_message", phone_number=PHONE, body=body)
    ids = json.loads(text)["message_ids"].split(",")
    assert status == 200 and len(ids) == 3
    parts = [sl.messages[int(i)].text for i in ids]
    assert [p[:6] for p in parts] == ["(1/3) ", "(2/3) ", "(3/3) "]
    assert "".join(p[6:] for p in parts) == body


async def test_several_phone_numbers(api):
    sl, client = await api()
    status, text = await call(client, "send_message", phone_numbers=f"{PHONE}, 5551230002,123", body="hi")
    ids = json.loads(text)["message_ids"].split(",")
    assert status == 200 and len(ids) == 3 and ids[2] == "-1"


@pytest.mark.parametrize("phone", ["12345", "555123000", "555123000123", "not a phone"])
async def test_invalid_number_is_minus_1(api, phone):
    _, client = await api()
    status, text = await call(client, "send_message", phone_number=phone, body="hi")
    assert (status, json.loads(text)) == (200, {"message_ids": "-1"})


async def test_blacklisted_number_is_minus_2(api):
    sl, client = await api()
    await sl.incoming(PHONE, "STOP")  # no gateway: the SL still applies the opt-out
    status, text = await call(client, "send_message", phone_number=PHONE, body="hi")
    assert json.loads(text) == {"message_ids": "-2"}


async def test_flood_limit_is_minus_3(api):
    _, client = await api(flood_limit=2)
    answers = [json.loads((await call(client, "send_message", phone_number=PHONE, body=f"m{n}"))[1])["message_ids"]
               for n in range(3)]
    assert int(answers[0]) > 0 and int(answers[1]) > 0 and answers[2] == "-3"
    other = json.loads((await call(client, "send_message", phone_number="5551230002", body="hi"))[1])
    assert int(other["message_ids"]) > 0  # the limit is per phone


@pytest.mark.parametrize(("method", "params", "message"), [
    ("send_message", {"phone_number": PHONE}, "missing parameter 'body'"),
    ("send_message", {"body": "hi"}, "missing parameter 'phone_number' or 'phone_numbers'"),
    ("send_message", {"phone_number": PHONE, "body": "hi", "action_expected": "maybe"}, "is not a boolean"),
    ("send_messages", {"template": "Hi"}, "missing parameter 'recipients'"),
    ("send_messages", {"template": "Hi", "recipients": "{not json"}, "recipients is not valid JSON"),
    ("send_messages", {"template": "Hi", "recipients": '["5551230001"]'}, "recipients must be a JSON object"),
    ("cancel_messages", {}, "missing parameter 'message_ids'"),
    ("cancel_messages", {"message_ids": "1,x"}, "message_ids must be comma-separated integers"),
    ("delivery_status", {}, "missing parameter 'message_ids'"),
    ("close_sessions", {}, "missing parameter 'phone_numbers'"),
    ("close_sessions", {"phone_numbers": "5551230001,42"}, "invalid phone number '42'"),
    ("remove_tag", {"phone_number": PHONE}, "missing parameter 'tag'"),
])
async def test_errors_are_500_with_one_line(api, method, params, message):
    _, client = await api()
    for get in (False, True):
        status, text = await call(client, method, get=get, **params)
        assert status == 500
        assert message in text
        assert text.count("\n") == 1 and text.endswith("\n")


@pytest.mark.parametrize("key", [None, "", "wrong"])
async def test_api_key_is_checked_on_every_method(api, key):
    _, client = await api()
    for method in ("send_message", "send_messages", "cancel_messages", "delivery_status",
                   "close_sessions", "remove_tag"):
        params = {} if key is None else {"api_key": key}
        response = await client.post(f"/api/{method}", data=params | {"phone_number": PHONE, "body": "x"})
        text = await response.text()
        assert response.status == 500
        assert text == ("invalid api_key\n" if key else "missing parameter 'api_key'\n")


async def test_unknown_method_is_404(api):
    _, client = await api()
    response = await client.get("/api/send_fax", params={"api_key": KEY})
    assert response.status == 404


async def test_send_messages_fills_the_template(api):
    sl, client = await api()
    recipients = {PHONE: {"name": "Alex", "credits": 5}, "5551230002": {"name": "Mary"}, "1234": {"name": "X"}}
    status, text = await call(client, "send_messages", get=True, template="Hello {{name}}, {{ credits }} left",
                              recipients=json.dumps(recipients))
    ids = json.loads(text)["message_ids"].split(",")
    assert status == 200 and ids[2] == "-1"
    assert [sl.messages[int(i)].text for i in ids[:2]] == ["Hello Alex, 5 left", "Hello Mary,  left"]


async def test_action_expected_opens_a_session(api):
    sl, client = await api()
    await call(client, "send_message", phone_number=PHONE, body="Reply YES to confirm", action_expected="TRUE")
    await call(client, "send_message", phone_number="5551230002", body="FYI", action_expected="0")
    assert sl.phone(PHONE).session_open
    assert not sl.phone("5551230002").session_open


async def test_scheduled_messages_can_be_canceled(api):
    sl, client = await api()
    _, text = await call(client, "send_message", phone_number=PHONE, body="word " * 40,
                         on="2099-01-01T09:00:00Z", tag="thread-1")
    ids = json.loads(text)["message_ids"]
    assert len(ids.split(",")) == 2
    assert all(m.scheduled == "2099-01-01T09:00:00Z" and not m.sent for m in sl.messages.values())
    _, now_text = await call(client, "send_message", phone_number=PHONE, body="now")
    now_id = json.loads(now_text)["message_ids"]
    status, text = await call(client, "cancel_messages", message_ids=f"{ids},{now_id},999")
    assert (status, json.loads(text)) == (200, {"canceled_count": 2})
    _, text = await call(client, "cancel_messages", message_ids=ids)
    assert json.loads(text) == {"canceled_count": 0}


async def test_lenient_schedule_dates_are_accepted(api):
    _, client = await api()
    for on in ("16:30", "Aug 31", "7/31", "2/9/2007", "2007-09-02T12:30:44-0500", "Wednesday, January 10, 2001",
               "02-09-2007 12:30:44 PM EST", "10/12/2008 12:55AM —0500", "Tuesday 9 1:15PM"):
        status, text = await call(client, "send_message", phone_number=PHONE, body="hi", on=on)
        assert status == 200, (on, text)


async def test_an_unreadable_schedule_is_kept_as_given(api, aiohttp_server):
    gateway = TinyGateway()
    sl, client = await api(await serve(aiohttp_server, gateway))
    status, text = await call(client, "send_message", phone_number=PHONE, body="hi", on="when pigs fly")
    message_id = int(json.loads(text)["message_ids"])
    assert status == 200 and sl.messages[message_id].scheduled == "when pigs fly"
    await asyncio.sleep(0.1)
    assert not sl.messages[message_id].sent and sl.phone(PHONE).received == []
    assert gateway.received == []
    _, text = await call(client, "cancel_messages", message_ids=str(message_id))
    assert json.loads(text) == {"canceled_count": 1}


@pytest.mark.parametrize("on", ["2/9/2007", "10/12/2008 12:55AM —0500"])  # the second: messaging.md's own
async def test_a_schedule_in_the_past_goes_out_at_once(api, aiohttp_server, on):
    gateway = TinyGateway()
    sl, client = await api(await serve(aiohttp_server, gateway))
    _, text = await call(client, "send_message", phone_number=PHONE, body="late", on=on)
    message_id = json.loads(text)["message_ids"]
    await gateway.wait_for(lambda: any(f["message_id"] == message_id and f["final"] == "1"
                                       for f in gateway.of_type("delivery_report")))
    assert sl.phone(PHONE).received == ["late"]
    _, text = await call(client, "cancel_messages", message_ids=message_id)
    assert json.loads(text) == {"canceled_count": 0}  # already sent


async def test_delivery_status_reports_known_ids(api):
    # no follow-ups: the simulated delivery would move the status on its own (to 4, queued)
    sl, client = await api(follow_ups=False)
    _, text = await call(client, "send_message", phone_number=PHONE, body="hi")
    message_id = json.loads(text)["message_ids"]
    status, text = await call(client, "delivery_status", get=True, message_ids=f"{message_id},424242")
    assert status == 200 and json.loads(text) == {message_id: 0}
    sl.messages[int(message_id)].status = 1
    _, text = await call(client, "delivery_status", message_ids=message_id)
    assert json.loads(text) == {message_id: 1}


async def test_remove_tag(api):
    _, client = await api()
    status, text = await call(client, "remove_tag", phone_number=PHONE, tag="thread-1")
    assert (status, json.loads(text)) == (200, {})


async def test_an_answer_to_a_tagged_message_carries_the_thread_tag(api, aiohttp_server):
    """messaging.md: `tag` is the conversation thread (one DID); the phone's answer comes
    back with it, in the undocumented `tag` field real client apps read, until remove_tag."""
    gateway = TinyGateway()
    sl, client = await api(await serve(aiohttp_server, gateway), reply_chance=1.0, failure_rate=0.0,
                           delivery_delay=0.1)

    async def answer_to(body: str, *, end_thread: bool = False, **params: str) -> dict[str, str]:
        before = len(gateway.of_type("incoming_message"))
        status, _ = await call(client, "send_message", phone_number="+1 (555) 123-0001", body=body, **params)
        assert status == 200
        if end_thread:  # before the phone answers (the delivery takes 0.08 s at least)
            assert (await call(client, "remove_tag", phone_number="15551230001", tag="table-12"))[0] == 200
        await gateway.wait_for(lambda: len(gateway.of_type("incoming_message")) > before)
        return gateway.of_type("incoming_message")[-1]

    tagged = await answer_to("Your table is ready", tag="table-12")
    assert tagged["tag"] == "table-12" and normalise_phone(tagged["phone_number"]) == PHONE
    assert_well_formed(tagged)
    assert "tag" not in await answer_to("An untagged note")
    assert "tag" not in await answer_to("Last call", tag="table-12", end_thread=True)
    assert sl.phone(PHONE).threads == set()


async def test_close_sessions_closes_and_notifies_the_gateway(api, aiohttp_server):
    gateway = TinyGateway()
    sl, client = await api(await serve(aiohttp_server, gateway))
    await sl.incoming(PHONE, "PIZZA")
    await sl.incoming("5551230002", "SURF")
    status, text = await call(client, "close_sessions", phone_numbers=f"{PHONE},+1 555 123 0002,5551239999")
    assert (status, json.loads(text)) == (200, {})
    assert not sl.phone(PHONE).session_open and not sl.phone("5551230002").session_open
    await gateway.wait_for(lambda: bool(gateway.of_type("session_closed")))
    closed = gateway.of_type("session_closed")
    assert [[normalise_phone(p) for p in f["phone_numbers"].split(",")] for f in closed] == [
        [PHONE, "5551230002", "5551239999"]]
    assert_well_formed(closed[0])


async def test_sent_messages_reach_the_phone_report_delivery_and_get_answers(api, aiohttp_server):
    gateway = TinyGateway()
    sl, client = await api(await serve(aiohttp_server, gateway), reply_chance=1.0, failure_rate=0.0)
    _, text = await call(client, "send_message", phone_number=PHONE, body="word " * 40, action_expected="yes")
    ids = json.loads(text)["message_ids"].split(",")
    await gateway.wait_for(lambda: bool(gateway.of_type("incoming_message")))
    reports = gateway.of_type("delivery_report")
    for message_id in ids:
        mine = [r for r in reports if r["message_id"] == message_id]
        assert mine[0]["status"] == "4" and parse_bool(mine[0]["final"]) is False
        assert mine[-1]["status"] in ("1", "2") and parse_bool(mine[-1]["final"]) is True
    for fields in gateway.received:
        assert_well_formed(fields)
    answer = gateway.of_type("incoming_message")[0]
    assert answer["phone_number"] == PHONE
    _, text = await call(client, "delivery_status", message_ids=",".join(ids))
    assert set(json.loads(text).values()) <= {1, 2} and set(json.loads(text)) == set(ids)


async def test_a_bug_is_still_a_one_line_500(api, monkeypatch):
    sl, client = await api()

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(sl, "send", broken)
    status, text = await call(client, "send_message", phone_number=PHONE, body="hi")
    assert (status, text) == (500, "internal error in send_message: KeyError\n")


async def test_api_answers_json(api):
    _, client = await api()
    response = await client.post("/api/send_message", data={"api_key": KEY, "phone_number": PHONE, "body": "hi"})
    assert response.content_type == "application/json"
    assert isinstance(await response.json(), dict)


def test_make_sl_api_returns_an_application():
    assert isinstance(make_sl_api(SimulatedSL(None), "k"), web.Application)
