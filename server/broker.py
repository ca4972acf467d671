"""The seam between the gateway and whoever answers: the console, headless mode, rules.

The gateway publishes what arrives and, for a held callback, awaits a `Resolution`.
Answerers subscribe to events and call `answer()`. Neither side sees the other's
internals; a later multi-operator hub can put a network behind these few calls.
Everything here runs on the event loop thread: no locks.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Callable, Literal

from data.models import ResponseRecord

from server.backend.events import (
    BrokerEvent,
    CallbackReceived,
    ExchangeEnded,
    ExchangeHeld,
    HeldItem,
    RequestRejected,
    Subscriber,
)
from server.sms.contract import Decision

__all__ = [
    "AnswerRefused",
    "Answerer",
    "Broker",
    "BrokerEvent",
    "CallbackReceived",
    "ExchangeEnded",
    "ExchangeHeld",
    "HeldItem",
    "RequestRejected",
    "Resolution",
    "Subscriber",
]

log = logging.getLogger(__name__)

Answerer = Literal["operator", "fallback", "rule"]


@dataclass(frozen=True, slots=True)
class Resolution:
    """How a held exchange is to be answered."""

    decision: Decision
    answered_by: Answerer
    outcome: Literal["answered", "timed_out", "shutdown", "overflow"] = "answered"


class AnswerRefused(Exception):
    """An answer that can no longer be delivered; the message is one line for the operator."""


@dataclass(slots=True)
class _Exchange:
    item: HeldItem
    future: asyncio.Future[Resolution]


@dataclass
class Broker:
    """Holds the open exchanges and fans events out to subscribers."""

    _subscribers: list[Subscriber] = field(default_factory=list)
    _open: dict[int, _Exchange] = field(default_factory=dict)
    _deliveries: dict[int, asyncio.Future[str]] = field(default_factory=dict)
    """Answers given and not yet on their way: seq -> '' once sent, or why not."""
    _gone: dict[int, str] = field(default_factory=dict)
    _closing: Callable[[HeldItem], Resolution] | None = None
    """Set by resolve_all (shutdown): an exchange opened later is answered the same way at
    once (a request whose body was still arriving when the gateway began to stop)."""

    # -- subscribing -------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` for every event from now on; returns the unsubscribe call."""
        # A new list each time rather than a change in place: publish() iterates the list
        # it found, so a subscriber may (un)subscribe while an event is being delivered.
        self._subscribers = [*self._subscribers, subscriber]

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                remaining = list(self._subscribers)
                remaining.remove(subscriber)
                self._subscribers = remaining

        return unsubscribe

    def publish(self, event: BrokerEvent) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # one broken subscriber must not stop the gateway
                log.exception("broker subscriber failed on %r", type(event).__name__)

    # -- the gateway's side ------------------------------------------------------------

    def hold(self, item: HeldItem) -> asyncio.Future[Resolution]:
        """Open an exchange and announce it; the gateway awaits the returned future."""
        future: asyncio.Future[Resolution] = asyncio.get_running_loop().create_future()
        self._open[item.seq] = _Exchange(item, future)
        self.publish(ExchangeHeld(item))
        if self._closing is not None:
            future.set_result(self._closing(item))
        return future

    def close(self, seq: int, outcome: str, response: ResponseRecord | None) -> None:
        """The gateway has answered (or lost) the exchange; tell everyone."""
        exchange = self._open.pop(seq, None)
        if exchange is not None and not exchange.future.done():
            exchange.future.cancel()
        if outcome == "caller_gone":
            self._gone[seq] = "the caller hung up before an answer was sent"
            self.delivered(seq, self._gone[seq])
            if len(self._gone) > 10_000:
                self._gone.pop(next(iter(self._gone)))
        self.publish(ExchangeEnded(seq=seq, outcome=outcome, response=response))

    def resolve_all(self, make: Callable[[HeldItem], Resolution]) -> int:
        """Answer every open exchange at once, and any opened from now on (shutdown).
        Returns how many were open."""
        self._closing = make
        count = 0
        for exchange in list(self._open.values()):
            if not exchange.future.done():
                exchange.future.set_result(make(exchange.item))
                count += 1
        return count

    # -- the answerer's side -----------------------------------------------------------

    def answer(self, seq: int, decision: Decision, answered_by: Answerer = "operator") -> asyncio.Future[str]:
        """Deliver a decision for a held exchange, or raise AnswerRefused saying why not.

        Returns a future that ends once the gateway has the answer on its way: '' when it
        went out, else why not (the history could not keep it, the caller hung up). An
        answerer that awaits it updates its screen after the answer, not before."""
        exchange = self._open.get(seq)
        if exchange is None or exchange.future.done():
            reason = self._gone.get(seq, "it was already answered or timed out")
            raise AnswerRefused(f"cannot answer #{seq}: {reason}")
        delivery: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._deliveries[seq] = delivery
        exchange.future.set_result(Resolution(decision=decision, answered_by=answered_by))
        return delivery

    def delivered(self, seq: int, problem: str = "") -> None:
        """The gateway has sent the answer to `seq` ('') or could not (`problem`)."""
        delivery = self._deliveries.pop(seq, None)
        if delivery is not None and not delivery.done():
            delivery.set_result(problem)

    def pending(self) -> list[HeldItem]:
        """Open exchanges, oldest first."""
        return [exchange.item for exchange in self._open.values()]

    @property
    def pending_count(self) -> int:
        return len(self._open)

    def is_open(self, seq: int) -> bool:
        exchange = self._open.get(seq)
        return exchange is not None and not exchange.future.done()
