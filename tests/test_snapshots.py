"""What the operator sees, as SVG snapshots (pytest-textual-snapshot): the main screen at
80x24, 120x40 and 200x50 with fixed data, and the help and canned-reply screens.

The data comes from the fake backend (tests/test_fake_backend.py) at a fixed moment: the
console's clocks read a frozen time, so each screenshot is the same on every run.
`pytest tests/test_snapshots.py --snapshot-update` accepts a changed screen after a look
at the report."""

from __future__ import annotations

import pytest

from textual.widgets import Input

from server.config import Config
from tui.app import SwitchboardApp
from tui.widgets import composer as composer_module
from tui.widgets import held_queue as queue_module
from tui.widgets import phone_list as phones_module
from tui.widgets import thread_view as thread_module
from tui.widgets.composer import Composer
from tui.widgets.held_queue import HeldQueue
from tui.widgets.phone_list import PhoneList

from .conftest import wait_until
from .test_fake_backend import FakeBackend

NOW = 1_764_590_400.0  # 2025-12-01 12:00:00 UTC


class FrozenTime:
    """The clock the console's widgets read in these tests; everything else is real."""

    @staticmethod
    def time() -> float:
        return NOW

    monotonic = staticmethod(lambda: 0.0)


@pytest.fixture
def frozen(monkeypatch):
    for module in (queue_module, composer_module, thread_module, phones_module):
        monkeypatch.setattr(module, "time", FrozenTime)
    monkeypatch.setenv("TZ", "UTC")


async def still_cursor(pilot) -> None:
    """Stop every input's cursor blinking (shown steadily), so the shot is taken in the
    same cursor phase every time."""
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause(0.1)


def busy_app(tmp_path) -> SwitchboardApp:
    backend = FakeBackend()
    app = SwitchboardApp(Config(data_dir=tmp_path, bell=False), backend)

    async def fill(pilot) -> None:
        texts = [("5550000001", "Do you deliver to Elm St?", 14), ("5550000002", "Please block my card, it was stolen", 4),
                 ("5550000001", "Also, are you open on Sunday?", 40), ("5550000003", "[HAPPY HOUR] is it today?", 25)]
        for seq, (phone, body, ttl) in enumerate(texts, 1):
            item = backend.hold(seq, phone, body, ttl=ttl)
            object.__setattr__(item, "deadline", NOW + ttl)
            object.__setattr__(item.record, "received_at", NOW - 60 + seq)
        for entries in backend.threads.values():
            for n, entry in enumerate(entries):
                object.__setattr__(entry, "at", NOW - 60 + n)
        # Wait for what the screen shows, not for a time: under load the phone list (read
        # by a worker, refreshed once a second) and the queue's batches come late.
        queue, phones = app.query_one(HeldQueue), app.query_one(PhoneList)
        await wait_until(pilot, lambda: len(queue) == 4 and len(phones.phones) == 3
                         and app.query_one(Composer).item is not None)
        await pilot.press(*"Yes, we deliver there")
        await wait_until(pilot, lambda: app.query_one("#reply", Input).value == "Yes, we deliver there")
        await still_cursor(pilot)

    app._snapshot_fill = fill  # type: ignore[attr-defined]
    return app


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 50)])
def test_the_main_screen(snap_compare, frozen, tmp_path, size):
    app = busy_app(tmp_path)
    assert snap_compare(app, terminal_size=size, run_before=app._snapshot_fill)


def pressing(key: str):
    """A `run_before` that presses `key` (opening a screen), then stills the cursors."""

    async def run_before(pilot) -> None:
        await pilot.press(key)
        await still_cursor(pilot)

    return run_before


def test_the_help_screen(snap_compare, frozen, tmp_path):
    assert snap_compare(busy_app(tmp_path), terminal_size=(120, 40), run_before=pressing("f1"))


def test_the_canned_replies_screen(snap_compare, frozen, tmp_path):
    assert snap_compare(busy_app(tmp_path), terminal_size=(120, 40), run_before=pressing("f10"))
