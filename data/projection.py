"""The SMS rules the history derives from its records, as pure functions: a texter's contact
state (session, subscription, tags, blacklist, counts, missed texts, its newest thread
entry) and a sent message's delivery state.

The store replays every record through these in order; nothing here does I/O or keeps state,
so a rule is changed (and tested) here alone.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from .models import LAST_TEXT_CHARS, ContactState, LastDirection
from .phones import normalise_phone

__all__ = [
    "DELIVERY_CODE",
    "DELIVERY_NAMES",
    "FINAL",
    "MISSED_OUTCOMES",
    "body_of",
    "concerned_phones",
    "last_entry",
    "needs_answered_type",
    "next_contact",
    "next_delivery",
    "phone_key",
    "shows_in_thread",
]

DELIVERY_NAMES = ("sent", "pending", "queued", "delivered", "failed")
DELIVERY_CODE = {name: i for i, name in enumerate(DELIVERY_NAMES)}
FINAL = 8
"""A delivery state is a code (index into DELIVERY_NAMES) | FINAL once the SL says so."""

_FLAGS = {
    "session_closed": (0, False),
    "subscription_created": (1, True),
    "subscription_canceled": (1, False),
    "phone_blacklisted": (2, True),
    "phone_unblacklisted": (2, False),
    "auto_reply_loop": (3, True),
}
"""Callback types that set one flag on every phone they name: (which, value), `which`
indexing (session_open, subscribed, blacklisted, loop_flagged)."""


@lru_cache(maxsize=1 << 16)
def phone_key(phone: str) -> str:
    """The key a phone's contact state and thread are filed under (the one phone rule;
    cached: the same texters write again and again, and the rule walks every character)."""
    return normalise_phone(phone)


def concerned_phones(doc: Mapping[str, Any]) -> tuple[str, ...]:
    """The phone keys (normalised) whose contact state `doc` changes, texter first."""
    kind = doc["kind"]
    if kind == "callback":
        phones = doc["phones"]
        if len(phones) == 1:  # the common case, without building a dict
            return (phone_key(phones[0]),)
        return tuple(dict.fromkeys(phone_key(p) for p in phones))
    phone = doc.get("phone") or ""
    return (phone_key(phone),) if phone else ()


MISSED_OUTCOMES = frozenset({"timed_out", "caller_gone", "overflow"})
"""Outcomes of a held exchange that no operator answered."""
_FALLBACK_OUTCOMES = MISSED_OUTCOMES | {"shutdown"}


def needs_answered_type(doc: Mapping[str, Any]) -> bool:
    """Whether `next_contact` needs the type of the callback a response answers: the tag
    rule (tags apply to an answer to a subscription) and the missed count (a text in)."""
    return bool((doc.get("decision") or {}).get("tags")) or doc.get("outcome") in MISSED_OUTCOMES


def body_of(doc: Mapping[str, Any]) -> str:
    """The message body of a callback document ("" when it has none)."""
    body = doc["parsed"].get("body")
    if not isinstance(body, str) or not body:
        body = doc["fields"].get("body") or doc["fields"].get("message") or ""
    return body if isinstance(body, str) else str(body)


def last_entry(doc: Mapping[str, Any]) -> tuple[float, str, LastDirection]:
    """(time, text, direction) of a thread entry, as a contact's `last_*` keeps it."""
    kind = doc["kind"]
    if kind == "callback":
        return doc["received_at"], body_of(doc)[:LAST_TEXT_CHARS], "in"
    if kind == "response":
        reply = str((doc.get("decision") or {}).get("reply") or "")
        if doc.get("answered_by") == "fallback" or doc.get("outcome") in _FALLBACK_OUTCOMES:
            # the fallback's body, when one went out (a caller that hung up got nothing)
            sent = reply or (str(doc.get("body") or "") if doc.get("status") == 200 else "")
            return doc["sent_at"], sent[:LAST_TEXT_CHARS], "fallback"
        return doc["sent_at"], reply[:LAST_TEXT_CHARS], "out"
    return doc["sent_at"], str(doc.get("body") or "")[:LAST_TEXT_CHARS], "out"


