"""What the composer keeps per held text: the operator's draft, how the text ended, and
whose text it is. Plain data: the composer (composer.py) shows it and acts on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from server.backend import HeldItem

__all__ = ["Draft", "Ending", "item_phone"]

_ENDED_WHAT = {
    "timed_out": "timed out at {at}; the fallback was sent",
    "caller_gone": "the SL hung up at {at} before an answer; nothing was sent",
    "overflow": "was answered with the fallback at {at} (over --max-pending)",
    "shutdown": "was answered with the fallback at {at} (shutting down)",
    "answered": "was answered elsewhere at {at}",
}


@dataclass
class Draft:
    reply: str = ""
    close_session: bool = False
    reprocess: str = ""
    tags: str = ""

    @property
    def is_blank(self) -> bool:
        return not (self.reply or self.close_session or self.reprocess or self.tags)

    @property
    def text(self) -> str:
        """What a follow-up message carries: the reply (a subscription's tags are not one)."""
        return self.reply if self.reply.strip() else ""


@dataclass(frozen=True, slots=True)
class Ending:
    """How the composer's item ended, for the banner."""

    outcome: str
    at: float

    def describe(self) -> str:
        clock = datetime.fromtimestamp(self.at).strftime("%H:%M:%S")
        return _ENDED_WHAT.get(self.outcome, self.outcome.replace("_", " ") + " at {at}").format(at=clock)


def item_phone(item: HeldItem | None) -> str:
    if item is None or not item.record.phones:
        return ""
    return item.record.phones[0]
