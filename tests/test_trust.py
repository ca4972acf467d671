"""An answer reaches only the texter it was written for: the real console (Pilot) with the
real gateway on a free port, real HTTP clients reading what they received, and the real
simulated SL receiving follow-up messages."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from server.config import Config, GatewayConfig
from server.simulator.demo import start_sl_api
from server.simulator.sl import SimulatedSL
from server.backend.local import LocalBackend
from tui.app import SwitchboardApp
from tui.screens.search import SearchScreen
from tui.widgets.composer import Composer
from tui.widgets.held_queue import HeldQueue

from .conftest import INCOMING, wait_until

A = {**INCOMING, "phone_number": "5550000001", "body": "Do you deliver to Elm St?"}
B = {**INCOMING, "phone_number": "5550000002", "body": "Please block my card, it was stolen"}


def make_app(store, tmp_path: Path, *, sl_url: str = "", **gateway) -> SwitchboardApp:
    gateway.setdefault("port", 0)
    gateway.setdefault("reply_timeout", 10)
    config = Config(gateway=GatewayConfig(**gateway), data_dir=tmp_path,
                    sl_url=sl_url or None, sl_api_key="sl-key" if sl_url else None)
    return SwitchboardApp(config, LocalBackend.for_config(config, store))


async def post(url: str, fields: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=fields) as response:
            return response.status, await response.text()



def thread_text(app: SwitchboardApp) -> str:
    return "".join(strip.text for strip in app.query_one("#thread").lines)


def banner(app: SwitchboardApp) -> str:
    return str(app.query_one("#composer-banner").render())


@pytest.fixture
async def simulated_sl():
    """The real simulated SL API on a free loopback port; its phones record what reaches them."""
    sl = SimulatedSL("http://127.0.0.1:9/", api_key="sl-key", follow_ups=False)
    runner, url = await start_sl_api(sl, "sl-key")
    yield sl, url
    await sl.close()
    await runner.cleanup()


async def test_a_deadline_passing_mid_typing_never_sends_the_draft_to_the_next_texter(store, tmp_path):
    # As reproduced: the operator types for A, A times out mid-sentence, the keystrokes and
    # enter go on. B must receive only its own fallback; A's draft stays with A.
    app = make_app(store, tmp_path, reply_timeout=4.0, fallback="FALLBACK")
    async with app.run_test(size=(120, 40)) as pilot:
        first = asyncio.create_task(post(app.gateway_url, A))
        composer = app.query_one(Composer)
        await wait_until(pilot, lambda: composer.item is not None)
        await pilot.press(*"Yes we deliver")
        await pilot.pause(max(0.0, composer.item.deadline - time.time() - 1.0))
        second = asyncio.create_task(post(app.gateway_url, B))  # B is held while the operator types
        await wait_until(pilot, lambda: len(app.query_one(HeldQueue)) == 2)
        assert await asyncio.wait_for(first, 5) == (200, "FALLBACK")
        await pilot.press(*" to Elm St, free over 20", "enter")
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert composer.item is not None and composer.item.record.phones == ("5550000001",)
        assert composer.draft.reply == "Yes we deliver to Elm St, free over 20"
        assert composer.ending is not None and composer.ending.outcome == "timed_out"
        assert "timed out at" in banner(app) and "the fallback was sent" in banner(app)
        assert await asyncio.wait_for(second, 5) == (200, "FALLBACK")
    for seq in (1, 2):
        response = store.response_for(seq)
        assert response is not None and response.answered_by == "fallback" and response.body == "FALLBACK"


async def test_f6_sends_the_kept_draft_to_the_same_phone_as_a_new_message(store, tmp_path, simulated_sl):
    sl, sl_url = simulated_sl
    app = make_app(store, tmp_path, reply_timeout=2.0, fallback="", sl_url=sl_url)
    async with app.run_test(size=(120, 40)) as pilot:
        first = asyncio.create_task(post(app.gateway_url, A))
        composer = app.query_one(Composer)
        await wait_until(pilot, lambda: composer.item is not None)
        await pilot.press(*"Yes we deliver")
        await asyncio.wait_for(first, 5)
        await wait_until(pilot, lambda: composer.ending is not None)
        second = asyncio.create_task(post(app.gateway_url, B))
        await wait_until(pilot, lambda: len(app.query_one(HeldQueue)) == 1)
        await pilot.press("f6")
        await wait_until(pilot, lambda: sl.phone("5550000001").received == ["Yes we deliver"])
        assert sl.phone("5550000002").received == []
        # The follow-up is in A's history; the composer moved on to B with nothing typed.
        outbound = [entry for entry in store.thread("5550000001") if entry.who == "outbound"]
        assert [entry.text for entry in outbound] == ["Yes we deliver"]
        await wait_until(pilot, lambda: composer.item is not None and composer.item.record.phones == ("5550000002",))
        assert composer.draft.reply == ""
        await pilot.press("ctrl+o")
        assert await asyncio.wait_for(second, 5) == (200, "")


async def test_escape_discards_an_ended_draft_and_the_next_text_comes_up_empty(store, tmp_path):
    app = make_app(store, tmp_path, reply_timeout=2.0)
    async with app.run_test(size=(120, 40)) as pilot:
        first = asyncio.create_task(post(app.gateway_url, A))
        composer = app.query_one(Composer)
        await wait_until(pilot, lambda: composer.item is not None)
        await pilot.press(*"draft for the first")
        await asyncio.wait_for(first, 5)
        await wait_until(pilot, lambda: composer.ending is not None)
        second = asyncio.create_task(post(app.gateway_url, {**B, "phone_number": "5550000001"}))
        await wait_until(pilot, lambda: len(app.query_one(HeldQueue)) == 1)
        assert composer.item.seq == 1
        await pilot.press("escape")
        await wait_until(pilot, lambda: composer.item is not None and composer.item.seq == 2)
        assert composer.draft.reply == "" and composer.ending is None
        assert app.query_one(HeldQueue).missed == []
        await pilot.press(*"ok", "enter")
        assert await asyncio.wait_for(second, 5) == (200, "ok")


async def test_enter_on_an_empty_reply_sends_nothing_and_ctrl_o_sends_empty(store, tmp_path):
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        request = asyncio.create_task(post(app.gateway_url, A))
        composer = app.query_one(Composer)
        await wait_until(pilot, lambda: composer.item is not None)
        await pilot.press("enter", "space", "enter")
        await pilot.pause(0.2)
        assert not request.done()
        assert any("ctrl+o" in str(toast.render()) for toast in app.query("Toast"))
        await pilot.press("ctrl+o")
        assert await asyncio.wait_for(request, 5) == (200, "")
        assert store.response_for(1).answered_by == "operator"


@pytest.mark.parametrize("flag", ["phone_blacklisted", "auto_reply_loop"])
async def test_a_reply_to_an_opted_out_or_looping_phone_asks_once(store, tmp_path, flag):
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        assert (await post(app.gateway_url, {"type": flag, "api_key": "k", "phone_number": "5550000001"}))[0] == 200
        request = asyncio.create_task(post(app.gateway_url, A))
        composer = app.query_one(Composer)
        await wait_until(pilot, lambda: composer.item is not None)
        await pilot.press(*"hi", "enter")
        await pilot.pause(0.2)
        assert not request.done(), "the first enter only asks"
        assert any("enter again" in str(toast.render()) for toast in app.query("Toast"))
        await pilot.press("enter")
        assert await asyncio.wait_for(request, 5) == (200, "hi")


async def test_a_conversation_opened_from_the_phone_list_stays_open(store, tmp_path):
    app = make_app(store, tmp_path, reply_timeout=30)
    async with app.run_test(size=(120, 40)) as pilot:
        assert (await post(app.gateway_url, {"type": "phone_blacklisted", "api_key": "k",
                                             "phone_number": "5550000009"}))[0] == 200
        await pilot.pause(1.2)  # the phone list is rebuilt once a second
        app.open_phone("5550000009")
        request = asyncio.create_task(post(app.gateway_url, A))
        await wait_until(pilot, lambda: len(app.query_one(HeldQueue)) == 1)
        await pilot.pause(1.2)
        composer = app.query_one(Composer)
        assert app.query_one("#thread").phone == "5550000009", "not replaced by the auto-selection"
        assert composer.item is None
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: composer.item is not None)
        assert app.query_one("#thread").phone == "5550000001"
        await pilot.press(*"ok", "enter")
        assert await asyncio.wait_for(request, 5) == (200, "ok")


async def test_the_screen_says_when_the_thread_and_the_answer_are_different_phones(store, tmp_path):
    app = make_app(store, tmp_path, reply_timeout=30)
    async with app.run_test(size=(120, 40)) as pilot:
        await post(app.gateway_url, {"type": "subscription_canceled", "api_key": "k", "phone_number": "5550000009"})
        request = asyncio.create_task(post(app.gateway_url, A))
        composer = app.query_one(Composer)
        await wait_until(pilot, lambda: composer.item is not None)
        await pilot.press(*"half a reply")
        app.open_phone("+1 (555) 000-0009")
        await pilot.pause(0.1)
        assert app.query_one("#thread").phone == "5550000009"
        assert composer.item.record.phones == ("5550000001",) and composer.draft.reply == "half a reply"
        assert "shows 5550000009" in banner(app) and "goes to 5550000001" in banner(app)
        await pilot.press("enter")
        assert await asyncio.wait_for(request, 5) == (200, "half a reply")


async def test_a_fallback_appears_in_the_open_thread_when_it_is_recorded(store, tmp_path):
    app = make_app(store, tmp_path, reply_timeout=1.0, fallback="We will text you back")
    async with app.run_test(size=(120, 40)) as pilot:
        request = asyncio.create_task(post(app.gateway_url, A))
        await wait_until(pilot, lambda: "Do you deliver" in thread_text(app))
        await asyncio.wait_for(request, 5)
        await wait_until(pilot, lambda: "We will text you back" in thread_text(app))


async def test_two_forms_of_one_number_are_one_thread_and_search_finds_every_form(store, tmp_path):
    app = make_app(store, tmp_path, reply_timeout=30)
    async with app.run_test(size=(120, 40)) as pilot:
        composer = app.query_one(Composer)
        for raw, text in (("5557000801", "first"), ("15557000801", "second"), ("+1 (555) 700-0801", "third")):
            request = asyncio.create_task(post(app.gateway_url, {**A, "phone_number": raw, "body": text}))
            await wait_until(pilot, lambda: composer.item is not None and composer.answerable)
            await pilot.press(*f"re {text}", "enter")
            assert await asyncio.wait_for(request, 5) == (200, f"re {text}")
            await wait_until(pilot, lambda: composer.item is None)
        texts = [entry.text for entry in store.thread("5557000801")]
        assert texts == ["first", "re first", "second", "re second", "third", "re third"]
        assert [c.phone for c in store.contacts()] == ["5557000801"]
        for query in ("+1 (555) 700-0801", "15557000801", "555-700-0801"):
            await pilot.press("f5")
            screen = app.screen
            assert isinstance(screen, SearchScreen)
            await pilot.press(*query, "enter")
            hits = screen.query_one("#hits")
            # A message and its answer share a seq: before, that crashed with DuplicateID.
            await wait_until(pilot, lambda: hits.option_count == 7)
            await pilot.press("down", "enter")
            await wait_until(pilot, lambda: not isinstance(app.screen, SearchScreen))
            assert app.query_one("#thread").phone == "5557000801"
            assert app.is_running
