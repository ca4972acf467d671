"""One operator at `--demo` rate N, from the keyboard: does every text get an answer in time?

Starts the real program (`run.py --demo --demo-rate N`) on its own 120x40 pseudo-terminal
and plays an operator who types at a person's pace, in cycles of about ten seconds:
answer the conversation in the composer with a canned reply (`/hours`, `tab`, `enter`),
twice, then answer every other waiting text with one template (`ctrl+g`, `thanks`,
`enter`, `enter`). Every ten seconds it reads the gateway's own counts (`/healthz`); at
the end it prints how many texts were held, answered, and missed (timed out, caller gone,
overflow). The run passes when none was missed.

    python benchmarks/demo_operator.py [--rate 1] [--seconds 120] [--reply-timeout 20]

The keys are the ones a person presses: nothing reaches into the app.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
import urllib.request

from _pty_app import PtyApp

TAB, ENTER, CTRL_G = b"\t", b"\r", b"\x07"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def counts(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        health = json.load(response)
    return {**health["totals"], "pending": health["pending"]}


def missed(totals: dict) -> int:
    return totals.get("timed_out", 0) + totals.get("caller_gone", 0) + totals.get("overflow", 0)


async def type_text(app: PtyApp, text: str, per_key: float = 0.05) -> None:
    """A person typing: about 20 keys a second."""
    for char in text:
        app.write(char.encode())
        await asyncio.sleep(per_key)


async def operator(app: PtyApp, port: int, seconds: float) -> list[dict]:
    samples = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        for _ in range(2):
            await type_text(app, "/hours")
            app.write(TAB)
            await asyncio.sleep(0.3)
            app.write(ENTER)
            await asyncio.sleep(1.2)
        app.write(CTRL_G)
        await asyncio.sleep(0.4)
        await type_text(app, "thanks")
        app.write(ENTER)
        await asyncio.sleep(0.4)
        app.write(ENTER)
        await asyncio.sleep(5.0)
        sample = {"t": round(time.monotonic() - start, 1), **counts(port)}
        samples.append(sample)
        print(f"  {sample['t']:6.1f} s  held {sample['held']:4}  answered {sample['answered']:4}  "
              f"waiting {sample['pending']:3}  missed {missed(sample)}", flush=True)
    return samples


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1.0, help="--demo-rate (conversations a second)")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--reply-timeout", type=float, default=20.0)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        app = PtyApp(["--demo", "--demo-rate", str(args.rate), "--data-dir", data_dir, "--port", str(port),
                      "--reply-timeout", str(args.reply_timeout), "--no-bell"])
        try:
            await app.wait_for(b"Gateway URL", app.mark, timeout=30)
            await asyncio.sleep(1.0)
            print(f"--demo-rate {args.rate}, {args.seconds:.0f} s, reply timeout {args.reply_timeout:.0f} s:")
            samples = await operator(app, port, args.seconds)
        finally:
            await app.close()
    last = samples[-1] if samples else {"held": 0, "answered": 0, "pending": 0}
    lost = missed(last)
    print(f"held {last['held']}, answered {last['answered']}, waiting at the end {last['pending']}, "
          f"missed {lost}: {'every text answered in time' if not lost else 'NOT every text answered'}")
    return 0 if not lost else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
