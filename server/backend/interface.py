"""The one interface between a console and the core: `ConsoleBackend`.

Everything a console needs and nothing else: events to subscribe to, an async answer that
returns its outcome, the held items, counters, the history reads (a phone's thread, its
contact state, the phone list, recent events, search with progress), the SL API calls
(send a message, close a session) and the history's notices. Records cross it as plain
typed data (`data.models`, `server.backend.events`), so a network client can implement it
as well as the in-process `LocalBackend` does; the console never sees a server, a store
or a socket. No method raises across the seam for an expected failure: a refusal is a
value (`AnswerRefused`, `SendOutcome.error`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Protocol, Union

from data.models import CallbackRecord, ContactState, ThreadEntry, ThreadHit, ThreadPage
from server.sms.contract import Decision
from server.sms.templates import Template

from server.backend.events import HeldItem, Subscriber


@dataclass(frozen=True, slots=True)
class AnswerSent:
    """The decision reached the held exchange; its response is on its way to the SL."""

    seq: int


@dataclass(frozen=True, slots=True)
class AnswerRefused:
    """The decision could not be delivered; `reason` is one line for the operator."""

    seq: int
    reason: str


AnswerOutcome = Union[AnswerSent, AnswerRefused]


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What the SL API said to a send_message: its message ids, or why not."""

    phone: str
    """The texter's key (data.phones), under which the send is filed."""
    message_ids: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One step of a history search: the hits found since the previous step."""

    hits: list[ThreadHit]
    scanned: int
    total: int
    done: bool


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """What the status bar shows about the gateway."""

    url: str
    key_state: str
    """Which api_keys are accepted, already safe to show (keys masked)."""
    counts: dict[str, int] = field(default_factory=dict)
    """received, held, answered, timed_out, ..., and pending (held right now)."""
    notice: str = ""
    """A short mark such as DEMO, or a limit worth knowing."""


@dataclass(frozen=True, slots=True)
class Note:
    """An operator's note on a phone: kept with the history, shown, never sent."""

    id: str
    phone: str
    text: str
    at: float


@dataclass(frozen=True, slots=True)
class ReadMark:
    """How many texts in a phone's thread held when the operator last had it on screen:
    the texts in beyond that are unread."""

    phone: str
    seen_in: int


class ConsoleBackend(Protocol):
    """The core as a console sees it. See the module docstring."""

    async def start(self) -> GatewayStatus:
        """Start serving (or connect); raises OSError with a one-line reason if it cannot."""
        ...

    async def stop(self) -> None:
        """Answer every held request with the fallback, then stop. Idempotent."""
        ...

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` on the UI loop for every event from now on; returns unsubscribe."""
        ...

    async def answer(self, seq: int, decision: Decision) -> AnswerOutcome: ...

    def pending(self) -> list[HeldItem]:
        """The held items, oldest first."""
        ...

    def status(self) -> GatewayStatus: ...

    @property
    def can_send(self) -> bool:
        """True when an SL API is configured for send_message and close_sessions."""
        ...

    async def thread(self, phone: str, limit: int = 300) -> list[ThreadEntry]: ...

    async def thread_page(self, phone: str, *, before: int = 0, limit: int = 50) -> ThreadPage:
        """The newest `limit` entries of the phone's conversation older than `before` (an
        entry's `order`; 0: the newest), oldest first, and whether there are older ones
        (`ThreadPage.before` asks for them). Its cost does not grow with the thread."""
        ...

    async def contact(self, phone: str) -> ContactState | None: ...

    async def contacts(self, limit: int = 100) -> list[ContactState]:
        """Phones by recent activity, newest first."""
        ...

    async def recent_callbacks(self, limit: int = 200) -> list[CallbackRecord]: ...

    def search(self, text: str) -> AsyncIterator[SearchPage]:
        """The whole history, newest first, in pages with progress; the last has done=True."""
        ...

    async def send_message(self, phone: str, body: str, *, action_expected: bool = True) -> SendOutcome:
        """send_message through the SL API; the attempt is kept in the phone's thread."""
        ...

    async def close_session(self, phone: str) -> str:
        """close_sessions through the SL API: '' when done, else the reason."""
        ...

    def notices(self) -> list[str]:
        """What the history wants the operator to know (repairs, losses), once each."""
        ...

    async def templates(self) -> list[Template]:
        """The canned replies, by name."""
        ...

    async def save_template(self, template: Template) -> str:
        """Store (or replace, by name) a canned reply: '' when saved, else the reason."""
        ...

    async def delete_template(self, name: str) -> bool: ...

    async def notes(self, phone: str) -> list[Note]:
        """The operator's notes on `phone`, oldest first."""
        ...

    async def add_note(self, phone: str, text: str) -> Note: ...

    async def delete_note(self, note_id: str) -> bool: ...

    async def setting(self, key: str, default: str = "") -> str:
        """A console preference kept in the data directory (order, theme, layout)."""
        ...

    async def save_setting(self, key: str, value: str) -> None: ...

    async def read_marks(self) -> dict[str, int]:
        """Per phone, how many texts in its thread the operator has had on screen."""
        ...

    async def mark_read(self, phone: str, seen_in: int) -> None:
        """`phone`'s thread was on screen holding `seen_in` texts in."""
        ...
