"""Full-text search over the whole history (f5): results stream in as segments are
scanned, newest first, with progress; choosing one opens that phone's conversation."""

from __future__ import annotations

from datetime import datetime
from typing import AsyncIterator, Callable

from rich.text import Text

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from data.models import ThreadHit
from data.phones import phone_query_digits
from server.backend import SearchPage

from ..safe import safe_line

MAX_SHOWN = 500


class SearchScreen(ModalScreen[str | None]):
    """Returns the phone number of the chosen hit, or None."""

    BINDINGS = [
        Binding("escape", "dismiss_none", "Close", id="search.close"),
        Binding("down", "focus_hits", "Results", id="search.results", show=False),
    ]

    def __init__(self, search: Callable[[str], AsyncIterator[SearchPage]]) -> None:
        super().__init__()
        self._run_search = search
        self._shown = 0
        self._phones: list[str] = []
        """The phone of each option, by option index (a message and its answer share a
        seq, so options carry no ids)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="search"):
            yield Static("Search the history (message texts, replies, phone numbers)", classes="title")
            yield Input(placeholder="text to find, enter searches", id="query")
            yield Static(id="search-progress")
            yield OptionList(id="hits")

    def on_mount(self) -> None:
        self.query_one("#query", Input).focus()

    @on(Input.Submitted, "#query")
    def _start(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        hits = self.query_one("#hits", OptionList)
        hits.clear_options()
        self._shown = 0
        self._phones = []
        if not text:
            self.query_one("#search-progress", Static).update("Type something to search for.")
            return
        self.query_one("#search-progress", Static).update("Searching…")
        phone = phone_query_digits(text)
        if phone is not None:
            # A phone in any written form: offer its conversation first, and look for its
            # key (the digits every record of it is filed under) rather than the typed form.
            line = Text("open the conversation with ", style="bold", end="")
            line.append_text(safe_line(phone, "bold cyan", 20))
            hits.add_option(Option(line))
            self._phones.append(phone)
            text = phone
        self._search(text)

    @work(exclusive=True, group="search", name="history-search")
    async def _search(self, text: str) -> None:
        # The backend reads the history off the UI loop and hands back pages with progress.
        async for page in self._run_search(text):
            self._show(text, page)

    def _show(self, text: str, progress: SearchPage) -> None:
        hits = self.query_one("#hits", OptionList)
        room = MAX_SHOWN - self._shown
        if room > 0 and progress.hits:
            shown = progress.hits[:room]
            hits.add_options(self._option(hit) for hit in shown)
            self._phones.extend(hit.phone for hit in shown)
            self._shown += len(shown)
        percent = 100 * progress.scanned / progress.total if progress.total else 100
        state = "done" if progress.done else f"{percent:.0f}% scanned"
        more = f" (showing the newest {MAX_SHOWN})" if self._shown >= MAX_SHOWN else ""
        self.query_one("#search-progress", Static).update(
            Text(f"{self._shown} result(s){more} · {progress.scanned:,} of {progress.total:,} records · {state}")
        )

    @staticmethod
    def _option(hit: ThreadHit) -> Option:
        line = Text(no_wrap=True, end="")
        line.append(datetime.fromtimestamp(hit.at).strftime("%Y-%m-%d %H:%M "), style="dim")
        line.append_text(safe_line(hit.phone, "bold", 16))
        line.append(f" {hit.kind:<8} ", style="dim")
        line.append_text(safe_line(hit.text, "", 80))
        return Option(line)

    @on(OptionList.OptionSelected, "#hits")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        if 0 <= event.option_index < len(self._phones):
            self.dismiss(self._phones[event.option_index])

    def action_focus_hits(self) -> None:
        hits = self.query_one("#hits", OptionList)
        if hits.option_count and not hits.has_focus:
            hits.focus()
            hits.highlighted = 0

    def action_dismiss_none(self) -> None:
        self.workers.cancel_group(self, "search")
        self.dismiss(None)
