"""The layers hold: data/ knows nothing of HTTP or the console, server/ nothing of the console
(they run headless, and behind a future network seam). Checked twice: import-linter on the
contracts in pyproject.toml (the static import graph), and a real import of every module in
a fresh interpreter (what actually gets loaded)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = (
    "data imports neither server, tui nor aiohttp",
    "server imports neither tui nor textual",
    "the console reaches the core only through its interface (server.backend)",
)


def _modules(package: str) -> list[str]:
    path = ROOT / package
    return [package] + [m.name for m in pkgutil.walk_packages([str(path)], prefix=f"{package}.")]


def _loaded_after_importing(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"prefixes = {prefixes!r}\n"
        "bad = sorted(m for m in sys.modules if m in prefixes or m.startswith(tuple(p + '.' for p in prefixes)))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [name for name in result.stdout.strip().split(",") if name]


def test_the_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    assert lint.exists(), f"{lint} is missing: pip install -e '.[test]' installs import-linter"
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    for contract in CONTRACTS:
        assert f"{contract} KEPT" in result.stdout, f"contract {contract!r} is not checked:\n{result.stdout[-2000:]}"


def test_server_and_data_do_not_load_textual_or_tui():
    modules = _modules("server") + _modules("data")
    assert len(modules) > 6
    assert _loaded_after_importing(modules, ("textual", "tui")) == []


def test_data_does_not_load_the_gateway_or_aiohttp():
    modules = _modules("data")
    assert len(modules) > 3
    assert _loaded_after_importing(modules, ("server", "tui", "textual", "aiohttp")) == []


def test_the_console_loads_no_gateway_store_or_simulator():
    """What `import tui.app` really loads: the interface and the pure modules, nothing that
    serves, stores or simulates (the entry point composes those)."""
    core = ("aiohttp", "tinydb", "sqlite3", "data.store", "server.gateway.endpoint", "server.gateway.runner",
            "server.broker", "server.simulator", "server.sl_client", "server.backend.local")
    assert _loaded_after_importing(_modules("tui"), core) == []
