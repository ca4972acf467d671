"""The console's full-collection policy: off during activity, run when idle, bounded gap."""

from __future__ import annotations

import gc
import time

from server.process.gc_policy import CONSOLE_YOUNG, NEVER, IdleCollector


def test_takes_over_and_gives_back_the_thresholds():
    before = gc.get_threshold()
    collector = IdleCollector()
    collector.take_over()
    try:
        assert gc.get_threshold() == (CONSOLE_YOUNG, before[1], NEVER)
    finally:
        collector.give_back()
    assert gc.get_threshold() == before


def test_no_full_collection_runs_by_itself_however_many_objects_survive():
    """Young and middle collections go on (the console's cyclic garbage needs them); a full
    one waits for the collector, however many thresholds' worth of objects survive."""
    counts = {0: 0, 1: 0, 2: 0}

    def seen(phase: str, info: dict) -> None:
        if phase == "stop":
            counts[info["generation"]] += 1

    collector = IdleCollector()
    gc.callbacks.append(seen)
    collector.take_over()
    try:
        kept = [[n] for n in range(CONSOLE_YOUNG * 60)]  # survivors: 60 young thresholds' worth
        assert counts[0] >= 20 and counts[1] >= 1
        assert counts[2] == 0
        collector._last_full = 0.0  # due: the full collection takes them
        assert collector.tick() is True
        assert counts[2] == 1
    finally:
        collector.give_back()
        gc.callbacks.remove(seen)
    assert len(kept) == CONSOLE_YOUNG * 60


def test_collects_only_when_idle_and_not_too_often():
    collector = IdleCollector(idle_after=0.2, at_least_every=10.0, min_gap=0.0)
    collector.take_over()
    try:
        collector.activity()
        assert collector.tick() is False  # busy: no full collection
        time.sleep(0.25)
        assert collector.tick() is True  # idle: collect
        collector.min_gap = 10.0
        time.sleep(0.25)
        assert collector.tick() is False  # idle again, but collected a moment ago
        assert collector.collections == 1
    finally:
        collector.give_back()


def test_a_flood_that_never_pauses_still_gets_collected():
    collector = IdleCollector(idle_after=10.0, at_least_every=0.05)
    collector.take_over()
    try:
        time.sleep(0.06)
        collector.activity()
        assert collector.tick() is True
    finally:
        collector.give_back()
