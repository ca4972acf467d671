"""The conversation with one phone: every message in and every reply out, with times
and who answered."""

from __future__ import annotations

import time
from datetime import datetime

from rich.text import Text
from textual.widgets import RichLog

from data.models import ThreadEntry

from ..safe import safe_line, safe_text

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


class ThreadView(RichLog):
    """Shows the thread set with `show()`; new entries are appended with `append()`."""

    DEFAULT_CSS = """
    ThreadView { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, wrap=True, markup=False, highlight=False, max_lines=2000, min_width=20)
        self.phone: str = ""

    def show(self, phone: str, entries: list[ThreadEntry]) -> None:
        self.phone = phone
        self.clear()
        if not entries:
            self.write(Text("No messages with this phone yet.", style="dim"))
            return
        for entry in entries:
            self.write(render_entry(entry))
