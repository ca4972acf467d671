"""The SL's HTTP API as client apps call it (messaging.md, sessions.md): `send_message`,
`send_messages`, `cancel_messages`, `delivery_status`, `close_sessions`, `remove_tag`.

Parameters come as a query string or a form body (the docs show both). Errors are
HTTP 500 with a one-line message, as documented.
"""

from __future__ import annotations

import json
import re

from aiohttp import web

from ..contract import parse_bool
from .sl import SimulatedSL

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


def _phones(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


async def send_message(request: web.Request, params: dict[str, str]) -> dict:
    sl = request.app[SL_KEY]
    body = _require(params, "body")
    targets = _phones(params.get("phone_numbers", "") or params.get("phone_number", ""))
    if not targets:
        raise ApiError("missing parameter 'phone_number' or 'phone_numbers'")
    expect = parse_bool(params["action_expected"]) if params.get("action_expected") else False
    if expect is None:
        raise ApiError(f"action_expected {params['action_expected']!r} is not a boolean")
    ids: list[int] = []
    for phone in targets:
        sent = sl.send(phone, body, scheduled=params.get("on", ""))
        ids.extend(sent)
        if expect and sent and sent[0] > 0:
            sl.phone(sl.messages[sent[0]].phone).session_open = True
    return {"message_ids": ",".join(str(i) for i in ids)}


async def send_messages(request: web.Request, params: dict[str, str]) -> dict:
    sl = request.app[SL_KEY]
    template = _require(params, "template")
    try:
        recipients = json.loads(_require(params, "recipients"))
    except ValueError:
        raise ApiError("recipients is not valid JSON") from None
    if not isinstance(recipients, dict) or not all(isinstance(v, dict) for v in recipients.values()):
        raise ApiError("recipients must be a JSON object of phone number -> substitutions")
    ids: list[int] = []
    for phone, values in recipients.items():
        text = _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), "")), template)
        ids.extend(sl.send(phone, text, scheduled=params.get("on", "")))
    return {"message_ids": ",".join(str(i) for i in ids)}


def _ids(params: dict[str, str]) -> list[int]:
    try:
        return [int(part) for part in _phones(_require(params, "message_ids"))]
    except ValueError:
        raise ApiError("message_ids must be comma-separated integers") from None


async def cancel_messages(request: web.Request, params: dict[str, str]) -> dict:
    sl = request.app[SL_KEY]
    canceled = 0
    for message_id in _ids(params):
        message = sl.messages.get(message_id)
        if message is not None and message.scheduled and not message.canceled:
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
    phones = _phones(_require(params, "phone_numbers"))
    sl.spawn(sl.close_sessions(phones))
    return {}


async def remove_tag(request: web.Request, params: dict[str, str]) -> dict:
    _require(params, "phone_number")
    _require(params, "tag")
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
    method = METHODS.get(request.match_info["method"])
    if method is None:
        return web.Response(status=404, text=f"unknown API method {request.match_info['method']!r}\n")
    try:
        params = await _params(request)
        if params.get("api_key") != request.app[API_KEY]:
            raise ApiError("invalid api_key")
        return web.json_response(await method(request, params))
    except ApiError as exc:
        return web.Response(status=500, text=f"{exc}\n")


def make_sl_api(sl: SimulatedSL, api_key: str) -> web.Application:
    """The SL API under /api/<method>, GET or POST."""
    app = web.Application()
    app[SL_KEY] = sl
    app[API_KEY] = api_key
    app.router.add_route("*", "/api/{method}", handle)
    return app
