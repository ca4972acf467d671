"""The real console (App.run_test + Pilot) with the real gateway on a free port, driven
by a real HTTP client: what the operator types is exactly what the client receives."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from server.config import Config, GatewayConfig
from server.backend.local import LocalBackend
from tui.app import SwitchboardApp
from tui.screens.search import SearchScreen
from tui.widgets.key_bar import KeyBar
from tui.widgets.composer import Composer
from tui.widgets.held_queue import HeldQueue

from .conftest import INCOMING, wait_until


def make_app(store, tmp_path: Path, **gateway) -> SwitchboardApp:
    gateway.setdefault("port", 0)
    gateway.setdefault("reply_timeout", 10)
    config = Config(gateway=GatewayConfig(**gateway), data_dir=tmp_path)
    return SwitchboardApp(config, LocalBackend.for_config(config, store))


async def post(url: str, fields: dict[str, str]) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=fields) as response:
            return response.status, response.content_type, await response.text()



async def test_a_posted_message_appears_and_the_typed_reply_is_what_the_client_gets(store, tmp_path):
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        request = asyncio.create_task(post(app.gateway_url, INCOMING))
        queue = app.query_one(HeldQueue)
        await wait_until(pilot, lambda: len(queue) == 1)
        composer = app.query_one(Composer)
        await wait_until(pilot, lambda: composer.item is not None)
        assert app.focused is not None and app.focused.id == "reply"
        await pilot.press(*"Hi there")
        await pilot.press("enter")
        status, content_type, body = await asyncio.wait_for(request, 5)
        assert (status, content_type, body) == (200, "text/plain", "Hi there")
        await wait_until(pilot, lambda: len(queue) == 0)


async def test_ctrl_t_then_enter_sends_close_session_json(store, tmp_path):
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        request = asyncio.create_task(post(app.gateway_url, INCOMING))
        await wait_until(pilot, lambda: app.query_one(Composer).item is not None)
        await pilot.press(*"Goodbye")
        await pilot.press("ctrl+t")
        await pilot.press("enter")
        status, content_type, body = await asyncio.wait_for(request, 5)
        assert content_type == "application/json"
        assert json.loads(body) == {"body": "Goodbye", "close_session": True}
        contact = store.contact("5551234567")
        assert contact is not None and contact.session_open is False


async def test_reprocess_field(store, tmp_path):
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        request = asyncio.create_task(post(app.gateway_url, INCOMING))
        await wait_until(pilot, lambda: app.query_one(Composer).item is not None)
        await pilot.press("ctrl+r")
        assert app.focused.id == "reprocess"
        await pilot.press(*"SURF")
        await pilot.press("ctrl+s")
        _, _, body = await asyncio.wait_for(request, 5)
        assert json.loads(body) == {"reprocess": "SURF"}


async def test_send_empty(store, tmp_path):
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        request = asyncio.create_task(post(app.gateway_url, INCOMING))
        await wait_until(pilot, lambda: app.query_one(Composer).item is not None)
        await pilot.press("ctrl+o")
        status, _, body = await asyncio.wait_for(request, 5)
        assert (status, body) == (200, "")


async def test_tags_for_a_new_subscriber_and_bad_tags_refused(store, tmp_path):
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        request = asyncio.create_task(post(app.gateway_url, {"type": "subscription_created", "api_key": "k", "phone_number": "5551234567"}))
        await wait_until(pilot, lambda: app.query_one(Composer).item is not None)
        assert app.focused.id == "tags"
        await pilot.press(*"vip!")
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert not request.done(), "a bad tag must not be sent"
        await pilot.press("backspace", *", event-2026")
        await pilot.press("enter")
        _, _, body = await asyncio.wait_for(request, 5)
        assert body == "vip,event-2026"


async def test_markup_and_escapes_in_a_body_render_literally(store, tmp_path):
    app = make_app(store, tmp_path)
    nasty = "[bold]hi[/] [link=http://x]y[/link] [@click=app.quit]q[/] \x1b]52;c;aGk=\x07 \u202eevil"
    async with app.run_test(size=(120, 40)) as pilot:
        request = asyncio.create_task(post(app.gateway_url, {**INCOMING, "body": nasty, "carrier_name": "[red]C[/]"}))
        await wait_until(pilot, lambda: app.query_one(Composer).item is not None)
        await pilot.pause(0.1)
        # Read what the thread widget holds: the markup is text, the escapes are visible.
        thread_text = "\n".join(strip.text for strip in app.query_one("#thread").lines)
        assert "[bold]hi[/]" in thread_text
        assert "[@click=app.quit]" in thread_text
        assert "\x1b" not in thread_text and "\u202e" not in thread_text
        assert "52;c;aGk=" in thread_text
        await pilot.press("ctrl+o")
        await asyncio.wait_for(request, 5)
        assert app.is_running, "markup must not have quit the app"


async def test_next_and_previous_move_between_held_items(store, tmp_path):
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        requests = [
            asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": f"555000000{n}", "body": f"msg {n}"}))
            for n in range(3)
        ]
        queue = app.query_one(HeldQueue)
        await wait_until(pilot, lambda: len(queue) == 3)
        composer = app.query_one(Composer)
        assert composer.item.record.parsed["body"] == "msg 0"
        await pilot.press(*"draft zero")
        await pilot.press("ctrl+n")
        assert composer.item.record.parsed["body"] == "msg 1"
        assert composer.draft.reply == ""
        await pilot.press("ctrl+b")
        assert composer.draft.reply == "draft zero", "the draft must survive moving away"
        await pilot.press("enter")
        assert (await asyncio.wait_for(requests[0], 5))[2] == "draft zero"
        await wait_until(pilot, lambda: composer.item is not None and composer.item.record.parsed["body"] == "msg 1")
        await pilot.press("ctrl+q")
        # Quitting with texts held asks once, saying how many get the fallback.
        from tui.screens.confirm import ConfirmScreen

        assert isinstance(app.screen, ConfirmScreen)
        assert "Quit? 2 held texts are answered with the fallback now." in str(
            app.screen.query_one("#confirm-question").render())
        await pilot.press("escape")
        assert app.is_running and not any(task.done() for task in requests[1:])
        await pilot.press("ctrl+q", "enter")
        # Quitting answers every held request with the fallback (empty by default).
        for task in requests[1:]:
            assert (await asyncio.wait_for(task, 5))[:2] == (200, "text/plain")


async def test_history_is_shown_after_a_restart(tmp_path):
    from data.store import HistoryStore

    first = HistoryStore.open(tmp_path / "h")
    app = make_app(first, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        request = asyncio.create_task(post(app.gateway_url, INCOMING))
        await wait_until(pilot, lambda: app.query_one(Composer).item is not None)
        await pilot.press(*"remembered reply", "enter")
        await asyncio.wait_for(request, 5)
    first.close()
    thread_text = await _text_after_restart(tmp_path, "#thread")
    assert INCOMING["body"] in thread_text
    assert "remembered reply" in thread_text


async def _text_after_restart(tmp_path, widget: str) -> str:
    """Reopen the history in tmp_path/h, start the console on it, return `widget`'s text."""
    from data.store import HistoryStore
    from tui.widgets.event_log import EventLog

    second = HistoryStore.open(tmp_path / "h")
    try:
        app = make_app(second, tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            # The history is read off the UI loop: wait for the pane to be filled.
            text = ""
            for _ in range(250):
                shown = app.query_one(widget)
                lines = shown.plain_lines() if isinstance(shown, EventLog) else [strip.text for strip in shown.lines]
                text = "".join(lines)
                if text.strip() and "No messages" not in text:
                    break
                await pilot.pause(0.02)
            return text
    finally:
        second.close()


async def test_search_finds_a_message_and_opens_its_thread(store, tmp_path):
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        for n, body in enumerate(["where is my parcel", "opening hours?"]):
            request = asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": f"555000111{n}", "body": body}))
            await wait_until(pilot, lambda: app.query_one(Composer).item is not None)
            await pilot.press("ctrl+o")
            await asyncio.wait_for(request, 5)
            await wait_until(pilot, lambda: app.query_one(Composer).item is None)
        await pilot.press("f5")
        await pilot.press(*"PARCEL", "enter")
        hits = app.screen.query_one("#hits")
        await wait_until(pilot, lambda: hits.option_count >= 1)
        progress = str(app.screen.query_one("#search-progress").render())
        assert "1 result" in progress
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, SearchScreen))
        thread_text = "\n".join(strip.text for strip in app.query_one("#thread").lines)
        assert "where is my parcel" in thread_text
        assert "opening hours" not in thread_text


