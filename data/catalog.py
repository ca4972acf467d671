"""The history's on-disk index, `index.sqlite3`: where each closed segment's records are, each
phone's thread, contact and delivery states, read in place (SQLite pages, not a catalogue
loaded at open).

It is derived data: every row comes from the segment files, one closed segment per
transaction, and `meta.covered` (written in the same transaction) says which segments it
holds. A crash at any moment leaves it at the last whole segment; `open()` files the segments
after that again. Tables:

- `segments(no, size, records)`: the closed segments indexed, with their byte sizes.
- `byseq(seq, loc, callback)`: every callback and outbound send by sequence number;
  `callback` is a `KIND_*` code (0: an outbound send), so the rules that depend on the
  type of the callback an answer is for (tags, missed texts) read no record back.
- `responses(cb_seq, loc)`: the response to each callback.
- `blocks(seg, phone, prev, locs)`: a phone's thread entries in one segment, linked to its
  previous block (`prev`: the segment of that block, 0 at the first), so a thread is read
  newest first without an index on the phone.
- `contacts(phone, ..., head, ..., active)`: the contact projection as of `covered` (its
  newest thread entry and missed count included), and the newest block (`head`); indexed
  by `active` (`ContactState.active_at`): the phone list is read newest first, in place.
- `mids(mid, state)`: delivery states by SL message id.
- `meta(key, value)`: `covered`, `next_seq`, `counts`, `version` (JSON values).

Connections are made with `check_same_thread=False`: reads come from the event loop and
worker threads, and the one writer is the sidecar thread (SQLite serialises them; WAL lets
readers go on while it writes).
"""

from __future__ import annotations

import json
import sqlite3
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .layout import LOC_SHIFT
from .models import ContactState

__all__ = [
    "CATALOG_NAME", "Catalog", "KIND_CALLBACK", "KIND_CODES", "KIND_OUTBOUND", "KIND_TYPES", "SegmentFiling", "VERSION",
]

CATALOG_NAME = "index.sqlite3"
VERSION = 3
"""3: contacts keep their newest thread entry and missed count, listed by activity;
2: phones keyed by `normalise_phone` (1 kept them as written). An index of another version
is rebuilt from the segments at open (data/store.py), with progress."""

