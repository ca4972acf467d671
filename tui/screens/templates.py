"""Canned replies (f10): the list on the left, the chosen one's fields on the right; save
(ctrl+s) stores or replaces it by name, delete removes it. Kept by the backend in a TinyDB
table in the data directory."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, OptionList, Static
from textual.widgets.option_list import Option

from server.backend import ConsoleBackend
from server.sms.templates import PLACEHOLDERS, Template

from ..safe import safe_line


class TemplatesScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "close", "Close", id="templates.close"),
        Binding("ctrl+s", "save", "Save", id="templates.save", priority=True),
        Binding("ctrl+n", "new", "New", id="templates.new", priority=True),
    ]

    def __init__(self, backend: ConsoleBackend) -> None:
        super().__init__()
        self.backend = backend
        self._templates: list[Template] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="templates"):
            yield Static("Canned replies — in a reply, type / and the name, then tab", classes="title")
            with Horizontal(id="templates-body"):
                yield OptionList(id="template-names")
                with Vertical(id="template-form"):
                    yield Input(placeholder="name (letters, digits, - _)", id="template-name")
                    yield Input(placeholder="body, e.g. Hi {phone_number}, we got: {body}", id="template-body")
                    yield Checkbox("close_session", id="template-close")
                    yield Input(placeholder="reprocess (optional)", id="template-reprocess")
                    yield Input(placeholder="tags for a new subscriber, comma-separated (optional)", id="template-tags")
                    yield Static(Text("Placeholders: " + ", ".join("{" + p + "}" for p in PLACEHOLDERS), style="dim"),
                                 id="template-help")
                    with Horizontal(id="template-buttons"):
                        yield Button("Save (ctrl+s)", variant="primary", id="template-save")
                        yield Button("New (ctrl+n)", id="template-new")
                        yield Button("Delete", variant="error", id="template-delete")

    def on_mount(self) -> None:
        self._reload()
        self.query_one("#template-names", OptionList).focus()

    @work(exclusive=True, group="templates")
    async def _reload(self, select: str = "") -> None:
        self._templates = await self.backend.templates()
        names = self.query_one("#template-names", OptionList)
        names.clear_options()
        names.add_options(Option(safe_line(t.name, "bold", 24)) for t in self._templates)
        index = next((n for n, t in enumerate(self._templates) if t.name == select), 0)
        if self._templates:
            names.highlighted = index
            self._show(self._templates[index])

    def _show(self, template: Template) -> None:
        self.query_one("#template-name", Input).value = template.name
        self.query_one("#template-body", Input).value = template.body
        self.query_one("#template-close", Checkbox).value = template.close_session
        self.query_one("#template-reprocess", Input).value = template.reprocess
        self.query_one("#template-tags", Input).value = ", ".join(template.tags)

    @on(OptionList.OptionHighlighted, "#template-names")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if 0 <= event.option_index < len(self._templates):
            self._show(self._templates[event.option_index])

    def _form(self) -> Template:
        tags = [tag.strip() for tag in self.query_one("#template-tags", Input).value.split(",") if tag.strip()]
        return Template(
            name=self.query_one("#template-name", Input).value.strip(),
            body=self.query_one("#template-body", Input).value,
            close_session=self.query_one("#template-close", Checkbox).value,
            reprocess=self.query_one("#template-reprocess", Input).value,
            tags=tags,
        )

    @on(Button.Pressed, "#template-save")
    @on(Input.Submitted)
    def action_save(self) -> None:
        self._save(self._form())

    @work(exclusive=True, group="templates-save")
    async def _save(self, template: Template) -> None:
        problem = await self.backend.save_template(template)
        if problem:
            self.notify(problem, title="Not saved", severity="error")
            return
        self.notify(f"Saved /{template.name}", timeout=2)
        self._reload(select=template.name)

    @on(Button.Pressed, "#template-new")
    def action_new(self) -> None:
        self._show(Template(name="", body=""))
        self.query_one("#template-name", Input).focus()

    @on(Button.Pressed, "#template-delete")
    def _delete(self) -> None:
        self._remove(self.query_one("#template-name", Input).value.strip())

    @work(exclusive=True, group="templates-save")
    async def _remove(self, name: str) -> None:
        if name and await self.backend.delete_template(name):
            self.notify(f"Deleted /{name}", timeout=2)
            self._reload()
        else:
            self.notify(f"No template named {name!r}", severity="warning")

    def action_close(self) -> None:
        self.dismiss(None)
