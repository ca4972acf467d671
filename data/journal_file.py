"""A journal file on disk, apart from the storage that appends to it: how a line is
encoded, how a file is loaded back (a torn final line cut off, damaged lines dropped and the
original kept aside), and how a whole file is written durably. The line format is described
in data/journal.py."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import orjson

__all__ = [
    "JournalDamage",
    "encode_json",
    "encode_json_bytes",
    "fsync_dir",
    "load_journal",
    "move_aside",
    "write_durably",
]

encode_json: Callable[[Any], str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False
).encode
"""Compact JSON, non-ASCII kept as UTF-8 (so substring search can run on raw lines)."""

_orjson_dumps = orjson.dumps


def encode_json_bytes(obj: Any) -> bytes:
    """`encode_json(obj).encode()`, byte for byte, in a tenth of the time (the ingest hot path).

    orjson writes the same compact UTF-8 JSON as `encode_json` for the documents we store. What
    it refuses (integers beyond 64 bits, non-string keys, lone surrogates) goes through the
    stdlib encoder, so the result and the errors (TypeError, ValueError) are the stdlib's.
    (The one difference, NaN, cannot occur: no stored float comes from the network.)"""
    try:
        return _orjson_dumps(obj)
    except TypeError:
        return encode_json(obj).encode()


class JournalDamage(Exception):
    """A journal file could not be repaired (the message is one line)."""


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a directory's entries (created, renamed files) durable."""
    fd = os.open(os.fspath(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_aside(path: str | os.PathLike[str]) -> Path:
    """Rename a damaged file to `<name>.corrupt-<timestamp>` (never delete it); returns the new path."""
    src = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dst = src.with_name(f"{src.name}.corrupt-{stamp}")
    n = 1
    while dst.exists():
        n += 1
        dst = src.with_name(f"{src.name}.corrupt-{stamp}-{n}")
    os.replace(src, dst)
    fsync_dir(src.parent)
    return dst


def _valid(obj: Any) -> bool:
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
        return False
    if "d" in obj:
        return isinstance(obj["d"], dict) and type(obj.get("i")) is int
    return type(obj.get("i")) is int or "clear" in obj or "new" in obj


def write_durably(path: Path, chunks: Iterable[bytes]) -> int:
    """Write a whole file via temp file + fsync + rename + directory fsync; returns its size."""
    tmp = path.with_name(path.name + ".tmp")
    size = 0
    with open(tmp, "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
            size += len(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return size


def _parse_whole(lines: list[bytes], fast: bool) -> list | None:
    """Every line parsed in one call, as one JSON array (None if any line does not parse):
    faster, and json's key memo then shares the key strings of all documents (a large
    saving in memory for a segment held in memory)."""
    if not lines:
        return []
    first, last = lines[0], lines[-1]
    lines[0] = b"[" + first
    lines[-1] = lines[-1] + b"]"
    joined = b",".join(lines)  # brackets included: no further copy before decoding
    lines[0], lines[-1] = first, last
    if len(lines) == 1:
        lines[0] = first
    try:
        objs = orjson.loads(joined) if fast else json.loads(joined)
    except ValueError:
        return None
    return objs if isinstance(objs, list) else None


def _keep_good_lines(
    path: Path, lines: list[bytes], entries: list[tuple[int, dict]], bad: int, notices: list[str]
) -> tuple[list[tuple[int, dict]], int]:
    """Move a damaged journal aside and write a copy of its good lines in its place;
    returns the good entries at their new offsets and the new size."""
    aside = move_aside(path)
    good: list[bytes] = []
    fixed: list[tuple[int, dict]] = []
    pos = 0
    it = iter(entries)
    nxt = next(it, None)
    offset = 0
    for raw in lines:
        if nxt is not None and nxt[0] == offset:
            good.append(raw + b"\n")
            fixed.append((pos, nxt[1]))
            pos += len(raw) + 1
            nxt = next(it, None)
        offset += len(raw) + 1
    write_durably(path, good)
    notices.append(
        f"{path.name} had {bad} damaged line(s): kept {len(fixed)} good record(s), "
        f"the original is kept as {aside.name}"
    )
    return fixed, pos


def load_journal(
    path: str | os.PathLike[str], notices: list[str], *, fast: bool = False, closed: bool = False
) -> tuple[list[tuple[int, dict]], int]:
    """Parse a journal file into `(offset, line object)` pairs and its (repaired) size.
    `fast`: parse a clean file with orjson (3x quicker; keys are then not shared between
    documents, which only matters for one held in memory); a line it refuses is read again
    with `json`, which decides what is damaged. `closed`: a file complete before the last
    crash, so a cut-off last line is damage (moved aside with the rest), not a torn write.

    A torn final line is truncated away; garbage lines elsewhere make the file move aside and
    be replaced by a copy holding only the good lines. Each repair appends one line to `notices`.
    A missing file is an empty journal.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    entries: list[tuple[int, dict]] = []
    bad = 0
    end = data.rfind(b"\n") + 1
    # NUL bytes after the last line are space reserved ahead of the writes (RESERVE), not a
    # torn write; either way the file is cut back to its last complete line.
    torn = end < len(data) and bool(data[end:].strip(b"\0"))
    reserved_tail = end < len(data) and not torn
    cut_off = b""
    if torn and closed:
        cut_off, torn = data[end:], False
    lines = data[:end].split(b"\n")[:-1]
    del data
    offset = 0
    loads = json.loads
    objs = _parse_whole(lines, fast)
    clean = objs is not None and len(objs) == len(lines) and all(map(_valid, objs))
    if clean:
        for raw, obj in zip(lines, objs):
            entries.append((offset, obj))
            offset += len(raw) + 1
        if not cut_off:
            lines = []  # not needed for a rewrite: free them now
    for raw in () if clean else lines:
        try:
            obj = loads(raw)
        except ValueError:
            obj = None
        if obj is not None and _valid(obj):
            entries.append((offset, obj))
        else:
            bad += 1
        offset += len(raw) + 1
    if cut_off:
        bad += 1
    if bad:
        fixed, pos = _keep_good_lines(path, lines, entries, bad, notices)
        if torn:
            notices.append(f"ignored a torn final write in {path.name}")
        return fixed, pos
    if torn or reserved_tail:
        os.truncate(path, end)
    if torn:
        notices.append(f"ignored a torn final write in {path.name}")
    return entries, end
