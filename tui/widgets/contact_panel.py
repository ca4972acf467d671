"""What Switchboard knows about the selected phone: session, subscription, tags,
blacklist, auto-reply loop, carrier."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from data.models import ContactState
from server.backend import Note

from ..safe import safe_line
from .lines import TextLines


class ContactPanel(TextLines):
    """Set `show_contact(...)`; renders nothing from untrusted text without neutralising it.
    Drawn line by line (widgets/lines.py): another phone repaints the lines that differ."""

    def show_contact(self, phone: str, state: ContactState | None, notes: list[Note] | None = None) -> None:
        text = Text(end="")
        text.append("Phone ", style="dim")
        text.append_text(safe_line(phone or "—", "bold"))
        if state is None:
            text.append("\n\nNo history yet.", style="dim")
            self._notes(text, notes or [])
            self.show(text)
            return

        def row(label: str, value: str, style: str = "") -> None:
            text.append(f"\n{label:<12}", style="dim")
            text.append(value, style=style)

        session = {True: ("open", "green"), False: ("closed", "yellow"), None: ("unknown", "dim")}[state.session_open]
        row("Session", *session)
        row("Subscribed", "yes" if state.subscribed else "no", "green" if state.subscribed else "")
        text.append(f"\n{'Tags':<12}", style="dim")
        if state.tags:
            text.append_text(safe_line(", ".join(state.tags), "cyan", 40))
        else:
            text.append("—", style="dim")
        row("Blacklisted", "YES (opted out)" if state.blacklisted else "no", "bold red" if state.blacklisted else "")
        if state.loop_flagged:
            row("Auto-reply", "LOOP DETECTED — do not auto-answer", "bold red")
        text.append(f"\n{'Carrier':<12}", style="dim")
        text.append_text(safe_line(state.carrier or "—", "", 28))
        row("Messages", f"{state.messages_in} in · {state.messages_out} out")
        if state.last_seen:
            row("Last seen", datetime.fromtimestamp(state.last_seen).strftime("%Y-%m-%d %H:%M:%S"))
        self._notes(text, notes or [])
        self.show(text)

    @staticmethod
    def _notes(text: Text, notes: list[Note]) -> None:
        if not notes:
            return
        text.append("\n\nNotes (f12 adds; never sent)", style="bold")
        for note in notes[-8:]:
            text.append(f"\n{datetime.fromtimestamp(note.at).strftime('%m-%d %H:%M')} ", style="dim")
            text.append_text(safe_line(note.text, "italic", 200))
