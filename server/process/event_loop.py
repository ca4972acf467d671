"""The asyncio event loop Switchboard runs on (console and headless alike).

asyncio asks the selector for *every* ready socket and runs all their callbacks in one pass
of the loop. When thousands of SL connections send at the same moment (a crowd at a booth,
10,000 held requests), one pass handled ~6,000 sockets and the handler steps they woke:
0.2-0.3 s per pass, several passes in a row, and the console could not read a key meanwhile
(benchmarks/console_bench.py). `FairEpollSelector` hands out at most `FAIR_EVENTS` ready
sockets per pass. epoll is level-triggered here, and a socket it reported goes to the back
of the kernel's ready list, so the rest come in the next passes, in turn; the terminal's
input (the loop's self-pipe) is served between them. With fewer than `FAIR_EVENTS` ready
sockets (the usual case) nothing changes.
"""

from __future__ import annotations

import asyncio
import math
import select
import selectors

FAIR_EVENTS = 64


if hasattr(selectors, "EpollSelector"):

    class FairEpollSelector(selectors.EpollSelector):
        def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            if timeout is None:
                wait = -1.0
            elif timeout <= 0:
                wait = 0.0
            else:
                wait = math.ceil(timeout * 1e3) * 1e-3  # epoll counts milliseconds: round up
            try:
                polled = self._selector.poll(wait, FAIR_EVENTS)  # type: ignore[attr-defined]
            except InterruptedError:
                return []
            ready = []
            fd_to_key = self._fd_to_key  # type: ignore[attr-defined]
            for fd, mask in polled:
                key = fd_to_key.get(fd)
                if key is None:
                    continue
                events = 0
                if mask & ~select.EPOLLIN:
                    events |= selectors.EVENT_WRITE
                if mask & ~select.EPOLLOUT:
                    events |= selectors.EVENT_READ
                ready.append((key, events & key.events))
            return ready


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A loop on `FairEpollSelector` where epoll exists (Linux), else asyncio's default."""
    if hasattr(selectors, "EpollSelector"):
        return asyncio.SelectorEventLoop(FairEpollSelector())
    return asyncio.new_event_loop()
