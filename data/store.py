"""The history store: every callback, response and outbound send, kept in TinyDB segments.

`HistoryStore` is the facade: it opens (locks, repairs, loads) a history directory, adds
records, reads them back and closes. The parts it composes, one job each:

- data/segments.py: segment files; the live one is a TinyDB database in memory
  (data/journal.py appends each insert as one JSON line), closed ones are read on demand.
- data/codec.py: records <-> JSON documents, and how a document shows in a thread.
- data/indexes.py: where each record is, each phone's thread, contact and delivery states.
- data/projection.py: the SMS rules behind contact and delivery states (pure functions).
- data/commit.py: group commit (the writer thread) and the sidecar thread.
- data/sidecar.py: the `seg-NNNNNN.idx` sidecars that let open() skip replaying segments.
- data/scan.py: search and export over the whole history.

What is durable when. `add_*` only queues the line (no I/O, so it can run on the event loop
before the gateway's first await). `await sync()` is a group commit (data/commit.py): when it
returns, every record added before the call is on disk. `sync_blocking()` does the same on
the calling thread; `close()` syncs.

Reserved space. Each journal file keeps `RESERVE` (4 MB) of NUL bytes written ahead of its
last line (data/journal.py), so a round's write lands inside the file and its fdatasync has
no file size or timestamp to commit. Readers stop at the last newline; completing a closed
segment and `close()` cut the file back to its last line, and `open()` cuts back (without a
notice) what a crash left.

Segments. When the live segment holds `segment_records` records, the next add closes it:
its queued lines go to the writer, a new segment file is created, and the old TinyDB is
dropped once its bytes are on disk (until then reads use it). At rotation a background
thread writes the closed segment's sidecar (a full catalog every `full_every` rotations, a
delta in between). `open()` applies the newest chain of sidecars that reads back whole and
matches the segment sizes, replays any closed segment after it, and loads the live segment
into TinyDB, filing it into the indexes with the same code `add_*` uses.

Recovery. A torn final line (crash mid-write) is cut off and reported in `notices`. A
segment with garbage lines elsewhere is moved aside to `<name>.corrupt-<timestamp>` and
replaced by a copy with every line that still parses. A sidecar that fails its checks is
moved aside the same way and rebuilt. A damaged line found later while reading a closed
segment is skipped and reported in `notices`.

Threads. All TinyDB calls and index updates happen on the caller's thread (the event loop).
The writer thread only touches file descriptors and bytes it was handed. `search()` and
`export_jsonl()` take their snapshot of the live segment when called, then read only that
copy and closed files, so they may run in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import fcntl
import gc
import heapq
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, TextIO

from .codec import CODECS, callback_doc, thread_entry
from .commit import FLUSH_SOON, BackgroundChain, GroupCommit
from .journal import JournalStorage, encode_json, load_journal, write_durably
from .layout import IDX_RE, LOC_SHIFT, OFF_MASK, SEG_RE, TABLE, StoreError, StoreInUse, seg_name, why
from .indexes import HistoryIndex
from .models import CallbackRecord, ContactState, OutboundRecord, ResponseRecord, ThreadEntry
from .projection import phone_key
from .scan import SearchProgress, export_lines, export_on_disk, search_segments
from .segments import Existing, MemSegment, SegmentDB, pread_line
from .sidecar import FULL_EVERY, CatalogCache, load_chain, write_catalog

__all__ = [
    "FLUSH_SOON",
    "HistoryStore",
    "SearchProgress",
    "StoreError",
    "StoreInUse",
    "StoreStats",
    "export_on_disk",
    "settle_gc",
    "write_durably",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreStats:
    callbacks: int
    responses: int
    outbound: int
    phones: int
    segments: int


class HistoryStore:
    """Every callback, response and outbound record, with per-phone state and threads."""

    def __init__(self, data_dir: Path, *, segment_records: int, lock_fd: int, full_every: int = FULL_EVERY) -> None:
        self.data_dir = data_dir
        self.segment_records = max(1, int(segment_records))
        self.full_every = max(1, int(full_every))
        self.notices: list[str] = []
        self._lock_fd = lock_fd
        self._ix = HistoryIndex(self._doc_at)
        self._mem: dict[int, MemSegment] = {}
        self._live: MemSegment | None = None
        self._read_fds: dict[int, int] = {}
        self._commit = GroupCommit(
            data_dir, take=self._take_live, after_round=self._reap,
            live=lambda: self._live.storage if self._live is not None else None,
            backlog=self._backlog,
        )
        self._sidecars = BackgroundChain()
        self._catalog_cache = CatalogCache()
        """Sections of the last sidecar written; only the (chained) sidecar threads use it."""
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
        lock_fd = _lock_dir(data_dir)
        store = cls(data_dir, segment_records=segment_records, lock_fd=lock_fd, full_every=full_every)
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
            raise StoreError(f"cannot open history in {data_dir}: {why(exc)}{where}") from None
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
            raise StoreError(f"cannot write history in {self.data_dir}: {why(exc)}") from None

    def _load(self) -> None:
        names = os.listdir(self.data_dir)
        segs = sorted(int(m.group(1)) for n in names if (m := SEG_RE.match(n)))
        idxs = sorted(int(m.group(1)) for n in names if (m := IDX_RE.match(n)))
        live_no = segs[-1] if segs else 1
        closed = segs[:-1]
        ix = self._ix
        base = load_chain(self.data_dir, ix, idxs, closed, self.notices)
        self._catalog_written = base
        ix.mark()
        scanned = False
        for n in closed:
            if n <= base:
                ix.closed.append(n)
                continue
            self._scan_closed(n)
            scanned = True
        if scanned and closed:
            self._start_catalog(ix.snapshot(closed[-1], full=True))
        self._live = self._open_mem_segment(live_no)

    def _scan_closed(self, n: int) -> None:
        entries, size = load_journal(self.data_dir / seg_name(n), self.notices)
        base = n << LOC_SHIFT
        ix = self._ix
        ix.closed.append(n)
        ix.sizes[n] = size
        for off, obj in entries:
            doc = obj.get("d")
            if doc is not None and obj["t"] == TABLE:
                ix.add(doc, base | off)

    def _open_mem_segment(self, n: int) -> MemSegment:
        path = self.data_dir / seg_name(n)
        base = n << LOC_SHIFT
        loaded: list[tuple[int, int, dict]] = []

        def on_entry(off: int, obj: dict) -> None:
            if obj["t"] == TABLE:
                loaded.append((off, obj["i"], obj["d"]))

        storage = JournalStorage(path, notices=self.notices, on_entry=on_entry)
        ms = MemSegment(n, storage, SegmentDB(storage=Existing(storage)))
        self._mem[n] = ms
        raw = ms.raw()
        for off, doc_id, doc in loaded:
            # a document replaced later in the journal is indexed once, at its last line
            if raw.get(str(doc_id)) is not doc:
                continue
            ms.offs.append(off)
            ms.ids.append(doc_id)
            self._ix.add(doc, base | off)
        return ms

    # ---- writing -------------------------------------------------------------------------

    def _backlog(self) -> int:
        live = self._live
        return 0 if live is None else live.storage.pending_size + live.staged_size

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
        self._commit.appended += 1
        self._ix.add(doc, (live.no << LOC_SHIFT) | off)

    def add_callback(self, rec: CallbackRecord) -> CallbackRecord:
        """Store a callback; returns it with its seq. Queued only: `await sync()` makes it durable."""
        self._commit.check_writable()
        seq = self._ix.next_seq
        self._insert(callback_doc(rec, seq))
        if type(rec) is CallbackRecord:  # dataclasses.replace, without its generic overhead
            return CallbackRecord(
                seq, rec.received_at, rec.type, rec.fields, rec.parsed, rec.warnings,
                rec.phones, rec.peer, rec.app, rec.held,
            )
        return dataclasses.replace(rec, seq=seq)

    def add_response(self, rec: ResponseRecord) -> None:
        self._commit.check_writable()
        self._insert(CODECS["response"].to_doc(rec))

    def add_outbound(self, rec: OutboundRecord) -> OutboundRecord:
        self._commit.check_writable()
        seq = self._ix.next_seq
        self._insert(CODECS["outbound"].to_doc(rec, seq=seq))
        return dataclasses.replace(rec, seq=seq)

    def _take_live(self) -> None:
        live = self._live
        if live is not None:
            live.commit()
            chunk = live.storage.take()
            if chunk is not None:
                self._commit.jobs.append((live.storage, chunk[0], chunk[1]))

    async def sync(self) -> None:
        """Durable barrier: returns once every record added before the call is on disk."""
        waiter = self._commit.durable_waiter()
        if waiter is not None:
            await waiter

    def durable_waiter(self) -> asyncio.Future | None:
        """What `sync()` awaits, for a caller that awaits it itself (the gateway: one
        coroutine frame less per callback): None when every record added so far is on
        disk, else a future that ends once they are. Raises StoreError, or the future does."""
        return self._commit.durable_waiter()

    def flush_soon(self) -> None:
        """Have what is queued written within FLUSH_SOON seconds, without waiting for it (a
        held callback: on disk while it waits for the operator, not only once answered).
        Calls in a burst share one round; errors surface at the next `sync()`."""
        self._commit.flush_soon()

    def sync_blocking(self) -> None:
        """Write and fsync everything now, on this thread (shutdown, CLIs)."""
        self._commit.sync_blocking()

    def _reap(self) -> None:
        """Drop the in-memory TinyDB of closed segments whose file is complete."""
        for n in [n for n, ms in self._mem.items() if ms is not self._live and ms.storage.drained]:
            del self._mem[n]

    # ---- rotation and sidecars -----------------------------------------------------------

    def _rotate(self) -> None:
        old = self._live
        assert old is not None
        ix = self._ix
        self._take_live()
        self._commit.jobs.append((old.storage, old.storage.end, None))
        ix.sizes[old.no] = old.storage.end
        ix.closed.append(old.no)
        try:
            self._live = self._open_mem_segment(old.no + 1)
        except OSError as exc:
            self._live = old
            ix.closed.pop()
            self._commit.jobs.pop()
            raise self._commit.write_failed(exc) from None
        # taken once the rotation cannot fail (it resets what the next delta holds), and
        # before anything is added to the new segment
        full = ix.last_full is None or self._catalog_broken or old.no - ix.last_full >= self.full_every
        if full:
            self._catalog_broken = False
        self._start_catalog(ix.snapshot(old.no, full=full), wait_for=old.storage)

    def _start_catalog(self, snapshot: dict, wait_for: JournalStorage | None = None) -> None:
        def run() -> None:
            try:
                if wait_for is not None and not wait_for.drained:
                    self._commit.drain()
                if wait_for is not None and not wait_for.drained:
                    self._catalog_broken = True
                    return
                if snapshot["kind"] == "delta" and self._catalog_written != snapshot["base"]:
                    # the one it extends was not written: open() replays from the last good
                    # one, and the next rotation writes a full sidecar
                    self._catalog_broken = True
                    return
                write_catalog(self.data_dir, snapshot, self._catalog_cache)
                self._catalog_written = snapshot["segment"]
            except Exception as exc:  # the sidecar is an optimisation; open() rebuilds it
                self._catalog_broken = True
                log.warning("could not write history sidecar for segment %s: %s", snapshot["segment"], exc)

        self._sidecars.start(run, "history-sidecar")

    # ---- reading -------------------------------------------------------------------------

    def _read_fd(self, seg: int) -> int:
        fd = self._read_fds.get(seg)
        if fd is None:
            fd = self._read_fds[seg] = os.open(self.data_dir / seg_name(seg), os.O_RDONLY | os.O_CLOEXEC)
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
            return json.loads(line)["d"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            note = f"could not read a record in {seg_name(seg)} at offset {off}: {exc}"
            if note not in self.notices:
                self.notices.append(note)
            return None

    def contact(self, phone: str) -> ContactState | None:
        return self._ix.contacts.get(phone_key(phone))

    def contacts(self, limit: int = 500) -> list[ContactState]:
        """Most recently seen first."""
        return heapq.nlargest(limit, self._ix.contacts.values(), key=lambda c: c.last_seen)

    def thread(self, phone: str, limit: int = 500) -> list[ThreadEntry]:
        """The last `limit` entries of a phone's conversation, oldest first."""
        locs = self._ix.phone_locs.get(phone_key(phone))
        if not locs or limit <= 0:
            return []
        delivery = self._ix.msg_state.get
        out: list[ThreadEntry] = []
        for loc in locs[-limit:]:
            doc = self._doc_at(loc)
            if doc is not None:
                out.append(thread_entry(doc, lambda mid: delivery(mid, 0)))
        return out

    def recent_callbacks(self, limit: int = 200) -> list[CallbackRecord]:
        """The newest `limit` callbacks, oldest first."""
        out = []
        codec = CODECS["callback"]
        ix = self._ix
        for seq in ix.cb_seqs[-limit:] if limit > 0 else ():
            doc = self._doc_at(ix.seq_loc[seq])
            if doc is not None:
                out.append(codec.from_doc(doc))
        return out

    def _record_by_seq(self, seq: int, kind: str) -> Any:
        seq_loc = self._ix.seq_loc
        if 0 < seq < len(seq_loc) and seq_loc[seq] >= 0:
            doc = self._doc_at(seq_loc[seq])
            if doc is not None and doc.get("kind") == kind:
                return CODECS[kind].from_doc(doc)
        return None

    def callback(self, seq: int) -> CallbackRecord | None:
        return self._record_by_seq(seq, "callback")

    def outbound(self, seq: int) -> OutboundRecord | None:
        """The outbound record with this seq (an addition to the agreed API)."""
        return self._record_by_seq(seq, "outbound")

    def response_for(self, callback_seq: int) -> ResponseRecord | None:
        resp_loc = self._ix.resp_loc
        if 0 < callback_seq < len(resp_loc) and resp_loc[callback_seq] >= 0:
            doc = self._doc_at(resp_loc[callback_seq])
            if doc is not None:
                return CODECS["response"].from_doc(doc)
        return None

    def stats(self) -> StoreStats:
        ix = self._ix
        c, r, o = ix.counts
        return StoreStats(callbacks=c, responses=r, outbound=o, phones=len(ix.contacts), segments=len(ix.closed) + 1)

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
        return search_segments(self.data_dir, segments, text.lower(), max(1, batch), limit, total)

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
            count += export_lines(self.data_dir / seg_name(n), size, out)
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
        if self._commit.closed:
            return
        try:
            if self._commit.broken is None:
                self.sync_blocking()
                self._trim_live()
        finally:
            self._commit.closed = True
            self._sidecars.join()
            self._commit.stop()
            for ms in self._mem.values():
                if ms.storage.fd >= 0:
                    os.close(ms.storage.fd)
                    ms.storage.fd = -1
            self._close_read_fds()
            os.close(self._lock_fd)


def _lock_dir(data_dir: Path) -> int:
    """Create (if missing) and lock the history directory; returns the lock's fd."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StoreError(f"history path {data_dir} exists and is not a directory") from None
    except OSError as exc:
        raise StoreError(f"cannot create history directory {data_dir}: {why(exc)}") from None
    if not data_dir.is_dir():
        raise StoreError(f"history path {data_dir} is not a directory")
    if not os.access(data_dir, os.R_OK | os.X_OK):
        raise StoreError(f"history directory {data_dir} is not readable")
    if not os.access(data_dir, os.W_OK):
        raise StoreError(f"history directory {data_dir} is not writable")
    try:
        lock_fd = os.open(data_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot use history directory {data_dir}: {why(exc)}") from None
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock_fd)
        raise StoreInUse(f"history directory {data_dir} is in use by another Switchboard") from None
    return lock_fd


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

