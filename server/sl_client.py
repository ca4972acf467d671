"""A client for the SL's HTTP API (messaging.md, sessions.md), as the console uses it.
It never raises for network or HTTP errors: each call returns the reason instead."""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiohttp

NEGATIVE_IDS = {
    "-1": "invalid phone number",
    "-2": "phone is blacklisted (opted out)",
    "-3": "flood limit reached for this phone",
}


@dataclass(frozen=True)
class SendResult:
    message_ids: tuple[str, ...] = ()
    error: str = ""


class SLClient:
    def __init__(self, base_url: str, api_key: str, *, timeout: float = 15.0) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def _call(self, method: str, params: dict[str, str]) -> tuple[object | None, str]:
        """(decoded JSON, "") or (None, one-line error)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = self.base_url + method
        try:
            async with self._session.post(url, data={"api_key": self.api_key, **params}) as response:
                text = await response.text(errors="replace")
                if response.status != 200:
                    first = text.strip().splitlines()[0] if text.strip() else "(no message)"
                    return None, f"{method}: HTTP {response.status}: {first[:200]}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, f"cannot reach the SL at {url}: {exc or type(exc).__name__}"
        if not text.strip():
            return {}, ""
        try:
            return json.loads(text), ""
        except ValueError:
            return None, f"{method}: the SL answered something that is not JSON"

    async def send_message(self, phone: str, body: str, *, action_expected: bool = False) -> SendResult:
        params = {"phone_number": phone, "body": body}
        if action_expected:
            params["action_expected"] = "true"
        data, error = await self._call("send_message", params)
        if error:
            return SendResult(error=error)
        raw = data.get("message_ids", "") if isinstance(data, dict) else ""
        ids = tuple(part.strip() for part in str(raw).split(",") if part.strip())
        refused = [f"{mid}: {NEGATIVE_IDS.get(mid, 'refused')}" for mid in ids if mid.startswith("-")]
        if not ids:
            return SendResult(error="send_message: the SL returned no message ids")
        return SendResult(message_ids=ids, error="; ".join(refused))

    async def close_sessions(self, phones: list[str]) -> str:
        _, error = await self._call("close_sessions", {"phone_numbers": ",".join(phones)})
        return error

    async def delivery_status(self, ids: list[str]) -> dict[str, int]:
        data, error = await self._call("delivery_status", {"message_ids": ",".join(ids)})
        return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) and not error else {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
