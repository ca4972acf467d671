"""Switchboard's history: records, the TinyDB-backed store, and where it lives on disk."""

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
)
from .paths import default_data_dir
from .store import HistoryStore, SearchProgress, StoreError, StoreStats

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
    "default_data_dir",
]
