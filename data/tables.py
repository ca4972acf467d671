"""Small document collections (templates, operator notes, rules, settings) as ordinary TinyDB
tables in the data directory, behind a typed repository: dataclasses in, dataclasses out.

Each collection is one JSON file a person can read and edit (`templates.json`: TinyDB's
own `{"<table>": {"<doc id>": {...}}}` layout). A change rewrites the file through a temp
file, fsync and rename, so a crash leaves the old file or the new one, never half of one.
Meant for hundreds of documents, not the history (data/store.py keeps that).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Generic, Iterator, TypeVar

from tinydb import Query, TinyDB
from tinydb.storages import Storage

from .journal import move_aside, write_durably

__all__ = ["AtomicJSONStorage", "Repository"]

T = TypeVar("T")


class AtomicJSONStorage(Storage):
    """TinyDB storage: the whole database as one JSON file, replaced atomically on write. A
    file that does not parse is moved aside (`<name>.corrupt-<time>`) and starts empty."""

    def __init__(self, path: str, notices: list[str] | None = None) -> None:
        self.path = Path(path)
        self.notices = notices if notices is not None else []

    def read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text) if text.strip() else None
        except ValueError:
            data = False
        if data is not None and not isinstance(data, dict):
            aside = move_aside(self.path)
            self.notices.append(f"{self.path.name} could not be read; kept as {aside.name}, starting empty")
            return None
        return data

    def write(self, data: dict[str, Any]) -> None:
        write_durably(self.path, [json.dumps(data, ensure_ascii=False, indent=1).encode()])

    def close(self) -> None:
        pass


class Repository(Generic[T]):
    """The documents of one table, as instances of the dataclass `model`, unique by `key`
    (one of its fields). `Repository(dir / "templates.json", Template, key="name")`."""

    def __init__(self, path: Path, model: type[T], *, key: str, table: str | None = None) -> None:
        if not dataclasses.is_dataclass(model) or key not in {f.name for f in dataclasses.fields(model)}:
            raise TypeError(f"{model!r} is not a dataclass with a field {key!r}")
        self.model = model
        self.key = key
        self.notices: list[str] = []
        self._db = TinyDB(str(path), storage=AtomicJSONStorage, notices=self.notices)
        self._table = self._db.table(table or model.__name__.lower())

    def _load(self, doc: dict) -> T:
        names = {f.name for f in dataclasses.fields(self.model)}  # type: ignore[arg-type]
        return self.model(**{k: v for k, v in doc.items() if k in names})

    def all(self) -> list[T]:
        return [self._load(doc) for doc in self._table.all()]

    def __iter__(self) -> Iterator[T]:
        return iter(self.all())

    def __len__(self) -> int:
        return len(self._table)

    def get(self, key: Any) -> T | None:
        doc = self._table.get(Query()[self.key] == key)
        return self._load(doc) if isinstance(doc, dict) else None

    def put(self, item: T) -> None:
        """Insert `item`, or replace the one with the same key."""
        doc = dataclasses.asdict(item)  # type: ignore[call-overload]
        json.dumps(doc)  # refuse what cannot be stored before anything changes
        self._table.upsert(doc, Query()[self.key] == doc[self.key])

    def put_many(self, items: list[T]) -> None:
        """Insert or replace (by key) every item of `items`: two writes of the file, not
        one per item."""
        docs = [dataclasses.asdict(item) for item in items]  # type: ignore[call-overload]
        json.dumps(docs)  # refuse what cannot be stored before anything changes
        keys = [doc[self.key] for doc in docs]
        self._table.remove(Query()[self.key].one_of(keys))
        self._table.insert_multiple(docs)

    def delete(self, key: Any) -> bool:
        return bool(self._table.remove(Query()[self.key] == key))

    def close(self) -> None:
        self._db.close()
