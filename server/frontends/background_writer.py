"""Headless output that never blocks the event loop.

`python run.py --headless | less`, then the operator stops scrolling: the pipe fills
(64 KiB), and a plain `sys.stdout.write` on the event loop's thread blocks until the
reader reads again. The gateway stops answering and the SL times out (measured: the
1,416th callback hung). Here a thread does the blocking writes; the loop only queues
text. When the reader falls so far behind that the queue is full, whole chunks are
dropped and counted, and the count is written once the reader takes text again. The
history store keeps every callback either way (`python run.py export`).
"""

from __future__ import annotations

import io
import os
import queue
import threading
from typing import TextIO

MAX_CHUNKS = 64
"""Chunks waiting for a slow reader (a chunk is one flush of the line printer, at most
1,000 lines): a few MB at most."""


class BackgroundWriter:
    """`write()` and `flush()` as on a text stream, from the event loop's thread; the
    bytes go out from a thread of their own. A stream without a file descriptor (a
    StringIO in tests) is written directly: it cannot block."""

    DROPPED = ("switchboard headless: {n} lines not shown (the output was not read fast enough); "
               "the history has every callback\n")
    """The line that reports dropped lines once the reader takes text again."""

    def __init__(self, stream: TextIO, *, max_chunks: int = MAX_CHUNKS, dropped: str = "") -> None:
        self._stream = stream
        self._dropped = dropped or self.DROPPED
        self._encoding = getattr(stream, "encoding", None) or "utf-8"
        self._queue: queue.Queue[bytes | None] = queue.Queue(max_chunks)
        self._pending: list[str] = []
        self.dropped_lines = 0
        """Lines not written because the reader did not keep up (not yet reported)."""
        self._fd: int | None = None
        try:
            stream.flush()
            # A duplicate: the thread writes with os.write, never through the TextIO and
            # its buffer lock (a daemon thread blocked inside that lock aborts the
            # interpreter at exit).
            self._fd = os.dup(stream.fileno())
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            self._fd = None
        self._thread: threading.Thread | None = None
        if self._fd is not None:
            self._thread = threading.Thread(target=self._run, name="headless-output", daemon=True)
            self._thread.start()

    def write(self, text: str) -> None:
        self._pending.append(text)

    def flush(self) -> None:
        """Hand what was written to the thread; never waits."""
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending = []
        if self._fd is None:
            self._stream.write(text)
            self._stream.flush()
            return
        notice = self._dropped.format(n=self.dropped_lines) if self.dropped_lines else ""
        try:
            self._queue.put_nowait((notice + text).encode(self._encoding, "replace"))
        except queue.Full:
            self.dropped_lines += text.count("\n")
        else:
            self.dropped_lines = 0

    def close(self, timeout: float = 3.0) -> bool:
        """Flush, then wait up to `timeout` seconds for the thread to write everything.
        Returns False when the reader did not take it all in time (the rest is dropped)."""
        self.flush()
        if self._thread is None:
            return True
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return False
        self._thread.join(timeout)
        done = not self._thread.is_alive()
        if done and self._fd is not None:
            os.close(self._fd)
            self._fd = None
        return done

    def _run(self) -> None:
        fd = self._fd
        assert fd is not None
        broken = False
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            if broken:
                continue  # the reader has gone: keep emptying the queue, quietly
            view = memoryview(chunk)
            try:
                while view:
                    view = view[os.write(fd, view):]
            except OSError:  # EPIPE (the reader closed), EIO (the terminal went away)
                broken = True
