"""Records <-> TinyDB documents: one dataclass becomes one JSON document and back, and what
a stored document shows (its body, a response's detail line)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from .models import CallbackRecord, OutboundRecord, ResponseRecord, ThreadEntry
from .names import share
from .projection import DELIVERY_NAMES, FINAL, body_of

__all__ = ["CODECS", "Codec", "body_of", "callback_doc", "response_detail", "thread_entry"]


class Codec:
    """Converts one record dataclass to a JSON document and back (tuples and mappings exact)."""

    def __init__(self, cls: type, kind: str) -> None:
        self.cls = cls
        self.kind = kind
        self.fields: list[tuple[str, str]] = []
        for f in dataclasses.fields(cls):
            t = str(f.type)
            conv = "tuple" if t.startswith("tuple") else "map" if t.startswith("Mapping") else ""
            self.fields.append((f.name, conv))
        self.tuples = [name for name, conv in self.fields if conv == "tuple"]
        self.names = {name for name, _ in self.fields}

    def to_doc(self, rec: Any, **override: Any) -> dict:
        doc: dict[str, Any] = {"kind": self.kind}
        for name, conv in self.fields:
            value = override[name] if name in override else getattr(rec, name)
            if conv == "tuple":
                # a tuple encodes as the same JSON array as a list, and needs no copy
                value = value if type(value) is tuple else tuple(value)
            elif conv == "map":
                # share key strings between documents: the live segment holds many of them
                value = {share(k): v for k, v in value.items()}
            doc[name] = value
        return doc

    def from_doc(self, doc: Mapping[str, Any]) -> Any:
        kwargs = {k: v for k, v in doc.items() if k in self.names}
        for name in self.tuples:
            if name in kwargs:
                kwargs[name] = tuple(kwargs[name])
        return self.cls(**kwargs)


CODECS = {
    "callback": Codec(CallbackRecord, "callback"),
    "response": Codec(ResponseRecord, "response"),
    "outbound": Codec(OutboundRecord, "outbound"),
}


def plain_dict(value: Mapping[str, Any]) -> dict:
    return value if type(value) is dict else dict(value)


def callback_doc(rec: CallbackRecord, seq: int) -> dict:
    """`CODECS["callback"].to_doc(rec, seq=seq)`, unrolled (the ingest hot path).

    `fields` and `parsed` are stored as given when they are plain dicts (no copy, no key
    re-sharing: the gateway's form reader already shares field-name strings through
    data/names.py, and records are frozen, so nobody changes these dicts afterwards)."""
    warnings = rec.warnings
    phones = rec.phones
    return {
        "kind": "callback",
        "seq": seq,
        "received_at": rec.received_at,
        "type": rec.type,
        "fields": plain_dict(rec.fields),
        "parsed": plain_dict(rec.parsed),
        "warnings": warnings if type(warnings) is tuple else tuple(warnings),
        "phones": phones if type(phones) is tuple else tuple(phones),
        "peer": rec.peer,
        "app": rec.app,
        "held": rec.held,
    }


_probe = CallbackRecord(0, 0.0, "", {}, {})
assert list(callback_doc(_probe, 1)) == list(CODECS["callback"].to_doc(_probe, seq=1)), "update callback_doc"
del _probe


def response_detail(doc: Mapping[str, Any]) -> str:
    decision = doc.get("decision") or {}
    parts: list[str] = []
    outcome = doc.get("outcome")
    if outcome == "timed_out":
        parts.append("timed out — fallback sent")
    elif outcome == "caller_gone":
        parts.append("caller hung up before an answer")
    elif outcome == "overflow":
        parts.append("too many held — fallback sent")
    elif outcome == "shutdown":
        parts.append("shutting down — fallback sent")
    if decision.get("close_session"):
        parts.append("closed session")
    if decision.get("reprocess"):
        parts.append(f"reprocess: {decision['reprocess']}")
    tags = decision.get("tags")
    if tags:
        parts.append("tags: " + ", ".join(map(str, tags)))
    return "; ".join(parts)


def thread_entry(doc: Mapping[str, Any], delivery: Callable[[str], int], order: int = 0) -> ThreadEntry:
    """How a stored document shows in a thread; `delivery(mid)` is a message id's delivery
    state (0 if none yet), `order` its place in the history (`ThreadEntry.order`)."""
    kind = doc["kind"]
    if kind == "callback":
        tag = doc["parsed"].get("tag") if isinstance(doc.get("parsed"), dict) else ""
        return ThreadEntry(
            at=doc["received_at"], direction="in", text=body_of(doc), who="texter", seq=doc["seq"],
            detail=f"thread tag: {tag}" if tag else "", order=order,
        )
    if kind == "response":
        decision = doc.get("decision") or {}
        return ThreadEntry(
            at=doc["sent_at"],
            direction="out",
            text=str(decision.get("reply") or ""),
            who=doc["answered_by"],
            seq=doc["callback_seq"],
            detail=response_detail(doc),
            order=order,
        )
    mids = tuple(doc.get("message_ids") or ())
    states = []
    finals = []
    for mid in mids:
        if mid.startswith("-"):
            states.append("failed")
            finals.append(True)
            continue
        code = delivery(mid)
        states.append(DELIVERY_NAMES[code & 7])
        finals.append(bool(code & FINAL))
    return ThreadEntry(
        at=doc["sent_at"],
        direction="out",
        text=doc["body"],
        who="outbound",
        seq=doc["seq"],
        message_ids=mids,
        delivery=tuple(states),  # type: ignore[arg-type]
        final=bool(finals) and all(finals),
        detail=doc.get("error") or "",
        order=order,
    )
