"""SMS segment counting and splitting (3GPP TS 23.038).

GSM-7: the basic table's 127 characters (128 positions, 0x1B being the escape to the
extension table) cost one septet each; the extension characters (form feed and
``^ { } \\ [ ~ ] | €``) cost two (ESC + code). A single message holds 160 septets, each
part of a long (concatenated) one 153.

Any character outside both tables switches the whole message to UCS-2, counted in UTF-16
code units: one per BMP character, two for anything beyond it (an emoji). 70 units single,
67 per part. A tab is not GSM-7.

An escape pair or a surrogate pair is never split across parts: a part ends early rather
than cut one, so 152×"a" + "€" + 152×"a" (306 septets) takes three parts, not two.

Decision on 0x09: the 3GPP table has capital "Ç" there, while Unicode's mapping file
(GSM0338.TXT) says "ç". We follow 3GPP: "Ç" is GSM-7; lowercase "ç" is not, and
switches the message to UCS-2.

Empty text: 0 units and 0 segments (nothing to send), with the full 160 septets remaining.
`split_parts("")` is ``[]`` to match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "GSM7_BASIC", "GSM7_EXTENSION", "Encoding", "SegmentCount",
    "count_segments", "is_gsm7", "split_parts",
]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67

_GSM7 = re.compile("[" + re.escape("".join(sorted(GSM7_BASIC | GSM7_EXTENSION))) + "]*")
_GSM7_EXTENSION = re.compile("[" + re.escape("".join(sorted(GSM7_EXTENSION))) + "]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class SegmentCount:
    encoding: Encoding
    units: int
    """Septets (GSM-7) or UTF-16 code units (UCS-2)."""
    segments: int
    """Messages the text goes out as; 0 for an empty text."""
    per_segment: int
    """160 or 153 (GSM-7), 70 or 67 (UCS-2): single message or each part of a long one."""
    remaining: int
    """Units left in the current (last) segment."""

    def summary(self) -> str:
        """One short line for a 120-column screen: 'GSM-7 · 12 septets · 1 part · 148 left'."""
        units = "septets" if self.encoding == "GSM-7" else "UTF-16 units"
        parts = "part" if self.segments == 1 else "parts"
        return f"{self.encoding} · {self.units} {units} · {self.segments} {parts} · {self.remaining} left"


def is_gsm7(text: str) -> bool:
    """Whether every character is in the GSM-7 basic or extension table."""
    return _GSM7.fullmatch(text) is not None


def _encoding_and_units(text: str) -> tuple[Encoding, int]:
    if is_gsm7(text):
        return "GSM-7", len(text) + len(_GSM7_EXTENSION.findall(text))
    return "UCS-2", len(text) + len(_ASTRAL.findall(text))


def _cost(encoding: Encoding):
    if encoding == "GSM-7":
        return lambda ch: 2 if ch in GSM7_EXTENSION else 1
    return lambda ch: 2 if ord(ch) > 0xFFFF else 1


def _part_ends(text: str, encoding: Encoding, limit: int) -> tuple[list[int], int]:
    """Where each part ends (character indices), packing at most `limit` units a part and
    never cutting a character's units; and the units in the last part."""
    cost_of = _cost(encoding)
    ends: list[int] = []
    used = 0
    for index, char in enumerate(text):
        cost = cost_of(char)
        if used + cost > limit:
            ends.append(index)
            used = 0
        used += cost
    ends.append(len(text))
    return ends, used


def count_segments(text: str) -> SegmentCount:
    """Encoding, units and segments `text` takes as an SMS (see the module docstring)."""
    encoding, units = _encoding_and_units(text)
    single, multi = (GSM7_SINGLE, GSM7_MULTI) if encoding == "GSM-7" else (UCS2_SINGLE, UCS2_MULTI)
    if units <= single:
        return SegmentCount(encoding, units, 1 if units else 0, single, single - units)
    ends, last = _part_ends(text, encoding, multi)
    return SegmentCount(encoding, units, len(ends), multi, multi - last)


def split_parts(text: str) -> list[str]:
    """The text cut into the parts it goes out as: ``[text]`` if it fits one message,
    ``[]`` if empty; otherwise parts of at most 153 septets / 67 UTF-16 units, never
    cutting an escape pair or a surrogate pair. ``"".join(parts) == text``."""
    encoding, units = _encoding_and_units(text)
    if units == 0:
        return []
    single, multi = (GSM7_SINGLE, GSM7_MULTI) if encoding == "GSM-7" else (UCS2_SINGLE, UCS2_MULTI)
    if units <= single:
        return [text]
    ends, _ = _part_ends(text, encoding, multi)
    starts = [0, *ends[:-1]]
    return [text[start:end] for start, end in zip(starts, ends)]
