"""Compose a message to any phone outside a held exchange (sent through the SL API's
`send_message`)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from server.sms.segments import count_segments


@dataclass(frozen=True)
class OutboundDraft:
    phone: str
    body: str
    action_expected: bool


class NewMessageScreen(ModalScreen[OutboundDraft | None]):
    """Returns an `OutboundDraft`, or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="new_message.cancel"),
        Binding("ctrl+s", "send", "Send", id="new_message.send", priority=True),
    ]

    def __init__(self, phone: str = "") -> None:
        super().__init__()
        self._phone = phone

    def compose(self) -> ComposeResult:
        with Vertical(id="new-message"):
            yield Label("New message through the SL API (send_message)", classes="title")
            yield Input(value=self._phone, placeholder="phone number, e.g. 5551234567", id="to")
            yield Input(placeholder="message text (enter or ctrl+s sends)", id="text")
            yield Static(id="text-count")
            yield Checkbox("action_expected: open a session for the answer", value=True, id="action-expected")
            with Horizontal(id="new-message-buttons"):
                yield Button("Send", variant="primary", id="send")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#text" if self._phone else "#to", Input).focus()
        self._count()

    @on(Input.Changed, "#text")
    def _count(self) -> None:
        count = count_segments(self.query_one("#text", Input).value)
        self.query_one("#text-count", Static).update(
            Text(count.summary(), style="dim" if count.segments <= 1 else "yellow")
        )

    @on(Input.Submitted)
    @on(Button.Pressed, "#send")
    def action_send(self) -> None:
        phone = self.query_one("#to", Input).value.strip()
        body = self.query_one("#text", Input).value
        if not phone:
            self.notify("Enter a phone number.", severity="error")
            self.query_one("#to", Input).focus()
            return
        if not body.strip():
            self.notify("Enter the message text.", severity="error")
            self.query_one("#text", Input).focus()
            return
        self.dismiss(OutboundDraft(phone, body, self.query_one("#action-expected", Checkbox).value))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
