"""The desk's actions on the console: the queue's order, bulk answers with a template, canned
replies, notes, copying, search and help. Mixed into `SwitchboardApp` (tui/app.py), whose state they use."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from server.backend import AnswerRefused, HeldItem
from server.sms.contract import CallbackType, Decision, parse_tags
from server.sms.templates import Template, TemplateError, fill

from .clipboard import copy_text
from .safe import plain_line
from .screens.help import HelpScreen
from .screens.search import SearchScreen
from .screens.confirm import ConfirmScreen
from .screens.note import NoteScreen
from .screens.pick_template import PickTemplateScreen
from .screens.templates import TemplatesScreen
from .widgets.composer import Composer
from .widgets.held_queue import ORDERS, HeldQueue
from .widgets.phone_list import PhoneList

if TYPE_CHECKING:
    from .app import SwitchboardApp

    _Base = SwitchboardApp
else:
    _Base = object


LAYOUTS = {
    "full": "all panes",
    "no-events": "without the events pane",
    "focus": "queue, conversation and reply only",
}
"""The layouts ctrl+l goes through (app.tcss hides panes by the screen's `-layout-*` class)."""


def template_decision(template: Template, item: HeldItem, context: dict[str, str]) -> Decision | None:
    """The answer `template` makes for `item`, or None when it cannot be filled."""
    try:
        filled = fill(template, context)
    except TemplateError:
        return None
    if item.record.type == CallbackType.SUBSCRIPTION_CREATED:
        tags, error = parse_tags(filled.tags)
        return Decision(tags=tags) if error is None else None
    reply = filled.reply if filled.reply.strip() else ""
    return Decision(reply=reply, close_session=filled.close_session,
                    reprocess=filled.reprocess if filled.reprocess.strip() else "")


class DeskActions(_Base):
    def action_cycle_order(self) -> None:
        """ctrl+y: oldest first → least time left first → newest first; remembered."""
        queue = self.query_one(HeldQueue)
        names = list(ORDERS)
        queue.order = names[(names.index(queue.order) + 1) % len(names)]
        self.run_worker(partial(self.backend.save_setting, "order", queue.order), group="settings")
        self._update_counts()
        self.notify(f"Queue: {ORDERS[queue.order]}", timeout=2)

    def action_cycle_layout(self) -> None:
        """ctrl+l: all panes → without the events → queue, conversation and reply; remembered."""
        names = list(LAYOUTS)
        layout = names[(names.index(self.pane_layout) + 1) % len(names)]
        self.apply_layout(layout)
        self.run_worker(partial(self.backend.save_setting, "layout", layout), group="settings")
        self.notify(f"Layout: {LAYOUTS[layout]}", timeout=2)

    def apply_layout(self, layout: str) -> None:
        screen = self.screen_stack[0]
        for name in LAYOUTS:
            screen.set_class(name == layout and name != "full", f"-layout-{name}")
        self.pane_layout = layout

    def action_bulk_answer(self) -> None:
        """ctrl+g: answer the marked conversations, or every waiting text, with one template.

        Each phone gets the template once, on its oldest waiting text (placeholders filled
        for that text); its other waiting texts are answered empty, so nobody gets the same
        reply twice and every held request gets its answer."""
        queue = self.query_one(HeldQueue)
        phones = [phone for phone in queue.conversations if phone in queue.marked] or list(queue.conversations)
        if not phones:
            self.notify("No held texts to answer.", timeout=2)
            return
        texts = sum(len(queue.waiting(phone)) for phone in phones)
        templates = self.query_one(Composer).templates

        def picked(template: Template | None) -> None:
            if template is None:
                return
            others = texts - len(phones)
            question = (f"Answer {texts} text{'s' if texts != 1 else ''} from {len(phones)} "
                        f"phone{'s' if len(phones) != 1 else ''} with /{template.name}?")
            if others:
                question += (f" Each phone gets it once; the {others} other waiting "
                             f"text{'s are' if others != 1 else ' is'} answered empty.")

            def confirmed(yes: bool | None) -> None:
                if yes:
                    self.run_worker(partial(self._answer_in_bulk, phones, template), group="bulk", name="bulk-answer")

            self.push_screen(ConfirmScreen(question, yes="enter: answer them", no="escape: cancel"), confirmed)

        whom = (f"the {len(phones)} marked conversation{'s' if len(phones) != 1 else ''}" if queue.marked
                else f"every waiting text ({texts} from {len(phones)} phone{'s' if len(phones) != 1 else ''})")
        self.push_screen(PickTemplateScreen(templates, f"Answer {whom} with which template?"), picked)

    async def _answer_in_bulk(self, phones: list[str], template: Template) -> None:
        queue = self.query_one(HeldQueue)
        composer = self.query_one(Composer)
        sent = refused = 0
        for phone in phones:
            for n, item in enumerate(list(queue.waiting(phone))):
                decision = Decision() if n else template_decision(template, item, composer.template_context(item))
                if decision is None:
                    self.notify(f"/{template.name} cannot be filled for {plain_line(phone, 20)}", severity="error")
                    refused += 1
                    continue
                outcome = await self.backend.answer(item.seq, decision)
                if isinstance(outcome, AnswerRefused):
                    refused += 1
                    continue
                sent += 1
                composer.forget(item.seq)
                if composer.item is not None and composer.item.seq == item.seq:
                    composer.clear()
                    composer.item = None
                queue.remove({item.seq})
        queue.marked.clear()
        for phone in phones:  # answered texts are not unread: the operator dealt with them
            contact = await self.backend.contact(phone)
            if contact is not None and self._screen_up():
                self.query_one(PhoneList).mark_seen(phone, contact.messages_in)
                await self.backend.mark_read(phone, contact.messages_in)
        self.notify(f"Answered {sent} with /{template.name}" + (f"; {refused} could not be" if refused else ""),
                    timeout=4)
        self._auto_select(after_send=True)
        self._update_counts()

    def action_note(self) -> None:
        phone = self._phone
        if not phone:
            self.notify("Open a conversation first.", timeout=2)
            return

        def written(text: str | None) -> None:
            if text:
                self.run_worker(partial(self._add_note, phone, text), group="notes")

        self.push_screen(NoteScreen(phone), written)

    async def _add_note(self, phone: str, text: str) -> None:
        await self.backend.add_note(phone, text)
        if self._phone == phone:
            self._show_phone(phone)

    def action_templates(self) -> None:
        def closed(_: None) -> None:
            self.run_worker(partial(self._load_templates), group="templates", exclusive=True)

        self.push_screen(TemplatesScreen(self.backend), closed)

    async def _load_templates(self) -> None:
        templates = await self.backend.templates()
        if self._screen_up():
            self.query_one(Composer).templates = templates

    def action_copy(self, what: str) -> None:
        phone = self._phone
        text = ""
        item = self.query_one(Composer).item
        if what == "phone":
            text = phone
        elif what == "body":
            if item is not None:
                text = str(item.record.parsed.get("body", ""))
            else:
                entries = [e for e in self._entries if e.direction == "in"]
                text = entries[-1].text if entries else ""
        elif what == "response":
            entries = [e for e in self._entries if e.direction == "out"]
            text = entries[-1].text if entries else ""
        if not text:
            self.notify(f"Nothing to copy ({what}).", severity="warning", timeout=3)
            return
        self.notify(copy_text(self, text), title=f"Copy {what}", timeout=3)

    def action_search(self) -> None:
        def chosen(phone: str | None) -> None:
            if phone:
                self.open_phone(phone)

        self.push_screen(SearchScreen(self.backend.search), chosen)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
        else:
            self.push_screen(HelpScreen())
