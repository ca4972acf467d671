"""`LocalBackend`: the console's backend in the console's own process.

It owns the gateway server, the broker, the history store, the SL API client and (with
--demo) the simulated SL, all running in the console's event loop. The entry point builds
the parts and hands them over; the console sees only `ConsoleBackend`.

History reads run on one worker thread of their own, so a read that goes to disk never
delays a keystroke; the store's reads take their snapshot of the live segment when called
and are safe to run there (data/store.py, "Threads").
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import AsyncIterator, Callable, TypeVar

from data.models import CallbackRecord, ContactState, OutboundRecord, ThreadEntry, ThreadPage
from data.phones import normalise_phone
from data.store import HistoryStore
from data.tables import Repository
from server.broker import AnswerRefused as BrokerRefusal
from server.broker import Broker
from server.config import Config
from server.sms.contract import Decision
from server.gateway.runner import GatewayServer
from server.sms.sanitize import neutralise_line, truncate
from server.sl_client import SLClient
from server.sms.templates import DEFAULT_TEMPLATES, Template, TemplateError, load_templates_file, template_problem

from server.backend.events import HeldItem, Subscriber
from server.backend.interface import AnswerOutcome, AnswerRefused, AnswerSent, GatewayStatus, Note, ReadMark, SearchPage, SendOutcome

T = TypeVar("T")

DELIVERY_WAIT = 2.0
"""Seconds an answer waits for the gateway to send it before the console moves on anyway."""
MARKS_EVERY = 2.0
"""Seconds between writes of the operator's read marks (reads.json); they are kept at stop."""


@dataclass(frozen=True, slots=True)
class Setting:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """--demo: a simulated SL posting to this gateway and serving the SL API."""

    rate: float = 1.0
    seed: int | None = None


