"""The composer: the operator's answer to one held callback, with a live segment count
and a preview of the exact HTTP response body that will be sent."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Checkbox, Input, Static

from server.broker import HeldItem
from server.contract import CallbackType, Decision, encode_response, parse_tags
from server.segments import count_segments

from ..safe import plain_line, safe_line
from .steady import show_text


@dataclass
class Draft:
    reply: str = ""
    close_session: bool = False
    reprocess: str = ""
    tags: str = ""

    @property
    def is_blank(self) -> bool:
        return not (self.reply or self.close_session or self.reprocess or self.tags)


class Composer(Vertical):
    """Set `item` to answer it; posts `Submitted` with a validated decision."""

    item: reactive[HeldItem | None] = reactive(None, always_update=True)

    @dataclass
    class Submitted(Message):
        """The operator sent an answer."""

        seq: int
        """The held exchange being answered."""
        decision: Decision
        """What to answer with (already validated)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._drafts: dict[int, Draft] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="composer-context")
        with Horizontal(id="reply-row"):
            yield Input(placeholder="Reply to the texter (enter sends)", id="reply")
        yield Static(id="reply-count")
        with Horizontal(id="options-row"):
            yield Checkbox("close_session", id="close-session", tooltip="ctrl+t toggles")
            yield Input(placeholder="reprocess: text the SL handles as a new message from this phone (ctrl+r)", id="reprocess")
        yield Input(placeholder="tags, comma-separated: letters, digits, spaces, - and _ (enter sends)", id="tags")
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

    def forget(self, seq: int) -> None:
        self._drafts.pop(seq, None)

    def watch_item(self, old: HeldItem | None, new: HeldItem | None) -> None:
        if old is not None and (new is None or old.seq != new.seq):
            draft = self.draft
            if draft.is_blank:
                self._drafts.pop(old.seq, None)
            else:
                self._drafts[old.seq] = draft
        if old is None or new is None or old.seq != new.seq:
            self._apply_item(new)

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
        self.query_one("#reply-row").display = not is_subscription
        self.query_one("#reply-count").display = not is_subscription
        self.query_one("#options-row").display = not is_subscription
        tags.display = is_subscription
        for widget in self.query(Input):
            widget.disabled = item is None
        self.query_one("#close-session", Checkbox).disabled = item is None
        self._show_context(item)
        self._refresh_live()

    def _show_context(self, item: HeldItem | None) -> None:
        context = self.query_one("#composer-context", Static)
        if item is None:
            show_text(context, Text("Nothing to answer. Held callbacks appear in the queue on the left.", style="dim"))
            return
        record = item.record
        parsed = record.parsed
        text = Text(end="")
        phone = record.phones[0] if record.phones else "?"
        if record.type == CallbackType.SUBSCRIPTION_CREATED:
            text.append("New subscriber ", style="bold")
            text.append_text(safe_line(phone, "bold"))
            text.append(": answer with tags for the subscription, or send empty for none.")
        else:
            text.append("Answering ", style="bold")
            text.append_text(safe_line(phone, "bold"))
            text.append(f"  #{record.seq}", style="dim")
        if record.app:
            text.append("  app: ", style="dim")
            text.append_text(safe_line(record.app, "cyan", 24))
        notes: list[tuple[str, str]] = []
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
    def _changed(self) -> None:
        self._refresh_live()

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
        decision, error = self.decision()
        line = Text("Response → ", style="bold", end="")
        if decision is None:
            line.append(error or "invalid", style="red")
        else:
            encoded = encode_response(item.record.type, decision)
            if encoded.body:
                line.append(f"200 {encoded.content_type}  ", style="dim")
                line.append_text(safe_line(encoded.body, "green"))
            else:
                line.append("200, empty body (nothing is sent to the texter)", style="dim")
        show_text(preview, line)

    # -- actions -----------------------------------------------------------------------

    def toggle_close_session(self) -> None:
        box = self.query_one("#close-session", Checkbox)
        if not box.disabled:
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
        """Validate and post `Submitted`; a bad answer is refused with a one-line reason."""
        item = self.item
        if item is None:
            self.notify("No held callback is selected.", severity="warning")
            return
        if empty:
            decision: Decision | None = Decision()
        else:
            decision, error = self.decision()
            if decision is None:
                self.notify(error or "invalid answer", title="Not sent", severity="error")
                return
        self.post_message(self.Submitted(item.seq, decision))

    def clear(self) -> None:
        with self.prevent(Input.Changed, Checkbox.Changed):
            for widget in self.query(Input):
                widget.value = ""
            self.query_one("#close-session", Checkbox).value = False
        self._refresh_live()

    @on(Input.Submitted)
    def _enter(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()
