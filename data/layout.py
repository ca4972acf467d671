"""Where the history's pieces live on disk and how a record's location is written: names,
the location encoding and the store's one-line errors (no I/O here)."""

from __future__ import annotations

import re

__all__ = [
    "LOC_SHIFT",
    "OFF_MASK",
    "RECORD_PREFIX",
    "SEG_RE",
    "IDX_RE",
    "TABLE",
    "StoreError",
    "StoreInUse",
    "idx_name",
    "seg_name",
    "why",
]

TABLE = "records"
"""The TinyDB table every segment keeps its records in."""
RECORD_PREFIX = '{"t":"records","i":'
"""How every record line of a segment file starts (a TinyDB journal line of TABLE)."""
LOC_SHIFT = 40
OFF_MASK = (1 << LOC_SHIFT) - 1
"""A record's location is `segment << LOC_SHIFT | byte offset` of its line."""
SEG_RE = re.compile(r"^seg-(\d{6})\.jsonl$")
IDX_RE = re.compile(r"^seg-(\d{6})\.idx$")


class StoreError(Exception):
    """One-line, user-facing reason."""


class StoreInUse(StoreError):
    """Another Switchboard holds the history directory (it writes there; we may only read)."""


def seg_name(n: int) -> str:
    return f"seg-{n:06d}.jsonl"


def idx_name(n: int) -> str:
    return f"seg-{n:06d}.idx"


def why(exc: OSError) -> str:
    return exc.strerror or str(exc)
