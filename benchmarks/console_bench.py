"""The console under load, measured against issue 4's targets.

    python benchmarks/console_bench.py [--history DIR] [--held 10000] [--rate 1000]
                                       [--parts startup,thread,held,flood] [--runs 3]

1. startup  The REAL program (`python run.py --data-dir DIR --port P`) in a 120x40 tmux
            pane: time from launch to `GET /healthz` answering and to the status bar showing
            the Gateway URL; its RSS then (and its peak). DIR defaults to /tmp/hist1m and is
            built with make_history.py (1,000,000 records, about a minute) when it holds no
            history.
   thread   In-process (App.run_test) on the same history: `_show_phone` for the busiest
            phones and random ones.
2. held     In-process console on a fresh data dir; a separate process
            (benchmarks/console_load.py) opens `--held` incoming_message requests at once.
            Typing latency (a Key event sent the way the terminal driver sends it, until the
            focused Input's value changes) and RSS while they are held; then, with
            reply_timeout 8 s and fallback "busy", every client must get 200 "busy" by its
            deadline + 2 s; then max_pending 5000 with 6000 requests: 1000 answered at once.
3. flood    `--rate` delivery_report/s from a paced sender process; meanwhile the latency
            from POSTing a held incoming_message to its row being in the HeldQueue, typing
            latency, and the event loop's lag (a 10 ms asyncio timer).

Each in-process part runs in its own child process (so RSS figures are not mixed up); the
parent prints one table. Loopback only. Needs tmux for the startup part.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable
from _common import machine, pct, raise_nofile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
LOAD = str(ROOT / "benchmarks" / "console_load.py")
MAKE_HISTORY = str(ROOT / "benchmarks" / "make_history.py")

Row = dict[str, str]

# ----------------------------------------------------------------------------- helpers


def run_like_run_py(coro):
    """asyncio.run() on the loop run.py uses (server/process/event_loop.py)."""
    from server.process.event_loop import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)


def proc_status(pid: int | str = "self") -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) in MB."""
    out: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out



def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def row(figure: str, measured: str, target: str = "", ok: bool | None = None, note: str = "") -> Row:
    return {
        "figure": figure,
        "measured": measured,
        "target": target,
        "result": "" if ok is None else ("PASS" if ok else "FAIL"),
        "note": note,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]



class Tmux:
    """A private tmux server (own socket), so nothing else's sessions are touched."""

    def __init__(self) -> None:
        self.sock = f"console_bench_{os.getpid()}"
        self.run("-f", "/dev/null", "new-session", "-d", "-s", "idle", "-x", "120", "-y", "40", "sleep 3600")
        self.run("set-option", "-g", "remain-on-exit", "on")

    def run(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True)
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def close(self) -> None:
        self.run("kill-server", check=False)


