"""Durable ingest, side by side: Switchboard headless vs a bare aiohttp receiver.

Same load generator (wrk, from Debian's `wrk` package), same concurrency, same run.
Every delivery_report Switchboard answers is fsync'd (group commit) before its 200.

    python benchmarks/ingest_bench.py [--seconds 3] [--pairs 10] [--connections 64] [--data-dir DIR]

Servers run on one core and wrk on the other(s) (`--no-pin` to let the OS place them).
Both servers are started (and warmed up) once and stay up; wrk then loads them in short
interleaved slices (bare, switchboard, switchboard, bare, ...: `--pairs` of each). On a
shared VM the machine's speed drifts by up to 40 % within minutes, so runs of one server
minutes apart from the other's compare machines, not servers; slices seconds apart see the
same machine. The ratio is all of switchboard's requests over all of bare's (equal time),
so every slice counts, including those where switchboard rotates a segment; the lowest,
median and highest ratio of the pairs show how much the machine moved.

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


def wait_ready(server: "Server", timeout: float = 30) -> None:
    """Until the server accepts connections; exits with its last error line if it died."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.proc.poll() is not None:
            err = server.proc.stderr.read().decode(errors="replace").strip() if server.proc.stderr else ""
            last = err.splitlines()[-1] if err else f"exit code {server.proc.returncode}"
            raise SystemExit(f"ingest_bench: {server.name} exited at start: {last}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"ingest_bench: {server.name} on port {server.port} did not start in {timeout:.0f} s")


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



class Server:
    """A server under test: started once, kept up for every slice, stopped at the end."""

    def __init__(self, name: str, argv: list[str], port: int) -> None:
        self.name = name
        self.port = port
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=_pin(SERVER_CPUS))
        self.slices: list[dict[str, float]] = []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def summary(server: Server) -> dict[str, float]:
    rs = server.slices
    return {
        "rps": sum(r["rps"] for r in rs) / len(rs),  # equal slices: total requests / total time
        "p50": statistics.median(r["p50"] for r in rs),
        "p99": statistics.median(r["p99"] for r in rs),
        "p99max": max(r["p99"] for r in rs),
        "non2xx": sum(r["non2xx"] for r in rs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=3, help="length of one slice of load (default 3)")
    parser.add_argument("--pairs", type=int, default=10, help="slices of each server, interleaved (default 10)")
    parser.add_argument("--connections", type=int, default=64)
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
    bare_port, ours_port = free_port(), free_port()
    bare = Server("bare aiohttp receiver", [sys.executable, "benchmarks/bare_receiver.py", str(bare_port)], bare_port)
    ours = Server("switchboard --headless (fsync)",
                  [sys.executable, "run.py", "--headless", "--port", str(ours_port), "--data-dir", str(data_dir)],
                  ours_port)
    try:
        for server in (bare, ours):
            wait_ready(server)
            run_wrk(server.port, 2, args.connections, script)  # warm-up
        for i in range(max(1, args.pairs)):
            for server in ((bare, ours) if i % 2 == 0 else (ours, bare)):
                server.slices.append(run_wrk(server.port, args.seconds, args.connections, script))
    finally:
        for server in (bare, ours):
            server.stop()
    print(f"\nIngest: delivery_report, wrk -t1 -c{args.connections}, {args.pairs} slices of {args.seconds} s "
          f"per server, interleaved; {machine()}")
    print(f"history: {args.data_dir if args.data_dir is not None else 'fresh directory'}; {placement}")
    print(f"{'server':32} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'worst p99':>9} {'non-2xx':>8}")
    results = {}
    for server in (bare, ours):
        r = results[server.name] = summary(server)
        print(f"{server.name:32} {r['rps']:8.0f} {r['p50']:7.2f} {r['p99']:7.2f} {r['p99max']:9.2f} {r['non2xx']:8.0f}")
    pairs = sorted(o["rps"] / b["rps"] for b, o in zip(bare.slices, ours.slices) if b["rps"])
    ratio = results[ours.name]["rps"] / results[bare.name]["rps"] if results[bare.name]["rps"] else 0.0
    for server, label in ((bare, "bare"), (ours, "switchboard")):
        by_slice = " ".join(f"{r['rps']:.0f}" for r in server.slices)
        print(f"{label} req/s by slice: {by_slice}")
    print(f"switchboard / bare by pair: lowest {pairs[0]:.0%}, median {statistics.median(pairs):.0%}, "
          f"highest {pairs[-1]:.0%}")
    print(f"switchboard / bare = {ratio:.0%} (all requests over all slices; target >= 70%)")
    if args.data_dir is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ratio >= 0.7 else 1


if __name__ == "__main__":
    raise SystemExit(main())
