"""`JournalTable`: a TinyDB table for `JournalStorage` (data/journal.py) whose changes touch
the live dict in place and journal only the documents they changed. Install it with
`TinyDB.table_class = JournalTable`, or use `open_journal_db`."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Sequence

from tinydb import TinyDB
from tinydb.table import Table

from .journal import JournalStorage, encode_json

__all__ = ["JournalTable", "open_journal_db"]


_ABSENT = object()


class _TrackedTable:
    """The int-keyed view TinyDB's updaters expect, over the live str-keyed dict.

    It remembers each touched document's JSON from before the change (None: it did not exist),
    so the change can be journaled as the touched documents only, or rolled back.
    """

    __slots__ = ("raw", "before", "fresh", "cleared")

    def __init__(self, raw: dict[str, dict]) -> None:
        self.raw = raw
        self.before: dict[str, str | None] = {}
        self.fresh: dict[str, str] = {}
        """Touched key -> its new JSON text."""
        self.cleared: dict[str, dict] | None = None

    def _remember(self, key: str) -> None:
        if key not in self.before:
            doc = self.raw.get(key)
            self.before[key] = None if doc is None else encode_json(doc)

    def __contains__(self, doc_id: object) -> bool:
        return str(doc_id) in self.raw

    def __getitem__(self, doc_id: int) -> dict:
        key = str(doc_id)
        doc = self.raw[key]
        self._remember(key)
        self.fresh.pop(key, None)
        return doc

    def get(self, doc_id: int, default: Any = None) -> Any:
        return self[doc_id] if str(doc_id) in self.raw else default

    def __setitem__(self, doc_id: int, doc: dict) -> None:
        key = str(doc_id)
        text = encode_json(doc)  # validate before memory changes
        self._remember(key)
        self.raw[key] = doc
        self.fresh[key] = text

    def __delitem__(self, doc_id: int) -> None:
        key = str(doc_id)
        if key not in self.raw:
            raise KeyError(doc_id)
        self._remember(key)
        del self.raw[key]
        self.fresh.pop(key, None)

    def pop(self, doc_id: int, default: Any = _ABSENT) -> Any:
        key = str(doc_id)
        if key not in self.raw:
            if default is _ABSENT:
                raise KeyError(doc_id)
            return default
        self._remember(key)
        self.fresh.pop(key, None)
        return self.raw.pop(key)

    def clear(self) -> None:
        if self.cleared is None:
            self.cleared = dict(self.raw)
        self.before.clear()
        self.fresh.clear()
        self.raw.clear()

    def keys(self) -> list[int]:
        return [int(k) for k in self.raw]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.raw)

    def items(self):
        return [(doc_id, self[doc_id]) for doc_id in self.keys()]

    def values(self):
        return [self[doc_id] for doc_id in self.keys()]

    def rollback(self) -> None:
        loads = json.loads
        for key, text in self.before.items():
            if text is None:
                self.raw.pop(key, None)
            else:
                self.raw[key] = loads(text)
        if self.cleared is not None:
            self.raw.clear()
            self.raw.update(self.cleared)

    def journal(self, tname: str) -> list[bytes]:
        """Lines for what changed; raises (before anything is journaled) if a doc won't encode."""
        lines: list[bytes] = []
        if self.cleared is not None:
            lines.append(f'{{"t":{tname},"clear":1}}\n'.encode())
        for key, old in self.before.items():
            doc = self.raw.get(key)
            if doc is None:
                if old is not None:
                    lines.append(f'{{"t":{tname},"i":{key}}}\n'.encode())
                continue
            text = self.fresh.get(key)
            if text is None:
                text = encode_json(doc)
                if text == old:
                    continue
            lines.append(f'{{"t":{tname},"i":{key},"d":{text}}}\n'.encode())
        return lines


class JournalTable(Table):
    """A TinyDB table whose writes change the live dict in place and journal only touched docs."""

    def _update_table(self, updater: Callable[[dict[int, Any]], None]) -> None:
        storage = self._storage
        tables = storage.read()
        raw = tables.get(self.name)
        created = raw is None
        if created:
            raw = {}
        view = _TrackedTable(raw)
        tname = encode_json(self.name)
        try:
            updater(view)  # type: ignore[arg-type]
            lines = view.journal(tname)
        except BaseException:
            view.rollback()
            raise
        if created:
            tables[self.name] = raw
            if not lines or view.cleared is None:
                lines.insert(0, f'{{"t":{tname},"new":1}}\n'.encode())
        for line in lines:
            storage.append(line)
        self.clear_cache()

    def insert_encoded(self, batch: Sequence[tuple[int, dict, bytes]]) -> None:
        """Insert documents whose journal lines are already encoded: `(doc_id, doc, line)`.

        What `insert_multiple([Document(doc, doc_id), ...])` does, for an owner that encoded
        each line itself and will not change the documents afterwards (the history store):
        no copy of each document, no second encoding, one pass. Raises ValueError, changing
        nothing, if an id is already taken."""
        storage = self._storage
        assert isinstance(storage, JournalStorage)
        tables = storage.read()
        raw = tables.get(self.name)
        keys = [str(doc_id) for doc_id, _doc, _line in batch]
        if raw is not None:
            taken = [key for key in keys if key in raw]
            if taken:
                raise ValueError(f"Document with ID {taken[0]} already exists")
        else:
            raw = tables[self.name] = {}
            storage.append(f'{{"t":{encode_json(self.name)},"new":1}}\n'.encode())
        for key, (_doc_id, doc, _line) in zip(keys, batch):
            raw[key] = doc
        storage.extend([line for _doc_id, _doc, line in batch])
        self._next_id = None  # as TinyDB does after inserting with explicit ids
        self.clear_cache()


def open_journal_db(path: str | os.PathLike[str], *, notices: list[str] | None = None) -> TinyDB:
    """A TinyDB on a journal file, with `JournalTable` tables."""

    class _DB(TinyDB):
        table_class = JournalTable

    return _DB(path, storage=JournalStorage, notices=notices)
