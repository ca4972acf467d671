"""The baseline for the ingest benchmark: an aiohttp app that only parses the form and
answers an empty 200. Same server settings as Switchboard's gateway, no storage."""

from __future__ import annotations

import sys

from aiohttp import web


async def receive(request: web.Request) -> web.Response:
    await request.post()
    return web.Response(text="")


def main() -> None:
    port = int(sys.argv[1])
    app = web.Application()
    app.router.add_post("/", receive)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=4096)


if __name__ == "__main__":
    main()
