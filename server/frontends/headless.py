"""Headless mode: the same gateway with no console. Held callbacks are answered at
once with the fallback (through the broker, as the console would), one line per
callback goes to stdout, and SIGINT/SIGTERM/SIGHUP stop it cleanly."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import datetime
from typing import TextIO

from data.store import HistoryStore

from server.frontends.background_writer import BackgroundWriter
from server.broker import (
    AnswerRefused,
    Broker,
    BrokerEvent,
    CallbackReceived,
    ExchangeEnded,
    ExchangeHeld,
    RequestRejected,
)
from server.config import Config
from server.sms.contract import fallback_decision
from server.frontends.error_output import ErrorOutput
from server.process.quit_signals import QuitSignals
from server.gateway.runner import GatewayServer
from server.sms.sanitize import neutralise_line, truncate


class FallbackAnswerer:
    """Answers every held exchange at once with the fallback."""

    def __init__(self, broker: Broker, fallback: str) -> None:
        self.broker = broker
        self.fallback = fallback

    def __call__(self, event: BrokerEvent) -> None:
        if isinstance(event, ExchangeHeld):
            try:
                self.broker.answer(
                    event.item.seq,
                    fallback_decision(event.item.record.type, self.fallback),
                    "fallback",
                )
            except AnswerRefused:
                pass


_stamp_cache: tuple[int, str] = (0, "")


def _stamp() -> str:
    """HH:MM:SS, formatted once per second (strftime per line was a tenth of ingest CPU)."""
    global _stamp_cache
    now = int(time.time())
    if _stamp_cache[0] != now:
        _stamp_cache = (now, datetime.fromtimestamp(now).strftime("%H:%M:%S"))
    return _stamp_cache[1]


LINES_PER_SECOND = 1_000
"""Lines shown per second; past that, the rest of the second is one summary line.
Nobody reads a thousand lines a second, a terminal falls behind long before ten thousand,
and formatting each one was a tenth of the gateway's work during a flood. The history
keeps every callback (`python run.py export` lists them)."""


class LinePrinter:
    """One line per callback: time, seq, type, phone, text, and what was answered; past
    LINES_PER_SECOND in one second, a count per kind instead, in one line when it ends."""

    def __init__(self, out: TextIO | BackgroundWriter, lines_per_second: int = LINES_PER_SECOND) -> None:
        self.out = out
        self.lines_per_second = lines_per_second
        self._held: dict[int, str] = {}
        self._lines: list[str] = []
        self._second = 0
        self._shown = 0
        self._unshown: dict[str, int] = {}
        self.unshown_total = 0
        """Events counted rather than shown, since start."""

    def flush(self) -> None:
        """Write what was collected in one go (one write call per flush, not per line)."""
        if self._unshown and int(time.time()) != self._second:
            self._summarise()
        if self._lines:
            lines, self._lines = self._lines, []
            self.out.write("".join(lines))
        self.out.flush()

    def close(self) -> None:
        """Write everything, the summary of the current second included."""
        if self._unshown:
            self._summarise()
        self.flush()

    def __call__(self, event: BrokerEvent) -> None:
        now = int(time.time())
        if now != self._second:
            if self._unshown:
                self._summarise()
            self._second = now
            self._shown = 0
        if self._shown >= self.lines_per_second:
            self._count(event)
            return
        if isinstance(event, CallbackReceived):
            record = event.record
            detail = ",".join(record.phones) or str(record.parsed.get("message_id", ""))
            if record.type == "delivery_report":
                detail += f" {record.parsed.get('status_name', '?')}"
            self._write(f"#{record.seq} {record.type} {detail}", record.warnings)
        elif isinstance(event, ExchangeHeld):
            record = event.item.record
            body = str(record.parsed.get("body", ""))
            self._held[record.seq] = f"#{record.seq} {record.type} {record.phones[0] if record.phones else '?'} {truncate(body, 60)!r}"
        elif isinstance(event, ExchangeEnded):
            head = self._held.pop(event.seq, f"#{event.seq}")
            sent = event.response.body if event.response is not None else "(nothing: caller gone)"
            self._write(f"{head} -> {event.outcome} {truncate(sent, 80)!r}", ())
        elif isinstance(event, RequestRejected):
            self._write(f"HTTP {event.status} from {event.peer}: {event.reason}", ())

    def _count(self, event: BrokerEvent) -> None:
        if isinstance(event, CallbackReceived):
            kind = event.record.type
        elif isinstance(event, ExchangeEnded):
            self._held.pop(event.seq, None)
            kind = f"held {event.outcome}"
        elif isinstance(event, RequestRejected):
            kind = f"HTTP {event.status}"
        else:
            return  # ExchangeHeld: its line would come with ExchangeEnded
        unshown = self._unshown
        unshown[kind] = unshown.get(kind, 0) + 1

    def _summarise(self) -> None:
        counts, self._unshown = self._unshown, {}
        total = sum(counts.values())
        self.unshown_total += total
        # `type` is whatever the peer sent: a few kinds, each cut short, on one line
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])
        kinds = ", ".join(f"{n:,} {truncate(kind, 40)}" for kind, n in ranked[:5])
        if len(ranked) > 5:
            kinds += f", {sum(n for _, n in ranked[5:]):,} of {len(ranked) - 5:,} other types"
        stamp = datetime.fromtimestamp(self._second).strftime("%H:%M:%S")
        line = (f"{stamp} ... and {total:,} more that second, not shown: {kinds} "
                "(the history has every callback: python run.py export)")
        self._lines.append(neutralise_line(line) + "\n")

    def _write(self, line: str, warnings: tuple[str, ...]) -> None:
        self._shown += 1
        if warnings:
            line += f"  [{len(warnings)} warning(s): {warnings[0]}]"
        self._lines.append(f"{_stamp()} {neutralise_line(line)}\n")
        if len(self._lines) >= 1000:
            self.flush()


async def run_headless(config: Config, store: HistoryStore, out: TextIO = sys.stdout) -> int:
    # stderr and log records through a writer that cannot block the loop (server/frontends/error_output.py)
    errors = ErrorOutput().install()
    try:
        return await _serve(config, store, out)
    finally:
        errors.uninstall()
        await asyncio.to_thread(errors.close)


async def _serve(config: Config, store: HistoryStore, out: TextIO) -> int:
    # What the store repaired while opening (a torn write cut off, a corrupt segment moved
    # aside): the console shows these; with no console they would go unseen.
    for notice in store.notices:
        print(f"switchboard: notice: {neutralise_line(notice)}", file=sys.stderr, flush=True)
    broker = Broker()
    broker.subscribe(FallbackAnswerer(broker, config.gateway.fallback))
    # Everything for stdout goes through one writer that cannot block the loop (a reader
    # that stops reading must not stop the gateway).
    writer = BackgroundWriter(out)
    printer = LinePrinter(writer)
    broker.subscribe(printer)
    server = GatewayServer(config.gateway, broker, store)
    try:
        url = await server.start()
    except OSError as exc:
        writer.close()
        print(f"switchboard: {exc.strerror or exc}", file=sys.stderr)
        return 2
    writer.write(f"switchboard headless: Gateway URL {url}  (ctrl+c stops)\n")
    writer.flush()
    stop = asyncio.Event()
    signals = QuitSignals()
    signals.catch(stop.set)
    flusher = asyncio.create_task(_flush_periodically(printer))
    try:
        await stop.wait()
    finally:
        signals.release()
        flusher.cancel()
        await server.stop()
        printer.close()
        stats = server.stats.as_dict()
        writer.write(f"switchboard headless: stopped; {stats['received']} callbacks recorded\n")
        # Off the loop's thread: the loop has nothing left to do but must not hang on a
        # reader that never reads again.
        await asyncio.to_thread(writer.close)
    return 0


async def _flush_periodically(printer: LinePrinter) -> None:
    while True:
        await asyncio.sleep(0.2)
        printer.flush()
