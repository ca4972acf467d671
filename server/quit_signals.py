"""The signals that stop Switchboard cleanly, console and headless alike.

SIGTERM (kill, a service manager), SIGHUP (the terminal or ssh session went away) and
SIGINT (ctrl+c in headless; `kill -INT` for the console, where ctrl+c is a key). Python's
default for the first two ends the process on the spot: the SL sees connection resets
instead of the fallback, and the last records are not synced. A signal that is ignored
when we start (SIGHUP under `nohup`) stays ignored.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Callable

QUIT_SIGNALS = ("SIGTERM", "SIGHUP", "SIGINT")


class QuitSignals:
    """Route the quit signals to `on_signal` on the running loop; `release()` undoes it."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._caught: list[signal.Signals] = []

    def catch(self, on_signal: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        for name in QUIT_SIGNALS:
            sig = getattr(signal, name, None)
            if sig is None or signal.getsignal(sig) == signal.SIG_IGN:
                continue  # absent on this platform, or ignored on purpose
            try:
                self._loop.add_signal_handler(sig, on_signal)
            except (NotImplementedError, RuntimeError, ValueError):
                return  # no signal handlers here (Windows, or not the main thread)
            self._caught.append(sig)

    def release(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            for sig in self._caught:
                self._loop.remove_signal_handler(sig)
        self._caught.clear()
