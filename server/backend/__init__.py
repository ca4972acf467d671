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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_INTERFACE_NAMES = (
    "AnswerOutcome", "AnswerRefused", "AnswerSent", "ConsoleBackend", "GatewayStatus", "Note",
    "ReadMark", "SearchPage", "SendOutcome",
)


def __getattr__(name: str) -> Any:
    # The interface is loaded on first use: headless mode reaches this package only for its
    # events (server.broker), and its start-up waits on every import before it listens.
    if name in _INTERFACE_NAMES:
        from server.backend import interface

        return getattr(interface, name)
    raise AttributeError(f"module 'server.backend' has no attribute {name!r}")


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
