"""Segment files: the live segment (and a closed one not yet on disk) as a TinyDB database
held in memory, and the line readers for closed segments (`pread` at an offset, forward and
backward in chunks).

A segment `seg-NNNNNN.jsonl` is a TinyDB journal (data/journal.py): one JSON line per
inserted document, `{"t":"records","i":DOC_ID,"d":DOCUMENT}`, that any JSON tool reads.
"""

from __future__ import annotations

import bisect
import os
from array import array
from pathlib import Path
from typing import Iterator

from tinydb import TinyDB

from .journal import JournalStorage, encode_json, encode_json_bytes
from .journal_table import JournalTable
from .layout import TABLE

__all__ = ["CHUNK", "MemSegment", "SegmentDB", "chunks_backward", "pread_line"]


_NEW_TABLE_LINE = f'{{"t":{encode_json(TABLE)},"new":1}}\n'.encode()
_LINE_HEAD = f'{{"t":{encode_json(TABLE)},"i":'.encode()


class MemSegment:
    """A segment whose TinyDB is in memory: the live one, or a closed one not yet on disk.

    Added documents are staged first: each gets its doc id, its journal line (encoded once)
    and so its byte offset at once, and waits in `staged` until `commit()` inserts the whole
    batch with one `insert_multiple` (one `_update_table`), just before the group commit
    hands the bytes to the writer. Reads look in `staged` for what TinyDB does not hold yet.
    """

    def __init__(self, no: int, storage: JournalStorage, db: TinyDB) -> None:
        self.no = no
        self.storage = storage
        self.db = db
        self.table = db.table(TABLE)
        self.offs = array("q")
        self.ids = array("q")
        self.staged: dict[int, dict] = {}
        """Documents added but not yet inserted into TinyDB, by doc id (replaced, never
        cleared, at commit: a snapshot taken meanwhile on another thread stays whole)."""
        self.staged_lines: list[tuple[int, dict, bytes]] = []
        self.staged_size = 0
        raw = self.raw()
        self.next_id = max(map(int, raw), default=0) + 1

    def raw(self) -> dict[str, dict]:
        return self.storage.read().get(TABLE, {})

    def doc_at(self, off: int) -> dict | None:
        i = bisect.bisect_left(self.offs, off)
        if i < len(self.offs) and self.offs[i] == off:
            doc_id = self.ids[i]
            doc = self.raw().get(str(doc_id))
            if doc is None:
                doc = self.staged.get(doc_id)
            return doc
        return None

    def stage(self, doc: dict) -> tuple[int, int]:
        """Encode `doc` (raising TypeError/ValueError if it cannot be stored, before anything
        changes) and queue it; returns (doc id, byte offset of its journal line)."""
        doc_id = self.next_id
        line = b"%s%d,\"d\":%s}\n" % (_LINE_HEAD, doc_id, encode_json_bytes(doc))
        storage = self.storage
        if not self.staged_lines and TABLE not in storage.read():
            # TinyDB's first write to the table journals that the table exists
            self.staged_size = len(_NEW_TABLE_LINE)
        off = storage.end + self.staged_size
        self.next_id = doc_id + 1
        self.staged_size += len(line)
        self.staged_lines.append((doc_id, doc, line))
        self.staged[doc_id] = doc
        return doc_id, off

    def commit(self) -> None:
        """Insert the staged documents into TinyDB in one batch (`JournalTable.insert_encoded`)."""
        batch = self.staged_lines
        if not batch:
            return
        storage = self.storage
        expected_end = storage.end + self.staged_size
        self.staged_lines = []
        self.staged_size = 0
        self.table.insert_encoded(batch)
        self.staged = {}
        if storage.end != expected_end:  # pragma: no cover - a bug, not a runtime condition
            raise RuntimeError(f"journal offsets drifted in {storage.path.name}")

    def snapshot_docs(self) -> list[dict]:
        """The segment's documents, oldest first (thread-safe: C-level copies only)."""
        staged = self.staged  # first: a commit after this moves these into raw
        items = list(self.raw().items())
        docs = [doc for _key, doc in items]
        extra = list(staged.items())
        if extra:
            last = int(items[-1][0]) if items else 0
            docs.extend(doc for doc_id, doc in extra if doc_id > last)
        return docs


class SegmentDB(TinyDB):
    table_class = JournalTable


class Existing:
    """A storage 'class' for TinyDB that hands back an already-open storage."""

    def __init__(self, storage: JournalStorage) -> None:
        self.storage = storage

    def __call__(self) -> JournalStorage:
        return self.storage


def pread_line(fd: int, off: int) -> bytes:
    size = 4096
    while True:
        data = os.pread(fd, size, off)
        nl = data.find(b"\n")
        if nl >= 0:
            return data[:nl]
        if len(data) < size:
            raise ValueError("unterminated line")
        size *= 4



CHUNK = 1 << 20


def chunks_backward(path: Path, size: int) -> Iterator[str]:
    """Whole lines of a file, in chunks read from the end; each chunk's lines in file order."""
    with open(path, "rb") as fh:
        end = size
        carry = b""
        while end > 0:
            start = max(0, end - CHUNK)
            fh.seek(start)
            data = fh.read(end - start) + carry
            end = start
            if start > 0:
                cut = data.find(b"\n") + 1
                if cut == 0:
                    carry = data
                    continue
                carry = data[:cut]
                data = data[cut:]
            else:
                carry = b""
            if data:
                yield data.decode("utf-8", "replace")

