"""The gateway the Service Layer calls: it records each callback, holds the ones that
expect an answer until the broker resolves them or the deadline passes, and sends exactly
what the contract's encoder produces.

It runs on aiohttp's low-level `web.Server` with one handler that routes by path itself
(POST callbacks at the configured path, GET /healthz, a one-line 404/405 for the rest),
not on a `web.Application`: the application layer (router resolve, match info, middleware
check, `web.Request`) is a tenth of a bare receiver's cost per request, and the gateway has
two routes (docs/performance.md). What the application did that
we need is done here: the body size limit (`client_max_size` on each request),
`Expect: 100-continue`, and answering held requests at shutdown (`GatewayRunner`).

Order of work in the handler matters: the body is read, then the callback is recorded
before any other await (so a client that hangs up cannot make us lose it), then it is
published, and the response is written only after the history is on disk.

Answers to callbacks go out as ready-made bytes (server/gateway/prebuilt.py) on keep-alive HTTP/1.1
connections, through `web.Response` otherwise; rejections always through `web.Response`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from aiohttp import web

from data.models import CallbackRecord, ResponseRecord
from data.store import HistoryStore, StoreError

from server.gateway.body import BodyRefused, read_body
from server.broker import (
    Broker,
    CallbackReceived,
    HeldItem,
    RequestRejected,
    Resolution,
)
from server.config import GatewayConfig
from server.sms.contract import (
    Callback,
    EMPTY_RESPONSE,
    ContractError,
    EncodedResponse,
    encode_response,
    fallback_decision,
    parse_callback,
)
from server.gateway.descriptors import AcceptGate
from server.gateway.forms import FormError, read_fields
from server.gateway.prebuilt import AnswerBytes, PrebuiltResponse, prebuilt_ok

log = logging.getLogger(__name__)


@dataclass
class GatewayStats:
    """Counters for /healthz and the status bar."""

    received: int = 0
    held: int = 0
    answered: int = 0
    timed_out: int = 0
    caller_gone: int = 0
    overflow: int = 0
    rejected: int = 0
    forbidden: int = 0
    started_at: float = field(default_factory=time.time)
    fd_limit: int = 0
    """The open-files limit in force (raised to the hard limit at start); 0 before start."""
    max_pending_allowed: int = 0
    """About how many held requests (one descriptor each) that limit allows: a
    `--max-pending` above it means new connections wait in the kernel's queue once it is
    reached. 0 before start."""

    def as_dict(self) -> dict[str, int]:
        return {
            "received": self.received,
            "held": self.held,
            "answered": self.answered,
            "timed_out": self.timed_out,
            "caller_gone": self.caller_gone,
            "overflow": self.overflow,
            "rejected": self.rejected,
            "forbidden": self.forbidden,
        }



class CallbackEndpoint:
    """The POST handler for callbacks, with the config, broker, store and counters bound once
    (the ingest hot path does no `app[...]` lookups)."""

    def __init__(self, config: GatewayConfig, broker: Broker, store: HistoryStore, stats: GatewayStats) -> None:
        self.config = config
        self.broker = broker
        self.store = store
        self.stats = stats
        self.answers = AnswerBytes()

    def refused(self, peer: str, status: int, reason: str, seq: int = 0) -> None:
        """Count a refusal and tell the console (RequestRejected): every refusal, those of
        requests aiohttp's parser could not read (server/gateway/connection.py) included."""
        self.stats.rejected += 1
        if status == 403:
            self.stats.forbidden += 1
        self.broker.publish(RequestRejected(status, reason, peer, seq))

    def reject(self, peer: str, status: int, reason: str, seq: int = 0) -> web.Response:
        """Count it, tell the console, answer `status` with a one-line reason."""
        self.refused(peer, status, reason, seq)
        return web.Response(status=status, text=reason + "\n")

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse | PrebuiltResponse:
        # never_500's guard, written inline: a wrapper coroutine would add a frame that
        # every suspended callback passes through twice (suspend, resume).
        try:
            config = self.config
            store = self.store
            peer = request.remote or ""
            try:
                body = await read_body(request, config.max_body)
            except BodyRefused as exc:
                return _closing(request, self.reject(peer, exc.status, exc.reason))
            try:
                fields, notes = read_fields(
                    # raw: yarl's `query_string` is already percent-decoded (é, %2B -> +, %25 -> %)
                    query_string=request.rel_url.raw_query_string,
                    content_type=request.headers.get("Content-Type", ""),
                    body=body,
                    max_fields=config.max_fields,
                )
                callback = parse_callback(fields)
            except (FormError, ContractError) as exc:
                return self.reject(peer, 400, str(exc))

            app_name = config.app_name(callback.api_key)
            if app_name is None:
                what = "missing" if callback.api_key is None else "not accepted"
                return self.reject(peer, 403, f"api_key {what}: this gateway serves other apps")

            # Record before any cancellable await: from here on, the callback is ours.
            try:
                record = store.add_callback(_record(callback, notes, peer, app_name))
            except StoreError as exc:
                return self.reject(peer, 503, f"history store unavailable: {exc}")
            self.stats.received += 1
            if record.held:
                return await self._hold(request, record)
            self.broker.publish(CallbackReceived(record))
            # _durable, written inline for the same reason as the guard
            try:
                waiter = store.durable_waiter()
                if waiter is not None:
                    await waiter
            except StoreError as exc:
                return self.reject(peer, 503, f"history store unavailable: {exc}")
            return self._answer(request, EMPTY_RESPONSE)
        except (web.HTTPException, asyncio.CancelledError):
            raise
        except Exception as exc:
            return _unexpected(request, exc)

    def _answer(self, request: web.BaseRequest, encoded: EncodedResponse) -> web.StreamResponse | PrebuiltResponse:
        """The one way an answer to a callback goes out: ready-made bytes on keep-alive
        HTTP/1.1, aiohttp's `web.Response` otherwise (server/gateway/prebuilt.py)."""
        if prebuilt_ok(request):
            return PrebuiltResponse(self.answers(encoded))
        return _wire(encoded)

    async def _hold(self, request: web.BaseRequest, record: CallbackRecord) -> web.StreamResponse | PrebuiltResponse:
        config = self.config
        broker = self.broker
        stats = self.stats
        loop = asyncio.get_running_loop()
        started = loop.time()
        phone = record.phones[0] if record.phones else ""

        if broker.pending_count >= config.max_pending:
            stats.overflow += 1
            resolution = Resolution(
                decision=fallback_decision(record.type, config.fallback),
                answered_by="fallback",
                outcome="overflow",
            )
            return await self._respond(request, record, resolution, started)

        # On disk now rather than once answered: a crash while it is held must not lose it.
        self.store.flush_soon()
        contact = self.store.contact(phone) if phone else None
        item = HeldItem(
            record=record,
            deadline=record.received_at + config.reply_timeout,
            out_of_session=bool(contact is not None and contact.session_open is False),
        )
        stats.held += 1
        future = broker.hold(item)
        timed_out = Resolution(
            decision=fallback_decision(record.type, config.fallback),
            answered_by="fallback",
            outcome="timed_out",
        )
        # The deadline resolves the exchange's own future, so the answer's way back is one
        # await: wait_for(shield(...)) took three loop passes, each possibly behind a frame.
        deadline = loop.call_later(config.reply_timeout, _resolve_once, future, timed_out)
        try:
            try:
                resolution = await future
            finally:
                deadline.cancel()
        except asyncio.CancelledError:
            # The SL hung up (aiohttp cancels the handler) or the server is stopping hard.
            stats.caller_gone += 1
            gone = ResponseRecord(
                callback_seq=record.seq,
                sent_at=time.time(),
                status=0,
                body="",
                content_type="",
                answered_by="fallback",
                outcome="caller_gone",
                latency_ms=(loop.time() - started) * 1000,
                phone=phone,
            )
            try:
                self.store.add_response(gone)
            except StoreError:
                log.exception("could not record caller_gone for #%s", record.seq)
            broker.close(record.seq, "caller_gone", gone)
            raise
        return await self._respond(request, record, resolution, started)

    async def _respond(
        self, request: web.BaseRequest, record: CallbackRecord, resolution: Resolution, started: float,
    ) -> web.StreamResponse | PrebuiltResponse:
        store = self.store
        encoded = encode_response(record.type, resolution.decision)
        response = ResponseRecord(
            callback_seq=record.seq,
            sent_at=time.time(),
            status=encoded.status,
            body=encoded.body,
            content_type=encoded.content_type,
            answered_by=resolution.answered_by,
            outcome=resolution.outcome,
            latency_ms=(asyncio.get_running_loop().time() - started) * 1000,
            phone=record.phones[0] if record.phones else "",
            decision=resolution.decision.as_dict(),
        )
        if resolution.outcome == "timed_out":
            self.stats.timed_out += 1
        else:
            self.stats.answered += 1
        try:
            store.add_response(response)
        except StoreError:
            log.exception("could not record the response for #%s", record.seq)
        if resolution.answered_by == "operator":
            store.hurry()  # someone is watching for this one: no passes spent gathering others
        self.broker.close(record.seq, resolution.outcome, response)
        return await self._durable(request, record, encoded)

    async def _durable(
        self, request: web.BaseRequest, record: CallbackRecord, encoded: EncodedResponse,
    ) -> web.StreamResponse | PrebuiltResponse:
        """Answer only once what we stored is on disk; else a 503 that the console hears of
        (an operator's answer that did not go out must not look sent). The broker learns
        either way, so an answerer waiting for its answer to go out is never left waiting."""
        problem = "the caller hung up before the answer was on disk"
        try:
            waiter = self.store.durable_waiter()
            if waiter is not None:
                await waiter
            answer = self._answer(request, encoded)
            problem = ""
            return answer
        except StoreError as exc:
            problem = f"history store unavailable: {exc}"
            return self.reject(record.peer, 503, problem, record.seq if record.held else 0)
        finally:
            if record.held:
                self.broker.delivered(record.seq, problem)


