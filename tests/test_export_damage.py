"""`run.py export` on damaged, read-only and busy histories: damage is never silent (a notice
names it and the exit code is 1), every exported line is valid JSON, safe in a terminal, and
a file descriptor shortage is a pause, not a broken store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from data import HistoryStore
from tests.test_store import T0, incoming

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0


def run_export(data_dir: Path) -> tuple[int, list[str], list[str]]:
    """(exit code, stdout lines, stderr lines) of the real command."""
    done = subprocess.run([sys.executable, "run.py", "export", "--data-dir", str(data_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout.splitlines(), done.stderr.splitlines()


def history(data_dir: Path, n: int, segment_records: int = 10, bodies: list[str] | None = None) -> None:
    store = HistoryStore.open(data_dir, segment_records=segment_records)
    for i in range(n):
        body = bodies[i % len(bodies)] if bodies else f"text {i:04d}"
        store.add_callback(incoming("5550001234", body, at=T0 + i))
    store.close()


def test_a_clean_history_exports_everything_with_exit_0(tmp_path):
    history(tmp_path / "h", 35)
    code, out, err = run_export(tmp_path / "h")
    assert code == 0 and err == ["exported 35 records"] and len(out) == 35


def test_a_damaged_line_in_a_closed_segment_is_named_and_exit_1(tmp_path):
    data_dir = tmp_path / "h"
    history(data_dir, 35)
    seg = data_dir / "seg-000002.jsonl"
    raw = seg.read_bytes()
    at = raw.index(b"text 0013")
    seg.write_bytes(raw[:at] + b"\x00\xff\x01" + raw[at + 3:])  # same size: the index cannot tell
    code, out, err = run_export(data_dir)
    assert code == 1
    assert len(out) == 34 and all(isinstance(json.loads(line), dict) for line in out)
    assert "text 0013" not in "\n".join(out)
    assert any("seg-000002.jsonl" in line and "1 damaged record line" in line for line in err)
    assert err[-1] == "exported 34 records"


def test_a_deleted_closed_segment_is_named_with_the_records_lost(tmp_path):
    data_dir = tmp_path / "h"
    history(data_dir, 35)
    os.unlink(data_dir / "seg-000002.jsonl")
    code, out, err = run_export(data_dir)
    assert code == 1 and len(out) == 25
    assert "switchboard: segment seg-000002.jsonl is missing: 10 records lost; rebuilding the index" in err


def test_a_closed_segment_cut_mid_line_is_damage_not_a_torn_write(tmp_path):
    data_dir = tmp_path / "h"
    history(data_dir, 35)
    seg = data_dir / "seg-000001.jsonl"
    seg.write_bytes(seg.read_bytes()[:-40])
    code, out, err = run_export(data_dir)
    assert code == 1 and len(out) == 34
    assert not any("torn" in line for line in err), err
    assert any("seg-000001.jsonl changed size" in line for line in err)
    assert any("seg-000001.jsonl had 1 damaged line(s)" in line for line in err)
    assert any(name.startswith("seg-000001.jsonl.corrupt-") for name in os.listdir(data_dir))


def test_a_damaged_line_in_the_live_segment_is_reported_by_export(tmp_path):
    data_dir = tmp_path / "h"
    history(data_dir, 35)
    seg = data_dir / "seg-000004.jsonl"  # the live one
    lines = seg.read_bytes().splitlines(keepends=True)
    seg.write_bytes(b"".join(lines[:2] + [b"{garbage\n"] + lines[2:]))
    code, out, err = run_export(data_dir)
    assert code == 1 and len(out) == 35
    assert any("seg-000004.jsonl had 1 damaged line(s)" in line for line in err)


@pytest.mark.skipif(IS_ROOT, reason="root reads and writes a read-only directory anyway")
def test_export_reads_a_read_only_directory(tmp_path):
    data_dir = tmp_path / "h"
    history(data_dir, 35)
    os.chmod(data_dir, 0o555)
    try:
        code, out, err = run_export(data_dir)
    finally:
        os.chmod(data_dir, 0o755)
    assert code == 0 and len(out) == 35 and "not writable" in err[0] and err[-1] == "exported 35 records"


def test_export_reads_a_history_it_cannot_open_for_writing(tmp_path):
    """As on a full disk or a read-only mount: the store will not open, the files are there."""
    data_dir = tmp_path / "h"
    history(data_dir, 35)
    (data_dir / ".probe").mkdir()  # open()'s write probe fails, as on a full disk
    code, out, err = run_export(data_dir)
    assert code == 0 and len(out) == 35 and "exporting what is on disk" in err[0]


def test_exported_text_cannot_control_the_terminal(tmp_path):
    hostile = ["\u202eevil\u202c", "a\u2028b\u2029c", "zero\u200bwidth\u2066x\u2069", "c1\u0085\u009b2J", "esc\x1b[2J"]
    data_dir = tmp_path / "h"
    history(data_dir, 15, bodies=hostile)
    code, out, _err = run_export(data_dir)
    assert code == 0 and len(out) == 15
    text = "\n".join(out)
    for ch in "\u202e\u202c\u2028\u2029\u200b\u2066\u2069\u0085\u009b\x1b":
        assert ch not in text
    assert [json.loads(line)["parsed"]["body"] for line in out] == [hostile[i % 5] for i in range(15)]


EMFILE_SCRIPT = textwrap.dedent("""
    import os, resource, sys
    sys.path.insert(0, sys.argv[1])
    from data import CallbackRecord, HistoryStore, StoreError
    store = HistoryStore.open(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    hog = []
    try:
        while True:
            hog.append(os.dup(0))
    except OSError:
        pass
    rec = CallbackRecord(0, 1.0, "incoming_message", {}, {"body": "kept"}, (), ("5550001234",))
    store.add_callback(rec)
    try:
        store.sync_blocking()
        print("synced with no fd to spare")
    except StoreError as exc:
        print("refused:", exc)
    for fd in hog:
        os.close(fd)
    store.sync_blocking()
    store.add_callback(rec)
    store.close()
    print("recovered")
""")


def test_running_out_of_file_descriptors_is_retryable(tmp_path):
    data_dir = tmp_path / "h"
    done = subprocess.run([sys.executable, "-c", EMFILE_SCRIPT, str(ROOT), str(data_dir)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    first, last = done.stdout.splitlines()
    assert first == "refused: cannot write history in %s: Too many open files" % data_dir
    assert last == "recovered"
    store = HistoryStore.open(data_dir)
    assert store.stats().callbacks == 2
    store.close()
