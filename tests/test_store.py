"""HistoryStore: round trips, derived contact state, threads, rotation, search, export."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data import (
    CallbackRecord,
    ContactState,
    HistoryStore,
    OutboundRecord,
    ResponseRecord,
    StoreError,
)
from data import commit as commit_module

T0 = 1_700_000_000.0


def incoming(phone: str, body: str, at: float = T0, carrier: str = "Acme") -> CallbackRecord:
    return CallbackRecord(
        seq=0,
        received_at=at,
        type="incoming_message",
        fields={"type": "incoming_message", "phone_number": phone, "message": body, "api_key": "k"},
        parsed={
            "phone_number": phone,
            "body": body,
            "sent_at": "2024-01-01T00:00:00Z",
            "sent_at_raw": "2024-01-01 00:00:00",
            "auto_subscribe": None,
            "auto_responded": False,
            "carrier_id": 7,
            "carrier_name": carrier,
        },
        warnings=("odd field",),
        phones=(phone,),
        peer="10.0.0.1",
        app="Demo",
        held=True,
    )


def event(typ: str, *phones: str, at: float = T0, **parsed) -> CallbackRecord:
    return CallbackRecord(
        seq=0, received_at=at, type=typ, fields={"type": typ}, parsed=parsed, phones=phones
    )


def response(cb: CallbackRecord, reply: str = "", outcome: str = "answered", **decision) -> ResponseRecord:
    d = dict(decision)
    if reply:
        d["reply"] = reply
    return ResponseRecord(
        callback_seq=cb.seq,
        sent_at=cb.received_at + 1,
        status=200,
        body=reply,
        content_type="text/plain",
        answered_by="operator" if outcome == "answered" else "fallback",
        outcome=outcome,  # type: ignore[arg-type]
        latency_ms=12.5,
        phone=cb.phones[0] if cb.phones else "",
        decision=d,
    )


def dr(message_id: str, status_name: str, final: bool | None) -> CallbackRecord:
    return event(
        "delivery_report",
        "+15550001",
        message_id=message_id,
        status=2,
        status_name=status_name,
        final=final,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "history"


def test_round_trip_of_every_record_type(data_dir):
    store = HistoryStore.open(data_dir)
    cb = store.add_callback(incoming("+15550001", "héllo \"there\"\n😀"))
    assert cb.seq == 1
    resp = response(cb, "hi back", close_session=True, tags=["a", "b"])
    store.add_response(resp)
    out = store.add_outbound(OutboundRecord(0, T0 + 5, "+15550001", "news", ("m1", "m2"), ""))
    assert out.seq == 2
    store.close()

    store = HistoryStore.open(data_dir)
    got = store.callback(1)
    assert got == cb
    assert isinstance(got.warnings, tuple) and isinstance(got.phones, tuple)
    assert type(got.fields) is dict and type(got.parsed) is dict
    assert store.response_for(1) == resp
    assert store.outbound(2) == out and isinstance(store.outbound(2).message_ids, tuple)
    assert store.callback(2) is None and store.callback(99) is None
    assert store.response_for(2) is None
    assert store.stats().callbacks == 1 and store.stats().responses == 1 and store.stats().outbound == 1
    assert store.add_callback(incoming("+15550002", "next")).seq == 3
    store.close()


def test_unserialisable_record_is_refused_and_nothing_changes(data_dir):
    store = HistoryStore.open(data_dir)
    bad = event("incoming_message", "+1", body=object())
    with pytest.raises(StoreError):
        store.add_callback(bad)
    assert store.stats().callbacks == 0 and store.contact("+1") is None
    assert store.add_callback(incoming("+1", "ok")).seq == 1
    store.close()
    store = HistoryStore.open(data_dir)
    assert [c.parsed["body"] for c in store.recent_callbacks()] == ["ok"]
    store.close()


def contact_story(store: HistoryStore) -> None:
    a, b = "+15550001", "+15550002"
    c1 = store.add_callback(incoming(a, "hi", at=T0, carrier="Acme"))
    store.add_response(response(c1, "hello"))
    store.add_callback(incoming(b, "yo", at=T0 + 1, carrier="Beta"))
    sub = store.add_callback(event("subscription_created", a, at=T0 + 2))
    store.add_response(response(sub, "", tags=["vip", "news"]))
    store.add_callback(event("session_closed", a, b, at=T0 + 3))
    store.add_callback(event("phone_blacklisted", b, at=T0 + 4))
    store.add_callback(event("auto_reply_loop", b, at=T0 + 5))
    c2 = store.add_callback(incoming(a, "again", at=T0 + 6))
    store.add_response(response(c2, "bye", close_session=True))
    store.add_outbound(OutboundRecord(0, T0 + 7, b, "promo", ("m1",)))
    store.add_outbound(OutboundRecord(0, T0 + 8, b, "refused", ("-2",), "blacklisted"))
    store.add_callback(event("phone_unblacklisted", b, at=T0 + 9))
    store.add_callback(event("subscription_canceled", b, at=T0 + 10))


def expected_contacts() -> list[ContactState]:
    return [
        ContactState(
            phone="15550002", session_open=False, subscribed=False, tags=(), blacklisted=False,
            loop_flagged=True, last_seen=T0 + 10, carrier="Beta", messages_in=1, messages_out=1,
            last_at=T0 + 8, last_text="refused", last_dir="out",
        ),
        ContactState(
            phone="15550001", session_open=False, subscribed=True, tags=("vip", "news"),
            blacklisted=False, loop_flagged=False, last_seen=T0 + 6, carrier="Acme",
            messages_in=2, messages_out=2, last_at=T0 + 7, last_text="bye", last_dir="out",
        ),
    ]


@pytest.mark.parametrize("segment_records", [100_000, 3])
def test_contact_state_derivation_and_reopen(data_dir, segment_records):
    store = HistoryStore.open(data_dir, segment_records=segment_records)
    contact_story(store)
    assert store.contacts() == expected_contacts()
    assert store.contact("+15550001") == expected_contacts()[1]
    assert store.contact("+19999") is None
    store.close()
    store = HistoryStore.open(data_dir, segment_records=segment_records)
    assert store.contacts() == expected_contacts()
    assert store.contacts(limit=1) == expected_contacts()[:1]
    assert store.notices == []
    store.close()


def test_thread_entries_and_delivery_across_parts(data_dir):
    store = HistoryStore.open(data_dir)
    p = "+15550001"
    c1 = store.add_callback(incoming(p, "question", at=T0))
    store.add_response(response(c1, "answer", close_session=True, reprocess=True))
    c2 = store.add_callback(incoming(p, "anyone?", at=T0 + 10))
    store.add_response(response(c2, "", outcome="timed_out"))
    c3 = store.add_callback(incoming(p, "hello?", at=T0 + 20))
    store.add_response(response(c3, "", outcome="caller_gone"))
    c4 = store.add_callback(incoming(p, "silent", at=T0 + 30))
    store.add_response(response(c4, ""))  # no reply, answered: not a thread entry
    out = store.add_outbound(OutboundRecord(0, T0 + 40, p, "long message", ("m1", "m2")))
    store.add_callback(dr("m1", "delivered", True))
    store.add_callback(dr("m2", "pending", False))

    thread = store.thread(p)
    assert [(e.direction, e.who, e.text) for e in thread] == [
        ("in", "texter", "question"),
        ("out", "operator", "answer"),
        ("in", "texter", "anyone?"),
        ("out", "fallback", ""),
        ("in", "texter", "hello?"),
        ("out", "fallback", ""),
        ("in", "texter", "silent"),
        ("out", "outbound", "long message"),
    ]
    assert "closed session" in thread[1].detail and "reprocess" in thread[1].detail
    assert "timed out" in thread[3].detail
    assert "hung up" in thread[5].detail
    last = thread[-1]
    assert last.seq == out.seq and last.message_ids == ("m1", "m2")
    assert last.delivery == ("delivered", "pending") and last.final is False

    store.add_callback(dr("m2", "failed", True))
    store.add_callback(dr("m1", "pending", False))  # late and not final: ignored
    assert store.thread(p)[-1].delivery == ("delivered", "failed")
    assert store.thread(p)[-1].final is True
    assert [e.text for e in store.thread(p, limit=2)] == ["silent", "long message"]
    store.close()
    store = HistoryStore.open(data_dir)
    assert store.thread(p)[-1].delivery == ("delivered", "failed") and store.thread(p)[-1].final
    store.close()


def fill(store: HistoryStore, n: int, phones: int = 5) -> list[CallbackRecord]:
    out = []
    for i in range(n):
        cb = store.add_callback(incoming(f"+1555000{i % phones}", f"Message number {i}", at=T0 + i))
        store.add_response(response(cb, f"Reply {i}"))
        out.append(cb)
    return out


def test_rotation_reopen_and_reads_across_segments(data_dir):
    store = HistoryStore.open(data_dir, segment_records=50)
    cbs = fill(store, 260)
    before_thread = store.thread("+15550003", limit=30)
    assert store.stats().segments == 11
    store.sync_blocking()
    closed = data_dir / "seg-000001.jsonl"
    # a closed segment gives back the space reserved ahead of its writes once complete
    for _ in range(100):
        if closed.read_bytes().endswith(b"\n"):
            break
        time.sleep(0.02)
    assert closed.read_bytes().endswith(b"\n") and b"\0" not in closed.read_bytes()
    assert (data_dir / "seg-000011.jsonl").stat().st_size > len((data_dir / "seg-000011.jsonl").read_bytes().rstrip(b"\0"))
    store.close()
    for name in os.listdir(data_dir):
        if name.endswith(".jsonl"):
            assert (data_dir / name).read_bytes().endswith(b"\n"), name
    names = sorted(os.listdir(data_dir))
    assert "seg-000011.jsonl" in names
    assert "index.sqlite3" in names and not [n for n in names if n.endswith(".idx")]

    store = HistoryStore.open(data_dir, segment_records=50)
    assert store.notices == []
    assert store.stats().callbacks == 260 and store.stats().responses == 260
    assert store.recent_callbacks(120) == cbs[-120:]
    assert store.thread("+15550003", limit=30) == before_thread
    assert len(store.thread("+15550003", limit=1000)) == 2 * 52
    assert store.callback(cbs[3].seq) == cbs[3]
    assert store.response_for(cbs[3].seq).decision == {"reply": "Reply 3"}
    more = fill(store, 30)
    assert store.recent_callbacks(40) == (cbs + more)[-40:]
    store.close()


def test_garbage_in_a_segment_is_moved_aside_and_good_lines_kept(data_dir):
    store = HistoryStore.open(data_dir, segment_records=40)
    fill(store, 50)
    store.close()
    seg = data_dir / "seg-000001.jsonl"
    lines = seg.read_bytes().split(b"\n")
    lines[5] = b"\x00\x00 not json at all"
    seg.write_bytes(b"\n".join(lines))
    store = HistoryStore.open(data_dir, segment_records=40)
    assert any("seg-000001.jsonl" in n and "damaged" in n for n in store.notices)
    aside = [n for n in os.listdir(data_dir) if n.startswith("seg-000001.jsonl.corrupt-")]
    assert len(aside) == 1 and b"not json" in (data_dir / aside[0]).read_bytes()
    stats = store.stats()
    assert stats.callbacks + stats.responses == 99
    assert len(store.recent_callbacks(500)) == stats.callbacks
    buf = io.StringIO()
    assert store.export_jsonl(buf) == 99
    store.close()


def test_torn_final_line_in_live_segment(data_dir):
    store = HistoryStore.open(data_dir, segment_records=1000)
    fill(store, 10)
    store.close()
    with open(data_dir / "seg-000001.jsonl", "ab") as fh:
        fh.write(b'{"t":"records","i":21,"d":{"kind":"callback","se')
    store = HistoryStore.open(data_dir, segment_records=1000)
    assert store.notices == ["ignored a torn final write in seg-000001.jsonl"]
    assert store.stats().callbacks == 10
    assert store.add_callback(incoming("+1", "after")).seq == 11
    store.close()
    store = HistoryStore.open(data_dir, segment_records=1000)
    assert store.notices == [] and store.callback(11).parsed["body"] == "after"
    store.close()


def test_search_across_segments_with_progress(data_dir):
    store = HistoryStore.open(data_dir, segment_records=50)
    fill(store, 200)
    store.add_outbound(OutboundRecord(0, T0 + 999, "+15559999", "Outbound MESSAGE NUMBER 7x"))
    progress = list(store.search("message number 7", batch=60))
    assert progress[-1].done and not any(p.done for p in progress[:-1])
    assert [p.scanned for p in progress] == sorted(p.scanned for p in progress)
    assert progress[-1].scanned == progress[-1].total == 401
    hits = [h for p in progress for h in p.hits]
    assert [h.text for h in hits] == [
        "Outbound MESSAGE NUMBER 7x",
        "Message number 79", "Message number 78", "Message number 77", "Message number 76",
        "Message number 75", "Message number 74", "Message number 73", "Message number 72",
        "Message number 71", "Message number 70", "Message number 7",
    ]
    assert hits[0].kind == "outbound" and hits[1].kind == "callback" and hits[1].seq == 80
    replies = [h for p in store.search("REPLY 19") for h in p.hits]
    assert {h.kind for h in replies} == {"response"} and len(replies) == 11
    by_phone = [h for p in store.search("+15559999") for h in p.hits]
    assert [h.kind for h in by_phone] == ["outbound"]
    assert [h for p in store.search("nothing like this") for h in p.hits] == []
    quoted = store.add_callback(incoming("+1", 'a "quoted" \\ body'))
    assert [h.seq for p in store.search('"QUOTED" \\') for h in p.hits] == [quoted.seq]
    limited = list(store.search("message", limit=5))
    assert sum(len(p.hits) for p in limited) == 5 and limited[-1].done
    store.close()


async def test_search_snapshot_is_usable_from_a_worker_thread(data_dir):
    store = HistoryStore.open(data_dir, segment_records=50)
    fill(store, 120)
    gen = store.search("message number 11")
    fill(store, 100)  # keeps writing and rotating while the worker reads
    hits = await asyncio.to_thread(lambda: [h.text for p in gen for h in p.hits])
    assert hits[0] == "Message number 119" and len(hits) == 11
    store.close()


def test_export_is_oldest_first_with_kind(data_dir):
    store = HistoryStore.open(data_dir, segment_records=7)
    fill(store, 20)
    store.add_outbound(OutboundRecord(0, T0, "+1", "x", ("m",)))
    buf = io.StringIO()
    assert store.export_jsonl(buf) == 41
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [r["kind"] for r in rows[:4]] == ["callback", "response", "callback", "response"]
    assert rows[-1]["kind"] == "outbound" and rows[-1]["message_ids"] == ["m"]
    seqs = [r.get("seq", r.get("callback_seq")) for r in rows]
    assert seqs == sorted(seqs)
    assert set(rows[0]) == {"kind", "seq", "received_at", "type", "fields", "parsed", "warnings",
                            "phones", "peer", "app", "held"}
    store.close()


async def test_group_commit_one_fsync_round_covers_many(data_dir, monkeypatch):
    store = HistoryStore.open(data_dir)
    rounds = 0
    drain = store._commit.drain

    def counting_drain():
        nonlocal rounds
        rounds += 1
        drain()

    monkeypatch.setattr(store._commit, "drain", counting_drain)

    async def client(i: int) -> int:
        seq = 0
        for j in range(20):
            seq = store.add_callback(incoming(f"+1{i}", f"m{j}")).seq
            await store.sync()
        return seq

    await asyncio.gather(*(client(i) for i in range(64)))
    assert rounds < 64 * 20 / 4
    store.close()
    store = HistoryStore.open(data_dir)
    assert store.stats().callbacks == 64 * 20
    store.close()


async def test_sync_returns_only_once_the_records_before_it_are_written(data_dir):
    """Rounds overlap here (each client adds while another's round is under way): a caller
    that arrived during a round must wait for the next one, and no caller may be woken by a
    round that did not write its record."""
    store = HistoryStore.open(data_dir)
    early: list[int] = []

    async def client(i: int) -> None:
        for j in range(10):
            await asyncio.sleep((i * 7 + j * 3) % 10 / 5000)  # arrivals spread over rounds
            seq = store.add_callback(incoming(f"+1{i:03}", f"m{j}")).seq
            await store.sync()
            on_disk = b"".join(p.read_bytes() for p in data_dir.glob("seg-*.jsonl"))
            if f'"seq":{seq},'.encode() not in on_disk:
                early.append(seq)

    await asyncio.gather(*(client(i) for i in range(40)))
    assert early == []
    assert store.stats().callbacks == 400
    store.close()


async def test_write_failure_raises_store_error_then_recovers(data_dir, monkeypatch):
    store = HistoryStore.open(data_dir)
    store.add_callback(incoming("+1", "kept"))
    await store.sync()
    real_pwrite = os.pwrite

    def full(fd, data, offset):
        os.ftruncate(fd, offset)
        real_pwrite(fd, bytes(data[:10]), offset)  # a partial write, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    store.add_callback(incoming("+1", "pending"))
    with pytest.raises(StoreError) as err:
        await store.sync()
    assert "\n" not in str(err.value) and "no space" in str(err.value)
    with pytest.raises(StoreError):
        store.add_callback(incoming("+1", "refused while failing"))
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    monkeypatch.setattr(commit_module, "RETRY_AFTER", 0.0)
    store.add_callback(incoming("+1", "after"))
    await store.sync()
    store.close()
    store = HistoryStore.open(data_dir)
    assert [c.parsed["body"] for c in store.recent_callbacks()] == ["kept", "pending", "after"]
    assert store.notices == []
    store.close()


def test_unwritable_paths_raise_one_line_store_error(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(StoreError) as err:
        HistoryStore.open(a_file)
    assert "\n" not in str(err.value) and "not a directory" in str(err.value)
    with pytest.raises(StoreError):
        HistoryStore.open(a_file / "sub")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_dir_raises_store_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(StoreError) as err:
            HistoryStore.open(ro)
        assert "\n" not in str(err.value) and "not writable" in str(err.value)
    finally:
        ro.chmod(0o755)


def test_second_open_of_the_same_dir_is_refused(data_dir):
    store = HistoryStore.open(data_dir)
    with pytest.raises(StoreError, match="in use"):
        HistoryStore.open(data_dir)
    store.close()
    HistoryStore.open(data_dir).close()


def test_data_package_imports_no_ui_or_server():
    code = (
        "import sys, data, data.store; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'server', 'tui', 'aiohttp')]; "
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.stdout.strip() == "[]"


async def test_flush_soon_puts_records_on_disk_without_anyone_waiting(data_dir):
    store = HistoryStore.open(data_dir)

    def on_disk(text: str) -> bool:
        return any(text.encode() in path.read_bytes() for path in data_dir.rglob("*") if path.is_file())

    try:
        store.add_callback(incoming("+1", "held-one"))
        assert not on_disk("held-one")  # queued only
        for n in range(50):  # a crowd: one round for all of them
            store.add_callback(incoming("+1", f"crowd-{n}"))
            store.flush_soon()
        await asyncio.sleep(commit_module.FLUSH_SOON + 0.3)
        assert on_disk("held-one") and on_disk("crowd-49")
    finally:
        store.close()




@pytest.mark.parametrize("segment_records", [100_000, 2])
def test_the_phone_list_has_missed_texts_and_the_newest_entry_by_activity(data_dir, segment_records):
    store = HistoryStore.open(data_dir, segment_records=segment_records)
    a, b = "+15550001", "+15550002"
    first = store.add_callback(incoming(a, "anyone there?", at=T0))
    store.add_callback(incoming(b, "hello", at=T0 + 1))
    store.add_callback(incoming(b, "hello??", at=T0 + 2))
    # answers to texts in older segments (segment_records=2): the missed rule reads their type
    store.add_response(response(first, "We will get back to you.", outcome="timed_out"))
    sub = store.add_callback(event("subscription_created", a, at=T0 + 3))
    store.add_response(response(sub, outcome="timed_out"))
    store.add_outbound(OutboundRecord(0, T0 + 9, a, "sorry for the wait", ("m1",)))
    for reopened in (False, True):
        got = {c.phone: c for c in store.contacts()}
        assert list(got) == ["15550001", "15550002"], reopened  # the outbound is the newest activity
        assert (got["15550001"].missed, got["15550001"].last_text, got["15550001"].last_dir) == (
            1, "sorry for the wait", "out")
        assert (got["15550002"].missed, got["15550002"].last_text, got["15550002"].last_at) == (0, "hello??", T0 + 2)
        store.close()
        store = HistoryStore.open(data_dir, segment_records=segment_records)
    store.add_callback(incoming(b, "still here", at=T0 + 10))
    assert [c.phone for c in store.contacts(limit=1)] == ["15550002"]
    store.close()
