"""Faults end to end: kill -9 during ingest, SIGTERM/SIGINT with requests in flight, shutdown
with held requests, a caller that hangs up while held, and broken data directories — through
the real CLI (`python run.py ...` in a subprocess) where the brief is about the process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from data.store import HistoryStore
from server.broker import AnswerRefused, Broker, ExchangeHeld
from server.config import GatewayConfig
from server.sms.contract import Decision
from server.gateway.runner import GatewayServer

from .conftest import INCOMING

ROOT = Path(__file__).resolve().parent.parent
URL_LINE = re.compile(r"Gateway URL (http://\S+)")
IS_ROOT = os.geteuid() == 0


# ------------------------------------------------------------------------- helpers


class Headless:
    """`python run.py --headless` in a subprocess; stdout/stderr go to files (never a pipe
    nobody drains: headless writes a line per callback)."""

    def __init__(self, tmp_path: Path, data_dir: Path, name: str = "headless", sighup=signal.SIG_DFL) -> None:
        self.out_path = tmp_path / f"{name}.out"
        self.err_path = tmp_path / f"{name}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            # --port 0: the OS picks a free port and headless prints the real URL (no race).
            # SIGHUP's disposition is set, not inherited: under `nohup` the suite itself
            # ignores it, and the program keeps an ignored SIGHUP ignored.
            self.proc = subprocess.Popen(
                [sys.executable, "run.py", "--headless", "--port", "0", "--data-dir", str(data_dir)],
                cwd=ROOT, stdout=out, stderr=err, preexec_fn=lambda: signal.signal(signal.SIGHUP, sighup),
            )
        self.url = ""

    async def wait_url(self, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = URL_LINE.search(self.out_path.read_text(errors="replace"))
            if match:
                self.url = match.group(1)
                return self.url
            if self.proc.poll() is not None:
                raise AssertionError(f"headless exited {self.proc.returncode}: {self.stderr}")
            await asyncio.sleep(0.02)
        raise AssertionError(f"no Gateway URL line within {timeout}s: {self.stderr}")

    async def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"headless did not exit within {timeout}s")
            await asyncio.sleep(0.02)
        return self.proc.returncode

    async def stop(self, timeout: float = 5) -> int:
        """SIGTERM, as a service manager stops it; its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return await self.wait_exit(timeout)

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _report(message_id: str) -> dict[str, str]:
    return {"type": "delivery_report", "api_key": "key-1", "message_id": message_id, "final": "1", "status": "1"}


def export(data_dir: Path, out: Path) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "run.py", "export", "--format", "jsonl", "--data-dir", str(data_dir), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    return done.returncode, done.stderr


def exported_message_ids(path: Path) -> set[str]:
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        message_id = (doc.get("fields") or {}).get("message_id")
        if doc.get("type") == "delivery_report" and message_id:
            ids.add(message_id)
    return ids


async def _poster(session: aiohttp.ClientSession, url: str, prefix: str, acked: list[str], stop: asyncio.Event) -> None:
    i = 0
    while not stop.is_set():
        message_id = f"{prefix}-{i}"
        i += 1
        try:
            async with session.post(url, data=_report(message_id)) as response:
                await response.read()
                if response.status == 200:
                    acked.append(message_id)
        except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError):
            return  # the server is gone


async def _ingest_until(url: str, tasks: int, acked: list[str], enough: int, act) -> None:
    """`tasks` concurrent posters; once `enough` are acknowledged, call `act()` (a signal),
    then wait for every poster to notice the server is gone."""
    stop = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=tasks)) as session:
        posters = [asyncio.create_task(_poster(session, url, f"m{t}", acked, stop)) for t in range(tasks)]
        deadline = time.monotonic() + 10
        while len(acked) < enough and time.monotonic() < deadline and not all(p.done() for p in posters):
            await asyncio.sleep(0.005)
        assert len(acked) >= enough, f"only {len(acked)} acknowledged before the deadline"
        act()
        await asyncio.wait_for(asyncio.gather(*posters), 15)
        stop.set()


