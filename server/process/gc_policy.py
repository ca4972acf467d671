"""The process's garbage-collection policy: settle once the history is open (`settle_gc`),
then full collections when the operator will not notice them (`IdleCollector`).

CPython runs a full (generation 2) collection whenever enough objects have survived the
younger ones, wherever the program happens to be. With thousands of held requests the heap
holds their connections, requests and tasks, and such a collection stalls the loop while a
burst arrives and the operator types (docs/performance.md). The console
therefore turns the automatic full collections off and runs them itself: once nothing has
happened for `idle_after` seconds (no broker event, no key), and in any case every
`at_least_every` seconds so that cyclic garbage cannot pile up during a flood that never
pauses.

The middle generation's automatic collections are off too, and the young ones are small
(`CONSOLE_YOUNG`). Under 1,000 delivery reports a second every report leaves two or three
tracked objects behind (its stored document, whose dicts CPython untracks only in a full
collection), so the young generation fills with survivors: with (10,000, 10) a young
collection took 6-12 ms every 0.3 s and every tenth, of the middle generation, 53-73 ms
(docs/performance.md, "Collections the operator waits for"). Each was a frame, an arrival
or an enter waiting. With the middle generation left to the full collections, a young
collection is the only pause during activity, and it scans at most `CONSOLE_YOUNG` objects.
"""

from __future__ import annotations

import gc
import time

NEVER = 1_000_000
"""A threshold that is never reached in practice (it counts the collections of the
generation below)."""

CONSOLE_YOUNG = 2_000
"""The young generation's threshold while the console runs: collections of about 2 ms
(2,000 objects) instead of 6-12 ms, five times as often; each young object is scanned once
either way."""


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
        """Stop the automatic collections of the two older generations; young ones run
        every `young` objects."""
        if self._saved is None:
            self._saved = gc.get_threshold()
            gc.set_threshold(young, NEVER, NEVER)

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
