"""The real console (`python run.py ...`) on its own 120x40 pseudo-terminal, read on the
benchmark's event loop, so that the moment a text appears in the screen output is known
to the read (the scripts run as `python benchmarks/<name>.py`: this imports as `_pty_app`).

`PtyApp` keeps reading the master side (the app never blocks on a full pty), keeps the
recent output, and lets a caller wait for a pattern written after a mark, with the time
the chunk holding it was read.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
KEEP = 4_000_000
"""Bytes of screen output kept; older output is dropped (offsets stay absolute)."""
LOOKBACK = 256
"""A pattern may straddle two reads: each look starts this many bytes before new output."""


def _own_terminal() -> None:
    """In the child, after setsid(): the pty (stdin) becomes its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@dataclass
class _Waiter:
    pattern: re.Pattern[bytes]
    scan_from: int
    future: asyncio.Future


class PtyApp:
    """`run.py ARGS` as a session leader on a fresh pty (TERM=xterm-256color, 120x40)."""

    def __init__(self, args: Sequence[str], *, python: str = sys.executable, cwd: Path = ROOT,
                 command: Sequence[str] | None = None) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        env = dict(os.environ, TERM="xterm-256color")
        env.pop("COLUMNS", None)
        env.pop("LINES", None)
        argv = list(command) if command is not None else [python, str(cwd / "run.py")]
        self.proc = subprocess.Popen(argv + list(args), cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
                                     env=env, start_new_session=True, preexec_fn=_own_terminal)
        os.close(slave)
        os.set_blocking(master, False)
        self.master = master
        self._out = bytearray()
        self._base = 0
        """Absolute offset of `_out[0]`."""
        self._waiters: list[_Waiter] = []
        self._tracked: dict[re.Pattern[bytes], bytes | None] = {}
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(master, self._readable)
        self.closed = False
        self.last_output = time.perf_counter()
        """When the app last wrote (the time its bytes were read)."""

    @property
    def mark(self) -> int:
        """The offset of the next byte the app writes."""
        return self._base + len(self._out)

    def text_since(self, mark: int) -> bytes:
        return bytes(self._out[max(0, mark - self._base):])

    def write(self, data: bytes) -> float:
        """Send keys (as a terminal does); returns the time just before the write."""
        t = time.perf_counter()
        os.write(self.master, data)
        return t

    def _readable(self) -> None:
        try:
            chunk = os.read(self.master, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        now = time.perf_counter()
        self.last_output = now
        if not chunk:
            self._close_reader()
            return
        self._out += chunk
        if len(self._out) > KEEP:
            cut = len(self._out) - KEEP // 2
            del self._out[:cut]
            self._base += cut
        for waiter in list(self._waiters):
            self._look(waiter, now)
        if self._tracked:
            fresh = self._out[max(0, len(self._out) - len(chunk) - LOOKBACK):]
            for pattern in self._tracked:
                found = pattern.findall(fresh)
                if found:
                    self._tracked[pattern] = found[-1]

    def track(self, pattern: re.Pattern[bytes]) -> None:
        """Keep the last match of `pattern`'s first group in the output (see `latest`)."""
        self._tracked.setdefault(pattern, None)

    def latest(self, pattern: re.Pattern[bytes]) -> bytes | None:
        """What the tracked `pattern`'s group last matched in the output: a line that is
        redrawn only when it changes (a title) then shows its value as on screen."""
        return self._tracked.get(pattern)

    def _look(self, waiter: _Waiter, now: float) -> None:
        start = max(0, waiter.scan_from - self._base)
        match = waiter.pattern.search(self._out, start)
        if match is not None:
            self._waiters.remove(waiter)
            if not waiter.future.done():
                waiter.future.set_result((now, match))
        else:
            waiter.scan_from = max(waiter.scan_from, self.mark - LOOKBACK)

    async def wait_for(self, pattern: bytes | re.Pattern[bytes], since: int,
                       timeout: float = 10.0) -> tuple[float, re.Match[bytes]]:
        """The first match of `pattern` in what was written after `since`: (time read, match).
        Raises TimeoutError when it does not come within `timeout` s."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        waiter = _Waiter(regex, since, self._loop.create_future())
        self._waiters.append(waiter)
        self._look(waiter, time.perf_counter())
        try:
            return await asyncio.wait_for(waiter.future, timeout)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def settled(self, gap: float, timeout: float = 2.0) -> bool:
        """Wait until the app has written nothing for `gap` s (its screen has settled);
        False when it is still drawing after `timeout` s."""
        deadline = time.perf_counter() + timeout
        while (now := time.perf_counter()) - self.last_output < gap:
            if now > deadline:
                return False
            await asyncio.sleep(max(0.001, gap - (now - self.last_output)))
        return True

    def _close_reader(self) -> None:
        if not self.closed:
            self.closed = True
            self._loop.remove_reader(self.master)

    async def close(self, timeout: float = 10.0) -> int | None:
        """Ask the app to quit (ctrl+q) while still reading its output, then kill what is
        left; close the terminal."""
        if self.proc.poll() is None and not self.closed:
            try:
                os.write(self.master, b"\x11")
            except OSError:
                pass
            deadline = time.perf_counter() + timeout
            while self.proc.poll() is None and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_reader()
        os.close(self.master)
        return self.proc.returncode
