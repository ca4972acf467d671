"""The on-disk index (index.sqlite3): reopening reads it instead of the segments, it matches
a rebuild from the segments alone, a failed or damaged one costs time, never records, and a
history written by the previous version upgrades in place."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from data import CallbackRecord, HistoryStore, OutboundRecord
from data import catalog as catalog_module
from data import opening as opening_module
from data import store as store_module
from tests.test_store import T0, dr, event, incoming, response

REPO = Path(__file__).resolve().parent.parent
PREVIOUS_FORMAT = "a9315e6"
"""The last commit whose store wrote sidecars (seg-NNNNNN.idx) and kept every index in memory."""
CATALOG_V2 = "636bed4"
"""The last commit whose index.sqlite3 is of version 2 (contacts without their newest entry)."""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "history"


def mixed_history(store: HistoryStore, rounds: int, seed: int = 5) -> None:
    """Texts, answers (some much later, to callbacks in older segments), delivery reports
    whose message ids come back with other states, sessions closing, subscriptions with
    tags, outbound sends, blacklisting: what the index must carry besides appended records."""
    rng = random.Random(seed)
    phones = [f"+1555010{i}" for i in range(6)]
    held: list[CallbackRecord] = []
    subs: list[CallbackRecord] = []
    for i in range(rounds):
        at = T0 + i
        roll = rng.random()
        phone = rng.choice(phones)
        if roll < 0.25:
            held.append(store.add_callback(incoming(phone, f"text {i}", at=at)))
        elif roll < 0.4 and held:
            cb = held.pop(rng.randrange(len(held)))  # often from an older segment
            store.add_response(response(cb, f"answer {i}", close_session=rng.random() < 0.3))
        elif roll < 0.6:
            status = rng.choice(["sent", "pending", "delivered", "failed"])
            store.add_callback(dr(f"m{rng.randrange(12)}", status, rng.random() < 0.4))
        elif roll < 0.67:
            store.add_callback(event("session_closed", phone, at=at))
        elif roll < 0.74:
            subs.append(store.add_callback(event("subscription_created", phone, at=at)))
        elif roll < 0.8 and subs:
            store.add_response(response(subs.pop(0), tags=["vip", f"t{i}"]))
        elif roll < 0.87:
            store.add_outbound(OutboundRecord(0, at, phone, f"send {i}", (f"m{rng.randrange(12)}",), ""))
        elif roll < 0.93:
            store.add_callback(event(rng.choice(["phone_blacklisted", "phone_unblacklisted", "auto_reply_loop"]), phone, at=at))
        else:
            store.add_callback(event("subscription_canceled", phone, at=at))


def view(store: HistoryStore) -> tuple:
    """Everything a console can read back, through the public API."""
    contacts = store.contacts(limit=10_000)
    seqs = range(1, store.stats().callbacks + store.stats().outbound + 2)
    st = store.stats()
    return (
        (st.callbacks, st.responses, st.outbound, st.phones),  # a clean close may add a segment
        contacts,
        {c.phone: store.contact(c.phone) for c in contacts},
        {c.phone: store.thread(c.phone, limit=10_000) for c in contacts},
        {c.phone: store.thread(c.phone, limit=3) for c in contacts},
        store.recent_callbacks(10_000),
        store.recent_callbacks(5),
        [(store.callback(s), store.outbound(s), store.response_for(s)) for s in seqs],
    )


def export(store: HistoryStore) -> str:
    out = io.StringIO()
    store.export_jsonl(out)
    return out.getvalue()


def from_segments_alone(data_dir: Path) -> tuple:
    """What the segment files alone give (the index built afresh): the ground truth."""
    scratch = data_dir.parent / "scratch"
    shutil.copytree(data_dir, scratch, ignore=shutil.ignore_patterns("index.sqlite3*", ".lock"))
    store = HistoryStore.open(scratch, segment_records=7, progress=lambda line: None)
    try:
        return view(store)
    finally:
        store.close()
        shutil.rmtree(scratch)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_reopening_reads_the_index_and_matches_the_segments(data_dir, seed):
    store = HistoryStore.open(data_dir, segment_records=7)
    mixed_history(store, 7 * 12 + 3, seed=seed)
    live = view(store)
    store.close()
    assert (data_dir / "index.sqlite3").exists()
    store = HistoryStore.open(data_dir, segment_records=7)
    assert store.notices == []
    assert store._ix.covered == 12  # every closed segment read from the index, none replayed
    assert view(store) == live
    mixed_history(store, 20, seed=seed + 100)  # and it goes on from there
    live = view(store)
    store.close()
    assert from_segments_alone(data_dir) == live


def test_a_filing_that_fails_is_done_again_and_loses_nothing(data_dir, monkeypatch):
    """The catalog cannot be written for a while (the failure is planted: a disk that fails
    only for the index cannot be made on demand): reads stay right from memory, the next
    rotation files what is owed, and a reopen gives the same history."""
    real = catalog_module.Catalog.file
    failures: list[int] = []

    def fail_twice(self, filing):
        if filing.no in (2, 3) and filing.no not in failures:
            failures.append(filing.no)
            raise OSError(28, "No space left on device")
        return real(self, filing)

    monkeypatch.setattr(catalog_module.Catalog, "file", fail_twice)
    store = HistoryStore.open(data_dir, segment_records=7)
    for n in range(6):
        mixed_history(store, 7, seed=n)
        store._filings.join()
    live = view(store)
    store.close()
    assert failures == [2, 3]
    store = HistoryStore.open(data_dir, segment_records=7)
    assert store.notices == [] and view(store) == live
    store.close()


def test_a_damaged_index_is_moved_aside_and_rebuilt(data_dir):
    store = HistoryStore.open(data_dir, segment_records=7)
    mixed_history(store, 40)
    live = view(store)
    store.close()
    (data_dir / "index.sqlite3").write_bytes(b"garbage" * 1000)
    store = HistoryStore.open(data_dir, segment_records=7, progress=lambda line: None)
    assert any("index.sqlite3 was damaged" in n for n in store.notices)
    assert any(name.startswith("index.sqlite3.corrupt-") for name in os.listdir(data_dir))
    assert view(store) == live
    store.close()


def test_a_closed_segment_that_lost_records_is_named_with_the_count(data_dir):
    store = HistoryStore.open(data_dir, segment_records=7)
    mixed_history(store, 40)
    store.close()
    os.unlink(data_dir / "seg-000002.jsonl")
    store = HistoryStore.open(data_dir, segment_records=7, progress=lambda line: None)
    assert store.notices == ["segment seg-000002.jsonl is missing: 7 records lost; rebuilding the index"]
    assert store.stats().callbacks + store.stats().responses + store.stats().outbound == 40 - 7
    store.close()


def test_a_closed_segment_cut_short_is_noticed_and_the_index_rebuilt(data_dir):
    store = HistoryStore.open(data_dir, segment_records=7)
    mixed_history(store, 40)
    store.close()
    seg = data_dir / "seg-000003.jsonl"
    lines = seg.read_bytes().splitlines(keepends=True)
    seg.write_bytes(b"".join(lines[:-2]))
    store = HistoryStore.open(data_dir, segment_records=7, progress=lambda line: None)
    assert len(store.notices) == 1 and "seg-000003.jsonl changed size" in store.notices[0]
    assert view(store) == from_segments_alone(data_dir)
    store.close()


def test_open_files_only_the_segments_the_index_lacks(data_dir):
    """A crash after a rotation but before its filing committed: the index is as it was one
    segment earlier. open() files that one segment (and replays the live one), not the
    whole history."""
    store = HistoryStore.open(data_dir, segment_records=7)
    mixed_history(store, 7 * 4 + 2)
    store.close()
    earlier = (data_dir / "index.sqlite3").read_bytes()  # closed: one file, WAL checkpointed
    store = HistoryStore.open(data_dir, segment_records=7)
    mixed_history(store, 7, seed=9)
    live = view(store)
    store.close()
    (data_dir / "index.sqlite3").write_bytes(earlier)
    lines: list[str] = []
    store = HistoryStore.open(data_dir, segment_records=7, progress=lines.append)
    assert lines == [] and store.notices == []
    assert view(store) == live
    store.close()


# ---- upgrade from the previous version -------------------------------------------------------

WRITER = """
import sys
sys.path.insert(0, sys.argv[1])
from data import CallbackRecord, HistoryStore, OutboundRecord, ResponseRecord
store = HistoryStore.open(sys.argv[2], segment_records=5)
T0 = 1_700_000_000.0
def text(phone, body, at):
    return store.add_callback(CallbackRecord(
        0, at, "incoming_message",
        {"type": "incoming_message", "phone_number": phone, "message": body},
        {"phone_number": phone, "body": body, "carrier_name": "Acme"}, (), (phone,), "10.0.0.1", "Demo", True))
