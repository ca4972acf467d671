"""The simulated Service Layer's state and its side of the callback exchange.

It keeps the session table, subscriptions, the blacklist and every message it sends to
a virtual phone (with ids and delivery states), per texter whichever way the number is
written; it posts callbacks to a gateway as form-encoded POSTs (wire.py: no redirects
followed), reads each response as the SL would (judge.py) and applies the effects: a
reply is delivered (and later reported), close_session ends the session (and the app
hears `session_closed`, as for a session closed "for any reason"), reprocess comes back
as a new incoming message from the same phone, tags are recorded.

Everything runs as tasks in the caller's asyncio loop: no threads, no blocking calls.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict, defaultdict, deque
from datetime import datetime
from typing import Callable, Coroutine

import aiohttp

from server.sms.contract import CallbackType
from server.sms.dates import parse_sl_date
from server.simulator.judge import Verdict, judge_response
from server.simulator.numbers import phone_key, written_form
from server.simulator.parts import numbered_parts
from server.simulator.phrases import CARRIERS, FALSE_SPELLINGS, FOLLOW_UPS, TRUE_SPELLINGS
from server.simulator.records import Exchange, PhoneState, SentMessage
from server.simulator.stamps import sent_at_stamp
from server.simulator.wire import failure_reason, post_form

__all__ = ["Exchange", "PhoneState", "SentMessage", "SimulatedSL", "numbered_parts", "phone_key"]

FLOOD_WINDOW = 60.0
"""Default seconds over which `flood_limit` messages per phone are allowed."""

OPT_OUT = frozenset({"STOP", "END", "QUIT", "CANCEL", "UNSUBSCRIBE", "Q", "STP", "RE: STOP", "RE:STOP",
                     "REMOVE", "TERMINATE", "OPT OUT"})
OPT_IN = frozenset({"SUB", "SUBSCRIBE", "OPT-IN", "OPT IN", "START"})
"""callbacks-notifications.md: words the SL's STOP module consumes instead of routing them."""

MAX_MESSAGES = 200_000
"""Sent messages kept for delivery_status / cancel_messages; the oldest are forgotten."""


OnExchange = Callable[[Exchange], None]