def _resolve_once(future: asyncio.Future, resolution: Resolution) -> None:
    if not future.done():
        future.set_result(resolution)


def _closing(request: web.BaseRequest, response: web.Response) -> web.Response:
    """Send `Connection: close` when the body was not (or could not be) read, and read no
    more of it: the rest is dropped unparsed (a compressed body is not inflated past the
    cap) and the connection closes once the refusal is out."""
    response.force_close()
    stop = getattr(request.protocol, "stop_reading", None)
    if stop is not None:
        stop()
    return response


def _wire(encoded: EncodedResponse) -> web.Response:
    """The answer through aiohttp, for requests that may not get ready-made bytes
    (HTTP/1.0, `Connection: close`: server/gateway/prebuilt.py)."""
    # A ready Content-Type header: cheaper than aiohttp's content_type= and charset= arguments
    return web.Response(
        status=encoded.status,
        body=encoded.body.encode("utf-8"),
        headers={"Content-Type": f"{encoded.content_type}; charset=utf-8"},
    )


def _record(callback: Callback, notes: list[str], peer: str, app_name: str) -> CallbackRecord:
    # positional: the ingest hot path (keywords cost a third more)
    return CallbackRecord(
        0, time.time(), callback.type, callback.fields, callback.parsed,
        tuple(notes) + callback.warnings if notes else callback.warnings,
        callback.phones, peer, app_name, callback.held,
    )


