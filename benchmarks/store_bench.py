"""Measure HistoryStore at several history sizes, side by side, with the growth ratio.

    python benchmarks/store_bench.py --records 1000000 4000000 20000000 --base /tmp/hist

Each size N uses the history in `{base}{N in millions}m` (e.g. /tmp/hist20m), building it
with make_history.py first if it is missing (about 45 s per million records here). Every
size is measured in a fresh process: open() time and RSS, `run.py --headless` start to the
first 200 on a posted callback (and its RSS), how many live records open replayed, a
thread's newest page (what the console reads: 50 entries) and the page before it,
contacts(500), recent_callbacks(200), the first search hit, and durable ingest
(add_callback + await sync() from 64 tasks: group commit). The ingest phase appends
`--ingest` records to each history; RSS after it is reported too. `--crash` adds a
crash-recovery open: the live segment filled, the writer killed with SIGKILL, and the
open that replays it timed in a fresh process (imports included).

    python benchmarks/store_bench.py --one DIR     # one history, the same rows, as JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from data import CallbackRecord, HistoryStore  # noqa: E402

URL_LINE = re.compile(rb"Gateway URL (http://\S+)")


def rss_mb(pid: str = "self") -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def measure_one(data_dir: Path, ingest: int, tasks: int, query: str) -> dict[str, str]:
    rows: dict[str, str] = {}
    t = time.perf_counter()
    store = HistoryStore.open(data_dir, progress=lambda line: None)
    rows["open()"] = f"{time.perf_counter() - t:.2f} s"
    rows["RSS after open"] = f"{rss_mb():.0f} MB"
    st = store.stats()
    rows["records / phones / segments"] = f"{st.callbacks + st.responses + st.outbound:,} / {st.phones:,} / {st.segments}"
    everyone = store.contacts(limit=1_000_000)
    busiest = [c.phone for c in sorted(everyone, key=lambda c: -c.messages_in)[:5]]
    rng = random.Random(1)
    phones = busiest + [c.phone for c in rng.sample(everyone, min(15, len(everyone)))]
    rows["live segment replayed at open"] = f"{st.live_records:,} records"
    newest, older = [], []
    for p in phones:
        t = time.perf_counter()
        page = store.thread_page(p)
        newest.append(time.perf_counter() - t)
        if page.more:
            t = time.perf_counter()
            store.thread_page(p, before=page.before)
            older.append(time.perf_counter() - t)
    for label, times in (("thread_page(phone): newest 50", newest), ("  the page before it", older)):
        times.sort()
        rows[f"{label}, median / max"] = f"{_ms(times[len(times) // 2])} / {_ms(times[-1])}" if times else "none"
    t = time.perf_counter()
    store.contacts()
    rows["contacts(500)"] = _ms(time.perf_counter() - t)
    t = time.perf_counter()
    store.recent_callbacks(200)
    rows["recent_callbacks(200)"] = _ms(time.perf_counter() - t)
    for q in (query, busiest[0][-6:]):
        t = time.perf_counter()
        first = None
        for p in store.search(q):
            if p.hits:
                first = time.perf_counter() - t
                break
        rows[f"search {q!r} first hit"] = _ms(first) if first is not None else "no hits"

    async def run_ingest() -> float:
        per_task = ingest // tasks

        async def client(i: int) -> None:
            phone = "+1666%06d" % i
            for j in range(per_task):
                store.add_callback(CallbackRecord(
                    seq=0, received_at=time.time(), type="incoming_message",
                    fields={"type": "incoming_message", "phone_number": phone, "message": "bench"},
                    parsed={"phone_number": phone, "body": f"bench {j}", "carrier_name": "Bench"},
                    phones=(phone,), peer="127.0.0.1", app="Bench", held=True))
                await store.sync()

        t = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(tasks)))
        return per_task * tasks / (time.perf_counter() - t)

    rate = asyncio.run(run_ingest())
    rows[f"durable ingest ({ingest:,}, {tasks} tasks)"] = f"{rate:,.0f} records/s"
    rows["RSS after ingest"] = f"{rss_mb():.0f} MB"
    t = time.perf_counter()
    store.close()
    rows["close()"] = f"{time.perf_counter() - t:.2f} s"
    return rows


CRASH_WITH_FULL_LIVE = """
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from data import CallbackRecord, HistoryStore
store = HistoryStore.open(sys.argv[2], progress=lambda line: None)
while store.stats().live_records < store.segment_records - 1:
    phone = "+1777%06d" % (store.stats().live_records % 50_000)
    store.add_callback(CallbackRecord(
        seq=0, received_at=time.time(), type="incoming_message",
        fields={"type": "incoming_message", "phone_number": phone, "message": "crash"},
        parsed={"phone_number": phone, "body": "before the crash", "carrier_name": "Bench"},
        phones=(phone,), peer="127.0.0.1", app="Bench", held=True))
    if store.stats().live_records % 5_000 == 0:
        store.sync_blocking()
