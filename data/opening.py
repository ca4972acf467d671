"""Opening a history directory: the lock, the check that the disk takes writes, whether
the index still fits the segment files, loading it (`HistoryLoading`: the catalog, the
closed segments it lacks, the live segment), and the process-wide memory settings."""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import sys
from pathlib import Path
from typing import Callable

from .catalog import CATALOG_NAME, VERSION, Catalog
from .indexes import HistoryIndex
from .journal import JournalStorage, load_journal, move_aside
from .layout import IDX_RE, LOC_SHIFT, SEG_RE, TABLE, StoreError, StoreInUse, seg_name, why
from .segments import Existing, MemSegment, SegmentDB

__all__ = ["HistoryLoading", "catalog_problem", "lock_dir", "probe_space", "release_free_memory", "to_stderr"]


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def lock_dir(data_dir: Path) -> int:
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


def release_free_memory() -> None:
    """Hand the parse buffers freed after open back to the OS (glibc keeps them otherwise)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def probe_space(data_dir: Path) -> None:
    """Write and fsync a small file so a full or read-only disk fails at open, not later."""
    probe = data_dir / ".probe"
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
            raise StoreError(f"no space left for history in {data_dir}") from None
        raise StoreError(f"cannot write history in {data_dir}: {why(exc)}") from None


def catalog_problem(data_dir: Path, ix: HistoryIndex, closed: list[int]) -> str | None:
    """Why the catalog cannot be used with the segment files there are (None: it can)."""
    on_disk = set(closed)
    for n in ix.closed:
        if n not in on_disk:
            return f"segment {seg_name(n)} is missing: {records_in(ix, n):,} records lost"
        size = os.stat(data_dir / seg_name(n)).st_size
        if size != ix.sizes[n]:
            return f"segment {seg_name(n)} changed size ({ix.sizes[n]:,} bytes indexed, {size:,} now)"
    return None


def records_in(ix: HistoryIndex, n: int) -> int:
    for no, _size, records in ix.catalog.segments():
        if no == n:
            return records
    return 0


class HistoryLoading:
    """What `HistoryStore.open()` does once the directory is locked: open (or rebuild) the
    catalog, file the closed segments it lacks, load the live segment. Its owner sets
    `data_dir`, `notices`, `_mem`, `_live`, `_catalog` and `_writer_catalog`."""

    data_dir: Path
    notices: list[str]
    _ix: HistoryIndex
    _mem: dict[int, MemSegment]
    _live: MemSegment | None
    _catalog: Catalog | None
    _writer_catalog: Catalog | None

    def _load(self, progress: Callable[[str], None]) -> None:
        names = os.listdir(self.data_dir)
        segs = sorted(int(m.group(1)) for n in names if (m := SEG_RE.match(n)))
        live_no = segs[-1] if segs else 1
        closed = segs[:-1]
        path = self.data_dir / CATALOG_NAME
        upgrade = not path.exists() and bool(closed)
        self._open_catalogs()
        problem = catalog_problem(self.data_dir, self._ix, closed)
        rebuild = problem is not None
        if problem:
            self.notices.append(f"{problem}; rebuilding the index")
        elif self._ix.version != VERSION:  # an index of another format: built again, nothing lost
            progress(f"the index in {self.data_dir} is of format {self._ix.version}; rebuilding it")
            upgrade = rebuild = True
        if rebuild:
            self._close_catalogs()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            self._open_catalogs()
        todo = [n for n in closed if n > self._ix.covered]
        if len(todo) > 1 or upgrade:
            verb = "upgrading" if upgrade else "indexing"
            progress(f"{verb} history in {self.data_dir}: {len(todo)} segments")
        for i, n in enumerate(todo, 1):
            self._file_closed(n)
            if len(todo) > 1 and (i % 10 == 0 or i == len(todo)):
                progress(f"  {i}/{len(todo)} segments indexed")
        for name in names:
            if IDX_RE.match(name):  # the previous version's sidecars: the catalog replaces them
                (self.data_dir / name).unlink(missing_ok=True)
        self._ix.begin(live_no)
        self._live = self._open_mem_segment(live_no)

    def _open_catalogs(self) -> None:
        """Open the catalog (twice: the loop's reader and the filing threads' writer); one
        that SQLite cannot read is moved aside and built again."""
        path = self.data_dir / CATALOG_NAME
        try:
            self._catalog = Catalog(path)
            self._writer_catalog = Catalog(path)
            self._ix = HistoryIndex(self._catalog)
            self._ix.load()
        except (sqlite3.DatabaseError, ValueError, TypeError, KeyError) as exc:
            self._close_catalogs()
            aside = move_aside(path)
            for suffix in ("-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            self.notices.append(f"index {path.name} was damaged ({exc}); kept as {aside.name}, rebuilding")
            self._catalog = Catalog(path)
            self._writer_catalog = Catalog(path)
            self._ix = HistoryIndex(self._catalog)

    def _close_catalogs(self) -> None:
        for catalog in (self._catalog, self._writer_catalog):
            if catalog is not None:
                catalog.close()
        self._catalog = self._writer_catalog = None

    def _file_closed(self, n: int) -> None:
        """Replay closed segment `n` into the indexes and file it in the catalog."""
        entries, size = load_journal(self.data_dir / seg_name(n), self.notices, fast=True, closed=True)
        base = n << LOC_SHIFT
        ix = self._ix
        ix.begin(n)
        for off, obj in entries:
            doc = obj.get("d")
            if doc is not None and obj["t"] == TABLE:
                ix.add(doc, base | off)
        del entries
        filing = ix.close_live(size, n + 1)
        assert self._writer_catalog is not None
        self._writer_catalog.file(filing)
        ix.filed(n)

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
