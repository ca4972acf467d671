"""Textual's Linux driver, made safe for a terminal that goes away.

Textual writes to the terminal through a thread fed by a queue of 30 writes. When the
terminal is gone (a killed tmux session, a dropped ssh connection: every write fails with
EIO) that thread dies, and the next write once the queue is full blocks the event loop for
ever: no held request is answered, the history is not closed, its lock stays taken
(DESIGN.md). A terminal that stops reading (flow control, a stuck pane) fills the queue the
same way. `TerminalDriver` changes only how output is handed over and how the driver stops:

- a write never waits for a writer thread that is dead;
- the terminal counts as gone when the writer thread has died (a write failed), poll reports
  its hang-up, or input fails with EIO; from then on output is dropped, and the driver sends
  the process SIGHUP, so the console quits as for a real one (none comes when the terminal
  is not the controlling one);
- once quitting stalls (server/process/shutdown.py: after a second, or at once on a SIGHUP), a write
  waits at most `STALLED_WRITE` s for room, and the first that has to give up ends all
  output: a terminal that reads still gets the escape codes that restore it, one that does
  not cannot hold the exit;
- SIGCONT resumes the application only after a suspend by SIGTSTP: the kernel sends SIGCONT
  with every hang-up, and Textual's own handler then re-entered application mode on the
  dead terminal.
"""

from __future__ import annotations

import errno
import os
import queue
import select
import signal
import threading

from textual.drivers.linux_driver import LinuxDriver

from server.process.shutdown import on_stall, quitting

POLL = 0.1
"""Seconds between looks at the writer thread while a write waits for room."""
STALLED_WRITE = 0.25
"""Seconds a write may wait for room once quitting has stalled."""


class TerminalDriver(LinuxDriver):
    def __init__(self, *args, **kwargs) -> None:
        self._gone = threading.Event()
        self._stalled = threading.Event()
        self._suspended = False
        self._closing = False
        self._watcher: threading.Thread | None = None
        on_stall(self._stalled.set)
        super().__init__(*args, **kwargs)

    def start_application_mode(self) -> None:
        self._closing = False
        super().start_application_mode()
        if self._watcher is None and os.isatty(self.fileno):
            self._watcher = threading.Thread(target=self._watch_hang_up, name="switchboard-hang-up", daemon=True)
            self._watcher.start()

    def _watch_hang_up(self) -> None:
        """Wait for the terminal's hang-up (the kernel reports it on poll, with no data read)."""
        poller = select.poll()
        poller.register(self.fileno, 0)
        while not self._gone.is_set():
            if any(mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, mask in poller.poll(500)):
                if not self._closing:
                    self._lost()
                return

    def write(self, data: str) -> None:
        self._put(data)

    def _put(self, item: str | None) -> None:
        writer = self._writer_thread
        assert writer is not None, "Driver must be in application mode"
        if not writer.is_alive():
            if not self._closing:
                self._lost()  # it died on a write error: the terminal is gone
            return
        room = writer._queue  # Textual's WriterThread: its queue is the only way in
        waited = 0.0
        while not self._gone.is_set():
            try:
                room.put(item, timeout=POLL)
                return
            except queue.Full:
                if not writer.is_alive():
                    self._lost()
                    return
                waited += POLL
                if self._stalled.is_set() and waited >= STALLED_WRITE:
                    self._gone.set()  # quitting, and the terminal does not read: stop writing
                    return

    def close(self) -> None:
        """Stop the writer thread once it has written what is queued, unless the terminal
        is gone or quitting has stalled (then the thread is left to die with the process)."""
        writer = self._writer_thread
        if writer is None:
            return
        self._put(None)
        self._closing = True
        while writer.is_alive() and not self._gone.is_set() and not self._stalled.is_set():
            writer.join(POLL)

    def _lost(self) -> None:
        """The terminal went away: drop output, and quit as for a SIGHUP (any thread)."""
        if self._gone.is_set():
            return
        self._gone.set()
        quitting("the terminal went away", terminal_gone=True)
        if signal.getsignal(signal.SIGHUP) not in (signal.SIG_IGN, signal.SIG_DFL, None):
            os.kill(os.getpid(), signal.SIGHUP)  # quit as for a hang-up (server/process/quit_signals.py)
        else:
            try:
                self._loop.call_soon_threadsafe(self._app.exit)  # no SIGHUP handler yet: stop
            except RuntimeError:
                pass  # the loop has closed: the app is over

    def run_input_thread(self) -> None:
        try:
            super().run_input_thread()
        except OSError as exc:
            if exc.errno not in (errno.EIO, errno.ENXIO, errno.EBADF) and not self._gone.is_set():
                raise  # Textual's driver makes the app panic, as it always does
            self._lost()

    def _sigtstp_application(self, *args) -> None:
        self._suspended = True
        super()._sigtstp_application(*args)

    def _sigcont_application(self, *args) -> None:
        if self._suspended and not self._gone.is_set():
            self._suspended = False
            super()._sigcont_application(*args)


def terminal_driver() -> type[LinuxDriver] | None:
    """The driver class for `App(driver_class=...)`: ours on POSIX, Textual's choice elsewhere."""
    return TerminalDriver if os.name == "posix" else None
