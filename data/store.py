"""The history store: every callback, response and outbound send, kept in TinyDB segments.

`HistoryStore` is the facade: it opens (locks, repairs, upgrades, loads) a history
directory, adds records, reads them back (data/reads.py) and closes. The parts it composes,
one job each:

- data/segments.py: segment files; the live one is a TinyDB database in memory
  (data/journal.py appends each insert as one JSON line), closed ones are read in place.
- data/codec.py: records <-> JSON documents, and how a document shows in a thread.
- data/indexes.py + data/catalog.py: where each record is, each phone's thread, contact and
  delivery states; on disk (index.sqlite3) for closed segments, in memory for the rest.
- data/projection.py: the SMS rules behind contact and delivery states (pure functions).
- data/commit.py: group commit (the writer thread) and the filing thread.
- data/scan.py, data/export.py: search and export over the whole history.

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
dropped once its bytes are on disk (until then reads use it). The closed segment's index
entries (built on the loop as records were added) are filed into the catalog in the
background, in one transaction; until that commits, reads use them from memory. `open()`
reads the catalog's header (contacts are read when asked for), files any closed segment the catalog lacks (a
crash between a rotation and its filing; every one for a history of the previous format:
an upgrade), and loads the live segment into TinyDB, filing it with the code `add_*` uses.
Nothing at open reads a closed segment the catalog holds. A clean `close()` closes and
files a live segment of `CLOSE_AT` (5,000) records or more, so after it the next open
replays at most that many; a full live segment (50,000) is replayed only after a crash.

Recovery. A torn final line of the live segment (crash mid-write) is cut off and reported
in `notices`. A segment with garbage lines elsewhere (or a closed one cut mid-line) is moved
aside to `<name>.corrupt-<timestamp>` and replaced by a copy with every line that still
parses. A closed segment that is missing or changed size is named in `notices` (with the
records lost) and the catalog is rebuilt from the segments; a catalog SQLite cannot read is
moved aside and rebuilt. A damaged line found later while reading is skipped and reported.

Threads. All TinyDB calls and index updates happen on the caller's thread (the event loop).
The writer thread only touches file descriptors and bytes it was handed; the filing thread
only the catalog's writing connection. `search()` and `export_jsonl()` take their snapshot
of the live segment when called, then read only that copy and closed files, so they may
run in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .catalog import Catalog, SegmentFiling
from .codec import CODECS, callback_doc
from .commit import FLUSH_SOON, BackgroundChain, GroupCommit
from .indexes import HistoryIndex
from .journal import JournalStorage
from .layout import LOC_SHIFT, StoreError, StoreInUse, why
from .models import CallbackRecord, OutboundRecord, ResponseRecord
from .opening import HistoryLoading, lock_dir, probe_space, release_free_memory, to_stderr
from .reads import HistoryReads
from .export import export_on_disk
from .scan import SearchProgress
from .segments import MemSegment

__all__ = [
    "FLUSH_SOON",
    "HistoryStore",
    "SearchProgress",
    "StoreError",
    "StoreInUse",
    "StoreStats",
    "export_on_disk",
]

log = logging.getLogger(__name__)

CLOSE_AT = 5_000
"""A live segment with this many records (or a full one) is closed at a clean close."""


@dataclass(frozen=True)
class StoreStats:
    callbacks: int
    responses: int
    outbound: int
    phones: int
    segments: int
    live_records: int = 0
    """Records in the live segment (what the next open replays after a crash)."""


class HistoryStore(HistoryLoading, HistoryReads):
    """Every callback, response and outbound record, with per-phone state and threads."""

    def __init__(self, data_dir: Path, *, segment_records: int, lock_fd: int) -> None:
        self.data_dir = data_dir
        self.segment_records = max(1, int(segment_records))
        self.notices: list[str] = []
        self._lock_fd = lock_fd
        self._catalog: Catalog | None = None
        self._writer_catalog: Catalog | None = None
        self._ix: HistoryIndex
        self._mem: dict[int, MemSegment] = {}
        self._live: MemSegment | None = None
        self._read_fds: dict[int, int] = {}
        self._commit = GroupCommit(
            data_dir, take=self._take_live, after_round=self._reap,
            live=lambda: self._live.storage if self._live is not None else None,
            backlog=self._backlog,
        )
        self._filings = BackgroundChain()
        self._unfiled: list[tuple[JournalStorage, SegmentFiling]] = []
        """Closed segments waiting for the catalog, oldest first (only the filing threads,
        which run one after another, touch it)."""
        self._filed_upto = 0
        """The newest segment a filing thread has committed to the catalog."""

    # ---- opening ---------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        segment_records: int = 50_000,
        progress: Callable[[str], None] | None = None,
    ) -> "HistoryStore":
        """Open (creating if missing) the history in `data_dir`. Raises StoreError (one line).
        `segment_records` is for tests; the default is what the app uses. `progress` hears
        how a long index build (an upgrade, a rebuild) is going; default: stderr."""
        data_dir = Path(data_dir)
        lock_fd = lock_dir(data_dir)
        store = cls(data_dir, segment_records=segment_records, lock_fd=lock_fd)
        # Loading creates ~10^5 objects that all survive: the cyclic GC would rescan the
        # growing heap again and again (measured: 3.1 s instead of 1.7 s for a full segment).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            probe_space(data_dir)
            store._load(progress or to_stderr)
        except StoreError:
            store._abandon()
            raise
        except (OSError, sqlite3.Error) as exc:
            store._abandon()
            reason = why(exc) if isinstance(exc, OSError) else f"index: {exc}"
            where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
            raise StoreError(f"cannot open history in {data_dir}: {reason}{where}") from None
        finally:
            if gc_was_enabled:
                gc.enable()
        release_free_memory()
        return store

    def _abandon(self) -> None:
        for ms in self._mem.values():
            try:
                os.close(ms.storage.fd)
            except OSError:
                pass
        self._close_read_fds()
        for catalog in (self._catalog, self._writer_catalog):
            if catalog is not None:
                catalog.close()
        os.close(self._lock_fd)

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
                seq=seq, received_at=rec.received_at, type=rec.type, fields=rec.fields, parsed=rec.parsed,
                warnings=rec.warnings, phones=rec.phones, peer=rec.peer, app=rec.app, held=rec.held,
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

    def hurry(self) -> None:
        """The group commit being gathered is taken at the next loop pass (data/commit.py)."""
        self._commit.hurry()

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
        self._ix.filed(self._filed_upto)

    # ---- rotation and sidecars -----------------------------------------------------------

    def _rotate(self) -> None:
        old = self._live
        assert old is not None
        self._take_live()
        self._commit.jobs.append((old.storage, old.storage.end, None))
        try:
            new = self._open_mem_segment(old.no + 1)  # a new, empty file: nothing to index
        except OSError as exc:
            self._commit.jobs.pop()
            raise self._commit.write_failed(exc) from None
        self._ix.filed(self._filed_upto)
        filing = self._ix.close_live(old.storage.end, new.no)
        self._live = new
        self._start_filing(old.storage, filing)

    def _start_filing(self, storage: JournalStorage, filing: SegmentFiling) -> None:
        """File a closed segment in the catalog in the background, once its file is whole.
        A filing that fails stays queued: the next rotation tries again (and open() files
        whatever the catalog does not hold)."""
        queue = self._unfiled
        catalog = self._writer_catalog

        def run() -> None:
            queue.append((storage, filing))
            while queue and catalog is not None:
                seg_storage, first = queue[0]
                try:
                    if not seg_storage.drained:
                        self._commit.drain()
                    if not seg_storage.drained:
                        return
                    catalog.file(first)
                except Exception as exc:  # the catalog is derived: the next try or open() redoes it
                    log.warning("could not index history segment %s: %s", first.no, exc)
                    return
                queue.pop(0)
                self._filed_upto = first.no

        self._filings.start(run, "history-index")

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

    def _close_live_segment(self) -> None:
        """At a clean close, close a live segment of `CLOSE_AT` records or more and file it
        (close() waits for the filing), so the next open replays at most that many records:
        a full segment is replayed only after a crash. A failure leaves it live: the next
        open replays it, as after a crash."""
        live = self._live
        if live is not None and len(live.offs) >= min(CLOSE_AT, self.segment_records):
            try:
                self._rotate()
            except StoreError as exc:
                log.warning("history segment %s stays live: %s", live.no, exc)

    def stats(self) -> StoreStats:
        ix = self._ix
        c, r, o = ix.counts
        live = len(self._live.offs) if self._live is not None else 0
        return StoreStats(callbacks=c, responses=r, outbound=o, phones=ix.phones, segments=len(ix.closed) + 1,
                          live_records=live)

    def close(self) -> None:
        """Write + fsync everything and close the files. Safe to call twice."""
        if self._commit.closed:
            return
        try:
            if self._commit.broken is None:
                self._close_live_segment()
                self.sync_blocking()
                self._trim_live()
        finally:
            self._commit.closed = True
            self._filings.join()
            self._commit.stop()
            self._close_catalogs()
            for ms in self._mem.values():
                if ms.storage.fd >= 0:
                    os.close(ms.storage.fd)
                    ms.storage.fd = -1
            self._close_read_fds()
            os.close(self._lock_fd)