# ------------------------------------------------------------------------- kill -9


async def test_sigkill_during_ingest_loses_no_acknowledged_callback(tmp_path):
    data_dir = tmp_path / "history"
    first = Headless(tmp_path, data_dir, "first")
    try:
        url = await first.wait_url()
        acked: list[str] = []
        await _ingest_until(url, 16, acked, 2000, lambda: os.kill(first.proc.pid, signal.SIGKILL))
        assert await first.wait_exit(5) == -signal.SIGKILL
    finally:
        first.kill()

    out = tmp_path / "export.jsonl"
    code, stderr = export(data_dir, out)
    assert code == 0, stderr
    missing = set(acked) - exported_message_ids(out)
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged callbacks lost, e.g. {sorted(missing)[:5]}"

    # The data dir opens again without manual repair, and takes new callbacks.
    second = Headless(tmp_path, data_dir, "second")
    try:
        url = await second.wait_url()
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=_report("after-restart")) as response:
                assert response.status == 200
        assert await second.stop() == 0, second.stderr
    finally:
        second.kill()
    assert "Traceback" not in second.stderr
    code, stderr = export(data_dir, out)
    assert code == 0, stderr
    assert exported_message_ids(out) >= set(acked) | {"after-restart"}


# ------------------------------------------------------------------------- SIGTERM / SIGINT


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"])
async def test_headless_stops_cleanly_on_signal_with_requests_in_flight(tmp_path, sig):
    data_dir = tmp_path / "history"
    headless = Headless(tmp_path, data_dir)
    sent_at: list[float] = []

    def send() -> None:
        sent_at.append(time.monotonic())
        headless.proc.send_signal(sig)

    try:
        url = await headless.wait_url()
        acked: list[str] = []
        await _ingest_until(url, 6, acked, 100, send)
        code = await headless.wait_exit(5)
        assert code == 0, headless.stderr
        assert time.monotonic() - sent_at[0] < 5
    finally:
        headless.kill()
    assert "Traceback" not in headless.stderr, headless.stderr
    assert "stopped;" in headless.out_path.read_text()
    out = tmp_path / "export.jsonl"
    code, stderr = export(data_dir, out)
    assert code == 0, stderr
    missing = set(acked) - exported_message_ids(out)
    assert not missing, f"{len(missing)} acknowledged callbacks missing after {sig.name}"


async def test_under_nohup_a_hangup_is_ignored_as_asked(tmp_path):
    """SIGHUP ignored when the program starts (nohup) stays ignored: it keeps serving."""
    headless = Headless(tmp_path, tmp_path / "history", sighup=signal.SIG_IGN)
    try:
        url = await headless.wait_url()
        headless.proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        assert headless.proc.poll() is None, headless.stderr
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get(url.rstrip("/") + "/healthz") as response:
                assert response.status == 200
        assert await headless.stop() == 0
    finally:
        headless.kill()


# ------------------------------------------------------------------------- export while running


async def test_export_while_headless_runs_reads_what_is_on_disk(tmp_path):
    data_dir = tmp_path / "history"
    headless = Headless(tmp_path, data_dir)
    try:
        url = await headless.wait_url()
        async with aiohttp.ClientSession() as session:
            for n in range(200):
                async with session.post(url, data=_report(f"live{n}")) as response:
                    assert response.status == 200
        out = tmp_path / "export.jsonl"
        code, stderr = await asyncio.to_thread(export, data_dir, out)
        assert code == 0, stderr
        assert "in use by a running Switchboard" in stderr and "exported 200 records" in stderr
        assert {f"live{n}" for n in range(200)} <= exported_message_ids(out)  # every 200 is there
        assert await headless.stop(10) == 0  # the export took nothing from it
    finally:
        headless.kill()


# ------------------------------------------------------------------------- a disk that fills up


def _file_size_limit() -> None:
    # A real write failure without root: past 64 KiB per file the kernel refuses with EFBIG
    # (Python ignores SIGXFSZ), as a full disk refuses with ENOSPC.
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


