"""`python run.py simulate` (QA any gateway with the simulated SL) and
`python run.py serve-sl` (the simulated SL alone).

simulate exits 0 when every response kept the contract (and every scenario expectation
held), 1 when any did not (with `--strict`, also when any drew a warning), 2 for bad
command-line input or an unreachable gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import os
import re
import signal
import socket
import sys
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from server.cli_types import port, positive
from server.sms.sanitize import neutralise_line
from server.simulator.demo import start_sl_api
from server.simulator.report import Reporter
from server.simulator.scenario import ScenarioError, Step, check_expectation, load_scenario
from server.simulator.sl import SimulatedSL
from server.simulator.texters import Crowd
from server.simulator.wire import failure_reason


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (and exit code 2) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {neutralise_line(message)} (see --help)\n")



_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?")


def _host_problem(host: str) -> str | None:
    """Why `host` cannot be an address or a host name, or None. A host of digits and dots
    is an IPv4 address or nothing (`999.1.1.1` is not a name to look up)."""
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            return f"{host!r} is not an IPv6 address"
        return None
    if host and all(ch.isdigit() or ch == "." for ch in host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"{host!r} is not an IPv4 address (four numbers, each 0-255)"
        return None
    if len(host) > 253 or _HOST_NAME.fullmatch(host) is None:
        return f"{host!r} is not a host name or an IP address"
    return None


def _host(text: str) -> str:
    problem = _host_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected an http:// URL, got {text!r}")
    try:
        parts = urlsplit(text)
    except ValueError:  # `http://[::1/`
        raise argparse.ArgumentTypeError(f"{text!r} is not a URL with a host") from None
    host = parts.hostname or ""
    if not host:
        raise argparse.ArgumentTypeError(f"{text!r} has no host")
    problem = _host_problem(host)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"the host {problem}")
    try:
        parts.port
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} has a port that is not a number 0-65535") from None
    return text



def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | int:
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad argument (2): return, do not raise
        return exc.code if isinstance(exc.code, int) else 2


async def _reachable(url: str, timeout: float) -> str:
    """'' if something answers HTTP at `url` (any status), else why not, in one line."""
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=min(timeout, 10.0))) as session:
            async with session.head(url, allow_redirects=False) as response:
                await response.read()
    except TimeoutError:
        return f"cannot reach the gateway at {url}: no answer within {min(timeout, 10.0):g} s"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return f"cannot reach the gateway at {url}: {failure_reason(exc)}"
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
    reporter = Reporter(out, strict=args.strict)
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
    return 1 if reporter.failed else 0


def build_simulate_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python run.py simulate",
        description="QA a client app's gateway with the simulated SL: texters send every callback type, "
                    "each response is read as the SL would and judged against the contract. "
                    "Violations and warnings are reported apart. "
                    "Exit 0 all ok, 1 any violation (or, with --strict, any warning), "
                    "2 bad input or gateway unreachable.",
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
    parser.add_argument("--strict", action="store_true",
                        help="warnings fail the run too (exit 1): an ambiguous reply, unknown JSON keys, "
                             "an HTML page as a reply")
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


def _listen_problem(host: str, port_number: int, exc: OSError) -> str:
    """Why the SL API cannot listen, about the host when the host is the trouble."""
    why = os.strerror(exc.errno) if exc.errno and not isinstance(exc, socket.gaierror) else exc.strerror or str(exc)
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on host {host}: it does not resolve to an address ({why})"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on host {host}: not an address of this machine ({why})"
    return f"cannot listen on {host}:{port_number}: {why}"


async def _serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    reporter = Reporter(out)
    sl = SimulatedSL(args.gateway, api_key=args.api_key, seed=args.seed, timeout=args.timeout,
                     on_exchange=reporter, flood_limit=args.flood_limit)
    try:
        runner, url = await start_sl_api(sl, args.api_key, args.host, args.port)
    except OSError as exc:
        print(f"switchboard serve-sl: {_listen_problem(args.host, args.port, exc)}", file=err)
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
    parser.add_argument("--host", type=_host, default="127.0.0.1",
                        help="address of the SL API (default 127.0.0.1)")
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
