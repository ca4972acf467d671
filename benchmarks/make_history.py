"""Build a realistic history through the public HistoryStore API.

    python benchmarks/make_history.py --dir DIR --records 1000000

Mix: incoming messages answered by the operator / fallback / rules, delivery reports for
outbound sends, subscriptions, session closes. Uses `sync_blocking()` every 20k records
instead of a sync per record (the per-record durability cost is measured by store_bench).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data import CallbackRecord, HistoryStore, OutboundRecord, ResponseRecord  # noqa: E402

WORDS = (
    "hello hi yes no stop start help price order when where thanks ok please call me later "
    "tomorrow today delivery status refund coupon store open close weekend info more"
).split()
CARRIERS = ["Verizon", "AT&T", "T-Mobile", "US Cellular", "Cricket"]


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 18))).capitalize()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--phones", type=int, default=50_000)
    ap.add_argument("--segment-records", type=int, default=50_000)
    args = ap.parse_args()

    rng = random.Random(42)
    store = HistoryStore.open(args.dir, segment_records=args.segment_records)
    start = time.perf_counter()
    t = time.time() - args.records * 2.0
    n0 = sum(getattr(store.stats(), k) for k in ("callbacks", "responses", "outbound"))
    n = 0
    mid = 10_000_000
    outstanding: list[str] = []
    last_sync = 0

    def count() -> int:
        s = store.stats()
        return s.callbacks + s.responses + s.outbound - n0

    while (n := count()) < args.records:
        t += rng.random() * 4
        phone = "+1555%07d" % rng.randrange(args.phones)
        roll = rng.random()
        if roll < 0.55:
            body = sentence(rng)
            cb = store.add_callback(CallbackRecord(
                seq=0, received_at=t, type="incoming_message",
                fields={"type": "incoming_message", "api_key": "demo", "phone_number": phone,
                        "message": body, "carrier": "3", "sent_at": "2025-01-01 10:00:00"},
                parsed={"phone_number": phone, "body": body, "sent_at": "2025-01-01T10:00:00Z",
                        "sent_at_raw": "2025-01-01 10:00:00", "auto_subscribe": None,
                        "auto_responded": False, "carrier_id": 3,
                        "carrier_name": rng.choice(CARRIERS)},
                phones=(phone,), peer="203.0.113.9", app="Demo", held=True))
            outcome = rng.random()
            if outcome < 0.8:
                reply, by, oc = sentence(rng), "operator", "answered"
            elif outcome < 0.95:
                reply, by, oc = "We will get back to you.", "fallback", "timed_out"
            else:
                reply, by, oc = "", "fallback", "caller_gone"
            decision = {"reply": reply} if reply else {}
            if rng.random() < 0.05:
                decision["close_session"] = True
            store.add_response(ResponseRecord(
                callback_seq=cb.seq, sent_at=t + 3, status=200 if oc != "caller_gone" else 0,
                body=reply, content_type="text/plain", answered_by=by, outcome=oc,
                latency_ms=rng.random() * 20_000, phone=phone, decision=decision))
        elif roll < 0.65:
            parts = rng.choice((1, 1, 1, 2, 3))
            ids = tuple(str(mid + i) for i in range(parts))
            mid += parts
            store.add_outbound(OutboundRecord(0, t, phone, sentence(rng) * parts, ids))
            outstanding.extend(ids)
        elif roll < 0.90 and outstanding:
            m = outstanding.pop(rng.randrange(len(outstanding)))
            status = rng.choice(((2, "delivered", True), (1, "pending", False), (3, "failed", True)))
            store.add_callback(CallbackRecord(
                seq=0, received_at=t, type="delivery_report",
                fields={"type": "delivery_report", "message_id": m, "status": str(status[0])},
                parsed={"message_id": m, "status": status[0], "status_name": status[1],
                        "final": status[2]},
                phones=(phone,), peer="203.0.113.9", app="Demo"))
        else:
            typ = rng.choice(("subscription_created", "session_closed", "subscription_canceled",
                              "phone_blacklisted", "auto_reply_loop"))
            cb = store.add_callback(CallbackRecord(
                seq=0, received_at=t, type=typ, fields={"type": typ, "phone_number": phone},
                parsed={"phone_number": phone}, phones=(phone,), peer="203.0.113.9", app="Demo",
                held=typ == "subscription_created"))
            if typ == "subscription_created":
                store.add_response(ResponseRecord(
                    cb.seq, t + 1, 200, "vip", "text/plain", "operator", "answered", 900.0, phone,
                    {"tags": ["vip"]}))
        if n - last_sync >= 20_000:
            last_sync = n
            store.sync_blocking()
            el = time.perf_counter() - start
            print(f"\r{n:>9} records  {n / el:,.0f}/s", end="", flush=True)
    store.close()
    el = time.perf_counter() - start
    print(f"\r{n:>9} records in {el:.1f}s ({n / el:,.0f}/s) -> {args.dir}")


if __name__ == "__main__":
    main()
