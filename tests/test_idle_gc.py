"""The console's full-collection policy: off during activity, run when idle, bounded gap."""

from __future__ import annotations

import gc
import time

from server.process.gc_policy import NEVER, IdleCollector


def test_takes_over_and_gives_back_the_thresholds():
    before = gc.get_threshold()
    collector = IdleCollector()
    collector.take_over()
    try:
        assert gc.get_threshold() == (before[0], before[1], NEVER)
    finally:
        collector.give_back()
    assert gc.get_threshold() == before


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
