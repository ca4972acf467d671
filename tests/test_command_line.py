"""The command line as a user meets it: `--help` names the program and every command, and
--demo's simulated traffic never mixes with a real history (issue 11 item 7, issue 13 item 6)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.gateway.runner import free_port

from .pty_console import ROOT, PtyConsole, client_session, healthz, wait_until_serving

COMMANDS = ("simulate", "serve-sl", "export")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, env=env)


def test_help_names_the_program_and_lists_every_command_with_a_line_each():
    done = run("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python run.py [OPTIONS]\n")
    listed = {line.split()[0]: line for line in done.stdout.split("commands:\n", 1)[1].splitlines()
              if line.startswith("  ")}
    for command in COMMANDS:
        assert command in listed and len(listed[command].split()) > 4, listed
    assert "--demo" in done.stdout and "DIR/demo" in done.stdout


def test_the_installed_command_calls_itself_switchboard():
    command = Path(sys.executable).parent / "switchboard"
    if not command.exists():
        pytest.skip("no installed `switchboard` command in this environment (.ci/run checks the wheel's)")
    done = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, cwd=Path("/"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: switchboard [OPTIONS]\n"), done.stdout[:200]
    assert "'switchboard COMMAND --help'" in done.stdout


def test_each_command_has_its_own_help():
    for command in COMMANDS:
        done = run(command, "--help")
        assert done.returncode == 0 and done.stdout.startswith("usage:"), (command, done.stderr)


def _exported(data_dir: Path) -> list[dict]:
    done = run("export", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


async def test_the_demo_keeps_its_history_in_dir_demo_and_a_real_run_refuses_it(tmp_path):
    data_dir = tmp_path / "history"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    console = PtyConsole(["--demo", "--demo-rate", "20", "--data-dir", str(data_dir), "--port", str(port)])
    try:
        async with client_session() as session:
            await wait_until_serving(session, url, console.proc)
            deadline = time.monotonic() + 20
            while ((await healthz(session, url)) or {}).get("totals", {}).get("received", 0) < 3:
                assert time.monotonic() < deadline, "the simulated texters sent nothing"
                await asyncio.sleep(0.1)
        console.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = await asyncio.to_thread(console.wait, 10)
        took = time.monotonic() - sent
        assert code == 0, f"exit {code} {took:.2f} s after SIGTERM; the screen ended: {console.tail()}"
    finally:
        console.close()
    assert sorted(p.name for p in data_dir.iterdir()) == ["demo"]  # nothing in DIR itself
    assert (data_dir / "demo" / "DEMO").exists()
    assert any(r["kind"] == "callback" for r in _exported(data_dir / "demo"))

    refused = run("--headless", "--port", "0", "--data-dir", str(data_dir / "demo"))
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"switchboard: {data_dir / 'demo'} holds the simulated traffic of --demo, not a real history; "
        "run with --demo, or choose another --data-dir"]


async def test_the_demo_refuses_a_real_history_where_its_own_would_go(tmp_path):
    real = tmp_path / "history" / "demo"  # a real history someone keeps under that name
    started = subprocess.Popen([sys.executable, "run.py", "--headless", "--port", "0", "--data-dir", str(real)],
                               cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    assert started.stdout is not None
    assert "Gateway URL" in started.stdout.readline()
    started.send_signal(signal.SIGTERM)
    assert started.wait(10) == 0
    started.stdout.close()
    before = sorted(os.listdir(real))

    refused = run("--demo", "--data-dir", str(tmp_path / "history"))
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"switchboard: {real} holds a real history (it has no DEMO file); --demo keeps its own in "
        "DIR/demo: choose another --data-dir"]
    assert sorted(os.listdir(real)) == before  # untouched: no mark, no demo records


async def test_an_unmarked_demo_history_at_the_default_place_is_an_earlier_versions_and_gets_marked(tmp_path):
    """Earlier versions kept --demo's history unmarked in <user data dir>/demo."""
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "share"))
    legacy = tmp_path / "share" / "switchboard" / "demo"
    legacy.mkdir(parents=True)
    (legacy / "seg-000001.jsonl").write_text("")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    console = PtyConsole(["--demo", "--port", str(port)], env=env)
    try:
        async with client_session() as session:
            await wait_until_serving(session, url, console.proc)
        console.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(console.wait, 10) == 0
    finally:
        console.close()
    assert (legacy / "DEMO").exists()
    assert not (tmp_path / "share" / "switchboard" / "seg-000001.jsonl").exists()  # the real place untouched


def test_export_into_a_reader_that_stops_is_not_a_crash(tmp_path):
    """`switchboard export | head -1`: the pipe closes early; no traceback, exit 0."""
    import subprocess
    import sys
    from pathlib import Path

    from data.models import CallbackRecord
    from data.store import HistoryStore

    store = HistoryStore.open(tmp_path / "h")
    for n in range(3000):
        store.add_callback(CallbackRecord(seq=0, received_at=float(n), type="delivery_report", fields={},
                                          parsed={"message_id": str(n)}))
    store.sync_blocking()
    store.close()
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(f"{sys.executable} run.py export --data-dir {tmp_path / 'h'} | head -1",
                            shell=True, cwd=root, capture_output=True, text=True, timeout=60)
    assert result.stdout.count("\n") == 1
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
