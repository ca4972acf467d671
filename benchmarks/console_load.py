"""Load generator for console_bench.py, run as its own process so that the client does not
share the console's event loop (or its GIL).

    python benchmarks/console_load.py held  --url URL --n 10000 --out FILE [--tag T]
    python benchmarks/console_load.py flood --url URL --rate 1000 --duration 10

`held`: opens N `incoming_message` POSTs at once (connector limit N, one socket each) and
waits for every answer. Prints `ALLSENT <unix time>` once every request body has been
written, then `DONE <json summary>`; writes one JSON row per request to FILE:
[i, t_start, t_sent, t_end, status, body, error] (unix times, so they compare with the
console's deadlines).

`flood`: paced open-loop `delivery_report` sender: request k is due at t0 + k/rate and goes
out on one of `--workers` keep-alive connections as soon as it is due (late ones go at once,
so the rate catches up). Prints `START <unix time>`, then `STATS <json>` with the achieved
rate, per-second completions and latency percentiles. `--lean` sends the same requests from
plain asyncio streams (HTTP/1.1 written by hand, the answer's head and Content-Length read
back) instead of aiohttp's client: about a fifth of the CPU per request, so that on a
2-core machine the sender does not starve the console it floods.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from urllib.parse import urlencode, urlsplit

import aiohttp
from _common import pct, raise_nofile


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def held(args: argparse.Namespace) -> None:
    n = args.n
    sent = 0

    async def on_sent(session, ctx, params) -> None:  # noqa: ANN001
        nonlocal sent
        request_ctx = ctx.trace_request_ctx
        if "sent" not in request_ctx:
            request_ctx["sent"] = time.time()
            sent += 1
            if sent == n:
                say(f"ALLSENT {request_ctx['sent']}")

    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(on_sent)
    connector = aiohttp.TCPConnector(limit=n, limit_per_host=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    rows: list[list] = [[]] * n

    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trace_configs=[trace]) as session:

        async def one(i: int) -> None:
            ctx: dict = {}
            data = {
                "type": "incoming_message",
                "api_key": "bench",
                "phone_number": "1%03d%07d" % (200 + i // 10_000_000 % 700, i % 10_000_000),
                "body": f"{args.tag} {i}",
                "sent_at": "2026-11-27T10:00:00Z",
            }
            t_start = time.time()
            status, body, error = 0, "", ""
            try:
                async with session.post(args.url, data=data, trace_request_ctx=ctx) as response:
                    status = response.status
                    body = (await response.text())[:80]
            except asyncio.TimeoutError:
                error = "client timeout (hung)"
            except Exception as exc:  # noqa: BLE001
                error = f"{type(exc).__name__}: {exc}"[:120]
            rows[i] = [i, t_start, ctx.get("sent", 0.0), time.time(), status, body, error]

        start = time.time()
        await asyncio.gather(*(one(i) for i in range(n)))
        end = time.time()

    ok = sum(1 for r in rows if r[4] == 200)
    errors = [r[6] for r in rows if r[6]]
    with open(args.out, "w") as fh:
        json.dump(rows, fh)
    say("DONE " + json.dumps({
        "n": n, "ok": ok, "errors": len(errors), "first_errors": errors[:3],
        "start": start, "end": end, "last_sent": max((r[2] for r in rows), default=0.0),
    }))


async def flood(args: argparse.Namespace) -> None:
    total = int(args.rate * args.duration)
    connector = aiohttp.TCPConnector(limit=args.workers, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=30)
    latencies: list[float] = []
    ends: list[float] = []
    errors: list[str] = []
    counter = 0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Warm the keep-alive pool so that connect() cost is not in the measured window.
        await asyncio.gather(*(session.get(args.url.rstrip("/") + "/healthz") for _ in range(4)))
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.05
        wall0 = time.time() + 0.05
        say(f"START {wall0}")

        async def worker() -> None:
            nonlocal counter
            while True:
                k = counter
                counter += 1
                if k >= total:
                    return
                due = t0 + k / args.rate
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                data = {
                    "type": "delivery_report", "api_key": "bench", "message_id": str(50_000_000 + k),
                    "status": "1", "final": "1",
                }
                t = loop.time()
                try:
                    async with session.post(args.url, data=data) as response:
                        await response.read()
                        if response.status != 200:
                            errors.append(f"HTTP {response.status}")
                            continue
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"{type(exc).__name__}: {exc}"[:120])
                    continue
                now = loop.time()
                latencies.append(now - t)
                ends.append(now - t0)

        await asyncio.gather(*(worker() for _ in range(args.workers)))
        elapsed = loop.time() - t0
    report(args, total, elapsed, latencies, ends, errors)


async def lean_flood(args: argparse.Namespace) -> None:
    """`flood` without aiohttp's client: the same paced requests on raw keep-alive streams."""
    total = int(args.rate * args.duration)
    url = urlsplit(args.url)
    host, port, path = url.hostname or "127.0.0.1", url.port or 80, url.path or "/"
    latencies: list[float] = []
    ends: list[float] = []
    errors: list[str] = []
    counter = 0
    loop = asyncio.get_running_loop()
    streams = [await asyncio.open_connection(host, port) for _ in range(args.workers)]
    t0 = loop.time() + 0.05
    wall0 = time.time() + 0.05
    say(f"START {wall0}")

    def request(k: int) -> bytes:
        body = urlencode({"type": "delivery_report", "api_key": "bench", "message_id": str(50_000_000 + k),
                          "status": "1", "final": "1"}).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n")
        return head.encode() + body

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal counter
        while True:
            k = counter
            counter += 1
            if k >= total:
                writer.close()
                return
            delay = t0 + k / args.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            t = loop.time()
            try:
                writer.write(request(k))
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:120])
                return  # this connection is gone
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
                continue
            now = loop.time()
            latencies.append(now - t)
            ends.append(now - t0)

    await asyncio.gather(*(worker(reader, writer) for reader, writer in streams))
    elapsed = loop.time() - t0
    report(args, total, elapsed, latencies, ends, errors)


def report(args: argparse.Namespace, total: int, elapsed: float, latencies: list[float], ends: list[float],
           errors: list[str]) -> None:
    per_second = [0] * (int(max(ends, default=0)) + 1)
    for e in ends:
        per_second[int(e)] += 1
    say("STATS " + json.dumps({
        "target_rate": args.rate, "sent": total, "ok": len(latencies), "errors": len(errors),
        "first_errors": errors[:3], "elapsed": elapsed, "rate": len(latencies) / elapsed if elapsed else 0,
        "per_second": per_second,
        "lat_p50_ms": pct(latencies, 50) * 1000, "lat_p99_ms": pct(latencies, 99) * 1000,
        "lat_max_ms": max(latencies, default=float("nan")) * 1000,
    }))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    h = sub.add_parser("held")
    h.add_argument("--url", required=True)
    h.add_argument("--n", type=int, default=10_000)
    h.add_argument("--timeout", type=float, default=60.0)
    h.add_argument("--tag", default="held")
    h.add_argument("--out", required=True)
    f = sub.add_parser("flood")
    f.add_argument("--url", required=True)
    f.add_argument("--rate", type=float, default=1000.0)
    f.add_argument("--duration", type=float, default=10.0)
    f.add_argument("--workers", type=int, default=32)
    f.add_argument("--lean", action="store_true", help="raw asyncio streams instead of aiohttp's client")
    args = ap.parse_args()
    raise_nofile()
    if args.mode == "held":
        asyncio.run(held(args))
    else:
        asyncio.run(lean_flood(args) if args.lean else flood(args))


if __name__ == "__main__":
    main()
