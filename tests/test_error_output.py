"""No stalled reader stops the gateway: stderr and log records never block the loop, and a
flood of malformed requests with nobody reading stderr is answered, shown and counted."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from server.frontends.error_output import ErrorOutput

ROOT = Path(__file__).resolve().parent.parent


def test_log_records_and_stderr_into_a_pipe_nobody_reads_never_block():
    read_end, write_end = os.pipe()
    stream = open(write_end, "w", encoding="utf-8", closefd=True)
    errors = ErrorOutput(stream, timeout=5).install()
    logger = logging.getLogger("test.flood")

    def flood() -> None:
        for n in range(3000):  # with tracebacks: far more than the pipe's 64 KiB
            try:
                raise ValueError(f"bad\x1b]52;c;x\x07 {n}\nsecond line")
            except ValueError:
                logger.exception("boom %d", n)
            print(f"plain stderr line {n}", file=sys.stderr)

    try:
        writer = threading.Thread(target=flood, daemon=True)
        started = time.monotonic()
        writer.start()
        writer.join(20)
        assert not writer.is_alive(), "a write blocked on the unread pipe"
        assert time.monotonic() - started < 5
    finally:
        errors.uninstall()
    assert sys.stderr is not errors.stream
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(read_end, 65536), b"")))
    reader.start()
    size = -1
    while size != sum(map(len, chunks)):  # until the reader has caught up
        size = sum(map(len, chunks))
        time.sleep(0.2)
    errors.stream.write("after the reader came back\n")
    assert errors.close()
    stream.close()
    reader.join(10)
    os.close(read_end)
    lines = b"".join(chunks).decode().splitlines()
    assert lines[0].startswith("switchboard: error: test.flood: boom 0 (ValueError: bad")
    assert "\x1b" not in "".join(lines) and "Traceback" not in "".join(lines)
    assert not any(line.startswith("second line") for line in lines)  # one line a record
    dropped = [line for line in lines if "lines of errors not shown" in line]
    # The drop is announced each time the reader lets a line through again: once when it
    # only comes back at the end, a few times when the writer thread got a word in earlier.
    assert dropped and sum(int(line.split()[1]) for line in dropped) > 1000
    assert lines[-1] == "after the reader came back"


async def test_headless_with_unread_stderr_answers_and_shows_a_flood_of_malformed_requests(tmp_path):
    """aiohttp wrote a traceback per malformed request to stderr, on the loop: after 112
    into a pipe nobody read, headless answered nothing. Now each is our one-line 400, shown
    in the output without the request line's api_key, and nothing goes to stderr."""
    out_path = tmp_path / "out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "run.py", "--headless", "--port", "0", "--data-dir",
                                 str(tmp_path / "history")], cwd=ROOT, stdout=out, stderr=subprocess.PIPE)
    try:
        port = None
        for _ in range(300):
            match = re.search(r"Gateway URL http://127\.0\.0\.1:(\d+)/", out_path.read_text())
            if match:
                port = int(match.group(1))
                break
            await asyncio.sleep(0.05)
        assert port, out_path.read_text()

        async def one(data: bytes) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(data)
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return answer

        bad = [b"POST /?api_key=secret-key-1 HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n",
               b"post /?api_key=secret-key-1 HTTP/1.1\r\n\r\n"]
        for start in range(0, 600, 100):
            answers = await asyncio.gather(*(one(bad[n % 2]) for n in range(start, start + 100)))
            assert all(a.startswith(b"HTTP/1.1 400 Bad Request\r\n") for a in answers)
        ok = await one(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 37\r\n\r\n"
                       b"type=auto_reply_loop&phone_number=555")
        assert ok.startswith(b"HTTP/1.1 200 OK")
        health = await one(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b'"rejected": 600' in health or b'"rejected":600' in health
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    output = out_path.read_text()
    shown = re.findall(r"HTTP 400 from 127\.0\.0\.1: malformed request: .+", output)
    assert len(shown) == 600
    assert "secret" not in output and b"secret" not in err and b"Traceback" not in err
    assert proc.returncode == 0
