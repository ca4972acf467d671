"""The simulated SL's side of one callback on the wire: a form-encoded POST and the
response read as the SL's own HTTP clients read it (`Net::HTTP.post_form`, NOTES.md):
redirects are not followed, the body is read up to a cap in its declared charset."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class HttpAnswer:
    """What came back: the status, the decoded body, the Content-Type and Location headers
    as sent ('' when absent), and whether the body went past the cap (then `body` is '')."""

    status: int
    body: str
    content_type: str = ""
    location: str = ""
    too_big: bool = False


async def post_form(session: aiohttp.ClientSession, url: str, fields: dict[str, str],
                    max_bytes: int) -> HttpAnswer:
    """POST `fields` to `url`. Raises what aiohttp raises for a connection that fails
    (aiohttp.ClientError, TimeoutError, OSError, ValueError for a URL it cannot use)."""
    async with session.post(url, data=fields, allow_redirects=False) as response:
        content_type = response.headers.get("Content-Type", "")
        location = response.headers.get("Location", "")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                return HttpAnswer(response.status, "", content_type, location, too_big=True)
        raw = b"".join(chunks)
        try:
            body = raw.decode(response.charset or "utf-8", errors="replace")
        except LookupError:  # an unknown charset, or a codec that is not text (`hex`)
            body = raw.decode("utf-8", errors="replace")
        return HttpAnswer(response.status, body, content_type, location)


def failure_reason(exc: BaseException) -> str:
    """One line saying why a connection failed."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        host = getattr(exc, "host", "") or "?"
        why = exc.os_error.strerror if exc.os_error.strerror else str(exc.os_error)
        return f"the host {host} cannot be resolved ({why})"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
