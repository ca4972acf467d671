"""The operator console: subscribes to the broker, shows what arrives in batches, and
answers held callbacks through the broker. The gateway runs in this app's own loop."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Iterable

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static

from data.models import CallbackRecord, ThreadEntry
from server.backend import (
    BrokerEvent,
    CallbackReceived,
    ConsoleBackend,
    ExchangeEnded,
    ExchangeHeld,
    HeldItem,
    RequestRejected,
)
from server.config import Config
from server.process.quit_signals import QuitSignals

from .answering import AnsweringActions
from .conversation import ConversationActions
from .quitting import Quitting
from .desk import LAYOUTS, DeskActions
from .outbound import OutboundActions
from server.process.gc_policy import IdleCollector
from .safe import plain_line
from .terminal_driver import terminal_driver
from .widgets.composer import Composer
from .widgets.contact_panel import ContactPanel
from .widgets.event_log import EventLog, LogEntry, rejected_line
from .widgets.held_queue import ORDERS, HeldQueue
from .widgets.phone_list import PhoneList
from .widgets.status_bar import StatusBar
from .widgets.key_bar import KeyBar
from .widgets.lines import TextLines
from .widgets.steady import SteadyScreen
from .widgets.thread_view import ThreadView

FLUSH_DELAY = 0.03
"""Events that change rows are applied in batches at most this long after the first one."""
QUIET_EVERY = 0.1
"""Callbacks that change no row (the log, the counters) are shown at most this often: a
flood of delivery reports then costs a list append each, and a few frames a second."""
FLAG_TYPES = frozenset({"phone_blacklisted", "phone_unblacklisted", "auto_reply_loop"})
"""Callbacks that need no answer but mark conversations (in the fast lane)."""
PALETTE_TITLES = {
    "send": "Send the answer",
    "send_empty": "Send an empty answer",
    "toggle_close": "Toggle close_session",
    "reprocess": "Reprocess: type text the SL handles as new",
    "next_held": "Next conversation",
    "previous_held": "Previous conversation",
    "cycle_order": "Change the queue order",
    "bulk_answer": "Answer marked or all waiting texts with a template",
    "copy_phone": "Copy the phone number",
    "copy_body": "Copy the message text",
    "copy_response": "Copy the last response sent",
    "search": "Search the history",
    "new_message": "New message (send_message)",
    "close_session": "Close the session (close_sessions)",
    "discard": "Discard the ended draft",
    "templates": "Canned replies",
    "cycle_layout": "Change the layout (which panes show)",
    "note": "Write a note on the phone",
    "help": "Help: keys and panels",
}
"""What the command palette calls each action (the footer keeps the short descriptions)."""
BELL_EVERY = 5.0
"""Seconds between bells: a crowd texting at once rings once, not per batch."""
MISSED_OUTCOMES = ("timed_out", "caller_gone", "overflow")
"""Endings that left the texter without the operator's answer: kept as missed rows."""


