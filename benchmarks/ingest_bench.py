"""Durable ingest, side by side: Switchboard headless vs a bare aiohttp receiver.

Same load generator (wrk, from Debian's `wrk` package), same concurrency, same run.
Every delivery_report Switchboard answers is fsync'd (group commit) before its 200.

    python benchmarks/ingest_bench.py [--seconds 10] [--connections 64] [--rounds 2] [--data-dir DIR]

Servers run on one core and wrk on the other(s) (`--no-pin` to let the OS place them).
The servers run in rounds, back to back (bare then switchboard, then switchboard then bare,
...: `--rounds` of each). On a shared VM the machine's speed drifts by up to 40 % within
minutes, so the ratio that counts is taken within each round (two runs a few seconds apart
see the same machine) and the median of those is reported; the best run of each server,
compared, is printed too.

`--data-dir` points at an existing history (e.g. one built by make_history.py with
1,000,000 records) to measure ingest on top of it; default is a fresh temp dir.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from _common import machine

ROOT = Path(__file__).resolve().parent.parent

LUA = r"""
counter = 0
request = function()
  counter = counter + 1
  local body = "type=delivery_report&api_key=bench&message_id=" .. counter .. "&final=1&status=1"
  return wrk.format("POST", "/", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(port: int, path: str = "/healthz", timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on port {port} did not start")


SERVER_CPUS: set[int] | None = None
LOAD_CPUS: set[int] | None = None


def pinning(pin: bool) -> str:
    """Put every server on one core and wrk on the others (when there are 2+ cores), so the
    load generator and the server under test do not take turns on the same core and runs
    vary less. Both servers get the same treatment."""
    global SERVER_CPUS, LOAD_CPUS
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not pin or len(cpus) < 2:
        return "not pinned"
    SERVER_CPUS, LOAD_CPUS = {cpus[0]}, set(cpus[1:])
    return f"servers pinned to CPU {cpus[0]}, wrk to CPU {','.join(map(str, cpus[1:]))}"


def _pin(cpus: set[int] | None):
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def run_wrk(port: int, seconds: int, connections: int, script: Path) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True, preexec_fn=_pin(LOAD_CPUS),
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def latency(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": latency("50"), "p99": latency("99"),
            "non2xx": float(errors.group(1)) if errors else 0.0}



def bench(name: str, cmd: list[str], port: int, args, script: Path) -> dict[str, float]:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=_pin(SERVER_CPUS))
    try:
        wait_ready(port)
        run_wrk(port, 2, args.connections, script)  # warm-up
        return run_wrk(port, args.seconds, args.connections, script)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of one run of each server (the median round counts)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--no-pin", action="store_true", help="let the OS place servers and wrk on any core")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("ingest_bench: needs wrk (Debian: apt install wrk)", file=sys.stderr)
        return 2
    placement = pinning(not args.no_pin)
    tmp = Path(tempfile.mkdtemp(prefix="sb-ingest-"))
    script = tmp / "post.lua"
    script.write_text(LUA)
    data_dir = args.data_dir or tmp / "history"
    bare_name, ours_name = "bare aiohttp receiver", "switchboard --headless (fsync)"
    runs: dict[str, list[dict[str, float]]] = {bare_name: [], ours_name: []}

    def run_bare() -> None:
        port = free_port()
        runs[bare_name].append(bench(
            "bare", [sys.executable, "benchmarks/bare_receiver.py", str(port)], port, args, script))

    def run_ours() -> None:
        port = free_port()
        runs[ours_name].append(bench(
            "switchboard", [sys.executable, "run.py", "--headless", "--port", str(port), "--data-dir", str(data_dir)],
            port, args, script))

    for i in range(max(1, args.rounds)):
        for run in ((run_bare, run_ours) if i % 2 == 0 else (run_ours, run_bare)):
            run()
    print(f"\nIngest: delivery_report, wrk -t1 -c{args.connections} -d{args.seconds}s, {machine()}")
    print(f"history: {args.data_dir if args.data_dir is not None else 'fresh directory'}; {placement}")
    print(f"{'server':34} {'run':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    results = {}
    for name, rs in runs.items():
        for i, r in enumerate(rs, 1):
            print(f"{name:34} {i:>4} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['non2xx']:8.0f}")
        results[name] = max(rs, key=lambda r: r["rps"])
    for name, r in results.items():
        print(f"{name:34} {'best':>4} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['non2xx']:8.0f}")
    paired = sorted(o["rps"] / b["rps"] for b, o in zip(runs[bare_name], runs[ours_name]) if b["rps"])
    ratio = statistics.median(paired) if paired else 0.0
    best = results[ours_name]["rps"] / results[bare_name]["rps"] if results[bare_name]["rps"] else 0.0
    print(f"switchboard / bare, each round: {', '.join(f'{r:.0%}' for r in paired)}; best run / best run: {best:.0%}")
    print(f"switchboard / bare = {ratio:.0%} (median of the rounds; target >= 70%)")
    if args.data_dir is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ratio >= 0.7 else 1


if __name__ == "__main__":
    raise SystemExit(main())
