"""File descriptors: the open-files limit raised at start, and a pause in accepting new
connections before the process runs out, so the ones it has (and the history store) keep
working.

Every connection is a descriptor. At the limit, asyncio's accept loop (3.11,
`selector_events._accept_connection`) gets EMFILE, logs it with a traceback and retries a
second later; meanwhile whatever else needs a descriptor fails too: with `ulimit -n 1024`
and 1,200 held requests, the history store could no longer open its files and every
callback after that got a 503. `AcceptGate` stops taking connections from the kernel's
queue while fewer than `RESERVE` descriptors are free (the kernel keeps them queued; the
SL's connections wait there rather than fail) and resumes once enough are free again.

asyncio has no public call to pause a listening socket: the gate removes the socket's
reader and puts back the same callback asyncio registered (read from its selector key once,
at start). Where that is not available the gate does nothing and asyncio's own one-second
retry remains (tests/test_descriptors.py fails if an asyncio upgrade changes this).
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

RESERVE = 256
"""Descriptors kept free: the connections accepted before the gate hears of the one that
crossed the line (asyncio accepts a batch of 64, server/gateway/runner.py's ACCEPT_BATCH, a pass,
and a connection is made two passes after its accept: up to 128), the history store's
files, the terminal, logs and the SL client."""
RECHECK_SECONDS = 0.05
"""While paused, how often the free descriptors are counted again."""


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):  # e.g. macOS caps it below an "unlimited" hard limit
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_descriptors() -> int:
    """How many descriptors this process has open (Linux's /proc; elsewhere a probe)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # listdir's own descriptor
    except OSError:
        probe = os.open(os.devnull, os.O_RDONLY)
        os.close(probe)
        return probe  # the lowest free number: a lower bound of those in use


class AcceptGate:
    """Pauses accepting on `sockets` while the newest connection's descriptor number is in
    the last RESERVE of the limit, and resumes once the open descriptors are a batch below
    that line. Descriptor numbers are handed out lowest first, so a new connection numbered
    past the line means every number below it is taken."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sockets: Iterable[Any], limit: int,
                 reserve: int = RESERVE, batch: int = 64) -> None:
        self.loop = loop
        self.limit = limit
        self.line = max(limit - reserve, 1)
        self.batch = batch
        self.paused = False
        self.pauses = 0
        """Times accepting was paused, since start."""
        self._readers: list[tuple[int, Any, tuple[Any, ...]]] = []
        selector = getattr(loop, "_selector", None)
        for sock in sockets:
            fd = sock.fileno()
            try:
                handle = selector.get_key(fd).data[0]  # type: ignore[union-attr]
                self._readers.append((fd, handle._callback, handle._args))
            except (AttributeError, KeyError, TypeError, IndexError):
                self._readers = []
                log.info("accept pause unavailable on this event loop; asyncio retries after EMFILE")
                break
        self._timer: asyncio.TimerHandle | None = None

    @property
    def available(self) -> bool:
        return bool(self._readers)

    @property
    def max_connections(self) -> int:
        """About how many connections (held requests) the limit allows, from what is open now."""
        return max(self.line - open_descriptors(), 0)

    def opened(self, fd: int) -> None:
        """A connection was accepted with descriptor `fd` (server/gateway/connection.py)."""
        if fd >= self.line and not self.paused and self._readers:
            self._pause()

    def _pause(self) -> None:
        self.paused = True
        self.pauses += 1
        for fd, _, _ in self._readers:
            self.loop.remove_reader(fd)
        if self.pauses == 1 or self.pauses % 100 == 0:
            log.warning("accepting paused (%d times so far): %d of %d descriptors in use; new "
                        "connections wait in the kernel's queue", self.pauses, self.line, self.limit)
        self._timer = self.loop.call_later(RECHECK_SECONDS, self._recheck)

    def _recheck(self) -> None:
        self._timer = None
        if not self.paused:
            return
        if open_descriptors() < self.line - 2 * self.batch:  # room for two passes of accepts
            self.paused = False
            for fd, callback, args in self._readers:
                self.loop.add_reader(fd, callback, *args)
        else:
            self._timer = self.loop.call_later(RECHECK_SECONDS, self._recheck)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.paused = False
