"""Turn an HTTP request's bytes into the callback's flat fields, leniently and safely.

The documented format is `application/x-www-form-urlencoded`; we also read
`multipart/form-data`, a JSON object, and query-string parameters (merged, the body
winning, as a real client's merged params hash did). Every failure is a `FormError`
with a one-line reason the gateway sends back as a 400. aiohttp's `request.post()`
is not used: it raises (and the handler would answer 500) on invalid UTF-8, broken
multipart bodies and unknown charsets.
"""

from __future__ import annotations

import codecs
import json
import re
from functools import lru_cache
from typing import Iterable

from data.names import NAMES, share

from server.gateway.multipart import FormError, form_data_parts, header_params, mime_type

__all__ = ["FormError", "read_fields"]


def _text_codec(name: str) -> str | None:
    """The codec's canonical name if `name` is a text encoding, else None. `codecs.lookup`
    also finds bytes-to-bytes codecs (base64, rot13, zlib...) that `bytes.decode` refuses
    with LookupError, and raises ValueError on names holding a NUL."""
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "idna", "punycode", "charmap", "undefined"})
"""Python codecs that call themselves text encodings but are no charset a client can send:
`unicode_escape` would read backslash escapes in the body as code points (and warns on bad
ones), `idna`/`punycode` are for host names, `undefined` always raises."""


def _charset(params: dict[str, str], default: str = "utf-8") -> str:
    name = params.get("charset", default).strip().strip('"') or default
    codec = _text_codec(name)
    if codec is None:
        raise FormError(f"unknown charset {name!r} in Content-Type")
    return codec


_CP1252 = "".join(bytes([i]).decode("cp1252", "ignore") or chr(i) for i in range(256))
"""Windows-1252 as a decoding table; its five unassigned bytes read as the C1 controls of the
same value (as browsers do), which the sanitiser shows as visible escapes."""

LEGACY_NOTE = "{what} is not valid UTF-8 and names no charset: read as Windows-1252"
"""The contract warning for a field read as Windows-1252 (issue 11: refusing it would lose
the texter's message, and Windows-1252 decodes any byte)."""


def _text(raw: bytes, charset: str, named: bool, what: str, notes: list[str]) -> str:
    """`raw` decoded with `charset`. When no charset was named and the bytes are not UTF-8
    they are read as Windows-1252, with a note; a charset that was named and does not decode
    the bytes is a 400: the sender said what they are, and a guess would store a wrong text
    without anyone noticing."""
    try:
        return raw.decode(charset)
    except UnicodeError:  # e.g. the 'undefined' and 'idna' codecs raise plain UnicodeError
        if named:
            raise FormError(f"{what} is not valid {charset}") from None
    note = LEGACY_NOTE.format(what=what)
    if note not in notes:
        notes.append(note)
    return codecs.charmap_decode(raw, "strict", _CP1252)[0]


_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _unquote(raw: bytes) -> bytes:
    """Percent-decoding (with `+` as space) in C: 21,000 escapes (a 64 KiB body of them) cost
    urllib's loop 10 ms; `escape_decode` reads `\\xHH` at C speed once backslashes are doubled
    and every `%` that starts no escape stands for itself (as urllib reads it)."""
    if b"+" in raw:
        raw = raw.replace(b"+", b" ")
    if b"%" not in raw:
        return raw
    raw = _BAD_ESCAPE.sub(b"%25", raw)
    return codecs.escape_decode(raw.replace(b"\\", b"\\\\").replace(b"%", b"\\x"))[0]


def _pairs_urlencoded(
    raw: bytes, charset: str, named: bool, what: str, max_fields: int, notes: list[str],
) -> list[tuple[str, str]]:
    """`name=value&...` bytes (ASCII-compatible) -> decoded pairs; empty fields are skipped and
    do not count (as parse_qsl with keep_blank_values reads them)."""
    pairs = []
    for field in raw.split(b"&"):
        if not field:
            continue
        if len(pairs) >= max_fields:
            raise FormError(f"{what} has too many fields (limit {max_fields})")
        name, _, value = field.partition(b"=")
        pairs.append((_text(_unquote(name), charset, named, what, notes),
                      _text(_unquote(value), charset, named, what, notes)))
    return pairs


@lru_cache(maxsize=64)
def _ascii_compatible(charset: str) -> bool:
    return "a=%&+;".encode(charset, "replace") == b"a=%&+;"


def _pairs_plain(text: str, max_fields: int) -> list[tuple[str, str]]:
    """parse_qsl for ASCII text with no percent-escapes and no '+'."""
    pairs = []
    for field in text.split("&"):
        if not field:
            continue
        if len(pairs) >= max_fields:
            raise FormError(f"urlencoded body has too many fields (limit {max_fields})")
        name, _, value = field.partition("=")
        pairs.append((name, value))
    return pairs


def _pairs_json(text: str, max_fields: int) -> list[tuple[str, str]]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise FormError("body is not valid JSON") from None
    if not isinstance(value, dict):
        raise FormError("JSON body must be an object of callback fields")
    if len(value) > max_fields:
        raise FormError(f"request has too many fields (limit {max_fields})")
    pairs = []
    for key, item in value.items():
        if isinstance(item, str):
            pairs.append((key, item))
        elif item is None:
            pairs.append((key, ""))
        elif isinstance(item, bool):
            pairs.append((key, "true" if item else "false"))
        elif isinstance(item, (int, float)):
            pairs.append((key, str(item)))
        elif isinstance(item, list) and len(item) <= max_fields and all(isinstance(part, (str, int)) for part in item):
            pairs.append((key, ",".join(str(part) for part in item)))
        else:
            raise FormError(f"JSON field {key!r} must be a string, number, boolean or a short list")
    return pairs


