"""The console against a backend that implements `ConsoleBackend` and nothing more: no
gateway, no store, no socket. This is the proof that a network client can stand in for
the in-process backend: composer, queue, thread and search all work through the seam."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import AsyncIterator, Callable

from data.models import CallbackRecord, ContactState, ThreadEntry, ThreadHit, ThreadPage
from server.backend import (
    AnswerOutcome,
    AnswerRefused,
    AnswerSent,
    BrokerEvent,
    ConsoleBackend,
    ExchangeEnded,
    ExchangeHeld,
    GatewayStatus,
    HeldItem,
    Note,
    SearchPage,
    SendOutcome,
    Subscriber,
)
from server.config import Config
from server.sms.contract import Decision
from server.sms.templates import Template
from tui.app import SwitchboardApp
from tui.screens.search import SearchScreen
from tui.widgets.composer import Composer
from tui.widgets.held_queue import HeldQueue

from .conftest import wait_until


class FakeBackend:
    """An in-memory core: held items are plain records; answers are written down."""

    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []
        self.held: dict[int, HeldItem] = {}
        self.answers: list[tuple[int, Decision]] = []
        self.threads: dict[str, list[ThreadEntry]] = {}
        self.sent: list[tuple[str, str]] = []
        self.stopped = False
        self.canned: dict[str, Template] = {"hi": Template("hi", "Hello {phone_number}")}
        self.jotted: list[Note] = []
        self.settings: dict[str, str] = {}
        self.marks: dict[str, int] = {}

    # the core's side, driven by the test
    def hold(self, seq: int, phone: str, body: str, *, ttl: float = 60.0) -> HeldItem:
        record = CallbackRecord(seq=seq, received_at=time.time(), type="incoming_message",
                                fields={}, parsed={"body": body}, phones=(phone,), held=True)
        item = HeldItem(record=record, deadline=time.time() + ttl)
        self.held[seq] = item
        self.threads.setdefault(phone, []).append(
            ThreadEntry(at=time.time(), direction="in", text=body, who="texter", seq=seq))
        self._publish(ExchangeHeld(item))
        return item

    def _publish(self, event: BrokerEvent) -> None:
        for subscriber in list(self.subscribers):
            subscriber(event)

    # ConsoleBackend
    async def start(self) -> GatewayStatus:
        return self.status()

    async def stop(self) -> None:
        self.stopped = True

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self.subscribers.append(subscriber)
        return lambda: self.subscribers.remove(subscriber)

    async def answer(self, seq: int, decision: Decision) -> AnswerOutcome:
        item = self.held.pop(seq, None)
        if item is None:
            return AnswerRefused(seq, f"cannot answer #{seq}: it is over")
        self.answers.append((seq, decision))
        self.threads[item.record.phones[0]].append(
            ThreadEntry(at=time.time(), direction="out", text=decision.reply, who="operator", seq=seq))
        self._publish(ExchangeEnded(seq=seq, outcome="answered", response=None))
        return AnswerSent(seq)

    def pending(self) -> list[HeldItem]:
        return list(self.held.values())

    def status(self) -> GatewayStatus:
        return GatewayStatus(url="fake://hub/", key_state="fake", counts={"pending": len(self.held)})

    @property
    def can_send(self) -> bool:
        return True

    async def thread(self, phone: str, limit: int = 300) -> list[ThreadEntry]:
        return list(self.threads.get(phone, []))[-limit:]

    def _contact(self, phone: str) -> ContactState:
        """The phone's contact state as the store derives it, from the fake's thread."""
        entries = self.threads[phone]
        last = entries[-1]
        return ContactState(
            phone=phone, messages_in=sum(e.direction == "in" for e in entries),
            messages_out=sum(e.direction == "out" for e in entries), last_seen=last.at,
            last_at=last.at, last_text=last.text, last_dir="in" if last.direction == "in" else "out",
        )

    async def thread_page(self, phone: str, *, before: int = 0, limit: int = 50) -> ThreadPage:
        entries = [dataclasses.replace(e, order=i + 1) for i, e in enumerate(self.threads.get(phone, []))]
        if before:
            entries = entries[:before - 1]
        page = entries[-limit:] if limit > 0 else []
        return ThreadPage(entries=page, more=len(entries) > len(page))

    async def contact(self, phone: str) -> ContactState | None:
        return self._contact(phone) if phone in self.threads else None

    async def contacts(self, limit: int = 100) -> list[ContactState]:
        found = sorted((self._contact(phone) for phone in self.threads), key=lambda c: c.active_at, reverse=True)
        return found[:limit]

    async def recent_callbacks(self, limit: int = 200) -> list[CallbackRecord]:
        return []

    async def search(self, text: str) -> AsyncIterator[SearchPage]:
        hits = [ThreadHit(phone=phone, at=entry.at, text=entry.text, seq=entry.seq, kind="callback")
                for phone, entries in self.threads.items() for entry in entries if text in entry.text]
        yield SearchPage(hits=hits[:1], scanned=1, total=2, done=False)
        yield SearchPage(hits=hits[1:], scanned=2, total=2, done=True)

    async def send_message(self, phone: str, body: str, *, action_expected: bool = True) -> SendOutcome:
        self.sent.append((phone, body))
        return SendOutcome(phone, message_ids=("1",))

    async def close_session(self, phone: str) -> str:
        return ""

    def notices(self) -> list[str]:
        return []

    async def templates(self) -> list[Template]:
        return list(self.canned.values())

    async def save_template(self, template: Template) -> str:
        self.canned[template.name] = template
        return ""

    async def delete_template(self, name: str) -> bool:
        return self.canned.pop(name, None) is not None

    async def notes(self, phone: str) -> list[Note]:
        return [note for note in self.jotted if note.phone == phone]

    async def add_note(self, phone: str, text: str) -> Note:
        note = Note(id=str(len(self.jotted)), phone=phone, text=text, at=time.time())
        self.jotted.append(note)
        return note

    async def delete_note(self, note_id: str) -> bool:
        before = len(self.jotted)
        self.jotted = [note for note in self.jotted if note.id != note_id]
        return len(self.jotted) != before

    async def setting(self, key: str, default: str = "") -> str:
        return self.settings.get(key, default)

    async def save_setting(self, key: str, value: str) -> None:
        self.settings[key] = value

    async def read_marks(self) -> dict[str, int]:
        return dict(self.marks)

    async def mark_read(self, phone: str, seen_in: int) -> None:
        self.marks[phone] = seen_in


def _conforms(backend: ConsoleBackend) -> ConsoleBackend:
    return backend  # a type checker holds FakeBackend to the protocol here



async def test_composer_queue_thread_and_search_work_through_the_interface_alone(tmp_path: Path):
    backend = FakeBackend()
    app = SwitchboardApp(Config(data_dir=tmp_path), _conforms(backend))
    async with app.run_test(size=(120, 40)) as pilot:
        backend.hold(1, "5550000001", "first question")
        backend.hold(2, "5550000002", "second question")
        queue = app.query_one(HeldQueue)
        composer = app.query_one(Composer)
        await wait_until(pilot, lambda: len(queue) == 2 and composer.item is not None)
        assert composer.item.seq == 1
        thread = app.query_one("#thread")
        await wait_until(pilot, lambda: "first question" in "\n".join(s.text for s in thread.lines))
        await pilot.press(*"an answer", "enter")
        await wait_until(pilot, lambda: backend.answers != [])
        assert backend.answers == [(1, Decision(reply="an answer"))]
        await wait_until(pilot, lambda: composer.item is not None and composer.item.seq == 2)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: len(backend.answers) == 2)
        assert backend.answers[1] == (2, Decision())
        await wait_until(pilot, lambda: len(queue) == 0)
        assert "fake://hub/" in str(app.query_one("#status").render())

        await pilot.press("f5")
        assert isinstance(app.screen, SearchScreen)
        await pilot.press(*"question", "enter")
        hits = app.screen.query_one("#hits")
        await wait_until(pilot, lambda: hits.option_count == 2)
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, SearchScreen))
        await wait_until(pilot, lambda: thread.phone in ("5550000001", "5550000002"))
    assert backend.stopped, "quitting stops the backend"
