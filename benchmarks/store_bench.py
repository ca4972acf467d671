"""Measure HistoryStore at several history sizes, side by side, with the growth ratio.

    python benchmarks/store_bench.py --records 1000000 4000000 20000000 --base /tmp/hist

Each size N uses the history in `{base}{N in millions}m` (e.g. /tmp/hist20m), building it
with make_history.py first if it is missing (about 45 s per million records here). Every
size is measured in a fresh process: open() time and RSS, `run.py --headless` start to the
first 200 on a posted callback (and its RSS), thread(phone), contacts(500),
recent_callbacks(200), the first search hit, and durable ingest (add_callback + await
sync() from 64 tasks: group commit). The ingest phase appends `--ingest` records to each
history; RSS after it is reported too.

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
    times = []
    for p in phones:
        t = time.perf_counter()
        store.thread(p)
        times.append(time.perf_counter() - t)
    times.sort()
    rows["thread(phone) median / max"] = f"{_ms(times[len(times) // 2])} / {_ms(times[-1])}"
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
