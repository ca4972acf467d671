"""What the simulated SL keeps: each callback exchange, each message sent to a virtual
phone, and each phone's state (filed under its `phone_key`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.simulator.judge import Verdict

__all__ = ["Exchange", "PhoneState", "SentMessage"]


@dataclass(frozen=True)
class Exchange:
    """One callback sent and what came back. `sent` is False when nothing went out
    (no gateway configured, or the `max_callbacks` budget was spent)."""

    fields: dict[str, str]
    status: int
    body: str
    verdict: Verdict
    elapsed_ms: float
    sent: bool = True
    content_type: str = ""
    """The response's Content-Type header as sent ('' when absent)."""

    @property
    def type(self) -> str:
        return self.fields.get("type", "")


@dataclass
class SentMessage:
    """An MT the SL sent to a virtual phone (one part)."""

    message_id: int
    phone: str
    text: str
    status: int = 0
    """0 pending, 1 delivered, 2 failed, 4 queued (the docs' codes)."""
    scheduled: str = ""
    """The raw `on` text, for messages sent with a schedule."""
    canceled: bool = False
    sent: bool = False
    """True once the SL has handed it to the carrier (scheduled ones wait until their time)."""


@dataclass
class PhoneState:
    """One texter as the SL knows it. `phone` is the key (10 digits for a US number)."""

    phone: str
    session_open: bool = False
    subscribed: bool = False
    blacklisted: bool = False
    tags: tuple[str, ...] = ()
    received: list[str] = field(default_factory=list)
    """Message texts delivered to this phone, whole (not per part); the last 50."""
    last_active: float = 0.0
    """loop.time() of the last message to or from this phone (for session expiry)."""
    carrier: tuple[str, str] = ("", "")
    """(carrier_id, carrier_name), once known."""
    threads: set[str] = field(default_factory=set)
    """Thread tags the app's messages to this phone opened (send_message `tag`), until remove_tag."""
