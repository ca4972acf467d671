"""The sidecar format: a closed segment's `seg-NNNNNN.idx`, which holds the indexes as they
stood when that segment closed (a full catalog) or what changed since the sidecar before it
(a delta), so `open()` applies a chain of them instead of replaying every segment.

A sidecar is `IDX_MAGIC`, a little-endian (header length, header CRC32), a JSON header listing
its sections with their lengths and CRCs, then the sections (binary `array('q')` bytes or JSON
lists). `load_chain` finds and applies the newest chain that reads back whole and matches the
segment files' sizes.
"""

from __future__ import annotations

import bisect
import json
import os
import struct
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from .indexes import HistoryIndex, IndexDamaged
from .journal import encode_json_bytes, move_aside, write_durably
from .layout import IDX_RE, LOC_SHIFT, idx_name, seg_name, why
from .models import ContactState

__all__ = ["FULL_EVERY", "IDX_MAGIC", "CatalogCache", "CatalogDamaged", "load_chain", "read_catalog", "write_catalog"]

IDX_MAGIC = b"SBIDX1\n"
FULL_EVERY = 8
"""Every this many rotations the sidecar is a full catalog; in between it is a delta on the
previous one. On a 1M-record history a full one is 37 MB and cost 100-140 ms of CPU per
rotation on the gateway's core; a delta is what one segment changed (about 2 MB)."""


def arr(data: bytes) -> array:
    a = array("q")
    a.frombytes(data)
    return a


class CatalogDamaged(Exception):
    pass


def _json_list(items: list, chunk: int = 5000) -> bytes:
    """A JSON list encoded in pieces, so no single call holds the GIL for long (orjson:
    the stdlib encoder took 0.1 s of CPU for 50,000 contacts at each rotation, on the core
    and under the GIL the gateway uses)."""
    parts = [encode_json_bytes(items[i : i + chunk])[1:-1] for i in range(0, len(items), chunk)]
    return b"[" + b",".join(p for p in parts if p) + b"]"


@dataclass
class CatalogCache:
    """What the last sidecar's slow sections were built from, to reuse them unchanged: a
    flood of delivery reports changes no thread and no contact, and building these two for
    a 1M-record history took most of a rotation's CPU (50,000 phones and contacts)."""

    thread_adds: int = -1
    threads: tuple[bytes, bytes, bytes] | None = None
    contacts: dict | None = None
    contacts_json: bytes = b""


def _contact_rows(contacts: Any) -> bytes:
    return _json_list([  # tuples encode as the same JSON arrays as lists
        (c.phone, c.session_open, c.subscribed, c.tags, c.blacklisted, c.loop_flagged,
         c.last_seen, c.carrier, c.messages_in, c.messages_out)
        for c in contacts
    ])


def _thread_sections(phones: Mapping[str, array], low: int, high: int) -> tuple[bytes, bytes, bytes]:
    """Names, counts and locations of each phone's thread entries in [low, high)."""
    names: list[str] = []
    counts = array("q")
    locs = array("q")
    for phone, arr in phones.items():
        part = arr[:]  # one C-level copy; later appends are past `high`
        if part and part[-1] >= high:
            part = part[: bisect.bisect_left(part, high)]
        if low and part and part[0] < low:
            part = part[bisect.bisect_left(part, low):]
        if not part:
            continue
        names.append(phone)
        counts.append(len(part))
        locs.extend(part)
    return _json_list(names), counts.tobytes(), locs.tobytes()


def _full_sections(snap: dict, cache: CatalogCache) -> dict[str, bytes]:
    if cache.threads is not None and cache.thread_adds == snap["thread_adds"]:
        # nothing was added to any thread since the last full sidecar: same arrays, same cut
        threads = cache.threads
    else:
        threads = _thread_sections(snap["phones"], 0, snap["boundary"])
        cache.threads, cache.thread_adds = threads, snap["thread_adds"]
    # ContactState is immutable and replaced on change: comparing the two maps is a C loop
    # of identity checks when nothing changed
    if cache.contacts is not None and cache.contacts == snap["contacts"]:
        contacts_json = cache.contacts_json
    else:
        contacts_json = _contact_rows(snap["contacts"].values())
        cache.contacts, cache.contacts_json = snap["contacts"], contacts_json
    return _sections(snap, threads, contacts_json)


