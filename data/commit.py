"""Group commit: the store's writer thread and the rounds that make queued records durable,
plus the one background thread that writes sidecars. The only module of `data/` that
touches threads.

`add_*` only queues lines (no I/O, so the gateway can record before its first await). A
round takes everything queued so far and writes + fsyncs it in the writer thread; callers
arriving meanwhile wait for the next round, so at most one fsync is in flight and one fsync
covers every record added before it started. Writes go through `pwrite` at offsets fixed when
the record was added; a failed write (ENOSPC, EIO) is cut back with `ftruncate` and queued
again, so nothing acknowledged is dropped and nothing half-written stays in the middle of a
file. A failed write refuses new records for RETRY_AFTER seconds (the gateway answers 503);
a failed fsync is not retried (Linux may have dropped the dirty pages): the store refuses
all writes until it is reopened.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from .journal import JournalStorage
from .layout import StoreError, why

__all__ = ["FLUSH_SOON", "MAX_BACKLOG", "ROUND_PASSES", "RETRY_AFTER", "BackgroundChain", "GroupCommit"]

log = logging.getLogger("data.store")

MAX_BACKLOG = 64 << 20
"""Refuse new records when this many bytes are waiting for a disk that keeps failing."""
RETRY_AFTER = 1.0

ROUND_PASSES = 3
"""Loop passes between a group commit being asked for and it taking its records. A pass
(call_soon) lets the handlers already scheduled add theirs; a request read meanwhile needs
two more, so rounds are larger and fsyncs fewer (docs/performance.md). `hurry()` skips them
for an answer someone waits for in person."""

FLUSH_SOON = 0.05
"""How soon a held callback is on disk without anyone waiting for it: soon enough that a
crash while it is held keeps it, late enough that a crowd arriving at once shares a few
rounds (a round per arrival made a 6,000-request burst 0.3 s slower to read)."""

Job = tuple[JournalStorage, int, "bytes | None"]
"""(segment storage, offset, bytes to write there); bytes None: complete (trim, fsync,
close) a retired segment."""


class GroupCommit:
    """Durability of the records queued so far. `take()` (on the loop) moves what the store
    has staged into `jobs`; `after_round()` runs on the loop after each write; `live()` is
    the live segment's storage (its directory entry may still need an fsync)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        take: Callable[[], None],
        after_round: Callable[[], None],
        live: Callable[[], JournalStorage | None],
        backlog: Callable[[], int],
    ) -> None:
        self.data_dir = data_dir
        self._take = take
        self._after_round = after_round
        self._live = live
        self._backlog = backlog
        self.jobs: deque[Job] = deque()
        self._io_lock = threading.Lock()
        self._unsynced: list[JournalStorage] = []
        """Files written but not fsynced when a round ran out of file descriptors."""
        self._writer: _RoundWriter | None = None
        self._round_upto = -1
        """Records the round under way covers; -1: no round under way."""
        self._passes_left = 0
        self._flush_wanted = False
        self._soon: asyncio.TimerHandle | None = None
        self._waiters: list[tuple[int, asyncio.Future]] = []
        """`sync()` callers: (records they wait for, their future)."""
        self.appended = 0
        self.durable = 0
        self._write_error: str | None = None
        self._failed_at = 0.0
        self.broken: str | None = None
        self.closed = False

    def check_writable(self) -> None:
        """Raise StoreError if a record may not be added now."""
        if self.closed:
            raise StoreError("history store is closed")
        if self.broken is not None:
            raise StoreError(self.broken)
        if self._write_error is not None:
            if time.monotonic() - self._failed_at < RETRY_AFTER:
                raise StoreError(self._write_error)
            if self._backlog() > MAX_BACKLOG:
                raise StoreError(self._write_error)

    def drain(self) -> None:
        """Write every queued chunk in order, then fsync what was written (any thread)."""
        with self._io_lock:
            touched: list[JournalStorage] = [st for st in self._unsynced if st.fd >= 0]
            self._unsynced = []
            jobs = self.jobs
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
            live = self._live()
            if live is not None and live.needs_dir_sync and live not in touched:
                touched.append(live)
            for i, storage in enumerate(touched):
                try:
                    storage.fsync()
                except OSError as exc:
                    if exc.errno in (errno.EMFILE, errno.ENFILE):
                        # no fd to open the directory with: nothing is lost, and the next
                        # round fsyncs these again before anything counts as durable
                        self._unsynced = touched[i:]
                        raise
                    self.broken = (
                        f"history store failed to fsync {storage.path.name}: {why(exc)}; "
                        "restart Switchboard"
                    )
                    raise

    def write_failed(self, exc: OSError) -> StoreError:
        """The StoreError a failed write means (and the pause before the next try)."""
        if self.broken is not None:
            return StoreError(self.broken)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            msg = f"no space left for history in {self.data_dir}"
        else:
            msg = f"cannot write history in {self.data_dir}: {why(exc)}"
        self._write_error = msg
        self._failed_at = time.monotonic()
        return StoreError(msg)

    def durable_waiter(self) -> asyncio.Future | None:
        """None when every record added so far is on disk, else a future that ends once they
        are. Raises StoreError, or the future does."""
        if self.closed:
            raise StoreError("history store is closed")
        if self.broken is not None:
            raise StoreError(self.broken)
        target = self.appended
        if self.durable >= target:
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
        """Have what is queued written within FLUSH_SOON seconds, without waiting for it."""
        if self._soon is None:
            self._soon = asyncio.get_running_loop().call_later(FLUSH_SOON, self._flush_now)

    def _flush_now(self) -> None:
        self._soon = None
        self._start_round()

    def _start_round(self) -> None:
        """Start a group-commit round soon, or right after the one under way."""
        if self.closed or self.broken is not None or self.durable >= self.appended:
            return
        if self._round_upto >= 0:
            self._flush_wanted = True  # after the round under way
            return
        # The round takes its records ROUND_PASSES loop passes later: the handlers already
        # scheduled, and those of requests read meanwhile, add theirs first and share it.
        self._round_upto = 0
        self._passes_left = ROUND_PASSES - 1
        asyncio.get_running_loop().call_soon(self._begin_round)

    def hurry(self) -> None:
        """Take the round being gathered at the next pass instead of ROUND_PASSES later:
        someone waits for this one in person (an operator's answer), and one fdatasync
        costs less than the frames those passes would wait behind."""
        if self._passes_left > 0:
            self._passes_left = 0

    def _begin_round(self) -> None:
        if self._passes_left > 0:
            self._passes_left -= 1
            asyncio.get_running_loop().call_soon(self._begin_round)
            return
        if self.closed or self.broken is not None:
            self._round_done(None)
            return
        self._flush_wanted = False
        self._round_upto = self.appended
        self._take()
        writer = self._writer
        if writer is None:
            writer = self._writer = _RoundWriter(self.drain)
        writer.go(asyncio.get_running_loop(), self._round_done)

    def _round_done(self, error: BaseException | None) -> None:
        """On the loop, when the writer thread has written (or failed to write) a round."""
        upto, self._round_upto = self._round_upto, -1
        if error is None:
            if upto > self.durable:
                self.durable = upto
            self._write_error = None
        elif isinstance(error, OSError):
            error = self.write_failed(error)
        else:  # pragma: no cover - a bug in drain: its callers get it, and the log
            log.error("history writer failed", exc_info=error)
        self._after_round()
        waiters, later = self._waiters, []
        self._waiters = later
        for target, waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                if target > self.durable:
                    later.append((target, waiter))  # added after this round took its records
                else:
                    waiter.set_result(None)
            else:
                waiter.set_exception(error)
        if (later or self._flush_wanted) and error is None:
            self._start_round()  # records added while this round was under way

    def sync_blocking(self) -> None:
        """Write and fsync everything now, on this thread (shutdown, CLIs)."""
        if self.broken is not None:
            raise StoreError(self.broken)
        upto = self.appended
        self._take()
        try:
            self.drain()
        except OSError as exc:
            raise self.write_failed(exc) from None
        if upto > self.durable:
            self.durable = upto
        self._write_error = None
        self._after_round()

    def stop(self) -> None:
        """No more rounds: cancel a pending flush and end the writer thread."""
        self.closed = True
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        if self._writer is not None:
            self._writer.stop()


class BackgroundChain:
    """Runs jobs one after another on their own threads (sidecar writes): each job's thread
    first waits for the one before it, so they finish in the order they were started."""

    def __init__(self) -> None:
        self._last: threading.Thread | None = None

    def start(self, job: Callable[[], None], name: str) -> None:
        previous = self._last

        def run() -> None:
            if previous is not None:
                previous.join()
            job()

        thread = threading.Thread(target=run, name=name, daemon=True)
        self._last = thread
        thread.start()

    def join(self) -> None:
        if self._last is not None:
            self._last.join()


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