class SimulatedSL:
    """The SL's state and its callback sender. Runs in the caller's asyncio loop.

    follow_ups: deliver replies to the phones with delivery reports, let phones answer,
    send reprocessed texts and session_closed notices (off for scripted scenarios, whose
    every callback is explicit). max_callbacks: stop posting after this many.
    mixed_forms: write a texter's number in callbacks with and without the country code
    (numbers.py), as a real SL does; off, always the 10 digits it is filed under. The
    state is per texter (`phone_key`) whichever form a number arrives or leaves in.
    """

    def __init__(
        self,
        gateway_url: str | None,
        *,
        api_key: str = "demo-key",
        seed: int | None = None,
        timeout: float = 30.0,
        flood_limit: int = 20,
        flood_window: float = FLOOD_WINDOW,
        delivery_delay: float = 1.0,
        reply_chance: float = 0.4,
        failure_rate: float = 0.08,
        reply_delay: float = 2.0,
        follow_ups: bool = True,
        max_callbacks: int | None = None,
        max_response_bytes: int = 1 << 20,
        mixed_forms: bool = True,
        on_exchange: OnExchange | None = None,
    ) -> None:
        self.gateway_url = gateway_url
        self.api_key = api_key
        self.random = random.Random(seed)
        self.timeout = timeout
        self.flood_limit = flood_limit
        self.flood_window = flood_window
        self.delivery_delay = delivery_delay
        self.reply_chance = reply_chance
        self.failure_rate = failure_rate
        """Share of sent messages whose final delivery report is 2 (failed)."""
        self.reply_delay = reply_delay
        self.follow_ups = follow_ups
        self.max_callbacks = max_callbacks
        self.max_response_bytes = max_response_bytes
        self.mixed_forms = mixed_forms
        self.on_exchange = on_exchange
        self.phones: dict[str, PhoneState] = {}
        self.messages: OrderedDict[int, SentMessage] = OrderedDict()
        self.exchanges: deque[Exchange] = deque(maxlen=10_000)
        """The latest exchanges (a long demo keeps only these)."""
        self.posted = 0
        """Callbacks sent (or being sent) so far."""
        self.completed = 0
        """Callbacks whose exchange is over (answered, refused, timed out)."""
        self.violation_count = 0
        self._next_id = 5554000
        self._sent_per_phone: dict[str, deque[float]] = defaultdict(deque)
        self._tasks: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    # -- plumbing ----------------------------------------------------------------------

    def phone(self, number: str) -> PhoneState:
        """The texter `number` is, in any written form (an invalid one is filed as given)."""
        key = phone_key(number) or number
        state = self.phones.get(key)
        if state is None:
            state = self.phones[key] = PhoneState(key)
        return state

    def written(self, phone: str) -> str:
        """`phone` as this callback writes it (see `mixed_forms`)."""
        key = self.phone(phone).phone
        return written_form(key, self.random) if self.mixed_forms else key

    def spawn(self, coro: Coroutine) -> asyncio.Task | None:
        if self._closed:
            coro.close()
            return None
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # retrieve it; never crash the loop
            import logging

            logging.getLogger(__name__).error("simulator task failed", exc_info=task.exception())

    @property
    def busy(self) -> int:
        """Tasks still running (deliveries, replies, reprocessing)."""
        return len(self._tasks)

    async def close(self) -> None:
        self._closed = True
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
        fields = {"type": fields.get("type", ""), "api_key": self.api_key,
                  **{k: v for k, v in fields.items() if k != "type"}}
        if (self.gateway_url is None or self._closed
                or (self.max_callbacks is not None and self.posted >= self.max_callbacks)):
            return Exchange(fields, 0, "", Verdict(), 0.0, sent=False)
        self.posted += 1
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        started = time.perf_counter()
        status, body, content_type = 0, "", ""
        try:
            answer = await post_form(self._session, self.gateway_url, fields, self.max_response_bytes)
        except TimeoutError:
            verdict = Verdict(violations=(f"no response within {self.timeout:g} s",))
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            verdict = Verdict(violations=(f"cannot reach the gateway: {failure_reason(exc)}",))
        else:
            status, body, content_type = answer.status, answer.body, answer.content_type
            if answer.too_big:
                verdict = Verdict(violations=(f"response longer than {self.max_response_bytes} bytes",))
            else:
                verdict = judge_response(fields["type"], status, body,
                                         content_type=content_type, location=answer.location)
        exchange = Exchange(fields, status, body, verdict, (time.perf_counter() - started) * 1000,
                            content_type=content_type)
        self.exchanges.append(exchange)
        self.completed += 1
        if not verdict.ok:
            self.violation_count += 1
        if self.on_exchange is not None:
            self.on_exchange(exchange)
        self._apply(exchange)
        return exchange

    def _apply(self, exchange: Exchange) -> None:
        """The SL acts on a response that keeps the contract; one that breaks it is not applied."""
        verdict = exchange.verdict
        if not verdict.ok:
            return
        phone = exchange.fields.get("phone_number", "")
        if exchange.type == CallbackType.INCOMING_MESSAGE and phone:
            state = self.phone(phone)
            if verdict.reply:
                self.deliver(state.phone, verdict.reply)
            was_open = state.session_open
            if verdict.close_session:
                state.session_open = False
            notify = verdict.close_session and was_open
            if self.follow_ups and (notify or verdict.reprocess):
                self.spawn(self._after_answer(state.phone, notify, verdict.reprocess))
        elif exchange.type == CallbackType.SUBSCRIPTION_CREATED and phone and verdict.tags:
            state = self.phone(phone)
            state.tags = tuple(dict.fromkeys(state.tags + verdict.tags))

    async def _notify_closed(self, phones: list[str]) -> None:
        await self.post({"type": "session_closed",
                         "phone_numbers": ",".join(self.written(phone) for phone in phones)})

    async def _after_answer(self, phone: str, notify_closed: bool, reprocess: str) -> None:
        """The docs' order: the body was sent, then the session closes, then the
        reprocessed text arrives as a new message from the same phone."""
        if notify_closed:
            await self._notify_closed([phone])
        if reprocess:
            await self.incoming(phone, reprocess)

    async def incoming(self, phone: str, text: str, *, carrier: tuple[str, str] = ("", ""),
                       auto_subscribe: bool = False, auto_responded: bool = False,
                       tag: str = "") -> Exchange | None:
        """A texter's message as the SL routes it: opt-out/in words become blacklist callbacks,
        a blacklisted phone's other texts go nowhere. `tag` is the thread it answers (the
        undocumented `tag` field real client apps read). Returns the incoming_message exchange."""
        state = self.phone(phone)
        state.last_active = asyncio.get_running_loop().time()
        word = " ".join(text.upper().split())
        if word in OPT_OUT:
            if state.blacklisted:
                return None
            state.blacklisted = True
            state.session_open = False
            exchange = await self.post({"type": "phone_blacklisted", "phone_number": self.written(state.phone)})
            if state.subscribed:
                state.subscribed = False
                await self.post({"type": "subscription_canceled", "phone_number": self.written(state.phone)})
            return exchange
        if word in OPT_IN:
            if not state.blacklisted:
                return None
            state.blacklisted = False
            return await self.post({"type": "phone_unblacklisted", "phone_number": self.written(state.phone)})
        if state.blacklisted:
            return None
        state.session_open = True
        fields = {
            "type": "incoming_message",
            "phone_number": self.written(state.phone),
            "body": text,
            "sent_at": sent_at_stamp(self.random),
        }
        if tag:
            fields["tag"] = tag
        if carrier[0]:
            state.carrier = carrier
        elif not state.carrier[0]:
            state.carrier = self.random.choice(CARRIERS)
        fields["carrier_id"], fields["carrier_name"] = state.carrier
        if auto_subscribe:
            fields["auto_subscribe"] = self.random.choice(TRUE_SPELLINGS)
        elif self.random.random() < 0.3:
            fields["auto_subscribe"] = self.random.choice(FALSE_SPELLINGS)
        if auto_responded:
            fields["auto_responded"] = self.random.choice(TRUE_SPELLINGS)
        elif self.random.random() < 0.2:
            fields["auto_responded"] = self.random.choice(FALSE_SPELLINGS)
        exchange = await self.post(fields)
        if auto_subscribe and not state.subscribed and not state.blacklisted:
            state.subscribed = True
            await self.post({"type": "subscription_created", "phone_number": self.written(state.phone)})
        return exchange

    def end_sessions(self, phones: list[str]) -> list[str]:
        """The API's close_sessions: the sessions end now and the app hears one
        session_closed listing every phone asked for (sent in the background)."""
        self._close(phones)
        keys = list(dict.fromkeys(self.phone(raw).phone for raw in phones))
        if keys:
            self.spawn(self._notify_closed(keys))
        return keys

    async def close_sessions(self, phones: list[str]) -> list[str]:
        """Expiry: the open sessions among `phones` end and the app hears one session_closed
        listing them. Returns the phones closed."""
        closed = self._close(phones)
        if closed:
            await self._notify_closed(closed)
        return closed

    def _close(self, phones: list[str]) -> list[str]:
        closed = []
        for raw in phones:
            state = self.phone(raw)
            if state.session_open:
                state.session_open = False
                closed.append(state.phone)
        return list(dict.fromkeys(closed))

    def expired_sessions(self, idle: float) -> list[str]:
        now = asyncio.get_running_loop().time()
        return [state.phone for state in self.phones.values()
                if state.session_open and now - state.last_active > idle]

    # -- messages to phones ------------------------------------------------------------

    def send(self, phone: str, text: str, *, on: str = "", action_expected: bool = False,
             tag: str = "") -> list[int]:
        """The API's send_message for one phone: message ids, one per part, or one negative
        id: -1 invalid number, -2 blacklisted, -3 flood limit reached. With a `tag` the
        message opens that thread (one DID), and the phone's answer carries the tag."""
        key = phone_key(phone)
        if key is None:
            return [-1]
        state = self.phone(key)
        if state.blacklisted:
            return [-2]
        recent = self._sent_per_phone[key]
        now = time.monotonic()
        while recent and now - recent[0] >= self.flood_window:
            recent.popleft()
        if len(recent) >= self.flood_limit:
            return [-3]
        recent.append(now)
        if action_expected:
            state.session_open = True
            state.last_active = asyncio.get_running_loop().time()
        if tag:
            state.threads.add(tag)
        return self.deliver(key, text, on=on, tag=tag)

    def remove_tag(self, phone: str, tag: str) -> None:
        """The API's remove_tag: the thread is over; answers no longer carry its tag."""
        self.phone(phone).threads.discard(tag)

    def deliver(self, phone: str, text: str, *, on: str = "", tag: str = "") -> list[int]:
        """Queue an MT (split into "(1/3) ..." parts, one id each) and, with follow-ups on,
        report its delivery and maybe let the phone answer. `on` delays it to that time."""
        state = self.phone(phone)
        ids = []
        for part in numbered_parts(text):
            self._next_id += 1
            message = SentMessage(self._next_id, state.phone, part, scheduled=on)
            self.messages[message.message_id] = message
            ids.append(message.message_id)
        while len(self.messages) > MAX_MESSAGES:
            self.messages.popitem(last=False)
        # A schedule is read as liberally as the SL reads dates (server/sms/dates.py: a time
        # already past today is tomorrow, a weekday the next one). One it cannot read is
        # kept as given: the message stays scheduled (pending, cancelable), never sent.
        delay, at = 0.0, "now"
        if on:
            at = parse_sl_date(on, future=True)
            if at is not None:
                delay = max(0.0, datetime.fromisoformat(at).timestamp() - time.time())
        if not on:
            self._reaches_phone(state, text)
        if self.follow_ups and at is not None:
            self.spawn(self._transmit(state.phone, text if on else "", ids, delay, tag))
        elif not on:
            for message_id in ids:
                self.messages[message_id].sent = True
        return ids

    @staticmethod
    def _reaches_phone(state: PhoneState, text: str) -> None:
        state.received.append(text)
        del state.received[:-50]

    async def _transmit(self, phone: str, scheduled_text: str, ids: list[int], delay: float,
                        tag: str = "") -> None:
        """4 queued, then 1 delivered (or sometimes 2 failed) with final set; then the phone may
        answer. `final` goes as 0/1, the spelling real clients rely on (NOTES.md)."""
        if delay:
            await asyncio.sleep(delay)
        ids = [i for i in ids if i in self.messages and not self.messages[i].canceled]
        if not ids:
            return
        for message_id in ids:
            self.messages[message_id].sent = True
        if scheduled_text:
            self._reaches_phone(self.phone(phone), scheduled_text)
        await asyncio.sleep(self.delivery_delay * (0.3 + self.random.random()))
        for message_id in ids:
            if message_id in self.messages:
                self.messages[message_id].status = 4
            await self.post({"type": "delivery_report", "message_id": str(message_id),
                             "final": "0", "status": "4"})
        await asyncio.sleep(self.delivery_delay * (0.5 + self.random.random()))
        failed = self.random.random() < self.failure_rate
        for message_id in ids:
            status = 2 if failed else 1
            if message_id in self.messages:
                self.messages[message_id].status = status
            await self.post({"type": "delivery_report", "message_id": str(message_id),
                             "final": "1", "status": str(status)})
        if failed:
            return
        state = self.phone(phone)
        state.last_active = asyncio.get_running_loop().time()
        if self.random.random() < self.reply_chance:
            await asyncio.sleep(self.reply_delay * (0.5 + self.random.random()))
            if not state.blacklisted:
                thread = tag if tag in state.threads else ""
                await self.incoming(phone, self.random.choice(FOLLOW_UPS), tag=thread)