async def test_every_console_action_is_in_the_command_palette(store, tmp_path):
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        request = asyncio.create_task(post(app.gateway_url, INCOMING))
        await wait_until(pilot, lambda: app.query_one(Composer).item is not None)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for expected in ("Send the answer (ctrl+s)", "Send an empty answer (ctrl+o)",
                         "Toggle close_session (ctrl+t)", "Search the history (f5)",
                         "New message (send_message) (f6)"):
            assert expected in titles
        await pilot.press("ctrl+o")
        await asyncio.wait_for(request, 5)


async def test_keys_typed_right_after_ctrl_r_land_in_the_reprocess_field(store, tmp_path):
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        request = asyncio.create_task(post(app.gateway_url, INCOMING))
        await wait_until(pilot, lambda: app.query_one(Composer).item is not None)
        # Queue every key at once, as a paste or tmux send-keys does.
        from textual import events

        for key, char in [("h", "h"), ("i", "i"), ("ctrl+t", None), ("ctrl+r", None), ("k", "k"), ("w", "w"), ("enter", "\r")]:
            app.post_message(events.Key(key, char))
        _, _, body = await asyncio.wait_for(request, 5)
        assert json.loads(body) == {"body": "hi", "close_session": True, "reprocess": "kw"}


async def test_a_timed_out_text_stays_visible_as_missed(store, tmp_path):
    app = make_app(store, tmp_path, reply_timeout=0.5, fallback="We'll text you back")
    async with app.run_test(size=(120, 40)) as pilot:
        status, _, body = await asyncio.wait_for(post(app.gateway_url, INCOMING), 5)
        assert (status, body) == (200, "We'll text you back")
        queue = app.query_one(HeldQueue)
        await wait_until(pilot, lambda: len(queue) == 0 and queue.row_count == 1)
        queue.focus()
        await pilot.press("home")
        assert queue.selected_missed is not None and queue.selected_missed.outcome == "timed_out"
        composer = app.query_one(Composer)
        assert composer.item is not None and composer.ending is not None, "a missed text cannot be answered over HTTP"
        assert "send" not in footer_actions(app)
        thread_text = "".join(strip.text for strip in app.query_one("#thread").lines)
        assert "timed out" in thread_text
        queue.focus()
        await pilot.press("delete")
        assert queue.row_count == 0


