"""Reading the whole history in order: substring search (newest first, with progress) and
JSON Lines export (oldest first), over a snapshot of the in-memory segments and the closed
segment files. Nothing here needs the store's lock, so it runs in any thread.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, TextIO

from .codec import body_of
from .journal import encode_json
from .layout import RECORD_PREFIX, SEG_RE, seg_name
from .models import ThreadHit
from .segments import chunks_backward, lines_forward

__all__ = ["SearchProgress", "export_lines", "export_on_disk", "search_segments"]


@dataclass(frozen=True)
class SearchProgress:
    hits: list[ThreadHit]
    """Hits found since the previous progress report, newest first."""
    scanned: int
    total: int
    done: bool



def export_on_disk(data_dir: Path, out: TextIO) -> int:
    """The history as it is on disk now, oldest first, one JSON object per line, without the
    lock and without writing anything: `export` while a console or headless holds the
    directory. Records still in that process's memory are not on disk yet, and a line being
    written at this moment (no newline yet) is left out. Returns the count."""
    names = os.listdir(data_dir)
    count = 0
    for n in sorted(int(m.group(1)) for name in names if (m := SEG_RE.match(name))):
        path = Path(data_dir) / seg_name(n)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        count += export_lines(path, size, out)
    return count


def export_lines(path: Path, size: int, out: TextIO) -> int:
    """The documents of a segment file's first `size` bytes, as they are stored."""
    count = 0
    for line in lines_forward(path, size):
        doc_text = _doc_text(line)
        if doc_text is not None:
            out.write(doc_text)
            out.write("\n")
            count += 1
    return count


def _doc_text(line: str) -> str | None:
    """The document part of a journal line (`{"t":..,"i":..,"d":DOC}`), without re-encoding."""
    if line.startswith(RECORD_PREFIX):
        cut = line.find(',"d":')
        if cut > 0 and line.endswith("}"):
            return line[cut + 5 : -1]
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("d"), dict):
        return encode_json(obj["d"])
    return None



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

