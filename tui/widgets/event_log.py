"""The log of callbacks that need no answer (delivery reports, session closes,
subscriptions, blacklist changes, loops) and of refused requests.

Lines arrive in batches from the app; under a flood only the newest lines of each
batch are written, with a count of the rest, so the log never slows the console.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import RichLog

from data.models import CallbackRecord

from ..safe import safe_line

MAX_LINES_PER_BATCH = 8

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


class EventLog(RichLog):
    DEFAULT_CSS = """
    EventLog { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, wrap=False, markup=False, highlight=False, max_lines=1000)

    def write_batch(self, lines: list[Text], *, limit: int = MAX_LINES_PER_BATCH) -> None:
        """Write the newest `limit` lines, and a count of the ones left out."""
        skipped = len(lines) - limit
        if skipped > 0:
            self.write(Text(f"… {skipped} more events (see history export)", style="dim italic"))
            lines = lines[-limit:]
        for line in lines:
            self.write(line)