def healthz(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def startup_once(tmux: Tmux, history: Path, n: int) -> dict[str, Any]:
    port = free_port()
    name = f"sb{n}"
    command = (
        f"exec {shlex.quote(PY)} {shlex.quote(str(ROOT / 'run.py'))} "
        f"--data-dir {shlex.quote(str(history))} --port {port}"
    )
    marker = f"127.0.0.1:{port}/"
    t0 = time.perf_counter()
    tmux.run("new-session", "-d", "-s", name, "-x", "120", "-y", "40", command)
    pid = int(tmux.run("display-message", "-p", "-t", name, "#{pane_pid}").strip())
    t_health = t_screen = None
    screen = ""
    while time.perf_counter() - t0 < 60 and (t_health is None or t_screen is None):
        if t_health is None and healthz(port):
            t_health = time.perf_counter() - t0
        if t_screen is None:
            screen = tmux.run("capture-pane", "-p", "-t", name)
            if any("Gateway URL" in line and marker in line for line in screen.splitlines()):
                t_screen = time.perf_counter() - t0
        if tmux.run("display-message", "-p", "-t", name, "#{pane_dead}").strip() == "1":
            break
        time.sleep(0.005)
    ready = max(t_health or float("inf"), t_screen or float("inf"))
    rss_ready = proc_status(pid).get("VmRSS", float("nan"))
    rss_max = rss_ready
    settle_until = time.perf_counter() + 2.0
    while time.perf_counter() < settle_until:
        rss_max = max(rss_max, proc_status(pid).get("VmRSS", 0.0))
        time.sleep(0.1)
    status = proc_status(pid)
    shown_history = "Conversation with" in tmux.run("capture-pane", "-p", "-t", name)
    last_screen = tmux.run("capture-pane", "-p", "-t", name) if ready == float("inf") else ""
    tq = time.perf_counter()
    tmux.run("send-keys", "-t", name, "C-q", check=False)
    while os.path.exists(f"/proc/{pid}") and time.perf_counter() - tq < 20:
        # remain-on-exit keeps the pane; the process is gone when /proc/pid is.
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split(") ", 1)[1].startswith("Z"):
                    break
        except OSError:
            break
        time.sleep(0.02)
    quit_s = time.perf_counter() - tq
    tmux.run("kill-session", "-t", name, check=False)
    return {
        "healthz": t_health, "screen": t_screen, "ready": ready, "rss_ready": rss_ready,
        "rss_settled": status.get("VmRSS", float("nan")), "rss_max": max(rss_max, status.get("VmRSS", 0.0)),
        "hwm": status.get("VmHWM", float("nan")), "quit": quit_s, "history_shown": shown_history,
        "screen_dump": last_screen,
    }


def part_startup(history: Path, runs: int) -> list[Row]:
    if shutil.which("tmux") is None:
        return [row("1 start-up (real program)", "not measured: tmux is not installed", "≤ 2 s", None)]
    tmux = Tmux()
    results = []
    try:
        for n in range(runs):
            res = startup_once(tmux, history, n)
            results.append(res)
            print(f"  start-up run {n + 1}: healthz {res['healthz']}, screen {res['screen']}, "
                  f"RSS {res['rss_settled']:.0f} MB (peak {res['hwm']:.0f} MB), quit {res['quit']:.2f} s",
                  file=sys.stderr)
            if res["ready"] == float("inf"):
                print(res["screen_dump"], file=sys.stderr)
    finally:
        tmux.close()

    def fmt(key: str) -> str:
        values = [r[key] for r in results]
        if any(v is None for v in values):
            return "never (" + ", ".join("-" if v is None else f"{v:.2f}" for v in values) + ")"
        return f"{statistics.median(values):.2f} s median, worst {max(values):.2f} s (" + \
            ", ".join(f"{v:.2f}" for v in values) + ")"

    rss = max(r["rss_settled"] for r in results)
    rss_peak = max(r["hwm"] for r in results)
    return [
        row("1 start-up → GET /healthz 200", fmt("healthz"), "≤ 2 s",
            all(r["healthz"] is not None and r["healthz"] <= 2 for r in results)),
        row("1 start-up → status bar shows Gateway URL", fmt("screen"), "≤ 2 s",
            all(r["screen"] is not None and r["screen"] <= 2 for r in results),
            note="" if all(r["history_shown"] for r in results) else "history thread not on screen"),
        row("1 RSS after start-up (2 s settled, worst run)", f"{rss:.0f} MB", "≤ 300 MB", rss <= 300),
        row("1 RSS peak during start-up (VmHWM)", f"{rss_peak:.0f} MB", "≤ 300 MB", rss_peak <= 300),
        row("1 quit (ctrl+q) → process gone", f"{max(r['quit'] for r in results):.2f} s worst", ""),
    ]


# ----------------------------------------------------------------------------- in-process tools


class LagProbe:
    """Lateness of a 10 ms asyncio timer on the console's loop."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.01)
            self.samples.append(loop.time() - t - 0.01)

    def start(self) -> "LagProbe":
        self.samples = []
        self._task = asyncio.ensure_future(self._run())
        return self

    async def stop(self) -> list[float]:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        return self.samples

    @staticmethod
    def describe(samples: list[float]) -> str:
        if not samples:
            return "no samples"
        return (f"p50 {ms(pct(samples, 50))}, p99 {ms(pct(samples, 99))}, max {ms(max(samples))}"
                f" ({len(samples)} ticks)")


async def press_latency(app: Any, timeout: float = 10.0) -> float | None:
    """One key, sent as the terminal driver sends it (from its thread, via
    run_coroutine_threadsafe), until the focused Input's value has changed."""
    from textual import events
    from textual.widgets import Input

    focused = app.focused
    if not isinstance(focused, Input) or focused.disabled:
        return None
    before = focused.value
    key = events.Key("a", "a")
    key.set_sender(app)
    t0 = time.perf_counter()
    app._driver.send_message(key)
    while focused.value == before:
        if app.focused is not focused or focused.disabled:
            return None  # the answered/timed-out item took the focus along: no sample
        if time.perf_counter() - t0 > timeout:
            return float("inf")
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - t0
    value = focused.value
    if app.focused is not focused or len(value) != len(before) + 1 or value.count("a") != before.count("a") + 1:
        return None  # the field was cleared or refilled meanwhile: not our key's doing
    return elapsed


async def typing_samples(app: Any, count: int = 20, gap: float = 0.05,
                         until: Callable[[], bool] | None = None) -> list[float]:
    """`count` samples (or, with `until`, as many as fit until it returns True)."""
    samples: list[float] = []
    while (len(samples) < count) if until is None else not until():
        value = await press_latency(app)
        if value is not None:
            samples.append(value)
        await asyncio.sleep(gap)
    return samples


def describe_keys(samples: list[float]) -> str:
    if not samples:
        return "no samples (no Input focused)"
    return f"max {ms(max(samples))}, p95 {ms(pct(samples, 95))}, p50 {ms(pct(samples, 50))} ({len(samples)} keys)"


class Loader:
    """console_load.py in its own process; its status lines are collected as they come."""

    def __init__(self) -> None:
        self.lines: dict[str, str] = {}
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self.seen = asyncio.Event()

    async def start(self, *args: str) -> "Loader":
        self.proc = await asyncio.create_subprocess_exec(
            PY, LOAD, *args, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
        )
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            word, _, rest = raw.decode().strip().partition(" ")
            self.lines[word] = rest
            self.seen.set()

    async def wait_line(self, word: str, timeout: float) -> str | None:
        deadline = time.perf_counter() + timeout
        while word not in self.lines:
            if self._reader is not None and self._reader.done():
                break
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            self.seen.clear()
            try:
                await asyncio.wait_for(self.seen.wait(), min(remaining, 0.5))
            except asyncio.TimeoutError:
                pass
        return self.lines.get(word)

    async def finish(self, timeout: float) -> None:
        assert self.proc is not None
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader


def make_app(data_dir: Path, **gateway: Any) -> tuple[Any, Any]:
    from data.store import HistoryStore
    from server.process.gc_policy import settle_gc
    from server.config import Config, GatewayConfig
    from server.backend.local import LocalBackend
    from tui.app import SwitchboardApp

    store = HistoryStore.open(data_dir)
    settle_gc()  # as run.py does once the history is open
    gateway.setdefault("port", 0)
    config = Config(gateway=GatewayConfig(**gateway), data_dir=data_dir)
    app = SwitchboardApp(config, LocalBackend.for_config(config, store))
    return app, store


async def wait_for(condition: Callable[[], bool], timeout: float, step: float = 0.005) -> bool:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(step)
    return True


# ----------------------------------------------------------------------------- 1b. thread (in-process)


async def part_thread(history: Path) -> list[Row]:
    import random

    from data.store import HistoryStore
    from server.process.gc_policy import settle_gc
    from server.config import Config, GatewayConfig
    from tui.app import SwitchboardApp
    from tui.widgets.thread_view import ThreadView

    t = time.perf_counter()
    store = HistoryStore.open(history)
    settle_gc()  # as run.py does once the history is open
    open_s = time.perf_counter() - t
    rss_store = proc_status()["VmRSS"]
    st = store.stats()
    history_line = f"{st.callbacks + st.responses + st.outbound:,} records, {st.phones:,} phones, {st.segments} segments"
    config = Config(gateway=GatewayConfig(port=0), data_dir=history)
    app = SwitchboardApp(config, LocalBackend.for_config(config, store))
    rows: list[Row] = []
    try:
        t = time.perf_counter()
        async with app.run_test(headless=True, size=(120, 40)) as pilot:
            mounted_s = time.perf_counter() - t
            contacts = getattr(store, "_contacts", None)
            if isinstance(contacts, dict) and contacts:
                busiest = [c.phone for c in sorted(contacts.values(), key=lambda c: -c.messages_in)[:5]]
                everyone = list(contacts)
            else:
                everyone = [c.phone for c in store.contacts(500)]
                busiest = everyone[:5]
            phones = busiest + random.Random(1).sample(everyone, min(15, len(everyone)))
            call_s: list[float] = []
            idle_s: list[float] = []
            lines = 0
            for phone in phones:
                t = time.perf_counter()
                app._show_phone(phone)
                call_s.append(time.perf_counter() - t)
                # Every widget has handled what _show_phone queued, then one more screen refresh.
                await pilot._wait_for_screen()
                await app.screen.wait_for_refresh()
                idle_s.append(time.perf_counter() - t)
                lines = max(lines, len(app.query_one(ThreadView).lines))
                await asyncio.sleep(0.02)
            entries = len(store.thread(busiest[0], 300)) if busiest else 0
            worst = max(idle_s)
            rows.append(row("1 open a phone's thread (_show_phone → screen settled)",
                            f"max {ms(worst)}, p50 {ms(pct(idle_s, 50))} ({len(phones)} phones; "
                            f"busiest shows {entries} entries)", "≤ 200 ms", worst <= 0.2))
            rows.append(row("  of which the _show_phone call itself", f"max {ms(max(call_s))}, p50 {ms(pct(call_s, 50))}"))
            rows.append(row("  history", history_line))
            rows.append(row("  (in-process) store open / App mounted",
                            f"{open_s:.2f} s / {mounted_s:.2f} s, RSS {rss_store:.0f} MB after open"))
    finally:
        store.close()
    return rows


# ----------------------------------------------------------------------------- 2. 10k held


async def held_phase_a(base: Path, n: int) -> list[Row]:
    """n held at once with reply_timeout 30: typing, RSS; then quit releases them."""
    from tui.widgets.composer import Composer
    from tui.widgets.held_queue import HeldQueue

    app, store = make_app(base / "a", reply_timeout=30, max_pending=max(20_000, n + 1), fallback="busy")
    out = base / "a.json"
    rows: list[Row] = []
    try:
        async with app.run_test(headless=True, size=(120, 40)):
            queue = app.query_one(HeldQueue)
            composer = app.query_one(Composer)
            rss_before = proc_status()["VmRSS"]
            lag = LagProbe().start()
            t0 = time.perf_counter()
            loader = await Loader().start("held", "--url", app.gateway_url, "--n", str(n), "--out", str(out),
                                          "--tag", "A", "--timeout", "120")
            await wait_for(lambda: composer.item is not None, 60)
            burst_keys = await typing_samples(app, gap=0.05, until=lambda: len(queue) >= n or time.perf_counter() - t0 > 90)
            all_held = await wait_for(lambda: len(queue) >= n, 1)
            all_held_s = time.perf_counter() - t0
            burst_lag = await lag.stop()
            await asyncio.sleep(0.3)
            lag = LagProbe().start()
            keys = await typing_samples(app, 20, gap=0.05)
            await asyncio.sleep(1.2)  # at least one countdown tick of the 10k-row queue
            held_lag = await lag.stop()
            rss = proc_status()
            pending = app.backend.broker.pending_count
            t_quit = time.time()
            tq = time.perf_counter()
            await app.action_quit()
            quit_s = time.perf_counter() - tq
        await loader.finish(60)
        done = json.loads(loader.lines.get("DONE", "{}") or "{}")
        results = json.loads(out.read_text()) if out.exists() else []
        released = [r for r in results if r[4] == 200 and r[5] == "busy"]
        release_s = max((r[3] for r in results), default=t_quit) - t_quit
    finally:
        store.close()
    worst = max(keys) if keys else float("inf")
    rows += [
        row(f"2 {n:,} held: all in the queue after", f"{all_held_s:.2f} s (pending {pending:,})", f"{n:,} held", all_held and pending == n),
        row(f"2 typing latency with {n:,} held", describe_keys(keys), "≤ 100 ms", worst <= 0.1),
        row(f"2 RSS of the console with {n:,} held", f"{rss['VmRSS']:.0f} MB (peak {rss['VmHWM']:.0f} MB; "
            f"{rss_before:.0f} MB before)", "≤ 500 MB", rss["VmRSS"] <= 500 and rss["VmHWM"] <= 500),
        row("  (extra) typing while the 10k arrive", describe_keys(burst_keys), "≤ 100 ms",
            bool(burst_keys) and max(burst_keys) <= 0.1),
        row("  (extra) loop lag while they arrive / while held", f"{LagProbe.describe(burst_lag)} / {LagProbe.describe(held_lag)}"),
        row("  (extra) quit with all held → every client answered",
            f"{len(released):,}/{n:,} got 200 'busy', last {release_s:.2f} s after quit (action_quit {quit_s:.2f} s)"
            + (f"; loader: {done.get('errors')} errors {done.get('first_errors')}" if done.get("errors") else ""),
            f"{n:,}", len(released) == n),
    ]
    return rows


async def held_phase_b(base: Path, n: int, timeout: float) -> list[Row]:
    """n held with reply_timeout `timeout` and fallback "busy": all answered by deadline + 2 s."""
    from server.broker import ExchangeHeld
    from tui.widgets.composer import Composer

    app, store = make_app(base / "b", reply_timeout=timeout, max_pending=max(20_000, n + 1), fallback="busy")
    deadlines: dict[int, float] = {}

    def on_event(event: Any) -> None:
        if isinstance(event, ExchangeHeld):
            body = str(event.item.record.parsed.get("body", ""))
            if body.startswith("B "):
                deadlines[int(body[2:])] = event.item.deadline

    app.backend.broker.subscribe(on_event)
    out = base / "b.json"
    try:
        async with app.run_test(headless=True, size=(120, 40)):
            composer = app.query_one(Composer)
            loader = await Loader().start("held", "--url", app.gateway_url, "--n", str(n), "--out", str(out),
                                          "--tag", "B", "--timeout", str(timeout + 30))
            await wait_for(lambda: len(deadlines) >= n, 60, step=0.05)
            first_deadline = min(deadlines.values(), default=time.time())
            await asyncio.sleep(max(0.0, first_deadline - time.time() - 0.5))
            # Type through the wave of fallbacks (the operator does not stop working).
            lag = LagProbe().start()
            wave_keys = await typing_samples(
                app, gap=0.05,
                until=lambda: app.backend.broker.pending_count == 0 or time.time() > first_deadline + 30)
            await asyncio.sleep(0.5)
            wave_lag = await lag.stop()
            del composer
            await loader.finish(timeout + 60)
            await app.action_quit()
        results = json.loads(out.read_text()) if out.exists() else []
    finally:
        store.close()
    on_time = late = wrong = hung = unheld = 0
    lateness: list[float] = []
    for i, t_start, t_sent, t_end, status, body, error in results:
        deadline = deadlines.get(i)
        if error:
            hung += 1
        elif status != 200 or body != "busy":
            wrong += 1
        elif deadline is None:
            unheld += 1
        else:
            lateness.append(t_end - deadline)
            if t_end <= deadline + 2.0:
                on_time += 1
            else:
                late += 1
    return [
        row(f"2 {n:,} time out (reply_timeout {timeout:g} s, fallback 'busy'): 200 'busy' by deadline + 2 s",
            f"{on_time:,}/{n:,} on time; late {late}, wrong answer {wrong}, hung/error {hung}, never held {unheld}; "
            f"answer − deadline: p50 {pct(lateness, 50):.2f} s, max {max(lateness, default=float('nan')):.2f} s",
            f"{n:,}/{n:,}", on_time == n),
        row("  (extra) typing while they time out", describe_keys(wave_keys), "≤ 100 ms",
            bool(wave_keys) and max(wave_keys) <= 0.1),
        row("  (extra) loop lag while they time out", LagProbe.describe(wave_lag)),
    ]


async def held_phase_c(base: Path, max_pending: int, n: int) -> list[Row]:
    """max_pending held, the rest answered with the fallback at once."""
    from server.broker import ExchangeEnded

    app, store = make_app(base / "c", reply_timeout=30, max_pending=max_pending, fallback="busy")
    server_ms: list[float] = []  # the gateway's own view: handler start → response recorded
    app.backend.broker.subscribe(lambda event: server_ms.append(event.response.latency_ms)
                         if isinstance(event, ExchangeEnded) and event.outcome == "overflow" and event.response else None)
    out = base / "c.json"
    expect = n - max_pending
    try:
        async with app.run_test(headless=True, size=(120, 40)):
            stats = app.backend.server.stats
            loader = await Loader().start("held", "--url", app.gateway_url, "--n", str(n), "--out", str(out),
                                          "--tag", "C", "--timeout", "90")
            settled = await wait_for(lambda: app.backend.broker.pending_count >= max_pending and stats.overflow >= expect,
                                     60, step=0.05)
            await asyncio.sleep(0.5)  # let late overflow answers (if any) arrive
            pending, overflow = app.backend.broker.pending_count, stats.overflow
            t_release = time.time()
            await app.action_quit()
        await loader.finish(60)
        results = json.loads(out.read_text()) if out.exists() else []
    finally:
        store.close()
    early = [r for r in results if r[3] < t_release and r[4] == 200 and r[5] == "busy"]
    latency = [r[3] - (r[2] or r[1]) for r in early]
    later_ok = sum(1 for r in results if r[3] >= t_release and r[4] == 200)
    worst = max(latency, default=float("inf"))
    return [
        row(f"2 overflow: max_pending {max_pending:,}, {n:,} requests",
            f"{len(early):,} answered 'busy' at once (request sent → answer: p50 {pct(latency, 50):.3f} s, "
            f"max {worst:.3f} s; in the gateway p50 {pct(server_ms, 50):.1f} ms, max {max(server_ms, default=float('nan')):.1f} ms); "
            f"held {pending:,}; overflow counter {overflow:,}; "
            f"{later_ok:,} held ones answered at quit",
            f"{expect:,} at once (< 1 s)", settled and len(early) == expect and pending == max_pending and worst < 1.0),
    ]


async def part_held(n: int, phases: str = "abc") -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="console_bench_") as tmp:
        base = Path(tmp)
        if "a" in phases:
            rows += await held_phase_a(base, n)
        if "b" in phases:
            rows += await held_phase_b(base, n, 8.0)
        if "c" in phases:
            rows += await held_phase_c(base, 5000, 6000)
    return rows


