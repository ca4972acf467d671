"""The history store: every callback, response and outbound send, kept in TinyDB segments.

Design notes
============

Writes stay O(change). The live segment is a TinyDB database on a `JournalStorage`
(data/journal.py): the documents live in memory and each insert appends one JSON line to the
segment file. `JournalTable._update_table` changes the live dict in place and journals only the
touched document, after encoding it (so a document that will not serialise changes nothing).
`add_*` costs one `json` encode, one list append and a few in-memory index updates; it does no
I/O, so it can run on the event loop before the gateway's first await.

What is durable when. `add_*` only queues the line. `await sync()` is a group commit: the
first caller takes everything queued so far and writes + fsyncs it in the store's own writer
thread; callers arriving meanwhile wait for the next round, so at most one fsync is in flight
and one fsync covers every record added before it started. When `sync()` returns, every record
added before the call is on disk. `sync_blocking()` does the same on the calling thread (for
shutdown and CLIs); `close()` syncs. Writes go through `pwrite` at offsets fixed when the
record was added; a failed write (ENOSPC, EIO) is cut back with `ftruncate` and queued again,
so nothing acknowledged by `add_*` is dropped from memory and nothing half-written stays in
the middle of a file. The failed `sync()` raises `StoreError`; for a second afterwards `add_*`
refuses too (the gateway answers 503), then the next `sync()` retries the write. A failed
fsync is not retried (Linux may have dropped the dirty pages): the store refuses all writes
until it is reopened.

Reserved space. Each journal file keeps `RESERVE` (4 MB) of NUL bytes written ahead of its
last line (data/journal.py), so a round's write lands inside the file and its fdatasync has
no file size or timestamp to commit: a third less CPU per fsync on ext4, +7 % ingest.
Readers stop at the last newline; completing a closed segment and `close()` cut the file back
to its last line, and `open()` cuts back (without a notice) what a crash left. A disk too full
for the reservation only means the file grows with each write, as it did before.

Segments. Records go to `seg-NNNNNN.jsonl`. When the live segment holds `segment_records`
records, the next add closes it: its queued lines go to the writer, a new segment file is
created, and the old TinyDB is dropped once its bytes are on disk (until then reads use it).
Closed segments are immutable JSONL files read on demand with `pread` at byte offsets.

Indexes. A record's location is `segment << 40 | byte offset`. In memory: `array('q')` of
locations by seq, of response locations by callback seq, of callback seqs in order, one
`array('q')` of locations per phone (its thread), the derived `ContactState` per phone and
the delivery state per message id. At rotation the loop takes a snapshot and a background
thread writes it as the sidecar `seg-NNNNNN.idx` of the closed segment (binary arrays +
JSON, each section CRC-checked, segment sizes recorded). Every `FULL_EVERY` (8) rotations
the sidecar is a full catalog of everything up to the end of that segment (memcpys and
dict copies on the loop); in between it is a delta on the sidecar before it: the by-seq
arrays from where that one ended (responses from the oldest callback answered since), the
thread entries in this segment of the phones added to, the contacts that changed and the
delivery states set (all tracked as they happen, so the loop copies only those). On a 1M
history a full sidecar is 37 MB and cost 100-140 ms of CPU; a delta is about 2 MB and
20-35 ms. Kept: the newest chain (its full sidecar and the deltas after it) and the chain
before it. `open()` applies the newest chain that reads back whole and matches the
segment sizes, replays any closed segment after it (then writes a full sidecar in the
background), and loads the live segment into TinyDB, replaying it into the indexes with the
same code `add_*` uses. So 1M records open by reading one full sidecar, at most seven
deltas and one live segment. A sidecar that could not be written makes the next one full;
deltas taken before the failure was known are skipped (open() replays those segments).

Recovery. A torn final line (crash mid-write) is cut off and reported in `notices` as
"ignored a torn final write in <file>". A segment with garbage lines elsewhere is moved aside
to `<name>.corrupt-<timestamp>` and replaced by a copy with every line that still parses (the
good records are kept, the damaged ones are listed only in the moved-aside file). A sidecar
that fails its checks is moved aside the same way; open() uses the chain before it plus the
segments after that (or all segments). A sidecar that no longer matches the segment sizes (a
segment was repaired) is ignored and replaced. A damaged line found later while reading a
closed segment is skipped and reported in `notices`.

Threads. All TinyDB calls and index updates happen on the caller's thread (the event loop).
The writer thread only touches file descriptors and bytes it was handed. `search()` and
`export_jsonl()` take their snapshot of the live segment (a C-level copy of the document
list, atomic under the GIL) when called, then read only that copy and closed files, so they
may run in a worker thread.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import errno
import gc
import fcntl
import heapq
import json
import logging
import os
import re
import struct
import threading
import time
import zlib
from array import array
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TextIO

from tinydb import TinyDB

from .journal import (
    JournalStorage,
    JournalTable,
    encode_json,
    encode_json_bytes,
    load_journal,
    move_aside,
    write_durably,
)
from .names import share
from .models import (
    CallbackRecord,
    ContactState,
    OutboundRecord,
    ResponseRecord,
    ThreadEntry,
    ThreadHit,
)

__all__ = ["HistoryStore", "StoreError", "StoreStats", "SearchProgress"]

log = logging.getLogger(__name__)

TABLE = "records"
LOC_SHIFT = 40
OFF_MASK = (1 << LOC_SHIFT) - 1
SEG_RE = re.compile(r"^seg-(\d{6})\.jsonl$")
IDX_RE = re.compile(r"^seg-(\d{6})\.idx$")
IDX_MAGIC = b"SBIDX1\n"
MAX_BACKLOG = 64 << 20
"""Refuse new records when this many bytes are waiting for a disk that keeps failing."""
RETRY_AFTER = 1.0
SEQ_CHUNK = 4096
FULL_EVERY = 8
"""Every this many rotations the sidecar is a full catalog; in between it is a delta on the
previous one. On a 1M-record history a full one is 37 MB and cost 100-140 ms of CPU per
rotation on the gateway's core; a delta is what one segment changed (about 2 MB)."""

ROUND_PASSES = 3
"""Loop passes between a group commit being asked for and it taking its records. A pass
(call_soon) lets the handlers already scheduled add theirs; a request read meanwhile needs
two more. Interleaved A/B, 16 pairs each: taking them at once made rounds smaller and
fsyncs more frequent (12 % fewer requests a second than 1 pass); 3 passes gave 2 % more
than 1, 7 no more than 3. Idle, a pass takes microseconds."""

FLUSH_SOON = 0.05
"""How soon a held callback is on disk without anyone waiting for it: soon enough that a
crash while it is held keeps it, late enough that a crowd arriving at once shares a few
rounds (a round per arrival made a 6,000-request burst 0.3 s slower to read)."""

DELIVERY_NAMES = ("sent", "pending", "queued", "delivered", "failed")
DELIVERY_CODE = {name: i for i, name in enumerate(DELIVERY_NAMES)}
FINAL = 8


class StoreError(Exception):
    """One-line, user-facing reason."""


class StoreInUse(StoreError):
    """Another Switchboard holds the history directory (it writes there; we may only read)."""


@dataclass(frozen=True)
class StoreStats:
    callbacks: int
    responses: int
    outbound: int
    phones: int
    segments: int


@dataclass(frozen=True)
class SearchProgress:
    hits: list[ThreadHit]
    """Hits found since the previous progress report, newest first."""
    scanned: int
    total: int
    done: bool