def footer_actions(app: SwitchboardApp) -> list[str]:
    """The actions the key bar offers as usable (the rest are shown dimmed)."""
    return app.query_one(KeyBar).usable_actions


async def test_when_the_selected_text_times_out_the_composer_stays_on_it(store, tmp_path):
    # The composer belongs to one held item: when it times out, nothing moves by itself,
    # even with an empty reply field; the next text waits for the operator (ctrl+n).
    app = make_app(store, tmp_path, reply_timeout=4, fallback="later")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: "help" in footer_actions(app))
        assert "send" not in footer_actions(app), "nothing to send yet"
        first = asyncio.create_task(post(app.gateway_url, INCOMING))
        composer = app.query_one(Composer)
        await wait_until(pilot, lambda: composer.item is not None)
        await pilot.pause(2.0)
        second = asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": "5559876543"}))
        await wait_until(pilot, lambda: len(app.query_one(HeldQueue)) == 2)
        await wait_until(pilot, lambda: "send" in footer_actions(app))
        assert (await asyncio.wait_for(first, 5))[2] == "later"
        await wait_until(pilot, lambda: composer.ending is not None)
        assert composer.item.record.phones == ("5551234567",)
        await pilot.pause(0.3)
        assert composer.item.record.phones == ("5551234567",), "the selection never moves by itself"
        assert "send" not in footer_actions(app)
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: composer.item is not None and composer.item.record.phones == ("5559876543",))
        assert app.focused is not None and app.focused.id == "reply"
        await pilot.press(*"ok", "enter")
        assert (await asyncio.wait_for(second, 5))[2] == "ok"
        await wait_until(pilot, lambda: composer.item is None)
        await wait_until(pilot, lambda: "send" not in footer_actions(app))