# ----------------------------------------------------------------------------- 3. flood


async def part_flood(rate: float, duration: float) -> list[Row]:
    import aiohttp

    from tui.widgets.held_queue import HeldQueue

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="console_bench_") as tmp:
        app, store = make_app(Path(tmp) / "f", reply_timeout=30, max_pending=20_000, fallback="busy")
        try:
            async with app.run_test(headless=True, size=(120, 40)):
                queue = app.query_one(HeldQueue)
                probe = LagProbe().start()
                await asyncio.sleep(1.0)
                idle_lag = await probe.stop()
                loader = await Loader().start("flood", "--url", app.gateway_url, "--rate", str(rate),
                                              "--duration", str(duration))
                await loader.wait_line("START", 10)
                t_start = time.perf_counter()
                await asyncio.sleep(1.0)  # warm-up
                lag = LagProbe().start()
                received0 = app.backend.server.stats.received
                t_window = time.perf_counter()
                held_s: list[float] = []
                posts: list[asyncio.Task] = []
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

                    async def post(i: int) -> str:
                        async with session.post(app.gateway_url, data={
                            "type": "incoming_message", "api_key": "bench", "phone_number": "1555%07d" % i,
                            "body": f"flood probe {i}", "sent_at": "2026-11-27T10:00:00Z",
                        }) as response:
                            return await response.text()

                    for i in range(20):
                        before = len(queue)
                        t = time.perf_counter()
                        posts.append(asyncio.ensure_future(post(i)))
                        if await wait_for(lambda: len(queue) > before, 5, step=0.005):
                            held_s.append(time.perf_counter() - t)
                        else:
                            held_s.append(float("inf"))
                        await asyncio.sleep(0.1)
                    keys = await typing_samples(app, 20, gap=0.05)
                    window = time.perf_counter() - t_start
                    in_flood = window < duration
                    received = app.backend.server.stats.received - received0
                    received_rate = received / (time.perf_counter() - t_window)
                    flood_lag = await lag.stop()
                    await loader.finish(duration + 30)
                    stats = json.loads(loader.lines.get("STATS", "{}") or "{}")
                    await app.action_quit()
                    answers = await asyncio.gather(*posts, return_exceptions=True)
        finally:
            store.close()
    per_second = stats.get("per_second", [])[1:-1] or stats.get("per_second", [])
    rate_ok = bool(stats) and stats.get("errors", 1) == 0 and abs(stats["rate"] - rate) / rate < 0.05
    worst_held = max(held_s)
    worst_key = max(keys) if keys else float("inf")
    rows += [
        row(f"3 flood: delivery_report sender, target {rate:g}/s for {duration:g} s",
            f"achieved {stats.get('rate', 0):.0f}/s ({stats.get('ok', 0):,} ok, {stats.get('errors', '?')} errors; "
            f"per second {min(per_second, default=0)}–{max(per_second, default=0)}; "
            f"latency p50 {stats.get('lat_p50_ms', float('nan')):.1f} ms, p99 {stats.get('lat_p99_ms', float('nan')):.1f} ms)",
            f"~{rate:g}/s steady", rate_ok),
        row("3a POST held incoming_message → in the HeldQueue",
            f"p50 {ms(pct(held_s, 50))}, max {ms(worst_held)} ({len(held_s)} samples, polled every 5 ms)",
            "≤ 100 ms", worst_held <= 0.1),
        row("3b typing latency under the flood", describe_keys(keys), "≤ 100 ms", worst_key <= 0.1),
        row("3c event-loop lag (10 ms timer) under the flood", LagProbe.describe(flood_lag), "p99 (no target)",
            None, note=f"idle: {LagProbe.describe(idle_lag)}"),
        row("  (check) measurements taken while the flood ran",
            f"{window:.1f} s of {duration:g} s; {received:,} callbacks received meanwhile ({received_rate:.0f}/s); "
            f"{sum(1 for a in answers if a == 'busy')}/20 probes answered 'busy' at quit", "", in_flood),
    ]
    return rows


