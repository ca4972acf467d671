"""The console's backend: the interface a console talks to (`ConsoleBackend`), and the
plain data that crosses it. The in-process implementation is `server.backend.local`,
imported only by the entry point that composes the core."""

from server.backend.events import (
    BrokerEvent,
    CallbackReceived,
    ExchangeEnded,
    ExchangeHeld,
    HeldItem,
    RequestRejected,
    Subscriber,
)
from server.backend.interface import (
    AnswerOutcome,
    AnswerRefused,
    AnswerSent,
    ConsoleBackend,
    GatewayStatus,
    Note,
    ReadMark,
    SearchPage,
    SendOutcome,
)

__all__ = [
    "AnswerOutcome",
    "AnswerRefused",
    "AnswerSent",
    "BrokerEvent",
    "CallbackReceived",
    "ConsoleBackend",
    "ExchangeEnded",
    "ExchangeHeld",
    "GatewayStatus",
    "HeldItem",
    "Note",
    "ReadMark",
    "RequestRejected",
    "SearchPage",
    "SendOutcome",
    "Subscriber",
]
