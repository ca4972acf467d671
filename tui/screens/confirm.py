"""A one-question confirmation: enter (or y) says yes, escape (or n) says no."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class ConfirmScreen(ModalScreen[bool]):
    """Returns True when the operator confirms. `question` is our own text, shown literally."""

    BINDINGS = [
        Binding("enter,y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("escape,n", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, yes: str = "enter: yes", no: str = "escape: no") -> None:
        super().__init__()
        self._question = question
        self._keys = f"{yes} · {no}"

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(Text(self._question, style="bold"), id="confirm-question")
            yield Static(Text(self._keys, style="dim"), id="confirm-keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
