"""The console under a flood of callbacks that need no answer: every delivery report is
counted and kept in the event log, the log follows the newest (or keeps the lines the
operator scrolled to), and the queue's order is the same however its rows came and went."""

from __future__ import annotations

import asyncio
import random

import aiohttp
from rich.text import Text
from textual.app import App, ComposeResult

from data.models import CallbackRecord
from server.backend import HeldItem
from tui.widgets.event_log import MAX_LINES, EventLog
from tui.widgets.held_queue import ORDERS, HeldQueue
from tui.widgets.status_bar import StatusBar

from .conftest import wait_until
from .test_console import make_app


async def test_every_delivery_report_of_a_burst_is_in_the_log_and_counted(store, tmp_path):
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        async with aiohttp.ClientSession() as session:

            async def report(n: int) -> int:
                fields = {"type": "delivery_report", "api_key": "k", "message_id": f"77{n:04d}",
                          "status": "1", "final": "1"}
                async with session.post(app.gateway_url, data=fields) as response:
                    return response.status

            statuses = await asyncio.gather(*(report(n) for n in range(300)))
        assert statuses == [200] * 300
        log = app.query_one(EventLog)
        await wait_until(pilot, lambda: len(log) == 300)
        lines = log.plain_lines()
        assert sorted(line.split("message ")[1].split(":")[0] for line in lines) == [f"77{n:04d}" for n in range(300)]
        await wait_until(pilot, lambda: "received 300" in str(app.query_one(StatusBar).render()))
        await app._load_history()  # the history read at start, had it come after the burst
        assert len(log) == 300, "a callback heard live is not shown again from the history"
        # The newest line is on screen: the view is at the bottom of the 300.
        assert log.scroll_offset.y == log.max_scroll_y > 0


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield EventLog(id="events")


def lines(start: int, count: int) -> list[Text]:
    return [Text(f"line {n}") for n in range(start, start + count)]


async def test_the_log_keeps_the_newest_thousand_and_a_scrolled_up_view_stays_put():
    app = LogApp()
    async with app.run_test(size=(80, 12)) as pilot:
        log = app.query_one(EventLog)
        log.add(lines(0, MAX_LINES + 200))
        await pilot.pause()
        assert len(log) == MAX_LINES
        assert log.plain_lines()[0] == "line 200" and log.plain_lines()[-1] == f"line {MAX_LINES + 199}"
        assert log.scroll_offset.y == log.max_scroll_y  # following the newest

        log.scroll_to(y=500, animate=False, immediate=True)
        await pilot.pause()
        top = log.plain_lines()[log.scroll_offset.y]
        log.add(lines(MAX_LINES + 200, 30))  # 30 leave the front
        await pilot.pause()
        assert log.plain_lines()[log.scroll_offset.y] == top  # the same line at the top
        assert "line" in log.render_line(0).text and top in log.render_line(0).text


class QueueApp(App[None]):
    def compose(self) -> ComposeResult:
        yield HeldQueue(id="queue")


def held(seq: int, phone: str, deadline: float) -> HeldItem:
    record = CallbackRecord(seq=seq, received_at=0.0, type="incoming_message", fields={},
                            parsed={"body": f"text {seq}"}, phones=(phone,), held=True)
    return HeldItem(record=record, deadline=deadline)


def expected_order(items: dict[int, HeldItem], order: str) -> list[str]:
    groups: dict[str, list[HeldItem]] = {}
    for item in sorted(items.values(), key=lambda i: i.seq):
        groups.setdefault(item.record.phones[0], []).append(item)
    if order == "urgent":
        key = lambda p: (min(i.deadline for i in groups[p]), groups[p][0].seq)  # noqa: E731
    elif order == "newest":
        key = lambda p: -groups[p][-1].seq  # noqa: E731
    else:
        key = lambda p: groups[p][0].seq  # noqa: E731
    return sorted(groups, key=key)


async def test_the_queue_order_is_right_after_any_arrivals_and_endings():
    # Rows move one by one as texts come and go; the result must be the full sort's.
    rng = random.Random(15)
    app = QueueApp()
    async with app.run_test(size=(80, 20)):
        queue = app.query_one(HeldQueue)
        for order in ORDERS:
            queue.order = order
            live: dict[int, HeldItem] = {item.seq: item for item in queue.items}
            seq = max(live, default=0)
            for _ in range(120):
                if live and rng.random() < 0.4:
                    gone = set(rng.sample(sorted(live), rng.randint(1, min(5, len(live)))))
                    queue.remove(gone)
                    for s in gone:
                        del live[s]
                else:
                    batch = []
                    for _ in range(rng.randint(1, 6)):
                        seq += 1
                        batch.append(held(seq, f"555000{rng.randint(0, 40):04d}", 1000.0 + rng.randint(0, 50)))
                    queue.add(batch)
                    live.update((item.seq, item) for item in batch)
                assert queue.conversations == expected_order(live, order)