class SwitchboardApp(ConversationActions, AnsweringActions, Quitting, DeskActions, OutboundActions, App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "Switchboard"
    # Under 110 columns (an 80x24 terminal) the contact panel gives its room to the
    # conversation; under 32 rows the event log shrinks (app.tcss).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]

    BINDINGS = [
        # f1 first: the footer shows keys in this order, and an 80-column footer still has it.
        Binding("f1", "help", "Help", id="help", priority=True),
        Binding("ctrl+s", "send", "Send", id="send", priority=True, tooltip="Send the answer"),
        Binding("ctrl+o", "send_empty", "Send empty", id="send_empty", priority=True,
                tooltip="Answer with an empty response: nothing goes to the texter"),
        Binding("ctrl+t", "toggle_close", "close_session", id="toggle_close", priority=True,
                tooltip="Toggle close_session in the answer"),
        Binding("ctrl+r", "focus_reprocess", "Reprocess", id="reprocess", priority=True,
                tooltip="Type text the SL will handle as a new message"),
        Binding("ctrl+n,f8", "next_held", "Next", id="next_held", priority=True),
        Binding("ctrl+b,f7", "previous_held", "Prev", id="previous_held", priority=True),
        Binding("ctrl+y", "cycle_order", "Order", id="cycle_order", priority=True,
                tooltip="Order the queue: oldest first, least time left first, newest first"),
        Binding("ctrl+g", "bulk_answer", "Bulk answer", id="bulk_answer", priority=True,
                tooltip="Answer the marked conversations (space in the queue), or every waiting text, with a template"),
        Binding("f2", "copy('phone')", "Copy phone", id="copy_phone", show=False),
        Binding("f3", "copy('body')", "Copy text", id="copy_body", show=False),
        Binding("f4", "copy('response')", "Copy response", id="copy_response", show=False),
        Binding("f5", "search", "Search", id="search", tooltip="Search the whole history"),
        Binding("f6", "new_message", "New message", id="new_message",
                tooltip="Send a message to any phone through the SL API"),
        Binding("f9", "close_session", "Close session", id="close_session", show=False,
                tooltip="Close the selected phone's session through the SL API (close_sessions)"),
        Binding("escape", "discard", "Discard draft", id="discard", show=False,
                tooltip="Drop the draft of a text that can no longer be answered"),
        Binding("f10", "templates", "Templates", id="templates",
                tooltip="Create, edit and delete canned replies (/name then tab in a reply)"),
        Binding("ctrl+l", "cycle_layout", "Layout", id="cycle_layout", show=False, priority=True,
                tooltip="Panes: all, without the events, or only the queue, conversation and reply"),
        Binding("f12", "note", "Note", id="note", show=False,
                tooltip="Write a note on the conversation's phone (kept, never sent)"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True,
                tooltip="Answer every held request with the fallback, then quit"),
    ]

    def __init__(self, config: Config, backend: ConsoleBackend) -> None:
        # A terminal that goes away never blocks the way out (tui/terminal_driver.py)
        super().__init__(driver_class=terminal_driver())
        self._gc = IdleCollector()
        self.config = config
        self.backend = backend
        self._buffer: list[BrokerEvent] = []
        self._quiet: list[LogEntry] = []
        """Log entries (and the callbacks behind them) waiting for the quiet lane."""
        self._quiet_timer: Timer | None = None
        self._flush_timer: Timer | None = None
        self._flush_soon = False
        self._flushed_at = 0.0
        self._unsubscribe = backend.subscribe(self._on_broker_event)
        self._phone = ""
        self._entries: list[ThreadEntry] = []
        """The thread on screen, as last read."""
        self._thread_ids: set[str] = set()
        self._stopping = False
        self._signals = QuitSignals()
        self._rung = 0.0
        """When the bell last rang (monotonic)."""
        self._waiting_shown = -1
        """The held count the window title last showed."""
        self._phones_dirty = False
        self.pane_layout = "full"
        """Which panes show (desk.LAYOUTS), the operator's choice, remembered."""
        self._first_live_seq: int | None = None
        """The first callback the console heard live: the history read at start stops before it."""
        self._opened_missed = 0
        """The missed text the operator opened from the queue (it stays in the composer)."""
        self._unasked = False
        """The thread on screen came up by itself at start: showing it marks nothing read."""
        self._browsing = False
        """The operator opened a conversation (search, phone list): auto-selection waits."""
        self._last_key = 0.0
        """When the operator last pressed a key (monotonic)."""

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every notification as plain text, whatever the caller asks (widgets included).

        Messages carry text from the network (an SL API error's body, a phone number): with
        Textual's default markup, "[@click=app.quit]" became an action and a stray "[/]"
        raised MarkupError and took the console down."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every action of the console is a command in the palette (ctrl+p), by its name, once.
        Textual's key panel ('Keys') is left out: f1's help says more."""
        for command in super().get_system_commands(screen):
            if command.title != "Keys":
                yield command
        for binding in self.BINDINGS:
            if not isinstance(binding, Binding) or binding.action == "quit":
                continue
            if self.check_action(binding.action.split("(")[0], ()) is None:
                continue
            keys = binding.key.replace(",", " / ")
            title = PALETTE_TITLES.get(binding.id or "", binding.description)
            yield SystemCommand(
                f"{title} ({keys})",
                binding.tooltip or binding.description,
                partial(self.run_action, binding.action),
            )

    # -- layout ------------------------------------------------------------------------

    def get_default_screen(self) -> Screen:
        return SteadyScreen(id="_default")

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield TextLines("Held", id="queue-title", classes="title")
                yield HeldQueue(id="queue")
                yield Static("Phones — by recent activity", id="phones-title", classes="title")
                yield PhoneList(id="phones")
            with Vertical(id="center"):
                yield TextLines("Conversation", id="thread-title", classes="title")
                yield ThreadView(id="thread")
                yield Composer(id="composer")
            with Vertical(id="right"):
                yield Static("Contact", classes="title")
                yield ContactPanel(id="contact")
        yield Static("Events (callbacks that need no answer)", id="events-title", classes="title")
        yield EventLog(id="events")
        yield StatusBar(id="status")
        yield KeyBar()

    async def on_mount(self) -> None:
        status = self.query_one(StatusBar)
        self._gc.take_over()
        try:
            started = await self.backend.start()
        except OSError as exc:
            self.exit(return_code=2, message=f"switchboard: {exc.strerror or exc}")
            return
        status.gateway_url = started.url
        status.key_state = started.key_state
        status.notice = started.notice
        self._signals.catch(self._quit_on_signal)
        self.run_worker(partial(self._load_history), group="history", name="load-history")
        self.set_interval(1.0, self._tick)
        self._tick()
        composer = self.query_one(Composer)
        # Send, send empty, close_session and reprocess are usable only with an item up
        # (check_action): the footer shows them dimmed otherwise. It rereads the bindings
        # only when told (the KeyBar then redraws only if the keys differ).
        self.watch(composer, "item", lambda _item: self.refresh_bindings(), init=True)
        if composer.item is not None:
            composer.focus_reply()
        else:
            self.query_one(HeldQueue).focus()

    @property
    def gateway_url(self) -> str:
        return self.backend.status().url

    async def _load_history(self) -> None:
        await self._load_templates()
        seen = await self.backend.read_marks()
        if not self._screen_up():
            return  # quitting already: the widgets may be gone
        self.query_one(PhoneList).seen = seen
        order = await self.backend.setting("order", "oldest")
        if order in ORDERS and self._screen_up():
            self.query_one(HeldQueue).order = order
        layout = await self.backend.setting("layout", "full")
        if layout in LAYOUTS and self._screen_up():
            self.apply_layout(layout)
        theme = await self.backend.setting("theme", "")
        if theme in self.available_themes and self._screen_up():
            self.theme = theme
        self.watch(self, "theme", self._theme_chosen, init=False)
        records = await self.backend.recent_callbacks(200)
        # Callbacks recorded since the console subscribed are in the log already (live).
        first_live = self._first_live_seq
        lines: list[LogEntry] = [record for record in records
                                 if not record.held and (first_live is None or record.seq < first_live)]
        if not self._screen_up():
            return
        if lines:
            self.query_one(EventLog).add_history(lines)
        contacts = await self.backend.contacts(self.query_one(PhoneList).limit)
        if not self._screen_up():
            return
        self.query_one(PhoneList).show(contacts)
        flags = self.query_one(HeldQueue).flags
        for contact in contacts:
            if contact.blacklisted or contact.loop_flagged:
                flags[contact.phone] = "blacklisted" if contact.blacklisted else "loop"
        if not self._phone and contacts:
            self._unasked = True  # shown at start, not chosen: its texts stay unread
            self._show_phone(contacts[0].phone)
        self._show_notices()

    def _theme_chosen(self, theme: str) -> None:
        """The palette's theme choice is kept for the next start."""
        self.run_worker(partial(self.backend.save_setting, "theme", theme), group="settings")

    def _show_notices(self) -> None:
        for notice in self.backend.notices():
            self.notify(plain_line(notice, 200), title="History", severity="warning", timeout=10)

    # -- broker events, in batches -----------------------------------------------------

    def _on_broker_event(self, event: BrokerEvent) -> None:
        """Events are applied in batches. A held text comes at the next loop pass (a person
        waits for it; what else arrived in that pass comes along), other endings and flags
        within FLUSH_DELAY; a callback that changes no row (a delivery report) only joins
        the quiet lane: its log line and the counters show within QUIET_EVERY."""
        if isinstance(event, CallbackReceived) and self._first_live_seq is None:
            self._first_live_seq = event.record.seq
        if isinstance(event, CallbackReceived) and event.record.type not in FLAG_TYPES:
            self._quiet.append(event.record)
            if self._quiet_timer is None:
                self._quiet_timer = self.set_timer(QUIET_EVERY, self._apply_quiet, name="flush-quiet")
            return
        self._buffer.append(event)
        if isinstance(event, ExchangeHeld) and time.monotonic() - self._flushed_at >= FLUSH_DELAY:
            # After a quiet spell a held text is shown at once; in a flood, batches stay
            # FLUSH_DELAY apart (each one re-sorts the queue's conversations).
            if not self._flush_soon:
                self._flush_soon = True
                asyncio.get_running_loop().call_soon(self._apply_events)
        elif self._flush_timer is None and not self._flush_soon:
            self._flush_timer = self.set_timer(FLUSH_DELAY, self._apply_events, name="flush-events")

    def _apply_events(self) -> None:
        self._flush_soon = False
        self._flushed_at = time.monotonic()
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None
        if not self._screen_up() or not self._buffer:
            return
        self._gc.activity()
        events, self._buffer = self._buffer, []
        queue = self.query_one(HeldQueue)
        held: list[HeldItem] = []
        ended: dict[int, ExchangeEnded] = {}
        touched: set[str] = set()
        for event in events:
            if isinstance(event, ExchangeHeld):
                held.append(event.item)
                touched.update(event.item.record.phones)
            elif isinstance(event, ExchangeEnded):
                ended[event.seq] = event
                if event.response is not None and event.response.phone:
                    touched.add(event.response.phone)
            elif isinstance(event, CallbackReceived):  # an opt-out or a loop: it marks rows
                self._quiet.append(event.record)
                touched.update(event.record.phones)
                self._note_flags(event.record.type, event.record.phones)
            elif isinstance(event, RequestRejected):
                self._quiet.append(rejected_line(event.status, event.reason, event.peer))
                if event.seq:
                    # The operator's answer was not sent: saying nothing would look sent.
                    self.notify(f"#{event.seq}: the answer did not go out; the SL got HTTP {event.status} "
                                f"({plain_line(event.reason, 120)}) and may send the message again.",
                                title="Not sent", severity="error", timeout=15)
        held = [item for item in held if item.seq not in ended]
        if held:
            queue.add(held)
            self._ring()
        if ended:
            self._on_ended(ended)
        if self._quiet and self._quiet_timer is None:
            self._quiet_timer = self.set_timer(QUIET_EVERY, self._apply_quiet, name="flush-quiet")
        self._after_changes(touched)

    def _apply_quiet(self) -> None:
        """The quiet lane: log lines, what they touch (a phone's thread, the phone list) and
        the counters, at most once per QUIET_EVERY however many callbacks arrived."""
        self._quiet_timer = None
        if not self._screen_up() or not self._quiet:
            return
        entries, self._quiet = self._quiet, []
        touched: set[str] = set()
        thread_ids = self._thread_ids
        for entry in entries:
            if isinstance(entry, CallbackRecord) and entry.type not in FLAG_TYPES:
                touched.update(entry.phones)
                if entry.parsed.get("message_id") in thread_ids:
                    touched.add(self._phone)  # a delivery report on the thread on screen
        self.query_one(EventLog).add(entries)
        self._after_changes(touched)

    def _note_flags(self, kind: str, phones: tuple[str, ...]) -> None:
        """Opt-outs and auto-reply loops mark their conversations in the queue."""
        flags = self.query_one(HeldQueue).flags
        for phone in phones:
            if kind == "phone_blacklisted":
                flags[phone] = "blacklisted"
            elif kind == "auto_reply_loop":
                flags[phone] = "loop"
            elif kind == "phone_unblacklisted" and flags.get(phone) == "blacklisted":
                del flags[phone]

    def _on_ended(self, ended: dict[int, ExchangeEnded]) -> None:
        """Take ended exchanges off the queue. The composer keeps an ended item of its own
        (with its draft) and says what happened; it never moves on by itself."""
        queue = self.query_one(HeldQueue)
        composer = self.query_one(Composer)
        now = time.time()
        mine = composer.item.seq if composer.item is not None else None
        queue.remove(set(ended), missed={
            seq: event.outcome for seq, event in ended.items()
            if event.outcome in MISSED_OUTCOMES and queue.contains(seq)
        }, at=now)
        for seq, event in ended.items():
            composer.item_ended(seq, event.outcome, now)
        if mine is not None and mine in ended:
            queue.select(mine)
            self.refresh_bindings()  # send and send empty no longer apply

    def _after_changes(self, touched: set[str]) -> None:
        if not self._auto_select() and self._phone in touched:
            self._show_phone(self._phone)
        if touched:
            # Rebuilt at most once a second (in _tick): a crowd texting at once must not
            # rebuild the list on every 30 ms batch.
            self._phones_dirty = True
        self._update_counts()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "discard":
            return True if self.query_one(Composer).ending is not None else None
        if action in ("send", "send_empty", "toggle_close", "focus_reprocess"):
            composer = self.query_one(Composer)
            item = composer.item
            if item is None or (action in ("send", "send_empty") and composer.ending is not None):
                return None
            if action in ("toggle_close", "focus_reprocess") and item.record.type != "incoming_message":
                return None  # a subscription is answered with tags only
            return True
        return True

    # -- outbound: the SL API ------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self._gc.activity()
            self._last_key = time.monotonic()
        await super().on_event(event)

    def _tick(self) -> None:
        self._gc.tick()
        if not self._screen_up():
            return
        if self._phones_dirty:
            self._phones_dirty = False
            self._refresh_phones()
        self._auto_select()  # an arrival that waited out the typing grace
        self._show_notices()  # damage the history finds later (a bad line read back) is shown too
        queue = self.query_one(HeldQueue)
        queue.drafts = self.query_one(Composer).draft_seqs
        queue.tick()
        self.query_one(Composer).tick()
        self._update_counts()

    def _update_counts(self) -> None:
        """Counters, not pop-ups: the queue title and the status bar say how many wait and
        how many ended unanswered; the window title tells another window (ring on arrival)."""
        counts = self.backend.status().counts
        self.query_one(StatusBar).counts = counts
        waiting = counts.get("pending", 0)
        missed = counts.get("timed_out", 0) + counts.get("caller_gone", 0) + counts.get("overflow", 0)
        title = Text(f"Held ({waiting})", end="")
        if missed:
            title.append(f" · missed {missed}", style="bold red")
        title.append(f" — {ORDERS[self.query_one(HeldQueue).order]}", style="dim")
        self.query_one("#queue-title", TextLines).show(title)
        if waiting != self._waiting_shown:
            self._waiting_shown = waiting
            self._set_window_title(f"Switchboard - {waiting} waiting" if waiting else "Switchboard")

    def _set_window_title(self, title: str) -> None:
        """The terminal's window title (OSC 2), so another window shows texts are waiting.
        `title` is our own text, never a texter's."""
        # Set without App.title's watcher: that repaints the whole screen, on every arrival
        # and answer; nothing on screen shows it.
        self.set_reactive(App.title, title)
        if not self.is_headless and self._driver is not None:
            self._driver.write(f"\x1b]2;{title}\x07")

    def _ring(self) -> None:
        """The terminal bell for new held texts, at most once per BELL_EVERY seconds."""
        now = time.monotonic()
        if self.config.bell and now - self._rung >= BELL_EVERY:
            self._rung = now
            self.bell()
