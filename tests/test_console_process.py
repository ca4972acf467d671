"""The console as a real process on a real pseudo-terminal (`python run.py`).

Stopped by a signal while a request is held: the held client gets the fallback, the
process exits 0, the history keeps the callback. A kill -9 while held loses nothing that
arrived. And quitting is bounded whatever the terminal does (issue 11, item 6): the
terminal closed at random moments, with 500 texts held, without a SIGHUP, or a terminal
that stops reading: every held client is answered, the process is gone within 3 s, and
the history's lock is free (a second start works). benchmarks/hangup_bench.py runs the
random hang-up many times.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from data.store import HistoryStore
from server.gateway.runner import free_port

from .pty_console import (
    INCOMING,
    ROOT,
    PtyConsole,
    client_session,
    hold,
    lock_is_free,
    second_start,
    wait_until_serving,
)

FALLBACK = "Back soon"
EXIT_LIMIT = 3.0
"""Seconds from the hang-up (or signal) to the process being gone."""


def start(data_dir: Path, *extra: str, controlling: bool = True) -> tuple[PtyConsole, str]:
    port = free_port()
    console = PtyConsole(["--data-dir", str(data_dir), "--port", str(port), "--fallback", FALLBACK,
                          "--reply-timeout", "60", *extra], controlling=controlling)
    return console, f"http://127.0.0.1:{port}/"


async def exit_time(console: PtyConsole, since: float, give_up: float = 10) -> tuple[float, int | None]:
    """Seconds from `since` until the process ended, and its exit code (None: still running)."""
    code = await asyncio.to_thread(console.wait, give_up)
    return time.monotonic() - since, code


def exported(data_dir: Path) -> list[dict]:
    done = subprocess.run([sys.executable, "run.py", "export", "--format", "jsonl", "--data-dir", str(data_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


async def assert_free_for_the_next_start(data_dir: Path) -> None:
    assert lock_is_free(data_dir), "the history's lock is still held"
    code, output = await second_start(data_dir)
    assert code == 0 and "Gateway URL" in output, output


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["SIGTERM", "SIGHUP", "SIGINT"])
async def test_a_signal_answers_the_held_request_with_the_fallback_then_exits(tmp_path, sig):
    data_dir = tmp_path / "history"
    console, url = start(data_dir)
    try:
        async with client_session() as session:
            await wait_until_serving(session, url, console.proc)
            [held] = await hold(session, url, 1, console.proc)
            console.proc.send_signal(sig)
            sent = time.monotonic()
            assert await asyncio.wait_for(held, 15) == (200, FALLBACK)
        took, code = await exit_time(console, sent)
    finally:
        console.close()
    assert code == 0 and took < EXIT_LIMIT, (code, took)
    records = exported(data_dir)
    assert [r["type"] for r in records if r["kind"] == "callback"] == ["incoming_message"]
    assert any(r["kind"] == "response" and r["outcome"] == "shutdown" for r in records)


async def test_a_held_callback_is_on_disk_before_it_is_answered(tmp_path):
    data_dir = tmp_path / "history"
    console, url = start(data_dir)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            await wait_until_serving(session, url, console.proc)
            held = asyncio.create_task(session.post(url, data=INCOMING))
            deadline = time.monotonic() + 15
            while (await (await session.get(url + "healthz")).json())["pending"] != 1:
                assert time.monotonic() < deadline, "the request was not held"
                await asyncio.sleep(0.05)
            # on disk while still held: export reads the files without the lock (a group
            # commit takes a few ms; more on a loaded machine)
            while not any(r["kind"] == "callback" for r in await asyncio.to_thread(exported, data_dir)):
                assert time.monotonic() < deadline, "the held callback did not reach the disk"
                await asyncio.sleep(0.1)
            assert not held.done()
            console.proc.kill()  # kill -9: no shutdown, no answer
            with pytest.raises(aiohttp.ClientError):
                await asyncio.wait_for(held, 15)
    finally:
        console.close()
    bodies = [r["fields"]["body"] for r in exported(data_dir) if r["kind"] == "callback"]
    assert bodies == [INCOMING["body"]]


@pytest.mark.parametrize("run", range(3))
async def test_the_terminal_closing_at_a_random_moment_ends_the_process_within_3s(tmp_path, run):
    """From before the screen is up to well after: the process must not outlive its terminal."""
    data_dir = tmp_path / "history"
    delay = random.uniform(0.0, 2.0)
    console, _ = start(data_dir)
    try:
        await asyncio.sleep(delay)
        closed = console.hang_up()
        took, code = await exit_time(console, closed)
    finally:
        console.close()
    assert code is not None and took < EXIT_LIMIT, f"hang-up {delay:.2f} s after start: still running after {took:.1f} s"
    await assert_free_for_the_next_start(data_dir)


async def test_the_terminal_closing_during_the_demo_ends_the_process_within_3s(tmp_path):
    data_dir = tmp_path / "history"
    console, url = start(data_dir, "--demo", "--demo-rate", "20")
    try:
        async with client_session() as session:
            await wait_until_serving(session, url, console.proc)
        delay = random.uniform(0.2, 1.5)  # the simulated texters are busy by now
        await asyncio.sleep(delay)
        closed = console.hang_up()
        took, code = await exit_time(console, closed)
    finally:
        console.close()
    assert code is not None and took < EXIT_LIMIT, f"hang-up at {delay:.2f} s: still running after {took:.1f} s"
    assert lock_is_free(data_dir / "demo")
    HistoryStore.open(data_dir / "demo").close()  # it takes the lock: the next --demo can start


async def test_the_terminal_closing_with_500_texts_held_answers_them_all_and_exits(tmp_path):
    data_dir = tmp_path / "history"
    console, url = start(data_dir)
    try:
        async with client_session() as session:
            await wait_until_serving(session, url, console.proc)
            held = await hold(session, url, 500, console.proc)
            closed = console.hang_up()
            answers = await asyncio.wait_for(asyncio.gather(*held, return_exceptions=True), 15)
            took, code = await exit_time(console, closed)
    finally:
        console.close()
    assert answers.count((200, FALLBACK)) == 500, [a for a in answers if a != (200, FALLBACK)][:3]
    assert code == 0 and took < EXIT_LIMIT, (code, took)
    await assert_free_for_the_next_start(data_dir)
    records = exported(data_dir)
    assert sum(1 for r in records if r["kind"] == "callback") == 500
    assert sum(1 for r in records if r["kind"] == "response" and r["outcome"] == "shutdown") == 500


async def test_a_terminal_closed_without_a_sighup_still_ends_the_process(tmp_path):
    """A pty that is only the program's stdin and stdout (not its controlling terminal):
    closing it sends no signal; reads and writes fail, and that counts as a hang-up."""
    data_dir = tmp_path / "history"
    console, url = start(data_dir, controlling=False)
    try:
        async with client_session() as session:
            await wait_until_serving(session, url, console.proc)
            [held] = await hold(session, url, 1, console.proc)
            closed = console.hang_up()
            assert await asyncio.wait_for(held, 15) == (200, FALLBACK)
            took, code = await exit_time(console, closed)
    finally:
        console.close()
    assert code == 0 and took < EXIT_LIMIT, (code, took)
    await assert_free_for_the_next_start(data_dir)


async def test_sigterm_ends_the_process_within_3s_while_the_terminal_has_stopped_reading(tmp_path):
    """The screen's output backs up (a stuck pane, flow control) until the console's loop
    blocks on it; a SIGTERM must still answer the held texts and end the process."""
    data_dir = tmp_path / "history"
    console, url = start(data_dir)
    try:
        async with client_session() as session:
            await wait_until_serving(session, url, console.proc)
            held = await hold(session, url, 3, console.proc)
            console.reading.clear()
            # more arrivals redraw the screen until the pty's buffer is full and the loop
            # stops answering (each of these is then held, unanswered, in the kernel)
            more = [asyncio.create_task(session.post(url, data=dict(INCOMING, phone_number=f"555000{i:04d}")))
                    for i in range(200)]
            await asyncio.sleep(1.5)
            console.proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            answers = await asyncio.wait_for(asyncio.gather(*held), 15)
            took, code = await exit_time(console, sent)
            for request in more:
                request.cancel()
            await asyncio.gather(*more, return_exceptions=True)
    finally:
        console.close()
    assert answers == [(200, FALLBACK)] * 3
    assert code == 0 and took < EXIT_LIMIT, (code, took)
    await assert_free_for_the_next_start(data_dir)
