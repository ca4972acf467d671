"""How often the console fails to quit when its terminal goes away (issue 11, item 6).

    python benchmarks/hangup_bench.py [--runs 50] [--held 0] [--demo] [--max-delay 2.5]
                                      [--limit 3] [--give-up 10] [--seed S] [--checkout DIR]

Each run starts the real program (`python run.py --data-dir DIR --port P`, plus `--demo`
if asked) as the owner of a fresh 120x40 pseudo-terminal, optionally holds `--held` texts
from real HTTP clients, waits a random 0-`--max-delay` s, and closes the terminal (the
master side: SIGHUP plus EIO, as when a tmux session is killed or ssh drops). A run passes
when the process exits within `--limit` s of the hang-up, every held client got an answer,
and the history's lock is free. A process still running after `--give-up` s is counted as
hung (its Python stacks are printed with gdb when gdb is there) and killed.

`--checkout DIR` runs another copy of the program (for a before/after comparison, e.g.
`git archive <commit> | tar -x -C DIR`) with this checkout's harness.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, pct, raise_nofile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.gateway.runner import free_port  # noqa: E402
from tests.pty_console import PtyConsole, client_session, hold, lock_is_free, wait_until_serving  # noqa: E402

FALLBACK = "Back soon"


def _stacks(pid: int) -> str:
    if shutil.which("gdb") is None:
        return "(no gdb: stacks not shown)"
    done = subprocess.run(
        ["gdb", "-iex", "set auto-load safe-path /", "-p", str(pid), "-batch", "-ex", "thread apply all py-bt"],
        capture_output=True, text=True, timeout=60,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(("Thread", "  File", "    "))]
    return "\n".join(lines[-80:]) or done.stdout[-4000:]


async def one_run(args: argparse.Namespace, rng: random.Random, data_dir: Path) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    argv = ["--data-dir", str(data_dir), "--port", str(port), "--fallback", FALLBACK, "--reply-timeout", "60"]
    if args.demo:
        argv.append("--demo")
    checkout = Path(args.checkout).resolve()
    console = PtyConsole(argv, cwd=checkout, command=[sys.executable, str(checkout / "run.py")])
    tasks: list[asyncio.Task] = []
    result: dict = {"held": args.held}
    try:
        async with client_session() as session:
            if args.held:
                await wait_until_serving(session, url, console.proc)
                tasks = await hold(session, url, args.held, console.proc)
            delay = rng.uniform(0, args.max_delay)
            await asyncio.sleep(delay)
            result["delay"] = round(delay if args.held else time.monotonic() - console.started, 2)
            closed = console.hang_up()
            code = await asyncio.to_thread(console.wait, args.give_up)
            result["exit_s"] = time.monotonic() - closed if code is not None else None
            result["code"] = code
            result["lock_free"] = lock_is_free(data_dir) and lock_is_free(data_dir / "demo")
            if code is None:
                result["stacks"] = _stacks(console.proc.pid)
            answers = await asyncio.gather(*tasks, return_exceptions=True)
            result["answered"] = sum(1 for a in answers if a == (200, FALLBACK))
    finally:
        console.close()
    result["ok"] = (result["exit_s"] is not None and result["exit_s"] <= args.limit
                    and result["answered"] == args.held and result["lock_free"])
    return result


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--held", type=int, default=0, help="texts held when the terminal closes")
    parser.add_argument("--demo", action="store_true", help="run with --demo (the simulated SL's traffic)")
    parser.add_argument("--max-delay", type=float, default=2.5, help="the hang-up comes 0 to this many s "
                        "after start (or after the texts are held)")
    parser.add_argument("--limit", type=float, default=3.0, help="seconds allowed from hang-up to exit")
    parser.add_argument("--give-up", type=float, default=10.0, help="seconds before a run counts as hung")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--checkout", default=str(ROOT), help="the copy of the program to run (default: this one)")
    args = parser.parse_args()
    raise_nofile()
    rng = random.Random(args.seed)
    results = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="hangup-") as tmp:
            result = await one_run(args, rng, Path(tmp) / "history")
        results.append(result)
        exit_s = "HUNG" if result["exit_s"] is None else f"{result['exit_s']:.2f} s"
        print(f"run {i + 1:3}: hang-up at {result['delay']:.2f} s, exit {exit_s} (code {result['code']}), "
              f"answered {result['answered']}/{args.held}, lock {'free' if result['lock_free'] else 'HELD'}"
              f"{'' if result['ok'] else '  FAIL'}", flush=True)
        if "stacks" in result:
            print(result["stacks"], flush=True)
    exits = [r["exit_s"] for r in results if r["exit_s"] is not None]
    failed = sum(1 for r in results if not r["ok"])
    hung = sum(1 for r in results if r["exit_s"] is None)
    mode = f"{'--demo, ' if args.demo else ''}{args.held} held, {args.checkout}"
    print(f"\n{machine()}; {mode}; {args.runs} hang-ups at random moments")
    print(f"failed {failed}/{args.runs} (hung past {args.give_up:g} s: {hung}); exit after hang-up: "
          f"median {pct(exits, 50):.2f} s, max {max(exits, default=float('nan')):.2f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
