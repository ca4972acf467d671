"""The exit deadline (server/process/shutdown.py) with real signals, in a real process whose main
thread is wedged for good: nothing on it runs again, and the process must still end within
3 s of the signal, having run the last resort (in run.py: closing the history)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from server.process.shutdown import EXIT_FORCED

ROOT = Path(__file__).resolve().parent.parent

WEDGED = textwrap.dedent("""
    import sys, threading, time
    sys.path.insert(0, sys.argv[1])
    from server.process.quit_signals import catch_for_process
    from server.process.shutdown import guard_process, on_stall

    record = sys.argv[2]
    mode = sys.argv[3]
    began = time.monotonic()

    def note(what):
        with open(record, "a") as out:
            out.write(f"{what} {time.monotonic() - began:.3f}\\n")

    def last_resort():
        note("last-resort")
        if mode == "hanging":
            threading.Event().wait()

    guard_process(last_resort=last_resort)
    on_stall(lambda: note("stall"))
    catch_for_process()
    print("ready", flush=True)
    began = time.monotonic()
    threading.Event().wait()  # the main thread is stuck for good, as on a dead terminal
""")


def run_wedged(tmp_path: Path, sig: signal.Signals, mode: str = "normal") -> tuple[int, float, dict[str, float]]:
    record = tmp_path / "record"
    proc = subprocess.Popen([sys.executable, "-c", WEDGED, str(ROOT), str(record), mode],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(0.1)
        proc.send_signal(sig)
        sent = time.monotonic()
        code = proc.wait(10)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    notes = {}
    if record.exists():
        for line in record.read_text().splitlines():
            what, _, when = line.partition(" ")
            notes[what] = float(when)
    return code, took, notes


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_wedged_process_runs_the_last_resort_and_ends_within_3s(tmp_path, sig):
    code, took, notes = run_wedged(tmp_path, sig)
    assert code == EXIT_FORCED
    assert took < 3.0, took
    assert "last-resort" in notes
    assert 0.8 < notes["stall"] < notes["last-resort"], notes  # stalled after about a second


def test_a_hang_up_runs_the_stall_hooks_at_once(tmp_path):
    code, took, notes = run_wedged(tmp_path, signal.SIGHUP)
    assert code == EXIT_FORCED and took < 3.0, (code, took)
    assert notes["stall"] < 0.5, notes  # the terminal is gone: stop writing to it now


def test_a_last_resort_that_hangs_does_not_hold_the_exit(tmp_path):
    code, took, notes = run_wedged(tmp_path, signal.SIGTERM, mode="hanging")
    assert "last-resort" in notes
    assert code == EXIT_FORCED and took < 3.0, (code, took)
