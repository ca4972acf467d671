"""The console as a real process on a real pseudo-terminal (`python run.py`), stopped by
signals while a request is held: the held client gets the fallback, the process exits 0,
and the history keeps the callback. And a kill -9 while held loses nothing that arrived."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from server.runner import free_port

from .conftest import INCOMING

ROOT = Path(__file__).resolve().parent.parent


class Console:
    """`python run.py` with a pty as its terminal; the screen output is drained (unread,
    a full pty would block the app) until the process ends."""

    def __init__(self, data_dir: Path, port: int) -> None:
        master, slave = pty.openpty()
        env = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40")
        self.proc = subprocess.Popen(
            [sys.executable, "run.py", "--data-dir", str(data_dir), "--port", str(port),
             "--fallback", "Back soon", "--reply-timeout", "60"],
            cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
            # set, not inherited: under `nohup` the suite ignores SIGHUP (and so would this)
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
        )
        os.close(slave)
        self._master = master
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()
        self.url = f"http://127.0.0.1:{port}/"

    def _read(self) -> None:
        try:
            while os.read(self._master, 65536):
                pass
        except OSError:
            pass

    async def pending(self, session: aiohttp.ClientSession) -> int | None:
        try:
            async with session.get(self.url + "healthz") as response:
                return (await response.json())["pending"]
        except aiohttp.ClientError:
            return None

    async def wait_for_pending(self, session: aiohttp.ClientSession, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while await self.pending(session) != count:
            assert self.proc.poll() is None, f"the console exited {self.proc.returncode}"
            assert time.monotonic() < deadline, "the console did not hold the request in time"
            await asyncio.sleep(0.05)

    async def hold_one(self, session: aiohttp.ClientSession) -> asyncio.Task:
        """Once the console is up, POST a text and return the request once it is held."""
        await self.wait_for_pending(session, 0)
        held = asyncio.create_task(session.post(self.url, data=INCOMING))
        await self.wait_for_pending(session, 1)
        return held

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self._master)
        except OSError:
            pass


def exported(data_dir: Path) -> list[dict]:
    done = subprocess.run([sys.executable, "run.py", "export", "--format", "jsonl", "--data-dir", str(data_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["SIGTERM", "SIGHUP", "SIGINT"])
async def test_a_signal_answers_the_held_request_with_the_fallback_then_exits(tmp_path, sig):
    data_dir = tmp_path / "history"
    console = Console(data_dir, free_port())
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            held = await console.hold_one(session)
            console.proc.send_signal(sig)
            response = await asyncio.wait_for(held, 15)
            assert (response.status, await response.text()) == (200, "Back soon")
        code = await asyncio.wait_for(asyncio.to_thread(console.proc.wait), 15)
    finally:
        console.close()
    assert code == 0
    records = exported(data_dir)
    assert [r["type"] for r in records if r["kind"] == "callback"] == ["incoming_message"]
    assert any(r["kind"] == "response" and r["outcome"] == "shutdown" for r in records)


async def test_a_held_callback_is_on_disk_before_it_is_answered(tmp_path):
    data_dir = tmp_path / "history"
    console = Console(data_dir, free_port())
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            held = await console.hold_one(session)
            await asyncio.sleep(0.3)  # a group commit takes a few ms
            console.proc.kill()  # kill -9: no shutdown, no answer
            with pytest.raises(aiohttp.ClientError):
                await asyncio.wait_for(held, 15)
    finally:
        console.close()
    bodies = [r["fields"]["body"] for r in exported(data_dir) if r["kind"] == "callback"]
    assert bodies == [INCOMING["body"]]
