"""The simulated Service Layer's state and its side of the callback exchange.

It keeps the session table, subscriptions, the blacklist and every message it sends to
a virtual phone (with ids and delivery states); it posts callbacks to a gateway as
form-encoded POSTs, reads each response as the SL would (see judge.py) and applies the
effects: a reply is delivered (and later reported), close_session ends the session,
reprocess comes back as a new incoming message, tags are recorded.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import aiohttp

from ..contract import CallbackType
from ..segments import split_parts
from .judge import Verdict, judge_response


@dataclass(frozen=True)
class Exchange:
    """One callback sent and what came back."""

    fields: dict[str, str]
    status: int
    body: str
    verdict: Verdict
    elapsed_ms: float

    @property
    def type(self) -> str:
        return self.fields.get("type", "")


@dataclass
class SentMessage:
    """An MT the SL sent to a virtual phone (one part)."""

    message_id: int
    phone: str
    text: str
    status: int = 0
    """0 pending, 1 delivered, 2 failed, 4 queued (the docs' codes)."""
    scheduled: str = ""
    canceled: bool = False


@dataclass
class PhoneState:
    phone: str
    session_open: bool = False
    subscribed: bool = False
    blacklisted: bool = False
    tags: tuple[str, ...] = ()
    received: list[str] = field(default_factory=list)
    """Message texts delivered to this phone, whole (not per part)."""


OnExchange = Callable[[Exchange], None]


class SimulatedSL:
    """The SL's state and its callback sender. Runs in the caller's asyncio loop."""

    def __init__(
        self,
        gateway_url: str | None,
        *,
        api_key: str = "demo-key",
        seed: int | None = None,
        timeout: float = 30.0,
        flood_limit: int = 20,
        delivery_delay: float = 1.0,
        on_exchange: OnExchange | None = None,
    ) -> None:
        self.gateway_url = gateway_url
        self.api_key = api_key
        self.random = random.Random(seed)
        self.timeout = timeout
        self.flood_limit = flood_limit
        self.delivery_delay = delivery_delay
        self.on_exchange = on_exchange
        self.phones: dict[str, PhoneState] = {}
        self.messages: dict[int, SentMessage] = {}
        self.exchanges: list[Exchange] = []
        self._next_id = 5554000
        self._sent_per_phone: dict[str, list[float]] = defaultdict(list)
        self._tasks: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None

    # -- plumbing ----------------------------------------------------------------------

    def phone(self, number: str) -> PhoneState:
        state = self.phones.get(number)
        if state is None:
            state = self.phones[number] = PhoneState(number)
        return state

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def violations(self) -> list[Exchange]:
        return [exchange for exchange in self.exchanges if not exchange.verdict.ok]

    # -- callbacks to the gateway ------------------------------------------------------

    async def post(self, fields: dict[str, str]) -> Exchange:
        """POST one callback (form-encoded) and apply what the SL would do with the answer."""
        fields = {"api_key": self.api_key, **fields}
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        started = time.perf_counter()
        kind = fields.get("type", "")
        try:
            assert self.gateway_url is not None, "no gateway URL"
            async with self._session.post(self.gateway_url, data=fields) as response:
                body = await response.text(errors="replace")
                status = response.status
        except asyncio.TimeoutError:
            exchange = Exchange(fields, 0, "", Verdict(violations=(f"no response within {self.timeout:g} s",)),
                                (time.perf_counter() - started) * 1000)
        except aiohttp.ClientError as exc:
            exchange = Exchange(fields, 0, "", Verdict(violations=(f"cannot reach the gateway: {exc}",)),
                                (time.perf_counter() - started) * 1000)
        else:
            exchange = Exchange(fields, status, body, judge_response(kind, status, body),
                                (time.perf_counter() - started) * 1000)
        self.exchanges.append(exchange)
        if len(self.exchanges) > 100_000:
            del self.exchanges[:50_000]
        self._apply(exchange)
        if self.on_exchange is not None:
            self.on_exchange(exchange)
        return exchange

    def _apply(self, exchange: Exchange) -> None:
        verdict = exchange.verdict
        phone = exchange.fields.get("phone_number", "")
        if exchange.type == CallbackType.INCOMING_MESSAGE and phone:
            if verdict.reply:
                self.send(phone, verdict.reply)
            if verdict.close_session:
                self.phone(phone).session_open = False
            if verdict.reprocess:
                self.spawn(self.incoming(phone, verdict.reprocess))
        elif exchange.type == CallbackType.SUBSCRIPTION_CREATED and phone and verdict.tags:
            state = self.phone(phone)
            state.tags = tuple(dict.fromkeys(state.tags + verdict.tags))

    async def incoming(self, phone: str, text: str, *, carrier: tuple[str, str] = ("", ""),
                       auto_subscribe: bool = False, auto_responded: bool = False) -> Exchange | None:
        """A texter's message as the SL routes it: opt-out/in words become blacklist callbacks."""
        state = self.phone(phone)
        word = " ".join(text.upper().split())
        if word in OPT_OUT:
            if state.blacklisted:
                return None
            state.blacklisted = True
            state.session_open = False
            exchange = await self.post({"type": "phone_blacklisted", "phone_number": phone})
            if state.subscribed:
                state.subscribed = False
                await self.post({"type": "subscription_canceled", "phone_number": phone})
            return exchange
        if word in OPT_IN:
            if not state.blacklisted:
                return None
            state.blacklisted = False
            return await self.post({"type": "phone_unblacklisted", "phone_number": phone})
        if state.blacklisted:
            return None
        state.session_open = True
        fields = {
            "type": "incoming_message",
            "phone_number": phone,
            "body": text,
            "sent_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if carrier[0]:
            fields["carrier_id"], fields["carrier_name"] = carrier
        if auto_subscribe:
            fields["auto_subscribe"] = self.random.choice(["1", "true", "Y", "yes", "t"])
        elif self.random.random() < 0.3:
            fields["auto_subscribe"] = self.random.choice(["0", "false", "N", "no", "f"])
        if auto_responded:
            fields["auto_responded"] = self.random.choice(["1", "TRUE", "y"])
        exchange = await self.post(fields)
        if auto_subscribe and not state.subscribed:
            state.subscribed = True
            await self.post({"type": "subscription_created", "phone_number": phone})
        return exchange

    async def close_sessions(self, phones: list[str]) -> None:
        """Sessions end (expiry or the API): the SL tells the app with session_closed."""
        for phone in phones:
            self.phone(phone).session_open = False
        if phones:
            await self.post({"type": "session_closed", "phone_numbers": ",".join(phones)})

    # -- messages to phones ------------------------------------------------------------

    def send(self, phone: str, text: str, *, scheduled: str = "") -> list[int]:
        """Send an MT: split into parts "(1/3) ...", one id each; refusals are negative ids."""
        digits = "".join(ch for ch in phone if ch.isdigit())
        if len(digits) not in (10, 11):
            return [-1]
        state = self.phone(digits[-10:] if len(digits) == 11 and digits.startswith("1") else digits)
        if state.blacklisted:
            return [-2]
        recent = self._sent_per_phone[state.phone]
        now = time.monotonic()
        recent[:] = [at for at in recent if now - at < FLOOD_WINDOW]
        if len(recent) >= self.flood_limit:
            return [-3]
        recent.append(now)
        parts = split_parts(text) or [""]
        if len(parts) > 1:
            parts = _numbered(text)
        ids = []
        for part in parts:
            self._next_id += 1
            message = SentMessage(self._next_id, state.phone, part, scheduled=scheduled)
            self.messages[message.message_id] = message
            ids.append(message.message_id)
        state.received.append(text)
        if not scheduled and self.gateway_url:
            self.spawn(self._report_delivery(ids))
        return ids

    async def _report_delivery(self, ids: list[int]) -> None:
        """4 queued, then 1 delivered (or sometimes 2 failed) with final set."""
        await asyncio.sleep(self.delivery_delay * (0.3 + self.random.random()))
        for message_id in ids:
            self.messages[message_id].status = 4
            await self.post({"type": "delivery_report", "message_id": str(message_id), "final": "0", "status": "4"})
        await asyncio.sleep(self.delivery_delay * (0.5 + self.random.random()))
        for message_id in ids:
            status = 2 if self.random.random() < 0.08 else 1
            self.messages[message_id].status = status
            await self.post({"type": "delivery_report", "message_id": str(message_id), "final": "1", "status": str(status)})


FLOOD_WINDOW = 60.0
"""Seconds over which `flood_limit` messages per phone are allowed."""

OPT_OUT = frozenset({"STOP", "END", "QUIT", "CANCEL", "UNSUBSCRIBE", "Q", "STP", "RE: STOP", "RE:STOP",
                     "REMOVE", "TERMINATE", "OPT OUT"})
OPT_IN = frozenset({"SUB", "SUBSCRIBE", "OPT-IN", "OPT IN", "START"})


def _numbered(text: str) -> list[str]:
    """Split a long text into parts prefixed "(i/n) ", each part fitting one segment."""
    count = len(split_parts(text))
    while True:
        prefix_len = len(f"({count}/{count}) ")
        chunks = _chunks(text, prefix_len)
        if len(chunks) <= count:
            return [f"({n}/{len(chunks)}) {chunk}" for n, chunk in enumerate(chunks, 1)]
        count = len(chunks)


def _chunks(text: str, prefix_len: int) -> list[str]:
    from ..segments import count_segments

    limit = count_segments(text).per_segment
    chunks: list[str] = []
    rest = text
    while rest:
        size = len(rest)
        while size > 1 and count_segments("x" * prefix_len + rest[:size]).units > limit:
            size = max(1, size * limit // max(1, count_segments("x" * prefix_len + rest[:size]).units) - 1)
        # grow back to the largest fitting size
        while size < len(rest) and count_segments("x" * prefix_len + rest[: size + 1]).units <= limit:
            size += 1
        chunks.append(rest[:size])
        rest = rest[size:]
    return chunks
