"""The agent's desk (issue 15): what keeps one operator abreast of a busy line, on the real
console with the real gateway on a free port."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from server.backend.local import LocalBackend
from server.config import Config, GatewayConfig
from server.sms.templates import Template
from tui.app import SwitchboardApp
from tui.widgets.composer import Composer
from tui.widgets.held_queue import HeldQueue
from tui.widgets.phone_list import PhoneList, unread_count

from .conftest import INCOMING, wait_until


def make_app(store, tmp_path: Path, **gateway) -> SwitchboardApp:
    gateway.setdefault("port", 0)
    gateway.setdefault("reply_timeout", 30)
    config = Config(gateway=GatewayConfig(**gateway), data_dir=tmp_path)
    return SwitchboardApp(config, LocalBackend.for_config(config, store))


async def post(url: str, fields: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=fields) as response:
            return response.status, await response.text()



async def test_timeouts_are_a_counter_never_a_pop_up_and_the_title_says_how_many_wait(store, tmp_path):
    app = make_app(store, tmp_path, reply_timeout=1.0, fallback="later")
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        requests = [asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": f"555000000{n}"}))
                    for n in range(3)]
        await wait_until(pilot, lambda: len(app.query_one(HeldQueue)) == 3)
        await wait_until(pilot, lambda: app.title == "Switchboard - 3 waiting")
        await asyncio.wait_for(asyncio.gather(*requests), 5)
        title = app.query_one("#queue-title")
        await wait_until(pilot, lambda: "missed 3" in str(title.render()))
        await wait_until(pilot, lambda: app.title == "Switchboard")
        assert "timed out 3" in str(app.query_one("#status").render())
        await pilot.pause(1.2)
        assert not any("timed out" in str(toast.render()) for toast in app.query("Toast"))


async def test_a_canned_reply_by_slash_name_tab_enter_with_its_placeholders_filled(store, tmp_path):
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        composer = app.query_one(Composer)
        await wait_until(pilot, lambda: len(composer.templates) >= 5)  # the defaults, on first start
        await app.backend.save_template(Template("greet", "Hi {phone_number}, about '{body}': yes"))
        await app._load_templates()
        request = asyncio.create_task(post(app.gateway_url, {**INCOMING, "body": "open today?"}))
        await wait_until(pilot, lambda: composer.item is not None)
        await pilot.press(*"/gr")
        assert composer.offering
        await pilot.press("tab")
        assert composer.draft.reply == "Hi 5551234567, about 'open today?': yes", "filled and visible before sending"
        await pilot.press("enter")
        assert await asyncio.wait_for(request, 5) == (200, "Hi 5551234567, about 'open today?': yes")


async def test_a_template_with_close_session_and_one_with_tags(store, tmp_path):
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        composer = app.query_one(Composer)
        await wait_until(pilot, lambda: len(composer.templates) >= 5)
        request = asyncio.create_task(post(app.gateway_url, INCOMING))
        await wait_until(pilot, lambda: composer.item is not None)
        await pilot.press(*"/bye", "enter")  # enter on an offered template fills it ...
        assert composer.draft.close_session is True
        await pilot.press("enter")  # ... and the next one sends
        status, body = await asyncio.wait_for(request, 5)
        assert json.loads(body) == {"body": "Thanks for texting us. Have a great day!", "close_session": True}
        request = asyncio.create_task(post(app.gateway_url, {"type": "subscription_created", "api_key": "k",
                                                             "phone_number": "5550000009"}))
        await wait_until(pilot, lambda: composer.item is not None and composer.item.seq == 2)
        await pilot.press(*"/welc", "tab", "enter")
        assert await asyncio.wait_for(request, 5) == (200, "subscriber")


async def test_templates_are_kept_in_the_data_directory_and_loaded_from_a_file(tmp_path):
    from data.store import HistoryStore

    path = tmp_path / "mine.json"
    path.write_text(json.dumps([{"name": "promo", "body": "[HAPPY HOUR] half-price 5-7pm"}]))
    for attempt in range(2):
        store = HistoryStore.open(tmp_path / "history")
        config = Config(gateway=GatewayConfig(port=0), data_dir=tmp_path, templates_file=path if attempt == 0 else None)
        app = SwitchboardApp(config, LocalBackend.for_config(config, store))
        async with app.run_test(size=(120, 40)) as pilot:
            composer = app.query_one(Composer)
            await wait_until(pilot, lambda: any(t.name == "promo" for t in composer.templates))
            if attempt == 0:
                assert await app.backend.delete_template("hours")
        store.close()
    names = {t.name for t in composer.templates}
    assert "promo" in names and "hours" not in names, "kept across a restart; defaults only on first start"


def test_a_broken_templates_file_is_refused_at_start_with_one_line(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "bad.json"
    path.write_text('[{"name": "ok", "body": "x"}, {"name": "oops", "body": "Hi {nme}"}]')
    result = subprocess.run([sys.executable, "run.py", "--headless", "--data-dir", str(tmp_path / "d"),
                             "--templates", str(path), "--port", "0"],
                            capture_output=True, text=True, timeout=30, cwd=Path(__file__).parent.parent)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "bad.json: entry 2 ('oops'): unknown placeholder {nme}" in result.stderr
    assert not (tmp_path / "d" / "templates.json").exists(), "nothing stored changes"


async def test_one_row_per_conversation_in_the_operators_order_and_answer_next(store, tmp_path):
    app = make_app(store, tmp_path, reply_timeout=30)
    async with app.run_test(size=(120, 40)) as pilot:
        queue = app.query_one(HeldQueue)
        composer = app.query_one(Composer)
        first = asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": "5550000001", "body": "a1"}))
        await wait_until(pilot, lambda: len(queue) == 1)
        rest = [asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": phone, "body": body}))
                for phone, body in (("15550000001", "a2"), ("5550000002", "b1"), ("5550000003", "c1"))]
        await wait_until(pilot, lambda: len(queue) == 4)
        assert queue.conversations == ["5550000001", "5550000002", "5550000003"], "one row per phone"
        assert len(queue.waiting("5550000001")) == 2
        await pilot.press("ctrl+y", "ctrl+y")  # oldest -> least time left -> newest
        assert queue.order == "newest" and queue.conversations[0] == "5550000003"
        assert await app.backend.setting("order") == "newest", "remembered"
        assert composer.item.seq == 1, "the composer keeps its item when the order changes"
        await pilot.press(*"r1", "enter")
        assert await asyncio.wait_for(first, 5) == (200, "r1")
        # Answer next: the first conversation by the order (newest first: 5550000003).
        await wait_until(pilot, lambda: composer.item is not None and composer.item.record.parsed["body"] == "c1")
        await pilot.press("ctrl+q", "enter")
        await asyncio.wait_for(asyncio.gather(*rest), 5)


async def test_marked_conversations_or_a_flood_are_answered_with_one_template(store, tmp_path):
    app = make_app(store, tmp_path, reply_timeout=30)
    async with app.run_test(size=(120, 40)) as pilot:
        queue = app.query_one(HeldQueue)
        composer = app.query_one(Composer)
        await wait_until(pilot, lambda: len(composer.templates) >= 5)
        phones = ["5550000001", "5550000001", "5550000002", "5550000003", "5550000004"]
        requests = [asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": p, "body": f"t{n}"}))
                    for n, p in enumerate(phones)]
        await wait_until(pilot, lambda: len(queue) == 5)
        queue.focus()
        await pilot.press("home", "space", "down", "space")  # mark the first two conversations
        assert queue.marked == {"5550000001", "5550000002"}
        await pilot.press("ctrl+g", *"hours", "enter")
        question = str(app.screen.query_one("#confirm-question").render())
        assert "Answer 3 texts from 2 phones with /hours?" in question and "1 other waiting" in question
        await pilot.press("enter")
        hours = "We're open 9am-6pm, Monday to Saturday."
        results = await asyncio.wait_for(asyncio.gather(*requests[:3]), 5)
        assert sorted(body for _, body in results) == ["", hours, hours], "each phone gets it once"
        await wait_until(pilot, lambda: len(queue) == 2)
        await pilot.press("ctrl+g", *"thanks", "enter")
        assert "Answer 2 texts from 2 phones with /thanks?" in str(app.screen.query_one("#confirm-question").render())
        await pilot.press("enter")
        results = await asyncio.wait_for(asyncio.gather(*requests[3:]), 5)
        assert all(body.startswith("Thanks for your message") for _, body in results)
        phones = app.query_one(PhoneList)
        await wait_until(pilot, lambda: all(phones.seen.get(p) == phones_count for p, phones_count in
                                            (("5550000001", 2), ("5550000002", 1), ("5550000004", 1))))
        assert all(unread_count(c, phones.seen) == 0 for c in phones._contacts), "answered texts are not unread"


async def test_a_note_on_a_phone_is_shown_kept_across_a_restart_and_never_sent(tmp_path):
    from data.store import HistoryStore

    for attempt in range(2):
        store = HistoryStore.open(tmp_path / "history")
        app = make_app(store, tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            if attempt == 0:
                request = asyncio.create_task(post(app.gateway_url, INCOMING))
                await wait_until(pilot, lambda: app.query_one(Composer).item is not None)
                await pilot.press("f12", *"prefers calls after 5pm", "enter")
                await pilot.press(*"hi", "enter")
                assert await asyncio.wait_for(request, 5) == (200, "hi"), "the note is never sent"
            else:
                app.open_phone("5551234567")
            panel = app.query_one("#contact")
            await wait_until(pilot, lambda: "prefers calls after 5pm" in str(panel.render()))
        store.close()


async def test_the_palette_names_every_action_once_and_the_theme_is_remembered(tmp_path):
    from data.store import HistoryStore

    for attempt in range(2):
        store = HistoryStore.open(tmp_path / "history")
        app = make_app(store, tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.3)
            titles = [command.title for command in app.get_system_commands(app.screen)]
            assert len(titles) == len(set(titles)), "no duplicates"
            assert "Keys" not in titles and "Help: keys and panels (f1)" in titles
            assert "Canned replies (f10)" in titles and "Search the history (f5)" in titles
            if attempt == 0:
                app.theme = "nord"
                await pilot.pause(0.3)
            else:
                await wait_until(pilot, lambda: app.theme == "nord")
        store.close()


async def test_thirty_texts_at_once_are_all_answered_from_the_keyboard_before_any_times_out(store, tmp_path):
    # The "done when": 30 texts arrive at once, each with a 60 s deadline; the
    # operator answers every one with a template (/name, tab, enter each).
    app = make_app(store, tmp_path, reply_timeout=60)
    async with app.run_test(size=(120, 40)) as pilot:
        composer = app.query_one(Composer)
        await wait_until(pilot, lambda: len(composer.templates) >= 5)
        requests = [asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": f"55500001{n:02d}",
                                                                 "body": f"question {n}"})) for n in range(30)]
        queue = app.query_one(HeldQueue)
        await wait_until(pilot, lambda: len(queue) == 30)
        started = asyncio.get_running_loop().time()
        for _ in range(30):
            await wait_until(pilot, lambda: composer.item is not None and composer.answerable)
            await pilot.press("/", "t", "h", "tab", "enter")
        results = await asyncio.wait_for(asyncio.gather(*requests), 30)
        took = asyncio.get_running_loop().time() - started
    thanks = "Thanks for your message! Someone will text you back shortly."
    assert [body for _, body in results] == [thanks] * 30
    assert took < 60, f"took {took:.0f} s"
    assert all(store.response_for(seq).answered_by == "operator" for seq in range(1, 31))


async def test_a_booth_left_alone_moves_on_from_an_ended_text_with_nothing_typed(store, tmp_path, monkeypatch):
    import tui.conversation

    monkeypatch.setattr(tui.conversation, "ENDED_LINGER", 1.0)  # 5 s in use; the texts' deadlines are short here
    app = make_app(store, tmp_path, reply_timeout=3)
    async with app.run_test(size=(120, 40)) as pilot:
        composer = app.query_one(Composer)
        first = asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": "5550000001", "body": "a"}))
        await wait_until(pilot, lambda: composer.item is not None)
        await pilot.pause(2.0)
        second = asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": "5550000002", "body": "b"}))
        assert (await asyncio.wait_for(first, 5))[0] == 200
        await wait_until(pilot, lambda: composer.ending is not None)
        assert composer.item.record.phones == ("5550000001",), "the ending is shown a while first"
        await wait_until(pilot, lambda: composer.item is not None and composer.item.record.phones == ("5550000002",))
        assert composer.ending is None
        assert any(m.item.record.phones == ("5550000001",) for m in app.query_one(HeldQueue)._missed), \
            "the ended text is still a missed row"
        await pilot.press(*"typed for b")  # a draft keeps its text, ended or not
        assert (await asyncio.wait_for(second, 5))[0] == 200
        await wait_until(pilot, lambda: composer.ending is not None)
        await pilot.pause(2.5)
        assert composer.item.record.phones == ("5550000002",) and composer.draft.reply == "typed for b"
