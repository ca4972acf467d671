"""The log of callbacks that need no answer (delivery reports, session closes,
subscriptions, blacklist changes, loops) and of refused requests.

A line-rendering view over the newest MAX_LINES entries: adding an entry only appends it
(a recorded callback becomes its line when that line is drawn), and a frame draws only the
visible lines, so a flood of a thousand delivery reports a second costs the console a list
append each and the screen a few redraws a second (the app adds them in batches). Nothing
in the kept window is skipped: the operator scrolls back through all of it.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime
from typing import Union

from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from data.models import CallbackRecord

from ..safe import safe_line
from .steady import FrameStyled, text_line
from .steady import set_virtual_size

MAX_LINES = 1000
"""Entries kept (and scrollable); older ones leave the view, not the history."""

LogEntry = Union[CallbackRecord, Text]
"""A recorded callback (described when drawn) or a line made already."""

_TYPE_STYLE = {
    "delivery_report": "blue",
    "session_closed": "yellow",
    "subscription_created": "green",
    "subscription_canceled": "yellow",
    "phone_blacklisted": "bold red",
    "phone_unblacklisted": "green",
    "auto_reply_loop": "bold red",
}


def describe(record: CallbackRecord) -> Text:
    """One line for a recorded callback."""
    parsed = record.parsed
    line = Text(end="", no_wrap=True)
    line.append(datetime.fromtimestamp(record.received_at).strftime("%H:%M:%S "), style="dim")
    line.append_text(safe_line(record.type, _TYPE_STYLE.get(record.type, "bold"), 24))
    line.append(" ")
    if record.type == "delivery_report":
        line.append_text(safe_line(f"message {parsed.get('message_id', '?')}: {parsed.get('status_name', '?')}"))
        if parsed.get("final"):
            line.append(" (final)", style="dim")
    elif record.phones:
        line.append_text(safe_line(", ".join(record.phones), "bold", 60))
    elif record.type == "incoming_message":
        line.append_text(safe_line(str(parsed.get("body", "")), "", 60))
    if record.warnings:
        line.append(f"  ⚠ {len(record.warnings)}: ", style="red")
        line.append_text(safe_line(record.warnings[0], "red", 80))
    return line


def rejected_line(status: int, reason: str, peer: str) -> Text:
    line = Text(end="", no_wrap=True)
    line.append(datetime.now().strftime("%H:%M:%S "), style="dim")
    line.append(f"HTTP {status} ", style="bold red")
    line.append_text(safe_line(peer or "?", "dim", 40))
    line.append(" ")
    line.append_text(safe_line(reason, "red", 100))
    return line


def _as_text(entry: LogEntry) -> Text:
    return entry if isinstance(entry, Text) else describe(entry)


class EventLog(FrameStyled, ScrollView, can_focus=True):
    """The newest MAX_LINES entries, oldest at the top; it follows the newest unless the
    operator has scrolled up (then the lines on screen stay put)."""

    DEFAULT_CSS = """
    EventLog {
        height: 1fr;
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        overflow-y: scroll;
        &:focus { background-tint: $foreground 5%; }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._entries: deque[LogEntry] = deque(maxlen=MAX_LINES)
        self._dropped = 0
        """Entries that have left the front of the window since the start."""
        self._strips: dict[int, Strip] = {}
        """Drawn lines by absolute entry number (`_dropped` + index), for this width."""
        self._width = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entries: list[LogEntry]) -> None:
        """Append entries and show the newest, if the view was at the bottom."""
        if not entries:
            return
        following = self.scroll_offset.y >= self.max_scroll_y
        before = len(self._entries)
        self._entries.extend(entries)
        gone = before + len(entries) - len(self._entries)  # dropped from the front
        self._dropped += gone
        height = len(self._entries)
        set_virtual_size(self, Size(self.size.width, height))
        if following:
            self.scroll_to(y=max(0, height - self.scrollable_content_region.height), animate=False)
        elif gone:
            self.scroll_to(y=max(0, self.scroll_offset.y - gone), animate=False)  # the same lines stay

    def add_history(self, entries: list[LogEntry]) -> None:
        """Put entries older than everything shown (the history read at start) in front of
        what arrived live since."""
        if not entries or not self._entries:
            self.add(entries)
            return
        live = list(self._entries)
        self._entries.clear()
        self._strips.clear()
        self._dropped = 0
        self.add(entries + live)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def plain_lines(self) -> list[str]:
        """Every kept entry as plain text, oldest first."""
        return [_as_text(entry).plain for entry in self._entries]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if width != self._width:
            self._width = width
            self._strips.clear()
        index = y + self.scroll_offset.y
        if not 0 <= index < len(self._entries):
            return Strip.blank(width, self.frame_style)
        key = self._dropped + index
        strip = self._strips.get(key)
        if strip is None:
            text = _as_text(self._entries[index])
            strip = text_line(text, self.app.console, width, self.frame_style)
            if len(self._strips) > 4 * max(1, self.size.height):
                self._strips.clear()
            self._strips[key] = strip
        return strip

    def on_resize(self) -> None:
        following = self.scroll_offset.y >= self.max_scroll_y
        self.virtual_size = Size(self.size.width, len(self._entries))
        if following:
            self.scroll_end(animate=False, immediate=True)