async def test_a_disk_that_fills_up_gets_503s_and_a_one_line_error_at_exit(tmp_path):
    data_dir = tmp_path / "history"
    with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "run.py", "--headless", "--port", "0", "--data-dir", str(data_dir)],
            cwd=ROOT, stdout=out, stderr=err, preexec_fn=_file_size_limit,
        )
    try:
        deadline = time.monotonic() + 15
        while not (match := URL_LINE.search((tmp_path / "out").read_text(errors="replace"))):
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "err").read_text()
            await asyncio.sleep(0.02)
        acked: list[str] = []
        refusals: set[str] = set()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for n in range(1500):  # ~45 KiB of journal per 1,000: the limit is hit on the way
                fields = {"type": "delivery_report", "api_key": "k", "message_id": f"d{n}", "final": "1", "status": "1"}
                async with session.post(match.group(1), data=fields) as response:
                    if response.status == 200:
                        acked.append(f"d{n}")
                    else:
                        assert response.status == 503
                        refusals.add(await response.text())
        assert acked and len(refusals) == 1
        reason = refusals.pop()
        assert reason.count("\n") == 1 and "history store unavailable" in reason and "too large" in reason
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(asyncio.to_thread(proc.wait), 15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = (tmp_path / "err").read_text()
    assert "Traceback" not in stderr, stderr
    assert code in (0, 1)
    if code == 1:
        assert stderr.strip().splitlines()[-1].startswith("switchboard: the last records could not be written")
    out = tmp_path / "export.jsonl"
    done, export_err = export(data_dir, out)
    assert done == 0, export_err
    assert set(acked) <= exported_message_ids(out)  # every 200 is kept


# ------------------------------------------------------------------------- in-process server


@pytest.fixture
async def held_server(tmp_path):
    """GatewayServer on a real socket (handler_cancellation on), a broker nobody answers."""
    store = HistoryStore.open(tmp_path / "history")
    broker = Broker()
    held: list[int] = []
    broker.subscribe(lambda event: held.append(event.item.seq) if isinstance(event, ExchangeHeld) else None)
    server = GatewayServer(GatewayConfig(port=0, reply_timeout=30.0, fallback="Back soon"), broker, store)
    await server.start()
    yield server, broker, store, held
    await server.stop()
    store.close()


async def _wait_for(predicate, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_stop_answers_every_held_request_with_the_fallback(held_server):
    server, broker, store, held = held_server

    async def post(session: aiohttp.ClientSession, i: int) -> tuple[int, str]:
        async with session.post(server.url, data={**INCOMING, "body": f"held {i}"}) as response:
            return response.status, await response.text()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        clients = [asyncio.create_task(post(session, i)) for i in range(20)]
        await _wait_for(lambda: broker.pending_count == 20, timeout=5)
        started = time.monotonic()
        await server.stop()
        answers = await asyncio.wait_for(asyncio.gather(*clients), 3)
        assert time.monotonic() - started < 3
    assert answers == [(200, "Back soon")] * 20
    assert len(held) == 20
    for seq in held:
        response = store.response_for(seq)
        assert response is not None and response.outcome == "shutdown" and response.body == "Back soon"
    assert broker.pending_count == 0


async def test_caller_hanging_up_while_held_is_caller_gone(held_server):
    server, broker, store, held = held_server
    host, port = server.config.host, server.config.port
    body = "&".join(f"{k}={v}" for k, v in {**INCOMING, "body": "bye"}.items()).replace(" ", "+").encode()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    await _wait_for(lambda: broker.pending_count == 1)
    seq = held[0]
    writer.close()
    await writer.wait_closed()
    await _wait_for(lambda: store.response_for(seq) is not None)
    assert store.response_for(seq).outcome == "caller_gone"
    assert broker.pending_count == 0 and server.stats.caller_gone == 1
    with pytest.raises(AnswerRefused, match="hung up"):
        broker.answer(seq, Decision(reply="too late"))
    # The gateway carries on.
    async with aiohttp.ClientSession() as session:
        async with session.post(server.url, data=_report("still-here")) as response:
            assert response.status == 200


# ------------------------------------------------------------------------- broken data dirs


def _run_cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=20)


def _assert_clean_refusal(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("switchboard:"), done.stderr
    assert "Traceback" not in done.stderr


def _both_commands(data_dir: Path, tmp_path: Path) -> list[list[str]]:
    return [
        ["--headless", "--port", "0", "--data-dir", str(data_dir)],
        ["export", "--format", "jsonl", "--data-dir", str(data_dir), "--out", str(tmp_path / "x.jsonl")],
    ]


def test_data_dir_that_is_a_file_is_refused_in_one_line(tmp_path):
    data_dir = tmp_path / "not-a-dir"
    data_dir.write_text("hello")
    for args in _both_commands(data_dir, tmp_path):
        _assert_clean_refusal(_run_cli(args))
    assert data_dir.read_text() == "hello"


@pytest.mark.skipif(IS_ROOT, reason="root bypasses directory permissions")
@pytest.mark.parametrize("mode", [0o000, 0o500], ids=["unreadable", "read-only"])
def test_unusable_data_dir_is_refused_in_one_line(tmp_path, mode):
    data_dir = tmp_path / "locked"
    data_dir.mkdir()
    data_dir.chmod(mode)
    try:
        for args in _both_commands(data_dir, tmp_path):
            _assert_clean_refusal(_run_cli(args))
    finally:
        data_dir.chmod(0o700)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_data_dir_even_root_cannot_write_is_refused_in_one_line(tmp_path):
    """Runs as root too: /proc refuses new files whoever asks (no lock file, no probe)."""
    for data_dir in (Path("/proc"), Path("/proc/switchboard-test-missing")):
        for args in _both_commands(data_dir, tmp_path):
            _assert_clean_refusal(_run_cli(args))


async def test_data_dir_in_use_by_another_switchboard_is_refused(tmp_path):
    # A second writer is refused; `export` only reads (test_export_while_headless_runs...).
    data_dir = tmp_path / "history"
    first = Headless(tmp_path, data_dir, "first")
    try:
        await first.wait_url()
        for args in (["--headless", "--port", "0", "--data-dir", str(data_dir)], ["--data-dir", str(data_dir)]):
            done = _run_cli(args)
            _assert_clean_refusal(done)
            assert "in use" in done.stderr
        assert await first.stop() == 0
    finally:
        first.kill()


async def test_corrupt_segment_is_moved_aside_and_headless_starts(tmp_path):
    data_dir = tmp_path / "history"
    store = HistoryStore.open(data_dir)
    from data.models import CallbackRecord

    for i in range(20):
        store.add_callback(CallbackRecord(seq=0, received_at=time.time(), type="delivery_report",
                                          fields=_report(f"old-{i}"), parsed={"message_id": f"old-{i}"}))
    store.close()
    segment = data_dir / "seg-000001.jsonl"
    lines = segment.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 20
    damaged_id = json.loads(lines[10])["d"]["fields"]["message_id"]
    lines[10] = b"\x00\xffgarbage{{{" + lines[10][5:]  # damage in the middle, not a torn tail
    segment.write_bytes(b"".join(lines))

    headless = Headless(tmp_path, data_dir)
    try:
        url = await headless.wait_url()
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=_report("new-1")) as response:
                assert response.status == 200
        assert await headless.stop() == 0
    finally:
        headless.kill()
    aside = [p for p in data_dir.iterdir() if p.name.startswith("seg-000001.jsonl.corrupt")]
    assert len(aside) == 1 and b"garbage" in aside[0].read_bytes()
    notices = [line for line in headless.stderr.splitlines() if line.startswith("switchboard: notice:")]
    assert notices and any("seg-000001.jsonl" in line and aside[0].name in line for line in notices), headless.stderr
    assert "Traceback" not in headless.stderr
    out = tmp_path / "export.jsonl"
    code, stderr = export(data_dir, out)
    assert code == 0, stderr
    assert exported_message_ids(out) == {f"old-{i}" for i in range(20)} - {damaged_id} | {"new-1"}