store.sync_blocking()
os.kill(os.getpid(), signal.SIGKILL)
"""

OPEN_ONLY = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
t = time.perf_counter()
from data import HistoryStore
store = HistoryStore.open(sys.argv[2], progress=lambda line: None)
took = time.perf_counter() - t
rss = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")][0] / 1024
live = store.stats().live_records
store.close()
print(json.dumps({"open after a crash with a full live segment": f"{took:.2f} s ({live:,} replayed)",
                  "  RSS after that open": f"{rss:.0f} MB"}))
"""


def open_after_crash(data_dir: Path) -> dict[str, str]:
    """Fill the live segment, kill -9 the writer, then open in a fresh process (import
    included): what a crash-recovery replay costs, at most one live segment."""
    subprocess.run([sys.executable, "-c", CRASH_WITH_FULL_LIVE, str(ROOT), str(data_dir)], check=False)
    out = subprocess.run([sys.executable, "-c", OPEN_ONLY, str(ROOT), str(data_dir)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def headless_ready(data_dir: Path) -> dict[str, str]:
    """`run.py --headless` from spawn to the first 200 on a posted callback, and its RSS."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "run.py", "--headless", "--port", "0", "--data-dir", str(data_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        seen = b""
        while not (m := URL_LINE.search(seen)):
            chunk = proc.stdout.readline()
            if not chunk:
                raise RuntimeError("run.py --headless exited before serving")
            seen += chunk
        url = m.group(1).decode()
        body = b"type=delivery_report&api_key=bench&message_id=ready&status=2"
        while True:
            try:
                with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.005)
        ready = time.perf_counter() - t
        rss = rss_mb(str(proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return {"headless: start to first 200": f"{ready:.2f} s", "headless: RSS then": f"{rss:.0f} MB"}


def _number(text: str) -> float | None:
    m = re.match(r"([\d,.]+)", text)
    return float(m.group(1).replace(",", "")) if m else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--base", default="/tmp/hist", help="history N lives in {base}{N/1e6}m")
    ap.add_argument("--one", type=Path, help="measure this one history and print JSON")
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--ingest", type=int, default=50_000)
    ap.add_argument("--query", default="refund coupon")
    ap.add_argument("--crash", action="store_true",
                    help="also: fill the live segment, kill -9, and time the open that replays it")
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(measure_one(args.one, args.ingest, args.tasks, args.query)))
        return
    columns: list[tuple[str, dict[str, str]]] = []
    for n in args.records:
        label = f"{n / 1e6:g}m"
        data_dir = Path(f"{args.base}{label}")
        if not data_dir.exists():
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_history.py"),
                            "--dir", str(data_dir), "--records", str(n)], check=True)
        rows = headless_ready(data_dir)
        out = subprocess.run([sys.executable, __file__, "--one", str(data_dir), "--ingest", str(args.ingest),
                              "--tasks", str(args.tasks), "--query", args.query],
                             capture_output=True, text=True, check=True).stdout
        rows.update(json.loads(out.strip().splitlines()[-1]))
        if args.crash:
            rows.update(open_after_crash(data_dir))
        columns.append((label, rows))
        print(f"measured {label}", file=sys.stderr)
    keys = list(columns[0][1])
    width = max(map(len, keys))
    head = f"{'':<{width}}  " + "  ".join(f"{label:>22}" for label, _ in columns)
    if len(columns) > 1:
        head += f"  {columns[-1][0] + ' / ' + columns[0][0]:>10}"
    print(head)
    for k in keys:
        line = f"{k:<{width}}  " + "  ".join(f"{rows.get(k, ''):>22}" for _, rows in columns)
        if len(columns) > 1:
            a, b = _number(columns[0][1].get(k, "")), _number(columns[-1][1].get(k, ""))
            line += f"  {b / a:>9.2f}x" if a and b is not None and "/" not in columns[0][1][k] else ""
        print(line)


if __name__ == "__main__":
    main()