def _pairs_multipart(raw: bytes, params: dict[str, str], charset: str, named: bool,
                     notes: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for name, payload, part_charset in form_data_parts(raw, params.get("boundary")):
        what = f"multipart field {name!r}"
        if part_charset is None:
            pairs.append((name, _text(payload, charset, named, what, notes)))
            continue
        codec = _text_codec(part_charset.strip().strip('"'))
        if codec is None:
            raise FormError(f"unknown charset {part_charset!r} in a multipart part")
        pairs.append((name, _text(payload, codec, True, what, notes)))
    return pairs


@lru_cache(maxsize=256)
def _parse_content_type(content_type: str) -> tuple[str, dict[str, str]]:
    """(mime type, lower-cased parameters); cached, since an SL sends the same header every time."""
    if not content_type.strip():
        return "", {}
    kind, params = header_params(content_type, "Content-Type")
    return mime_type(kind), params


_FORM_MIMES = ("", "application/x-www-form-urlencoded", "text/plain")


@lru_cache(maxsize=256)
def _is_plain_utf8_form(content_type: str) -> bool:
    """True when the header says (or defaults to) a urlencoded form in UTF-8; cached."""
    try:
        mime, params = _parse_content_type(content_type)
        return mime in _FORM_MIMES and _charset(params) == "utf-8"
    except FormError:
        return False


def read_fields(
    *,
    query_string: str,
    content_type: str,
    body: bytes,
    max_fields: int = 1000,
) -> tuple[dict[str, str], list[str]]:
    """Merge query-string and body fields. `content_type` is the raw header.
    Returns (fields, notes); notes are warnings about the request's shape (repeated
    keys) worth showing to QA."""
    if body and not query_string and body.isascii() and _is_plain_utf8_form(content_type):
        # The usual SL callback: ASCII, no percent-escapes, nothing else to merge.
        text = body.decode("ascii")
        if "%" not in text and "+" not in text:
            return _fields_plain(text, max_fields)
    mime, params = _parse_content_type(content_type)
    pairs: list[tuple[str, str]] = []
    notes: list[str] = []
    if query_string:
        if not query_string.isascii():
            raise FormError("query string is not ASCII")
        # a query string names no charset: UTF-8, else Windows-1252
        pairs.extend(_pairs_urlencoded(query_string.encode("ascii"), "utf-8", False, "query string",
                                       max_fields, notes))
    charset = "utf-8"
    if body:
        charset = _charset(params)
        named = "charset" in params
        if mime in _FORM_MIMES:
            if body.isascii() and charset == "utf-8" and b"%" not in body and b"+" not in body:
                # Nothing to unquote (the common case for SL callbacks): split directly.
                pairs.extend(_pairs_plain(body.decode("ascii"), max_fields))
            else:
                raw = body
                if not _ascii_compatible(charset):
                    # UTF-16 and the like: `&`, `=` and `%` are only found in the decoded text
                    text = _text(body, charset, True, "urlencoded body", notes)
                    try:
                        raw = text.encode("utf-8")
                    except UnicodeEncodeError:  # utf-7 can spell a lone surrogate
                        raise FormError("urlencoded body holds a lone surrogate: not valid Unicode") from None
                    charset, named = "utf-8", True
                pairs.extend(_pairs_urlencoded(raw, charset, named, "urlencoded body", max_fields, notes))
        elif mime == "application/json" or mime.endswith("+json"):
            # JSON is UTF-8 by its RFC (8259) and no SL sends it: no Windows-1252 guess
            pairs.extend(_pairs_json(_text(body, charset, True, "JSON body", notes), max_fields))
        elif mime == "multipart/form-data":
            pairs.extend(_pairs_multipart(body, params, charset, named, notes))
        else:
            raise FormError(
                f"unsupported Content-Type {mime!r}: send application/x-www-form-urlencoded"
            )
    if len(pairs) > max_fields:
        raise FormError(f"request has too many fields (limit {max_fields})")
    # JSON escapes and some codecs (utf-7, utf-16 with surrogatepass) can yield lone
    # surrogates: not Unicode, and the store cannot write them (it would answer 503, not 400).
    # Strict UTF-8 and Windows-1252 decoding never yield one: no check needed.
    if body and (charset != "utf-8" or mime not in _FORM_MIMES):
        for key, value in pairs:
            for text in (key, value):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise FormError(f"field {key!r} holds a lone surrogate: not valid Unicode") from None
    fields, repeated = _merge(pairs)
    return fields, notes + repeated if notes else repeated


def _fields_plain(text: str, max_fields: int) -> tuple[dict[str, str], list[str]]:
    """`_merge(_pairs_plain(text, max_fields))` in one pass, without the list of pairs
    (the ingest hot path)."""
    fields: dict[str, str] = {}
    repeated: list[str] = []
    names = NAMES
    count = 0
    for field in text.split("&"):
        if not field:
            continue
        if count >= max_fields:
            raise FormError(f"urlencoded body has too many fields (limit {max_fields})")
        count += 1
        name, _, value = field.partition("=")
        key = names.get(name) or share(name)
        old = fields.get(key)
        if old is not None and old != value and key not in repeated:
            repeated.append(key)
        fields[key] = value
    if repeated:
        return fields, [f"field {key!r} was sent more than once; the last value was used" for key in repeated]
    return fields, []


def _merge(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    fields: dict[str, str] = {}
    repeated: list[str] = []
    names = NAMES
    for key, value in pairs:
        key = names.get(key) or share(key)  # one string per name: see data/names.py
        if key in fields and fields[key] != value and key not in repeated:
            repeated.append(key)
        fields[key] = value
    notes = [f"field {key!r} was sent more than once; the last value was used" for key in repeated]
    return fields, notes
