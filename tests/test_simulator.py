"""The simulated SL: callbacks it sends, how it reads answers, its HTTP API, the
`simulate` command, and the console fed by `--demo`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from data.phones import normalise_phone
from server.broker import Broker
from server.config import Config, GatewayConfig
from server.sms.contract import CallbackType, parse_callback
from server.frontends.headless import FallbackAnswerer
from server.simulator.judge import judge_response
from server.simulator.sl import SimulatedSL
from server.simulator.sl_api import make_sl_api
from server.simulator.texters import Crowd
from server.sl_client import SLClient

ROOT = Path(__file__).resolve().parent.parent


class ScriptedGateway:
    """A tiny client app that records every callback and answers incoming messages
    and subscriptions with a scripted (status, body)."""

    def __init__(self, answer: tuple[int, str] = (200, "")) -> None:
        self.answer = answer
        self.received: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        fields = dict(await request.post())
        self.received.append(fields)
        if fields.get("type") in ("incoming_message", "subscription_created"):
            status, body = self.answer
            return web.Response(status=status, text=body)
        return web.Response(text="")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/", self.handle)
        return app


@pytest.fixture
async def scripted(aiohttp_server):
    async def start(answer=(200, "")):
        gateway = ScriptedGateway(answer)
        server = await aiohttp_server(gateway.app())
        return gateway, str(server.make_url("/"))

    return start


async def _until_idle(sl: SimulatedSL, timeout: float = 10.0) -> None:
    async def poll() -> None:
        while sl.busy:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def test_the_crowd_sends_every_callback_type_well_formed_to_the_real_gateway(gateway_server, store):
    broker = Broker()
    broker.subscribe(FallbackAnswerer(broker, "Thanks!"))
    server = await gateway_server(GatewayConfig(), broker, store)
    sl = SimulatedSL(str(server.make_url("/")), seed=7, delivery_delay=0.01)
    crowd = Crowd(sl, rate=400, population=8, session_idle=0.0)
    await crowd.run(count=400)
    # Conversations go on (delivery, then the phone answers, then the reply is delivered...);
    # stop the follow-ups and let those in flight finish, or close() cuts one after the
    # gateway kept it but before the SL saw its answer.
    sl.follow_ups = False
    await _until_idle(sl)
    await sl.close()
    types = {exchange.type for exchange in sl.exchanges}
    assert types >= {t.value for t in CallbackType}, f"missing: {set(CallbackType) - types}"
    for exchange in sl.exchanges:
        callback = parse_callback(exchange.fields)
        assert callback.warnings == (), (exchange.fields, callback.warnings)
        assert exchange.status == 200 and exchange.verdict.ok
    assert store.stats().callbacks == len(sl.exchanges)


async def test_a_plain_reply_is_delivered_with_ids_and_delivery_reports(scripted):
    gateway, url = await scripted((200, "Your pizza is on its way"))
    sl = SimulatedSL(url, seed=1, delivery_delay=0.01)
    exchange = await sl.incoming("5551230001", "PIZZA")
    assert exchange.verdict.reply == "Your pizza is on its way"
    assert sl.phone("5551230001").received == ["Your pizza is on its way"]
    for _ in range(100):
        reports = [f for f in gateway.received if f["type"] == "delivery_report"]
        if len(reports) == 2:
            break
        await asyncio.sleep(0.02)
    assert [r["status"] for r in reports] == ["4", reports[1]["status"]]
    assert reports[1]["status"] in ("1", "2") and reports[1]["final"] == "1" and reports[0]["final"] == "0"
    await sl.close()


async def test_close_session_and_reprocess_have_their_documented_effects(scripted):
    gateway, url = await scripted((200, '{"body":"Switching","close_session":true,"reprocess":"another keyword"}'))
    sl = SimulatedSL(url, seed=1, delivery_delay=0.01)
    await sl.incoming("5551230002", "MOVE ME")
    for _ in range(100):
        bodies = [f.get("body") for f in gateway.received if f["type"] == "incoming_message"]
        if "another keyword" in bodies:
            break
        await asyncio.sleep(0.02)
    assert bodies[:2] == ["MOVE ME", "another keyword"]
    assert sl.phone("5551230002").received[0] == "Switching"
    await sl.close()


async def test_close_session_alone_ends_the_session(scripted):
    _, url = await scripted((200, '{"close_session":"yes"}'))
    sl = SimulatedSL(url, seed=1)
    exchange = await sl.incoming("5551230003", "bye")
    assert exchange.verdict.ok and exchange.verdict.close_session
    assert sl.phone("5551230003").session_open is False
    await sl.close()


async def test_tags_are_recorded(scripted):
    _, url = await scripted((200, "vip, event-2026"))
    sl = SimulatedSL(url, seed=1)
    await sl.post({"type": "subscription_created", "phone_number": "5551230004"})
    assert sl.phone("5551230004").tags == ("vip", "event-2026")
    await sl.close()


@pytest.mark.parametrize(
    "kind,status,body,reason",
    [
        ("incoming_message", 200, '{"close_session":"perhaps"}', "not a boolean"),
        ("incoming_message", 200, '{"body":5}', "'body' is not a string"),
        ("incoming_message", 302, "", "HTTP 302 instead of 200, Location: (none)"),
        ("incoming_message", 500, "oops", "HTTP 500"),
        ("subscription_created", 200, "vip!,ok", "tag(s) with characters"),
        ("delivery_report", 404, "", "HTTP 404"),
    ],
)
def test_contract_breaking_responses_are_violations(kind, status, body, reason):
    verdict = judge_response(kind, status, body)
    assert not verdict.ok
    assert any(reason in violation for violation in verdict.violations)


@pytest.mark.parametrize("body,reason", [("{not json", "not valid JSON"), ('["a"]', "not an object")])
def test_declared_json_that_is_not_an_object_is_a_violation(body, reason):
    for content_type in ("application/json", "application/json; charset=utf-8", "application/vnd.x+json"):
        verdict = judge_response("incoming_message", 200, body, content_type=content_type)
        assert not verdict.ok and reason in verdict.violations[0]
    plain = judge_response("incoming_message", 200, body, content_type="text/plain")
    assert plain.ok and plain.reply == body and plain.warnings[0].startswith("ambiguous: ")


def test_compliant_responses_are_ok():
    assert judge_response("incoming_message", 200, "").ok
    assert judge_response("incoming_message", 200, "plain reply").reply == "plain reply"
    assert judge_response("incoming_message", 200, '{"body":"{x"}').reply == "{x"
    assert judge_response("subscription_created", 200, "a b,c_d").tags == ("a b", "c_d")
    assert judge_response("delivery_report", 200, "ignored").ok


async def test_a_timeout_and_a_refused_connection_are_violations(aiohttp_server):
    async def slow(request):
        await asyncio.sleep(2)
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/", slow)
    server = await aiohttp_server(app)
    sl = SimulatedSL(str(server.make_url("/")), timeout=0.2)
    exchange = await sl.incoming("5551230005", "hello")
    assert any("no response within" in v for v in exchange.verdict.violations)
    await sl.close()
    from server.gateway.runner import free_port

    sl = SimulatedSL(f"http://127.0.0.1:{free_port()}/")
    exchange = await sl.incoming("5551230005", "hello")
    assert any("cannot reach the gateway" in v for v in exchange.verdict.violations)
    await sl.close()


# ------------------------------------------------------------------- the SL API


@pytest.fixture
async def sl_api(aiohttp_client, scripted):
    gateway, url = await scripted()
    sl = SimulatedSL(url, api_key="K", seed=1, delivery_delay=0.01, flood_limit=3)
    client = await aiohttp_client(make_sl_api(sl, "K"))
    yield client, sl, gateway
    await sl.close()


async def test_send_message_returns_ids_and_splits_long_bodies(sl_api):
    client, sl, _ = sl_api
    response = await client.post("/api/send_message", data={"api_key": "K", "phone_number": "5551239999", "body": "hi"})
    assert response.status == 200
    ids = (await response.json())["message_ids"].split(",")
    assert len(ids) == 1 and int(ids[0]) > 0
    long = "word " * 80  # 400 GSM-7 characters: three parts
    response = await client.get("/api/send_message", params={"api_key": "K", "phone_numbers": "5551230001,5551230002", "body": long})
    ids = (await response.json())["message_ids"].split(",")
    assert len(ids) == 6
    parts = [sl.messages[int(i)].text for i in ids[:3]]
    assert [p[:6] for p in parts] == ["(1/3) ", "(2/3) ", "(3/3) "]
    assert all(len(p) <= 153 for p in parts)


async def test_send_message_negative_ids(sl_api):
    client, sl, _ = sl_api
    sl.phone("5551230009").blacklisted = True

    async def ids(phone):
        response = await client.post("/api/send_message", data={"api_key": "K", "phone_number": phone, "body": "x"})
        return (await response.json())["message_ids"]

    assert await ids("12") == "-1"
    assert await ids("5551230009") == "-2"
    assert [await ids("5551230008") for _ in range(4)][-1] == "-3"


@pytest.mark.parametrize(
    "method,params,reason",
    [
        ("send_message", {"api_key": "wrong", "phone_number": "5551230001", "body": "x"}, "invalid api_key"),
        ("send_message", {"api_key": "K", "body": "x"}, "missing parameter 'phone_number'"),
        ("send_messages", {"api_key": "K", "template": "Hi", "recipients": "{nope"}, "not valid JSON"),
        ("cancel_messages", {"api_key": "K", "message_ids": "a,b"}, "integers"),
        ("close_sessions", {"api_key": "K"}, "missing parameter 'phone_numbers'"),
    ],
)
async def test_api_errors_are_500_with_a_message(sl_api, method, params, reason):
    client, _, _ = sl_api
    response = await client.post(f"/api/{method}", data=params)
    assert response.status == 500
    assert reason in await response.text()


async def test_templates_cancel_status_and_close_sessions(sl_api):
    client, sl, gateway = sl_api
    response = await client.post("/api/send_messages", data={
        "api_key": "K", "template": "Hello {{name}}, {{credits}} left",
        "recipients": json.dumps({"5551230001": {"name": "Jo", "credits": "5"}, "5551230002": {"name": "Al", "credits": "1"}}),
        "on": "Tuesday 9 1:15PM"})
    ids = [int(i) for i in (await response.json())["message_ids"].split(",")]
    assert sorted(sl.messages[i].text for i in ids) == ["Hello Al, 1 left", "Hello Jo, 5 left"]
    response = await client.post("/api/cancel_messages", data={"api_key": "K", "message_ids": ",".join(map(str, ids))})
    assert (await response.json()) == {"canceled_count": 2}
    response = await client.post("/api/delivery_status", data={"api_key": "K", "message_ids": f"{ids[0]},999"})
    assert (await response.json()) == {str(ids[0]): 0}
    response = await client.post("/api/close_sessions", data={"api_key": "K", "phone_numbers": "5551230001"})
    assert response.status == 200
    for _ in range(100):
        if any(f["type"] == "session_closed" for f in gateway.received):
            break
        await asyncio.sleep(0.02)
    closed = [f for f in gateway.received if f["type"] == "session_closed"]
    assert closed and closed[0]["phone_numbers"] == "5551230001"


async def test_sl_client_reports_errors_in_one_line(sl_api):
    client, sl, _ = sl_api
    base = str(client.make_url("/api/"))
    good = SLClient(base, "K")
    result = await good.send_message("5551230001", "hello", action_expected=True)
    assert result.error == "" and len(result.message_ids) == 1
    assert sl.phone("5551230001").session_open is True
    sl.phone("5551230002").blacklisted = True
    refused = await good.send_message("5551230002", "hello")
    assert refused.error == "-2: phone is blacklisted (opted out)"
    await good.close()
    bad = SLClient(base, "wrong")
    result = await bad.send_message("5551230001", "x")
    assert result.error == "send_message: HTTP 500: invalid api_key"
    await bad.close()
    from server.gateway.runner import free_port

    gone = SLClient(f"http://127.0.0.1:{free_port()}/api/", "K")
    result = await gone.send_message("5551230001", "x")
    assert result.error.startswith("cannot reach the SL at")
    await gone.close()


# ------------------------------------------------------------------- simulate command


def _headless(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "run.py", "--headless", "--port", "0", "--data-dir", str(tmp_path / "h"), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    assert "Gateway URL" in line, line + proc.stderr.read()
    return proc, line.split("Gateway URL ")[1].split()[0]


def _simulate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", "simulate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_simulate_passes_a_compliant_gateway_and_scenarios(tmp_path):
    proc, url = _headless(tmp_path, "--fallback", "Thanks, we will text you back")
    try:
        result = _simulate("--gateway", url, "--count", "25", "--rate", "50", "--seed", "3")
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.strip().splitlines()
        assert len([l for l in lines if l.startswith("→")]) >= 25
        assert lines[-1].startswith("summary:") and "0 with contract violations" in lines[-1]
        for scenario in sorted((ROOT / "scenarios").glob("*.json")):
            result = _simulate("--gateway", url, "--scenario", str(scenario))
            assert result.returncode == 0, (scenario.name, result.stdout)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_simulate_fails_a_gateway_that_breaks_the_contract(tmp_path):
    proc, url = _headless(tmp_path, "--fallback", "{looks like json but is plain}")
    try:
        # Switchboard sends such a fallback as {"body": ...}: compliant. A scenario that
        # expects the wrong text must fail, with the reason on the line.
        scenario = tmp_path / "wrong.json"
        scenario.write_text(json.dumps([{"send": {"type": "incoming_message", "phone_number": "5551230001",
                                                  "body": "hi", "sent_at": "10:00"}, "expect": {"body": "nope"}}]))
        result = _simulate("--gateway", url, "--scenario", str(scenario))
        assert result.returncode == 1
        assert "VIOLATION: expected body 'nope'" in result.stdout
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    bad = subprocess.Popen([sys.executable, "-c", BAD_GATEWAY], stdout=subprocess.PIPE, text=True)
    try:
        port = bad.stdout.readline().strip()
        result = _simulate("--gateway", f"http://127.0.0.1:{port}/", "--count", "10", "--rate", "50", "--seed", "1")
        assert result.returncode == 1
        assert "WARNING: unknown JSON key(s): colour" in result.stdout
        assert "VIOLATION: tag(s) with characters outside" in result.stdout  # the same JSON as tags
        assert "with contract violations" in result.stdout.splitlines()[-1]
    finally:
        bad.terminate()
        bad.communicate(timeout=10)


BAD_GATEWAY = """
import asyncio, sys
from aiohttp import web
async def handle(request):
    return web.Response(text='{"body": "hi", "colour": "red"}')
