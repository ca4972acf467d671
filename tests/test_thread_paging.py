"""A long conversation in the console: the newest page is read, `pageup` at the top of the
thread loads the older ones back to the first text, and a new text keeps them on screen
(the real app, the real gateway on a free port, a real store with many segments)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from data import CallbackRecord, HistoryStore, ResponseRecord
from server.backend.local import LocalBackend
from server.config import Config, GatewayConfig
from tui.app import SwitchboardApp
from tui.widgets.thread_view import OLDER_HINT, ThreadView

from .conftest import INCOMING, wait_until

PHONE = "5551234567"
T0 = 1_700_000_000.0


def long_thread(store: HistoryStore, texts: int) -> None:
    for i in range(texts):
        cb = store.add_callback(CallbackRecord(
            seq=0, received_at=T0 + i, type="incoming_message", fields={"type": "incoming_message"},
            parsed={"phone_number": PHONE, "body": f"text {i}"}, phones=(PHONE,), held=True))
        if i % 2:
            store.add_response(ResponseRecord(
                callback_seq=cb.seq, sent_at=T0 + i + 0.5, status=200, body=f"reply {i}",
                content_type="text/plain", answered_by="operator", outcome="answered",
                latency_ms=5.0, phone=PHONE, decision={"reply": f"reply {i}"}))
    store.sync_blocking()


def shown(view: ThreadView) -> list[str]:
    return [strip.text for strip in view.lines]


def texts(view: ThreadView) -> list[int]:
    """The texter's texts on screen, by number, top to bottom."""
    out = []
    for line in shown(view):
        if "text " in line:
            out.append(int(line.rsplit("text ", 1)[1].split()[0]))
    return out


async def post(url: str, fields: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=fields) as response:
            return response.status, await response.text()


async def test_pageup_at_the_top_loads_older_entries_back_to_the_first(tmp_path: Path):
    store = HistoryStore.open(tmp_path / "history", segment_records=40)
    long_thread(store, 100)  # 150 entries over several segments, most of them in the catalog
    config = Config(gateway=GatewayConfig(port=0, reply_timeout=30), data_dir=tmp_path)
    app = SwitchboardApp(config, LocalBackend.for_config(config, store))
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            view = app.query_one(ThreadView)
            app.open_phone(PHONE)
            await wait_until(pilot, lambda: 99 in texts(view))
            assert shown(view)[0] == OLDER_HINT and view.has_older
            assert texts(view) == list(range(67, 100))  # the newest 50 entries: 33 texts, 17 replies
            view.focus()
            for _ in range(40):  # page up to the top, then each press at the top loads a page
                if texts(view)[:1] == [0]:
                    break
                await pilot.press("pageup")
                await pilot.pause(0.05)
            await wait_until(pilot, lambda: texts(view)[:1] == [0])
            assert texts(view) == list(range(100)) and OLDER_HINT not in shown(view)
            assert not view.has_older and view.scroll_y == 0
            # a new text re-reads the newest page; the older ones stay in front of it
            request = asyncio.create_task(post(app.gateway_url, {**INCOMING, "body": "text 100"}))
            await wait_until(pilot, lambda: 100 in texts(view))
            assert texts(view) == list(range(101))
            request.cancel()
    finally:
        store.close()


async def test_a_resize_wraps_the_conversation_again_and_cuts_off_no_word(store, tmp_path: Path):
    config = Config(gateway=GatewayConfig(port=0, reply_timeout=30), data_dir=tmp_path)
    app = SwitchboardApp(config, LocalBackend.for_config(config, store))
    words = "resize test: a moderately long message to see wrapping in the thread pane across sizes"
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(ThreadView)
        async with aiohttp.ClientSession() as session:
            request = asyncio.create_task(session.post(app.gateway_url, data={**INCOMING, "body": words}))
            await wait_until(pilot, lambda: any("resize test" in line for line in shown(view)))
            narrow = len(shown(view))
            await pilot.resize_terminal(250, 60)
            await wait_until(pilot, lambda: any(words in line for line in shown(view)))  # one line at 250
            await pilot.resize_terminal(80, 24)
            await wait_until(pilot, lambda: len(shown(view)) == narrow)
            width = view.scrollable_content_region.width
            assert all(len(line.rstrip()) <= width for line in shown(view))
            assert words.split()[-1] in " ".join(shown(view)), "no word is cut off"
            await pilot.press("ctrl+o")
            assert (await asyncio.wait_for(request, 5)).status == 200