def _seg_name(n: int) -> str:
    return f"seg-{n:06d}.jsonl"


def _idx_name(n: int) -> str:
    return f"seg-{n:06d}.idx"


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


# -- records <-> documents ---------------------------------------------------------------


class _Codec:
    """Converts one record dataclass to a JSON document and back (tuples and mappings exact)."""

    def __init__(self, cls: type, kind: str) -> None:
        self.cls = cls
        self.kind = kind
        self.fields: list[tuple[str, str]] = []
        for f in dataclasses.fields(cls):
            t = str(f.type)
            conv = "tuple" if t.startswith("tuple") else "map" if t.startswith("Mapping") else ""
            self.fields.append((f.name, conv))
        self.tuples = [name for name, conv in self.fields if conv == "tuple"]
        self.names = {name for name, _ in self.fields}

    def to_doc(self, rec: Any, **override: Any) -> dict:
        doc: dict[str, Any] = {"kind": self.kind}
        for name, conv in self.fields:
            value = override[name] if name in override else getattr(rec, name)
            if conv == "tuple":
                # a tuple encodes as the same JSON array as a list, and needs no copy
                value = value if type(value) is tuple else tuple(value)
            elif conv == "map":
                # share key strings between documents: the live segment holds many of them
                value = {share(k): v for k, v in value.items()}
            doc[name] = value
        return doc

    def from_doc(self, doc: Mapping[str, Any]) -> Any:
        kwargs = {k: v for k, v in doc.items() if k in self.names}
        for name in self.tuples:
            if name in kwargs:
                kwargs[name] = tuple(kwargs[name])
        return self.cls(**kwargs)


CODECS = {
    "callback": _Codec(CallbackRecord, "callback"),
    "response": _Codec(ResponseRecord, "response"),
    "outbound": _Codec(OutboundRecord, "outbound"),
}


def _plain_dict(value: Mapping[str, Any]) -> dict:
    return value if type(value) is dict else dict(value)


def _callback_doc(rec: CallbackRecord, seq: int) -> dict:
    """`CODECS["callback"].to_doc(rec, seq=seq)`, unrolled (the ingest hot path).

    `fields` and `parsed` are stored as given when they are plain dicts (no copy, no key
    re-sharing: the gateway's form reader already shares field-name strings through
    data/names.py, and records are frozen, so nobody changes these dicts afterwards)."""
    warnings = rec.warnings
    phones = rec.phones
    return {
        "kind": "callback",
        "seq": seq,
        "received_at": rec.received_at,
        "type": rec.type,
        "fields": _plain_dict(rec.fields),
        "parsed": _plain_dict(rec.parsed),
        "warnings": warnings if type(warnings) is tuple else tuple(warnings),
        "phones": phones if type(phones) is tuple else tuple(phones),
        "peer": rec.peer,
        "app": rec.app,
        "held": rec.held,
    }


_probe = CallbackRecord(0, 0.0, "", {}, {})
assert list(_callback_doc(_probe, 1)) == list(CODECS["callback"].to_doc(_probe, seq=1)), "update _callback_doc"
del _probe


def _body(doc: Mapping[str, Any]) -> str:
    body = doc["parsed"].get("body")
    if not isinstance(body, str) or not body:
        body = doc["fields"].get("body") or doc["fields"].get("message") or ""
    return body if isinstance(body, str) else str(body)


def _response_detail(doc: Mapping[str, Any]) -> str:
    decision = doc.get("decision") or {}
    parts: list[str] = []
    outcome = doc.get("outcome")
    if outcome == "timed_out":
        parts.append("timed out — fallback sent")
    elif outcome == "caller_gone":
        parts.append("caller hung up before an answer")
    elif outcome == "overflow":
        parts.append("too many held — fallback sent")
    elif outcome == "shutdown":
        parts.append("shutting down — fallback sent")
    if decision.get("close_session"):
        parts.append("closed session")
    if decision.get("reprocess"):
        parts.append("reprocess")
    tags = decision.get("tags")
    if tags:
        parts.append("tags: " + ", ".join(map(str, tags)))
    return "; ".join(parts)


def _shows_response(doc: Mapping[str, Any]) -> bool:
    decision = doc.get("decision") or {}
    return bool(decision.get("reply")) or doc.get("outcome") in ("timed_out", "caller_gone")


# -- segments held in memory ---------------------------------------------------------------


_NEW_TABLE_LINE = f'{{"t":{encode_json(TABLE)},"new":1}}\n'.encode()
_LINE_HEAD = f'{{"t":{encode_json(TABLE)},"i":'.encode()


class _MemSegment:
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


class _DB(TinyDB):
    table_class = JournalTable


# -- the store -------------------------------------------------------------------------------


