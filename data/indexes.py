"""The history's indexes, in memory: where each record is, each phone's thread, the contact
projection and delivery states, and what changed since the last sidecar (the next delta).

`HistoryIndex.add(doc, loc)` files one stored document (on add and on replay alike); the
sidecar module turns `snapshot()` into a file and hands a read one back to `apply_full` and
`apply_delta`. No I/O here: reading a document back goes through the `doc_at` given.
"""

from __future__ import annotations

from array import array
from typing import Any, Callable, Mapping

from .layout import LOC_SHIFT, idx_name
from .models import ContactState
from .projection import concerned_phones, next_contact, next_delivery, shows_in_thread

__all__ = ["HistoryIndex", "IndexDamaged", "SEQ_CHUNK"]

SEQ_CHUNK = 4096


class IndexDamaged(Exception):
    """A sidecar does not fit the indexes it is applied to."""


class HistoryIndex:
    """Every index of one history. `doc_at(loc)` reads a stored document back (None if it
    cannot be read); only the tag rule needs it, for an answer to an old callback."""

    def __init__(self, doc_at: Callable[[int], dict | None]) -> None:
        self.doc_at = doc_at
        self.reset()
        self.thread_adds = 0
        """Entries added to any phone's thread so far (a sidecar reuses the previous one's
        thread sections while this has not moved)."""
        self.last_full: int | None = None
        """Segment of the newest full sidecar (written or loaded); None: the next is full."""
        self.mark()

    def reset(self) -> None:
        """Empty indexes: a new store, or a sidecar chain that could not be applied."""
        self.seq_loc = array("q", [-1])
        self.resp_loc = array("q", [-1])
        self.cb_seqs = array("q")
        self.phone_locs: dict[str, array] = {}
        self.contacts: dict[str, ContactState] = {}
        self.msg_state: dict[str, int] = {}
        self.sub_created: set[int] = set()
        self.counts = [0, 0, 0]
        self.next_seq = 1
        self.closed: list[int] = []
        self.sizes: dict[int, int] = {}

    def mark(self, contacts: dict[str, ContactState] | None = None) -> None:
        """The indexes as they are now are what the newest sidecar holds: the next delta
        starts here. `contacts`: a copy of the contacts just taken, if any."""
        self.mark_seq = self.next_seq
        self.mark_cb = len(self.cb_seqs)
        self.resp_from = self.next_seq
        self.dirty_phones: dict[str, array] = {}
        """Threads added to since the mark (a dict: the snapshot takes it whole)."""
        self.dirty_mids: dict[str, int] = {}
        """Delivery states set since the mark, as set (taken whole: looking 50,000 ids up
        again in the full map at rotation took 43 ms on the loop)."""
        self.mark_contacts = contacts if contacts is not None else self.contacts.copy()

    # ---- filing one document -----------------------------------------------------------

    def _thread_add(self, phone: str, loc: int) -> None:
        self.thread_adds += 1
        locs = self.phone_locs.get(phone)
        if locs is None:
            locs = self.phone_locs[phone] = array("q")
        locs.append(loc)
        self.dirty_phones[phone] = locs

    def _seq_slot(self, seq: int) -> None:
        """Make `seq` a valid index of the by-seq arrays. They grow by SEQ_CHUNK slots at a
        time (-1: none), not one per record: a list and two extends per callback cost half a
        microsecond. Readers check `seq < len(...)` and `>= 0`, so spare slots are harmless."""
        grow = seq + 1 - len(self.seq_loc)
        if grow > 0:
            spare = array("q", [-1]) * max(grow, SEQ_CHUNK)
            self.seq_loc.extend(spare)
            self.resp_loc.extend(spare)

    def add(self, doc: dict, loc: int) -> None:
        """File one stored document at `loc` in every index and the contact projection."""
        kind = doc["kind"]
        if kind == "callback":
            seq = doc["seq"]
            if seq >= len(self.seq_loc):
                self._seq_slot(seq)
            self.seq_loc[seq] = loc
            self.cb_seqs.append(seq)
            self.counts[0] += 1
            if seq >= self.next_seq:
                self.next_seq = seq + 1
            typ = doc["type"]
            if typ == "delivery_report":
                self._delivery(doc["parsed"])
            elif typ == "subscription_created":
                self.sub_created.add(seq)
            answered = None
        elif kind == "response":
            cseq = doc["callback_seq"]
            if cseq > 0:
                self._seq_slot(cseq)
                self.resp_loc[cseq] = loc
                if cseq < self.resp_from:
                    self.resp_from = cseq
            self.counts[1] += 1
            was_sub = cseq in self.sub_created
            self.sub_created.discard(cseq)
            answered = None
            if (doc.get("decision") or {}).get("tags"):
                answered = "subscription_created" if was_sub else self._callback_type(cseq)
        else:
            seq = doc["seq"]
            self._seq_slot(seq)
            self.seq_loc[seq] = loc
            self.counts[2] += 1
            if seq >= self.next_seq:
                self.next_seq = seq + 1
            answered = None
        contacts = self.contacts
        for phone in concerned_phones(doc):
            state = contacts.get(phone) or ContactState(phone)
            contacts[phone] = next_contact(state, doc, answered_type=answered)
            if shows_in_thread(doc, phone):
                self._thread_add(phone, loc)

    def _delivery(self, parsed: Mapping[str, Any]) -> None:
        mid = parsed.get("message_id")
        if not mid:
            return
        mid = str(mid)
        state = next_delivery(self.msg_state.get(mid, 0), parsed)
        if state is not None:
            self.msg_state[mid] = self.dirty_mids[mid] = state

    def _callback_type(self, seq: int) -> str | None:
        if 0 < seq < len(self.seq_loc) and self.seq_loc[seq] >= 0:
            doc = self.doc_at(self.seq_loc[seq])
            if doc is not None and doc.get("kind") == "callback":
                return doc.get("type")
        return None

    # ---- sidecars ----------------------------------------------------------------------

    def snapshot(self, seg: int, *, full: bool) -> dict:
        """What the sidecar of closed segment `seg` holds, copied on this thread: for a full
        one, memcpys and dict copies of everything; for a delta, what changed since the last
        snapshot. Resets the mark."""
        common = {
            "segment": seg,
            "boundary": (seg + 1) << LOC_SHIFT,
            "sizes": {str(n): self.sizes[n] for n in self.closed if n <= seg},
            "next_seq": self.next_seq,
            "counts": list(self.counts),
            "sub_created": sorted(self.sub_created),
        }
        if full:
            snapshot = {
                **common,
                "kind": "full",
                "keep_from": self.last_full if self.last_full is not None else seg - 1,
                "seq_loc": self.seq_loc.tobytes(),
                "resp_loc": self.resp_loc.tobytes(),
                "cb_seqs": self.cb_seqs.tobytes(),
                "phones": self.phone_locs.copy(),
                "thread_adds": self.thread_adds,
                "contacts": self.contacts.copy(),
                "msg_state": self.msg_state.copy(),
            }
            self.last_full = seg
        else:
            next_seq, seq_from = self.next_seq, self.mark_seq
            resp_from = min(self.resp_from, seq_from)
            snapshot = {
                **common,
                "kind": "delta",
                "base": seg - 1,
                "seq_from": seq_from,
                "resp_from": resp_from,
                "cb_from": self.mark_cb,
                "seq_loc": self.seq_loc[seq_from:next_seq].tobytes(),
                "resp_loc": self.resp_loc[resp_from:next_seq].tobytes(),
                "cb_seqs": self.cb_seqs[self.mark_cb:].tobytes(),
                "phones": self.dirty_phones,
                "contacts": self.contacts.copy(),
                "prev_contacts": self.mark_contacts,
                "msg_state": self.dirty_mids,
            }
        self.mark(snapshot["contacts"])
        return snapshot

    def apply_full(self, header: dict, parts: dict[str, Any]) -> None:
        """Replace the indexes with a full sidecar's (`parts`: its decoded sections)."""
        self.closed = []
        self.seq_loc = parts["seq_loc"]
        self.resp_loc = parts["resp_loc"]
        self.cb_seqs = parts["cb_seqs"]
        self.phone_locs = dict(parts["threads"])
        self.contacts = {c.phone: c for c in parts["contacts"]}
        self.msg_state = dict(parts["mid_states"])
        self._apply_header(header)

    def _apply_header(self, h: dict) -> None:
        """What every sidecar's header holds whole (full or delta)."""
        self.sizes = {int(n): v for n, v in h["sizes"].items()}
        self.next_seq = h["next_seq"]
        self.counts = list(h["counts"])
        self.sub_created = set(h.get("sub_created", ()))

    def apply_delta(self, h: dict, parts: dict[str, Any]) -> None:
        """Extend the indexes applied so far with a delta sidecar (raises IndexDamaged if it
        does not start where they end)."""
        next_seq, seq_from, resp_from, cb_from = h["next_seq"], h["seq_from"], h["resp_from"], h["cb_from"]
        if seq_from != self.next_seq or cb_from != len(self.cb_seqs) or not 0 < resp_from <= seq_from <= next_seq:
            raise IndexDamaged(f"{idx_name(h['segment'])} does not start where {idx_name(h['base'])} ends")
        seq_loc, resp_loc = parts["seq_loc"], parts["resp_loc"]
        if len(seq_loc) != next_seq - seq_from or len(resp_loc) != next_seq - resp_from:
            raise IndexDamaged(f"{idx_name(h['segment'])} has arrays of the wrong length")
        del self.seq_loc[seq_from:]
        self.seq_loc.extend(seq_loc)
        del self.resp_loc[resp_from:]
        self.resp_loc.extend(resp_loc)
        self.cb_seqs.extend(parts["cb_seqs"])
        phone_locs = self.phone_locs
        for name, part in parts["threads"]:
            mine = phone_locs.get(name)
            if mine is None:
                phone_locs[name] = part
            else:
                mine.extend(part)
        self.contacts.update((c.phone, c) for c in parts["contacts"])
        self.msg_state.update(parts["mid_states"])
        self._apply_header(h)
