"""What a key press and an answer redraw: with texts held, typing a reply, sending it and
the next text coming up are repaints of the widgets that changed, never a layout pass of
the whole screen (30-60 ms each on two shared cores; an enter or an arriving text waited
behind them: benchmarks/desk_bench.py). The real console and gateway, real HTTP."""

from __future__ import annotations

import asyncio

from tui.widgets.composer import Composer
from tui.widgets.held_queue import HeldQueue
from tui.widgets.phone_list import PhoneList

from .conftest import INCOMING, wait_until
from .test_desk import make_app, post


class LayoutCount:
    """Counts the screen's frames that re-arrange it (a layout pass), passing each through."""

    def __init__(self, screen) -> None:
        self.passes = 0
        self._refresh_layout = screen._refresh_layout
        screen._refresh_layout = self._counted

    def _counted(self, *args, **kwargs):
        self.passes += 1
        return self._refresh_layout(*args, **kwargs)


async def test_typing_answering_and_the_next_text_coming_up_ask_for_no_layout_pass(store, tmp_path):
    app = make_app(store, tmp_path, reply_timeout=60)
    async with app.run_test(size=(120, 40)) as pilot:
        phones = [f"555000010{n}" for n in range(3)]
        requests = {phone: asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": phone,
                                                                      "body": f"question from {phone}"}))
                    for phone in phones}
        composer, queue, phone_list = app.query_one(Composer), app.query_one(HeldQueue), app.query_one(PhoneList)
        await wait_until(pilot, lambda: len(queue) == 3 and composer.item is not None and len(phone_list.phones) == 3)
        await pilot.pause(1.2)  # the first frames after the burst (the phone list, the thread) are drawn
        first = composer.item.record.phones[0]
        layouts = LayoutCount(app.screen)
        await pilot.press(*"Yes, open 9 to 5")
        await pilot.press("enter")
        assert await asyncio.wait_for(requests[first], 5) == (200, "Yes, open 9 to 5")
        await wait_until(pilot, lambda: composer.item is not None and composer.item.record.phones[0] != first)
        await pilot.press(*"Hello")
        await pilot.pause(1.2)  # a tick of the countdowns and the phone list's refresh
        assert composer.draft.reply == "Hello"
        assert layouts.passes == 0, "typing, sending and the next text's redraw re-arranged the screen"
        for task in requests.values():
            task.cancel()


async def test_a_longer_context_still_gets_its_height(store, tmp_path):
    """The other side of it: a text whose notes take more lines than the one before it is
    laid out again, not cut to the old height."""
    app = make_app(store, tmp_path, reply_timeout=60)
    async with app.run_test(size=(120, 40)) as pilot:
        composer = app.query_one(Composer)
        plain = asyncio.create_task(post(app.gateway_url, INCOMING))
        await wait_until(pilot, lambda: composer.item is not None)
        context = app.query_one("#composer-context")
        # two lines (its min-height) for "Answering ..." and the idle line alike
        await wait_until(pilot, lambda: context.size.height == 2)
        await pilot.press(*"ok", "enter")
        assert (await asyncio.wait_for(plain, 5))[0] == 200
        noted = asyncio.create_task(post(app.gateway_url, {**INCOMING, "auto_subscribe": "true",
                                                           "auto_responded": "true"}))
        await wait_until(pilot, lambda: composer.item is not None)
        await wait_until(pilot, lambda: context.size.height >= 3)
        shown = "\n".join(line.text for line in context.render_lines(context.size.region))
        assert "auto_responded" in shown
        noted.cancel()


async def test_the_key_bar_dims_what_does_not_apply_and_a_click_presses_a_key(store, tmp_path):
    from tui.screens.help import HelpScreen
    from tui.widgets.key_bar import KeyBar

    app = make_app(store, tmp_path, reply_timeout=60)
    async with app.run_test(size=(120, 40)) as pilot:
        bar = app.query_one(KeyBar)
        await wait_until(pilot, lambda: "help" in bar.usable_actions)
        assert "send" not in bar.usable_actions, "nothing to answer: send is dimmed"
        request = asyncio.create_task(post(app.gateway_url, INCOMING))
        await wait_until(pilot, lambda: "send" in bar.usable_actions)
        start = next(start for start, _, key in bar._spans if key.action == "help")
        await pilot.click(KeyBar, offset=(start + 1, 0))
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        request.cancel()