class HistoryStore:
    """Every callback, response and outbound record, with per-phone state and threads."""

    def __init__(self, data_dir: Path, segment_records: int, lock_fd: int, full_every: int = FULL_EVERY) -> None:
        self.data_dir = data_dir
        self.segment_records = max(1, int(segment_records))
        self.full_every = max(1, int(full_every))
        self.notices: list[str] = []
        self._lock_fd = lock_fd
        self._reset_indexes()  # the indexes, and which segments are closed
        self._thread_adds = 0
        """Entries added to any phone's thread so far (a sidecar reuses the previous one's
        thread sections while this has not moved)."""
        self._mem: dict[int, _MemSegment] = {}
        self._live: _MemSegment | None = None
        self._read_fds: dict[int, int] = {}
        # writer
        self._jobs: deque[tuple[JournalStorage, int, bytes | None]] = deque()
        self._io_lock = threading.Lock()
        self._writer: _RoundWriter | None = None
        self._round_upto = -1
        """Records the round under way covers; -1: no round under way."""
        self._passes_left = 0
        self._flush_wanted = False
        self._soon: asyncio.TimerHandle | None = None
        self._waiters: list[tuple[int, asyncio.Future]] = []
        """`sync()` callers: (records they wait for, their future)."""
        self._appended = 0
        self._durable = 0
        self._write_error: str | None = None
        self._failed_at = 0.0
        self._broken: str | None = None
        self._closed_flag = False
        self._catalog_thread: threading.Thread | None = None
        self._catalog_cache = _CatalogCache()
        """Sections of the last sidecar written; only the (chained) sidecar threads use it."""
        # what changed since the last sidecar's snapshot (the next delta), see _mark()
        self._mark_seq = 1
        self._mark_cb = 0
        self._resp_from = 1
        self._dirty_phones: dict[str, array] = {}
        """Threads added to since the mark (a dict: the snapshot takes it whole)."""
        self._dirty_mids: dict[str, int] = {}
        """Delivery states set since the mark, as set (taken whole: looking 50,000 ids up
        again in the full map at rotation took 43 ms on the loop)."""
        self._mark_contacts: dict[str, ContactState] = {}
        self._last_full: int | None = None
        """Segment of the newest full sidecar (written or loaded); None: the next is full."""
        self._catalog_written = 0
        """Segment of the newest sidecar on disk (a delta needs the one before it)."""
        self._catalog_broken = False
        """A sidecar could not be written: the next one is full (set by the sidecar thread)."""

    # ---- opening ---------------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: Path, *, segment_records: int = 50_000, full_every: int = FULL_EVERY) -> "HistoryStore":
        """Open (creating if missing) the history in `data_dir`. Raises StoreError (one line).
        `segment_records` and `full_every` (a full sidecar every so many rotations) are
        for tests; the defaults are what the app uses."""
        data_dir = Path(data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise StoreError(f"history path {data_dir} exists and is not a directory") from None
        except OSError as exc:
            raise StoreError(f"cannot create history directory {data_dir}: {_why(exc)}") from None
        if not data_dir.is_dir():
            raise StoreError(f"history path {data_dir} is not a directory")
        if not os.access(data_dir, os.R_OK | os.X_OK):
            raise StoreError(f"history directory {data_dir} is not readable")
        if not os.access(data_dir, os.W_OK):
            raise StoreError(f"history directory {data_dir} is not writable")
        try:
            lock_fd = os.open(data_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot use history directory {data_dir}: {_why(exc)}") from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock_fd)
            raise StoreInUse(f"history directory {data_dir} is in use by another Switchboard") from None
        store = cls(data_dir, segment_records, lock_fd, full_every)
        # Loading creates ~10^6 objects that all survive: the cyclic GC would rescan the
        # growing heap again and again (measured: 3.1 s instead of 1.7 s for a full segment).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            store._probe_space()
            store._load()
        except StoreError:
            store._abandon()
            raise
        except OSError as exc:
            store._abandon()
            where = f" ({exc.filename})" if exc.filename else ""
            raise StoreError(f"cannot open history in {data_dir}: {_why(exc)}{where}") from None
        finally:
            if gc_was_enabled:
                gc.enable()
        _release_free_memory()
        return store

    def _abandon(self) -> None:
        for ms in self._mem.values():
            try:
                os.close(ms.storage.fd)
            except OSError:
                pass
        self._close_read_fds()
        os.close(self._lock_fd)

    def _probe_space(self) -> None:
        """Write and fsync a small file so a full or read-only disk fails at open, not later."""
        probe = self.data_dir / ".probe"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, b"\0" * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreError(f"no space left for history in {self.data_dir}") from None
            raise StoreError(f"cannot write history in {self.data_dir}: {_why(exc)}") from None

    def _load(self) -> None:
        names = os.listdir(self.data_dir)
        segs = sorted(int(m.group(1)) for n in names if (m := SEG_RE.match(n)))
        idxs = sorted(int(m.group(1)) for n in names if (m := IDX_RE.match(n)))
        live_no = segs[-1] if segs else 1
        closed = segs[:-1]
        base = self._load_catalogs(idxs, closed)
        self._mark()
        scanned = False
        for n in closed:
            if n <= base:
                self._closed.append(n)
                continue
            self._scan_closed(n)
            scanned = True
        if scanned and closed:
            self._start_catalog(self._catalog_snapshot(closed[-1], full=True))
        live = self._open_mem_segment(live_no)
        self._live = live
        self._appended = self._durable = 0

    def _load_catalogs(self, idxs: list[int], closed: list[int]) -> int:
        """Apply the newest usable chain of sidecars (a full one, then the deltas after it);
        returns the segment it ends at (0: none, every closed segment is replayed)."""
        present = set(idxs)
        bad: set[int] = set()
        for end in reversed(idxs):
            if end not in closed or end in bad:
                continue
            chain: list[dict] = []
            k = end
            while True:
                catalog = self._read_sidecar(k, bad)
                if catalog is None:
                    chain = []
                    break
                header = catalog["header"]
                if header.get("segment") != k:  # a sidecar under another's name
                    self.notices.append(f"sidecar {_idx_name(k)} belongs to another segment; rebuilding")
                    bad.add(k)
                    chain = []
                    break
                chain.append(catalog)
                if header.get("kind", "full") == "full":
                    break
                base = header.get("base", -1)
                if base not in present or base in bad or base >= k:
                    chain = []
                    break
                k = base
            if not chain:
                continue
            if not self._catalog_matches(chain[0], end, closed):
                self.notices.append(f"sidecar {_idx_name(end)} does not match its segments; rebuilding")
                bad.add(end)
                continue
            try:
                self._apply_catalog(chain[-1])
                for delta in reversed(chain[:-1]):
                    self._apply_delta(delta)
            except (_CatalogDamaged, KeyError, TypeError, ValueError, IndexError) as exc:
                self.notices.append(f"sidecar chain ending at {_idx_name(end)} is inconsistent ({exc}); rebuilding")
                bad.add(end)
                continue
            self._last_full = chain[-1]["header"]["segment"]
            self._catalog_written = end
            return end
        # nothing usable: start from empty indexes again (a chain may have been half applied)
        self._reset_indexes()
        return 0

    def _read_sidecar(self, k: int, bad: set[int]) -> dict | None:
        path = self.data_dir / _idx_name(k)
        try:
            return _read_catalog(path)
        except _CatalogDamaged as exc:
            aside = move_aside(path)
            self.notices.append(f"sidecar {path.name} was damaged ({exc}); kept as {aside.name}, rebuilding")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            why = _why(exc) if isinstance(exc, OSError) else f"unreadable: {exc}"
            self.notices.append(f"cannot read sidecar {path.name}: {why}; rebuilding")
        bad.add(k)
        return None

    def _reset_indexes(self) -> None:
        """Empty indexes: a new store, or a sidecar chain that could not be applied."""
        self._seq_loc = array("q", [-1])
        self._resp_loc = array("q", [-1])
        self._cb_seqs = array("q")
        self._phone_locs: dict[str, array] = {}
        self._contacts: dict[str, ContactState] = {}
        self._msg_state: dict[str, int] = {}
        self._sub_created: set[int] = set()
        self._counts = [0, 0, 0]
        self._next_seq = 1
        self._closed: list[int] = []
        self._sizes: dict[int, int] = {}

    def _mark(self, contacts: dict[str, ContactState] | None = None) -> None:
        """The indexes as they are now are what the newest sidecar holds: the next delta
        starts here. `contacts`: a copy of the contacts just taken, if any."""
        self._mark_seq = self._next_seq
        self._mark_cb = len(self._cb_seqs)
        self._resp_from = self._next_seq
        self._dirty_phones = {}
        self._dirty_mids = {}
        self._mark_contacts = contacts if contacts is not None else self._contacts.copy()

    def _catalog_matches(self, catalog: dict, k: int, closed: list[int]) -> bool:
        sizes = {int(n): s for n, s in catalog["header"]["sizes"].items()}
        if sorted(sizes) != [n for n in closed if n <= k]:
            return False
        for n, size in sizes.items():
            try:
                if os.stat(self.data_dir / _seg_name(n)).st_size != size:
                    return False
            except FileNotFoundError:
                return False
        return True

    def _scan_closed(self, n: int) -> None:
        path = self.data_dir / _seg_name(n)
        entries, size = load_journal(path, self.notices)
        base = n << LOC_SHIFT
        self._closed.append(n)
        self._sizes[n] = size
        for off, obj in entries:
            doc = obj.get("d")
            if doc is not None and obj["t"] == TABLE:
                self._index(doc, base | off)

    def _open_mem_segment(self, n: int) -> _MemSegment:
        path = self.data_dir / _seg_name(n)
        base = n << LOC_SHIFT
        loaded: list[tuple[int, int, dict]] = []

        def on_entry(off: int, obj: dict) -> None:
            if obj["t"] == TABLE:
                loaded.append((off, obj["i"], obj["d"]))

        storage = JournalStorage(path, notices=self.notices, on_entry=on_entry)
        ms = _MemSegment(n, storage, _DB(storage=_Existing(storage)))
        self._mem[n] = ms
        raw = ms.raw()
        for off, doc_id, doc in loaded:
            # a document replaced later in the journal is indexed once, at its last line
            if raw.get(str(doc_id)) is not doc:
                continue
            ms.offs.append(off)
            ms.ids.append(doc_id)
            self._index(doc, base | off)
        return ms

    # ---- the derived state -------------------------------------------------------------

    def _contact(self, phone: str) -> ContactState:
        c = self._contacts.get(phone)
        if c is None:
            c = self._contacts[phone] = ContactState(phone)
        return c

    def _thread_add(self, phone: str, loc: int) -> None:
        self._thread_adds += 1
        locs = self._phone_locs.get(phone)
        if locs is None:
            locs = self._phone_locs[phone] = array("q")
        locs.append(loc)
        self._dirty_phones[phone] = locs

    def _seq_slot(self, seq: int) -> None:
        """Make `seq` a valid index of the by-seq arrays. They grow by SEQ_CHUNK slots at a
        time (-1: none), not one per record: a list and two extends per callback cost half a
        microsecond. Readers check `seq < len(...)` and `>= 0`, so spare slots are harmless."""
        grow = seq + 1 - len(self._seq_loc)
        if grow > 0:
            spare = array("q", [-1]) * max(grow, SEQ_CHUNK)
            self._seq_loc.extend(spare)
            self._resp_loc.extend(spare)

    def _index(self, doc: dict, loc: int) -> None:
        """Update every index and the contact state for one stored document (add and replay)."""
        kind = doc["kind"]
        replace = dataclasses.replace
        contacts = self._contacts
        if kind == "callback":
            seq = doc["seq"]
            if seq >= len(self._seq_loc):
                self._seq_slot(seq)
            self._seq_loc[seq] = loc
            self._cb_seqs.append(seq)
            self._counts[0] += 1
            if seq >= self._next_seq:
                self._next_seq = seq + 1
            typ = doc["type"]
            phones = doc["phones"]
            at = doc["received_at"]
            if typ == "incoming_message" and phones:
                p = phones[0]
                c = contacts.get(p) or ContactState(p)
                carrier = doc["parsed"].get("carrier_name") or c.carrier
                contacts[p] = ContactState(
                    p, True, c.subscribed, c.tags, c.blacklisted, c.loop_flagged,
                    at if at > c.last_seen else c.last_seen, str(carrier),
                    c.messages_in + 1, c.messages_out,
                )
                self._thread_add(p, loc)
                phones = phones[1:]
            for p in phones:
                c = self._contact(p)
                if at > c.last_seen:
                    contacts[p] = ContactState(
                        p, c.session_open, c.subscribed, c.tags, c.blacklisted, c.loop_flagged,
                        at, c.carrier, c.messages_in, c.messages_out,
                    )
            if typ == "incoming_message":
                pass
            elif typ == "delivery_report":
                self._delivery(doc["parsed"])
            elif typ == "session_closed":
                for p in phones:
                    contacts[p] = replace(contacts[p], session_open=False)
            elif typ in ("subscription_created", "subscription_canceled"):
                for p in phones:
                    contacts[p] = replace(contacts[p], subscribed=typ == "subscription_created")
                if typ == "subscription_created":
                    self._sub_created.add(seq)
            elif typ in ("phone_blacklisted", "phone_unblacklisted"):
                for p in phones:
                    contacts[p] = replace(contacts[p], blacklisted=typ == "phone_blacklisted")
            elif typ == "auto_reply_loop":
                for p in phones:
                    contacts[p] = replace(contacts[p], loop_flagged=True)
        elif kind == "response":
            cseq = doc["callback_seq"]
            if cseq > 0:
                self._seq_slot(cseq)
                self._resp_loc[cseq] = loc
                if cseq < self._resp_from:
                    self._resp_from = cseq
            self._counts[1] += 1
            phone = doc.get("phone") or ""
            decision = doc.get("decision") or {}
            was_sub = cseq in self._sub_created
            self._sub_created.discard(cseq)
            if phone:
                c = self._contact(phone)
                changes: dict[str, Any] = {}
                if decision.get("close_session"):
                    changes["session_open"] = False
                tags = decision.get("tags")
                if tags and (was_sub or self._callback_type(cseq) == "subscription_created"):
                    changes["tags"] = tuple(str(t) for t in tags)
                if decision.get("reply"):
                    if not changes:  # the common case, without dataclasses.replace
                        contacts[phone] = ContactState(
                            phone, c.session_open, c.subscribed, c.tags, c.blacklisted,
                            c.loop_flagged, c.last_seen, c.carrier, c.messages_in, c.messages_out + 1,
                        )
                    else:
                        changes["messages_out"] = c.messages_out + 1
                if changes:
                    contacts[phone] = replace(c, **changes)
                if _shows_response(doc):
                    self._thread_add(phone, loc)
        elif kind == "outbound":
            seq = doc["seq"]
            self._seq_slot(seq)
            self._seq_loc[seq] = loc
            self._counts[2] += 1
            if seq >= self._next_seq:
                self._next_seq = seq + 1
            phone = doc["phone"]
            c = self._contact(phone)
            if not doc.get("error"):
                contacts[phone] = ContactState(
                    phone, c.session_open, c.subscribed, c.tags, c.blacklisted, c.loop_flagged,
                    c.last_seen, c.carrier, c.messages_in, c.messages_out + 1,
                )
            self._thread_add(phone, loc)

    def _delivery(self, parsed: Mapping[str, Any]) -> None:
        mid = parsed.get("message_id")
        if not mid:
            return
        mid = str(mid)
        old = self._msg_state.get(mid, 0)
        final = bool(parsed.get("final"))
        if old & FINAL and not final:
            return  # a late, non-final report does not undo a final one
        code = DELIVERY_CODE.get(str(parsed.get("status_name")))
        state = code if code is not None and code > 0 else old & 7
        self._msg_state[mid] = self._dirty_mids[mid] = state | (FINAL if final else 0)

    def _callback_type(self, seq: int) -> str | None:
        if 0 < seq < len(self._seq_loc) and self._seq_loc[seq] >= 0:
            doc = self._doc_at(self._seq_loc[seq])
            if doc is not None and doc.get("kind") == "callback":
                return doc.get("type")
        return None

    # ---- writing -------------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._closed_flag:
            raise StoreError("history store is closed")
        if self._broken is not None:
            raise StoreError(self._broken)
        if self._write_error is not None:
            live = self._live
            if time.monotonic() - self._failed_at < RETRY_AFTER:
                raise StoreError(self._write_error)
            if live is not None and live.storage.pending_size + live.staged_size > MAX_BACKLOG:
                raise StoreError(self._write_error)

    def _insert(self, doc: dict) -> None:
        live = self._live
        assert live is not None
        if len(live.offs) >= self.segment_records:
            self._rotate()
            live = self._live
            assert live is not None
        try:
            doc_id, off = live.stage(doc)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"record cannot be stored: {exc}") from None
        live.offs.append(off)
        live.ids.append(doc_id)
        self._appended += 1
        self._index(doc, (live.no << LOC_SHIFT) | off)

    def add_callback(self, rec: CallbackRecord) -> CallbackRecord:
        """Store a callback; returns it with its seq. Queued only: `await sync()` makes it durable."""
        self._check_writable()
        seq = self._next_seq
        self._insert(_callback_doc(rec, seq))
        if type(rec) is CallbackRecord:  # dataclasses.replace, without its generic overhead
            return CallbackRecord(
                seq, rec.received_at, rec.type, rec.fields, rec.parsed, rec.warnings,
                rec.phones, rec.peer, rec.app, rec.held,
            )
        return dataclasses.replace(rec, seq=seq)

    def add_response(self, rec: ResponseRecord) -> None:
        self._check_writable()
        self._insert(CODECS["response"].to_doc(rec))

    def add_outbound(self, rec: OutboundRecord) -> OutboundRecord:
        self._check_writable()
        seq = self._next_seq
        self._insert(CODECS["outbound"].to_doc(rec, seq=seq))
        return dataclasses.replace(rec, seq=seq)

    def _take_live(self) -> None:
        live = self._live
        if live is not None:
            live.commit()
            chunk = live.storage.take()
            if chunk is not None:
                self._jobs.append((live.storage, chunk[0], chunk[1]))

    def _drain(self) -> None:
        """Write every queued chunk in order, then fsync what was written (any thread)."""
        with self._io_lock:
            touched: list[JournalStorage] = []
            jobs = self._jobs
            while jobs:
                storage, offset, data = jobs.popleft()
                if data is None:  # a retired segment: complete it
                    try:
                        storage.trim()
                        storage.fsync()
                    except OSError:
                        jobs.appendleft((storage, offset, data))
                        raise
                    if storage in touched:
                        touched.remove(storage)
                    os.close(storage.fd)
                    storage.fd = -1
                    storage.drained = True
                    continue
                try:
                    storage.write_at(offset, data)
                except OSError:
                    jobs.appendleft((storage, offset, data))
                    raise
                if storage not in touched:
                    touched.append(storage)
            live = self._live
            if live is not None and live.storage.needs_dir_sync and live.storage not in touched:
                touched.append(live.storage)
            for storage in touched:
                try:
                    storage.fsync()
                except OSError as exc:
                    self._broken = (
                        f"history store failed to fsync {storage.path.name}: {_why(exc)}; "
                        "restart Switchboard"
                    )
                    raise

    def _write_failed(self, exc: OSError) -> StoreError:
        if self._broken is not None:
            return StoreError(self._broken)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            msg = f"no space left for history in {self.data_dir}"
        else:
            msg = f"cannot write history in {self.data_dir}: {_why(exc)}"
        self._write_error = msg
        self._failed_at = time.monotonic()
        return StoreError(msg)

    async def sync(self) -> None:
        """Durable barrier: returns once every record added before the call is on disk."""
        waiter = self.durable_waiter()
        if waiter is not None:
            await waiter

    def durable_waiter(self) -> asyncio.Future | None:
        """What `sync()` awaits, for a caller that awaits it itself (the gateway: one
        coroutine frame less per callback): None when every record added so far is on
        disk, else a future that ends once they are. Raises StoreError, or the future does."""
        if self._closed_flag:
            raise StoreError("history store is closed")
        if self._broken is not None:
            raise StoreError(self._broken)
        target = self._appended
        if self._durable >= target:
            return None
        # One plain future per caller, woken by the first round that covers its records
        # (a caller arriving while a round is under way waits for the next one, without
        # being woken in between); cancelling a caller cancels only its own future.
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        if self._round_upto < 0:
            self._start_round()
        return waiter

    def flush_soon(self) -> None:
        """Have what is queued written within FLUSH_SOON seconds, without waiting for it (a
        held callback: on disk while it waits for the operator, not only once answered).
        Calls in a burst share one round; errors surface at the next `sync()`."""
        if self._soon is None:
            self._soon = asyncio.get_running_loop().call_later(FLUSH_SOON, self._flush_now)

    def _flush_now(self) -> None:
        self._soon = None
        self._start_round()

    def _start_round(self) -> None:
        """Start a group-commit round soon, or right after the one under way."""
        if self._closed_flag or self._broken is not None or self._durable >= self._appended:
            return
        if self._round_upto >= 0:
            self._flush_wanted = True  # after the round under way
            return
        # The round takes its records ROUND_PASSES loop passes later: the handlers already
        # scheduled, and those of requests read meanwhile, add theirs first and share it.
        self._round_upto = 0
        self._passes_left = ROUND_PASSES - 1
        asyncio.get_running_loop().call_soon(self._begin_round)

    def _begin_round(self) -> None:
        if self._passes_left > 0:
            self._passes_left -= 1
            asyncio.get_running_loop().call_soon(self._begin_round)
            return
        if self._closed_flag or self._broken is not None:
            self._round_done(None)
            return
        self._flush_wanted = False
        self._round_upto = self._appended
        self._take_live()
        writer = self._writer
        if writer is None:
            writer = self._writer = _RoundWriter(self._drain)
        writer.go(asyncio.get_running_loop(), self._round_done)

    def _round_done(self, error: BaseException | None) -> None:
        """On the loop, when the writer thread has written (or failed to write) a round."""
        upto, self._round_upto = self._round_upto, -1
        if error is None:
            if upto > self._durable:
                self._durable = upto
            self._write_error = None
        elif isinstance(error, OSError):
            error = self._write_failed(error)
        else:  # pragma: no cover - a bug in _drain: its callers get it, and the log
            log.error("history writer failed", exc_info=error)
        self._reap()
        waiters, later = self._waiters, []
        self._waiters = later
        for target, waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                if target > self._durable:
                    later.append((target, waiter))  # added after this round took its records
                else:
                    waiter.set_result(None)
            else:
                waiter.set_exception(error)
        if (later or self._flush_wanted) and error is None:
            self._start_round()  # records added while this round was under way

    def sync_blocking(self) -> None:
        """Write and fsync everything now, on this thread (shutdown, CLIs)."""
        if self._broken is not None:
            raise StoreError(self._broken)
        upto = self._appended
        self._take_live()
        try:
            self._drain()
        except OSError as exc:
            raise self._write_failed(exc) from None
        if upto > self._durable:
            self._durable = upto
        self._write_error = None
        self._reap()

    def _reap(self) -> None:
        """Drop the in-memory TinyDB of closed segments whose file is complete."""
        for n in [n for n, ms in self._mem.items() if ms is not self._live and ms.storage.drained]:
            del self._mem[n]

    # ---- rotation and sidecars -----------------------------------------------------------

    def _rotate(self) -> None:
        old = self._live
        assert old is not None
        self._take_live()
        self._jobs.append((old.storage, old.storage.end, None))
        self._sizes[old.no] = old.storage.end
        self._closed.append(old.no)
        new_no = old.no + 1
        try:
            self._live = self._open_mem_segment(new_no)
        except OSError as exc:
            self._live = old
            self._closed.pop()
            self._jobs.pop()
            raise self._write_failed(exc) from None
        # taken once the rotation cannot fail (it resets what the next delta holds), and
        # before anything is added to the new segment
        full = self._last_full is None or self._catalog_broken or old.no - self._last_full >= self.full_every
        self._start_catalog(self._catalog_snapshot(old.no, full=full), wait_for=old.storage)

    def _catalog_snapshot(self, seg: int, *, full: bool) -> dict:
        """What the sidecar of `seg` holds, copied on this thread: for a full one, memcpys
        and dict copies of everything; for a delta, what changed since the last snapshot."""
        common = {
            "segment": seg,
            "boundary": (seg + 1) << LOC_SHIFT,
            "sizes": {str(n): self._sizes[n] for n in self._closed if n <= seg},
            "next_seq": self._next_seq,
            "counts": list(self._counts),
            "sub_created": sorted(self._sub_created),
        }
        if full:
            snapshot = {
                **common,
                "kind": "full",
                "keep_from": self._last_full if self._last_full is not None else seg - 1,
                "seq_loc": self._seq_loc.tobytes(),
                "resp_loc": self._resp_loc.tobytes(),
                "cb_seqs": self._cb_seqs.tobytes(),
                "phones": self._phone_locs.copy(),
                "thread_adds": self._thread_adds,
                "contacts": self._contacts.copy(),
                "msg_state": self._msg_state.copy(),
            }
            self._last_full = seg
            self._catalog_broken = False
        else:
            next_seq, seq_from = self._next_seq, self._mark_seq
            resp_from = min(self._resp_from, seq_from)
            snapshot = {
                **common,
                "kind": "delta",
                "base": seg - 1,
                "seq_from": seq_from,
                "resp_from": resp_from,
                "cb_from": self._mark_cb,
                "seq_loc": self._seq_loc[seq_from:next_seq].tobytes(),
                "resp_loc": self._resp_loc[resp_from:next_seq].tobytes(),
                "cb_seqs": self._cb_seqs[self._mark_cb:].tobytes(),
                "phones": self._dirty_phones,
                "contacts": self._contacts.copy(),
                "prev_contacts": self._mark_contacts,
                "msg_state": self._dirty_mids,
            }
        self._mark(snapshot["contacts"])
        return snapshot

    def _start_catalog(self, snapshot: dict, wait_for: JournalStorage | None = None) -> None:
        previous = self._catalog_thread

        def run() -> None:
            if previous is not None:
                previous.join()
            try:
                if wait_for is not None and not wait_for.drained:
                    self._drain()
                if wait_for is not None and not wait_for.drained:
                    self._catalog_broken = True
                    return
                if snapshot["kind"] == "delta" and self._catalog_written != snapshot["base"]:
                    # the one it extends was not written: open() replays from the last good
                    # one, and the next rotation writes a full sidecar
                    self._catalog_broken = True
                    return
                _write_catalog(self.data_dir, snapshot, self._catalog_cache)
                self._catalog_written = snapshot["segment"]
            except Exception as exc:  # the sidecar is an optimisation; open() rebuilds it
                self._catalog_broken = True
                log.warning("could not write history sidecar for segment %s: %s", snapshot["segment"], exc)

        thread = threading.Thread(target=run, name="history-sidecar", daemon=True)
        self._catalog_thread = thread
        thread.start()

    def _apply_catalog(self, catalog: dict) -> None:
        """Replace the indexes with a full sidecar's."""
        s = catalog["sections"]
        self._closed = []
        self._seq_loc = _arr(s["seq_loc"])
        self._resp_loc = _arr(s["resp_loc"])
        self._cb_seqs = _arr(s["cb_seqs"])
        self._phone_locs = dict(_thread_parts(s))
        self._contacts = {c.phone: c for c in _contacts_in(s)}
        self._msg_state = dict(_mid_states_in(s))
        self._apply_header(catalog["header"])

    def _apply_header(self, h: dict) -> None:
        """What every sidecar's header holds whole (full or delta)."""
        self._sizes = {int(n): v for n, v in h["sizes"].items()}
        self._next_seq = h["next_seq"]
        self._counts = list(h["counts"])
        self._sub_created = set(h.get("sub_created", ()))

    def _apply_delta(self, catalog: dict) -> None:
        """Extend the indexes applied so far with a delta sidecar (raises _CatalogDamaged
        if it does not start where they end)."""
        h = catalog["header"]
        s = catalog["sections"]
        next_seq, seq_from, resp_from, cb_from = h["next_seq"], h["seq_from"], h["resp_from"], h["cb_from"]
        if seq_from != self._next_seq or cb_from != len(self._cb_seqs) or not 0 < resp_from <= seq_from <= next_seq:
            raise _CatalogDamaged(f"{_idx_name(h['segment'])} does not start where {_idx_name(h['base'])} ends")
        seq_loc, resp_loc = _arr(s["seq_loc"]), _arr(s["resp_loc"])
        if len(seq_loc) != next_seq - seq_from or len(resp_loc) != next_seq - resp_from:
            raise _CatalogDamaged(f"{_idx_name(h['segment'])} has arrays of the wrong length")
        del self._seq_loc[seq_from:]
        self._seq_loc.extend(seq_loc)
        del self._resp_loc[resp_from:]
        self._resp_loc.extend(resp_loc)
        self._cb_seqs.extend(_arr(s["cb_seqs"]))
        phone_locs = self._phone_locs
        for name, part in _thread_parts(s):
            mine = phone_locs.get(name)
            if mine is None:
                phone_locs[name] = part
            else:
                mine.extend(part)
        self._contacts.update((c.phone, c) for c in _contacts_in(s))
        self._msg_state.update(_mid_states_in(s))
        self._apply_header(h)

    # ---- reading -------------------------------------------------------------------------

    def _read_fd(self, seg: int) -> int:
        fd = self._read_fds.get(seg)
        if fd is None:
            fd = self._read_fds[seg] = os.open(self.data_dir / _seg_name(seg), os.O_RDONLY | os.O_CLOEXEC)
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
            line = _pread_line(self._read_fd(seg), off)
            return json.loads(line)["d"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            note = f"could not read a record in {_seg_name(seg)} at offset {off}: {exc}"
            if note not in self.notices:
                self.notices.append(note)
            return None

    def contact(self, phone: str) -> ContactState | None:
        return self._contacts.get(phone)

    def contacts(self, limit: int = 500) -> list[ContactState]:
        """Most recently seen first."""
        return heapq.nlargest(limit, self._contacts.values(), key=lambda c: c.last_seen)

    def thread(self, phone: str, limit: int = 500) -> list[ThreadEntry]:
        """The last `limit` entries of a phone's conversation, oldest first."""
        locs = self._phone_locs.get(phone)
        if not locs or limit <= 0:
            return []
        out: list[ThreadEntry] = []
        for loc in locs[-limit:]:
            doc = self._doc_at(loc)
            if doc is not None:
                out.append(self._entry(doc))
        return out

    def _entry(self, doc: dict) -> ThreadEntry:
        kind = doc["kind"]
        if kind == "callback":
            return ThreadEntry(
                at=doc["received_at"], direction="in", text=_body(doc), who="texter", seq=doc["seq"]
            )
        if kind == "response":
            decision = doc.get("decision") or {}
            return ThreadEntry(
                at=doc["sent_at"],
                direction="out",
                text=str(decision.get("reply") or ""),
                who=doc["answered_by"],
                seq=doc["callback_seq"],
                detail=_response_detail(doc),
            )
        mids = tuple(doc.get("message_ids") or ())
        states = []
        finals = []
        for mid in mids:
            if mid.startswith("-"):
                states.append("failed")
                finals.append(True)
                continue
            code = self._msg_state.get(mid, 0)
            states.append(DELIVERY_NAMES[code & 7])
            finals.append(bool(code & FINAL))
        return ThreadEntry(
            at=doc["sent_at"],
            direction="out",
            text=doc["body"],
            who="outbound",
            seq=doc["seq"],
            message_ids=mids,
            delivery=tuple(states),  # type: ignore[arg-type]
            final=bool(finals) and all(finals),
            detail=doc.get("error") or "",
        )

    def recent_callbacks(self, limit: int = 200) -> list[CallbackRecord]:
        """The newest `limit` callbacks, oldest first."""
        out = []
        codec = CODECS["callback"]
        for seq in self._cb_seqs[-limit:] if limit > 0 else ():
            doc = self._doc_at(self._seq_loc[seq])
            if doc is not None:
                out.append(codec.from_doc(doc))
        return out

    def _record_by_seq(self, seq: int, kind: str) -> Any:
        if 0 < seq < len(self._seq_loc) and self._seq_loc[seq] >= 0:
            doc = self._doc_at(self._seq_loc[seq])
            if doc is not None and doc.get("kind") == kind:
                return CODECS[kind].from_doc(doc)
        return None

    def callback(self, seq: int) -> CallbackRecord | None:
        return self._record_by_seq(seq, "callback")

    def outbound(self, seq: int) -> OutboundRecord | None:
        """The outbound record with this seq (an addition to the agreed API)."""
        return self._record_by_seq(seq, "outbound")

    def response_for(self, callback_seq: int) -> ResponseRecord | None:
        if 0 < callback_seq < len(self._resp_loc) and self._resp_loc[callback_seq] >= 0:
            doc = self._doc_at(self._resp_loc[callback_seq])
            if doc is not None:
                return CODECS["response"].from_doc(doc)
        return None

    def stats(self) -> StoreStats:
        c, r, o = self._counts
        return StoreStats(
            callbacks=c,
            responses=r,
            outbound=o,
            phones=len(self._contacts),
            segments=len(self._closed) + 1,
        )

    def _segments_snapshot(self) -> list[tuple[int, list[dict] | None, int]]:
        """(segment, documents if in memory else None, file size), oldest first; thread-safe."""
        mem = dict(self._mem)  # copy first: a segment leaves _mem only after it is in _closed
        closed = list(self._closed)
        sizes = dict(self._sizes)
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
        c, r, o = self._counts
        total = c + r + o
        return _search(self.data_dir, segments, text.lower(), max(1, batch), limit, total)

    def export_jsonl(self, out: TextIO) -> int:
        """Write the whole history, oldest first, one JSON object per line; returns the count."""
        count = 0
        for n, docs, size in self._segments_snapshot():
            if docs is not None:
                for doc in docs:
                    out.write(encode_json(doc))
                    out.write("\n")
                    count += 1
                continue
            count += _export_lines(self.data_dir / _seg_name(n), size, out)
        return count

    def _trim_live(self) -> None:
        """Give back the live segment's reserved space (a tidy file; the loader would cut the
        NUL tail anyway, so a failure here loses nothing)."""
        live = self._live
        if live is not None and live.storage.fd >= 0:
            try:
                live.storage.trim()
                live.storage.fsync()
            except OSError:
                pass

    def close(self) -> None:
        """Write + fsync everything and close the files. Safe to call twice."""
        if self._closed_flag:
            return
        try:
            if self._broken is None:
                self.sync_blocking()
                self._trim_live()
        finally:
            self._closed_flag = True
            if self._soon is not None:
                self._soon.cancel()
                self._soon = None
            if self._catalog_thread is not None:
                self._catalog_thread.join()
            if self._writer is not None:
                self._writer.stop()
            for ms in self._mem.values():
                if ms.storage.fd >= 0:
                    os.close(ms.storage.fd)
                    ms.storage.fd = -1
            self._close_read_fds()
            os.close(self._lock_fd)


def settle_gc() -> None:
    """Call once the store is open, in a long-running process (the console, headless).

    Every stored document stays in memory until its segment rotates: one GC-tracked dict
    per record (its nested dicts make it so). With the default thresholds, ingest ran about
    1,300 young and a dozen full collections per 70k requests (580 ms in all, full ones up
    to 96 ms: the p99 stalls). Freezing what exists now (the modules and the opened history)
    takes it out of every later collection, and a higher young threshold makes collections
    rare while each stays small: measured 55 ms in all, the longest about 20 ms.
    """
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def _release_free_memory() -> None:
    """Hand the parse buffers freed after open back to the OS (glibc keeps them otherwise)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _RoundWriter:
    """The store's writer thread: runs `work` once per `go()` and hands the outcome (None or
    the exception) to `done` on the loop. A bare lock wakes it. `run_in_executor` on a
    ThreadPoolExecutor cost about 90 µs of CPU per round on the gateway's core (a task, two
    futures, a queue, their callbacks): at 30 callbacks a round, 3 µs a callback."""

    def __init__(self, work: Callable[[], None]) -> None:
        self._work = work
        self._go = threading.Lock()
        self._go.acquire()  # held until go() (or stop()) lets the thread through once
        self._pending: tuple[asyncio.AbstractEventLoop, Callable[[BaseException | None], None]] | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    def go(self, loop: asyncio.AbstractEventLoop, done: Callable[[BaseException | None], None]) -> None:
        """Run one round. Only once the previous round's `done` has been called."""
        self._pending = (loop, done)
        self._go.release()

    def _run(self) -> None:
        while True:
            self._go.acquire()
            pending, self._pending = self._pending, None
            if pending is not None:
                error: BaseException | None = None
                try:
                    self._work()
                except BaseException as exc:
                    error = exc
                loop, done = pending
                try:
                    loop.call_soon_threadsafe(done, error)
                except RuntimeError:  # the loop is closed: nobody waits for this round
                    pass
            if self._stopping:
                return

    def stop(self) -> None:
        """Let the thread finish the round under way (if any) and end."""
        self._stopping = True
        try:
            self._go.release()
        except RuntimeError:  # already let through: it will see _stopping after that round
            pass
        self._thread.join()


