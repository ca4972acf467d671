"""Headless output must never block the gateway: a reader that stops reading (a paused
`| less`) once hung the event loop after 1,415 callbacks. Real pipes, a real subprocess."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp

from server.frontends.background_writer import BackgroundWriter

ROOT = Path(__file__).resolve().parent.parent


def test_a_stalled_pipe_neither_blocks_nor_loses_count(tmp_path):
    read_end, write_end = os.pipe()
    stream = open(write_end, "w", encoding="utf-8")
    writer = BackgroundWriter(stream, max_chunks=2)
    line = "x" * 99 + "\n"  # 100 bytes
    started = time.monotonic()
    for chunk in range(20):  # 20 chunks of 300 lines: 600 KB against a 64 KB pipe
        for _ in range(300):
            writer.write(line)
        writer.flush()
    assert time.monotonic() - started < 1.0, "writing to a stalled reader must not wait"
    assert writer.dropped_lines > 0

    received = bytearray()
    reader = threading.Thread(target=lambda: _read_all(read_end, received))
    reader.start()
    deadline = time.monotonic() + 10
    tries = 0
    while True:  # the count is reported with the first text the reader takes again
        writer.write("last\n")
        writer.flush()
        tries += 1
        if writer.dropped_lines == 0:
            break
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert writer.close(timeout=10)
    stream.close()
    reader.join(10)
    text = received.decode()
    notices = [int(n) for n in re.findall(r"headless: (\d+) lines not shown", text)]
    kept = text.count(line)
    lasts = text.count("last\n")
    assert len(notices) == 1 and lasts >= 1
    # every line written is either out or counted in the notice, once
    assert kept + lasts + notices[0] == 20 * 300 + tries
    assert 0 < kept < 20 * 300 and kept % 300 == 0  # whole chunks are dropped, never parts


def _read_all(fd: int, into: bytearray) -> None:
    while chunk := os.read(fd, 65536):
        into += chunk
    os.close(fd)


def test_a_stream_without_a_file_descriptor_is_written_directly():
    out = io.StringIO()
    writer = BackgroundWriter(out)
    writer.write("one\n")
    assert out.getvalue() == ""  # written on flush, as a buffered stream would
    writer.flush()
    assert out.getvalue() == "one\n"
    assert writer.close()


async def test_headless_keeps_answering_while_nobody_reads_its_output(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "run.py", "--headless", "--port", "0", "--data-dir", str(tmp_path / "h")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    try:
        first = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 15)
        url = re.search(rb"Gateway URL (http://\S+)", first).group(1).decode()
        # Then nobody reads stdout: 3,000 lines (~135 KB) against a 64 KB pipe.
        statuses: list[int] = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async def send(worker: int) -> None:
                for n in range(worker, 3000, 16):
                    fields = {"type": "delivery_report", "api_key": "k", "message_id": str(n),
                              "final": "1", "status": "1"}
                    async with session.post(url, data=fields) as response:
                        statuses.append(response.status)

            await asyncio.wait_for(asyncio.gather(*(send(w) for w in range(16))), 60)
        assert statuses == [200] * 3000
        proc.terminate()
        out, err = await asyncio.wait_for(asyncio.to_thread(proc.communicate), 20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")
    text = out.decode()
    # each callback is a line of its own, or counted in its second's summary line
    shown = {int(n) for n in re.findall(r"#\d+ delivery_report (\d+) delivered", text)}
    counted = sum(int(n.replace(",", "")) for n in re.findall(r"not shown: ([\d,]+) delivery_report", text))
    assert len(shown) + counted == 3000
    assert text.rstrip().endswith("stopped; 3000 callbacks recorded")


def test_past_the_line_budget_a_second_is_summed_up_in_one_line():
    """A flood is shown as a line per callback up to the budget, then one line per second
    that counts the rest by type; peer-chosen types stay inert and short."""
    from data.models import CallbackRecord
    from server.broker import CallbackReceived, RequestRejected
    from server.frontends.headless import LinePrinter

    out = io.StringIO()
    printer = LinePrinter(out, lines_per_second=5)
    hostile = "\x1b]0;pwned\x07" + "x" * 200
    second = int(time.time())
    while int(time.time()) == second and time.time() % 1 > 0.8:  # not across a second's end
        time.sleep(0.05)
    for seq in range(1, 41):
        kind = "delivery_report" if seq % 4 else hostile
        printer(CallbackReceived(CallbackRecord(seq, 0.0, kind, {}, {"message_id": str(seq)})))
    printer(RequestRejected(400, "bad form", "127.0.0.1"))
    printer.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 6
    summary = lines[-1]
    assert "... and 36 more that second, not shown: 26 delivery_report, 9 " in summary
    assert "1 HTTP 400" in summary
    assert "\x1b" not in summary and "\x07" not in summary and len(summary) < 300
    assert printer.unshown_total == 36
