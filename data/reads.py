"""The read side of the history: records, threads, contacts, search and export, through the
indexes (data/indexes.py) and the segment files. `HistoryStore` is a `HistoryReads`."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any, Iterator, TextIO

import orjson

from .codec import CODECS, thread_entry
from .indexes import HistoryIndex
from .layout import LOC_SHIFT, OFF_MASK, seg_name
from .models import CallbackRecord, ContactState, OutboundRecord, ResponseRecord, ThreadEntry, ThreadPage
from .projection import phone_key
from .export import export_docs, export_lines
from .scan import SearchProgress, search_segments
from .segments import MemSegment, pread_line

__all__ = ["READ_FDS", "HistoryReads"]

READ_FDS = 32
"""Closed segments kept open for reading at once (the oldest opened is closed first)."""


class HistoryReads:
    """Reads of one history. Its owner sets `data_dir`, `notices`, `_ix` (the indexes),
    `_mem` (segments whose documents are in memory, by number) and `_read_fds`."""

    data_dir: Path
    notices: list[str]
    _ix: HistoryIndex
    _mem: dict[int, MemSegment]
    _read_fds: dict[int, int]

    def _read_fd(self, seg: int) -> int:
        fds = self._read_fds
        fd = fds.get(seg)
        if fd is None:
            if len(fds) >= READ_FDS:
                os.close(fds.pop(next(iter(fds))))
            fd = fds[seg] = os.open(self.data_dir / seg_name(seg), os.O_RDONLY | os.O_CLOEXEC)
        return fd

    def _close_read_fds(self) -> None:
        for fd in self._read_fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._read_fds.clear()

    def _doc_at(self, loc: int) -> dict | None:
        seg = loc >> LOC_SHIFT
        off = loc & OFF_MASK
        ms = self._mem.get(seg)
        if ms is not None:
            return ms.doc_at(off)
        try:
            line = pread_line(self._read_fd(seg), off)
            try:
                return orjson.loads(line)["d"]
            except orjson.JSONDecodeError:  # what only the standard parser reads (NaN)
                return json.loads(line)["d"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
                return None  # no file descriptor to spare just now: nothing is damaged
            note = f"could not read a record in {seg_name(seg)} at offset {off}: {exc}"
            if note not in self.notices:
                self.notices.append(note)
            return None

    def contact(self, phone: str) -> ContactState | None:
        return self._ix.contact(phone_key(phone))

    def contacts(self, limit: int = 500) -> list[ContactState]:
        """Most recently seen first (a tie: the larger phone key first, whatever the order
        the contacts were loaded in)."""
        return self._ix.top_contacts(limit)

    def thread(self, phone: str, limit: int = 500) -> list[ThreadEntry]:
        """The last `limit` entries of a phone's conversation, oldest first."""
        return self.thread_page(phone, limit).entries

    def thread_page(self, phone: str, limit: int = 50, before: int = 0) -> ThreadPage:
        """The newest `limit` entries of a phone's conversation older than `before` (an
        entry's `order`; 0: the newest of all), oldest first. Reads `limit` + 1 locations
        (one to know whether there are more) and `limit` records, however long the thread."""
        if limit <= 0:
            return ThreadPage(entries=[], more=False)
        delivery = self._ix.delivery
        locs = self._ix.thread_locs(phone_key(phone), limit + 1, before)
        more = len(locs) > limit
        out: list[ThreadEntry] = []
        for loc in locs[1:] if more else locs:
            doc = self._doc_at(loc)
            if doc is not None:
                out.append(thread_entry(doc, delivery, loc))
        return ThreadPage(entries=out, more=more)

    def recent_callbacks(self, limit: int = 200) -> list[CallbackRecord]:
        """The newest `limit` callbacks, oldest first."""
        out = []
        codec = CODECS["callback"]
        for loc in self._ix.recent_callback_locs(limit) if limit > 0 else ():
            doc = self._doc_at(loc)
            if doc is not None:
                out.append(codec.from_doc(doc))
        return out

    def _record_by_seq(self, seq: int, kind: str) -> Any:
        loc = self._ix.loc(seq) if seq > 0 else -1
        if loc >= 0:
            doc = self._doc_at(loc)
            if doc is not None and doc.get("kind") == kind:
                return CODECS[kind].from_doc(doc)
        return None

    def callback(self, seq: int) -> CallbackRecord | None:
        return self._record_by_seq(seq, "callback")

    def outbound(self, seq: int) -> OutboundRecord | None:
        """The outbound record with this seq (an addition to the agreed API)."""
        return self._record_by_seq(seq, "outbound")

    def response_for(self, callback_seq: int) -> ResponseRecord | None:
        loc = self._ix.response_loc(callback_seq) if callback_seq > 0 else -1
        if loc >= 0:
            doc = self._doc_at(loc)
            if doc is not None:
                return CODECS["response"].from_doc(doc)
        return None

    def _segments_snapshot(self) -> list[tuple[int, list[dict] | None, int]]:
        """(segment, documents if in memory else None, file size), oldest first; thread-safe."""
        mem = dict(self._mem)  # copy first: a segment leaves _mem only after it is in closed
        closed = list(self._ix.closed)
        sizes = dict(self._ix.sizes)
        out = []
        for n in sorted(set(closed) | set(mem)):
            ms = mem.get(n)
            if ms is not None:
                out.append((n, ms.snapshot_docs(), 0))
            else:
                out.append((n, None, sizes.get(n, 0)))
        return out

    def search(self, text: str, *, batch: int = 20_000, limit: int = 5_000) -> Iterator[SearchProgress]:
        """Case-insensitive substring search over message bodies, replies and phone numbers.

        Newest first. Each `SearchProgress` carries the hits found since the previous one;
        the last one has `done=True`. Stops after `limit` hits. The snapshot of the live
        segment is taken here, so iterate from any thread.
        """
        segments = self._segments_snapshot()
        total = sum(self._ix.counts)
        return search_segments(self.data_dir, segments, needle=text.lower(), batch=max(1, batch), limit=limit, total=total)

    def export_jsonl(self, out: TextIO) -> int:
        """Write the whole history, oldest first, one JSON object per line; returns the count.
        A record that cannot be read back whole is not written: `notices` names it."""
        count = 0
        for n, docs, size in self._segments_snapshot():
            if docs is not None:
                count += export_docs(docs, out)
            else:
                count += export_lines(self.data_dir / seg_name(n), size, out, self.notices)
        return count