def _delta_sections(snap: dict) -> dict[str, bytes]:
    threads = _thread_sections(snap["phones"], snap["segment"] << LOC_SHIFT, snap["boundary"])
    before = snap["prev_contacts"]
    changed = [c for phone, c in snap["contacts"].items() if before.get(phone) is not c]
    return _sections(snap, threads, _contact_rows(changed))


def _sections(snap: dict, threads: tuple[bytes, bytes, bytes], contacts_json: bytes) -> dict[str, bytes]:
    """A sidecar's sections, in order (full and delta alike; `_thread_parts`,
    `_contacts_in` and `_mid_states_in` read them back)."""
    msg_state = snap["msg_state"]
    return {
        "seq_loc": snap["seq_loc"],
        "resp_loc": snap["resp_loc"],
        "cb_seqs": snap["cb_seqs"],
        "phone_names": threads[0],
        "phone_counts": threads[1],
        "phone_locs": threads[2],
        "contacts": contacts_json,
        "mids": _json_list(list(msg_state.keys())),
        "mid_states": array("b", msg_state.values()).tobytes(),
    }


def _thread_parts(s: Mapping[str, bytes]) -> Iterator[tuple[str, array]]:
    """(phone, its thread locations) from a sidecar's three thread sections."""
    locs = arr(s["phone_locs"])
    pos = 0
    for name, count in zip(json.loads(s["phone_names"]), arr(s["phone_counts"])):
        yield name, locs[pos : pos + count]
        pos += count


def _contacts_in(s: Mapping[str, bytes]) -> Iterator[ContactState]:
    """The contacts of a sidecar (rows as `_contact_rows` writes them)."""
    for r in json.loads(s["contacts"]):
        yield ContactState(r[0], r[1], r[2], tuple(r[3]), r[4], r[5], r[6], r[7], r[8], r[9])


def _mid_states_in(s: Mapping[str, bytes]) -> Iterator[tuple[str, int]]:
    return zip(json.loads(s["mids"]), array("b", s["mid_states"]))


def write_catalog(data_dir: Path, snap: dict, cache: CatalogCache | None = None) -> None:
    """Write the sidecar of `snap["segment"]`: a full catalog, or a delta on the one before.
    After a full one, the sidecars older than the previous full one are deleted (so a
    damaged newest chain still leaves the one before it)."""
    cache = cache if cache is not None else CatalogCache()
    full = snap["kind"] == "full"
    sections = _full_sections(snap, cache) if full else _delta_sections(snap)
    header = {
        "v": 1,
        "kind": snap["kind"],
        "segment": snap["segment"],
        "sizes": snap["sizes"],
        "next_seq": snap["next_seq"],
        "counts": snap["counts"],
        "sub_created": snap["sub_created"],
    }
    if not full:
        header.update(base=snap["base"], seq_from=snap["seq_from"], resp_from=snap["resp_from"],
                      cb_from=snap["cb_from"])
    header["sections"] = [[name, len(data), zlib.crc32(data)] for name, data in sections.items()]
    head = json.dumps(header).encode()
    path = data_dir / idx_name(snap["segment"])
    chunks = [IDX_MAGIC, struct.pack("<QI", len(head), zlib.crc32(head)), head, *sections.values()]
    write_durably(path, chunks)
    if not full:
        return
    for name in os.listdir(data_dir):
        m = IDX_RE.match(name)
        if m and int(m.group(1)) < snap["keep_from"]:
            try:
                os.unlink(data_dir / name)
            except OSError:
                pass


def read_catalog(path: Path) -> dict:
    data = path.read_bytes()
    if not data.startswith(IDX_MAGIC) or len(data) < len(IDX_MAGIC) + 12:
        raise CatalogDamaged("bad header")
    pos = len(IDX_MAGIC)
    head_len, head_crc = struct.unpack_from("<QI", data, pos)
    pos += 12
    head = data[pos : pos + head_len]
    if len(head) != head_len or zlib.crc32(head) != head_crc:
        raise CatalogDamaged("bad header checksum")
    try:
        header = json.loads(head)
    except ValueError:
        raise CatalogDamaged("bad header") from None
    pos += head_len
    sections: dict[str, bytes] = {}
    for name, size, crc in header["sections"]:
        part = data[pos : pos + size]
        if len(part) != size or zlib.crc32(part) != crc:
            raise CatalogDamaged(f"bad {name} section")
        sections[name] = part
        pos += size
    if pos != len(data):
        raise CatalogDamaged("trailing bytes")
    return {"header": header, "sections": sections}


