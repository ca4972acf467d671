"""The agent's desk (issue 15): what keeps one operator abreast of a busy line, on the real
console with the real gateway on a free port."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from server.backend.local import LocalBackend
from server.config import Config, GatewayConfig
from tui.app import SwitchboardApp
from tui.widgets.held_queue import HeldQueue

from .conftest import INCOMING


def make_app(store, tmp_path: Path, **gateway) -> SwitchboardApp:
    gateway.setdefault("port", 0)
    gateway.setdefault("reply_timeout", 30)
    config = Config(gateway=GatewayConfig(**gateway), data_dir=tmp_path)
    return SwitchboardApp(config, LocalBackend.for_config(config, store))


async def post(url: str, fields: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=fields) as response:
            return response.status, await response.text()


async def wait_until(pilot, condition, timeout: float = 6.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)


async def test_timeouts_are_a_counter_never_a_pop_up_and_the_title_says_how_many_wait(store, tmp_path):
    app = make_app(store, tmp_path, reply_timeout=1.0, fallback="later")
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        requests = [asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": f"555000000{n}"}))
                    for n in range(3)]
        await wait_until(pilot, lambda: len(app.query_one(HeldQueue)) == 3)
        await wait_until(pilot, lambda: app.title == "Switchboard - 3 waiting")
        await asyncio.wait_for(asyncio.gather(*requests), 5)
        title = app.query_one("#queue-title")
        await wait_until(pilot, lambda: "missed 3" in str(title.render()))
        await wait_until(pilot, lambda: app.title == "Switchboard")
        assert "timed out 3" in str(app.query_one("#status").render())
        await pilot.pause(1.2)
        assert not any("timed out" in str(toast.render()) for toast in app.query("Toast"))
