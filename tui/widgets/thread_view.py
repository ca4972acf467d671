"""The conversation with one phone: every message in and every reply out, with times
and who answered. It shows the newest page of a long thread; `pageup` at its top asks for
the page before (the app reads it and hands it to `add_older`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual import events

from data.models import ThreadEntry, ThreadPage

from ..safe import safe_line, safe_text
from .steady import SteadyLog

_WHO_STYLE = {
    "texter": "bold cyan",
    "operator": "bold green",
    "fallback": "bold yellow",
    "rule": "bold magenta",
    "auto": "bold blue",
    "outbound": "bold green",
}
_DELIVERY_MARK = {"sent": "·", "pending": "…", "queued": "⧗", "delivered": "✓", "failed": "✗"}


def _clock(at: float) -> str:
    moment = datetime.fromtimestamp(at)
    if time.time() - at > 20 * 3600:
        return moment.strftime("%b %d %H:%M")
    return moment.strftime("%H:%M:%S")


def render_entry(entry: ThreadEntry) -> Text:
    arrow = "←" if entry.direction == "in" else "→"
    line = Text(end="")
    line.append(f"{_clock(entry.at)} ", style="dim")
    line.append(f"{arrow} {entry.who:<8} ", style=_WHO_STYLE.get(entry.who, "bold"))
    # Which reply answered which text: a text shows its number, its answer points back to it.
    if entry.who == "texter":
        line.append(f"#{entry.seq} ", style="dim")
    elif entry.who != "outbound":
        line.append(f"↳#{entry.seq} ", style="dim")
    if entry.text:
        line.append_text(safe_text(entry.text))
    else:
        line.append("(no text)", style="dim italic")
    if entry.message_ids:
        marks = " ".join(
            f"{_DELIVERY_MARK.get(state, '?')}{state}" for state in entry.delivery
        )
        line.append(f"  [{len(entry.message_ids)} part{'s' if len(entry.message_ids) != 1 else ''}: {marks}", style="dim")
        line.append(", final]" if entry.final else "]", style="dim")
    if entry.detail:
        line.append("  ")
        line.append_text(safe_line(entry.detail, "italic yellow"))
    return line


OLDER_HINT = "▲ older entries: pageup here to load them"


class ThreadView(SteadyLog):
    """Shows the thread set with `show()`; older pages are put in front with `add_older()`."""

    DEFAULT_CSS = """
    ThreadView { height: 1fr; }
    """

    BINDINGS = [
        Binding("pageup", "older", "Older", id="thread_older",
                tooltip="Page up; at the top of the conversation, load its older entries"),
    ]

    @dataclass
    class OlderWanted(Message):
        """The operator asked for the entries before the oldest one shown."""

        phone: str
        """Whose conversation."""
        before: int
        """The oldest shown entry's `order` (what `thread_page(before=...)` takes)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, wrap=True, markup=False, highlight=False, max_lines=None, min_width=20)
        self.phone: str = ""
        self._newest: list[ThreadEntry] = []
        self._older: list[ThreadEntry] = []
        """Entries of older pages the operator loaded, kept while the same phone is shown."""
        self._more = False
        self._asked = False
        self._wrapped_at = 0
        """The width the entries were last wrapped to (a RichLog wraps a line once, when written)."""
        self._written: tuple[list[ThreadEntry], bool, int] = ([], False, 0)
        """The entries on screen, with the older-entries hint and the width they were
        written with: a re-read that only adds entries writes only those."""

    @property
    def has_older(self) -> bool:
        """Whether the conversation has entries older than those shown."""
        return self._more

    def show(self, phone: str, entries: list[ThreadEntry], *, more: bool = False) -> None:
        """Show `phone`'s newest entries; `more`: it has older ones. Older pages loaded for
        the same phone stay in front."""
        if phone != self.phone:
            self._older = []
        if self._older:  # keep what the operator paged back to, up to the new page
            first = entries[0].order if entries else 0
            self._older = [e for e in self._older + self._newest if 0 < e.order < first]
        if not self._older:
            self._more = more
        self.phone = phone
        self._newest = entries
        self._render(scroll_end=True)

    def add_older(self, phone: str, page: ThreadPage) -> None:
        """Put the page before the oldest entry shown in front (nothing if the phone changed)."""
        self._asked = False
        if phone != self.phone:
            return
        self._older = page.entries + self._older
        self._more = page.more
        self._render(scroll_end=False)
        self.scroll_home(animate=False)

    def on_resize(self, event: events.Resize) -> None:
        """Wrap the entries again to the new width: the texter's words are never cut off
        (at the end of the conversation it stays at the end)."""
        if self._wrapped_at and (self._older or self._newest):
            # After the refresh: the content region the lines wrap to is laid out by then.
            self.call_after_refresh(self._rewrap)

    def _rewrap(self) -> None:
        if self.scrollable_content_region.width != self._wrapped_at:
            self._render(scroll_end=self.scroll_y >= self.max_scroll_y)

    def _render(self, *, scroll_end: bool) -> None:
        # Wrapped to the pane's own width, given explicitly: the console's width is the
        # terminal's, and not every driver updates it on a resize.
        self._wrapped_at = self.scrollable_content_region.width
        width = self._wrapped_at or None
        entries = self._older + self._newest
        written, hinted, wrapped = self._written
        self._written = (entries, self._more, self._wrapped_at)
        if written and (hinted, wrapped) == (self._more, self._wrapped_at) and entries[: len(written)] == written:
            # The same conversation re-read (an answer, a delivery report): only what is
            # new is written, and nothing at all when nothing changed.
            for entry in entries[len(written):]:
                self.write(render_entry(entry), width=width, scroll_end=scroll_end)
            return
        self.clear()
        if not entries:
            self.write(Text("No messages with this phone yet.", style="dim"), width=width)
            return
        if self._more:
            self.write(Text(OLDER_HINT, style="dim italic"), width=width, scroll_end=scroll_end)
        for entry in entries:
            self.write(render_entry(entry), width=width, scroll_end=scroll_end)

    def action_older(self) -> None:
        """Page up; at the top, ask for the page before the oldest entry shown."""
        if self.scroll_y > 0 or not self._more:
            self.scroll_page_up()
            return
        entries = self._older or self._newest
        if entries and not self._asked:
            self._asked = True
            self.post_message(self.OlderWanted(self.phone, entries[0].order))
