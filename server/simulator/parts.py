"""How the simulated SL splits a long message into parts (messaging.md: "(1/3) ...")."""

from __future__ import annotations

from server.sms.segments import GSM7_EXTENSION, count_segments, is_gsm7

__all__ = ["numbered_parts"]


def numbered_parts(text: str) -> list[str]:
    """The parts an MT goes out as: the text itself if it fits one message, otherwise
    pieces prefixed "(1/3) ", "(2/3) "... each fitting one segment (messaging.md)."""
    if count_segments(text).segments <= 1:
        return [text]
    gsm = is_gsm7(text)
    limit = 153 if gsm else 67
    count = count_segments(text).segments
    while True:
        chunks = _chunks(text, limit - len(f"({count}/{count}) "), gsm)
        if len(chunks) <= count:
            return [f"({n}/{len(chunks)}) {chunk}" for n, chunk in enumerate(chunks, 1)]
        count = len(chunks)


def _chunks(text: str, room: int, gsm: bool) -> list[str]:
    """Character-boundary split (the compact split mode): each chunk fits `room` units,
    never cutting an escape pair or a surrogate pair."""
    chunks: list[str] = []
    start = used = 0
    for i, ch in enumerate(text):
        cost = (2 if ch in GSM7_EXTENSION else 1) if gsm else (2 if ord(ch) > 0xFFFF else 1)
        if used + cost > room:
            chunks.append(text[start:i])
            start, used = i, 0
        used += cost
    chunks.append(text[start:])
    return chunks
