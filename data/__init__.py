"""Switchboard's history: records, the TinyDB-backed store, and where it lives on disk.

The store's names are loaded on first use: importing the records (`data.models`), as the
console does, must not load the storage engine (SQLite, TinyDB, the writer thread)."""

from typing import Any

from .models import (
    AnsweredBy,
    CallbackRecord,
    ContactState,
    DeliveryState,
    OutboundRecord,
    Outcome,
    ResponseRecord,
    ThreadEntry,
    ThreadHit,
    ThreadPage,
)
from .paths import default_data_dir

_STORE_NAMES = ("HistoryStore", "SearchProgress", "StoreError", "StoreStats")


def __getattr__(name: str) -> Any:
    if name in _STORE_NAMES:
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module 'data' has no attribute {name!r}")


__all__ = [
    "AnsweredBy",
    "CallbackRecord",
    "ContactState",
    "DeliveryState",
    "HistoryStore",
    "OutboundRecord",
    "Outcome",
    "ResponseRecord",
    "SearchProgress",
    "StoreError",
    "StoreStats",
    "ThreadEntry",
    "ThreadHit",
    "ThreadPage",
    "default_data_dir",
]
