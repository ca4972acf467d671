"""Running out of file descriptors is a pause, not a breakdown: the gateway in a subprocess
under `resource.setrlimit`, with more held requests than the limit allows."""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The real gateway and store, no answerer: held callbacks wait for their deadline (the fallback).
GATEWAY = textwrap.dedent("""
    import asyncio, signal, sys
    from pathlib import Path
    from data.store import HistoryStore
    from server.broker import Broker
    from server.config import GatewayConfig
    from server.process.event_loop import new_event_loop
    from server.gateway.runner import GatewayServer

    async def main():
        store = HistoryStore.open(Path(sys.argv[1]))
        server = GatewayServer(GatewayConfig(port=0, reply_timeout=float(sys.argv[2]), fallback="later"),
                               Broker(), store)
        print(await server.start(), flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop()
        store.close()

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main())
""")


def _start(tmp_path: Path, soft: int, hard: int, reply_timeout: float) -> tuple[subprocess.Popen, int]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    proc = subprocess.Popen([sys.executable, "-c", GATEWAY, str(tmp_path / "history"), str(reply_timeout)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limit)
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    assert url.startswith("http://"), proc.stderr.read().decode() if proc.stderr else url
    return proc, int(url.rsplit(":", 1)[1].strip("/"))


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=20)
    return err.decode(errors="replace")


async def _exchange(port: int, body: bytes, timeout: float = 30) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        return int(head.split(b" ")[1]), await reader.readexactly(length)
    finally:
        writer.close()


async def _health(port: int) -> dict:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


async def test_the_soft_open_files_limit_is_raised_to_the_hard_one(tmp_path):
    proc, port = _start(tmp_path, 256, 4096, 1.0)
    try:
        health = await _health(port)
        assert health["descriptors"]["limit"] == 4096
        assert 3500 < health["max_pending_allowed"] < 4096
    finally:
        _stop(proc)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts descriptors in /proc")
async def test_more_held_requests_than_descriptors_wait_and_are_all_answered(tmp_path):
    """ulimit -n 1024, 1,200 held at once: before, 309 got 503, 891 nothing, and the store
    failed every later callback. Now the gateway stops accepting near the limit, the rest wait
    in the kernel's queue, and every one is answered (the fallback, at its deadline)."""
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 2600, "the test's own side needs descriptors"
    proc, port = _start(tmp_path, 1024, 1024, 1.5)
    try:
        incoming = [b"type=incoming_message&api_key=k&phone_number=555%07d&body=hi&sent_at=now" % i
                    for i in range(1200)]
        answers = await asyncio.gather(*(_exchange(port, body) for body in incoming), return_exceptions=True)
        failures = [a for a in answers if isinstance(a, BaseException)]
        assert failures == [], f"{len(failures)} unanswered, e.g. {failures[0]!r}"
        assert sorted({a for a in answers}) == [(200, b"later")]
        # nothing broke: a callback after the wave is recorded and acknowledged
        assert await _exchange(port, b"type=delivery_report&api_key=k&message_id=after&final=1&status=1") == (200, b"")
        health = await _health(port)
        assert health["totals"]["timed_out"] == 1200 and health["totals"]["received"] == 1201
        assert health["descriptors"]["accept_pauses"] >= 1
        assert 600 < health["max_pending_allowed"] < 1024
    finally:
        err = _stop(proc)
    assert "Traceback" not in err and "Too many open files" not in err, err
