"""Substring search of the whole history, newest first, with progress, over a snapshot of
the in-memory segments and the closed segment files. Nothing here needs the store's lock, so it runs in any thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from .codec import body_of
from .journal import encode_json
from .layout import RECORD_PREFIX, seg_name
from .models import ThreadHit
from .segments import chunks_backward

__all__ = ["SearchProgress", "search_segments"]


@dataclass(frozen=True)
class SearchProgress:
    hits: list[ThreadHit]
    """Hits found since the previous progress report, newest first."""
    scanned: int
    total: int
    done: bool



def _hit(doc: Mapping[str, Any], needle: str) -> ThreadHit | None:
    kind = doc.get("kind")
    if kind == "callback":
        phones = doc.get("phones") or ()
        body = body_of(doc) if doc.get("type") == "incoming_message" else ""
        if (body and needle in body.lower()) or any(needle in p.lower() for p in phones):
            return ThreadHit(
                phone=phones[0] if phones else "",
                at=doc["received_at"],
                text=body or f"[{doc.get('type')}]",
                seq=doc["seq"],
                kind="callback",
            )
    elif kind == "response":
        reply = str((doc.get("decision") or {}).get("reply") or "")
        phone = doc.get("phone") or ""
        if (reply and needle in reply.lower()) or (phone and needle in phone.lower()):
            return ThreadHit(phone=phone, at=doc["sent_at"], text=reply, seq=doc["callback_seq"], kind="response")
    elif kind == "outbound":
        body = doc.get("body") or ""
        phone = doc.get("phone") or ""
        if needle in body.lower() or needle in phone.lower():
            return ThreadHit(phone=phone, at=doc["sent_at"], text=body, seq=doc["seq"], kind="outbound")
    return None


def search_segments(
    data_dir: Path,
    segments: list[tuple[int, list[dict] | None, int]],
    *,
    needle: str,
    batch: int,
    limit: int,
    total: int,
) -> Iterator[SearchProgress]:
    scanned = 0
    since = 0
    found = 0
    hits: list[ThreadHit] = []
    if not needle:
        yield SearchProgress([], 0, total, True)
        return
    raw_needle = encode_json(needle)[1:-1]  # how the needle looks inside a JSON line

    def matched(doc: dict) -> bool:
        """Keep `doc` if it matches; True once `limit` hits are found."""
        nonlocal found
        h = _hit(doc, needle)
        if h is None:
            return False
        hits.append(h)
        found += 1
        return found >= limit

    for n, docs, size in reversed(segments):
        if docs is not None:
            for doc in reversed(docs):
                scanned += 1
                since += 1
                if matched(doc):
                    yield SearchProgress(hits, scanned, total, True)
                    return
                if since >= batch:
                    yield SearchProgress(hits, scanned, total, False)
                    hits, since = [], 0
            continue
        for chunk in chunks_backward(data_dir / seg_name(n), size):
            lines = chunk.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            records = sum(1 for line in lines if line.startswith(RECORD_PREFIX))
            scanned += records
            since += records
            lowered = chunk.lower()
            if raw_needle in lowered:
                for line in reversed(lines):
                    if raw_needle not in line.lower():
                        continue
                    try:
                        doc = json.loads(line).get("d")
                    except (ValueError, AttributeError):
                        continue
                    if isinstance(doc, dict) and matched(doc):
                        yield SearchProgress(hits, scanned, total, True)
                        return
            if since >= batch or (hits and since >= 1000):
                yield SearchProgress(hits, scanned, total, False)
                hits, since = [], 0
    yield SearchProgress(hits, scanned, total, True)

