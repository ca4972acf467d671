"""Where Switchboard keeps its history when `--data-dir` is not given."""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_data_dir


def default_data_dir() -> Path:
    """The platform's per-user data directory for Switchboard (e.g. ~/.local/share/switchboard)."""
    return Path(user_data_dir("switchboard", appauthor=False))
