"""stderr and log records that never block the event loop.

A plain `sys.stderr.write` on the loop's thread blocks once nobody reads the pipe (64 KiB):
aiohttp used to write a traceback there for every malformed request, and after 112 of them
into an unread pipe the gateway answered nothing. While `ErrorOutput` is installed,
`sys.stderr` and every log record go through a `BackgroundWriter` (the thread headless
stdout uses): when the reader falls behind, lines are dropped and counted, never waited for.
A log record is one line (an exception shows as its type and first line, no traceback),
neutralised like any untrusted text (log messages can carry a peer's text).
"""

from __future__ import annotations

import io
import logging
import sys
from typing import TextIO

from server.frontends.background_writer import BackgroundWriter
from server.sms.sanitize import neutralise_line

MAX_LINE = 300
"""A log line is cut to this many characters."""


class NonBlockingText(io.TextIOBase):
    """A text stream whose writes are handed to a `BackgroundWriter` (never waited for)."""

    def __init__(self, writer: BackgroundWriter, encoding: str = "utf-8") -> None:
        super().__init__()
        self._writer = writer
        self._encoding = encoding

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._writer.write(text)
        if "\n" in text:
            self._writer.flush()
        return len(text)

    def flush(self) -> None:
        self._writer.flush()


class OneLineHandler(logging.Handler):
    """Each record as one neutralised line, `switchboard: <level>: <logger>: <message>`."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.WARNING)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            exc = record.exc_info[1] if record.exc_info else None
            if exc is not None:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                text += f" ({type(exc).__name__}{': ' + first if first else ''})"
            line = neutralise_line(f"switchboard: {record.levelname.lower()}: {record.name}: {text}")
            if len(line) > MAX_LINE:
                line = line[: MAX_LINE - 1] + "…"
            self.stream.write(line + "\n")
        except Exception:  # pragma: no cover - logging must never raise into the caller
            self.handleError(record)


class ErrorOutput:
    """Routes sys.stderr and the root logger through a background writer between
    `install()` and `uninstall()`; `close()` then waits up to `timeout` s for the reader
    (call it off the loop's thread)."""

    def __init__(self, stream: TextIO | None = None, timeout: float = 2.0) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._timeout = timeout
        self.writer = BackgroundWriter(
            self._stream, max_chunks=256,
            dropped="switchboard: {n} lines of errors not shown (stderr was not read fast enough)\n")
        self.stream = NonBlockingText(self.writer, getattr(self._stream, "encoding", None) or "utf-8")
        self._handler = OneLineHandler(self.stream)
        self._saved: TextIO | None = None

    def install(self) -> "ErrorOutput":
        self._saved = sys.stderr
        sys.stderr = self.stream
        logging.getLogger().addHandler(self._handler)
        return self

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self._handler)
        if self._saved is not None:
            sys.stderr = self._saved
            self._saved = None

    def close(self) -> bool:
        """Write what is left; False when the reader did not take it in time."""
        return self.writer.close(self._timeout)
