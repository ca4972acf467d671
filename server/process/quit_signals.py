"""The signals that stop Switchboard cleanly, console and headless alike.

SIGTERM (kill, a service manager), SIGHUP (the terminal or ssh session went away) and
SIGINT (ctrl+c in headless; `kill -INT` for the console, where ctrl+c is a key). Python's
default for the first two ends the process on the spot: the SL sees connection resets
instead of the fallback, and the last records are not synced. A signal that is ignored
when we start (SIGHUP under `nohup`) stays ignored.

The signals are read on a thread of their own, not on the event loop: the signal module
writes each one's number to a pipe (`signal.set_wakeup_fd`) that the thread reads, so a
signal is seen even while the loop is blocked (Textual's output queue on a dead terminal,
DESIGN.md). The thread starts the process's exit deadline (server/process/shutdown.py; a SIGHUP
says the terminal is gone) and hands the quit to the loop that asked for it.

run.py calls `catch_for_process()` once the history is open, before any loop or server
starts: a signal that comes while the console or headless is still starting is kept and
handed over as soon as it asks (`QuitSignals.catch`). Without that (in-process tests),
`QuitSignals.catch` sets the signals up itself and `release()` restores them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from typing import Callable

from server.process.shutdown import quitting

QUIT_SIGNALS = ("SIGTERM", "SIGHUP", "SIGINT")


def _ignore(signum: int, frame: object) -> None:
    """The Python-level handler: the work happens on the signal thread."""


class SignalPipe:
    """The quit signals, read from the wakeup pipe on a thread; each goes to `listener`
    (on that thread), or waits in `pending` while there is none."""

    def __init__(self) -> None:
        self._caught: dict[signal.Signals, object] = {}
        self._pipe: tuple[int, int] | None = None
        self._old_wakeup = -1
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._listener: Callable[[signal.Signals], None] | None = None
        self.pending: list[signal.Signals] = []

    def install(self) -> bool:
        """Catch the quit signals (main thread only; False elsewhere, or with none to catch)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        wanted = [sig for name in QUIT_SIGNALS if (sig := getattr(signal, name, None)) is not None
                  and signal.getsignal(sig) != signal.SIG_IGN]  # absent here, or ignored on purpose
        if not wanted:
            return False
        # The pipe first: a signal that comes before its handler is set still ends the
        # process (the default action); one that comes after is always written to the pipe.
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        self._pipe = (read_end, write_end)
        self._old_wakeup = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._read, args=(read_end,), name="switchboard-signals",
                                        daemon=True)
        self._thread.start()
        for sig in wanted:
            self._caught[sig] = signal.signal(sig, _ignore)
        return True

    def listen(self, listener: Callable[[signal.Signals], None] | None) -> None:
        """Send each signal to `listener` from now on (None: keep them pending); one that
        is already pending goes to it at once."""
        with self._lock:
            self._listener = listener
            waiting = self.pending[:1] if listener is not None else []
            if listener is not None:
                self.pending.clear()
        for sig in waiting:
            listener(sig)  # type: ignore[misc]

    def _read(self, read_end: int) -> None:
        while True:
            try:
                data = os.read(read_end, 64)
            except OSError:
                return
            for number in data:
                if number == 0:
                    return  # uninstall()
                try:
                    sig = signal.Signals(number)
                except ValueError:
                    continue
                if sig in self._caught:
                    self._deliver(sig)

    def _deliver(self, sig: signal.Signals) -> None:
        quitting(sig.name, terminal_gone=sig == signal.SIGHUP)
        with self._lock:
            listener = self._listener
            if listener is None:
                self.pending.append(sig)
        if listener is not None:
            listener(sig)

    def uninstall(self) -> None:
        """Restore the handlers and the wakeup fd (main thread), stop the thread."""
        if threading.current_thread() is threading.main_thread():
            for sig, handler in self._caught.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)  # type: ignore[arg-type]
            if self._pipe is not None:
                signal.set_wakeup_fd(self._old_wakeup)
        self._caught.clear()
        if self._pipe is None:
            return
        read_end, write_end = self._pipe
        self._pipe = None
        try:
            os.write(write_end, b"\0")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(1.0)
        os.close(write_end)
        if self._thread is None or not self._thread.is_alive():
            os.close(read_end)
        self._thread = None


_process_pipe: SignalPipe | None = None


def catch_for_process() -> None:
    """Catch the quit signals for the rest of the process (run.py, before anything starts)."""
    global _process_pipe
    pipe = SignalPipe()
    if pipe.install():
        _process_pipe = pipe


class QuitSignals:
    """Route the quit signals to `on_signal` on the running loop; `release()` undoes it."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_signal: Callable[[], None] = lambda: None
        self._own: SignalPipe | None = None
        self._listening = False

    def catch(self, on_signal: Callable[[], None]) -> None:
        """Call inside the running loop. A signal the process caught before this is handed
        over at once."""
        self._loop = asyncio.get_running_loop()
        self._on_signal = on_signal
        pipe = _process_pipe
        if pipe is None:
            own = SignalPipe()
            if not own.install():
                return  # not the main thread, or nothing to catch
            self._own = pipe = own
        self._listening = True
        pipe.listen(self._deliver)

    def _deliver(self, sig: signal.Signals) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._on_signal)
            except RuntimeError:
                pass  # the loop closed meanwhile: the program is ending anyway

    def release(self) -> None:
        if self._own is not None:
            self._own.uninstall()
            self._own = None
        elif self._listening and _process_pipe is not None:
            # later signals only bound the exit (the deadline has begun by then)
            _process_pipe.listen(None)
        self._listening = False
