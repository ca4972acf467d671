"""The process's garbage-collection policy: settle once the history is open (`settle_gc`),
then full collections when the operator will not notice them (`IdleCollector`).

CPython runs a full (generation 2) collection whenever enough objects have survived the
younger ones, wherever the program happens to be. With thousands of held requests the heap
holds their connections, requests and tasks, and such a collection stalls the loop while a
burst arrives and the operator types (docs/performance.md). The console
therefore turns the automatic full collections off and runs them itself: once nothing has
happened for `idle_after` seconds (no held text, ending or flag, no key: a flood of delivery
reports alone counts as idle), and in any case every
`at_least_every` seconds so that cyclic garbage cannot pile up during a flood that never
pauses.

The young collections are small (`CONSOLE_YOUNG`). Under 1,000 delivery reports a second
every report leaves two or three tracked objects behind (its stored document, whose dicts
CPython untracks only in a full collection), so the young generation fills with survivors:
with a young threshold of 10,000 a young collection took 6-12 ms every 0.3 s and one of the
middle generation (every tenth) 53-73 ms, each a frame, an arrival or an enter waiting
(docs/performance.md, "Frames of what changed"). With 2,000 a young collection takes about
1.5 ms and one of the middle generation scans a fifth as much: under that flood 11-12 ms
on average and 50 ms at most, against 33 and 75-81 ms.

The middle generation's collections stay: the console makes about 3,300 objects of cyclic
garbage per text answered (Textual's strips and their caches, mostly), and with the middle
generation left to the full collection, the one a minute's activity needed took 0.7-0.8 s."""

from __future__ import annotations

import gc
import time

NEVER = 1_000_000
"""A threshold that is never reached in practice (it counts the collections of the
generation below)."""

CONSOLE_YOUNG = 2_000
"""The young generation's threshold while the console runs: collections of about 1.5 ms
instead of 6-12 ms, five times as often."""


class IdleCollector:
    def __init__(self, idle_after: float = 2.0, at_least_every: float = 300.0, min_gap: float = 30.0) -> None:
        self.idle_after = idle_after
        self.at_least_every = at_least_every
        self.min_gap = min_gap
        now = time.monotonic()
        self._last_activity = now
        self._last_full = now
        self._saved: tuple[int, int, int] | None = None
        self.collections = 0

    def take_over(self, young: int = CONSOLE_YOUNG) -> None:
        """Stop automatic full collections; young ones run every `young` objects, the
        middle generation's as before."""
        if self._saved is None:
            self._saved = gc.get_threshold()
            gc.set_threshold(young, self._saved[1], NEVER)

    def give_back(self) -> None:
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    def activity(self) -> None:
        self._last_activity = time.monotonic()

    def tick(self) -> bool:
        """Call about once a second; returns True when it collected."""
        if self._saved is None or not gc.isenabled():
            return False
        now = time.monotonic()
        since_full = now - self._last_full
        idle = now - self._last_activity >= self.idle_after
        if (idle and since_full >= self.min_gap) or since_full >= self.at_least_every:
            gc.collect()
            self._last_full = time.monotonic()
            self.collections += 1
            return True
        return False


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