async def main():
    app = web.Application(); app.router.add_post('/', handle)
    runner = web.AppRunner(app); await runner.setup()
    site = web.TCPSite(runner, '127.0.0.1', 0); await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def test_simulate_bad_input_is_one_line():
    result = _simulate("--gateway", "not-a-url")
    assert result.returncode == 2 and "expected an http:// URL" in result.stderr
    from server.gateway.runner import free_port

    result = _simulate("--gateway", f"http://127.0.0.1:{free_port()}/", "--count", "1")
    assert result.returncode == 2
    assert result.stderr.startswith("switchboard simulate: cannot reach the gateway")
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------- the console in --demo


async def test_demo_traffic_arrives_and_a_reply_reaches_the_virtual_phone(store, tmp_path):
    from server.backend.local import LocalBackend
    from tui.app import SwitchboardApp
    from tui.widgets.composer import Composer

    config = Config(gateway=GatewayConfig(port=0, reply_timeout=20), data_dir=tmp_path, demo=True, demo_rate=0.5, demo_seed=5)
    app = SwitchboardApp(config, LocalBackend.for_config(config, store))
    async with app.run_test(size=(120, 40)) as pilot:
        composer = app.query_one(Composer)
        for _ in range(250):
            if composer.item is not None:
                break
            await pilot.pause(0.02)
        assert composer.item is not None, "demo traffic must arrive within 5 s"
        # From here on only this conversation goes on (its delivery reports, the phone's
        # answers): a new texter's message would take the view, as it should.
        app.backend._demo._crowd_task.cancel()
        phone = composer.item.record.phones[0]
        await pilot.press(*"See you soon", "enter")
        demo_sl = app.backend._demo.sl
        for _ in range(250):
            if "See you soon" in demo_sl.phone(phone).received:
                break
            await pilot.pause(0.02)
        assert "See you soon" in demo_sl.phone(phone).received
        # An outbound message from the console (f6): ids in the thread, then the
        # simulator's delivery reports update its state to final.
        await pilot.press("f6")
        await pilot.pause(0.05)
        assert normalise_phone(app.screen.query_one("#to").value) == phone  # prefilled
        await pilot.press(*"A message from the operator", "enter")
        entry = None
        for _ in range(400):
            outbound = [e for e in store.thread(phone) if e.who == "outbound"]
            if outbound and outbound[-1].final:
                entry = outbound[-1]
                break
            await pilot.pause(0.02)
        assert entry is not None, "the delivery report must reach the thread"
        assert entry.text == "A message from the operator" and entry.message_ids
        assert entry.delivery[0] in ("delivered", "failed")

        def shown() -> str:
            return "".join(strip.text for strip in app.query_one("#thread").lines).replace(" ", "")

        for _ in range(100):
            if "final" in shown():
                break
            await pilot.pause(0.02)
        assert "Amessagefromtheoperator" in shown() and "final]" in shown()


def test_serve_sl_answers_the_api_and_stops_on_sigint(tmp_path):
    import signal

    proc = subprocess.Popen([sys.executable, "run.py", "serve-sl", "--port", "0", "--api-key", "K"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("simulated SL API at http://127.0.0.1:"), line + proc.stderr.read()
        base = line.split(" at ")[1].split()[0]

        async def call() -> str:
            client = SLClient(base, "K")
            try:
                result = await client.send_message("5551230001", "hello")
                return result.error or ",".join(result.message_ids)
            finally:
                await client.close()

        ids = asyncio.run(call())
        assert ids.isdigit()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0 and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
