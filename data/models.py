"""The records Switchboard keeps: callbacks in, responses out, outbound sends, and the
per-phone state derived from them. Plain frozen dataclasses; no TinyDB dicts leave `data/`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

AnsweredBy = Literal["operator", "fallback", "auto", "rule"]
"""Who produced a response: the person at the console, the deadline fallback,
an immediate answer for a type that expects none, or a rule."""

Outcome = Literal["answered", "timed_out", "caller_gone", "shutdown", "overflow", "immediate"]
"""How a held exchange ended. `caller_gone` means the SL hung up before an answer."""


@dataclass(slots=True)
class CallbackRecord:
    """One callback as received, with what the contract module made of it.

    Read-only by convention, not `frozen`: one is built for every callback on the ingest
    path, and a frozen dataclass's `__init__` sets each field through `object.__setattr__`
    (1.2 µs for these ten fields, against 0.24 µs). Nothing assigns to a stored record."""

    seq: int
    """Store-assigned, strictly increasing id (0 before it is stored)."""
    received_at: float
    """Unix time the request was read."""
    type: str
    """The `type` field as sent (may be an unknown type)."""
    fields: Mapping[str, str]
    """Every raw field exactly as received (query string and body merged)."""
    parsed: Mapping[str, Any]
    """JSON-safe parsed values (booleans, status name, split phone numbers, ...)."""
    warnings: tuple[str, ...] = ()
    """Contract violations seen in this callback, one line each."""
    phones: tuple[str, ...] = ()
    """Phone numbers this callback is about (one, or several for `session_closed`)."""
    peer: str = ""
    """Remote address of the caller."""
    app: str = ""
    """Display name of the app the `api_key` belongs to (never the key itself)."""
    held: bool = False
    """True when the gateway held the request for an answer."""


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    """The HTTP response that went back for one callback."""

    callback_seq: int
    sent_at: float
    status: int
    body: str
    """The exact response body sent."""
    content_type: str
    answered_by: AnsweredBy
    outcome: Outcome
    latency_ms: float
    phone: str = ""
    decision: Mapping[str, Any] = field(default_factory=dict)
    """What the operator decided: `reply`, `close_session`, `reprocess`, `tags`."""


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """A message the operator sent through the SL API (`send_message`)."""

    seq: int
    sent_at: float
    phone: str
    body: str
    message_ids: tuple[str, ...] = ()
    """One id per part; negative ids are the SL's refusals (-1, -2, -3)."""
    error: str = ""
    """Why the SL refused or could not be reached; empty on success."""


DeliveryState = Literal["sent", "pending", "queued", "delivered", "failed"]

LastDirection = Literal["", "in", "out", "fallback"]


@dataclass(frozen=True, slots=True)
class ThreadEntry:
    """One line of a phone's conversation, oldest first when listed."""

    at: float
    direction: Literal["in", "out"]
    text: str
    who: str
    """`texter`, `operator`, `fallback`, `auto`, `rule` or `outbound`."""
    seq: int
    """The callback or outbound record this entry comes from."""
    message_ids: tuple[str, ...] = ()
    delivery: tuple[DeliveryState, ...] = ()
    """Delivery state per part (same order as `message_ids`)."""
    final: bool = False
    detail: str = ""
    """Extra facts: close_session, reprocess, tags, timed out, errors."""
    order: int = 0
    """Where the entry is in the history (larger: newer; 0: not read from it). A thread
    page's oldest `order` is the `before` that asks for the page before it."""


@dataclass(frozen=True, slots=True)
class ThreadPage:
    """A run of a phone's conversation, oldest first, and whether older entries exist."""

    entries: list[ThreadEntry]
    more: bool
    """True when the thread has entries older than the first of `entries`."""

    @property
    def before(self) -> int:
        """What to pass as `before` for the page older than this one (0: none)."""
        return self.entries[0].order if self.more and self.entries else 0


@dataclass(frozen=True, slots=True)
class ContactState:
    """What Switchboard knows about one phone number, derived from its callbacks."""

    phone: str
    session_open: bool | None = None
    """None until anything says; True after a message in; False after a close."""
    subscribed: bool = False
    tags: tuple[str, ...] = ()
    blacklisted: bool = False
    loop_flagged: bool = False
    last_seen: float = 0.0
    carrier: str = ""
    messages_in: int = 0
    messages_out: int = 0
    last_at: float = 0.0
    """When the newest entry of the phone's conversation was made (0: no entry yet)."""
    last_text: str = ""
    """That entry's text, at most LAST_TEXT_CHARS characters: the texter's message, the
    reply or outbound body, or the fallback body sent ("" when nothing was sent)."""
    last_dir: LastDirection = ""
    """Which way that entry went: `in` (from the texter), `out` (an operator's, rule's or
    automatic answer, or an outbound send) or `fallback` (the deadline's answer, or none
    because the texter's platform hung up or too many were held); "" before any entry."""
    missed: int = 0
    """Incoming texts that ended without an operator's answer (timed out, caller gone,
    overflow)."""

    @property
    def active_at(self) -> float:
        """Its last activity: the newer of its last callback and its newest thread entry.
        The phone list is ordered by it, newest first."""
        return self.last_at if self.last_at > self.last_seen else self.last_seen


LAST_TEXT_CHARS = 120
"""How much of the newest entry's text a contact state keeps (a phone list preview)."""


@dataclass(frozen=True, slots=True)
class ThreadHit:
    """One search result: a message body, reply or phone number that matched."""

    phone: str
    at: float
    text: str
    seq: int
    """The callback (for a response: the callback it answered) or outbound record."""
    kind: Literal["callback", "response", "outbound"]
