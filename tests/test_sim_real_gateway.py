"""The simulated SL against the real Switchboard gateway (Gateway / GatewayServer
with a real history store): what the simulator sends parses without a warning, what
the gateway answers keeps the contract and has the documented effects, and the demo
runs in the caller's loop the way the console uses it."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

from server.broker import Broker, CallbackReceived, ExchangeHeld
from server.config import GatewayConfig
from server.sms.contract import CallbackType, Decision
from server.frontends.headless import FallbackAnswerer
from server.gateway.runner import GatewayServer
from server.simulator.cli import simulate_main
from server.simulator.demo import start_demo
from server.simulator.sl import SimulatedSL
from server.simulator.texters import Crowd
from server.sl_client import SLClient

ROOT = Path(__file__).resolve().parent.parent
PHONE = "5551230001"


class ScriptedOperator:
    """Answers held callbacks as an operator at the console might, and keeps every
    warning the gateway's parser raised."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.warnings: list[tuple[str, tuple[str, ...]]] = []
        self.types: set[str] = set()
        broker.subscribe(self)

    def decide(self, record) -> Decision:
        if record.type == CallbackType.SUBSCRIPTION_CREATED:
            return Decision(tags=("vip", "new member"))
        body = str(record.parsed.get("body", ""))
        if body == "switch":
            return Decision(reply="Switching to SURF", close_session=True, reprocess="SURF")
        if body == "json please":
            return Decision(reply='{"looks": "like json"}')
        if body.upper().startswith("PIZZA"):
            return Decision(reply="Which size? " + "We have small, medium, large and party size. " * 4)
        return Decision()

    def __call__(self, event) -> None:
        if isinstance(event, (CallbackReceived, ExchangeHeld)):
            record = event.record if isinstance(event, CallbackReceived) else event.item.record
            self.types.add(record.type)
            if record.warnings:
                self.warnings.append((record.type, record.warnings))
        if isinstance(event, ExchangeHeld):
            record = event.item.record
            asyncio.get_running_loop().call_soon(self.broker.answer, record.seq, self.decide(record))


async def real_gateway(gateway_server, store) -> tuple[str, ScriptedOperator]:
    broker = Broker()
    operator = ScriptedOperator(broker)
    server = await gateway_server(GatewayConfig(reply_timeout=5.0), broker, store)
    return str(server.make_url("/")), operator


def fast_sl(url: str, **options) -> SimulatedSL:
    options = {"seed": 11, "delivery_delay": 0.01, "reply_delay": 0.01, "reply_chance": 0.3, "timeout": 10.0} | options
    return SimulatedSL(url, **options)


async def test_crowd_against_the_real_gateway(gateway_server, store):
    url, operator = await real_gateway(gateway_server, store)
    sl = fast_sl(url)
    try:
        await Crowd(sl, rate=300.0, population=10, session_idle=0.05).run(count=300)
        await asyncio.wait_for(_until(lambda: operator.types >= {t.value for t in CallbackType}), 10)
    finally:
        await sl.close()
    assert operator.warnings == []
    assert sl.posted > 200 and not sl.violations, [e.verdict.violations for e in sl.violations][:3]
    subscribed = [state for state in sl.phones.values() if state.tags]
    assert subscribed and all(state.tags == ("vip", "new member") for state in subscribed)


async def test_answers_from_the_real_gateway_have_their_effects(gateway_server, store):
    url, operator = await real_gateway(gateway_server, store)
    sl = fast_sl(url, reply_chance=0.0)
    try:
        pizza = await sl.incoming(PHONE, "PIZZA", carrier=("3", "T-Mobile"))
        assert pizza.verdict.ok and pizza.verdict.reply.startswith("Which size?")
        assert len([m for m in sl.messages.values() if m.phone == PHONE]) == 2  # "(1/2) ", "(2/2) "
        looks = await sl.incoming(PHONE, "json please")
        assert looks.verdict.ok and looks.verdict.reply == '{"looks": "like json"}'
        assert json.loads(looks.body) == {"body": '{"looks": "like json"}'}
        switch = await sl.incoming(PHONE, "switch")
        assert switch.verdict.ok and switch.verdict.close_session and switch.verdict.reprocess == "SURF"
        await asyncio.wait_for(_until(lambda: any(e.fields.get("body") == "SURF" for e in sl.exchanges)), 5)
        joined = await sl.incoming("5551230002", "JOIN", auto_subscribe=True)
        assert joined.verdict.ok
        await asyncio.wait_for(_until(lambda: sl.phone("5551230002").tags != ()), 5)
    finally:
        await sl.close()
    kinds = [e.type for e in sl.exchanges if e.type != "delivery_report"]
    assert kinds[:5] == ["incoming_message"] * 3 + ["session_closed", "incoming_message"]
    assert sl.phone("5551230002").tags == ("vip", "new member")
    assert operator.warnings == [] and not sl.violations
    assert store.thread(PHONE)  # the gateway kept the history


async def test_shipped_scenarios_against_headless_switchboard(gateway_server, store):
    broker = Broker()
    broker.subscribe(FallbackAnswerer(broker, "Thanks, we will text you back"))
    server = await gateway_server(GatewayConfig(), broker, store)
    for scenario in sorted((ROOT / "scenarios").glob("*.json")):
        out, err = io.StringIO(), io.StringIO()
        argv = ["--gateway", str(server.make_url("/")), "--scenario", str(scenario)]
        code = await asyncio.to_thread(simulate_main, argv, out, err)
        assert (code, err.getvalue()) == (0, ""), (scenario.name, out.getvalue())


async def test_demo_in_the_callers_loop_with_the_real_gateway_server(store):
    broker = Broker()
    operator = ScriptedOperator(broker)
    server = GatewayServer(GatewayConfig(port=0, reply_timeout=5.0), broker, store)
    gateway_url = await server.start()
    started = asyncio.get_running_loop().time()
    demo = await start_demo(gateway_url, rate=2.0, seed=5)
    try:
        assert demo.sl_url.startswith("http://127.0.0.1:") and demo.sl_url.endswith("/api/")
        assert demo.sl_api_key == "demo-key"
        await asyncio.wait_for(_until(lambda: "incoming_message" in operator.types), 5)
        assert asyncio.get_running_loop().time() - started < 5
        client = SLClient(demo.sl_url, demo.sl_api_key)
        try:
            result = await client.send_message(PHONE, "Hello from the console", action_expected=True)
            assert result.error == "" and len(result.message_ids) == 1
            assert await client.close_sessions([PHONE]) == ""
            await asyncio.wait_for(_until(lambda: "session_closed" in operator.types), 5)
            statuses = await client.delivery_status(list(result.message_ids))
            assert set(statuses) == set(result.message_ids)
        finally:
            await client.close()
    finally:
        await demo.stop()
        await demo.stop()  # idempotent
        await server.stop()
    assert operator.warnings == []
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert not [t for t in leftovers if "simulator" in repr(t.get_coro()) or "demo" in t.get_name()]


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.01)
