"""`python run.py simulate` (QA any gateway with the simulated SL) and
`python run.py serve-sl` (the simulated SL alone).

simulate exits 0 when every response kept the contract (and every scenario expectation
held), 1 when any did not, 2 for bad command-line input or an unreachable gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import TextIO

from ..cli_types import port, positive
from ..sanitize import neutralise_line, truncate
from .demo import start_sl_api
from .judge import Verdict
from .scenario import ScenarioError, Step, check_expectation, load_scenario
from .sl import Exchange, SimulatedSL
from .texters import Crowd


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (and exit code 2) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {neutralise_line(message)} (see --help)\n")



def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected an http:// URL, got {text!r}")
    return text



def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | int:
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad argument (2): return, do not raise
        return exc.code if isinstance(exc.code, int) else 2


def _what(exchange: Exchange) -> str:
    fields = exchange.fields
    kind = exchange.type
    if kind == "delivery_report":
        return f"{fields.get('message_id', '?')} status={fields.get('status', '?')} final={fields.get('final', '?')}"
    if kind == "session_closed":
        return fields.get("phone_numbers", "?")
    line = fields.get("phone_number", "?")
    if kind == "incoming_message":
        line += f" {truncate(fields.get('body', ''), 40)!r}"
        flags = [name for name in ("auto_subscribe", "auto_responded") if name in fields]
        if flags:
            line += " " + " ".join(f"{name}={fields[name]}" for name in flags)
    return line


def _effects(verdict: Verdict) -> str:
    parts = []
    if verdict.reply:
        parts.append("reply")
    if verdict.close_session:
        parts.append("close_session")
    if verdict.reprocess:
        parts.append(f"reprocess {truncate(verdict.reprocess, 30)!r}")
    if verdict.tags:
        parts.append("tags " + ",".join(verdict.tags))
    return f" [{'; '.join(parts)}]" if parts else ""


class Reporter:
    """One line per callback sent: what went, what came back, the verdict. Everything the
    peer sent is neutralised before it is printed."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.counts: Counter[str] = Counter()
        self.types: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()

    def __call__(self, exchange: Exchange, extra: list[str] | None = None) -> None:
        if not exchange.sent:
            return
        problems = list(exchange.verdict.violations) + (extra or [])
        self.counts["sent"] += 1
        self.types[exchange.type] += 1
        self.counts["ok" if not problems else "violations"] += 1
        for problem in problems:
            self.reasons[problem.split(":")[0][:60]] += 1
        if exchange.status:
            body = exchange.body if exchange.body else ""
            answer = f"{exchange.status} {truncate(body, 60)!r}"
        else:
            answer = "no answer"
        verdict = "ok" + _effects(exchange.verdict) if not problems else "VIOLATION: " + "; ".join(problems)
        line = f"→ {exchange.type} {_what(exchange)}  ← {answer} ({exchange.elapsed_ms:.0f} ms)  {verdict}"
        self.out.write(neutralise_line(line) + "\n")
        self.out.flush()

    def summary(self) -> str:
        line = (f"summary: {self.counts['sent']} callbacks, {self.counts['ok']} ok, "
                f"{self.counts['violations']} with contract violations")
        if self.types:
            line += "; sent " + ", ".join(f"{kind} {n}" for kind, n in sorted(self.types.items()))
        if self.reasons:
            line += "; reasons: " + ", ".join(f"{reason} ×{n}" for reason, n in self.reasons.most_common(5))
        return neutralise_line(line)


async def _reachable(url: str, timeout: float) -> str:
    """'' if something answers HTTP at `url` (any status), else why not, in one line."""
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=min(timeout, 10.0))) as session:
            async with session.head(url, allow_redirects=False) as response:
                await response.read()
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return f"cannot reach the gateway at {url}: {reason}"
    return ""


async def _run_scenario(sl: SimulatedSL, steps: list[Step], reporter: Reporter) -> None:
    for step in steps:
        if step.wait:
            await asyncio.sleep(step.wait)
        if step.send is not None:
            exchange = await sl.post(step.send)
            reporter(exchange, check_expectation(step.expect, exchange.status, exchange.body))


