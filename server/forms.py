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
from functools import lru_cache
import json
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Iterable, Mapping
from urllib.parse import parse_qsl

from data.names import NAMES, share


class FormError(ValueError):
    """A body that cannot be read as callback fields; the message is the 400's reason."""


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


def _charset(params: Mapping[str, str], default: str = "utf-8") -> str:
    name = params.get("charset", default).strip().strip('"') or default
    codec = _text_codec(name)
    if codec is None:
        raise FormError(f"unknown charset {name!r} in Content-Type")
    return codec


def _pairs_urlencoded(text: str, charset: str, what: str, max_fields: int) -> list[tuple[str, str]]:
    try:
        return parse_qsl(
            text,
            keep_blank_values=True,
            encoding=charset,
            errors="strict",
            max_num_fields=max_fields,
        )
    except UnicodeError:  # UnicodeDecodeError, or the plain UnicodeError some codecs raise
        raise FormError(f"{what} is not valid {charset} after percent-decoding") from None
    except ValueError as exc:  # max_num_fields exceeded
        raise FormError(f"{what} has too many fields (limit {max_fields})") from exc


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


def _decode(raw: bytes, charset: str, what: str) -> str:
    try:
        return raw.decode(charset)
    except UnicodeError:  # e.g. the 'undefined' and 'idna' codecs raise plain UnicodeError
        raise FormError(f"{what} is not valid {charset}") from None


def _pairs_json(text: str) -> list[tuple[str, str]]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise FormError("body is not valid JSON") from None
    if not isinstance(value, dict):
        raise FormError("JSON body must be an object of callback fields")
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
        elif isinstance(item, list) and all(isinstance(part, (str, int)) for part in item):
            pairs.append((key, ",".join(str(part) for part in item)))
        else:
            raise FormError(f"JSON field {key!r} must be a string, number or boolean")
    return pairs


def _pairs_multipart(raw: bytes, content_type: str, charset: str) -> list[tuple[str, str]]:
    try:
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
        )
    except Exception:  # the email parser has many failure modes; all mean "broken body"
        raise FormError("multipart body could not be parsed") from None
    if not message.is_multipart():
        raise FormError("multipart body has no parts (bad boundary?)")
    pairs = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        part_charset = part.get_content_charset() or charset
        if _text_codec(part_charset) is None:
            raise FormError(f"unknown charset {part_charset!r} in a multipart part")
        pairs.append((str(name), _decode(payload, part_charset, f"multipart field {name!r}")))
    if message.defects and not pairs:
        raise FormError("multipart body could not be parsed")
    return pairs


@lru_cache(maxsize=256)
def _parse_content_type(content_type: str) -> tuple[str, dict[str, str]]:
    """(mime type, lower-cased parameters); cached, since an SL sends the same header every time."""
    if not content_type.strip():
        return "", {}
    header = Message()
    try:
        header["content-type"] = content_type
        mime = header.get_content_type()
        params = {str(k).lower(): str(v) for k, v in (header.get_params() or [])[1:]}
    except Exception:
        raise FormError("Content-Type header could not be parsed") from None
    return mime, params


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
    if query_string:
        if not query_string.isascii():
            raise FormError("query string is not ASCII")
        pairs.extend(_pairs_urlencoded(query_string, "utf-8", "query string", max_fields))
    if body:
        charset = _charset(params)
        if mime in _FORM_MIMES:
            text = _decode(body, "ascii", "urlencoded body") if charset == "utf-8" and body.isascii() else None
            if text is None:
                # Raw (not percent-encoded) non-ASCII bytes: decode with the charset first.
                text = _decode(body, charset, "urlencoded body")
                pairs.extend(_pairs_urlencoded(text, charset, "urlencoded body", max_fields))
            elif "%" in text or "+" in text:
                pairs.extend(_pairs_urlencoded(text, charset, "urlencoded body", max_fields))
            else:
                # Nothing to unquote (the common case for SL callbacks): split directly,
                # with the same result as parse_qsl(keep_blank_values=True).
                pairs.extend(_pairs_plain(text, max_fields))
        elif mime == "application/json" or mime.endswith("+json"):
            pairs.extend(_pairs_json(_decode(body, charset, "JSON body")))
        elif mime == "multipart/form-data":
            pairs.extend(_pairs_multipart(body, content_type, charset))
        else:
            raise FormError(
                f"unsupported Content-Type {mime!r}: send application/x-www-form-urlencoded"
            )
    if len(pairs) > max_fields:
        raise FormError(f"request has too many fields (limit {max_fields})")
    # JSON escapes and some codecs (utf-7, unicode_escape) can yield lone surrogates: not
    # Unicode, and the store cannot write them (it would answer 503, not 400). Strict UTF-8
    # decoding (the query string, and the usual body) never yields one: no check needed.
    if body and (charset != "utf-8" or mime not in _FORM_MIMES):
        pairs_to_check = pairs
    else:
        pairs_to_check = []
    for key, value in pairs_to_check:
        for text in (key, value):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise FormError(f"field {key!r} holds a lone surrogate: not valid Unicode") from None
    return _merge(pairs)


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
