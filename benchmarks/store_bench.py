"""Measure HistoryStore on an existing history (build one with make_history.py).

    python benchmarks/store_bench.py --dir DIR

Reports open time, RSS after open, thread() latency, search latency, and durable ingest
throughput (add_callback + await sync() from many concurrent tasks: group commit).
Note: the ingest phase appends `--ingest` records to DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data import CallbackRecord, HistoryStore  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--segment-records", type=int, default=50_000)
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--ingest", type=int, default=50_000)
    ap.add_argument("--query", default="refund coupon")
    args = ap.parse_args()
    rows: list[tuple[str, str]] = []

    base_rss = rss_mb()
    t = time.perf_counter()
    store = HistoryStore.open(args.dir, segment_records=args.segment_records)
    open_s = time.perf_counter() - t
    st = store.stats()
    total = st.callbacks + st.responses + st.outbound
    rows.append(("records / phones / segments", f"{total:,} / {st.phones:,} / {st.segments}"))
    rows.append(("open()", f"{open_s:.2f} s"))
    rows.append(("RSS after open (store part)", f"{rss_mb():.0f} MB ({rss_mb() - base_rss:.0f} MB)"))
    if store.notices:
        rows.append(("notices", "; ".join(store.notices)))

    busiest = [c.phone for c in sorted(store._contacts.values(), key=lambda c: -c.messages_in)[:5]]
    rng = random.Random(1)
    phones = busiest + rng.sample(list(store._contacts), min(15, st.phones))
    times = []
    for p in phones:
        t = time.perf_counter()
        store.thread(p)
        times.append(time.perf_counter() - t)
    rows.append(("thread(phone) max / median", f"{max(times) * 1000:.1f} / {sorted(times)[len(times) // 2] * 1000:.1f} ms"
                 f" ({len(store.thread(busiest[0]))} entries on the busiest)"))
    t = time.perf_counter()
    store.contacts()
    rows.append(("contacts(500)", f"{(time.perf_counter() - t) * 1000:.1f} ms"))
    t = time.perf_counter()
    store.recent_callbacks(200)
    rows.append(("recent_callbacks(200)", f"{(time.perf_counter() - t) * 1000:.1f} ms"))

    for query in (args.query, "+15550012", "zzz-no-match"):
        t = time.perf_counter()
        first = None
        hits = 0
        progress = 0
        for p in store.search(query):
            progress += 1
            hits += len(p.hits)
            if first is None and p.hits:
                first = time.perf_counter() - t
        total_s = time.perf_counter() - t
        first_txt = f"{first:.2f} s" if first is not None else "no hits"
        rows.append((f"search {query!r}", f"first hit {first_txt}, all {total_s:.2f} s, {hits} hits, {progress} reports"))

    async def ingest() -> float:
        per_task = args.ingest // args.tasks

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
        await asyncio.gather(*(client(i) for i in range(args.tasks)))
        return per_task * args.tasks / (time.perf_counter() - t)

    rate = asyncio.run(ingest())
    rows.append((f"add_callback+sync, {args.tasks} tasks", f"{rate:,.0f} durable records/s"))
    t = time.perf_counter()
    n = 20_000
    for j in range(n):
        store.add_callback(CallbackRecord(
            seq=0, received_at=time.time(), type="incoming_message",
            fields={"type": "incoming_message", "phone_number": "+1777", "message": "bench"},
            parsed={"phone_number": "+1777", "body": f"bench {j}", "carrier_name": "Bench"},
            phones=("+1777",), peer="127.0.0.1", app="Bench", held=True))
    rows.append(("add_callback alone", f"{(time.perf_counter() - t) / n * 1e6:.1f} µs each"))
    t = time.perf_counter()
    store.close()
    rows.append(("close()", f"{time.perf_counter() - t:.2f} s"))

    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
