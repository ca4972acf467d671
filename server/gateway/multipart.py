"""Header parameters and `multipart/form-data` bodies, read with bounded work.

Python's `email` parser (which this replaces) spends its time per part, per header line and
per parameter, with no limit: bodies under the 64 KiB cap with 1,300 nested parts, 8,000
empty parts, 12,000 parameters or 15,000 folded header lines held the event loop for
0.2-0.7 s each. Here every loop has a bound (`MAX_PARTS`, `MAX_HEADER_LINES`, `MAX_PARAMS`,
no nesting), the scans are `bytes.find`/`count` in C, and a body past a bound is refused with
a one-line `FormError` before any part is read. A callback has about ten fields.
"""

from __future__ import annotations

import binascii
import re
from urllib.parse import unquote



class FormError(ValueError):
    """A body that cannot be read as callback fields; the message is the 400's reason."""


MAX_PARTS = 64
"""Parts in one multipart body (a callback has about ten fields)."""
MAX_HEADER_LINES = 8
"""Header lines (folded continuation lines included) in one part."""
MAX_PARAMS = 16
"""Parameters in one header value (`form-data; name="body"` has one)."""
MAX_HEAD_BYTES = 2048
"""Bytes of headers in one part (a quoted string of escapes costs the regex ~0.3 µs a byte)."""

_PARAM = re.compile(r'\s*([^\s=;"]+)\s*(?:=\s*("(?:[^"\\]+|\\.)*"?|[^;]*))?[^;]*;?')
_QUOTED_PAIR = re.compile(r"\\(.)")


def header_params(value: str, what: str) -> tuple[str, dict[str, str]]:
    """`type/sub; name=token; name="quoted"` -> (the value before the first `;`, lower-cased
    and stripped; {lower-cased name: value}). At most MAX_PARAMS parameters, else FormError."""
    head, sep, rest = value.partition(";")
    params: dict[str, str] = {}
    if not sep:
        return head.strip().lower(), params
    pos, end, steps = 0, len(rest), 0
    while pos < end:
        steps += 1
        if steps > MAX_PARAMS:
            raise FormError(f"{what} has more than {MAX_PARAMS} parameters")
        match = _PARAM.match(rest, pos)
        if match is None or match.end() == pos:
            # not a parameter (`;;`, a stray quote): skip to the next `;`
            nxt = rest.find(";", pos)
            if nxt < 0:
                break
            pos = nxt + 1
            continue
        pos = match.end()
        name, raw = match.group(1), match.group(2)
        if raw is None:
            continue
        raw = raw.strip()
        if raw.startswith('"'):
            raw = _QUOTED_PAIR.sub(r"\1", raw[1:-1] if len(raw) > 1 and raw.endswith('"') else raw[1:])
        params[name.lower()] = raw
    return head.strip().lower(), params


def mime_type(value: str) -> str:
    """The `type/subtype` of a Content-Type value; `text/plain` when it is not one (as RFC 2045
    and Python's email package read a malformed type)."""
    kind, slash, sub = value.partition("/")
    if not slash or not kind or not sub or "/" in sub:
        return "text/plain"
    return value


def form_data_parts(raw: bytes, boundary: str | None) -> list[tuple[str, bytes, str | None]]:
    """The named parts of a multipart body: (field name, decoded payload, the part's charset
    or None). FormError for a body with no such boundary, too many parts, too many header
    lines or parameters, or a part that is itself multipart."""
    if not boundary or len(boundary) > 200:
        raise FormError("multipart body has no parts (bad boundary?)")
    try:
        delimiter = b"--" + boundary.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise FormError("multipart body has no parts (bad boundary?)") from None
    marker = b"\n" + delimiter
    starts = raw.startswith(delimiter)
    count = raw.count(marker) + starts
    if count == 0:
        raise FormError("multipart body has no parts (bad boundary?)")
    if count > MAX_PARTS + 1:
        raise FormError(f"multipart body has more than {MAX_PARTS} parts")
    pos = 0 if starts else raw.find(marker) + 1
    parts = []
    while True:
        after = pos + len(delimiter)
        if raw.startswith(b"--", after):
            break  # the close delimiter
        line_end = raw.find(b"\n", after)
        if line_end < 0:
            break
        nxt = raw.find(marker, line_end)
        content = raw[line_end + 1:nxt] if nxt >= 0 else raw[line_end + 1:]
        if content.endswith(b"\r"):
            content = content[:-1]
        part = _part(content)
        if part is not None:
            parts.append(part)
        if nxt < 0:
            break
        pos = nxt + 1
    return parts


def _part(content: bytes) -> tuple[str, bytes, str | None] | None:
    """One part: its headers, then its payload after the first empty line."""
    split = _blank_line(content)
    if split is None:
        return None  # no headers, so no name
    head, payload = split
    if len(head) > MAX_HEAD_BYTES:
        raise FormError(f"a multipart part has more than {MAX_HEAD_BYTES} bytes of headers")
    headers = _headers(head)
    disposition = headers.get("content-disposition")
    if disposition is None:
        return None
    _, params = header_params(disposition, "a multipart part's Content-Disposition")
    name = params.get("name")
    if "name*" in params:  # RFC 2231/5987: charset'lang'percent-encoded
        charset, _, text = params["name*"].partition("'")
        text = text.partition("'")[2]
        try:
            name = unquote(text, encoding=charset or "utf-8", errors="strict")
        except (LookupError, UnicodeError):
            raise FormError("a multipart part's name* could not be decoded") from None
    if not name:
        return None
    charset = None
    if "content-type" in headers:
        kind, type_params = header_params(headers["content-type"], "a multipart part's Content-Type")
        if kind.startswith("multipart/"):
            raise FormError("multipart part is itself multipart: nesting is not accepted")
        charset = type_params.get("charset")
    encoding = headers.get("content-transfer-encoding", "").strip().lower()
    if encoding == "base64":
        try:
            payload = binascii.a2b_base64(payload)
        except binascii.Error:
            raise FormError(f"multipart field {name!r} is not valid base64") from None
    elif encoding == "quoted-printable":
        payload = binascii.a2b_qp(payload)
    return name, payload, charset


def _blank_line(content: bytes) -> tuple[bytes, bytes] | None:
    """(headers, payload) split at the first empty line (CRLF or bare LF endings)."""
    if content.startswith(b"\r\n") or content.startswith(b"\n"):
        return None
    crlf = content.find(b"\r\n\r\n")
    lf = content.find(b"\n\n")
    if crlf < 0 and lf < 0:
        return None
    if lf < 0 or 0 <= crlf < lf:
        return content[:crlf], content[crlf + 4:]
    return content[:lf], content[lf + 2:]


def _headers(head: bytes) -> dict[str, str]:
    """Header lines (folded lines joined), names lower-cased; at most MAX_HEADER_LINES."""
    if head.count(b"\n") >= MAX_HEADER_LINES:
        raise FormError(f"a multipart part has more than {MAX_HEADER_LINES} header lines")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    headers: dict[str, str] = {}
    last = ""
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if line[:1] in (" ", "\t") and last:
            headers[last] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon:
            continue
        last = name.strip().lower()
        headers[last] = value.strip()
    return headers
