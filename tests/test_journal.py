"""The journal storage/table against TinyDB's own MemoryStorage: same documents, also after reopen."""

from __future__ import annotations

import json
import random

import pytest
from tinydb import Query, TinyDB
from tinydb.operations import add, delete, increment, set as set_field
from tinydb.storages import MemoryStorage

from data.journal import RESERVE
from data.journal_table import open_journal_db

TABLES = ["_default", "people", "log"]


def snapshot(db: TinyDB) -> dict[str, dict[int, dict]]:
    return {
        name: {doc.doc_id: dict(doc) for doc in db.table(name).all()}
        for name in sorted(db.tables())
    }


def random_doc(rng: random.Random) -> dict:
    doc = {"n": rng.randint(0, 20), "tags": [rng.choice("abc") for _ in range(rng.randint(0, 3))]}
    if rng.random() < 0.5:
        doc["name"] = rng.choice(["ann", "bob", "čeněk", "d\"q", "e\nf", "😀"])
    if rng.random() < 0.3:
        doc["nested"] = {"x": rng.random(), "y": [1, {"z": None}]}
    return doc


def apply_op(rng: random.Random, db: TinyDB, op: str, name: str, arg: dict) -> None:
    table = db.table(name)
    q = Query()
    if op == "insert":
        table.insert(arg["doc"])
    elif op == "insert_multiple":
        table.insert_multiple(arg["docs"])
    elif op == "update_ids":
        table.update(arg["fields"], doc_ids=[i for i in arg["ids"] if table.contains(doc_id=i)])
    elif op == "update_cond":
        table.update(arg["fields"], q.n == arg["n"])
    elif op == "update_op":
        operation = {"inc": increment("n"), "add": add("tags", ["q"]), "del": delete("name"),
                     "set": set_field("n", 99)}[arg["kind"]]
        if arg["kind"] == "del":
            table.update(operation, q.name.exists())
        elif arg["kind"] == "add":
            table.update(operation, q.tags.exists())
        else:
            table.update(operation, q.n >= arg["n"])
    elif op == "remove_ids":
        table.remove(doc_ids=[i for i in arg["ids"] if table.contains(doc_id=i)])
    elif op == "remove_cond":
        table.remove(q.n == arg["n"])
    elif op == "upsert":
        table.upsert(arg["doc"], q.n == arg["doc"]["n"])
    elif op == "truncate":
        table.truncate()
    elif op == "drop":
        db.drop_table(name)


def random_ops(seed: int, count: int):
    rng = random.Random(seed)
    weights = {
        "insert": 30, "insert_multiple": 5, "update_ids": 12, "update_cond": 8, "update_op": 10,
        "remove_ids": 12, "remove_cond": 5, "upsert": 8, "truncate": 1, "drop": 1,
    }
    ops, w = zip(*weights.items())
    for _ in range(count):
        op = rng.choices(ops, w)[0]
        arg = {
            "doc": random_doc(rng),
            "docs": [random_doc(rng) for _ in range(rng.randint(1, 4))],
            "fields": {"n": rng.randint(0, 20), "extra": rng.choice(["x", "y", "ž"])},
            "ids": sorted({rng.randint(1, 60) for _ in range(rng.randint(1, 3))}),
            "n": rng.randint(0, 20),
            "kind": rng.choice(["inc", "add", "del", "set"]),
        }
        yield op, rng.choice(TABLES), arg


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_differential_against_memory_storage(tmp_path, seed):
    path = tmp_path / "db.jsonl"
    mine = open_journal_db(path)
    ref = TinyDB(storage=MemoryStorage)
    rng = random.Random(seed)
    for i, (op, name, arg) in enumerate(random_ops(seed, 1200)):
        apply_op(rng, mine, op, name, json.loads(json.dumps(arg)))
        apply_op(rng, ref, op, name, json.loads(json.dumps(arg)))
        if i % 100 == 0:
            assert snapshot(mine) == snapshot(ref)
        if i % 400 == 399:  # reopen mid-way, keep going on the reopened journal
            mine.close()
            mine = open_journal_db(path)
            assert snapshot(mine) == snapshot(ref)
            # next ids follow the max id on reopen in both; make the reference agree
            for t in ref.tables():
                ref.table(t)._next_id = None
    assert snapshot(mine) == snapshot(ref)
    mine.close()
    reopened = open_journal_db(path)
    assert snapshot(reopened) == snapshot(ref)
    assert sum(len(t) for t in snapshot(ref).values()) > 0
    reopened.close()


