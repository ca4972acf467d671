"""Canned replies in the composer: `/` and a name offer the templates, tab (or enter) fills
the composer from one, with its placeholders filled for the text being answered. Mixed into
`Composer` (tui/widgets/composer.py), whose fields and state it uses."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Checkbox, Input, OptionList
from textual.widgets.option_list import Option

from server.backend import HeldItem
from server.sms.templates import Template, TemplateError, fill, placeholder_context

from ..safe import safe_line

if TYPE_CHECKING:
    from .composer import Composer

    _Base = Composer
else:
    _Base = object


def _phone_of(item: HeldItem) -> str:
    return item.record.phones[0] if item.record.phones else ""


class CannedReplies(_Base):
    def _offer_templates(self, value: str) -> None:
        """`/` then a name offers the canned replies whose name starts with (or holds) it."""
        listing = self.query_one("#template-list", OptionList)
        offered: list[Template] = []
        if value.startswith("/") and self.answerable and self.templates:
            wanted = value[1:].strip().lower()
            starts = [t for t in self.templates if t.name.lower().startswith(wanted)]
            holds = [t for t in self.templates if wanted in t.name.lower() and t not in starts]
            offered = starts + holds
        self._offered = offered
        listing.display = bool(offered)
        if offered:
            listing.clear_options()
            listing.add_options(Option(self._template_line(t)) for t in offered)
            listing.highlighted = 0

    @staticmethod
    def _template_line(template: Template) -> Text:
        line = Text(no_wrap=True, end="")
        line.append(f"/{template.name}  ", style="bold cyan")
        line.append_text(safe_line(template.body, "", 60))
        extras = [name for name, on in (("close_session", template.close_session),
                                        ("reprocess", bool(template.reprocess)), ("tags", bool(template.tags))) if on]
        if extras:
            line.append("  + " + ", ".join(extras), style="dim")
        return line

    @property
    def offering(self) -> bool:
        return bool(self._offered) and self.query_one("#template-list", OptionList).display

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("fill_template", "template_cursor", "close_templates"):
            return self.offering
        return True

    def action_template_cursor(self, delta: int) -> None:
        listing = self.query_one("#template-list", OptionList)
        current = listing.highlighted or 0
        listing.highlighted = max(0, min(len(self._offered) - 1, current + delta))

    def action_close_templates(self) -> None:
        self._offered = []
        self.query_one("#template-list", OptionList).display = False

    def action_fill_template(self) -> None:
        listing = self.query_one("#template-list", OptionList)
        index = listing.highlighted or 0
        typed = self.draft.reply if self.draft.reply.startswith("/") else self.draft.tags
        exact = next((t for t in self._offered if "/" + t.name.lower() == typed.strip().lower()), None)
        template = exact or (self._offered[index] if index < len(self._offered) else None)
        if template is not None:
            self.apply_template(template)

    def template_context(self, item: HeldItem) -> dict[str, str]:
        contact = self.contact if self.contact is not None and self.contact.phone == _phone_of(item) else None
        return placeholder_context(item.record.parsed, phone=_phone_of(item), app=item.record.app,
                                   contact_tags=contact.tags if contact is not None else ())

    def apply_template(self, template: Template) -> bool:
        """Fill the composer from `template` for the current item (placeholders filled, so
        the operator sees exactly what goes out); False, with the reason shown, if it cannot."""
        item = self.item
        if item is None or not self.answerable:
            return False
        try:
            filled = fill(template, self.template_context(item))
        except TemplateError as exc:
            self.notify(str(exc), title="Template not used", severity="error")
            return False
        self.action_close_templates()
        with self.prevent(Input.Changed, Checkbox.Changed):
            self.query_one("#reply", Input).value = filled.reply
            self.query_one("#close-session", Checkbox).value = filled.close_session
            self.query_one("#reprocess", Input).value = filled.reprocess
            self.query_one("#tags", Input).value = filled.tags
        for field_id in ("#reply", "#tags"):
            self.query_one(field_id, Input).cursor_position = len(self.query_one(field_id, Input).value)
        self._last_typed = time.monotonic()
        self._refresh_live()
        return True
