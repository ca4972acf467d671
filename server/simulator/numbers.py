"""How the simulated SL reads and writes phone numbers. It reads every written form with
the project's one rule (`data.phones.normalise_phone`), so `+1 (555) 700-0801` and
`15557000801` reach the texter `5557000801`, and it writes a texter's number as a real
SL does, with and without the country code, so the app meets every form."""

from __future__ import annotations

import random

from data.phones import normalise_phone

__all__ = ["phone_key", "written_form"]


def phone_key(raw: str) -> str | None:
    """The number a phone is filed under (`normalise_phone`), or None when it is not a
    phone the SL can text: 10 digits once a US `1` is dropped, or 11 with another
    country code (messaging.md: "10 digits with or without a country code"; -1 otherwise)."""
    key = normalise_phone(raw)
    if key.isascii() and key.isdigit() and len(key) in (10, 11):
        return key
    return None


def written_form(key: str, rng: random.Random) -> str:
    """One way an SL writes the 10-digit `key` in a callback: mostly bare, often with the
    country code, sometimes in E.164 or as people write it. Other keys stay as they are."""
    if len(key) != 10 or not key.isdigit():
        return key
    roll = rng.random()
    if roll < 0.6:
        return key
    if roll < 0.85:
        return "1" + key
    if roll < 0.95:
        return "+1" + key
    return f"+1 ({key[:3]}) {key[3:6]}-{key[6:]}"