def test_only_touched_documents_are_journaled(tmp_path):
    path = tmp_path / "db.jsonl"
    db = open_journal_db(path)
    table = db.table("t")
    table.insert_multiple({"n": i} for i in range(100))
    db.storage.flush()
    before = path.read_bytes().rstrip(b"\0")  # without the reserved NUL tail
    table.update({"flag": True}, Query().n == 7)
    db.storage.flush()
    added = path.read_bytes().rstrip(b"\0")[len(before):].decode().splitlines()
    assert added == ['{"t":"t","i":8,"d":{"n":7,"flag":true}}']
    db.close()


def test_unserialisable_document_changes_nothing(tmp_path):
    path = tmp_path / "db.jsonl"
    db = open_journal_db(path)
    table = db.table("t")
    table.insert({"n": 1})
    with pytest.raises(TypeError):
        table.insert({"n": object()})
    with pytest.raises(TypeError):
        table.update({"bad": {1, 2}}, doc_ids=[1])
    with pytest.raises(TypeError):
        table.insert_multiple([{"n": 2}, {"n": object()}])
    assert [dict(d) for d in table.all()] == [{"n": 1}]
    db.close()
    db = open_journal_db(path)
    assert [dict(d) for d in db.table("t").all()] == [{"n": 1}]
    db.close()


def test_torn_final_line_is_ignored_and_reported(tmp_path):
    path = tmp_path / "db.jsonl"
    db = open_journal_db(path)
    db.table("t").insert({"n": 1})
    db.close()
    with open(path, "ab") as fh:
        fh.write(b'{"t":"t","i":2,"d":{"n"')
    notices: list[str] = []
    db = open_journal_db(path, notices=notices)
    assert [dict(d) for d in db.table("t").all()] == [{"n": 1}]
    assert notices == ["ignored a torn final write in db.jsonl"]
    db.table("t").insert({"n": 3})
    db.close()
    db = open_journal_db(path)
    assert [dict(d) for d in db.table("t").all()] == [{"n": 1}, {"n": 3}]
    db.close()


def test_writes_land_in_reserved_space_that_close_gives_back(tmp_path):
    path = tmp_path / "db.jsonl"
    db = open_journal_db(path)
    db.table("t").insert({"n": 1})
    db.storage.flush()
    data = path.read_bytes()
    content = data.rstrip(b"\0")
    assert len(data) == len(content) + RESERVE  # the next lines fit without growing the file
    size = len(data)
    db.table("t").insert({"n": 2})
    db.storage.flush()
    assert path.stat().st_size == size
    db.close()
    assert path.read_bytes() == path.read_bytes().rstrip(b"\0")  # closed: ends at its last line
    assert path.read_bytes().endswith(b"\n")


