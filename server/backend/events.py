"""What crosses from the core to a console: held items and the events about them.

Plain dataclasses of plain data (records from `data.models`), so a network transport can
carry them; nothing here holds a live object of the gateway or the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

from data.models import CallbackRecord, ResponseRecord


@dataclass(frozen=True, slots=True)
class HeldItem:
    """A held callback waiting for an answer."""

    record: CallbackRecord
    deadline: float
    """Unix time at which the fallback goes out."""
    out_of_session: bool = False
    """The phone's session was closed before this message arrived."""

    @property
    def seq(self) -> int:
        return self.record.seq


@dataclass(slots=True)
class CallbackReceived:
    """A callback that needs no answer was recorded (and answered with an empty 200).
    Not `frozen`, as `CallbackRecord`: one per request on the ingest path."""

    record: CallbackRecord


@dataclass(frozen=True, slots=True)
class ExchangeHeld:
    """A callback is held open, waiting for an answer until `item.deadline`."""

    item: HeldItem


@dataclass(frozen=True, slots=True)
class ExchangeEnded:
    """A held exchange is over: answered, timed out, caller gone, overflow or shutdown."""

    seq: int
    outcome: str
    response: ResponseRecord | None
    """What was sent; None when the caller hung up first."""


@dataclass(frozen=True, slots=True)
class RequestRejected:
    """The gateway refused a request (400, 403, 413, 503)."""

    status: int
    reason: str
    peer: str
    seq: int = 0
    """The held exchange whose answer this was (it could not be made durable, so the SL got
    the 503 instead of the answer); 0 for a request refused before it was held."""


BrokerEvent = Union[CallbackReceived, ExchangeHeld, ExchangeEnded, RequestRejected]
Subscriber = Callable[[BrokerEvent], None]

__all__ = [
    "BrokerEvent",
    "CallbackReceived",
    "ExchangeEnded",
    "ExchangeHeld",
    "HeldItem",
    "RequestRejected",
    "Subscriber",
]
