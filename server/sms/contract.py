"""The Service Layer callback contract: what each callback carries, how its values parse,
and how an answer is encoded as the HTTP response the SL expects.

Source of truth: `shared/contract/` (callbacks-general, -sessions, -subscriptions,
-notifications). Everything that knows a field name or a boolean spelling lives here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Mapping

from server.sms.dates import parse_sl_date
from data.phones import normalise_phone


class CallbackType(StrEnum):
    INCOMING_MESSAGE = "incoming_message"
    DELIVERY_REPORT = "delivery_report"
    SESSION_CLOSED = "session_closed"
    SUBSCRIPTION_CREATED = "subscription_created"
    SUBSCRIPTION_CANCELED = "subscription_canceled"
    PHONE_BLACKLISTED = "phone_blacklisted"
    PHONE_UNBLACKLISTED = "phone_unblacklisted"
    AUTO_REPLY_LOOP = "auto_reply_loop"


HELD_TYPES: frozenset[str] = frozenset(
    {CallbackType.INCOMING_MESSAGE, CallbackType.SUBSCRIPTION_CREATED}
)
"""Types whose HTTP response is the answer, so the gateway holds them for the operator."""

TRUE_WORDS = frozenset({"1", "t", "true", "y", "yes"})
FALSE_WORDS = frozenset({"0", "f", "false", "n", "no"})

DELIVERY_STATUS: Mapping[int, str] = {0: "pending", 1: "delivered", 2: "failed", 4: "queued"}
"""`delivery_report` status codes, named as in callbacks-general.md."""

# Required fields, then boolean fields, per type.
_REQUIRED: Mapping[str, tuple[str, ...]] = {
    CallbackType.INCOMING_MESSAGE: ("phone_number", "body", "sent_at"),
    CallbackType.DELIVERY_REPORT: ("message_id", "final", "status"),
    CallbackType.SESSION_CLOSED: ("phone_numbers",),
    CallbackType.SUBSCRIPTION_CREATED: ("phone_number",),
    CallbackType.SUBSCRIPTION_CANCELED: ("phone_number",),
    CallbackType.PHONE_BLACKLISTED: ("phone_number",),
    CallbackType.PHONE_UNBLACKLISTED: ("phone_number",),
    CallbackType.AUTO_REPLY_LOOP: ("phone_number",),
}
_BOOLS: Mapping[str, tuple[str, ...]] = {
    CallbackType.INCOMING_MESSAGE: ("auto_subscribe", "auto_responded"),
    CallbackType.DELIVERY_REPORT: ("final",),  # required, and a boolean
}
"""Every boolean field parsed per type."""

TAG_PATTERN = re.compile(r"[A-Za-z0-9 _-]+")
"""Allowed tag characters (callbacks-subscriptions.md): letters, digits, spaces, `-`, `_`."""
_BAD_TAG_CHAR = re.compile(r"[^A-Za-z0-9 _-]")


class ContractError(ValueError):
    """A request that cannot be read as a callback at all (the gateway answers 400)."""


@dataclass(slots=True)
class Callback:
    """One parsed callback. `fields` is exactly what arrived; `parsed` is JSON-safe.
    Read-only by convention, not `frozen` (one per request: see `CallbackRecord`)."""

    type: str
    fields: Mapping[str, str]
    parsed: Mapping[str, Any]
    warnings: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()

    @property
    def held(self) -> bool:
        return self.type in HELD_TYPES

    @property
    def api_key(self) -> str | None:
        return self.fields.get("api_key")

    @property
    def phone(self) -> str:
        """The first phone number this callback is about, or ''."""
        return self.phones[0] if self.phones else ""


def parse_bool(value: str) -> bool | None:
    """A documented boolean spelling (case-insensitive) or None if it is not one."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


_PHONE_PUNCTUATION = frozenset(" +-().")
"""What a written phone number may hold besides digits ("+1 (555) 700-0801")."""


def _phone_warning(name: str, raw: str) -> str | None:
    digits = sum(1 for ch in raw if ch.isascii() and ch.isdigit())
    if digits < 10 or digits > 15:
        return f"{name} {raw!r} is not a 10-digit phone number (with or without country code)"
    if digits != len(raw) and any(not (ch.isascii() and ch.isdigit()) and ch not in _PHONE_PUNCTUATION for ch in raw):
        return f"{name} {raw!r} holds characters no phone number has; filed under its digits"
    return None


# plain strings: an enum class attribute costs 0.1 us per access on the ingest path
_INCOMING = CallbackType.INCOMING_MESSAGE.value
_DELIVERY = CallbackType.DELIVERY_REPORT.value
_SESSION_CLOSED = CallbackType.SESSION_CLOSED.value


