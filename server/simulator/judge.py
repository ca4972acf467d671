"""How the SL reads a client app's HTTP response to a callback, and what breaks the contract."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..sanitize import neutralise_line
from ..contract import TAG_PATTERN, CallbackType, parse_bool

JSON_KEYS = frozenset({"body", "close_session", "reprocess"})


@dataclass(frozen=True)
class Verdict:
    """What the SL made of a response: the effects, and the contract violations (one line each)."""

    reply: str = ""
    close_session: bool = False
    reprocess: str = ""
    tags: tuple[str, ...] = ()
    violations: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.violations


def _bool(value: object) -> bool | None:
    """JSON true/false, or a documented spelling (README.md: 1/t/true/y/yes, 0/f/false/n/no)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return parse_bool(value)
    return None


def judge_response(callback_type: str, status: int, body: str) -> Verdict:
    """Read a response as the SL does (callbacks-general.md, callbacks-subscriptions.md)."""
    if status != 200:
        return Verdict(violations=(f"HTTP {status} instead of 200",))
    if callback_type == CallbackType.INCOMING_MESSAGE:
        return _judge_message(body)
    if callback_type == CallbackType.SUBSCRIPTION_CREATED:
        return _judge_tags(body)
    return Verdict()  # the SL ignores the body of every other callback


def _judge_message(body: str) -> Verdict:
    if not body.strip():
        return Verdict()
    if body.lstrip()[:1] not in ("{", "["):
        return Verdict(reply=body)
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return Verdict(violations=("response starts like JSON but is not valid JSON",))
    if not isinstance(value, dict):
        return Verdict(violations=("JSON response is not an object",))
    problems: list[str] = []
    unknown = sorted(set(value) - JSON_KEYS)
    if unknown:
        problems.append(f"unknown JSON key(s): {', '.join(neutralise_line(str(key)) for key in unknown)}"
                        " (only body, close_session, reprocess)")
    reply = value.get("body", "")
    if not isinstance(reply, str):
        problems.append("JSON 'body' is not a string")
        reply = ""
    reprocess = value.get("reprocess", "")
    if not isinstance(reprocess, str):
        problems.append("JSON 'reprocess' is not a string")
        reprocess = ""
    close = False
    if "close_session" in value:
        parsed = _bool(value["close_session"])
        if parsed is None:
            problems.append(f"JSON 'close_session' is not a boolean: {value['close_session']!r}")
        else:
            close = parsed
    return Verdict(reply=reply, close_session=close, reprocess=reprocess, violations=tuple(problems))


def _judge_tags(body: str) -> Verdict:
    if not body.strip():
        return Verdict()
    tags = [tag.strip() for tag in body.split(",") if tag.strip()]
    bad = [tag for tag in tags if not TAG_PATTERN.fullmatch(tag)]
    if bad:
        return Verdict(violations=(f"tag(s) with characters outside letters, digits, spaces, - and _: {', '.join(map(repr, bad))}",))
    return Verdict(tags=tuple(tags))