def next_contact(
    state: ContactState, doc: Mapping[str, Any], *, answered_type: str | None = None, in_thread: bool | None = None,
) -> ContactState:
    """The contact state of `state.phone` after `doc` (a stored record that concerns it);
    `state` itself when nothing changes.

    - An incoming message opens the texter's session, counts in, records the carrier.
    - Any callback naming the phone moves its last-seen time forward (never back).
    - session_closed, subscription_*, phone_(un)blacklisted and auto_reply_loop set their flag.
    - A response counts out when it carries a reply, closes the session when the decision
      says so, and sets tags only when it answers a subscription_created callback
      (`answered_type`); one that ends without an operator's answer (timed out, caller gone,
      overflow) to an incoming_message counts as missed.
    - An outbound send counts out unless it failed to send.
    - An entry of the phone's thread (`shows_in_thread`, or `in_thread` when the caller
      knows) becomes its `last_*`.
    """
    s = state
    flags = [s.session_open, s.subscribed, s.blacklisted, s.loop_flagged]
    tags, last_seen, carrier = s.tags, s.last_seen, s.carrier
    messages_in, messages_out, missed = s.messages_in, s.messages_out, s.missed
    kind = doc["kind"]
    if kind == "callback":
        at = doc["received_at"]
        if at > last_seen:
            last_seen = at
        typ = doc["type"]
        phones = doc["phones"]
        if typ == "incoming_message" and phones and phone_key(phones[0]) == s.phone:
            flags[0] = True
            carrier = str(doc["parsed"].get("carrier_name") or carrier)
            messages_in += 1
        elif typ in _FLAGS:
            which, value = _FLAGS[typ]
            flags[which] = value
    elif kind == "response":
        decision = doc.get("decision") or {}
        if decision.get("close_session"):
            flags[0] = False
        new_tags = decision.get("tags")
        if new_tags and answered_type == "subscription_created":
            tags = tuple(str(t) for t in new_tags)
        if decision.get("reply"):
            messages_out += 1
        if answered_type == "incoming_message" and doc.get("outcome") in MISSED_OUTCOMES:
            missed += 1
    elif not doc.get("error"):
        messages_out += 1
    if shows_in_thread(doc, s.phone) if in_thread is None else in_thread:
        last_at, last_text, last_dir = last_entry(doc)
    else:
        last_at, last_text, last_dir = s.last_at, s.last_text, s.last_dir
    # positional, in the field order of ContactState: the ingest path builds one per record
    new = ContactState(
        s.phone, flags[0], flags[1], tags, flags[2], flags[3], last_seen, carrier,
        messages_in, messages_out, last_at, last_text, last_dir, missed,
    )
    return s if new == s else new


def shows_in_thread(doc: Mapping[str, Any], phone: str) -> bool:
    """Whether `doc` is an entry of `phone`'s conversation (a text from it, an answer that
    carried something (a reply, close_session, reprocess) or a fallback, an outbound send)."""
    kind = doc["kind"]
    if kind == "callback":
        phones = doc["phones"]
        return doc["type"] == "incoming_message" and bool(phones) and phone_key(phones[0]) == phone
    if kind == "response":
        decision = doc.get("decision") or {}
        if any(decision.get(key) for key in ("reply", "close_session", "reprocess")):
            return True
        return doc.get("outcome") in ("timed_out", "caller_gone", "overflow")
    return True


def next_delivery(old: int, parsed: Mapping[str, Any]) -> int | None:
    """A message id's delivery state after a delivery report (`old`: 0 if none yet); None
    when the report changes nothing (a late, non-final report after a final one)."""
    final = bool(parsed.get("final"))
    if old & FINAL and not final:
        return None
    code = DELIVERY_CODE.get(str(parsed.get("status_name")))
    state = code if code is not None and code > 0 else old & 7
    return state | (FINAL if final else 0)
