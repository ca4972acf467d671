"""The SL's HTTP API as client apps call it (messaging.md, sessions.md): `send_message`,
`send_messages`, `cancel_messages`, `delivery_status`, `close_sessions`, `remove_tag`,
under /api/<method>.

Parameters come as a query string or a form body, GET or POST (README.md shows GET
examples; the docs say POST); both are merged, the body winning. Every call checks the
api_key. Errors are HTTP 500 with a one-line message, as documented.
"""

from __future__ import annotations

import json
import logging
import re

from aiohttp import web

from server.sms.contract import parse_bool
from server.simulator.numbers import phone_key
from server.simulator.sl import SimulatedSL

log = logging.getLogger(__name__)

SL_KEY = web.AppKey("sl", SimulatedSL)
API_KEY = web.AppKey("api_key", str)

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class ApiError(Exception):
    """Answered as HTTP 500 with the message, as the SL does."""


async def _params(request: web.Request) -> dict[str, str]:
    params = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        try:
            form = await request.post()
        except Exception:
            raise ApiError("request body could not be read as form fields") from None
        params.update({key: value for key, value in form.items() if isinstance(value, str)})
    return params


def _require(params: dict[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value.strip():
        raise ApiError(f"missing parameter '{name}'")
    return value


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _flag(params: dict[str, str], name: str) -> bool:
    raw = params.get(name, "")
    if not raw.strip():
        return False
    value = parse_bool(raw)
    if value is None:
        raise ApiError(f"{name} {raw!r} is not a boolean (1/t/true/y/yes or 0/f/false/n/no)")
    return value


def _schedule(params: dict[str, str]) -> str:
    """The raw `on` text. Dates are parsed "very liberally" (README.md); one the simulator
    cannot read is kept as given and the message stays scheduled until canceled."""
    return params.get("on", "").strip()


def _ids_answer(ids: list[int]) -> dict:
    return {"message_ids": ",".join(str(i) for i in ids)}


async def send_message(request: web.Request, params: dict[str, str]) -> dict:
    sl = request.app[SL_KEY]
    targets = _list(params.get("phone_numbers", "") or params.get("phone_number", ""))
    if not targets:
        raise ApiError("missing parameter 'phone_number' or 'phone_numbers'")
    body = _require(params, "body")
    expect = _flag(params, "action_expected")
    on = _schedule(params)
    tag = params.get("tag", "").strip()
    ids: list[int] = []
    for phone in targets:
        ids.extend(sl.send(phone, body, on=on, action_expected=expect, tag=tag))
    return _ids_answer(ids)


async def send_messages(request: web.Request, params: dict[str, str]) -> dict:
    sl = request.app[SL_KEY]
    template = _require(params, "template")
    try:
        recipients = json.loads(_require(params, "recipients"))
    except ValueError:
        raise ApiError("recipients is not valid JSON") from None
    if not isinstance(recipients, dict) or not all(isinstance(v, dict) for v in recipients.values()):
        raise ApiError("recipients must be a JSON object of phone number -> substitutions")
    expect = _flag(params, "action_expected")
    on = _schedule(params)
    tag = params.get("tag", "").strip()
    ids: list[int] = []
    for phone, values in recipients.items():
        text = _PLACEHOLDER.sub(lambda m: _text(values.get(m.group(1), "")), template)
        ids.extend(sl.send(phone, text, on=on, action_expected=expect, tag=tag))
    return _ids_answer(ids)


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value) if value is not None else ""


def _ids(params: dict[str, str]) -> list[int]:
    try:
        return [int(part) for part in _list(_require(params, "message_ids"))]
    except ValueError:
        raise ApiError("message_ids must be comma-separated integers") from None


async def cancel_messages(request: web.Request, params: dict[str, str]) -> dict:
    sl = request.app[SL_KEY]
    canceled = 0
    for message_id in _ids(params):
        message = sl.messages.get(message_id)
        if message is not None and message.scheduled and not message.sent and not message.canceled:
            message.canceled = True
            canceled += 1
    return {"canceled_count": canceled}


async def delivery_status(request: web.Request, params: dict[str, str]) -> dict:
    sl = request.app[SL_KEY]
    found = {}
    for message_id in _ids(params):
        message = sl.messages.get(message_id)
        if message is not None:
            found[str(message_id)] = message.status
    return found


async def close_sessions(request: web.Request, params: dict[str, str]) -> dict:
    sl = request.app[SL_KEY]
    phones = _list(_require(params, "phone_numbers"))
    bad = [phone for phone in phones if phone_key(phone) is None]
    if bad:
        raise ApiError(f"invalid phone number {bad[0]!r} (10 digits with or without country code)")
    sl.end_sessions(phones)
    return {}


async def remove_tag(request: web.Request, params: dict[str, str]) -> dict:
    phone = _require(params, "phone_number")
    tag = _require(params, "tag").strip()
    if phone_key(phone) is None:
        raise ApiError(f"invalid phone number {phone!r} (10 digits with or without country code)")
    request.app[SL_KEY].remove_tag(phone, tag)
    return {}


METHODS = {
    "send_message": send_message,
    "send_messages": send_messages,
    "cancel_messages": cancel_messages,
    "delivery_status": delivery_status,
    "close_sessions": close_sessions,
    "remove_tag": remove_tag,
}


async def handle(request: web.Request) -> web.Response:
    name = request.match_info["method"]
    method = METHODS.get(name)
    if method is None:
        return web.Response(status=404, text=f"unknown API method {name!r}\n")
    try:
        params = await _params(request)
        if not params.get("api_key", "").strip():
            raise ApiError("missing parameter 'api_key'")
        if params["api_key"] != request.app[API_KEY]:
            raise ApiError("invalid api_key")
        return web.json_response(await method(request, params))
    except ApiError as exc:
        return web.Response(status=500, text=f"{exc}\n")
    except Exception as exc:  # a bug still answers as the SL does: 500 and one line
        log.exception("SL API %s failed", name)
        return web.Response(status=500, text=f"internal error in {name}: {type(exc).__name__}\n")


def make_sl_api(sl: SimulatedSL, api_key: str) -> web.Application:
    """The SL API under /api/<method>, GET or POST, answering for `sl` and accepting `api_key`."""
    app = web.Application()
    app[SL_KEY] = sl
    app[API_KEY] = api_key
    app.router.add_route("*", "/api/{method}", handle)
    return app
