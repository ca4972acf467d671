"""The console as a real process on a real pseudo-terminal, and the terminal taken away.

`PtyConsole` starts `python run.py` as a session leader whose controlling terminal is a
fresh pty (as a terminal emulator, tmux or sshd does), drains the screen output so the
app never blocks on a full pty, and `hang_up()` closes the master side: the kernel then
sends SIGHUP and every further read or write on the terminal fails with EIO, as when a
tmux session is killed or an ssh connection drops. Shared by tests/test_console_process.py,
benchmarks/hangup_bench.py and tests/test_command_line.py.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from typing import Sequence

import aiohttp

ROOT = Path(__file__).resolve().parent.parent

INCOMING = {
    "type": "incoming_message",
    "api_key": "key-1",
    "phone_number": "5551234567",
    "body": "Hello, is anyone there?",
    "sent_at": "2026-11-27T10:00:00Z",
}


def _default_sighup() -> None:
    """SIGHUP has its default action in the child (set, not inherited: under `nohup` the
    parent ignores it, and so would the child)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _become_terminal_owner() -> None:
    """In the child, after setsid(): stdin (the pty's slave) becomes the controlling
    terminal, so closing the master hangs the session up (SIGHUP, then SIGCONT)."""
    _default_sighup()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyConsole:
    """`python run.py ARGS` on its own pty, 120x40. With `controlling=False` the pty is
    only its stdin/stdout/stderr, not its controlling terminal: closing it sends no SIGHUP,
    reads and writes just fail."""

    def __init__(self, args: Sequence[str], *, cwd: Path = ROOT, command: Sequence[str] | None = None,
                 controlling: bool = True, env: dict[str, str] | None = None) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        env = dict(os.environ if env is None else env, TERM="xterm-256color")
        env.pop("COLUMNS", None)
        env.pop("LINES", None)
        argv = list(command) if command is not None else [sys.executable, str(ROOT / "run.py")]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv + list(args), cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env,
            start_new_session=True, preexec_fn=_become_terminal_owner if controlling else _default_sighup,
        )
        os.close(slave)
        self._master: int | None = master
        self._stop = threading.Event()
        self.reading = threading.Event()
        """Cleared: the terminal stops reading (as a stuck pane or flow control), and the
        program's writes back up once the pty's buffer is full."""
        self.reading.set()
        self.screen = bytearray()
        """Everything the program wrote to its terminal (the last 1 MB)."""
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        # A read blocked on the master would keep the pty open after close() (the kernel
        # holds the file while the read waits): poll, so hang_up() can end this first.
        master = self._master
        assert master is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready or not self.reading.is_set():
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.screen += chunk
            if len(self.screen) > 2_000_000:
                del self.screen[:1_000_000]

    def tail(self, chars: int = 1500) -> str:
        """The end of what the program wrote, escape sequences taken out (for a failure message)."""
        text = re.sub(r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|.)", " ", self.screen.decode(errors="replace"))
        return re.sub(r"\s+", " ", text)[-chars:]

    def hang_up(self) -> float:
        """Close the terminal (the master side); returns the moment it closed (monotonic)."""
        self._stop.set()
        self._drain.join()
        master, self._master = self._master, None
        if master is not None:
            os.close(master)
        return time.monotonic()

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if the process is still running after `timeout` s."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Kill -9 what is left and close the terminal (for a test's `finally`)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.hang_up()


def lock_is_free(data_dir: Path) -> bool:
    """True when no process holds the history directory's lock (data/store.py's flock)."""
    try:
        fd = os.open(data_dir / ".lock", os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


async def healthz(session: aiohttp.ClientSession, url: str) -> dict | None:
    try:
        async with session.get(url + "healthz", timeout=aiohttp.ClientTimeout(total=2)) as response:
            return await response.json()
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None


async def wait_until_serving(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen,
                             timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while await healthz(session, url) is None:
        if proc.poll() is not None:
            raise AssertionError(f"the console exited {proc.returncode} before serving")
        if time.monotonic() > deadline:
            raise AssertionError("the console did not start serving in time")
        await asyncio.sleep(0.05)


async def hold(session: aiohttp.ClientSession, url: str, count: int, proc: subprocess.Popen,
               timeout: float = 60) -> list[asyncio.Task]:
    """POST `count` texts and return their requests once the gateway holds them all."""
    async def one(i: int) -> tuple[int, str]:
        fields = dict(INCOMING, phone_number=f"555{i:07d}", body=f"text {i}")
        async with session.post(url, data=fields) as response:
            return response.status, await response.text()

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    deadline = time.monotonic() + timeout
    while True:
        health = await healthz(session, url)
        if health is not None and health["pending"] >= count:
            return tasks
        if proc.poll() is not None:
            raise AssertionError(f"the console exited {proc.returncode} while texts arrived")
        if time.monotonic() > deadline:
            raise AssertionError(f"only {health and health['pending']} of {count} held in time")
        await asyncio.sleep(0.05)


def client_session() -> aiohttp.ClientSession:
    """A client with no cap on open connections (aiohttp's default is 100)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                 timeout=aiohttp.ClientTimeout(total=60))


async def second_start(data_dir: Path, timeout: float = 30) -> tuple[int | None, str]:
    """Start `run.py --headless` on `data_dir`, stop it once it serves; (exit code, output).
    It serves only if it got the history's lock: the first process left it free. The code
    is None when it neither served nor exited within `timeout` s."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run.py"), "--headless", "--data-dir", str(data_dir), "--port", "0",
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
    )
    assert proc.stdout is not None
    seen = b""
    try:
        async with asyncio.timeout(timeout):
            while b"Gateway URL" not in seen:
                line = await proc.stdout.readline()
                if not line:
                    break
                seen += line
            if proc.returncode is None and b"Gateway URL" in seen:
                proc.send_signal(signal.SIGTERM)
            seen += await proc.stdout.read()
            return await proc.wait(), seen.decode(errors="replace")
    except TimeoutError:
        return None, seen.decode(errors="replace") + f"(no exit within {timeout:g} s)"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