def decode(catalog: dict) -> tuple[dict, dict[str, Any]]:
    """A read sidecar's header and its sections as index values (see HistoryIndex.apply_*)."""
    s = catalog["sections"]
    parts = {
        "seq_loc": arr(s["seq_loc"]),
        "resp_loc": arr(s["resp_loc"]),
        "cb_seqs": arr(s["cb_seqs"]),
        "threads": list(_thread_parts(s)),
        "contacts": list(_contacts_in(s)),
        "mid_states": list(_mid_states_in(s)),
    }
    return catalog["header"], parts


def load_chain(data_dir: Path, index: HistoryIndex, idxs: list[int], closed: list[int], notices: list[str]) -> int:
    """Apply to `index` the newest usable chain of sidecars (a full one, then the deltas
    after it); returns the segment it ends at (0: none, every closed segment needs a replay).
    A damaged sidecar is moved aside; every sidecar not used is named in `notices`."""
    present = set(idxs)
    bad: set[int] = set()
    for end in reversed(idxs):
        if end not in closed or end in bad:
            continue
        chain = _chain(data_dir, end, present, bad, notices)
        if not chain:
            continue
        if not _matches(data_dir, chain[0], end, closed):
            notices.append(f"sidecar {idx_name(end)} does not match its segments; rebuilding")
            bad.add(end)
            continue
        try:
            index.apply_full(*decode(chain[-1]))
            for delta in reversed(chain[:-1]):
                index.apply_delta(*decode(delta))
        except (CatalogDamaged, IndexDamaged, KeyError, TypeError, ValueError, IndexError) as exc:
            notices.append(f"sidecar chain ending at {idx_name(end)} is inconsistent ({exc}); rebuilding")
            bad.add(end)
            continue
        index.last_full = chain[-1]["header"]["segment"]
        return end
    # nothing usable: start from empty indexes again (a chain may have been half applied)
    index.reset()
    return 0


def _chain(data_dir: Path, end: int, present: set[int], bad: set[int], notices: list[str]) -> list[dict]:
    """The sidecars from `end` back to its full one, newest first ([] if one is unusable)."""
    chain: list[dict] = []
    k = end
    while True:
        catalog = _read_sidecar(data_dir, k, bad, notices)
        if catalog is None:
            return []
        header = catalog["header"]
        if header.get("segment") != k:  # a sidecar under another's name
            notices.append(f"sidecar {idx_name(k)} belongs to another segment; rebuilding")
            bad.add(k)
            return []
        chain.append(catalog)
        if header.get("kind", "full") == "full":
            return chain
        base = header.get("base", -1)
        if base not in present or base in bad or base >= k:
            return []
        k = base


def _read_sidecar(data_dir: Path, k: int, bad: set[int], notices: list[str]) -> dict | None:
    path = data_dir / idx_name(k)
    try:
        return read_catalog(path)
    except CatalogDamaged as exc:
        aside = move_aside(path)
        notices.append(f"sidecar {path.name} was damaged ({exc}); kept as {aside.name}, rebuilding")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = why(exc) if isinstance(exc, OSError) else f"unreadable: {exc}"
        notices.append(f"cannot read sidecar {path.name}: {reason}; rebuilding")
    bad.add(k)
    return None


def _matches(data_dir: Path, catalog: dict, k: int, closed: list[int]) -> bool:
    sizes = {int(n): s for n, s in catalog["header"]["sizes"].items()}
    if sorted(sizes) != [n for n in closed if n <= k]:
        return False
    for n, size in sizes.items():
        try:
            if os.stat(data_dir / seg_name(n)).st_size != size:
                return False
        except FileNotFoundError:
            return False
    return True
