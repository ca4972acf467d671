"""The composer: the operator's answer to one held callback, with a live countdown, a
segment count and a preview of the exact HTTP response body that will be sent.

The composer belongs to one held item at a time and never re-targets a draft: when the
item it answers ends (timed out, caller gone, answered elsewhere), it keeps the draft and
says what happened, answering is no longer possible, and the draft can go out as a new
message to the same phone (`FollowUp`) or be discarded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.binding import Binding
from textual.widgets import Checkbox, Input, OptionList, Static

from data.models import ContactState
from server.backend import HeldItem
from server.sms.contract import CallbackType, Decision, encode_response, parse_tags
from server.sms.segments import count_segments
from server.sms.templates import Template

from ..safe import plain_line, safe_line
from .canned_replies import CannedReplies
from .drafts import Draft, Ending, item_phone
from .steady import SteadyInput, show_text

TYPING_GRACE = 3.0
"""Seconds after the last keystroke during which the composer counts as in use."""
CONFIRM_WINDOW = 10.0
"""Seconds within which a second send confirms a reply to a blacklisted or looping phone."""
REPLY_PLACEHOLDER = "Reply to the texter (enter sends; / for canned replies; ctrl+o sends empty)"
IDLE_PLACEHOLDER = "(no text to answer)"

class Composer(CannedReplies, Vertical):
    """Set `item` to answer it; posts `Submitted` with a validated decision.

    Attributes set by the app: `item`, `contact` (the item's phone's state, for the
    blacklist and loop confirmation) and `viewing` (the phone the thread pane shows)."""

    BINDINGS = [
        Binding("tab", "fill_template", "Fill template", id="composer.fill", show=False,
                tooltip="Fill the composer from the highlighted canned reply"),
        Binding("down", "template_cursor(1)", "Next template", id="composer.template_down", show=False),
        Binding("up", "template_cursor(-1)", "Previous template", id="composer.template_up", show=False),
        Binding("escape", "close_templates", "Close templates", id="composer.templates_close", show=False),
    ]

    # The composer's own widgets redraw what changes; repainting the composer itself would
    # render every one of them again (a third of an answer's frame).
    item: reactive[HeldItem | None] = reactive(None, always_update=True, repaint=False)
    contact: reactive[ContactState | None] = reactive(None, always_update=True, init=False, repaint=False)
    viewing: reactive[str] = reactive("", init=False, repaint=False)

    @dataclass
    class Submitted(Message):
        """The operator sent an answer."""

        seq: int
        """The held exchange being answered."""
        decision: Decision
        """What to answer with (already validated)."""

    @dataclass
    class FollowUp(Message):
        """The operator sends the draft of an ended item as a new message (send_message)."""

        seq: int
        """The ended exchange the draft was written for."""
        phone: str
        """Its texter: the message goes only there."""
        body: str
        """The draft's reply text."""

    @dataclass
    class Discarded(Message):
        """The operator dropped the draft of an ended item."""

        seq: int
        """The ended exchange whose draft was dropped."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._drafts: dict[int, Draft] = {}
        self._endings: dict[int, Ending] = {}
        self._last_typed = 0.0
        self._confirm: tuple[int, float] | None = None
        self.templates: list[Template] = []
        """The canned replies `/` offers (set by the app)."""
        self._offered: list[Template] = []

    def compose(self) -> ComposeResult:
        yield Static(id="composer-context")
        yield Static(id="composer-banner")
        with Horizontal(id="reply-row"):
            yield SteadyInput(placeholder=REPLY_PLACEHOLDER, id="reply")
        yield OptionList(id="template-list")
        yield Static(id="reply-count")
        with Horizontal(id="options-row"):
            yield Checkbox("close_session", id="close-session", tooltip="ctrl+t toggles")
            yield SteadyInput(placeholder="reprocess: text the SL handles as a new message from this phone (ctrl+r)", id="reprocess")
        yield SteadyInput(placeholder="tags, comma-separated: letters, digits, spaces, - and _ (enter sends)", id="tags")
        yield Static(id="preview")

    def on_mount(self) -> None:
        self._apply_item(None)

    # -- state -------------------------------------------------------------------------

    @property
    def draft(self) -> Draft:
        return Draft(
            reply=self.query_one("#reply", Input).value,
            close_session=self.query_one("#close-session", Checkbox).value,
            reprocess=self.query_one("#reprocess", Input).value,
            tags=self.query_one("#tags", Input).value,
        )

    @property
    def has_draft(self) -> bool:
        """True while the operator is in the middle of an answer."""
        return self.item is not None and not self.draft.is_blank

    @property
    def ending(self) -> Ending | None:
        """How the current item ended, or None while it can still be answered."""
        item = self.item
        return self._endings.get(item.seq) if item is not None else None

    @property
    def answerable(self) -> bool:
        return self.item is not None and self.ending is None

    @property
    def in_use(self) -> bool:
        """True while the operator works here: a draft, or a keystroke in the last few seconds.
        The app never moves the selection or the focus away from a composer in use."""
        if self.item is None:
            return False
        return not self.draft.is_blank or time.monotonic() - self._last_typed < TYPING_GRACE

    @property
    def draft_seqs(self) -> set[int]:
        """The items with a draft: kept ones, and the current one while it has text."""
        seqs = set(self._drafts)
        if self.item is not None and not self.draft.is_blank:
            seqs.add(self.item.seq)
        return seqs

    def has_kept_draft(self, seq: int) -> bool:
        return seq in self._drafts

    def forget(self, seq: int) -> None:
        self._drafts.pop(seq, None)
        self._endings.pop(seq, None)

    def item_ended(self, seq: int, outcome: str, at: float) -> None:
        """The exchange `seq` is over. The composer keeps showing it (and its draft) with
        what happened, and answering it is no longer possible; a kept draft of another item
        remembers the ending for when it is reopened."""
        current = self._is_current(seq)
        if not current and seq not in self._drafts:
            return
        self._endings[seq] = Ending(outcome, at)
        if current:
            self._show_context(self.item)
            self._show_banner()
            self._refresh_live()

    def _is_current(self, seq: int) -> bool:
        return self.item is not None and self.item.seq == seq

    def watch_item(self, old: HeldItem | None, new: HeldItem | None) -> None:
        if old is not None and (new is None or old.seq != new.seq):
            draft = self.draft
            if draft.is_blank:
                self._drafts.pop(old.seq, None)
                self._endings.pop(old.seq, None)
            else:
                self._drafts[old.seq] = draft
        if old is None or new is None or old.seq != new.seq:
            self._confirm = None
            self._apply_item(new)

    def take(self, item: HeldItem, viewing: str) -> None:
        """Answer `item` with `viewing`'s conversation on screen: one redraw of what the
        composer shows (setting `item`, then `viewing`, would show and hide the banner
        that says the thread is another phone's, and each asks for a layout pass)."""
        if self.item is None or self.item.seq != item.seq:
            self.set_reactive(Composer.viewing, viewing)  # the new item's redraw shows it
        self.item = item
        self.viewing = viewing

    def watch_contact(self) -> None:
        self._show_context(self.item)

    def watch_viewing(self) -> None:
        self._show_banner()

    def _apply_item(self, item: HeldItem | None) -> None:
        draft = self._drafts.pop(item.seq, Draft()) if item is not None else Draft()
        is_subscription = item is not None and item.record.type == CallbackType.SUBSCRIPTION_CREATED
        reply = self.query_one("#reply", Input)
        tags = self.query_one("#tags", Input)
        with self.prevent(Input.Changed, Checkbox.Changed):
            reply.value = draft.reply
            self.query_one("#close-session", Checkbox).value = draft.close_session
            self.query_one("#reprocess", Input).value = draft.reprocess
            tags.value = draft.tags
        # Only what changes is set: each change restyles the composer (Stylesheet.update_nodes
        # was most of a send's cost with 1,000 texts held).
        for selector, shown in (("#reply-row", not is_subscription), ("#reply-count", not is_subscription),
                                ("#options-row", not is_subscription), ("#tags", is_subscription)):
            widget = self.query_one(selector)
            if widget.display != shown:
                widget.display = shown
        self._accept_keys(item is not None)
        self.action_close_templates()
        self._show_context(item)
        self._show_banner()
        self._refresh_live()

    def _accept_keys(self, accepting: bool) -> None:
        """With nothing to answer, the fields take no focus (so no key lands in them and
        none can run on into the next text) and the reply field says why. Not `disabled`:
        that restyles each field and its parts twice per text when one at a time comes and
        is answered (a fifth of the console's time per text)."""
        fields = (*self.query(Input), self.query_one("#close-session", Checkbox))
        if fields[0].can_focus == accepting:
            return
        for field in fields:
            field.can_focus = accepting
        reply = self.query_one("#reply", Input)
        reply.placeholder = REPLY_PLACEHOLDER if accepting else IDLE_PLACEHOLDER
        if not accepting and self.screen.focused in fields:
            self.screen.set_focus(None)

    # -- what the operator reads ---------------------------------------------------------

    def _show_context(self, item: HeldItem | None) -> None:
        context = self.query_one("#composer-context", Static)
        if item is None:
            # One line at 80 columns, as "Answering ..." is: no layout pass as texts come and go.
            show_text(context, Text("Nothing to answer. Held texts come up here.", style="dim"))
            return
        record = item.record
        parsed = record.parsed
        text = Text(end="")
        phone = item_phone(item) or "?"
        if record.type == CallbackType.SUBSCRIPTION_CREATED:
            text.append("New subscriber ", style="bold")
            text.append_text(safe_line(phone, "bold"))
            text.append(": answer with tags for the subscription, or ctrl+o for none.")
        else:
            text.append("Answering ", style="bold")
            text.append_text(safe_line(phone, "bold"))
        text.append(f"  #{record.seq}", style="dim")
        text.append_text(self._countdown(item))
        if record.app:
            text.append("  app: ", style="dim")
            text.append_text(safe_line(record.app, "cyan", 24))
        if parsed.get("tag"):
            text.append("  thread tag: ", style="dim")
            text.append_text(safe_line(str(parsed["tag"]), "cyan", 24))
        notes: list[tuple[str, str]] = []
        contact = self.contact
        if contact is not None and contact.phone == item_phone(item):
            if contact.blacklisted:
                notes.append(("This phone opted out (blacklisted): a reply asks for confirmation.", "bold red"))
            if contact.loop_flagged:
                notes.append(("Auto-reply loop flagged for this phone: a reply asks for confirmation.", "bold red"))
        if parsed.get("auto_subscribe"):
            notes.append(("auto_subscribe: the SL will subscribe this texter and send its own confirmation, so a reply makes two messages.", "yellow"))
        if parsed.get("auto_responded"):
            notes.append(("auto_responded: the texter already got the keyword's automatic response.", "yellow"))
        if item.out_of_session:
            notes.append(("The session was closed earlier: this message came out of session (dedicated SMSC) or by keyword.", "yellow"))
        for warning in record.warnings:
            notes.append(("contract: " + plain_line(warning, 200), "red"))
        for note, style in notes:
            text.append("\n⚠ ", style=style)
            text.append(note, style=style)
        show_text(context, text)

    def _countdown(self, item: HeldItem) -> Text:
        ending = self._endings.get(item.seq)
        if ending is not None:
            return Text("  ended", style="bold red")
        left = item.deadline - time.time()
        style = "bold red" if left < 5 else "bold yellow" if left < 10 else "bold green"
        return Text(f"  {max(0.0, left):.0f}s left", style=style)

    def _show_banner(self) -> None:
        """The line that says what the operator must know before pressing a key: the item
        ended, or the thread pane shows another phone than the one being answered."""
        banner = self.query_one("#composer-banner", Static)
        item = self.item
        text = Text(end="")
        ending = self.ending
        if item is not None and ending is not None:
            phone = plain_line(item_phone(item), 20)
            text.append(f"#{item.seq} {ending.describe()}. ", style="bold red")
            if self.viewing and self.viewing != item_phone(item):
                text.append(f"The conversation shows {plain_line(self.viewing, 20)}. ", style="bold yellow")
            if self.draft.text:
                text.append(f"f6 sends this draft to {phone} as a new message; escape discards it.", style="bold")
            else:
                text.append(f"f6 writes to {phone} as a new message; ctrl+n goes to the next.", style="bold")
        elif item is not None and self.viewing and self.viewing != item_phone(item):
            text.append(f"The conversation shows {plain_line(self.viewing, 20)}; this answer goes to "
                        f"{plain_line(item_phone(item), 20)}.", style="bold yellow")
        if banner.display != bool(text.plain):
            banner.display = bool(text.plain)
        show_text(banner, text)

    def tick(self) -> None:
        """Redraw the countdown (called once a second)."""
        if self.item is not None:
            self._show_context(self.item)

    # -- live feedback -----------------------------------------------------------------

    def decision(self) -> tuple[Decision | None, str | None]:
        """The answer as it stands, or (None, reason) when it is not valid."""
        draft = self.draft
        item = self.item
        if item is not None and item.record.type == CallbackType.SUBSCRIPTION_CREATED:
            tags, error = parse_tags(draft.tags)
            if error is not None:
                return None, error
            return Decision(tags=tags), None
        reply = draft.reply if draft.reply.strip() else ""
        reprocess = draft.reprocess if draft.reprocess.strip() else ""
        return Decision(reply=reply, close_session=draft.close_session, reprocess=reprocess), None

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _changed(self, event: Input.Changed | Checkbox.Changed) -> None:
        self._last_typed = time.monotonic()
        self._confirm = None
        if self.ending is not None:
            self._show_banner()
        if isinstance(event, Input.Changed) and event.input.id in ("reply", "tags"):
            self._offer_templates(event.value)
        self._refresh_live()

    @on(OptionList.OptionSelected, "#template-list")
    def _template_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if 0 <= event.option_index < len(self._offered):
            self.apply_template(self._offered[event.option_index])

    def _refresh_live(self) -> None:
        count = self.query_one("#reply-count", Static)
        preview = self.query_one("#preview", Static)
        item = self.item
        reply = self.query_one("#reply", Input).value
        segments = count_segments(reply)
        show_text(count, Text(segments.summary(), style="dim" if segments.segments <= 1 else "yellow"),
                  layout=False)  # one line, always
        if item is None:
            show_text(preview, "")
            return
        line = Text("Response → ", style="bold", end="")
        decision, error = self.decision()
        if self.ending is not None:
            line.append("none: this exchange is over" + (" (f6 sends the draft as a new message)" if self.draft.text else ""),
                        style="red")
        elif decision is None:
            line.append(error or "invalid", style="red")
        else:
            encoded = encode_response(item.record.type, decision)
            if encoded.body:
                line.append(f"200 {encoded.content_type}  ", style="dim")
                line.append_text(safe_line(encoded.body, "green"))
            elif item.record.type == CallbackType.INCOMING_MESSAGE:
                # One line at 80 columns: the preview keeps its height as the operator starts typing.
                line.append("none yet (ctrl+o answers empty)", style="dim")
            else:
                line.append("200, empty body (no tags)", style="dim")
        show_text(preview, line)

    # -- actions -----------------------------------------------------------------------

    def toggle_close_session(self) -> None:
        box = self.query_one("#close-session", Checkbox)
        if self.item is not None:
            box.value = not box.value

    def _focus_now(self, selector: str) -> None:
        # Widget.focus() is deferred: keys typed right after ctrl+r (fast typists, pastes,
        # tmux send-keys) would land in the old field. Move the focus before the next key.
        self.screen.set_focus(self.query_one(selector, Input))

    def focus_reply(self) -> None:
        item = self.item
        if item is not None and item.record.type == CallbackType.SUBSCRIPTION_CREATED:
            self._focus_now("#tags")
        else:
            self._focus_now("#reply")

    def focus_reprocess(self) -> None:
        self._focus_now("#reprocess")

    def submit(self, *, empty: bool = False) -> None:
        """Validate and post `Submitted`; a bad answer is refused with a one-line reason.

        An empty answer to a message goes out only when asked for (`empty`, ctrl+o): a stray
        enter must not answer a texter with silence. A reply to a phone that opted out or is
        flagged for an auto-reply loop is sent on the second request within CONFIRM_WINDOW."""
        item = self.item
        if item is None:
            self.notify("No held callback is selected.", severity="warning")
            return
        ending = self.ending
        if ending is not None:
            self.notify(f"#{item.seq} {ending.describe()}: it cannot be answered any more."
                        + (" f6 sends the draft as a new message." if self.draft.text else ""),
                        title="Not sent", severity="warning")
            return
        if empty:
            decision: Decision | None = Decision()
        else:
            decision, error = self.decision()
            if decision is None:
                self.notify(error or "invalid answer", title="Not sent", severity="error")
                return
            if item.record.type == CallbackType.INCOMING_MESSAGE and decision.is_empty:
                self.notify("The reply is empty: type one, or press ctrl+o to answer with nothing.",
                            title="Not sent", severity="warning", timeout=4)
                return
        if not empty and not self._confirmed(item):
            return
        self.post_message(self.Submitted(item.seq, decision))

    def _confirmed(self, item: HeldItem) -> bool:
        contact = self.contact
        if contact is None or contact.phone != item_phone(item):
            return True
        risk = ("opted out (blacklisted)" if contact.blacklisted
                else "is flagged for an auto-reply loop" if contact.loop_flagged else "")
        if not risk:
            return True
        now = time.monotonic()
        if self._confirm is not None and self._confirm[0] == item.seq and now - self._confirm[1] < CONFIRM_WINDOW:
            self._confirm = None
            return True
        self._confirm = (item.seq, now)
        self.notify(f"{plain_line(item_phone(item), 20)} {risk}. Press enter again to send anyway.",
                    title="Confirm", severity="warning", timeout=CONFIRM_WINDOW)
        return False

    def follow_up(self) -> bool:
        """Post `FollowUp` for the ended item's draft; False when there is nothing to send."""
        item = self.item
        if item is None or self.ending is None or not self.draft.text:
            return False
        self.post_message(self.FollowUp(item.seq, item_phone(item), self.draft.text))
        return True

    def discard(self) -> bool:
        """Drop the draft of an ended item; False when the item can still be answered."""
        item = self.item
        if item is None or self.ending is None:
            return False
        self.clear()
        self.post_message(self.Discarded(item.seq))
        return True

    def clear(self) -> None:
        with self.prevent(Input.Changed, Checkbox.Changed):
            for widget in self.query(Input):
                widget.value = ""
            self.query_one("#close-session", Checkbox).value = False
        self._refresh_live()
        self._show_banner()

    @on(Input.Submitted)
    def _enter(self, event: Input.Submitted) -> None:
        event.stop()
        if self.offering:
            self.action_fill_template()  # "/hours" then enter fills; the next enter sends
            return
        self.submit()
