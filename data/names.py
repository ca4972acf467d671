"""One string object per field name, for the documents the history keeps in memory.

Every stored record keeps its fields dict in memory until its segment rotates; field names
parsed from each request are new string objects. Sharing them saves about 50 bytes per field
per record. Bounded, since the names come from the network: at most `LIMIT` names of at most
`MAX_LEN` characters are remembered; others are used as they are.
"""

from __future__ import annotations

from typing import Any

LIMIT = 4096
MAX_LEN = 64

NAMES: dict[str, str] = {}
"""The shared names. Hot paths may look up `NAMES.get(key)` inline before calling `share`."""


def share(key: Any) -> Any:
    """The shared string equal to `key` (remembered if there is room), or `key` itself."""
    shared = NAMES.get(key)
    if shared is not None:
        return shared
    if type(key) is str and len(NAMES) < LIMIT and len(key) <= MAX_LEN:
        NAMES[key] = key
    return key
