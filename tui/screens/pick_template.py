"""Pick a canned reply (for a bulk answer): type to filter, enter chooses, escape cancels."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from server.sms.templates import Template

from ..safe import safe_line


class PickTemplateScreen(ModalScreen[Template | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="pick.cancel"),
        Binding("down", "move(1)", "Next", id="pick.down", show=False),
        Binding("up", "move(-1)", "Previous", id="pick.up", show=False),
    ]

    def __init__(self, templates: list[Template], title: str) -> None:
        super().__init__()
        self._templates = templates
        self._shown: list[Template] = list(templates)
        self._title = title

    def compose(self) -> ComposeResult:
        with Vertical(id="pick-template"):
            yield Static(Text(self._title, style="bold"), classes="title")
            yield Input(placeholder="template name", id="pick-filter")
            yield OptionList(id="pick-list")

    def on_mount(self) -> None:
        self._fill("")
        self.query_one("#pick-filter", Input).focus()

    @on(Input.Changed, "#pick-filter")
    def _filter(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def _fill(self, wanted: str) -> None:
        wanted = wanted.strip().lstrip("/").lower()
        self._shown = [t for t in self._templates if wanted in t.name.lower()]
        listing = self.query_one("#pick-list", OptionList)
        listing.clear_options()
        for template in self._shown:
            line = Text(no_wrap=True, end="")
            line.append(f"/{template.name}  ", style="bold cyan")
            line.append_text(safe_line(template.body, "", 60))
            listing.add_option(Option(line))
        if self._shown:
            listing.highlighted = 0

    def action_move(self, delta: int) -> None:
        listing = self.query_one("#pick-list", OptionList)
        if self._shown:
            listing.highlighted = max(0, min(len(self._shown) - 1, (listing.highlighted or 0) + delta))

    @on(Input.Submitted, "#pick-filter")
    def _submitted(self) -> None:
        index = self.query_one("#pick-list", OptionList).highlighted
        if self._shown and index is not None:
            self.dismiss(self._shown[index])

    @on(OptionList.OptionSelected, "#pick-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self._shown[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)
