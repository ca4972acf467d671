"""Answering: the composer's answer goes to the backend, and the next conversation by the
queue's order comes up; an ended text's draft is sent as a new message or discarded; the
keys that send, send empty, toggle close_session and step through conversations. Mixed
into `SwitchboardApp` (tui/app.py), whose state it uses; its message handlers go by name."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from server.backend import AnswerRefused

from .screens.new_message import OutboundDraft
from .widgets.composer import Composer
from .widgets.drafts import item_phone
from .widgets.held_queue import HeldQueue

if TYPE_CHECKING:
    from .app import SwitchboardApp

    _Base = SwitchboardApp
else:
    _Base = object



class AnsweringActions(_Base):
    async def on_composer_submitted(self, event: Composer.Submitted) -> None:
        # The backend returns once the answer is on its way: the screen changes after it.
        composer = self.query_one(Composer)
        outcome = await self.backend.answer(event.seq, event.decision)
        if isinstance(outcome, AnswerRefused):
            self.notify(outcome.reason, title="Not sent", severity="error")
            return
        composer.forget(event.seq)
        queue = self.query_one(HeldQueue)
        queue.remove({event.seq})
        if composer.item is not None and composer.item.seq == event.seq:
            composer.clear()
            # Answer next: straight to the next conversation by the queue's order (through
            # "nothing selected" the inputs would be disabled and restyled for nothing).
            following = queue.next_item()
            if following is not None:
                self._select(following)
            else:
                composer.item = None
        self._browsing = False
        self._update_counts()

    def on_composer_follow_up(self, event: Composer.FollowUp) -> None:
        if not self._require_sl():
            return
        draft = OutboundDraft(event.phone, event.body, action_expected=True)
        self.run_worker(partial(self._send_outbound, draft, follow_up=event.seq), group="sl-api", name="follow-up")

    def on_composer_discarded(self, event: Composer.Discarded) -> None:
        self._leave_ended(event.seq)

    def _leave_ended(self, seq: int) -> None:
        """The ended item `seq` is dealt with: off the queue, and the composer moves on."""
        composer = self.query_one(Composer)
        composer.forget(seq)
        self.query_one(HeldQueue).drop_missed(seq)
        if composer.item is not None and composer.item.seq == seq:
            composer.clear()
            composer.item = None
            self._browsing = False
            self._auto_select(after_send=True)
        self._update_counts()

    def action_discard(self) -> None:
        self.query_one(Composer).discard()

    def action_send(self) -> None:
        self.query_one(Composer).submit()

    def action_send_empty(self) -> None:
        self.query_one(Composer).submit(empty=True)

    def action_toggle_close(self) -> None:
        self.query_one(Composer).toggle_close_session()

    def action_focus_reprocess(self) -> None:
        self.query_one(Composer).focus_reprocess()

    def _step(self, delta: int) -> None:
        """ctrl+n / ctrl+b: the next or previous conversation, by the queue's order."""
        queue = self.query_one(HeldQueue)
        phones = queue.conversations
        if not phones:
            self.notify("No held callbacks.", severity="information", timeout=2)
            return
        current = item_phone(self.query_one(Composer).item)
        index = 0
        if current in phones and self.query_one(Composer).answerable:
            index = max(0, min(len(phones) - 1, phones.index(current) + delta))
        self._select(queue.waiting(phones[index])[0])

    def action_next_held(self) -> None:
        self._step(1)

    def action_previous_held(self) -> None:
        self._step(-1)
