"""Quitting within a bounded time, whatever the terminal or the event loop is doing.

The normal way out runs on the event loop: answer every held request with the fallback,
sync the history, stop, close the history (which releases the data directory's lock). That
path can wedge in code that is not ours: Textual writes to the terminal through a thread
fed by a bounded queue, and once the terminal is gone (a killed tmux session, a dropped
ssh connection) or stops reading, the loop can block on that queue for ever (DESIGN.md).

`ExitDeadline` does not depend on the loop. A quit (a quit signal, ctrl+q, the terminal
going away) starts its thread. After `STALL_AFTER` seconds, or at once when the terminal is
known to be gone, it runs the stall hooks: the console stops writing to a terminal that
does not take its output, which frees a loop blocked on it, and the normal path goes on.
If the process is still alive `EXIT_LIMIT` seconds after the quit, the deadline runs the
last resort on its own thread (closing the history: it syncs and unlocks) and ends the
process with `EXIT_FORCED`. When the normal path is done, `exit()` ends the process at once. Held requests that the loop could not answer by then get a closed
connection; each is on disk already (the gateway records before it holds), and an SL
resends a callback it had no answer to.

One deadline per process: `guard_process()` (run.py) sets it up; `quitting()` and
`on_stall()` reach it from anywhere (signals, the console's driver) and do nothing when no
process deadline is set (in-process tests).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable, NoReturn, TypeVar

EXIT_LIMIT = 2.4
"""Seconds from a quit to the forced exit (the promise is 3 s; the last resort has the rest)."""
STALL_AFTER = 1.0
"""Seconds from a quit before the console stops writing to a terminal that does not keep up."""
LAST_RESORT_TIME = 0.4
"""Seconds the last resort may take before the process ends anyway."""
EXIT_FORCED = 1
"""Exit status when the deadline, not the program, ended the process."""

T = TypeVar("T")


class ExitDeadline:
    """The bound on quitting for one process (see the module docstring)."""

    def __init__(self, last_resort: Callable[[], object], *, limit: float = EXIT_LIMIT,
                 stall_after: float = STALL_AFTER, exit: Callable[[int], object] = os._exit) -> None:
        self._last_resort = last_resort
        self._limit = limit
        self._stall_after = stall_after
        self._exit = exit
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []
        self._began: float | None = None
        self._stalled = False
        self._code: int | None = None
        self.reason = ""
        """What started the quit ('SIGHUP', 'ctrl+q', ...), for the record."""

    def on_stall(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Run `hook` (from any thread, once) when quitting stalls; returns its remover."""
        with self._lock:
            self._hooks.append(hook)
            stalled = self._stalled
        if stalled:
            _call(hook)

        def remove() -> None:
            with self._lock:
                if hook in self._hooks:
                    self._hooks.remove(hook)

        return remove

    def begin(self, reason: str, *, terminal_gone: bool = False) -> None:
        """Start the clock (the first call counts; any thread, a signal's included).
        `terminal_gone`: nothing can be shown any more, so the stall hooks run now."""
        with self._lock:
            first = self._began is None
            if first:
                self._began = time.monotonic()
                self.reason = reason
        if first:
            threading.Thread(target=self._watch, name="switchboard-exit-deadline", daemon=True).start()
        if terminal_gone:
            self.stall()

    @property
    def begun(self) -> bool:
        return self._began is not None

    def exit(self, code: int) -> NoReturn:
        """The program is done and its history closed: end the process now with `code`.
        The interpreter's own teardown is skipped: nothing is left for it to save, and it
        cannot be bounded (it took 0.2-0.4 s on a loaded 2-core machine, and this deadline's
        thread is stopped once it begins)."""
        self._code = code
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass  # a terminal that has gone
        self._exit(code)
        raise SystemExit(code)  # only with a test's `exit` that returns

    def stall(self) -> None:
        """Run the stall hooks now (once)."""
        with self._lock:
            if self._stalled:
                return
            self._stalled = True
            hooks = list(self._hooks)
        for hook in hooks:
            _call(hook)

    def _watch(self) -> None:
        began = self._began
        assert began is not None
        _sleep_until(began + self._stall_after)
        self.stall()
        _sleep_until(began + self._limit)
        last = threading.Thread(target=_call, args=(self._last_resort,), name="switchboard-last-resort", daemon=True)
        last.start()
        last.join(LAST_RESORT_TIME)
        self._exit(self._code if self._code is not None else EXIT_FORCED)


def _call(fn: Callable[[], object]) -> None:
    try:
        fn()
    except BaseException:  # noqa: BLE001 - a hook must not stop the way out
        pass


def _sleep_until(moment: float) -> None:
    while (left := moment - time.monotonic()) > 0:
        time.sleep(left)


def run_once(fn: Callable[[], T]) -> Callable[[], T]:
    """`fn` behind a lock, run by the first caller only; a later (or concurrent) caller
    waits for it and gets the same result. The program's own close of the history and the
    deadline's last resort share one of these, so the history is never closed twice at once."""
    lock = threading.Lock()
    result: list[T] = []

    def once() -> T:
        with lock:
            if not result:
                result.append(fn())
            return result[0]

    return once


_process: ExitDeadline | None = None


def guard_process(last_resort: Callable[[], object], **kwargs) -> ExitDeadline:
    """Set up this process's deadline (run.py, once the history is open)."""
    global _process
    _process = ExitDeadline(last_resort, **kwargs)
    return _process


def quitting(reason: str, *, terminal_gone: bool = False) -> None:
    """A quit has begun: start the process's deadline, if there is one."""
    if _process is not None:
        _process.begin(reason, terminal_gone=terminal_gone)


def on_stall(hook: Callable[[], None]) -> Callable[[], None]:
    """Register a stall hook on the process's deadline (a no-op without one)."""
    if _process is None:
        return lambda: None
    return _process.on_stall(hook)
