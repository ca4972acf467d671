"""How the simulated SL writes `sent_at`: the documented shapes (README.md) and the two
the SL's public client apps and their tests use (NOTES.md), so an app meets them all."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

__all__ = ["sent_at_stamp"]

_EASTERN = timezone(timedelta(hours=-5))


def sent_at_stamp(rng: random.Random, now: datetime | None = None) -> str:
    """`now` (default: the current time) as a `sent_at` value: mostly ISO 8601 UTC; also
    `02-09-2007 12:30:44 AM`, RFC 2822, epoch seconds and Ruby's `Time#to_s`."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    roll = rng.random()
    if roll < 0.6:
        return now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if roll < 0.72:
        return now.strftime("%m-%d-%Y %I:%M:%S %p")
    if roll < 0.82:
        return now.strftime("%a, %d %b %Y %H:%M:%S +0000")
    if roll < 0.91:
        return str(int(now.timestamp()))
    return now.astimezone(_EASTERN).strftime("%a %b %d %H:%M:%S %z %Y")