# ----------------------------------------------------------------------------- driver


def run_child(part: str, args: argparse.Namespace) -> list[Row]:
    with tempfile.NamedTemporaryFile(prefix="console_bench_", suffix=".json", delete=False) as fh:
        out = fh.name
    try:
        cmd = [PY, __file__, "--_part", part, "--_out", out, "--history", str(args.history),
               "--held", str(args.held), "--held-phases", args.held_phases, "--rate", str(args.rate), "--flood-seconds", str(args.flood_seconds)]
        t = time.perf_counter()
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL)
        print(f"  part {part}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
        try:
            with open(out) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return [row(f"{part}", f"child failed (exit {done.returncode})", "", False)]
    finally:
        try:
            os.unlink(out)
        except OSError:
            pass


def child_main(args: argparse.Namespace) -> None:
    raise_nofile()
    part = args._part
    if part == "thread":
        rows = run_like_run_py(part_thread(args.history))
    elif part == "held":
        rows = run_like_run_py(part_held(args.held, args.held_phases))
    elif part == "flood":
        rows = run_like_run_py(part_flood(args.rate, args.flood_seconds))
    else:
        raise SystemExit(f"unknown part {part}")
    with open(args._out, "w") as fh:
        json.dump(rows, fh)


def ensure_history(history: Path, records: int) -> None:
    if any(history.glob("seg-*.jsonl")):
        return
    print(f"building {records:,} records in {history} (about a minute)…", file=sys.stderr)
    subprocess.run([PY, MAKE_HISTORY, "--dir", str(history), "--records", str(records)], check=True)
    print(file=sys.stderr)


def print_table(rows: list[Row]) -> None:
    headers = ("Figure", "Measured", "Target", "Result")
    keys = ("figure", "measured", "target", "result")
    widths = [min(60, max(len(h), *(len(r[k]) for r in rows))) for h, k in zip(headers, keys)]
    widths[1] = max(len(headers[1]), max(len(r["measured"]) for r in rows))
    widths[1] = min(widths[1], 110)

    def wrap(text: str, width: int) -> list[str]:
        indent = text[: len(text) - len(text.lstrip(" "))]
        text = text.lstrip(" ")
        lines, line = [], indent
        for word in text.split(" "):
            if line.strip() and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = indent + word
            else:
                line = f"{line} {word}" if line.strip() else line + word
        return lines + [line]

    sep = "  "
    print(sep.join(h.ljust(w) for h, w in zip(headers, widths)))
    print(sep.join("-" * w for w in widths))
    for r in rows:
        cells = [wrap(r[k], w) for k, w in zip(keys, widths)]
        if r.get("note"):
            cells[1] += wrap("(" + r["note"] + ")", widths[1])
        for i in range(max(len(c) for c in cells)):
            print(sep.join((c[i] if i < len(c) else "").ljust(w) for c, w in zip(cells, widths)).rstrip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--history", type=Path, default=Path("/tmp/hist1m"),
                    help="data dir with a big history (built with make_history.py when empty)")
    ap.add_argument("--records", type=int, default=1_000_000, help="records to build when --history is empty")
    ap.add_argument("--held", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--held-phases", default="abc",
                    help="of part 2: a = held (typing, RSS), b = time out, c = max-pending overflow")
    ap.add_argument("--flood-seconds", type=float, default=12.0)
    ap.add_argument("--runs", type=int, default=3, help="start-up runs of the real program")
    ap.add_argument("--parts", default="startup,thread,held,flood")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    ap.add_argument("--_part", help=argparse.SUPPRESS)
    ap.add_argument("--_out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._part:
        child_main(args)
        return
    limit = raise_nofile()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    started = time.perf_counter()
    rows: list[Row] = []
    if {"startup", "thread"} & set(parts):
        ensure_history(args.history, args.records)
    for part in parts:
        print(f"[{time.perf_counter() - started:5.1f} s] {part}…", file=sys.stderr)
        if part == "startup":
            rows += part_startup(args.history, args.runs)
        else:
            rows += run_child(part, args)
    total = time.perf_counter() - started
    print()
    print(f"Machine: {machine(detailed=True)}")
    print(f"History: {args.history}; RLIMIT_NOFILE {limit}; bench took {total:.0f} s")
    print()
    print_table(rows)
    fails = [r for r in rows if r["result"] == "FAIL"]
    print()
    print(f"{sum(1 for r in rows if r['result'] == 'PASS')} PASS, {len(fails)} FAIL")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(detailed=True), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
