"""kill -9 during heavy ingest: every record whose sync() completed is there after reopen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from data import HistoryStore

ROOT = Path(__file__).resolve().parent.parent

WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from data import CallbackRecord, HistoryStore, ResponseRecord

    store = HistoryStore.open(Path(sys.argv[1]), segment_records=int(sys.argv[2]))

    async def client(i):
        while True:
            cb = store.add_callback(CallbackRecord(
                seq=0, received_at=time.time(), type="incoming_message",
                fields={"type": "incoming_message"}, parsed={"body": "x" * (i * 7 % 300)},
                phones=("+1555%04d" % i,)))
            store.add_response(ResponseRecord(cb.seq, time.time(), 200, "ok", "text/plain",
                                              "auto", "immediate", 0.1, cb.phones[0], {"reply": "ok"}))
            await store.sync()
            print(cb.seq, flush=True)

    async def main():
        await asyncio.gather(*(client(i) for i in range(32)))

    asyncio.run(main())
    """
)


def test_sigkill_mid_ingest_keeps_every_synced_record(tmp_path):
    data_dir = tmp_path / "history"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(data_dir), "300"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    synced: list[int] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            synced.append(int(line))
            if len(synced) >= 3000:  # several rotations in
                break
        os.kill(proc.pid, signal.SIGKILL)
        rest = proc.stdout.read()
        synced += [int(x) for x in rest.split()]
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert len(synced) >= 3000

    store = HistoryStore.open(data_dir, segment_records=300)
    missing = [seq for seq in synced if store.callback(seq) is None]
    assert missing == []
    assert all(store.response_for(seq) is not None for seq in synced[:: max(1, len(synced) // 200)])
    assert store.stats().segments > 5
    store.add_callback(store.callback(synced[0]))
    store.close()

    # and once more with a torn half line at the end of the live segment
    live = max(data_dir.glob("seg-*.jsonl"))
    with open(live, "ab") as fh:
        fh.write(b'{"t":"records","i":99999,"d":{"kind":"call')
    store = HistoryStore.open(data_dir, segment_records=300)
    assert f"ignored a torn final write in {live.name}" in store.notices
    assert [seq for seq in synced if store.callback(seq) is None] == []
    store.close()