def parse_callback(fields: Mapping[str, str]) -> Callback:
    """Read a callback from its merged fields. Contract violations become warnings;
    only a missing `type` is fatal (ContractError). A plain dict becomes the callback's
    `fields` as is (the caller hands it over)."""
    kind = fields.get("type", "").strip()
    if not kind:
        raise ContractError("missing 'type' field: not a Service Layer callback")
    warnings: list[str] = []
    parsed: dict[str, Any] = {}
    phones: list[str] = []

    if "api_key" not in fields:
        warnings.append("missing 'api_key' field")
    required = _REQUIRED.get(kind)
    if required is None:
        warnings.append(f"unknown callback type {kind!r}")
        required = ()
        if "phone_number" in fields:
            phones.append(normalise_phone(fields["phone_number"]))
    for name in required:
        if name not in fields:
            warnings.append(f"missing required field {name!r} for {kind}")

    if "phone_number" in required and "phone_number" in fields:
        raw = fields["phone_number"]
        parsed["phone_number"] = raw
        if (problem := _phone_warning("phone_number", raw)) is not None:
            warnings.append(problem)
        phones.append(normalise_phone(raw))

    if kind == _INCOMING:
        parsed["body"] = fields.get("body", "")
        raw_sent = fields.get("sent_at", "")
        parsed["sent_at_raw"] = raw_sent
        parsed["sent_at"] = parse_sl_date(raw_sent) if raw_sent else None
        if raw_sent and parsed["sent_at"] is None:
            warnings.append(f"sent_at {raw_sent!r} is not a date the contract describes")
        parsed["carrier_id"] = fields.get("carrier_id", "")
        parsed["carrier_name"] = fields.get("carrier_name", "")
        # Undocumented: the thread tag that send_message's `tag` set (one DID per tag),
        # read by the SL's own client apps. Kept as sent; '' when absent.
        parsed["tag"] = fields.get("tag", "")
    elif kind == _DELIVERY:
        parsed["message_id"] = fields.get("message_id", "").strip()
        raw_status = fields.get("status")
        status: int | None = None
        if raw_status is not None:
            try:
                status = int(raw_status.strip())
            except ValueError:
                warnings.append(f"status {raw_status!r} is not an integer")
            else:
                if status not in DELIVERY_STATUS:
                    warnings.append(f"unknown delivery status {status} (expected 0, 1, 2 or 4)")
        parsed["status"] = status
        parsed["status_name"] = DELIVERY_STATUS.get(status, "unknown") if status is not None else "unknown"
    elif kind == _SESSION_CLOSED and "phone_numbers" in fields:
        raw_list = fields["phone_numbers"]
        numbers = [part.strip() for part in raw_list.split(",") if part.strip()]
        if not numbers:
            warnings.append("phone_numbers is empty")
        for number in numbers:
            if (problem := _phone_warning("phone number", number)) is not None:
                warnings.append(problem)
            phones.append(normalise_phone(number))
        parsed["phone_numbers"] = numbers

    for name in _BOOLS.get(kind, ()):
        if name not in fields:
            parsed[name] = None
            continue
        value = parse_bool(fields[name])
        if value is None:
            warnings.append(f"{name} {fields[name]!r} is not a boolean (1/t/true/y/yes or 0/f/false/n/no)")
        parsed[name] = value

    return Callback(  # positional: the ingest hot path
        kind,
        fields if type(fields) is dict else dict(fields),
        parsed,
        tuple(warnings),
        (phones[0],) if len(phones) == 1 else tuple(dict.fromkeys(phones)),
    )


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True, slots=True)
class Decision:
    """What the operator (or a fallback, or a rule) decided to answer a held callback with."""

    reply: str = ""
    close_session: bool = False
    reprocess: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_empty(self) -> bool:
        return not (self.reply or self.close_session or self.reprocess or self.tags)

    def as_dict(self) -> dict[str, Any]:
        """The keys in use, for storage and display."""
        out: dict[str, Any] = {}
        if self.reply:
            out["reply"] = self.reply
        if self.close_session:
            out["close_session"] = True
        if self.reprocess:
            out["reprocess"] = self.reprocess
        if self.tags:
            out["tags"] = list(self.tags)
        return out


@dataclass(frozen=True, slots=True)
class EncodedResponse:
    """Exactly what goes on the wire."""

    body: str
    content_type: str
    status: int = 200


EMPTY_RESPONSE = EncodedResponse(body="", content_type="text/plain")


def _looks_like_json(text: str) -> bool:
    return text.lstrip()[:1] in ("{", "[")


def encode_response(callback_type: str, decision: Decision) -> EncodedResponse:
    """The one encoder for every answer, fallbacks included.

    incoming_message: nothing -> empty body; only a reply -> the plain text (sent as
    `{"body": ...}` if it could be read as JSON); close_session or reprocess in use ->
    a JSON object holding only the keys in use. subscription_created: comma-separated
    tags as plain text. Anything else: empty.
    """
    if callback_type == CallbackType.INCOMING_MESSAGE:
        reply = decision.reply
        if not (decision.close_session or decision.reprocess):
            if not reply:
                return EMPTY_RESPONSE
            if not _looks_like_json(reply):
                return EncodedResponse(body=reply, content_type="text/plain")
        payload: dict[str, Any] = {}
        if reply:
            payload["body"] = reply
        if decision.close_session:
            payload["close_session"] = True
        if decision.reprocess:
            payload["reprocess"] = decision.reprocess
        return EncodedResponse(
            body=json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
            content_type="application/json",
        )
    if callback_type == CallbackType.SUBSCRIPTION_CREATED and decision.tags:
        return EncodedResponse(body=",".join(decision.tags), content_type="text/plain")
    return EMPTY_RESPONSE


def parse_tags(text: str) -> tuple[tuple[str, ...], str | None]:
    """Split operator input into tags. Returns (tags, error); error is one line or None."""
    tags = [part.strip() for part in text.split(",")]
    tags = [tag for tag in tags if tag]
    for tag in tags:
        bad = _BAD_TAG_CHAR.search(tag)
        if bad is not None:
            return (), (
                f"tag {tag!r} has {bad.group()!r}: tags may hold only letters, digits, spaces, '-' and '_'"
            )
    return tuple(dict.fromkeys(tags)), None


def fallback_decision(callback_type: str, fallback_text: str) -> Decision:
    """The answer sent when the deadline passes: the fallback text for a message, no tags for a subscription."""
    if callback_type == CallbackType.INCOMING_MESSAGE:
        return Decision(reply=fallback_text)
    return Decision()
