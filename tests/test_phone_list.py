"""The phone list (issue 15 item 2) and the remembered layout (item 6), on the real console
with the real gateway and history: unread and missed counts and the last message per phone,
kept across restarts, and ctrl+l's layout chosen once and kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

from data.store import HistoryStore
from tui.app import SwitchboardApp
from tui.widgets.composer import Composer
from tui.widgets.held_queue import HeldQueue
from tui.widgets.phone_list import PhoneList, phone_row

from data.models import ContactState

from .conftest import INCOMING, wait_until
from .test_desk import make_app, post


def rows(app: SwitchboardApp) -> dict[str, str]:
    phones = app.query_one(PhoneList)
    return {
        phone: phones.row_text(index, 60).plain
        for index, phone in enumerate(phones.phones)
    }


async def test_each_phone_shows_unread_missed_and_its_last_message_across_restarts(tmp_path: Path):
    store = HistoryStore.open(tmp_path / "history")
    app = make_app(store, tmp_path, reply_timeout=3)
    async with app.run_test(size=(120, 40)) as pilot:
        composer, queue = app.query_one(Composer), app.query_one(HeldQueue)
        first = asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": "5550000001", "body": "hello from A"}))
        await wait_until(pilot, lambda: composer.item is not None)
        await pilot.press(*"hi A", "enter")
        assert await asyncio.wait_for(first, 5) == (200, "hi A")
        second = asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": "5550000002", "body": "B here"}))
        await wait_until(pilot, lambda: len(queue) == 1)
        if composer.item is None:  # keys were pressed a moment ago: nothing comes up by itself
            await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: composer.item is not None and composer.item.record.phones == ("5550000002",))
        await pilot.press(*"typing for B")  # B's draft keeps the composer: C's text is not shown
        third = asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": "15550000003", "body": "C waits"}))
        await wait_until(pilot, lambda: len(queue) == 2)
        assert (await asyncio.wait_for(second, 6))[0] == 200, "B timed out: the fallback went"
        await wait_until(pilot, lambda: len(rows(app)) == 3 and "✗1" in rows(app)["5550000002"]
                         and "●1" in rows(app)["5550000003"], timeout=8)
        shown = rows(app)
        assert list(shown) == ["5550000002", "5550000003", "5550000001"], "most recently active first (B: its fallback)"
        assert "→ hi A" in shown["5550000001"] and "●" not in shown["5550000001"], "read: it was on screen"
        assert "✗1" in shown["5550000002"] and "⤺" in shown["5550000002"], "missed; the fallback was last"
        assert "← C waits" in shown["5550000003"] and "✗" not in shown["5550000003"]
        fourth = asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": "5550000004", "body": "D last"}))
        await wait_until(pilot, lambda: len(queue) == 2)
    await asyncio.wait_for(third, 5)  # answered with the fallback at quit
    await asyncio.wait_for(fourth, 5)
    store.close()

    store = HistoryStore.open(tmp_path / "history")
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(rows(app)) == 4 and app._phone == "5550000004")
        await pilot.pause(0.3)
        assert "●1" in rows(app)["5550000004"], "the thread shown by itself at start is not read"
        assert "●1" in rows(app)["5550000003"], "unread is kept across a restart"
        assert "●" not in rows(app)["5550000001"]
        phones = app.query_one(PhoneList)
        phones.focus()
        phones.cursor = phones.phones.index("5550000003")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "●" not in rows(app)["5550000003"])
        assert "✗" not in rows(app)["5550000003"], "a fallback at quit is the operator's choice, not a miss"
    store.close()

    store = HistoryStore.open(tmp_path / "history")
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(rows(app)) == 4)
        assert "●" not in rows(app)["5550000003"], "opening the thread read it, for good"
    store.close()


def test_a_row_keeps_untrusted_text_on_one_line_and_within_its_width():
    contact = ContactState(phone="5550000009", messages_in=3, missed=1, last_at=1.0,
                           last_text="\x1b[2Jline one\nline two \u202e" + "x" * 200, last_dir="in")
    row = phone_row(contact, unread=3, width=40, now=2.0)
    assert row.cell_len <= 40
    assert "\x1b" not in row.plain and "\n" not in row.plain and "\u202e" not in row.plain
    assert "●3" in row.plain and "✗1" in row.plain


async def test_the_layout_is_the_operators_choice_and_is_remembered(tmp_path: Path):
    for attempt in range(2):
        store = HistoryStore.open(tmp_path / "history")
        app = make_app(store, tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            events, contact, phones = (app.query_one(f"#{name}") for name in ("events", "right", "phones"))
            if attempt == 0:
                await pilot.pause(0.2)
                assert events.display and contact.display and phones.display
                await pilot.press("ctrl+l")
                await wait_until(pilot, lambda: not events.display)
                assert contact.display and phones.display, "without the events pane"
                await pilot.press("ctrl+l")
                await wait_until(pilot, lambda: not contact.display and not phones.display)
                assert app.query_one(HeldQueue).display and app.query_one(Composer).display
                await pilot.pause(0.3)  # the choice is saved by a worker
            else:
                await wait_until(pilot, lambda: not events.display and not contact.display and not phones.display)
                await pilot.press("ctrl+l")
                await wait_until(pilot, lambda: events.display and contact.display and phones.display)
        store.close()