async def _run_crowd(sl: SimulatedSL, args: argparse.Namespace) -> None:
    crowd = Crowd(sl, rate=args.rate, population=max(5, min(40, args.count // 3)))
    runner = asyncio.get_running_loop().create_task(crowd.run(), name="simulate-crowd")
    try:
        while sl.completed < args.count:
            await asyncio.sleep(0.02)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def _simulate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    steps = None
    if args.scenario is not None:
        try:
            steps = load_scenario(args.scenario)
        except ScenarioError as exc:
            print(f"switchboard simulate: {neutralise_line(str(exc))}", file=err)
            return 2
    problem = await _reachable(args.gateway, args.timeout)
    if problem:
        print(f"switchboard simulate: {neutralise_line(problem)}", file=err)
        return 2
    reporter = Reporter(out)
    sl = SimulatedSL(
        args.gateway, api_key=args.api_key, seed=args.seed, timeout=args.timeout,
        delivery_delay=0.2, reply_delay=0.3,
        # A scenario's callbacks are exactly its steps; a crowd run stops after --count.
        follow_ups=steps is None, max_callbacks=None if steps is not None else args.count,
        on_exchange=None if steps is not None else reporter,
    )
    try:
        if steps is not None:
            await _run_scenario(sl, steps, reporter)
        else:
            await _run_crowd(sl, args)
    finally:
        await sl.close()
    out.write(reporter.summary() + "\n")
    out.flush()
    return 1 if reporter.counts["violations"] else 0


def build_simulate_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python run.py simulate",
        description="QA a client app's gateway with the simulated SL: texters send every callback type, "
                    "each response is read as the SL would and judged against the contract. "
                    "Exit 0 all ok, 1 any violation, 2 bad input or gateway unreachable.",
    )
    parser.add_argument("--gateway", required=True, type=_url, metavar="URL", help="the Gateway URL to call")
    parser.add_argument("--api-key", default="sim-key", metavar="KEY", help="api_key sent with every callback")
    parser.add_argument("--rate", type=positive(float, "--rate"), default=5.0, metavar="N",
                        help="events per second (default 5)")
    parser.add_argument("--count", type=positive(int, "--count"), default=50, metavar="N",
                        help="callbacks to send (default 50)")
    parser.add_argument("--seed", type=int, default=None, metavar="S", help="seed for a reproducible run")
    parser.add_argument("--scenario", type=Path, default=None, metavar="FILE",
                        help="send a scripted scenario (JSON list of steps) instead of the crowd")
    parser.add_argument("--timeout", type=positive(float, "--timeout"), default=30.0, metavar="S",
                        help="seconds to wait for each response (default 30)")
    return parser


def _tolerant(stream: TextIO) -> TextIO:
    """Texters send emoji: never crash on a terminal that cannot show them."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors="replace")
        except (ValueError, OSError):
            pass
    return stream


def simulate_main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or _tolerant(sys.stdout)
    err = err or sys.stderr
    args = _parse(build_simulate_parser(), argv)
    if isinstance(args, int):
        return args
    try:
        return asyncio.run(_simulate(args, out, err))
    except KeyboardInterrupt:
        print("switchboard simulate: interrupted", file=err)
        return 130


async def _serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    reporter = Reporter(out)
    sl = SimulatedSL(args.gateway, api_key=args.api_key, seed=args.seed, timeout=args.timeout,
                     on_exchange=reporter, flood_limit=args.flood_limit)
    try:
        runner, url = await start_sl_api(sl, args.api_key, args.host, args.port)
    except OSError as exc:
        print(f"switchboard serve-sl: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=err)
        await sl.close()
        return 2
    target = f"texters post to {args.gateway}" if args.gateway else "no --gateway: API only, no callbacks"
    out.write(f"simulated SL API at {url} (api_key {args.api_key}); {target}; ctrl+c stops\n")
    out.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    crowd_task = loop.create_task(Crowd(sl, rate=args.rate).run()) if args.gateway else None
    try:
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        if crowd_task is not None:
            crowd_task.cancel()
            await asyncio.gather(crowd_task, return_exceptions=True)
        await sl.close()
        await runner.cleanup()
        out.write(reporter.summary() + "\n")
        out.flush()
    return 0


def build_serve_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python run.py serve-sl",
                     description="Run the simulated SL alone: its HTTP API (/api/send_message ...) and, "
                                 "with --gateway, texters posting callbacks there.")
    parser.add_argument("--host", default="127.0.0.1", help="address of the SL API (default 127.0.0.1)")
    parser.add_argument("--port", type=port, default=8090, help="port of the SL API (default 8090; 0 any free one)")
    parser.add_argument("--gateway", type=_url, default=None, metavar="URL", help="Gateway URL the texters post to")
    parser.add_argument("--api-key", default="demo-key", metavar="KEY",
                        help="the api_key the API accepts and callbacks carry (default demo-key)")
    parser.add_argument("--rate", type=positive(float, "--rate"), default=1.0, metavar="N",
                        help="conversation events per second (default 1)")
    parser.add_argument("--seed", type=int, default=None, metavar="S")
    parser.add_argument("--timeout", type=positive(float, "--timeout"), default=30.0, metavar="S",
                        help="seconds to wait for each callback's response (default 30)")
    parser.add_argument("--flood-limit", type=positive(int, "--flood-limit"), default=20, metavar="N",
                        help="messages per phone per minute before send_message answers -3 (default 20)")
    return parser


def serve_sl_main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    args = _parse(build_serve_parser(), argv)
    if isinstance(args, int):
        return args
    return asyncio.run(_serve(args, out or _tolerant(sys.stdout), err or sys.stderr))


__all__ = ["simulate_main", "serve_sl_main", "Reporter"]
