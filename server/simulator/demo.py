"""`--demo`: the simulated SL in the console's own loop, posting to the console's gateway
and serving the SL API the console sends through."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from server.simulator.sl import SimulatedSL
from server.simulator.sl_api import make_sl_api
from server.simulator.texters import Crowd


@dataclass
class Demo:
    """A running demo: the SL API at `sl_url` (accepting `sl_api_key`) and the texters.
    `stop()` ends both; calling it again does nothing."""

    sl_url: str
    sl_api_key: str
    sl: SimulatedSL
    _runner: web.AppRunner
    _crowd_task: asyncio.Task
    _stopped: bool = field(default=False)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._crowd_task.cancel()
        await asyncio.gather(self._crowd_task, return_exceptions=True)
        await self.sl.close()
        await self._runner.cleanup()


async def start_sl_api(sl: SimulatedSL, api_key: str, host: str = "127.0.0.1",
                       port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve the SL API for `sl` on host:port (0: a free port). Returns the runner and the
    API's base URL. Raises OSError when the address cannot be bound (nothing left open)."""
    runner = web.AppRunner(make_sl_api(sl, api_key), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = next(addr[1] for addr in runner.addresses if isinstance(addr, tuple))
    shown = f"[{host}]" if ":" in host else host
    return runner, f"http://{shown}:{bound}/api/"


async def start_demo(gateway_url: str, *, rate: float = 1.0, seed: int | None = None,
                     api_key: str = "demo-key", host: str = "127.0.0.1") -> Demo:
    """Start the SL API on a free loopback port and a crowd of texters posting to `gateway_url`.
    The first text is posted at once, so the queue fills within seconds."""
    # Delivery reports within about a second keep the console's threads lively.
    sl = SimulatedSL(gateway_url, api_key=api_key, seed=seed, delivery_delay=0.5)
    try:
        runner, sl_url = await start_sl_api(sl, api_key, host)
    except BaseException:
        await sl.close()
        raise
    crowd = Crowd(sl, rate=rate)
    task = asyncio.get_running_loop().create_task(crowd.run(), name="demo-crowd")
    return Demo(sl_url=sl_url, sl_api_key=api_key, sl=sl, _runner=runner, _crowd_task=task)
