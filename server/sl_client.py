"""A client for the SL's HTTP API (messaging.md, sessions.md), as the console uses it.
It never raises for network or HTTP errors: each call returns the reason instead.

Phone numbers go to the SL exactly as the operator wrote them (the SL reads every form);
a result names the texter it belongs to by `data.phones.normalise_phone`, the key the
history files it under."""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass

import aiohttp

from data.phones import normalise_phone
from server.gateway.tls_defer import load_deferred_certificates

NEGATIVE_IDS = {
    "-1": "invalid phone number",
    "-2": "phone is blacklisted (opted out)",
    "-3": "flood limit reached for this phone",
}


MAX_ANSWER = 1 << 20
"""Bytes of an SL answer read at most."""


def _charset(name: str | None) -> str:
    try:
        return codecs.lookup(name or "utf-8").name
    except LookupError:
        return "utf-8"


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_ANSWER:
            break
    return b"".join(chunks)[:MAX_ANSWER]


@dataclass(frozen=True)
class SendResult:
    message_ids: tuple[str, ...] = ()
    error: str = ""
    phone: str = ""
    """The texter the message is filed under: `normalise_phone` of the number given."""


class SLClient:
    """The SL API at `base_url` (e.g. http://127.0.0.1:8090/api/), called with `api_key`.
    Every call returns a result or a one-line error; none raises for network or HTTP trouble."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 15.0) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def _call(self, method: str, params: dict[str, str]) -> tuple[object | None, str]:
        """(decoded JSON, "") or (None, one-line error)."""
        if self._session is None:
            load_deferred_certificates()  # an https SL API is verified against them
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = self.base_url + method
        try:
            async with self._session.post(url, data={"api_key": self.api_key, **params}) as response:
                raw = await _read_capped(response)
                text = raw.decode(_charset(response.charset), errors="replace")
                if response.status != 200:
                    first = text.strip().splitlines()[0].strip() if text.strip() else "(no message)"
                    return None, f"{method}: HTTP {response.status}: {first[:200]}"
        except TimeoutError:
            return None, f"cannot reach the SL at {url}: no answer within {self._timeout.total:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            return None, f"cannot reach the SL at {url}: {reason}"
        if not text.strip():
            return {}, ""
        try:
            return json.loads(text), ""
        except (ValueError, RecursionError):
            return None, f"{method}: the SL answered something that is not JSON"

    async def send_message(self, phone: str, body: str, *, action_expected: bool = False) -> SendResult:
        """Send `body` to `phone` (as written); the result is filed under the normalised phone."""
        params = {"phone_number": phone, "body": body}
        if action_expected:
            params["action_expected"] = "true"
        texter = normalise_phone(phone)
        data, error = await self._call("send_message", params)
        if error:
            return SendResult(error=error, phone=texter)
        raw = data.get("message_ids", "") if isinstance(data, dict) else ""
        ids = tuple(part.strip() for part in str(raw).split(",") if part.strip())
        refused = [f"{mid}: {NEGATIVE_IDS.get(mid, 'refused')}" for mid in ids if mid.startswith("-")]
        if not ids:
            return SendResult(error="send_message: the SL returned no message ids", phone=texter)
        return SendResult(message_ids=ids, error="; ".join(refused), phone=texter)

    async def close_sessions(self, phones: list[str]) -> str:
        """'' on success, else a one-line error."""
        _, error = await self._call("close_sessions", {"phone_numbers": ",".join(phones)})
        return error

    async def delivery_status(self, ids: list[str]) -> dict[str, int]:
        """Found message ids -> status (0 pending, 1 delivered, 2 failed, 4 queued); {} on any error."""
        data, error = await self._call("delivery_status", {"message_ids": ",".join(ids)})
        if error or not isinstance(data, dict):
            return {}
        found: dict[str, int] = {}
        for key, value in data.items():
            try:
                found[str(key)] = int(value)
            except (TypeError, ValueError):
                continue
        return found

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
