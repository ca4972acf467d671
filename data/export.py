"""JSON Lines export: every stored record, oldest first, one JSON document per line, as it is
stored, made safe to print in a terminal, and never broken: a line that does not read back
whole is counted and named in a notice instead of being written.

`export_on_disk` reads the segment files alone (no lock, no index, nothing written), so it
works while another Switchboard holds the directory, on a read-only directory and on a full
disk.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Iterator, TextIO

import orjson

from .journal import encode_json
from .layout import RECORD_PREFIX, SEG_RE, seg_name

__all__ = ["export_docs", "export_lines", "export_on_disk", "terminal_safe"]

CHUNK = 1 << 20
_PREFIX = RECORD_PREFIX.encode()
_UNSAFE = re.compile("[\u0080-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
"""C1 controls, bidi controls, zero-width characters and line/paragraph separators: inside
a JSON string they are written as \\uXXXX escapes (the same string to any JSON reader), so
the exported text cannot move the cursor, reorder a line or hide text in a terminal."""


def terminal_safe(json_text: str) -> str:
    """`json_text` (compact JSON, C0 controls already escaped) with every character of
    `_UNSAFE` written as a \\uXXXX escape; they can only occur inside strings."""
    return _UNSAFE.sub(lambda m: "\\u%04x" % ord(m.group()), json_text)


def _lines(path: Path, size: int) -> Iterator[bytes]:
    """The complete lines of a file's first `size` bytes, without their newlines."""
    with open(path, "rb") as fh:
        left = size
        carry = b""
        while left > 0:
            data = fh.read(min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            data = carry + data
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            yield from data[:cut].split(b"\n")[:-1]


def export_lines(path: Path, size: int, out: TextIO, notices: list[str]) -> int:
    """Write the records of a segment file's first `size` bytes; returns how many. A record
    line that does not parse (or is not valid UTF-8) is left out and counted in `notices`."""
    count = 0
    bad = 0
    for raw in _lines(path, size):
        if not raw.startswith(_PREFIX):
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                bad += 1
                continue
            if not (isinstance(obj, dict) and isinstance(obj.get("t"), str)):
                bad += 1  # not a journal line at all
            elif isinstance(obj.get("d"), dict):
                out.write(terminal_safe(encode_json(obj["d"])))
                out.write("\n")
                count += 1
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            bad += 1
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("d"), dict):
            bad += 1
            continue
        text = raw.decode()  # valid UTF-8: orjson read it
        cut = text.find(',"d":')
        if list(obj)[-1] == "d" and cut > 0 and text.endswith("}"):
            doc_text = text[cut + 5 : -1]  # as stored, without re-encoding
        else:
            doc_text = encode_json(obj["d"])
        out.write(terminal_safe(doc_text))
        out.write("\n")
        count += 1
    if bad:
        notices.append(f"{path.name}: {bad} damaged record line(s) could not be read and were not exported")
    return count


def export_docs(docs: Iterable[dict], out: TextIO) -> int:
    """Write documents held in memory (the live segment); returns how many."""
    count = 0
    for doc in docs:
        out.write(terminal_safe(encode_json(doc)))
        out.write("\n")
        count += 1
    return count


def export_on_disk(data_dir: Path, out: TextIO, notices: list[str] | None = None) -> int:
    """The history as it is on disk now, oldest first (see the module docstring). Records
    still in a running Switchboard's memory are not on disk yet, and a line being written at
    this moment (no newline yet) is left out. Returns the count."""
    notices = notices if notices is not None else []
    names = os.listdir(data_dir)
    count = 0
    for n in sorted(int(m.group(1)) for name in names if (m := SEG_RE.match(name))):
        path = Path(data_dir) / seg_name(n)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        count += export_lines(path, size, out, notices)
    return count
