"""The history's indexes: the catalog on disk (data/catalog.py) for closed segments, and an
overlay in memory for each segment the catalog does not hold yet (the live one, and a closed
one until its filing commits). Memory holds the contact projection (one state per texter)
and the overlays, so it grows with the number of texters and the live segment, never with
the length of the history.

`HistoryIndex.add(doc, loc)` files one stored document (on add and on replay alike);
`close_live()` turns the live overlay into a `SegmentFiling` for the catalog.
"""

from __future__ import annotations

import heapq
from array import array
from functools import partial
from typing import Any, Mapping

from .catalog import KIND_CALLBACK, KIND_CODES, KIND_OUTBOUND, KIND_TYPES, VERSION, Catalog, SegmentFiling, contact_row
from .models import ContactState
from .projection import concerned_phones, needs_answered_type, next_contact, next_delivery, shows_in_thread

__all__ = ["HistoryIndex", "Overlay"]


class Overlay:
    """The index entries of one segment that the catalog does not hold yet."""

    def __init__(self, no: int, first_seq: int) -> None:
        self.no = no
        self.first_seq = first_seq
        self.locs = array("q")
        """Location by `seq - first_seq` (-1: none); seqs are consecutive within a segment."""
        self.is_callback = bytearray()
        """What each seq is, by `seq - first_seq`: a `catalog.KIND_*` code (0: an outbound send)."""
        self.stray: dict[int, tuple[int, int]] = {}
        """seq -> (loc, kind code) for a seq below `first_seq` (an old, repaired history)."""
        self.responses: dict[int, int] = {}
        self.threads: dict[str, array] = {}
        self.mids: dict[str, int] = {}
        self.changed: set[str] = set()
        """Phones whose contact state changed in this segment."""
        self.records = 0

    def set_seq(self, seq: int, loc: int, callback: bool) -> None:
        i = seq - self.first_seq
        n = len(self.locs)
        if i == n:
            self.locs.append(loc)
            self.is_callback.append(callback)
        elif i > n:
            self.locs.extend(array("q", [-1]) * (i - n))
            self.is_callback.extend(bytes(i - n))
            self.locs.append(loc)
            self.is_callback.append(callback)
        elif i >= 0:
            self.locs[i] = loc
            self.is_callback[i] = callback
        else:
            self.stray[seq] = (loc, callback)

    def kind(self, seq: int) -> int | None:
        """The seq's `catalog.KIND_*` code, None if this segment does not have it."""
        i = seq - self.first_seq
        if 0 <= i < len(self.locs):
            return self.is_callback[i] if self.locs[i] >= 0 else None
        hit = self.stray.get(seq)
        return hit[1] if hit else None

    def loc(self, seq: int) -> int | None:
        i = seq - self.first_seq
        if 0 <= i < len(self.locs):
            loc = self.locs[i]
            return loc if loc >= 0 else None
        hit = self.stray.get(seq)
        return hit[0] if hit else None