def never_500(
    handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """A bug must not look like an SL-side failure: answer 503 with a one-line reason.
    (`CallbackEndpoint.handle` has the same guard written inline.)"""

    async def guarded(request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await handler(request)
        except (web.HTTPException, asyncio.CancelledError):
            raise
        except Exception as exc:
            return _unexpected(request, exc)

    return guarded


def _unexpected(request: web.BaseRequest, exc: Exception) -> web.Response:
    log.exception("unexpected error handling %s %s", request.method, request.path, exc_info=exc)
    return web.Response(
        status=503, text=f"switchboard could not handle this request: {type(exc).__name__}\n"
    )


class Gateway:
    """The gateway's request handler: routes by path, counts, and answers held requests
    at shutdown. Served by `GatewayRunner` (server/gateway/runner.py)."""

    def __init__(self, config: GatewayConfig, broker: Broker, store: HistoryStore) -> None:
        self.config = config
        self.broker = broker
        self.stats = GatewayStats()
        self._endpoint = CallbackEndpoint(config, broker, store, self.stats)
        self._callbacks = self._endpoint.handle
        self._health = never_500(self._handle_health)
        self._path = config.path
        self.gate: AcceptGate | None = None
        """Pauses accepting when descriptors run low; set once listening (server/gateway/runner.py)."""

    def __call__(self, request: web.BaseRequest) -> Awaitable[web.StreamResponse | PrebuiltResponse]:
        # A plain function returning the route's coroutine: no frame of its own for the
        # held callbacks to suspend through.
        path = request.path
        method = request.method
        if path == self._path:
            if method == "POST":
                return self._callbacks(request)
            return self._refuse(request, 405, f"{method} not allowed: callbacks are POSTed to {self._path}", "POST")
        if path == "/healthz":
            if method == "GET" or method == "HEAD":
                return self._health(request)
            return self._refuse(request, 405, f"{method} not allowed on /healthz", "GET")
        return self._refuse(request, 404, f"no such path: callbacks are POSTed to {self._path}")

    async def _refuse(self, request: web.BaseRequest, status: int, reason: str, allow: str = "") -> web.Response:
        """A wrong path or method: the console hears of it too (an SL pointed at the wrong
        URL is the first thing to spot). The path is the peer's text: cut and neutralised
        where it is shown, here only cut."""
        response = self._endpoint.reject(request.remote or "", status, f"{reason} ({method_path(request)})")
        if allow:
            response.headers["Allow"] = allow
        return response

    async def _handle_health(self, request: web.BaseRequest) -> web.Response:
        gate = self.gate
        return web.json_response(
            {
                "status": "ok",
                "pending": self.broker.pending_count,
                "totals": self.stats.as_dict(),
                "uptime_s": round(time.time() - self.stats.started_at, 1),
                "max_pending": self.config.max_pending,
                "max_pending_allowed": self.stats.max_pending_allowed,
                "descriptors": {
                    "limit": self.stats.fd_limit,
                    "accepting": not (gate is not None and gate.paused),
                    "accept_pauses": gate.pauses if gate is not None else 0,
                },
            }
        )

    def refused(self, peer: str, status: int, reason: str) -> None:
        """Count and show a refusal made outside the handler (server/gateway/connection.py)."""
        self._endpoint.refused(peer, status, reason)

    def request_factory(self) -> Callable[..., web.BaseRequest]:
        """Requests that stop reading at `config.max_body` (the application's
        `client_max_size` did this), for `web.Server(request_factory=...)`."""
        loop = asyncio.get_running_loop()
        limit = self.config.max_body

        def make(message, payload, protocol, writer, task) -> web.BaseRequest:  # type: ignore[no-untyped-def]
            return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=limit)

        return make

    def answer_held(self) -> None:
        """Answer every held request with the fallback (at shutdown): without this, stopping
        waits twice its shutdown_timeout and the held clients get nothing (DESIGN.md)."""
        config = self.config
        self.broker.resolve_all(
            lambda item: Resolution(
                decision=fallback_decision(item.record.type, config.fallback),
                answered_by="fallback",
                outcome="shutdown",
            )
        )


def method_path(request: web.BaseRequest) -> str:
    """`METHOD /path` for a one-line reason: the path without its query string (it may
    carry an api_key, which is never shown), cut to 80 characters."""
    path = request.raw_path.partition("?")[0]
    return f"{request.method} {path[:80]}{'…' if len(path) > 80 else ''}"
