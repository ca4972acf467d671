"""The phone list: every phone the history knows, most recently active first, each with its
unread and missed counts and its last message.

- unread: texts in that the operator has not had on screen (the console records, per phone,
  how many texts in its thread held when it was last shown: `seen`);
- missed: texts that ended without the operator's answer (timed out, caller gone, overflow);
- the last message: what came in or went out last, with an arrow for its direction.

A row is one line, so the list stays useful at 80x24. The app reads the contacts off the
UI loop and hands them in (`show`); the list asks for more when the cursor reaches its end
(`WantsMore`), and says which phone the operator opened (`Opened`).
"""

from __future__ import annotations

from datetime import datetime
import time
from typing import Mapping, Sequence

from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from data.models import ContactState

from ..safe import safe_line

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


class PhoneList(OptionList):
    """Phones by recent activity. Attributes set by the app: `seen` (see the module's doc)."""

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

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seen: dict[str, int] = {}
        self.limit = PAGE
        self._contacts: list[ContactState] = []
        self._width = 0
        self._stale = False

    @property
    def phones(self) -> list[str]:
        return [contact.phone for contact in self._contacts]

    def show(self, contacts: Sequence[ContactState]) -> None:
        """Replace the rows, keeping the cursor on the phone it was on (not on a position:
        the list reorders as phones become active)."""
        highlighted = self.highlighted
        current = self._contacts[highlighted].phone if highlighted is not None and highlighted < len(self._contacts) else None
        self._contacts = list(contacts)
        self._stale = False
        self._render_rows()
        if current is not None and self._contacts:
            phones = self.phones
            self.highlighted = phones.index(current) if current in phones else min(highlighted or 0, len(phones) - 1)

    def mark_seen(self, phone: str, messages_in: int) -> None:
        """The phone's thread is on screen with `messages_in` texts in: none of them is unread.
        The row is redrawn by the next `redraw_if_stale` (once a second, from the app's
        tick), not now: an OptionList change lays out every row, and this runs on every
        answer-next, where the next answer would wait behind that frame."""
        if self.seen.get(phone) != messages_in:
            self.seen[phone] = messages_in
            self._stale = True

    def redraw_if_stale(self) -> None:
        if self._stale and self._contacts:
            self.show(self._contacts)

    def _row(self, contact: ContactState) -> Text:
        return phone_row(contact, unread_count(contact, self.seen), max(20, self._width), time.time())

    def _row_width(self) -> int:
        """The columns a row's text gets: the list's, less an option's padding (one column
        each side) and the scrollbar's room (kept even before rows overflow: the list of
        every phone soon does, and a row must not be cut when the bar appears)."""
        return self.size.width - 2 - self.styles.scrollbar_size_vertical

    def _render_rows(self) -> None:
        self._width = self._row_width()
        self.clear_options()
        self.add_options(Option(self._row(contact), id=f"p:{contact.phone}") for contact in self._contacts)

    def on_resize(self) -> None:
        if self._contacts and self._row_width() != self._width:
            self.show(self._contacts)

    @on(OptionList.OptionSelected)
    def _opened(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(self.Opened(event.option.id[2:]))

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if event.option_index == len(self._contacts) - 1 and len(self._contacts) >= self.limit:
            self.limit += PAGE
            self.post_message(self.WantsMore(self.limit))
