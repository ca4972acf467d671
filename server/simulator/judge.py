"""How the SL reads a client app's HTTP response to a callback: what it does with it, what
breaks the contract (a violation), and what works but may not do what the app meant (a
warning).

Violations: any status but 200 (a redirect too: the SL's HTTP clients never follow one,
so a 302 to a login page is a failed callback, not a reply), a body declared JSON that is
not a JSON object, JSON values of the wrong kind, tags with forbidden characters.
Warnings: a plain reply that starts with `[` or `{` but is not a JSON object (real apps
answer `[HAPPY HOUR] half-price drinks 5-7pm`; the SL may try to read it as JSON), JSON
keys the contract does not name (the SL's own modules send `free`), an HTML page given as
a reply (the texter would get the markup).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from server.sms.contract import TAG_PATTERN, CallbackType, parse_bool
from server.sms.sanitize import neutralise_line, truncate

JSON_KEYS = frozenset({"body", "close_session", "reprocess"})

LOCATION_WIDTH = 80
"""Cells of a redirect's Location shown at most (the peer chooses it)."""

_HTML_START = re.compile(r"\s*<(?:!doctype\b|!--|[a-z][a-z0-9]*(?:\s[^<>]*)?/?>)", re.IGNORECASE)
_ANY_TAG = re.compile(r"</?[a-z][a-z0-9]*(?:\s[^<>]*)?/?>", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    """What the SL made of a response: the effects, the contract violations and the
    warnings (one line each). The SL acts on a response without violations."""

    reply: str = ""
    close_session: bool = False
    reprocess: str = ""
    tags: tuple[str, ...] = ()
    violations: tuple[str, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)

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


def media_type(content_type: str) -> str:
    """`text/html; charset=utf-8` -> `text/html`; '' when there is none."""
    return content_type.split(";", 1)[0].strip().lower()


def _declared_json(content_type: str) -> bool:
    kind = media_type(content_type)
    return kind == "application/json" or kind.endswith("+json")


def judge_response(callback_type: str, status: int, body: str, *,
                   content_type: str = "", location: str = "") -> Verdict:
    """Read a response as the SL does (callbacks-general.md, callbacks-subscriptions.md).
    `content_type` is the response's Content-Type header, `location` its Location."""
    if status != 200:
        problem = f"HTTP {status} instead of 200"
        if 300 <= status < 400:
            shown = truncate(neutralise_line(location[:4 * LOCATION_WIDTH]), LOCATION_WIDTH) if location else "(none)"
            problem += f", Location: {shown} (the SL does not follow redirects)"
        return Verdict(violations=(problem,))
    if callback_type == CallbackType.INCOMING_MESSAGE:
        return _judge_message(body, content_type)
    if callback_type == CallbackType.SUBSCRIPTION_CREATED:
        return _judge_tags(body)
    return Verdict()  # the SL ignores the body of every other callback


def _judge_message(body: str, content_type: str) -> Verdict:
    # Whitespace only is no reply. That includes the single space a Rails 2.x action that
    # renders nothing sends (`" "`, text/html; NOTES.md): those apps answer every callback
    # they have nothing to say to that way, and an SL that texted a blank would have made
    # them unusable, so the SL sends nothing.
    if not body.strip():
        return Verdict()
    if body.lstrip()[:1] not in ("{", "["):
        return Verdict(reply=body, warnings=_html_warning(body, content_type))
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        value = None
        if _declared_json(content_type):
            return Verdict(violations=("response is declared JSON but is not valid JSON",))
    else:
        if not isinstance(value, dict) and _declared_json(content_type):
            return Verdict(violations=("JSON response is not an object",))
    if not isinstance(value, dict):
        # Plain text that looks like JSON: the SL may deliver it as text or fail to read it.
        return Verdict(reply=body, warnings=(
            f"ambiguous: the SL may try to read it as JSON (starts with {body.lstrip()[0]!r},"
            " is not a JSON object)",))
    return _judge_json(value)


def _judge_json(value: dict) -> Verdict:
    problems: list[str] = []
    warnings: list[str] = []
    unknown = sorted(set(value) - JSON_KEYS)
    if unknown:
        warnings.append(f"unknown JSON key(s): {', '.join(neutralise_line(str(key)) for key in unknown)}"
                        " (the SL reads only body, close_session, reprocess)")
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
            shown = truncate(neutralise_line(json.dumps(value["close_session"], ensure_ascii=False)), 40)
            problems.append(f"JSON 'close_session' is not a boolean: {shown}")
        else:
            close = parsed
    return Verdict(reply=reply, close_session=close, reprocess=reprocess,
                   violations=tuple(problems), warnings=tuple(warnings))


def _html_warning(body: str, content_type: str) -> tuple[str, ...]:
    """An HTML page (or markup under text/html) given as a reply reaches the texter as markup.
    Rails sends every text as text/html, so the type alone is not markup."""
    if _HTML_START.match(body) or (media_type(content_type) == "text/html" and _ANY_TAG.search(body)):
        return ("HTML body given as a reply: the texter would receive the markup as text",)
    return ()


def _judge_tags(body: str) -> Verdict:
    if not body.strip():
        return Verdict()
    tags = [tag.strip() for tag in body.split(",") if tag.strip()]
    bad = [tag for tag in tags if not TAG_PATTERN.fullmatch(tag)]
    if bad:
        shown = truncate(neutralise_line(", ".join(map(repr, bad))), 120)
        return Verdict(violations=(f"tag(s) with characters outside letters, digits, spaces, - and _: {shown}",))
    return Verdict(tags=tuple(tags))
