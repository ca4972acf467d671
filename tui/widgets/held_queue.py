"""The queue of held callbacks, oldest first, each with a live countdown, and below
them the most recent missed ones (timed out, or the caller hung up), kept visible so
the operator can follow up.

A line-rendering view: only the visible rows are drawn, so ten thousand held
requests cost the same per frame as ten (a ListView of thousands takes seconds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from server.backend import HeldItem
from server.contract import CallbackType

from ..safe import plain_line


@dataclass(frozen=True, slots=True)
class _Missed:
    """A queue row: a held item, or (with `outcome`) one that ended unanswered."""

    item: HeldItem
    outcome: str
    at: float


class HeldQueue(ScrollView, can_focus=True):
    """Held exchanges waiting for an answer. Posts `Selected` when the cursor moves."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="queue.up"),
        Binding("down,j", "cursor(1)", "Down", show=False, id="queue.down"),
        Binding("home", "cursor_home", "First", show=False, id="queue.home"),
        Binding("end", "cursor_end", "Last", show=False, id="queue.end"),
        Binding("enter", "open", "Answer", id="queue.open", tooltip="Answer the selected item"),
        Binding("delete", "dismiss_missed", "Dismiss missed", id="queue.dismiss", show=False,
                tooltip="Remove a missed (timed out) row from the queue"),
    ]

    MAX_MISSED = 50

    DEFAULT_CSS = """
    HeldQueue { height: 1fr; }
    """

    cursor: reactive[int] = reactive(0, always_update=True, repaint=True)

    @dataclass
    class Selected(Message):
        """The highlighted held item changed."""

        item: HeldItem
        """The item under the cursor."""
        focus_reply: bool = False
        """True when the operator asked to answer it now (enter)."""
        missed: str = ""
        """How the item ended ('timed_out', 'caller_gone', 'overflow'), or '' while it is held."""
        ended_at: float = 0.0
        """When it ended (Unix time); 0 while it is held."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._items: list[HeldItem] = []
        self._index: dict[int, int] = {}
        self._missed: list[_Missed] = []

    # -- data in ---------------------------------------------------------------------

    @property
    def items(self) -> list[HeldItem]:
        return self._items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, items: list[HeldItem]) -> None:
        """Append newly held items (they are newer than everything present)."""
        if self._missed and self.cursor >= len(self._items):
            # The cursor is on a missed row, below the pending ones: keep it on that row.
            self.set_reactive(HeldQueue.cursor, self.cursor + len(items))
        for item in items:
            self._index[item.seq] = len(self._items)
            self._items.append(item)
        self._resized()

    def remove(self, seqs: set[int], missed: dict[int, str] | None = None, at: float = 0.0) -> None:
        """Drop ended exchanges, keeping the cursor on the same row (held or missed) where
        possible. Those in `missed` (seq -> outcome) move to the missed rows below the held ones."""
        if not seqs or not any(seq in self._index for seq in seqs):
            return
        row = self._row(self.cursor)
        if missed:
            gone = [_Missed(item, missed[item.seq], at or time.time()) for item in self._items if item.seq in missed]
            self._missed = (gone[::-1] + self._missed)[: self.MAX_MISSED]
        self._items = [item for item in self._items if item.seq not in seqs]
        self._index = {item.seq: n for n, item in enumerate(self._items)}
        index = self._row_index(row.item.seq) if row is not None else None
        if index is None:
            index = min(self.cursor, max(0, len(self._items) - 1))
        self.set_reactive(HeldQueue.cursor, index)
        self._resized()

    def _row_index(self, seq: int) -> int | None:
        index = self._index.get(seq)
        if index is None:
            index = next((len(self._items) + n for n, row in enumerate(self._missed) if row.item.seq == seq), None)
        return index

    def contains(self, seq: int) -> bool:
        return seq in self._index

    def select(self, seq: int) -> None:
        """Move the cursor to `seq`, held or missed, without announcing it (the app knows)."""
        index = self._row_index(seq)
        if index is not None:
            self.set_reactive(HeldQueue.cursor, index)
            self.scroll_to_region_of(index)
            self.refresh()

    def drop_missed(self, seq: int) -> None:
        """Remove the missed row of `seq` (its follow-up was sent or its draft dropped)."""
        kept = [row for row in self._missed if row.item.seq != seq]
        if len(kept) != len(self._missed):
            self._missed = kept
            self.set_reactive(HeldQueue.cursor, min(self.cursor, max(0, self._rows - 1)))
            self._resized()

    @property
    def selected(self) -> HeldItem | None:
        if 0 <= self.cursor < len(self._items):
            return self._items[self.cursor]
        return None

    @property
    def selected_missed(self) -> _Missed | None:
        index = self.cursor - len(self._items)
        if 0 <= index < len(self._missed):
            return self._missed[index]
        return None

    @property
    def missed(self) -> list[_Missed]:
        """Items that ended without the operator's answer, newest first."""
        return self._missed

    def _row(self, index: int) -> _Missed | None:
        if index < len(self._items):
            return _Missed(self._items[index], "", 0.0)
        index -= len(self._items)
        return self._missed[index] if index < len(self._missed) else None

    @property
    def _rows(self) -> int:
        return len(self._items) + len(self._missed)

    def action_dismiss_missed(self) -> None:
        if self.selected_missed is not None:
            del self._missed[self.cursor - len(self._items)]
            self.set_reactive(HeldQueue.cursor, min(self.cursor, max(0, self._rows - 1)))
            self._resized()

    def _resized(self) -> None:
        self.virtual_size = Size(self.size.width, self._rows)
        self.refresh()

    def scroll_to_region_of(self, index: int) -> None:
        top = self.scroll_offset.y
        height = max(1, self.size.height)
        if index < top:
            self.scroll_to(y=index, animate=False)
        elif index >= top + height:
            self.scroll_to(y=index - height + 1, animate=False)

    # -- actions -----------------------------------------------------------------------

    def _move_to(self, index: int) -> None:
        if not self._rows:
            return
        index = max(0, min(self._rows - 1, index))
        self.cursor = index
        self.scroll_to_region_of(index)
        row = self._row(index)
        assert row is not None
        self.post_message(self.Selected(row.item, missed=row.outcome, ended_at=row.at))

    def action_cursor(self, delta: int) -> None:
        self._move_to(self.cursor + delta)

    def action_cursor_home(self) -> None:
        self._move_to(0)

    def action_cursor_end(self) -> None:
        self._move_to(self._rows - 1)

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

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        index = y + self.scroll_offset.y
        base = self.rich_style
        row = self._row(index)
        if row is None:
            if index == 0:
                hint = Text(" Nothing held. Waiting for texts…", style="dim")
                return Strip(list(hint.render(self.app.console)), hint.cell_len).crop_extend(0, width, base)
            return Strip.blank(width, base)
        item, missed = row.item, row.outcome
        remaining = item.deadline - time.time()
        urgent = remaining < 5
        mark = "▶" if index == self.cursor else " "
        kind = "SUB" if item.record.type == CallbackType.SUBSCRIPTION_CREATED else "MSG"
        phone = plain_line(item.record.phones[0] if item.record.phones else "?", 14)
        body = item.record.parsed.get("body", "") if kind == "MSG" else "new subscriber: tags?"
        text = Text(no_wrap=True, end="", style="dim" if missed else "")
        text.append(f"{mark}", style="bold")
        if missed:
            text.append("miss ", style="red")
        else:
            text.append(f"{max(0, remaining):3.0f}s ", style="bold red" if urgent else "bold yellow")
        text.append(f"{kind} ", style="dim")
        text.append(f"{phone:<14} ", style="bold")
        text.append(plain_line(str(body), max(1, width - 25)))
        if index == self.cursor:
            style = Style(reverse=True) if self.has_focus else Style(bgcolor="grey23")
            text.stylize(style)
        segments = list(text.render(self.app.console))
        segments = [segment for segment in segments if segment.text != "\n"]
        return Strip(segments).crop_extend(0, width, base)

    def tick(self) -> None:
        """Redraw the countdowns (called once a second)."""
        if self._items:
            self.refresh()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def on_resize(self) -> None:
        self._resized()


__all__ = ["HeldQueue"]