class _Existing:
    """A storage 'class' for TinyDB that hands back an already-open storage."""

    def __init__(self, storage: JournalStorage) -> None:
        self.storage = storage

    def __call__(self) -> JournalStorage:
        return self.storage


def _arr(data: bytes) -> array:
    a = array("q")
    a.frombytes(data)
    return a


def _pread_line(fd: int, off: int) -> bytes:
    size = 4096
    while True:
        data = os.pread(fd, size, off)
        nl = data.find(b"\n")
        if nl >= 0:
            return data[:nl]
        if len(data) < size:
            raise ValueError("unterminated line")
        size *= 4


def export_on_disk(data_dir: Path, out: TextIO) -> int:
    """The history as it is on disk now, oldest first, one JSON object per line, without the
    lock and without writing anything: `export` while a console or headless holds the
    directory. Records still in that process's memory are not on disk yet, and a line being
    written at this moment (no newline yet) is left out. Returns the count."""
    names = os.listdir(data_dir)
    count = 0
    for n in sorted(int(m.group(1)) for name in names if (m := SEG_RE.match(name))):
        path = Path(data_dir) / _seg_name(n)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        count += _export_lines(path, size, out)
    return count


def _export_lines(path: Path, size: int, out: TextIO) -> int:
    """The documents of a segment file's first `size` bytes, as they are stored."""
    count = 0
    for line in _lines_forward(path, size):
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


