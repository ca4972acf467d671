"""The queue: one row per conversation (phone) with texts waiting, in the operator's order,
each with how many wait, the time left on the most urgent one, the phone, marks (✎ a draft in
progress, ✗ missed texts, ⊘ opted out, ∞ auto-reply loop, ● marked for a bulk answer);
below them the most recent missed texts (timed out, caller gone, overflow), kept visible
so the operator can follow up.

A `RowView`: only the visible rows are drawn, so ten thousand held requests cost the same
per frame as ten (a ListView of thousands takes seconds).
"""

from __future__ import annotations

import time
from bisect import bisect_left, insort
from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive

from server.backend import HeldItem
from server.sms.contract import CallbackType

from ..safe import plain_line
from .rows import RowView

ORDERS = {
    "oldest": "oldest first",
    "urgent": "least time left first",
    "newest": "newest first",
}
URGENT = 5.0
"""Seconds left under which a row is drawn as urgent."""


def phone_of(item: HeldItem) -> str:
    return item.record.phones[0] if item.record.phones else "?"


@dataclass(frozen=True, slots=True)
class _Missed:
    """A text that ended without the operator's answer."""

    item: HeldItem
    outcome: str
    at: float


class HeldQueue(RowView):
    """Held texts by conversation. Posts `Selected` when the cursor moves or a row is opened.

    Attributes set by the app: `order`, `drafts` (seqs with a draft), `flags` (phone ->
    'blacklisted' / 'loop')."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="queue.up"),
        Binding("down,j", "cursor(1)", "Down", show=False, id="queue.down"),
        Binding("home", "cursor_home", "First", show=False, id="queue.home"),
        Binding("end", "cursor_end", "Last", show=False, id="queue.end"),
        Binding("enter", "open", "Answer", id="queue.open", tooltip="Answer the selected conversation"),
        Binding("space", "toggle_mark", "Mark", id="queue.mark",
                tooltip="Mark the conversation for a bulk answer with a template (ctrl+g)"),
        Binding("delete", "dismiss_missed", "Dismiss missed", id="queue.dismiss", show=False,
                tooltip="Remove a missed (timed out) row from the queue"),
    ]

    MAX_MISSED = 50

    DEFAULT_CSS = """
    HeldQueue { height: 1fr; }
    """

    order: reactive[str] = reactive("oldest", init=False)

    @dataclass
    class Selected(Message):
        """The highlighted row changed, or the operator opened it."""

        item: HeldItem
        """The conversation's oldest waiting text, or the missed text."""
        focus_reply: bool = False
        """True when the operator asked to answer it now (enter)."""
        missed: str = ""
        """How the item ended ('timed_out', 'caller_gone', 'overflow'), or '' while it is held."""
        ended_at: float = 0.0
        """When it ended (Unix time); 0 while it is held."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._held: dict[int, HeldItem] = {}
        self._by_phone: dict[str, list[HeldItem]] = {}
        self._phones: list[str] = []
        """Conversation rows in the current order."""
        self._ranked: list[tuple[tuple, str]] = []
        """(rank, phone) for each conversation, sorted: `_phones` in the making."""
        self._ranks: dict[str, tuple] = {}
        self._missed: list[_Missed] = []
        self.marked: set[str] = set()
        self.drafts: set[int] = set()
        self.flags: dict[str, str] = {}

    # -- data in ---------------------------------------------------------------------

    @property
    def items(self) -> list[HeldItem]:
        """Every held text, oldest first."""
        return list(self._held.values())

    def __len__(self) -> int:
        return len(self._held)

    @property
    def conversations(self) -> list[str]:
        """Phones with texts waiting, in the current order."""
        return self._phones

    def waiting(self, phone: str) -> list[HeldItem]:
        """The phone's held texts, oldest first."""
        return self._by_phone.get(phone, [])

    def next_item(self, after: str = "") -> HeldItem | None:
        """The oldest waiting text of the first conversation by the order (after `after`)."""
        phones = [phone for phone in self._phones if phone != after] or self._phones
        return self._by_phone[phones[0]][0] if phones else None

    def add(self, items: list[HeldItem]) -> None:
        row = self._row(self.cursor)
        for item in items:
            self._held[item.seq] = item
            self._by_phone.setdefault(phone_of(item), []).append(item)
        self._reorder(keep=row, changed={phone_of(item) for item in items})

    def remove(self, seqs: set[int], missed: dict[int, str] | None = None, at: float = 0.0) -> None:
        """Drop ended exchanges, keeping the cursor on the same row where possible. Those in
        `missed` (seq -> outcome) move to the missed rows below the conversations."""
        gone = [self._held[seq] for seq in seqs if seq in self._held]
        if not gone:
            return
        row = self._row(self.cursor)
        if missed:
            newly = [_Missed(item, missed[item.seq], at or time.time()) for item in gone if item.seq in missed]
            self._missed = (newly[::-1] + self._missed)[: self.MAX_MISSED]
        for item in gone:
            del self._held[item.seq]
            phone = phone_of(item)
            rest = [other for other in self._by_phone.get(phone, []) if other.seq != item.seq]
            if rest:
                self._by_phone[phone] = rest
            else:
                self._by_phone.pop(phone, None)
                self.marked.discard(phone)
        self._reorder(keep=row, changed={phone_of(item) for item in gone})

    def contains(self, seq: int) -> bool:
        return seq in self._held

    def watch_order(self) -> None:
        self._reorder(keep=self._row(self.cursor))

    def _rank(self, phone: str) -> tuple:
        """Where a conversation sorts in the current order. The order changes only when
        texts come or go (a deadline is fixed), so rows move only then."""
        group = self._by_phone[phone]
        if self.order == "urgent":
            return (min(item.deadline for item in group), group[0].seq)
        if self.order == "newest":
            return (-group[-1].seq,)
        return (group[0].seq,)

    def _reorder(self, keep: "_Row | None", changed: set[str] | None = None) -> None:
        """Put the conversations in order again: only those in `changed` move (found by
        bisection), or all of them when `changed` is None or a large share of the rows."""
        ranked, ranks = self._ranked, self._ranks
        if changed is None or len(changed) > 64 + len(ranked) // 8:
            ranks.clear()
            ranks.update((phone, self._rank(phone)) for phone in self._by_phone)
            ranked[:] = sorted((rank, phone) for phone, rank in ranks.items())
        else:
            for phone in changed:
                old = ranks.pop(phone, None)
                if old is not None:
                    del ranked[bisect_left(ranked, (old, phone))]
                if phone in self._by_phone:
                    rank = ranks[phone] = self._rank(phone)
                    insort(ranked, (rank, phone))
        self._phones = [phone for _, phone in ranked]
        index = self._index_of(keep) if keep is not None else None
        if index is None:
            index = min(self.cursor, max(0, len(self._phones) - 1))
        self.set_reactive(HeldQueue.cursor, index)
        self.rows_changed()

    def select(self, seq: int) -> None:
        """Move the cursor to the row of `seq` (its conversation, or its missed row)."""
        index = self._index_of(_Row(self._held[seq], "", 0.0) if seq in self._held
                               else next((_Row(m.item, m.outcome, m.at) for m in self._missed if m.item.seq == seq), None))
        if index is not None:
            self.set_reactive(HeldQueue.cursor, index)
            self.scroll_to_row(index)
            self.refresh()

    def drop_missed(self, seq: int) -> None:
        """Remove the missed row of `seq` (its follow-up was sent or its draft dropped)."""
        kept = [row for row in self._missed if row.item.seq != seq]
        if len(kept) != len(self._missed):
            self._missed = kept
            self.set_reactive(HeldQueue.cursor, min(self.cursor, max(0, self.row_count - 1)))
            self.rows_changed()

    @property
    def selected(self) -> HeldItem | None:
        """The oldest waiting text of the conversation under the cursor."""
        if 0 <= self.cursor < len(self._phones):
            return self._by_phone[self._phones[self.cursor]][0]
        return None

    @property
    def selected_missed(self) -> _Missed | None:
        index = self.cursor - len(self._phones)
        if 0 <= index < len(self._missed):
            return self._missed[index]
        return None

    @property
    def missed(self) -> list[_Missed]:
        """Texts that ended without the operator's answer, newest first."""
        return self._missed

    def _row(self, index: int) -> "_Row | None":
        if 0 <= index < len(self._phones):
            return _Row(self._by_phone[self._phones[index]][0], "", 0.0)
        index -= len(self._phones)
        if 0 <= index < len(self._missed):
            missed = self._missed[index]
            return _Row(missed.item, missed.outcome, missed.at)
        return None

    def _index_of(self, row: "_Row | None") -> int | None:
        if row is None:
            return None
        if not row.outcome:
            phone = phone_of(row.item)
            return self._phones.index(phone) if phone in self._by_phone else None
        return next((len(self._phones) + n for n, m in enumerate(self._missed) if m.item.seq == row.item.seq), None)

    @property
    def row_count(self) -> int:
        return len(self._phones) + len(self._missed)

    def action_dismiss_missed(self) -> None:
        if self.selected_missed is not None:
            del self._missed[self.cursor - len(self._phones)]
            self.set_reactive(HeldQueue.cursor, min(self.cursor, max(0, self.row_count - 1)))
            self.rows_changed()

    def action_toggle_mark(self) -> None:
        item = self.selected
        if item is not None:
            self.marked ^= {phone_of(item)}
            self.refresh()

    # -- actions -----------------------------------------------------------------------

    def _move_to(self, index: int) -> None:
        if self.move_cursor(index):
            row = self._row(self.cursor)
            assert row is not None
            self.post_message(self.Selected(row.item, missed=row.outcome, ended_at=row.at))

    def action_cursor(self, delta: int) -> None:
        self._move_to(self.cursor + delta)

    def action_cursor_home(self) -> None:
        self._move_to(0)

    def action_cursor_end(self) -> None:
        self._move_to(self.row_count - 1)

    def action_open(self) -> None:
        row = self._row(self.cursor)
        if row is not None:
            self.post_message(self.Selected(row.item, focus_reply=True, missed=row.outcome, ended_at=row.at))

    def on_click(self, event: events.Click) -> None:
        index = event.y + self.scroll_offset.y
        row = self._row(index)
        if row is not None:
            self.cursor = index
            self.post_message(self.Selected(row.item, focus_reply=True, missed=row.outcome, ended_at=row.at))

    # -- drawing -----------------------------------------------------------------------

    empty_text = " Nothing held. Waiting for texts…"

    def row_key(self, index: int) -> tuple:
        """What row `index` shows (its text is drawn from this alone, so a kept row is
        redrawn exactly when this changes): a conversation's phone, oldest text, count,
        countdown, marks; a missed text's number and draft mark."""
        if index < len(self._phones):
            phone = self._phones[index]
            waiting = self._by_phone[phone]
            left = min(item.deadline for item in waiting) - time.time()
            return ("held", phone, waiting[0].seq, len(waiting), f"{max(0, left):3.0f}s ", left < URGENT,
                    phone in self.marked, any(item.seq in self.drafts for item in waiting),
                    any(phone_of(m.item) == phone for m in self._missed), self.flags.get(phone, ""))
        missed = self._missed[index - len(self._phones)]
        return ("miss", missed.item.seq, missed.item.seq in self.drafts)

    def row_text(self, index: int, width: int) -> Text:
        key = self.row_key(index)
        at_cursor = index == self.cursor
        if key[0] == "held":
            return self._conversation_line(key, self._by_phone[key[1]][0], at_cursor, width)
        return self._missed_line(key, self._missed[index - len(self._phones)].item, at_cursor, width)

    @staticmethod
    def _conversation_line(key: tuple, oldest: HeldItem, at_cursor: bool, width: int) -> Text:
        _, phone, _, count, left, urgent, marked, draft, missed, flag = key
        text = Text(no_wrap=True, end="")
        text.append("▶" if at_cursor else " ", style="bold")
        text.append("●" if marked else " ", style="bold magenta")
        text.append(left, style="bold red" if urgent else "bold yellow")
        label = "" if count < 2 else f"×{count}" if count < 100 else "99+"
        text.append(f"{label:<3} ", style="bold")  # "×12 5550000001": never run into the phone
        # No kind column: a new subscriber's row says so in its text. A 10-digit phone takes
        # 10 columns, so the preview keeps a dozen at 120 columns.
        kind = "SUB" if oldest.record.type == CallbackType.SUBSCRIPTION_CREATED else "MSG"
        text.append(f"{plain_line(phone, 14):<10} ", style="bold")
        marks = ("✎" if draft else "") + ("✗" if missed else "") + {"blacklisted": "⊘", "loop": "∞"}.get(flag, "")
        text.append(f"{marks:<2} ", style="bold red" if flag else "bold cyan")
        body = oldest.record.parsed.get("body", "") if kind == "MSG" else "(new subscriber: tags?)"
        text.append(plain_line(str(body), max(1, width - text.cell_len)))
        return text

    @staticmethod
    def _missed_line(key: tuple, item: HeldItem, at_cursor: bool, width: int) -> Text:
        _, _, draft = key
        text = Text(no_wrap=True, end="", style="dim")
        text.append("▶" if at_cursor else " ", style="bold")
        text.append(" miss   ", style="red")
        kind = "SUB" if item.record.type == CallbackType.SUBSCRIPTION_CREATED else "MSG"
        text.append(f"{plain_line(phone_of(item), 14):<10} ", style="bold")
        if draft:
            text.append("✎ ", style="bold cyan")
        body = item.record.parsed.get("body", "") if kind == "MSG" else "(new subscriber)"
        text.append(plain_line(str(body), max(1, width - text.cell_len)))
        return text

    def tick(self) -> None:
        """Redraw the countdowns (called once a second)."""
        if self._held:
            self.refresh()



@dataclass(frozen=True, slots=True)
class _Row:
    """What a row stands for: a conversation (by its oldest waiting text) or a missed text."""

    item: HeldItem
    outcome: str
    at: float


__all__ = ["HeldQueue", "ORDERS"]
