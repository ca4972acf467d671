"""A texter's identity: the one rule that turns any written form of a phone number into
the key its history is filed under, and the digits a search for a phone looks for.

The SL's docs say phone numbers come "10 digits with or without a country code", and the
vendor's own toolkit strips `+1`/`001`: `5557000801`, `15557000801` and
`+1 (555) 700-0801` are one texter. The rule is NANP's: the ASCII digits of the number,
and when there are 11 of them starting with `1`, the leading `1` is dropped. Other
lengths keep all their digits (an international number is not guessed at). Text with no
digit at all keeps its stripped self, so a malformed value still files somewhere visible.

Everything that files, looks up, sends to or shows a phone goes through `normalise_phone`:
gateway, store, console, simulator, SL client and export.
"""

from __future__ import annotations

__all__ = ["normalise_phone", "phone_query_digits"]


def _ascii_digits(raw: str) -> str:
    return "".join(ch for ch in raw if "0" <= ch <= "9")


def normalise_phone(raw: str) -> str:
    """The key a phone's history is filed under (see the module docstring for the rule)."""
    digits = _ascii_digits(raw)
    if not digits:
        return raw.strip()
    if len(digits) == 11 and digits[0] == "1":
        return digits[1:]
    return digits


def phone_query_digits(query: str) -> str | None:
    """The phone key a search text names, or None when the text is not a phone number.

    A query reads as a phone when it holds at least 7 digits and nothing but digits,
    spaces and the punctuation people write numbers with (`+ - . ( )`). Such a query
    finds the texter in any of its written forms."""
    stripped = query.strip()
    if not stripped or any(not (ch.isdigit() or ch in " +-.()") for ch in stripped):
        return None
    digits = _ascii_digits(stripped)
    if len(digits) < 7:
        return None
    return normalise_phone(digits)
