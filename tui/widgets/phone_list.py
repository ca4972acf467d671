"""The phone list: every phone the history knows, most recently active first, each with its
unread and missed counts and its last message.

- unread: texts in that the operator has not had on screen (the console records, per phone,
  how many texts in its thread held when it was last shown: `seen`);
- missed: texts that ended without the operator's answer (timed out, caller gone, overflow);
- the last message: what came in or went out last, with an arrow for its direction.

A row is one line, so the list stays useful at 80x24. The app reads the contacts off the
UI loop and hands them in (`show`); the list asks for more when the cursor reaches its end
(`WantsMore`), and says which phone the operator opened (`Opened`). A `RowView`: only the
rows in view are drawn, so a new list or a row read costs a repaint of the list.
"""

from __future__ import annotations

from datetime import datetime
import time
from typing import Mapping, Sequence

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message

from data.models import ContactState

from ..safe import safe_line
from .rows import RowView

PAGE = 200
"""Phones read at a time; the next page comes when the cursor reaches the end."""

WITH_TIME = 40
"""Narrower rows leave the time out: the last message says more at 80 columns."""

DIRECTION = {"in": "←", "out": "→", "fallback": "⤺"}
"""The arrow before the last message: from the texter, from us, the fallback answered."""


def unread_count(contact: ContactState, seen: Mapping[str, int]) -> int:
    """Texts in since the phone's thread was last on screen (all of them if never)."""
    return max(0, contact.messages_in - seen.get(contact.phone, 0))


def when(at: float, now: float) -> str:
    """A short time: the clock today, the date before."""
    if not at:
        return ""
    moment = datetime.fromtimestamp(at)
    return moment.strftime("%H:%M") if now - at < 20 * 3600 else moment.strftime("%m-%d")


def phone_row(contact: ContactState, unread: int, width: int, now: float) -> Text:
    """One row: phone, counts and marks, the time, then as much of the last message as fits."""
    row = Text(end="", no_wrap=True, overflow="ellipsis")
    row.append_text(safe_line(contact.phone, "bold" if unread else "", 16))
    if unread:
        row.append(f" ●{unread}", style="bold cyan")
    if contact.missed:
        row.append(f" ✗{contact.missed}", style="bold red")
    if contact.blacklisted:
        row.append(" ⊘", style="red")
    if contact.loop_flagged:
        row.append(" ∞", style="yellow")
    stamp = when(contact.active_at, now)
    if stamp and width >= WITH_TIME:
        row.append(f" {stamp}", style="dim")
    room = width - row.cell_len - 3
    if room >= 6 and (contact.last_text or contact.last_dir == "fallback"):
        row.append(f" {DIRECTION.get(contact.last_dir, '·')} ", style="dim")
        if contact.last_text:
            row.append_text(safe_line(contact.last_text, "" if unread else "dim", room))
        else:  # the fallback was an empty answer: nothing reached the texter
            row.append("fallback, nothing sent"[:room], style="dim italic")
    elif room >= 6 and (contact.blacklisted or contact.loop_flagged):  # no conversation yet
        row.append(" " + ("opted out" if contact.blacklisted else "auto-reply loop")[:room], style="dim italic")
    return row


class PhoneList(RowView):
    """Phones by recent activity. Attributes set by the app: `seen` (see the module's doc)."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="phones.up"),
        Binding("down,j", "cursor(1)", "Down", show=False, id="phones.down"),
        Binding("home", "cursor_to(0)", "First", show=False, id="phones.home"),
        Binding("end", "cursor_to(-1)", "Last", show=False, id="phones.end"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="phones.pageup"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="phones.pagedown"),
        Binding("enter", "open", "Open", id="phones.open", tooltip="Show this phone's conversation"),
    ]

    class Opened(Message):
        """The operator chose a phone (enter or a click)."""

        def __init__(self, phone: str) -> None:
            super().__init__()
            self.phone = phone

    class WantsMore(Message):
        """The cursor reached the last phone shown and the history may hold more."""

        def __init__(self, limit: int) -> None:
            super().__init__()
            self.limit = limit

    empty_text = " No phones yet."

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seen: dict[str, int] = {}
        self.limit = PAGE
        self._contacts: list[ContactState] = []

    @property
    def phones(self) -> list[str]:
        return [contact.phone for contact in self._contacts]

    @property
    def row_count(self) -> int:
        return len(self._contacts)

    def row_text(self, index: int, width: int) -> Text:
        row = Text(" ", end="", no_wrap=True, overflow="ellipsis")
        row.append_text(phone_row(self._contacts[index], unread_count(self._contacts[index], self.seen),
                                  max(20, width - 2), time.time()))
        return row

    def show(self, contacts: Sequence[ContactState]) -> None:
        """Replace the rows, keeping the cursor on the phone it was on (not on a position:
        the list reorders as phones become active)."""
        current = self._contacts[self.cursor].phone if self.cursor < len(self._contacts) else None
        self._contacts = list(contacts)
        phones = self.phones
        if current is not None and current in phones:
            index = phones.index(current)
        else:
            index = min(self.cursor, max(0, len(phones) - 1))
        self.set_reactive(RowView.cursor, index)
        self.rows_changed()

    def mark_seen(self, phone: str, messages_in: int) -> None:
        """The phone's thread is on screen with `messages_in` texts in: none of them is unread."""
        if self.seen.get(phone) != messages_in:
            self.seen[phone] = messages_in
            self.refresh()

    # -- actions -----------------------------------------------------------------------

    def _move_to(self, index: int) -> None:
        if self.move_cursor(index) and self.cursor == len(self._contacts) - 1 and len(self._contacts) >= self.limit:
            self.limit += PAGE
            self.post_message(self.WantsMore(self.limit))

    def action_cursor(self, delta: int) -> None:
        self._move_to(self.cursor + delta)

    def action_cursor_to(self, index: int) -> None:
        self._move_to(index if index >= 0 else len(self._contacts) - 1)

    def action_page(self, pages: int) -> None:
        self._move_to(self.cursor + pages * max(1, self.scrollable_content_region.height - 1))

    def action_open(self) -> None:
        if 0 <= self.cursor < len(self._contacts):
            self.post_message(self.Opened(self._contacts[self.cursor].phone))

    def on_click(self, event: events.Click) -> None:
        index = event.y + self.scroll_offset.y
        if 0 <= index < len(self._contacts):
            self.cursor = index
            self.post_message(self.Opened(self._contacts[index].phone))
