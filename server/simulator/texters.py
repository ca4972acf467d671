"""Virtual texters: seeded, reproducible people who text keywords, answer what they
receive, opt out and back in, and go quiet until their session expires."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from .sl import SimulatedSL

FIRST_NAMES = ["Ana", "Ben", "Chloe", "Dev", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kemal", "Lena",
               "Mo", "Nia", "Omar", "Pia", "Quinn", "Rosa", "Sami", "Tess", "Uma", "Vik", "Wen", "Yara", "Zoe"]
CARRIERS = [("1", "Verizon"), ("2", "AT&T"), ("3", "T-Mobile"), ("4", "US Cellular"), ("5", "Cricket")]
KEYWORDS = ["PIZZA", "SURF", "HELP", "JOIN", "TICKETS", "WEATHER"]
OPENERS = {
    "PIZZA": ["PIZZA", "pizza large pepperoni", "Pizza - are you open?"],
    "SURF": ["SURF", "surf report malibu", "Surf today?"],
    "HELP": ["HELP", "help my order didn't arrive", "Help! wrong size"],
    "JOIN": ["JOIN", "join", "JOIN the list please"],
    "TICKETS": ["TICKETS", "tickets for saturday?", "TICKETS 2 adults"],
    "WEATHER": ["WEATHER", "weather 10001", "Weather tomorrow?"],
}
FOLLOW_UPS = [
    "ok thanks", "what time?", "How much is it?", "great 👍", "can you call me?", "yes please",
    "no", "Where are you located?", "I'll be there at 5", "Is it still available?",
    "thx!", "Can I change my order?", "ETA?", "perfect, see you", "¿hablan español?",
    "Sorry, wrong number", "and for 2 people?", "[bold]not markup[/] just text",
]


@dataclass
class Texter:
    name: str
    phone: str
    carrier: tuple[str, str]
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
    """Drives a SimulatedSL with a population of texters at about `rate` events per second."""

    def __init__(self, sl: SimulatedSL, *, rate: float = 1.0, population: int = 40, session_idle: float = 60.0) -> None:
        self.sl = sl
        self.rate = rate
        self.rng = sl.random
        self.texters = make_texters(self.rng, population)
        self.session_idle = session_idle
        self._last_active: dict[str, float] = {}
        self._replied_to: dict[str, int] = {}

    async def run(self, count: int | None = None) -> None:
        """Produce events until cancelled (or `count` events)."""
        done = 0
        loop = asyncio.get_running_loop()
        if count is None or count > 0:
            # Open with a conversation, so there is something to answer at once.
            texter = self.texters[0]
            texter.keyword = self.rng.choice(KEYWORDS)
            self.sl.spawn(self._say(texter, self.rng.choice(OPENERS[texter.keyword]), opener=True))
            done += 1
            await asyncio.sleep(self.rng.expovariate(self.rate) if self.rate > 0 else 1.0)
        while count is None or done < count:
            self.sl.spawn(self.step(loop.time()))
            done += 1
            await asyncio.sleep(self.rng.expovariate(self.rate) if self.rate > 0 else 1.0)

    async def step(self, now: float) -> None:
        """One event: a new conversation, an answer to a reply, an opt-out/in, an expiry or a loop."""
        roll = self.rng.random()
        texter = self.rng.choice(self.texters)
        state = self.sl.phone(texter.phone)
        expired = [t.phone for t in self.texters
                   if self.sl.phone(t.phone).session_open and now - self._last_active.get(t.phone, now) > self.session_idle]
        if expired and roll < 0.08:
            await self.sl.close_sessions(expired[:3])
            return
        if roll < 0.11:
            await self.sl.incoming(texter.phone, "STOP" if not state.blacklisted else "START")
            return
        if roll < 0.12:
            await self.sl.post({"type": "auto_reply_loop", "phone_number": texter.phone})
            return
        self._last_active[texter.phone] = now
        waiting = [t for t in self.texters if len(self.sl.phone(t.phone).received) > self._replied_to.get(t.phone, 0)]
        if waiting and roll < 0.6:
            texter = self.rng.choice(waiting)
            self._replied_to[texter.phone] = len(self.sl.phone(texter.phone).received)
            await self._say(texter, self.rng.choice(FOLLOW_UPS))
            return
        if state.session_open:
            await self._say(texter, self.rng.choice(FOLLOW_UPS))
        else:
            texter.keyword = self.rng.choice(KEYWORDS)
            await self._say(texter, self.rng.choice(OPENERS[texter.keyword]), opener=True)

    async def _say(self, texter: Texter, text: str, *, opener: bool = False) -> None:
        texter.messages_sent += 1
        auto_subscribe = opener and texter.keyword == "JOIN"
        auto_responded = opener and texter.keyword in ("WEATHER", "TICKETS") and self.rng.random() < 0.5
        await self.sl.incoming(texter.phone, text, carrier=texter.carrier,
                               auto_subscribe=auto_subscribe, auto_responded=auto_responded)