async def test_show_text_leaves_a_widget_alone_when_its_text_is_the_same(store, tmp_path):
    from rich.text import Text
    from textual.widgets import Static

    from tui.widgets.steady import show_text

    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)):
        title = app.query_one("#phones-title", Static)
        first = Text("Conversation with 555", style="bold")
        show_text(title, first, layout=False)
        show_text(title, Text("Conversation with 555", style="bold"), layout=False)
        assert title.content is first
        show_text(title, Text("Conversation with 555", style="italic"), layout=False)
        assert title.content is not first and title.content.style == "italic"
        show_text(title, "Conversation with 555")
        assert title.content == "Conversation with 555"


async def test_the_segment_count_follows_the_reply_and_fits_the_column(store, tmp_path):
    from textual import events
    from textual.widgets import Static

    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        request = asyncio.create_task(post(app.gateway_url, INCOMING))
        await wait_until(pilot, lambda: app.query_one(Composer).item is not None)
        count = app.query_one("#reply-count", Static)
        app.focused.post_message(events.Paste("€uro"))  # as a terminal pastes: not key names
        await pilot.pause(0.05)
        assert str(count.render()) == "GSM-7 · 5 septets · 1 part · 155 left"  # € costs two
        app.focused.post_message(events.Paste(" 😀"))
        await pilot.pause(0.05)
        assert str(count.render()) == "UCS-2 · 7 UTF-16 units · 1 part · 63 left"
        assert count.size.width >= len(str(count.render())) + 2  # + padding: not cut off
        await pilot.press("ctrl+o")
        await asyncio.wait_for(request, 5)


async def test_an_answer_the_disk_cannot_keep_is_not_shown_as_sent(store, tmp_path):
    # The disk fills up between the text arriving and the operator's answer: the SL gets a
    # 503 (nothing unrecorded is acknowledged) and the operator must hear of it.
    import resource

    from tui.widgets.event_log import EventLog

    app = make_app(store, tmp_path)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        async with aiohttp.ClientSession() as session:
            for n in range(300):  # some history first, so the journal file is ~50 KB
                fields = {"type": "delivery_report", "api_key": "k", "message_id": str(n), "final": "1", "status": "1"}
                async with session.post(app.gateway_url, data=fields) as response:
                    assert response.status == 200
        request = asyncio.create_task(post(app.gateway_url, INCOMING))
        await wait_until(pilot, lambda: app.query_one(Composer).item is not None)
        # What the files hold, without the NUL space reserved ahead of the journal's writes
        # (the limit applies to the offset written at, inside the file or past its end).
        biggest = max(len(path.read_bytes().rstrip(b"\0"))
                      for path in (tmp_path / "history").rglob("*") if path.is_file())
        # A real write failure from the kernel (EFBIG past the limit; Python ignores SIGXFSZ).
        resource.setrlimit(resource.RLIMIT_FSIZE, (biggest + 256, hard))
        try:
            await pilot.press(*"Sure", "enter")
            status, _, body = await asyncio.wait_for(request, 5)
            await wait_until(pilot, lambda: any("did not go out" in str(toast.render()) for toast in app.query("Toast")))
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        assert status == 503 and body.startswith("history store unavailable")
        await wait_until(pilot, lambda: "HTTP 503" in "\n".join(app.query_one(EventLog).plain_lines()))