@pytest.mark.parametrize("torn", [b"", b'{"t":"t","i":3,"d":{"n"'])
def test_reserved_space_left_by_a_crash_is_not_a_torn_write(tmp_path, torn):
    """kill -9 leaves the reserved NUL bytes after the last line, with or without a line
    cut short before them: only the cut line is reported, and both are given back."""
    path = tmp_path / "db.jsonl"
    db = open_journal_db(path)
    db.table("t").insert_multiple([{"n": 1}, {"n": 2}])
    db.close()
    clean = path.read_bytes()
    with open(path, "ab") as fh:  # what a crash leaves: a line being written, then NULs
        fh.write(torn + bytes(RESERVE - len(torn)))
    notices: list[str] = []
    db = open_journal_db(path, notices=notices)
    assert [dict(d) for d in db.table("t").all()] == [{"n": 1}, {"n": 2}]
    assert notices == (["ignored a torn final write in db.jsonl"] if torn else [])
    assert path.read_bytes() == clean
    db.table("t").insert({"n": 4})
    db.close()
    db = open_journal_db(path)
    assert [dict(d) for d in db.table("t").all()] == [{"n": 1}, {"n": 2}, {"n": 4}]
    db.close()


def test_a_disk_too_full_to_reserve_space_still_takes_the_writes(tmp_path):
    """The reservation is an optimisation: when it cannot be written (here RLIMIT_FSIZE,
    which refuses writes at offsets past the limit as a full disk would), lines still go
    in, growing the file as before."""
    import resource

    path = tmp_path / "db.jsonl"
    db = open_journal_db(path)
    db.table("t").insert({"n": 1})
    db.close()
    db = open_journal_db(path)  # reopened: the file is exactly its lines
    size = path.stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 4096, hard))
    try:
        db.table("t").insert({"n": 2})
        db.storage.flush()
        assert path.stat().st_size == len(path.read_bytes().rstrip(b"\0"))  # nothing reserved
        assert db.storage.reserved == db.storage.written
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    db.close()
    db = open_journal_db(path)
    assert [dict(d) for d in db.table("t").all()] == [{"n": 1}, {"n": 2}]
    db.close()


def test_insert_encoded_matches_insert_multiple(tmp_path):
    from data.journal import encode_json_bytes

    fast = open_journal_db(tmp_path / "fast.jsonl")
    slow = open_journal_db(tmp_path / "slow.jsonl")
    docs = [{"n": i, "text": f"é{i}", "nested": {"k": [i, None, True]}} for i in range(1, 6)]
    batch = [(i, doc, b'{"t":"t","i":%d,"d":%s}\n' % (i, encode_json_bytes(doc))) for i, doc in enumerate(docs, 1)]
    fast.table("t").insert_encoded(batch)
    slow.table("t").insert_multiple(docs)
    fast.storage.flush()
    slow.storage.flush()
    assert (tmp_path / "fast.jsonl").read_bytes() == (tmp_path / "slow.jsonl").read_bytes()
    assert fast.table("t").all() == slow.table("t").all()
    assert fast.table("t").insert({"n": 6}) == 6  # TinyDB's next id follows
    with pytest.raises(ValueError, match="already exists"):
        fast.table("t").insert_encoded([(3, {"n": 0}, b'{"t":"t","i":3,"d":{"n":0}}\n')])
    assert fast.table("t").get(doc_id=3) == {"n": 3, "text": "é3", "nested": {"k": [3, None, True]}}
    fast.close()
    slow.close()


@pytest.mark.parametrize(
    "doc",
    [
        {"a": "é\u200d👩‍💻", "n": 2**63 - 1, "f": 1764211200.123456, "t": (1, "x"), "z": None, "b": False},
        {"big": 2**70},  # beyond 64 bits: the stdlib encoder takes over
        {"nested": {"list": [{"k": "v"}], "e": {}}},
    ],
)
def test_encode_json_bytes_is_the_stdlib_encoding(doc):
    from data.journal import encode_json, encode_json_bytes

    assert encode_json_bytes(doc) == encode_json(doc).encode()


def test_encode_json_bytes_raises_like_the_stdlib():
    from data.journal import encode_json_bytes

    with pytest.raises(TypeError):
        encode_json_bytes({"x": object()})
    with pytest.raises(ValueError):  # a lone surrogate cannot be written as UTF-8
        encode_json_bytes({"x": "\ud800"})