for i in range(12):
    phone = ("15557000801", "5557000801", "+1 (555) 700-0801")[i % 3]
    cb = text(phone, f"text {i} \\u202e from {phone}", T0 + i)
    store.add_response(ResponseRecord(cb.seq, T0 + i + 0.5, 200, f"re {i}", "text/plain", "operator",
                                      "answered", 5.0, phone, {"reply": f"re {i}"}))
    text("5550000009", f"other {i}", T0 + i + 0.2)
store.add_outbound(OutboundRecord(0, T0 + 20, "15557000801", "sent", ("m1",), ""))
store.add_callback(CallbackRecord(0, T0 + 21, "delivery_report", {"type": "delivery_report"},
                   {"message_id": "m1", "status_name": "delivered", "final": True}, (), (), "", "", False))
store.close()
"""


def previous_version_history(tmp_path: Path, commit: str = PREVIOUS_FORMAT) -> Path:
    """A history written by the code of `commit` (in tmp_path/previous), in a subprocess."""
    if not (REPO / ".git").exists():
        pytest.skip("needs the git checkout to get the previous version")
    old = tmp_path / "previous"
    old.mkdir()
    got = subprocess.run(["git", "-C", str(REPO), "archive", commit, "data"], capture_output=True)
    if got.returncode != 0:
        pytest.skip(f"this checkout lacks commit {commit} (a shallow clone?)")
    archive = got.stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    history = tmp_path / "history"
    subprocess.run([sys.executable, "-c", WRITER, str(old), str(history)], check=True, timeout=60)
    if commit == PREVIOUS_FORMAT:
        assert sorted(p.name for p in history.glob("seg-*.idx"))  # the old format, sidecars and all
    return history


def old_export(tmp_path: Path, history: Path) -> str:
    """The history exported by the code in tmp_path/previous."""
    return subprocess.run(
        [sys.executable, "-c", "import sys, io; sys.path.insert(0, sys.argv[1]);"
         "from data.store import export_on_disk; export_on_disk(__import__('pathlib').Path(sys.argv[2]), sys.stdout)",
         str(tmp_path / "previous"), str(history)],
        capture_output=True, text=True, check=True).stdout


def test_a_history_written_by_the_previous_version_upgrades_in_place(tmp_path):
    history = previous_version_history(tmp_path)
    before = {p.name: p.read_bytes() for p in history.glob("seg-*.jsonl")}
    before_export = old_export(tmp_path, history)
    progress: list[str] = []
    store = HistoryStore.open(history, segment_records=5, progress=progress.append)
    assert progress[0].startswith("upgrading history in ") and progress[-1].endswith("segments indexed")
    assert store.notices == []
    # the same records; only the bidi override is now written as an escape (safe to print)
    new_export = export(store)
    assert [json.loads(line) for line in new_export.splitlines()] == [json.loads(line) for line in before_export.splitlines()]
    assert "\u202e" in before_export and "\u202e" not in new_export and "\\u202e" in new_export
    # one texter, whichever way the number was written when the old version filed it
    texter = store.thread("5557000801", limit=100)
    assert [e.text for e in texter if e.direction == "in"] == [
        f"text {i} \u202e from {('15557000801', '5557000801', '+1 (555) 700-0801')[i % 3]}" for i in range(12)]
    assert store.thread("+1 (555) 700-0801", limit=100) == texter == store.thread("15557000801", limit=100)
    assert texter[-1].delivery == ("delivered",) and texter[-1].final
    # the outbound send at T0 + 20 is the newest activity
    assert [c.phone for c in store.contacts()] == ["5557000801", "5550000009"]
    assert (store.contact("5557000801").last_text, store.contact("5550000009").last_text) == ("sent", "other 11")
    assert store.contact("15557000801").messages_in == 12 and store.contact("5557000801").messages_out == 13
    store.close()
    assert not list(history.glob("seg-*.idx"))  # the sidecars are gone, the segments untouched
    assert {p.name: p.read_bytes() for p in history.glob("seg-*.jsonl")} == before
    progress.clear()
    store = HistoryStore.open(history, segment_records=5, progress=progress.append)
    assert progress == [] and store.notices == [] and export(store) == new_export
    assert json.loads(before_export.splitlines()[0])["kind"] == "callback"
    store.close()


def test_an_index_of_the_previous_version_is_rebuilt_with_the_phone_list_columns(tmp_path):
    history = previous_version_history(tmp_path, CATALOG_V2)
    before_export = old_export(tmp_path, history)
    before = {p.name: p.read_bytes() for p in history.glob("seg-*.jsonl")}
    progress: list[str] = []
    store = HistoryStore.open(history, segment_records=5, progress=progress.append)
    assert progress[0] == f"the index in {history} is of format 2; rebuilding it"
    assert progress[-1].endswith("segments indexed") and store.notices == []
    assert export(store) == before_export
    texter = store.contact("5557000801")
    assert (texter.last_text, texter.last_dir, texter.last_at) == ("sent", "out", T0 + 20)
    assert texter.messages_in == 12 and texter.missed == 0
    assert [c.phone for c in store.contacts()] == ["5557000801", "5550000009"]
    store.close()
    assert {p.name: p.read_bytes() for p in history.glob("seg-*.jsonl")} == before
    progress.clear()
    store = HistoryStore.open(history, segment_records=5, progress=progress.append)
    assert progress == [] and store.contact("5550000009").last_text == "other 11"
    store.close()


@pytest.mark.parametrize("reopen", [False, True])
def test_a_long_thread_is_read_a_page_at_a_time_back_to_its_start(data_dir, reopen):
    store = HistoryStore.open(data_dir, segment_records=7)
    texter, other = "+15550201", "+15550202"
    for i in range(60):
        cb = store.add_callback(incoming(texter, f"text {i}", at=T0 + i))
        store.add_callback(incoming(other, f"noise {i}", at=T0 + i))
        if i % 3 == 0:
            store.add_response(response(cb, f"answer {i}"))
    if reopen:
        store.close()
        store = HistoryStore.open(data_dir, segment_records=7)
    whole = store.thread(texter, limit=1_000)
    assert len(whole) == 80
    pages, before = [], 0
    while True:
        page = store.thread_page(texter, limit=9, before=before)
        pages.append(page)
        assert len(page.entries) == (9 if page.more else 80 % 9)
        if not page.more:
            break
        before = page.before
    assert [e for page in reversed(pages) for e in page.entries] == whole
    assert pages[0].entries == whole[-9:] and pages[-1].before == 0
    assert [e.text for e in pages[-1].entries][:2] == ["text 0", "answer 0"]
    assert store.thread_page(texter, limit=1_000).more is False
    store.close()


def test_a_clean_close_files_a_big_live_segment_so_the_next_open_replays_nothing(data_dir, monkeypatch):
    monkeypatch.setattr(store_module, "CLOSE_AT", 20)
    store = HistoryStore.open(data_dir, segment_records=1_000)
    for _ in range(3):  # a small live segment stays live: no new segment per restart
        store.add_callback(incoming("+15550301", "short", at=T0))
        store.close()
        store = HistoryStore.open(data_dir, segment_records=1_000)
    assert store.stats().segments == 1
    mixed_history(store, 60)
    before = view(store)
    store.close()
    # the live segment was closed and indexed; the new live one is empty
    sizes = {p.name: p.stat().st_size for p in sorted(data_dir.glob("seg-*.jsonl"))}
    assert list(sizes) == ["seg-000001.jsonl", "seg-000002.jsonl"] and sizes["seg-000002.jsonl"] == 0
    loaded: list[str] = []
    real = opening_module.JournalStorage.__init__

    def counting(self, path, **kwargs):
        loaded.append(Path(path).name)
        return real(self, path, **kwargs)

    def replaying(path, *args, **kwargs):
        loaded.append(f"replayed {Path(path).name}")
        return real_load(path, *args, **kwargs)

    real_load = opening_module.load_journal
    monkeypatch.setattr(opening_module.JournalStorage, "__init__", counting)
    monkeypatch.setattr(opening_module, "load_journal", replaying)
    progress: list[str] = []
    store = HistoryStore.open(data_dir, segment_records=1_000, progress=progress.append)
    # only the (empty) live segment is opened; no closed one is replayed
    assert loaded == ["seg-000002.jsonl"] and progress == [] and store.notices == []
    assert view(store) == before and store.stats().segments == 2
    store.close()
