"""Which conversation is on screen: selecting a held text (the composer, the thread and the
contact follow it), bringing up the next one when the operator is free for it, opening a phone from the list or search, and reading a thread, a page
of older entries and the phone list off the UI loop. Mixed into `SwitchboardApp`
(tui/app.py), whose state it uses; its message handlers go by name (on_<widget>_<message>),
which Textual finds on a mixin as on the app itself."""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text

from data.models import ThreadPage
from data.phones import normalise_phone
from server.backend import HeldItem

from .safe import plain_line
from .widgets.composer import TYPING_GRACE, Composer
from .widgets.drafts import item_phone
from .widgets.contact_panel import ContactPanel
from .widgets.held_queue import HeldQueue
from .widgets.phone_list import PhoneList
from .widgets.lines import TextLines
from .widgets.thread_view import ThreadView

if TYPE_CHECKING:
    from .app import SwitchboardApp

    _Base = SwitchboardApp
else:
    _Base = object



ENDED_LINGER = 5.0
"""Seconds an ended text with nothing typed for it stays in the composer, saying how it
ended, before a free composer takes the next text."""

class ConversationActions(_Base):
    def _select(self, item: HeldItem, *, focus: bool = True) -> None:
        composer = self.query_one(Composer)
        self._browsing = self._unasked = False
        self.query_one(HeldQueue).select(item.seq)
        phone = item.record.phones[0] if item.record.phones else ""
        composer.take(item, phone)
        self._show_phone(phone)
        if focus:
            composer.focus_reply()

    def _show_phone(self, phone: str) -> None:
        """Put `phone`'s conversation on screen; its history is read off the UI loop."""
        self._phone = phone
        self.query_one("#thread-title", TextLines).show(
            Text(f"Conversation with {plain_line(phone, 30)}" if phone else "Conversation", end=""))
        self.query_one(Composer).viewing = phone
        self.run_worker(partial(self._read_phone, phone), group="thread", exclusive=True, name="read-thread")

    async def _read_phone(self, phone: str) -> None:
        composer = self.query_one(Composer)
        answering = item_phone(composer.item)
        page = await self.backend.thread_page(phone) if phone else ThreadPage(entries=[], more=False)
        entries = page.entries
        contact = await self.backend.contact(phone) if phone else None
        notes = await self.backend.notes(phone) if phone else []
        answering_contact = await self.backend.contact(answering) if answering and answering != phone else contact
        if not self._screen_up():
            return  # quitting: the widgets may be gone already
        if answering:
            composer.contact = answering_contact
        if phone != self._phone:
            return  # the operator has moved on; a newer read is on its way
        self._entries = entries
        self._thread_ids = {mid for entry in entries for mid in entry.message_ids}
        self.query_one(ThreadView).show(phone, entries, more=page.more)
        self.query_one(ContactPanel).show_contact(phone, contact, notes)
        if contact is not None and not self._unasked:
            self.query_one(PhoneList).mark_seen(phone, contact.messages_in)
            await self.backend.mark_read(phone, contact.messages_in)
        title = Text(f"Conversation with {plain_line(phone, 30)}" if phone else "Conversation", end="")
        if notes:
            title.append(f"  ✎ {len(notes)} note{'s' if len(notes) != 1 else ''}", style="italic")
        self.query_one("#thread-title", TextLines).show(title)

    def on_thread_view_older_wanted(self, event: ThreadView.OlderWanted) -> None:
        self.run_worker(partial(self._read_older, event.phone, event.before), group="thread-older",
                        exclusive=True, name="read-older")

    async def _read_older(self, phone: str, before: int) -> None:
        page = await self.backend.thread_page(phone, before=before)
        self.query_one(ThreadView).add_older(phone, page)

    def open_phone(self, phone: str) -> None:
        """Show the conversation the operator asked for, and keep it on screen.

        Its oldest held item comes up in the composer unless the composer is in use (then
        the composer keeps its draft and says it answers another phone). Auto-selection
        stays off until the operator picks an item (queue, ctrl+n, a send)."""
        phone = normalise_phone(phone)
        self._unasked = False
        composer = self.query_one(Composer)
        queue = self.query_one(HeldQueue)
        waiting = queue.waiting(phone)
        if not composer.in_use and composer.ending is None and waiting:
            self._select(waiting[0])
            return
        if not composer.in_use and composer.ending is None:
            composer.item = None
        self._browsing = True
        self._show_phone(phone)

    # Workers are given the coroutine function, not a coroutine: one replaced by a newer
    # read before it starts (exclusive) then leaves no coroutine that was never awaited.

    def _refresh_phones(self) -> None:
        self.run_worker(partial(self._read_phones), group="phones", exclusive=True, name="read-phones")

    async def _read_phones(self) -> None:
        if not self._screen_up():
            return
        phones = self.query_one(PhoneList)
        contacts = await self.backend.contacts(phones.limit)
        if self._screen_up():
            phones.show(contacts)

    def on_phone_list_wants_more(self, _event: PhoneList.WantsMore) -> None:
        self._refresh_phones()

    def on_held_queue_selected(self, event: HeldQueue.Selected) -> None:
        # Moving the cursor over the queue opens each item in the composer; a draft stays
        # with the item it was typed for (kept per item), so nothing is re-targeted.
        self._select(event.item, focus=event.focus_reply)
        self._opened_missed = event.item.seq if event.missed else 0
        if event.missed:
            self.query_one(Composer).item_ended(event.item.seq, event.missed, event.ended_at)
            self.refresh_bindings()

    def on_phone_list_opened(self, event: PhoneList.Opened) -> None:
        self.open_phone(event.phone)

    def _auto_select(self, *, after_send: bool = False) -> bool:
        """Bring up the next held item when the operator is free for it; True if it did.

        Free means: the composer holds no item (an ended one with a draft stays until the
        operator moves on; one without stays ENDED_LINGER seconds), no conversation the operator opened is on screen, no other screen or
        list has the focus, and no key was pressed in the last TYPING_GRACE seconds (keys
        typed for nothing in particular must not run on into a text that just came up).
        Right after a send (`after_send`) the next item comes up at once: the operator
        asked for it by sending."""
        queue = self.query_one(HeldQueue)
        composer = self.query_one(Composer)
        if not len(queue) or self._browsing or (composer.item is not None and not self._ended_idle(composer)):
            return False
        if self.screen is not self.screen_stack[0] or self._focus_is_elsewhere():
            return False
        if not after_send and time.monotonic() - self._last_key < TYPING_GRACE:
            return False
        if composer.item is not None:  # ended, nothing typed for it: it stays a missed row
            composer.forget(composer.item.seq)
            composer.clear()
            composer.item = None
        item = queue.next_item()
        if item is None:
            return False
        self._select(item)
        return True

    def _ended_idle(self, composer: Composer) -> bool:
        """The composer's text ended ENDED_LINGER seconds ago or more, holds no draft, and
        was not opened by the operator from the missed rows: nothing of the operator's is in
        it, and a booth left alone moves on to the next text (a draft, or a key pressed in
        the last TYPING_GRACE seconds, keeps it)."""
        ending = composer.ending
        return (ending is not None and not composer.in_use and composer.item is not None
                and composer.item.seq != self._opened_missed and time.time() - ending.at >= ENDED_LINGER)

    def _focus_is_elsewhere(self) -> bool:
        """True when the operator is busy in a widget that is not the composer or queue."""
        focused = self.focused
        return focused is not None and focused.id in ("phones",)
