"""server/ and data/ never import Textual (they run headless, and behind a future network seam)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules(package: str) -> list[str]:
    path = ROOT / package
    return [package] + [m.name for m in pkgutil.walk_packages([str(path)], prefix=f"{package}.")]


def test_server_and_data_do_not_import_textual_or_tui():
    modules = _modules("server") + _modules("data")
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'tui')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"server/ or data/ pulled in: {result.stdout.strip()}"
    assert len(modules) > 6