class LocalBackend:
    """The in-process `ConsoleBackend` (see the module docstring)."""

    def __init__(self, *, config: Config, store: HistoryStore, broker: Broker | None = None,
                 demo: DemoSettings | None = None) -> None:
        self.config = config
        self.store = store
        self.broker = broker or Broker()
        self.server = GatewayServer(config.gateway, self.broker, store)
        self._demo_settings = demo
        self._demo = None
        self._sl: SLClient | None = None
        if config.sl_url and not demo:
            self._sl = SLClient(config.sl_url, config.sl_api_key or "")
        self._reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-reads")
        # The operator's small collections, each an ordinary TinyDB table (data/tables.py).
        # They are opened and written only on the reads thread, one call at a time.
        self._tables: dict[str, Repository] = {}
        self._read_marks: dict[str, int] = {}
        self._unsaved_marks: dict[str, int] = {}
        self._marks_timer: asyncio.TimerHandle | None = None
        self._marks_saving: asyncio.Future | None = None
        self._notice = ""
        self._stopped = False
        self._notices_taken = 0

    @classmethod
    def for_config(cls, config: Config, store: HistoryStore, *, broker: Broker | None = None) -> "LocalBackend":
        """The backend `config` describes: --demo starts the simulated SL with it."""
        demo = DemoSettings(rate=config.demo_rate, seed=config.demo_seed) if config.demo else None
        return cls(config=config, store=store, broker=broker, demo=demo)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> GatewayStatus:
        await self._read(self._open_tables)
        url = await self.server.start()
        if self._demo_settings is not None:
            from server.simulator.demo import start_demo

            settings = self._demo_settings
            self._demo = await start_demo(url, rate=settings.rate, seed=settings.seed)
            self._sl = SLClient(self._demo.sl_url, self._demo.sl_api_key)
            self._notice = "DEMO"
        return self.status()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        # Held requests are answered first (the simulator gets the fallback like any SL
        # would), then the simulated traffic stops.
        await self.server.stop()
        if self._demo is not None:
            await self._demo.stop()
        if self._sl is not None:
            await self._sl.close()
        if self._marks_timer is not None:
            self._marks_timer.cancel()
            self._marks_timer = None
        if self._marks_saving is not None:
            await self._marks_saving
        await self._read(self._save_marks)
        await self._read(self._close_tables)
        self._reads.shutdown(wait=False, cancel_futures=True)

    # -- the held exchanges ---------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        return self.broker.subscribe(subscriber)

    async def answer(self, seq: int, decision: Decision) -> AnswerOutcome:
        """Returns once the gateway has the answer on its way (at most DELIVERY_WAIT s), so
        the console updates its screen after the answer, never before it. A 503 from a
        failing disk is announced as a RequestRejected event, as for any answerer."""
        try:
            delivery = self.broker.answer(seq, decision, "operator")
        except BrokerRefusal as refusal:
            return AnswerRefused(seq, str(refusal))
        try:
            await asyncio.wait_for(asyncio.shield(delivery), DELIVERY_WAIT)
        except TimeoutError:
            pass  # the decision reached the exchange; the gateway sends it when it can
        return AnswerSent(seq)

    def pending(self) -> list[HeldItem]:
        return self.broker.pending()

    def status(self) -> GatewayStatus:
        stats = self.server.stats
        counts = dict(stats.as_dict())
        counts["pending"] = self.broker.pending_count
        notice = self._notice
        allowed = stats.max_pending_allowed
        if allowed and allowed < self.config.gateway.max_pending:
            # The descriptor limit holds fewer requests than --max-pending asks for.
            limit = f"descriptors allow --max-pending {allowed}"
            notice = f"{notice}  {limit}" if notice else limit
        return GatewayStatus(url=self.server.url, key_state=self._key_state(), counts=counts, notice=notice)

    def _key_state(self) -> str:
        keys = self.config.gateway.api_keys
        if not keys:
            return "api_key: any accepted (no --api-key)"
        names = ", ".join(truncate(neutralise_line(app.name), 20) for app in keys)
        return f"api_key checked: {names}"

    @property
    def can_send(self) -> bool:
        return self._sl is not None

    # -- history reads, off the UI loop ------------------------------------------------------

    async def _read(self, call: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._reads, call, *args)

    async def thread(self, phone: str, limit: int = 300) -> list[ThreadEntry]:
        return await self._read(self.store.thread, normalise_phone(phone), limit)

    async def thread_page(self, phone: str, *, before: int = 0, limit: int = 50) -> ThreadPage:
        return await self._read(self.store.thread_page, normalise_phone(phone), limit, before)

    async def contact(self, phone: str) -> ContactState | None:
        return await self._read(self.store.contact, normalise_phone(phone))

    async def contacts(self, limit: int = 100) -> list[ContactState]:
        return await self._read(self.store.contacts, limit)

    async def recent_callbacks(self, limit: int = 200) -> list[CallbackRecord]:
        return await self._read(self.store.recent_callbacks, limit)

    async def search(self, text: str) -> AsyncIterator[SearchPage]:
        steps = iter(self.store.search(text))
        while True:
            progress = await self._read(next, steps, None)
            if progress is None:
                return
            yield SearchPage(hits=list(progress.hits), scanned=progress.scanned,
                             total=progress.total, done=progress.done)
            if progress.done:
                return

    def notices(self) -> list[str]:
        notices = list(self.store.notices) + self.table_notices()
        fresh, self._notices_taken = notices[self._notices_taken:], len(notices)
        return fresh

    # -- the operator's collections: templates, notes, settings ---------------------------

    def _open_tables(self) -> None:
        data_dir = self.config.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        first_start = not (data_dir / "templates.json").exists()
        self._tables = {
            "templates": Repository(data_dir / "templates.json", Template, key="name"),
            "notes": Repository(data_dir / "notes.json", Note, key="id"),
            "settings": Repository(data_dir / "settings.json", Setting, key="key"),
            "reads": Repository(data_dir / "reads.json", ReadMark, key="phone"),
        }
        self._read_marks = {mark.phone: mark.seen_in for mark in self._tables["reads"].all()}
        templates = self._tables["templates"]
        if first_start:
            for template in DEFAULT_TEMPLATES:
                templates.put(template)
        if self.config.templates_file is not None:
            # Checked whole by run.py before anything opened; a file broken since then is
            # reported, and no template of it is stored.
            try:
                loaded = load_templates_file(self.config.templates_file)
            except TemplateError as exc:
                templates.notices.append(f"--templates not loaded: {exc}")
                loaded = []
            for template in loaded:
                templates.put(template)

    def _close_tables(self) -> None:
        for table in self._tables.values():
            table.close()

    def table_notices(self) -> list[str]:
        return [notice for table in self._tables.values() for notice in table.notices]

    async def templates(self) -> list[Template]:
        found = await self._read(self._tables["templates"].all)
        return sorted(found, key=lambda t: t.name)

    async def save_template(self, template: Template) -> str:
        problem = template_problem(template)
        if problem is not None:
            return problem
        await self._read(self._tables["templates"].put, template)
        return ""

    async def delete_template(self, name: str) -> bool:
        return await self._read(self._tables["templates"].delete, name)

    async def notes(self, phone: str) -> list[Note]:
        key = normalise_phone(phone)
        found = await self._read(self._tables["notes"].all)
        return sorted((note for note in found if note.phone == key), key=lambda n: n.at)

    async def add_note(self, phone: str, text: str) -> Note:
        at = time.time()
        note = Note(id=f"{normalise_phone(phone)}:{at:.6f}", phone=normalise_phone(phone), text=text, at=at)
        await self._read(self._tables["notes"].put, note)
        return note

    async def delete_note(self, note_id: str) -> bool:
        return await self._read(self._tables["notes"].delete, note_id)

    async def setting(self, key: str, default: str = "") -> str:
        found = await self._read(self._tables["settings"].get, key)
        return found.value if found is not None else default

    async def save_setting(self, key: str, value: str) -> None:
        await self._read(self._tables["settings"].put, Setting(key, value))

    async def read_marks(self) -> dict[str, int]:
        return dict(self._read_marks)

    async def mark_read(self, phone: str, seen_in: int) -> None:
        """Kept in memory at once, written at most every MARKS_EVERY seconds (and at stop):
        a file write and fsync on every answer-next would queue behind the history's own
        fsync, and the next answer waits for that one."""
        key = normalise_phone(phone)
        if self._read_marks.get(key) == seen_in:
            return  # showing a thread again writes nothing
        self._read_marks[key] = seen_in
        self._unsaved_marks[key] = seen_in
        if self._marks_timer is None and not self._stopped:
            self._marks_timer = asyncio.get_running_loop().call_later(MARKS_EVERY, self._save_marks_soon)

    def _save_marks_soon(self) -> None:
        self._marks_timer = None
        if not self._stopped:
            self._marks_saving = asyncio.ensure_future(self._read(self._save_marks))

    def _save_marks(self) -> None:
        """On the reads thread: the marks changed since the last save, in one write."""
        marks, self._unsaved_marks = self._unsaved_marks, {}
        if marks:
            self._tables["reads"].put_many([ReadMark(phone, seen) for phone, seen in marks.items()])

    # -- the SL API ------------------------------------------------------------------------

    async def send_message(self, phone: str, body: str, *, action_expected: bool = True) -> SendOutcome:
        key = normalise_phone(phone)
        if self._sl is None:
            return SendOutcome(key, error="No SL API configured: start with --sl-url URL --sl-api-key KEY, or --demo.")
        result = await self._sl.send_message(phone, body, action_expected=action_expected)
        record = self.store.add_outbound(
            OutboundRecord(seq=0, sent_at=time.time(), phone=key, body=body,
                           message_ids=result.message_ids, error=result.error)
        )
        await self.store.sync()
        return SendOutcome(key, message_ids=record.message_ids, error=record.error)

    async def close_session(self, phone: str) -> str:
        if self._sl is None:
            return "No SL API configured: start with --sl-url URL --sl-api-key KEY, or --demo."
        return await self._sl.close_sessions([normalise_phone(phone)])


__all__ = ["DemoSettings", "LocalBackend"]
