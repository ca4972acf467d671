"""`python run.py simulate` (QA any gateway with the simulated SL) and
`python run.py serve-sl` (the simulated SL alone)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import TextIO

from ..sanitize import neutralise_line, truncate
from .demo import start_sl_api
from .scenario import ScenarioError, check_expectation, load_scenario
from .judge import Verdict
from .sl import Exchange, SimulatedSL
from .texters import Crowd


def _positive(kind: type, name: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be greater than 0")
        return value

    return parse


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected an http:// URL, got {text!r}")
    return text


class Reporter:
    """One line per callback sent: what went, what came back, the verdict."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()

    def __call__(self, exchange: Exchange, extra: list[str] | None = None) -> None:
        problems = list(exchange.verdict.violations) + (extra or [])
        self.counts["sent"] += 1
        self.counts["ok" if not problems else "violations"] += 1
        for problem in problems:
            self.reasons[problem.split(":")[0]] += 1
        what = exchange.fields.get("phone_number") or exchange.fields.get("phone_numbers") or exchange.fields.get("message_id", "")
        said = exchange.fields.get("body") or exchange.fields.get("status", "")
        answer = f"{exchange.status} {truncate(exchange.body, 60)!r}" if exchange.status else "no answer"
        verdict = "ok" if not problems else "VIOLATION: " + "; ".join(problems)
        line = f"→ {exchange.type} {what} {truncate(said, 40)!r}  ← {answer} ({exchange.elapsed_ms:.0f} ms)  {verdict}"
        self.out.write(neutralise_line(line) + "\n")
        self.out.flush()

    def summary(self) -> str:
        line = f"summary: {self.counts['sent']} callbacks, {self.counts['ok']} ok, {self.counts['violations']} with contract violations"
        if self.reasons:
            line += " (" + ", ".join(f"{reason}: {n}" for reason, n in self.reasons.most_common()) + ")"
        return neutralise_line(line)


async def _reachable(url: str) -> str:
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            async with session.get(url) as response:
                await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"cannot reach the gateway at {url}: {exc or type(exc).__name__}"
    return ""


async def _simulate(args: argparse.Namespace, out: TextIO) -> int:
    problem = await _reachable(args.gateway)
    if problem:
        print(f"switchboard simulate: {neutralise_line(problem)}", file=sys.stderr)
        return 2
    reporter = Reporter(out)
    sl = SimulatedSL(args.gateway, api_key=args.api_key, seed=args.seed, timeout=args.timeout,
                     delivery_delay=0.2, on_exchange=None if args.scenario else reporter)
    try:
        if args.scenario:
            for step in load_scenario(args.scenario):
                if step.wait:
                    await asyncio.sleep(step.wait)
                if step.send is not None:
                    exchange = await sl.post(step.send)
                    reporter(exchange, check_expectation(step.expect, exchange.status, exchange.body))
        else:
            crowd = Crowd(sl, rate=args.rate, population=max(5, min(40, args.count // 3 or 5)))
            runner = asyncio.get_running_loop().create_task(crowd.run())
            while len(sl.exchanges) < args.count:
                await asyncio.sleep(0.05)
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
    except ScenarioError as exc:
        print(f"switchboard simulate: {exc}", file=sys.stderr)
        return 2
    finally:
        await sl.close()
    out.write(reporter.summary() + "\n")
    return 1 if reporter.counts["violations"] else 0


def simulate_main(argv: list[str], out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(
        prog="python run.py simulate",
        description="QA a client app's gateway with the simulated SL: every callback type, "
                    "each response judged against the contract. Exit 1 on any violation.",
    )
    parser.add_argument("--gateway", required=True, type=_url, metavar="URL", help="the Gateway URL to call")
    parser.add_argument("--api-key", default="sim-key", metavar="KEY", help="api_key sent with every callback")
    parser.add_argument("--rate", type=_positive(float, "--rate"), default=5.0, metavar="N", help="events per second (default 5)")
    parser.add_argument("--count", type=_positive(int, "--count"), default=50, metavar="N", help="callbacks to send (default 50)")
    parser.add_argument("--seed", type=int, default=None, metavar="S", help="seed for a reproducible run")
    parser.add_argument("--scenario", type=Path, default=None, metavar="FILE", help="run a scripted scenario instead")
    parser.add_argument("--timeout", type=_positive(float, "--timeout"), default=30.0, metavar="S",
                        help="seconds to wait for each response (default 30)")
    args = parser.parse_args(argv)
    return asyncio.run(_simulate(args, out))


async def _serve(args: argparse.Namespace) -> int:
    reporter = Reporter(sys.stdout)
    sl = SimulatedSL(args.gateway, api_key=args.api_key, seed=args.seed, on_exchange=reporter)
    try:
        runner, url = await start_sl_api(sl, args.api_key, args.host, args.port)
    except OSError as exc:
        print(f"switchboard serve-sl: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"simulated SL API at {url} (api_key {args.api_key}); "
          + (f"texters post to {args.gateway}" if args.gateway else "no --gateway: API only"), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    crowd_task = loop.create_task(Crowd(sl, rate=args.rate).run()) if args.gateway else None
    await stop.wait()
    if crowd_task is not None:
        crowd_task.cancel()
        await asyncio.gather(crowd_task, return_exceptions=True)
    await sl.close()
    await runner.cleanup()
    print(reporter.summary(), flush=True)
    return 0


def serve_sl_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python run.py serve-sl", description="Run the simulated SL alone.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="port of the SL API (default 8090)")
    parser.add_argument("--gateway", type=_url, default=None, metavar="URL", help="Gateway URL the texters post to")
    parser.add_argument("--api-key", default="demo-key", metavar="KEY", help="the api_key the API accepts and callbacks carry")
    parser.add_argument("--rate", type=_positive(float, "--rate"), default=1.0, metavar="N")
    parser.add_argument("--seed", type=int, default=None, metavar="S")
    args = parser.parse_args(argv)
    return asyncio.run(_serve(args))


__all__ = ["simulate_main", "serve_sl_main", "Verdict"]
