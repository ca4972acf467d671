"""Opening a history directory: the lock, the check that the disk takes writes, whether
the index still fits the segment files, and the process-wide memory settings."""

from __future__ import annotations

import errno
import fcntl
import os
import sys
from pathlib import Path

from .indexes import HistoryIndex
from .layout import StoreError, StoreInUse, seg_name, why

__all__ = ["catalog_problem", "lock_dir", "probe_space", "release_free_memory", "to_stderr"]


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
