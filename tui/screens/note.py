"""Write a note on a phone (f12): kept in the data directory, shown in the contact panel,
never sent to the texter."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ..safe import plain_line


class NoteScreen(ModalScreen[str | None]):
    """Returns the note's text, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="note.cancel")]

    def __init__(self, phone: str) -> None:
        super().__init__()
        self._phone = phone

    def compose(self) -> ComposeResult:
        with Vertical(id="note"):
            yield Static(Text(f"Note on {plain_line(self._phone, 20)} (never sent; enter keeps it)", style="bold"),
                         classes="title")
            yield Input(placeholder="e.g. prefers calls after 5pm; order #1234", id="note-text")

    def on_mount(self) -> None:
        self.query_one("#note-text", Input).focus()

    @on(Input.Submitted, "#note-text")
    def _keep(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
