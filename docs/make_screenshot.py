"""Regenerate docs/screenshot.svg: the console at 120x40 fed by the demo simulator.

    python docs/make_screenshot.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from data.store import HistoryStore
from server.config import Config, GatewayConfig
from server.backend.local import LocalBackend
from tui.app import SwitchboardApp
from tui.widgets.composer import Composer

OUT = Path(__file__).resolve().parent / "screenshot.svg"


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = HistoryStore.open(Path(tmp) / "history")
        config = Config(gateway=GatewayConfig(port=0, reply_timeout=20), data_dir=Path(tmp),
                        demo=True, demo_rate=1.5, demo_seed=11)
        app = SwitchboardApp(config, LocalBackend.for_config(config, store))
        async with app.run_test(size=(120, 40)) as pilot:
            composer = app.query_one(Composer)
            for reply in ("Hi! Yes, we're open until 10pm tonight.", "Large pepperoni, 25 minutes."):
                while composer.item is None:
                    await pilot.pause(0.05)
                # A second enter confirms a reply to an opted-out phone; on the next text's
                # empty reply it sends nothing.
                await pilot.press(*reply, "enter", "enter")
            await pilot.pause(4)
            while composer.item is None:
                await pilot.pause(0.05)
            await pilot.press(*"Thanks for texting! A ticket costs $20", "ctrl+t")
            await pilot.pause(0.3)
            app.save_screenshot(filename=OUT.name, path=str(OUT.parent))
            await pilot.press("ctrl+q")
        store.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
