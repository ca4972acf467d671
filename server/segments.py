"""SMS segment counting and splitting (3GPP TS 23.038).

GSM-7: 160 septets in a single message, 153 per part of a long one; the extension
characters (form feed and ``^ { } \\ [ ~ ] | €``) cost two septets. Any character outside
the GSM-7 tables switches the whole message to UCS-2: 70 UTF-16 units single, 67 per
part, an emoji counting two. An escape pair or a surrogate pair is never split across
parts, so 152×"a" + "€" + 152×"a" (306 septets) takes three parts, not two.

Decision on 0x09: the 3GPP table has capital "Ç" there while Unicode's mapping file says
"ç". We follow 3GPP: "Ç" is GSM-7, "ç" is not (it switches to UCS-2).

An empty text counts as 0 units and 0 segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True, slots=True)
class SegmentCount:
    encoding: Encoding
    units: int
    """Septets (GSM-7) or UTF-16 code units (UCS-2)."""
    segments: int
    per_segment: int
    """160 or 153 (GSM-7), 70 or 67 (UCS-2), depending on single or multipart."""
    remaining: int
    """Units left in the current (last) segment."""


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _unit_costs(text: str) -> tuple[Encoding, list[int]]:
    """Per character: its cost in units, in the encoding the whole text needs."""
    if is_gsm7(text):
        return "GSM-7", [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return "UCS-2", [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _pack(costs: list[int], limit: int) -> list[int]:
    """Part sizes in characters, never splitting a character's units."""
    sizes: list[int] = []
    used = count = 0
    for cost in costs:
        if used + cost > limit:
            sizes.append(count)
            used = count = 0
        used += cost
        count += 1
    if count:
        sizes.append(count)
    return sizes


def _limits(encoding: Encoding) -> tuple[int, int]:
    return (160, 153) if encoding == "GSM-7" else (70, 67)


def count_segments(text: str) -> SegmentCount:
    encoding, costs = _unit_costs(text)
    single, multi = _limits(encoding)
    units = sum(costs)
    if units == 0:
        return SegmentCount(encoding, 0, 0, single, single)
    if units <= single:
        return SegmentCount(encoding, units, 1, single, single - units)
    sizes = _pack(costs, multi)
    last_units = sum(costs[len(costs) - sizes[-1]:])
    return SegmentCount(encoding, units, len(sizes), multi, multi - last_units)


def split_parts(text: str) -> list[str]:
    """The text cut into the parts it would be sent as (one part if it fits)."""
    encoding, costs = _unit_costs(text)
    single, multi = _limits(encoding)
    if sum(costs) <= single:
        return [text] if text else []
    parts: list[str] = []
    start = 0
    for size in _pack(costs, multi):
        parts.append(text[start:start + size])
        start += size
    return parts
