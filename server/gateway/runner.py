"""Start and stop the gateway inside an already running asyncio loop (Textual's, or
headless mode's): a `GatewayRunner` (aiohttp's low-level server) plus a `TCPSite`, no threads."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import replace

from aiohttp import web

from data.store import HistoryStore, StoreError

from server.broker import Broker
from server.config import GatewayConfig
from server.gateway.connection import GatewayHTTPServer
from server.gateway.descriptors import AcceptGate, raise_open_files_limit
from server.gateway.endpoint import Gateway, GatewayStats
from server.gateway.tls_defer import load_deferred_certificates

log = logging.getLogger(__name__)


ACCEPT_BATCH = 64
"""Connections accepted per event-loop pass. asyncio accepts up to `backlog` connections each
time the listening socket is ready and handles them all in the same pass; with 4096, a burst of
10,000 SL connections kept the console from reading a key for ~0.8 s. The kernel's queue is
kept at LISTEN_BACKLOG, so a burst still waits there rather than being refused."""
LISTEN_BACKLOG = 4096


def _deepen_backlog(site: web.TCPSite) -> None:
    """listen() again with the deep backlog (asyncio used ACCEPT_BATCH for both)."""
    server = getattr(site, "_server", None)  # aiohttp keeps the asyncio Server here
    for transport_sock in getattr(server, "sockets", None) or ():
        # asyncio hands out wrappers without listen(); a dup of the fd is the same socket
        try:
            with socket.fromfd(transport_sock.fileno(), transport_sock.family, transport_sock.type) as sock:
                sock.listen(LISTEN_BACKLOG)
        except OSError:  # pragma: no cover - a listening socket accepts a new backlog
            pass


class GatewayRunner(web.ServerRunner):
    """aiohttp's runner for a low-level server, serving a `Gateway` with the settings the
    gateway needs, and answering its held requests when it stops: after the listening
    sockets close (nothing new arrives) and before it waits for the open handlers (the
    held ones would otherwise wait out shutdown_timeout and get nothing)."""

    def __init__(self, gateway: Gateway) -> None:
        """Call inside the running loop (aiohttp's Server takes it from there)."""
        super().__init__(
            GatewayHTTPServer(
                gateway,
                refuse=gateway.refused,
                head_timeout=gateway.config.head_timeout,
                request_factory=gateway.request_factory(),
                # A client that hangs up cancels its handler at once: "caller gone".
                handler_cancellation=True,
                access_log=None,
                keepalive_timeout=75.0,
                # bodies are inflated with a bound by the gateway (server/gateway/body.py)
                auto_decompress=False,
            ),
            handle_signals=False,
            # Held requests are answered in shutdown(), so stopping is quick.
            shutdown_timeout=2.0,
        )
        self._gateway = gateway

    async def shutdown(self) -> None:
        self._gateway.answer_held()


class GatewayServer:
    """The gateway bound to a socket. `port=0` picks a free port; `config` then
    reports the real one after `start()`."""

    def __init__(self, config: GatewayConfig, broker: Broker, store: HistoryStore) -> None:
        self.config = config
        self.broker = broker
        self.store = store
        self.gateway = Gateway(config, broker, store)
        self._runner: GatewayRunner | None = None

    @property
    def stats(self) -> GatewayStats:
        return self.gateway.stats

    @property
    def url(self) -> str:
        return self.config.url

    async def start(self) -> str:
        """Bind and serve; returns the Gateway URL. Raises OSError with a clear message."""
        limit = raise_open_files_limit()
        runner = GatewayRunner(self.gateway)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port, backlog=ACCEPT_BATCH, reuse_address=True)
        try:
            await site.start()
            _deepen_backlog(site)
            self._watch_descriptors(runner, site, limit)
        except OSError as exc:
            await runner.cleanup()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(
                exc.errno,
                f"cannot listen on {self.config.host}:{self.config.port}: {reason}"
                " (choose another --port, or --port 0 for any free one)",
            ) from None
        self._runner = runner
        port = self.config.port
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                port = address[1]
                break
        self.config = replace(self.config, port=port)
        log.info("gateway listening on %s", self.config.url)
        # the TLS certificates aiohttp's import left unloaded (server/gateway/tls_defer.py):
        # once the first callbacks have had their turn
        asyncio.get_running_loop().call_later(1.0, load_deferred_certificates)
        return self.config.url

    def _watch_descriptors(self, runner: GatewayRunner, site: web.TCPSite, limit: int) -> None:
        """Pause accepting before descriptors run out (server/gateway/descriptors.py), and say in the
        stats how many held requests the limit allows."""
        server = runner.server
        listening = getattr(getattr(site, "_server", None), "sockets", None) or ()
        gate = AcceptGate(asyncio.get_running_loop(), listening, limit)
        if isinstance(server, GatewayHTTPServer):
            server.gate = gate
        self.gateway.gate = gate
        self.stats.fd_limit = limit
        self.stats.max_pending_allowed = gate.max_connections
        if self.stats.max_pending_allowed < self.config.max_pending:
            log.warning("the open-files limit (%d) allows about %d held callbacks, fewer than --max-pending "
                        "%d: past that, new connections wait until some are answered",
                        limit, self.stats.max_pending_allowed, self.config.max_pending)

    async def stop(self) -> None:
        """Answer every held request with the fallback, close the sockets, sync the store."""
        runner, self._runner = self._runner, None
        if self.gateway.gate is not None:
            self.gateway.gate.close()
        if runner is not None:
            await runner.cleanup()
        try:
            await self.store.sync()
        except StoreError as exc:
            # A full disk: what could not be written was answered 503, not acknowledged.
            # Closing the store tries once more and reports it (run.py).
            log.info("history not synced at stop: %s", exc)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for tests and the demo's SL)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