async def test_an_sl_error_with_markup_is_shown_literally_and_harms_nothing(store, tmp_path, aiohttp_server):
    # The SL API's error text comes from a network peer: in a notification it must neither
    # style the screen, nor act ([@click=...]), nor break it (a stray [/] raised MarkupError).
    from aiohttp import web

    nasty = "[/] [@click=app.quit]quit[/] [bold]loud[/bold] \x1b]52;c;aGk=\x07"

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=500, text=nasty)

    sl = web.Application()
    sl.router.add_route("*", "/api/{method}", refuse)
    server = await aiohttp_server(sl)
    config = Config(gateway=GatewayConfig(port=0), data_dir=tmp_path,
                    sl_url=str(server.make_url("/api/")), sl_api_key="k")
    app = SwitchboardApp(config, LocalBackend.for_config(config, store))
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.press("f6")
        await pilot.press(*"5551234567", "tab", *"hello", "enter")
        await wait_until(pilot, lambda: any("send_message" in str(toast.render()) for toast in app.query("Toast")))
        shown = next(str(toast.render()) for toast in app.query("Toast") if "send_message" in str(toast.render()))
        assert "[/] [@click=app.quit]quit[/] [bold]loud[/bold]" in shown
        assert "\x1b" not in shown and "\x07" not in shown
        await pilot.pause(0.2)
        assert app.is_running


async def test_an_80x24_terminal_gives_the_conversation_room(store, tmp_path):
    app = make_app(store, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        request = asyncio.create_task(post(app.gateway_url, INCOMING))
        await wait_until(pilot, lambda: app.query_one(Composer).item is not None)
        await pilot.pause(0.1)
        assert not app.query_one("#right").display  # the contact panel gives way
        assert app.query_one("#reply").size.width >= 40
        assert app.query_one("#thread").size.height >= 4
        await pilot.press(*"ok", "enter")
        assert (await asyncio.wait_for(request, 5))[2] == "ok"
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.1)
        assert app.query_one("#right").display


async def test_copy_falls_back_to_the_terminal_clipboard(store, tmp_path, monkeypatch):
    # No clipboard tool on this machine (no DISPLAY): pyperclip raises, OSC 52 is used.
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        request = asyncio.create_task(post(app.gateway_url, INCOMING))
        await wait_until(pilot, lambda: app.query_one(Composer).item is not None)
        await pilot.press("f2")
        assert app.clipboard == "5551234567"
        await pilot.press("f3")
        assert app.clipboard == INCOMING["body"]
        await pilot.press("ctrl+o")
        await asyncio.wait_for(request, 5)


async def test_event_history_is_shown_whole_after_a_restart(tmp_path):
    from data.store import HistoryStore

    first = HistoryStore.open(tmp_path / "h")
    app = make_app(first, tmp_path)
    async with app.run_test(size=(120, 40)):
        for n in range(20):
            await post(app.gateway_url, {"type": "delivery_report", "api_key": "k", "message_id": str(900 + n), "final": "1", "status": "1"})
    first.close()
    log_text = await _text_after_restart(tmp_path, "#events")
    assert all(f"message {900 + n}" in log_text for n in range(20))
    assert "more events" not in log_text



async def test_a_callback_that_arrives_as_the_screen_comes_down_is_not_an_error(store, tmp_path):
    # Quitting, Textual closes the screens before the app itself: the gateway still runs
    # and the 30 ms batch timer can still fire, with no widgets left to update.
    app = make_app(store, tmp_path)
    close_screens = app._close_all
    answered: list[int] = []

    async def close_screens_then_a_callback() -> None:
        await close_screens()
        status, _, _ = await post(app.gateway_url, {"type": "delivery_report", "api_key": "k",
                                                    "message_id": "77", "final": "1", "status": "1"})
        answered.append(status)
        await asyncio.sleep(0.15)  # past the batch timer

    app._close_all = close_screens_then_a_callback
    async with app.run_test(size=(120, 40)):
        pass  # run_test re-raises what went wrong in the app
    assert answered == [200]
    assert store.stats().callbacks == 1


async def test_a_log_record_while_the_console_runs_is_not_a_logging_error(store, tmp_path, capfd):
    """Textual captures stderr and flushes it through App._flush(stderr=...): the console's
    own event batching once had that name, so every log record raised inside logging."""
    import logging

    app = make_app(store, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        handler = logging.StreamHandler()  # the stream is sys.stderr, Textual's capture
        logging.getLogger("test.console").addHandler(handler)
        try:
            logging.getLogger("test.console").warning("a warning while the console runs")
        finally:
            logging.getLogger("test.console").removeHandler(handler)
        await pilot.pause(0.1)
    assert "Logging error" not in capfd.readouterr().err