CHUNK = 1 << 20
RECORD_PREFIX = '{"t":"records","i":'


def _lines_forward(path: Path, size: int) -> Iterator[str]:
    with open(path, "rb") as fh:
        left = size
        carry = b""
        while left > 0:
            data = fh.read(min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            data = carry + data
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            for raw in data[:cut].split(b"\n")[:-1]:
                yield raw.decode("utf-8", "replace")


def _chunks_backward(path: Path, size: int) -> Iterator[str]:
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


def _hit(doc: Mapping[str, Any], needle: str) -> ThreadHit | None:
    kind = doc.get("kind")
    if kind == "callback":
        phones = doc.get("phones") or ()
        body = _body(doc) if doc.get("type") == "incoming_message" else ""
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


def _search(
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
        for chunk in _chunks_backward(data_dir / _seg_name(n), size):
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


# -- sidecar catalogs ---------------------------------------------------------------------------


class _CatalogDamaged(Exception):
    pass


def _json_list(items: list, chunk: int = 5000) -> bytes:
    """A JSON list encoded in pieces, so no single call holds the GIL for long (orjson:
    the stdlib encoder took 0.1 s of CPU for 50,000 contacts at each rotation, on the core
    and under the GIL the gateway uses)."""
    parts = [encode_json_bytes(items[i : i + chunk])[1:-1] for i in range(0, len(items), chunk)]
    return b"[" + b",".join(p for p in parts if p) + b"]"


@dataclass
class _CatalogCache:
    """What the last sidecar's slow sections were built from, to reuse them unchanged: a
    flood of delivery reports changes no thread and no contact, and building these two for
    a 1M-record history took most of a rotation's CPU (50,000 phones and contacts)."""

    thread_adds: int = -1
    threads: tuple[bytes, bytes, bytes] | None = None
    contacts: dict | None = None
    contacts_json: bytes = b""


def _contact_rows(contacts: Any) -> bytes:
    return _json_list([  # tuples encode as the same JSON arrays as lists
        (c.phone, c.session_open, c.subscribed, c.tags, c.blacklisted, c.loop_flagged,
         c.last_seen, c.carrier, c.messages_in, c.messages_out)
        for c in contacts
    ])


def _thread_sections(phones: Mapping[str, array], low: int, high: int) -> tuple[bytes, bytes, bytes]:
    """Names, counts and locations of each phone's thread entries in [low, high)."""
    names: list[str] = []
    counts = array("q")
    locs = array("q")
    for phone, arr in phones.items():
        part = arr[:]  # one C-level copy; later appends are past `high`
        if part and part[-1] >= high:
            part = part[: bisect.bisect_left(part, high)]
        if low and part and part[0] < low:
            part = part[bisect.bisect_left(part, low):]
        if not part:
            continue
        names.append(phone)
        counts.append(len(part))
        locs.extend(part)
    return _json_list(names), counts.tobytes(), locs.tobytes()


def _full_sections(snap: dict, cache: _CatalogCache) -> dict[str, bytes]:
    if cache.threads is not None and cache.thread_adds == snap["thread_adds"]:
        # nothing was added to any thread since the last full sidecar: same arrays, same cut
        threads = cache.threads
    else:
        threads = _thread_sections(snap["phones"], 0, snap["boundary"])
        cache.threads, cache.thread_adds = threads, snap["thread_adds"]
    # ContactState is immutable and replaced on change: comparing the two maps is a C loop
    # of identity checks when nothing changed
    if cache.contacts is not None and cache.contacts == snap["contacts"]:
        contacts_json = cache.contacts_json
    else:
        contacts_json = _contact_rows(snap["contacts"].values())
        cache.contacts, cache.contacts_json = snap["contacts"], contacts_json
    return _sections(snap, threads, contacts_json)


def _delta_sections(snap: dict) -> dict[str, bytes]:
    threads = _thread_sections(snap["phones"], snap["segment"] << LOC_SHIFT, snap["boundary"])
    before = snap["prev_contacts"]
    changed = [c for phone, c in snap["contacts"].items() if before.get(phone) is not c]
    return _sections(snap, threads, _contact_rows(changed))


def _sections(snap: dict, threads: tuple[bytes, bytes, bytes], contacts_json: bytes) -> dict[str, bytes]:
    """A sidecar's sections, in order (full and delta alike; `_thread_parts`,
    `_contacts_in` and `_mid_states_in` read them back)."""
    msg_state = snap["msg_state"]
    return {
        "seq_loc": snap["seq_loc"],
        "resp_loc": snap["resp_loc"],
        "cb_seqs": snap["cb_seqs"],
        "phone_names": threads[0],
        "phone_counts": threads[1],
        "phone_locs": threads[2],
        "contacts": contacts_json,
        "mids": _json_list(list(msg_state.keys())),
        "mid_states": array("b", msg_state.values()).tobytes(),
    }


def _thread_parts(s: Mapping[str, bytes]) -> Iterator[tuple[str, array]]:
    """(phone, its thread locations) from a sidecar's three thread sections."""
    locs = _arr(s["phone_locs"])
    pos = 0
    for name, count in zip(json.loads(s["phone_names"]), _arr(s["phone_counts"])):
        yield name, locs[pos : pos + count]
        pos += count


def _contacts_in(s: Mapping[str, bytes]) -> Iterator[ContactState]:
    """The contacts of a sidecar (rows as `_contact_rows` writes them)."""
    for r in json.loads(s["contacts"]):
        yield ContactState(r[0], r[1], r[2], tuple(r[3]), r[4], r[5], r[6], r[7], r[8], r[9])


def _mid_states_in(s: Mapping[str, bytes]) -> Iterator[tuple[str, int]]:
    return zip(json.loads(s["mids"]), array("b", s["mid_states"]))


def _write_catalog(data_dir: Path, snap: dict, cache: _CatalogCache | None = None) -> None:
    """Write the sidecar of `snap["segment"]`: a full catalog, or a delta on the one before.
    After a full one, the sidecars older than the previous full one are deleted (so a
    damaged newest chain still leaves the one before it)."""
    cache = cache if cache is not None else _CatalogCache()
    full = snap["kind"] == "full"
    sections = _full_sections(snap, cache) if full else _delta_sections(snap)
    header = {
        "v": 1,
        "kind": snap["kind"],
        "segment": snap["segment"],
        "sizes": snap["sizes"],
        "next_seq": snap["next_seq"],
        "counts": snap["counts"],
        "sub_created": snap["sub_created"],
    }
    if not full:
        header.update(base=snap["base"], seq_from=snap["seq_from"], resp_from=snap["resp_from"],
                      cb_from=snap["cb_from"])
    header["sections"] = [[name, len(data), zlib.crc32(data)] for name, data in sections.items()]
    head = json.dumps(header).encode()
    path = data_dir / _idx_name(snap["segment"])
    chunks = [IDX_MAGIC, struct.pack("<QI", len(head), zlib.crc32(head)), head, *sections.values()]
    write_durably(path, chunks)
    if not full:
        return
    for name in os.listdir(data_dir):
        m = IDX_RE.match(name)
        if m and int(m.group(1)) < snap["keep_from"]:
            try:
                os.unlink(data_dir / name)
            except OSError:
                pass


def _read_catalog(path: Path) -> dict:
    data = path.read_bytes()
    if not data.startswith(IDX_MAGIC) or len(data) < len(IDX_MAGIC) + 12:
        raise _CatalogDamaged("bad header")
    pos = len(IDX_MAGIC)
    head_len, head_crc = struct.unpack_from("<QI", data, pos)
    pos += 12
    head = data[pos : pos + head_len]
    if len(head) != head_len or zlib.crc32(head) != head_crc:
        raise _CatalogDamaged("bad header checksum")
    try:
        header = json.loads(head)
    except ValueError:
        raise _CatalogDamaged("bad header") from None
    pos += head_len
    sections: dict[str, bytes] = {}
    for name, size, crc in header["sections"]:
        part = data[pos : pos + size]
        if len(part) != size or zlib.crc32(part) != crc:
            raise _CatalogDamaged(f"bad {name} section")
        sections[name] = part
        pos += size
    if pos != len(data):
        raise _CatalogDamaged("trailing bytes")
    return {"header": header, "sections": sections}
