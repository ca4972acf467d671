"""Shared fixtures: a real history store in a temp dir, and helpers to post callbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from data.store import HistoryStore

INCOMING = {
    "type": "incoming_message",
    "api_key": "key-1",
    "phone_number": "5551234567",
    "body": "Hello, is anyone there?",
    "sent_at": "2026-11-27T10:00:00Z",
    "carrier_name": "TestCarrier",
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    history = HistoryStore.open(tmp_path / "history")
    yield history
    history.close()