class HistoryIndex:
    """Every index of one history: `catalog` for the segments it holds, overlays for the
    rest."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.contacts: dict[str, ContactState] = {}
        """The contacts read or changed since open (the catalog holds the rest)."""
        self.phones = 0
        """How many contacts there are."""
        self.heads: dict[str, int] = {}
        """phone -> segment of its newest thread block filed (or being filed); 0: none."""
        self.counts = [0, 0, 0]
        self.next_seq = 1
        self.closed: list[int] = []
        self.sizes: dict[int, int] = {}
        self.covered = 0
        """The newest segment the catalog holds."""
        self.pending: list[Overlay] = []
        """Closed segments whose filing has not been seen to commit, oldest first."""
        self.live = Overlay(1, 1)
        self.version = VERSION

    def load(self) -> None:
        """Start from what the catalog holds."""
        meta = self.catalog.meta()
        self.version = meta.get("version", VERSION)
        self.covered = meta.get("covered", 0)
        self.next_seq = meta.get("next_seq", 1)
        self.counts = list(meta.get("counts", (0, 0, 0)))
        for no, size, _records in self.catalog.segments():
            self.closed.append(no)
            self.sizes[no] = size
        self.phones = self.catalog.contact_count()

    def begin(self, no: int) -> None:
        """Segment `no` is the live one from now on."""
        self.live = Overlay(no, self.next_seq)

    # ---- filing one document -----------------------------------------------------------

    def add(self, doc: dict, loc: int) -> None:
        """File one stored document at `loc` in the live overlay and the contact projection."""
        live = self.live
        live.records += 1
        kind = doc["kind"]
        answered = None
        if kind == "response":
            cseq = doc["callback_seq"]
            if cseq > 0:
                live.responses[cseq] = loc
            self.counts[1] += 1
            if needs_answered_type(doc):
                answered = self._callback_type(cseq)
        else:
            seq = doc["seq"]
            callback = kind == "callback"
            live.set_seq(seq, loc, KIND_CODES.get(doc["type"], KIND_CALLBACK) if callback else KIND_OUTBOUND)
            self.counts[0 if callback else 2] += 1
            if seq >= self.next_seq:
                self.next_seq = seq + 1
            if callback and doc["type"] == "delivery_report":
                self._delivery(doc["parsed"])
        contacts = self.contacts
        for phone in concerned_phones(doc):
            state = contacts.get(phone) or self.contact(phone)
            if state is None:
                state = ContactState(phone)
                self.phones += 1
            in_thread = shows_in_thread(doc, phone)
            new = next_contact(state, doc, answered_type=answered, in_thread=in_thread)
            if new is not state or phone not in contacts:
                contacts[phone] = new
                live.changed.add(phone)
            if in_thread:
                locs = live.threads.get(phone)
                if locs is None:
                    locs = live.threads[phone] = array("q")
                locs.append(loc)

    def _delivery(self, parsed: Mapping[str, Any]) -> None:
        mid = parsed.get("message_id")
        if not mid:
            return
        mid = str(mid)
        state = next_delivery(self.delivery(mid), parsed)
        if state is not None:
            self.live.mids[mid] = state

    def _callback_type(self, seq: int) -> str | None:
        """The type of callback `seq` as far as the rules care (a held type), from the index
        alone: an answer's rules never read a record back."""
        for ov in self._overlays():
            code = ov.kind(seq)
            if code is not None:
                return KIND_TYPES.get(code)
        return KIND_TYPES.get(self.catalog.kind(seq))

    # ---- closing a segment -------------------------------------------------------------

    def close_live(self, size: int, new_no: int) -> SegmentFiling:
        """The live segment (now `size` bytes) is closed: what the catalog must file for it.
        Segment `new_no` is the live one from now on."""
        ov = self.live
        no = ov.no
        self.closed.append(no)
        self.sizes[no] = size
        heads = self.heads
        blocks = []
        for phone, locs in ov.threads.items():
            blocks.append((no, phone, heads.get(phone, 0), locs.tobytes()))
            heads[phone] = no
        contacts = self.contacts
        rows = [contact_row(contacts[p], heads.get(p, 0)) for p in ov.changed | ov.threads.keys()]
        filing = SegmentFiling(
            no=no, size=size, records=ov.records, blocks=blocks, contacts=rows, next_seq=self.next_seq,
            counts=(self.counts[0], self.counts[1], self.counts[2]), fill=partial(_record_rows, ov),
        )
        self.pending.append(ov)
        self.begin(new_no)
        return filing

    def filed(self, upto: int) -> None:
        """The catalog holds every segment up to `upto`: drop their overlays."""
        if upto > self.covered:
            self.covered = upto
        if self.pending and self.pending[0].no <= upto:
            self.pending = [ov for ov in self.pending if ov.no > upto]

    # ---- reading -----------------------------------------------------------------------

    def contact(self, phone: str) -> ContactState | None:
        """A phone's contact state (read from the catalog once, then kept)."""
        state = self.contacts.get(phone)
        if state is None:
            found = self.catalog.contact(phone)
            if found is not None:
                state, head = found
                self.contacts[phone] = state
                if head and phone not in self.heads:
                    self.heads[phone] = head
        return state

    def top_contacts(self, limit: int) -> list[ContactState]:
        """The `limit` most recently active contacts (`ContactState.active_at`), newest
        first (ties: larger phone first): those in memory, merged with the catalog's read
        newest first until `limit` of them are not in memory (a contact in memory is newer
        than its catalog row, and one not in memory is as the catalog has it)."""
        def key(c: ContactState) -> tuple[float, str]:
            return (c.active_at, c.phone)

        mem = self.contacts
        out = heapq.nlargest(limit, mem.values(), key=key)
        rest: list[ContactState] = []
        if limit > 0:
            for state in self.catalog.contacts_by_activity():
                if state.phone not in mem:
                    rest.append(state)
                    if len(rest) >= limit:
                        break
        return heapq.nlargest(limit, out + rest, key=key)

    def _overlays(self) -> list[Overlay]:
        """Newest first (a copy: filing may drop some meanwhile)."""
        return [self.live, *reversed(self.pending)]

    def loc(self, seq: int) -> int:
        """Location of the callback or outbound send `seq`, or -1."""
        for ov in self._overlays():
            loc = ov.loc(seq)
            if loc is not None:
                return loc
        return self.catalog.loc(seq)

    def response_loc(self, cb_seq: int) -> int:
        for ov in self._overlays():
            loc = ov.responses.get(cb_seq)
            if loc is not None:
                return loc
        return self.catalog.response_loc(cb_seq)

    def delivery(self, mid: str) -> int:
        for ov in self._overlays():
            state = ov.mids.get(mid)
            if state is not None:
                return state
        return self.catalog.delivery(mid)

    def thread_locs(self, phone: str, limit: int, before: int = 0) -> list[int]:
        """The locations of the phone's newest `limit` thread entries below `before` (0:
        the newest of all), oldest first. Locations grow along a thread, so `before` is
        the oldest location a reader has."""
        overlays = self._overlays()  # before the head: a segment filed meanwhile is then in it
        head = self.catalog.head(phone)
        newest: list[int] = []
        for ov in overlays:
            if ov.no > head:
                part = ov.threads.get(phone)
                if part:
                    newest[:0] = part if not before else [loc for loc in part if loc < before]
        out = newest[-limit:]
        if len(out) < limit and head:
            for part in self.catalog.thread_locs(phone, head, limit - len(out), before):
                out[:0] = part
            out = out[-limit:]
        return out

    def recent_callback_locs(self, limit: int) -> list[int]:
        """Locations of the newest `limit` callbacks, oldest first."""
        out: list[int] = []
        below = self.next_seq
        for ov in self._overlays():
            locs, cbs = ov.locs, ov.is_callback
            for i in range(len(locs) - 1, -1, -1):
                if len(out) >= limit:
                    return out[::-1]
                if cbs[i] and locs[i] >= 0:
                    out.append(locs[i])
            below = min(below, ov.first_seq)
        if len(out) < limit:
            out.extend(loc for _seq, loc in self.catalog.recent_callback_locs(below, limit - len(out)))
        return out[::-1]


def _record_rows(ov: Overlay, filing: SegmentFiling) -> None:
    """A closed overlay's rows one per record, for its filing (on the sidecar thread: a
    closed overlay no longer changes)."""
    first = ov.first_seq
    filing.byseq = [(first + i, loc, cb) for i, (loc, cb) in enumerate(zip(ov.locs, ov.is_callback)) if loc >= 0]
    filing.byseq.extend((seq, loc, cb) for seq, (loc, cb) in ov.stray.items())
    filing.responses = list(ov.responses.items())
    filing.mids = list(ov.mids.items())
