"""Canned replies: named templates with a body and, optionally, `close_session`,
`reprocess` and tags, filled from the callback and the contact before they are sent.

Placeholders are `{name}` for the names in PLACEHOLDERS; `{{` and `}}` are literal braces.
Anything else in braces (an unknown name, `{0}`, `{a.b}`, `{x!r}`, `{x:>9}`) is refused with
a reason when the template is saved or loaded, and again when it is filled: a template is
never sent with a placeholder left raw.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

__all__ = [
    "DEFAULT_TEMPLATES",
    "PLACEHOLDERS",
    "Filled",
    "Template",
    "TemplateError",
    "fill",
    "load_templates_file",
    "placeholder_context",
    "template_problem",
]

PLACEHOLDERS: dict[str, str] = {
    "phone_number": "the texter's number, as its history is filed",
    "body": "the text being answered",
    "carrier_name": "the texter's carrier, as the SL named it",
    "carrier_id": "the carrier's id",
    "sent_at": "when the texter sent it, as the SL wrote it",
    "tag": "the SL's thread tag of the text",
    "tags": "the subscriber's tags, comma-separated",
    "app": "the SL app the callback belongs to",
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
TAG = re.compile(r"^[A-Za-z0-9 _-]+$")


class TemplateError(ValueError):
    """A template that cannot be stored or filled; the message is one line."""


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    body: str
    close_session: bool = False
    reprocess: str = ""
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Filled:
    """A template filled for one item: what goes into the composer."""

    reply: str
    close_session: bool
    reprocess: str
    tags: str


DEFAULT_TEMPLATES = (
    Template("thanks", "Thanks for your message! Someone will text you back shortly."),
    Template("hours", "We're open 9am-6pm, Monday to Saturday."),
    Template("wait", "Got it. Give us a few minutes to check and we'll text you back."),
    Template("bye", "Thanks for texting us. Have a great day!", close_session=True),
    Template("human", "You're talking to a person. How can I help?"),
    Template("welcome", "Welcome! You're subscribed.", tags=["subscriber"]),
)


def _fields(text: str) -> list[str]:
    """The placeholder names `text` uses, or TemplateError for anything not a plain name."""
    names = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"unbalanced braces ({exc}); write {{{{ or }}}} for a literal brace") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion or name not in PLACEHOLDERS:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            known = ", ".join("{" + key + "}" for key in PLACEHOLDERS)
            raise TemplateError(f"unknown placeholder {shown}; known: {known}")
        names.append(name)
    return names


def template_problem(template: Template) -> str | None:
    """Why `template` cannot be stored, or None."""
    if not NAME.match(template.name):
        return f"name {template.name!r}: 1-32 letters, digits, - or _, starting with a letter or digit"
    if not isinstance(template.body, str) or not isinstance(template.reprocess, str):
        return "body and reprocess must be text"
    if not template.body.strip() and not template.close_session and not template.reprocess.strip() and not template.tags:
        return "an empty template: give it a body, close_session, reprocess or tags"
    for tag in template.tags:
        if not isinstance(tag, str) or not TAG.match(tag):
            return f"tag {tag!r}: only letters, digits, spaces, - and _"
    try:
        _fields(template.body)
        _fields(template.reprocess)
    except TemplateError as exc:
        return str(exc)
    return None


def placeholder_context(parsed: Mapping[str, Any], *, phone: str, app: str = "",
                        contact_tags: tuple[str, ...] = ()) -> dict[str, str]:
    """The values of every placeholder for one held callback."""
    return {
        "phone_number": phone,
        "body": str(parsed.get("body", "") or ""),
        "carrier_name": str(parsed.get("carrier_name", "") or ""),
        "carrier_id": str(parsed.get("carrier_id", "") or ""),
        "sent_at": str(parsed.get("sent_at_raw", "") or ""),
        "tag": str(parsed.get("tag", "") or ""),
        "tags": ", ".join(contact_tags),
        "app": app,
    }


def fill(template: Template, context: Mapping[str, str]) -> Filled:
    """`template` with its placeholders filled from `context`; TemplateError if it cannot be."""
    problem = template_problem(template)
    if problem is not None:
        raise TemplateError(f"template {template.name!r}: {problem}")
    values = {name: context.get(name, "") for name in PLACEHOLDERS}
    return Filled(
        reply=template.body.format_map(values),
        close_session=bool(template.close_session),
        reprocess=template.reprocess.format_map(values),
        tags=", ".join(template.tags),
    )


def load_templates_file(path: Path) -> list[Template]:
    """Read `--templates FILE`: a JSON list of {"name", "body", "close_session"?, "reprocess"?,
    "tags"?}. Raises TemplateError naming the file and the entry; nothing is half-read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplateError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TemplateError(f"{path}: not UTF-8 text") from None
    except ValueError as exc:
        raise TemplateError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, list):
        raise TemplateError(f"{path}: expected a JSON list of templates, got {type(data).__name__}")
    templates: list[Template] = []
    for number, entry in enumerate(data, 1):
        where = f"{path}: entry {number}"
        if not isinstance(entry, dict):
            raise TemplateError(f"{where}: expected an object, got {type(entry).__name__}")
        unknown = sorted(set(entry) - {"name", "body", "close_session", "reprocess", "tags"})
        if unknown:
            raise TemplateError(f"{where}: unknown key {unknown[0]!r}")
        name = entry.get("name")
        if not isinstance(name, str):
            raise TemplateError(f"{where}: 'name' must be text")
        where = f"{path}: entry {number} ({name!r})"
        body, tags = entry.get("body", ""), entry.get("tags", [])
        if isinstance(tags, str):
            tags = [tag.strip() for tag in tags.split(",") if tag.strip()]
        close = entry.get("close_session", False)
        if not isinstance(close, bool):
            raise TemplateError(f"{where}: 'close_session' must be true or false")
        if not isinstance(tags, list):
            raise TemplateError(f"{where}: 'tags' must be a list of text")
        template = Template(name=name, body=body, close_session=close, reprocess=entry.get("reprocess", ""), tags=tags)
        problem = template_problem(template)
        if problem is not None:
            raise TemplateError(f"{where}: {problem}")
        templates.append(template)
    names = [t.name for t in templates]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise TemplateError(f"{path}: the name {duplicate!r} is used twice")
    return templates
