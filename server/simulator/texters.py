"""Virtual texters: seeded, reproducible people who text keywords, answer what they
receive (see SimulatedSL: a delivered message may get an answer), opt out and back in,
and go quiet until their session expires."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from server.simulator.phrases import (
    AUTO_RESPONDED_KEYWORDS,
    AUTO_SUBSCRIBE_KEYWORDS,
    CARRIERS,
    FIRST_NAMES,
    FOLLOW_UPS,
    KEYWORDS,
    OPENERS,
    START_WORDS,
    STOP_WORDS,
)
from server.simulator.sl import SimulatedSL


@dataclass
class Texter:
    name: str
    phone: str
    carrier: tuple[str, str]
    """(carrier_id, carrier_name)"""
    keyword: str
    messages_sent: int = 0


def make_texters(rng: random.Random, count: int) -> list[Texter]:
    """`count` texters with unique 555 test numbers (messaging.md: 555 numbers are test numbers)."""
    phones: set[str] = set()
    texters = []
    while len(texters) < count:
        phone = "555" + "".join(rng.choice("0123456789") for _ in range(7))
        if phone in phones:
            continue
        phones.add(phone)
        texters.append(Texter(rng.choice(FIRST_NAMES), phone, rng.choice(CARRIERS), rng.choice(KEYWORDS)))
    return texters


class Crowd:
    """Drives a SimulatedSL with a population of texters at about `rate` events per second.

    Each event is a task of its own (a held callback must not stop the crowd). Sessions
    idle longer than `session_idle` seconds expire and the app hears `session_closed`.
    """

    def __init__(self, sl: SimulatedSL, *, rate: float = 1.0, population: int = 40,
                 session_idle: float | None = None) -> None:
        self.sl = sl
        self.rate = rate
        self.rng = sl.random
        self.texters = make_texters(self.rng, population)
        self.session_idle = session_idle if session_idle is not None else max(3.0, 30.0 / rate)

    def _pause(self) -> float:
        return self.rng.expovariate(self.rate) if self.rate > 0 else 1.0

    async def run(self, count: int | None = None) -> None:
        """Produce events until cancelled (or `count` events). The first one, at once,
        is a keyword opening a conversation, so there is something to answer."""
        done = 0
        while count is None or done < count:
            if done == 0:
                self.sl.spawn(self._open(self.texters[0]))
            else:
                self.sl.spawn(self.step())
            done += 1
            await asyncio.sleep(self._pause())

    async def step(self) -> None:
        """One event: an expiry, an opt-out/in, an auto-reply loop, a follow-up or a new conversation."""
        roll = self.rng.random()
        texter = self.rng.choice(self.texters)
        state = self.sl.phone(texter.phone)
        expired = self.sl.expired_sessions(self.session_idle)
        if expired and roll < 0.15:
            await self.sl.close_sessions(expired[:3])
            return
        if roll < 0.19:
            word = self.rng.choice(START_WORDS if state.blacklisted else STOP_WORDS)
            await self.sl.incoming(texter.phone, word, carrier=texter.carrier)
            return
        if roll < 0.21:
            await self.sl.post({"type": "auto_reply_loop", "phone_number": self.sl.written(texter.phone)})
            return
        if state.blacklisted:
            return  # an opted-out phone's texts do not reach the app
        if state.session_open and roll < 0.6:
            await self._say(texter, self.rng.choice(FOLLOW_UPS))
        else:
            await self._open(texter)

    async def _open(self, texter: Texter) -> None:
        texter.keyword = self.rng.choice(KEYWORDS)
        await self._say(texter, self.rng.choice(OPENERS[texter.keyword]), opener=True)

    async def _say(self, texter: Texter, text: str, *, opener: bool = False) -> None:
        texter.messages_sent += 1
        state = self.sl.phone(texter.phone)
        auto_subscribe = opener and texter.keyword in AUTO_SUBSCRIBE_KEYWORDS and not state.subscribed
        auto_responded = opener and texter.keyword in AUTO_RESPONDED_KEYWORDS and self.rng.random() < 0.5
        await self.sl.incoming(texter.phone, text, carrier=texter.carrier,
                               auto_subscribe=auto_subscribe, auto_responded=auto_responded)