KIND_OUTBOUND, KIND_CALLBACK, KIND_INCOMING, KIND_SUBSCRIPTION = 0, 1, 2, 3
"""What a `byseq` row is: an outbound send, a callback, and the two held callback types."""
KIND_CODES = {"incoming_message": KIND_INCOMING, "subscription_created": KIND_SUBSCRIPTION}
KIND_TYPES = {KIND_INCOMING: "incoming_message", KIND_SUBSCRIPTION: "subscription_created", KIND_CALLBACK: ""}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments(no INTEGER PRIMARY KEY, size INTEGER NOT NULL, records INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS byseq(seq INTEGER PRIMARY KEY, loc INTEGER NOT NULL, callback INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS responses(cb_seq INTEGER PRIMARY KEY, loc INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blocks(
    seg INTEGER NOT NULL, phone TEXT NOT NULL, prev INTEGER NOT NULL, locs BLOB NOT NULL,
    PRIMARY KEY(seg, phone)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contacts(
    phone TEXT PRIMARY KEY, session_open INTEGER, subscribed INTEGER, tags TEXT,
    blacklisted INTEGER, loop_flagged INTEGER, last_seen REAL, carrier TEXT,
    messages_in INTEGER, messages_out INTEGER, head INTEGER NOT NULL,
    last_at REAL NOT NULL, last_text TEXT NOT NULL, last_dir TEXT NOT NULL,
    missed INTEGER NOT NULL, active REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mids(mid TEXT PRIMARY KEY, state INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS contacts_by_activity ON contacts(active, phone);
"""


@dataclass
class SegmentFiling:
    """What one closed segment adds to the catalog (built on the loop at rotation)."""

    no: int
    size: int
    records: int
    byseq: list[tuple[int, int, int]] = field(default_factory=list)
    responses: list[tuple[int, int]] = field(default_factory=list)
    blocks: list[tuple[int, str, int, bytes]] = field(default_factory=list)
    contacts: list[tuple[Any, ...]] = field(default_factory=list)
    mids: list[tuple[str, int]] = field(default_factory=list)
    next_seq: int = 1
    counts: tuple[int, int, int] = (0, 0, 0)
    fill: Callable[["SegmentFiling"], None] | None = None
    """Fills the rows one per record (byseq, responses, mids) where the filing is done, on
    the sidecar thread: 50,000 of them built on the loop at rotation held it 30-40 ms."""

    def complete(self) -> None:
        fill, self.fill = self.fill, None
        if fill is not None:
            fill(self)


def contact_row(c: ContactState, head: int) -> tuple[Any, ...]:
    session_open = None if c.session_open is None else int(c.session_open)
    tags = json.dumps(list(c.tags)) if c.tags else "[]"
    return (c.phone, session_open, int(c.subscribed), tags, int(c.blacklisted), int(c.loop_flagged),
            c.last_seen, c.carrier, c.messages_in, c.messages_out, head,
            c.last_at, c.last_text, c.last_dir, c.missed, c.active_at)


class Catalog:
    """The SQLite index of one history directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fresh = not path.exists()
        self._db = self._connect()
        if self.fresh:  # one transaction: one small write, not one per table
            self._db.executescript(
                f"BEGIN; {_SCHEMA} INSERT OR REPLACE INTO meta VALUES ('version', '{VERSION}'); COMMIT;")
        elif self._version() == VERSION:  # an index of another version is rebuilt, not altered
            self._db.executescript(_SCHEMA)

    def _version(self) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        return json.loads(row[0]) if row else None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # a crash may lose the newest transaction, never corrupt: it is re-filed from its segment
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def close(self) -> None:
        self._db.close()

    # ---- reading -------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def segments(self) -> list[tuple[int, int, int]]:
        """(segment, size, records) of every indexed segment, oldest first (a few bytes per
        segment: 400 rows for 20 million records)."""
        return list(self._db.execute("SELECT no, size, records FROM segments ORDER BY no"))

    def contact_count(self) -> int:
        return self._db.execute("SELECT count(*) FROM contacts").fetchone()[0]

    def contact(self, phone: str) -> tuple[ContactState, int] | None:
        """A contact as of `covered`, with its newest thread block's segment."""
        row = self._db.execute("SELECT * FROM contacts WHERE phone = ?", (phone,)).fetchone()
        return (_contact(row), row[10]) if row else None

    def contacts_by_activity(self) -> Iterator[ContactState]:
        """Every contact as of `covered`, most recently active first (`active_at`; ties:
        larger phone first)."""
        for row in self._db.execute("SELECT * FROM contacts ORDER BY active DESC, phone DESC"):
            yield _contact(row)

    def loc(self, seq: int) -> int:
        row = self._db.execute("SELECT loc FROM byseq WHERE seq = ?", (seq,)).fetchone()
        return row[0] if row else -1

    def kind(self, seq: int) -> int | None:
        """The `KIND_*` code of `seq` (None: not indexed)."""
        row = self._db.execute("SELECT callback FROM byseq WHERE seq = ?", (seq,)).fetchone()
        return row[0] if row else None

    def response_loc(self, cb_seq: int) -> int:
        row = self._db.execute("SELECT loc FROM responses WHERE cb_seq = ?", (cb_seq,)).fetchone()
        return row[0] if row else -1

    def delivery(self, mid: str) -> int:
        row = self._db.execute("SELECT state FROM mids WHERE mid = ?", (mid,)).fetchone()
        return row[0] if row else 0

    def head(self, phone: str) -> int:
        row = self._db.execute("SELECT head FROM contacts WHERE phone = ?", (phone,)).fetchone()
        return row[0] if row else 0

    def thread_locs(self, phone: str, head: int, limit: int, before: int = 0) -> list[array]:
        """Up to `limit` of the phone's newest thread locations below `before` (0: all), as
        arrays newest block first (each oldest first), following the blocks back from
        segment `head` (or from `before`'s segment, when the phone has a block there)."""
        parts: list[array] = []
        got = 0
        query = self._db.execute
        seg = head
        if before:
            start = before >> LOC_SHIFT
            if start < head and query("SELECT 1 FROM blocks WHERE seg = ? AND phone = ?", (start, phone)).fetchone():
                seg = start
        while seg > 0 and got < limit:
            row = query("SELECT prev, locs FROM blocks WHERE seg = ? AND phone = ?", (seg, phone)).fetchone()
            if row is None:
                break
            part = array("q")
            part.frombytes(row[1])
            if before and part and part[-1] >= before:
                part = array("q", [loc for loc in part if loc < before])
            if part:
                parts.append(part)
                got += len(part)
            seg = row[0]
        return parts

    def recent_callback_locs(self, below: int, limit: int) -> list[tuple[int, int]]:
        """(seq, loc) of the newest `limit` callbacks with seq < `below`, newest first."""
        return list(self._db.execute(
            "SELECT seq, loc FROM byseq WHERE seq < ? AND callback ORDER BY seq DESC LIMIT ?", (below, limit)))

    # ---- writing -------------------------------------------------------------------------

    def file(self, f: SegmentFiling) -> None:
        """Add one closed segment, in one transaction (its `covered` included)."""
        f.complete()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO byseq VALUES (?, ?, ?)", f.byseq)
            db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?)", f.responses)
            db.executemany("INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?)", f.blocks)
            db.executemany("INSERT OR REPLACE INTO contacts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", f.contacts)
            db.executemany("INSERT OR REPLACE INTO mids VALUES (?, ?)", f.mids)
            db.execute("INSERT OR REPLACE INTO segments VALUES (?, ?, ?)", (f.no, f.size, f.records))
            _set_meta(db, {"covered": f.no, "next_seq": f.next_seq, "counts": list(f.counts)})
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def _contact(r: tuple[Any, ...]) -> ContactState:
    return ContactState(
        phone=r[0], session_open=None if r[1] is None else bool(r[1]), subscribed=bool(r[2]),
        tags=() if r[3] == "[]" else tuple(json.loads(r[3])), blacklisted=bool(r[4]),
        loop_flagged=bool(r[5]), last_seen=r[6], carrier=r[7], messages_in=r[8], messages_out=r[9],
        last_at=r[11], last_text=r[12], last_dir=r[13], missed=r[14],
    )


def _set_meta(db: sqlite3.Connection, values: dict[str, Any]) -> None:
    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()])

