"""`simulate` judges as the SL would, seen from the command line: a real aiohttp app on a
free loopback port answers the way real client apps do (a redirect to a login page, a
bracketed plain reply, JSON with the SL modules' `free` key, an HTML page, Rails' single
space), and the real `python run.py simulate` runs in a subprocess against it."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent

HAPPY = "[HAPPY HOUR] half-price drinks 5-7pm"
EVIL_LOCATION = "/\x1b]52;c;cHduZWQ=\x07\u202e" + "x" * 300
ANSWERS = {
    "happy": lambda: web.Response(text=HAPPY),
    "free": lambda: web.json_response({"body": "x", "free": 1}),
    "html": lambda: web.Response(text="<!DOCTYPE html><html><body><h1>Sign in</h1></body></html>",
                                 content_type="text/html"),
    "rails": lambda: web.Response(body=b" ", headers={"Content-Type": "text/html; charset=utf-8"}),
    "plain": lambda: web.Response(text="See you at 7"),
    "redirect": lambda: web.Response(status=302, headers={"Location": "/login"}),
}


async def _client_app(aiohttp_server) -> tuple[str, list[str]]:
    """The app answers each incoming_message by its body (a key of ANSWERS); it records the
    paths it was asked for, so a followed redirect would show as a GET /login."""
    seen: list[str] = []

    async def callback(request: web.Request) -> web.Response:
        form = await request.post()
        seen.append(f"POST {request.path} {form.get('body', '')}")
        return ANSWERS[str(form["body"])]()

    async def login(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        return web.Response(text="<html><form>login</form></html>", content_type="text/html")

    app = web.Application()
    app.router.add_post("/sl", callback)
    app.router.add_route("*", "/login", login)
    server = await aiohttp_server(app)
    return str(server.make_url("/sl")), seen


def _scenario(tmp_path: Path, *bodies: str) -> str:
    path = tmp_path / f"{'-'.join(bodies)}.json"
    path.write_text(json.dumps([
        {"send": {"type": "incoming_message", "phone_number": "5557000801", "body": body,
                  "sent_at": "2026-11-27T10:00:00Z"}} for body in bodies]))
    return str(path)


async def _run(*args: str) -> tuple[int, list[str], str]:
    """`python run.py ARGS` while this loop keeps serving the app: (exit code, stdout lines, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "run.py", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode().splitlines(), err.decode()


async def test_warnings_are_shown_apart_and_fail_only_with_strict(aiohttp_server, tmp_path):
    url, seen = await _client_app(aiohttp_server)
    scenario = _scenario(tmp_path, "happy", "free", "html", "rails", "plain")
    code, lines, err = await _run("simulate", "--gateway", url, "--scenario", scenario)
    assert (code, err) == (0, ""), lines
    happy, free, html, rails, plain, summary = lines
    assert happy.endswith("ok [reply]  WARNING: ambiguous: the SL may try to read it as JSON "
                          "(starts with '[', is not a JSON object)")
    assert HAPPY[:40] in happy
    assert free.endswith("ok [reply]  WARNING: unknown JSON key(s): free "
                         "(the SL reads only body, close_session, reprocess)")
    assert html.endswith("ok [reply]  WARNING: HTML body given as a reply: the texter would receive "
                         "the markup as text")
    # Rails' " " for "nothing to say" is no reply, and nothing to warn about
    assert re.search(r"← 200 ' ' \(\d+ ms\)  ok$", rails), rails
    assert plain.endswith("ok [reply]")
    assert "VIOLATION" not in "\n".join(lines)
    assert summary.startswith("summary: 5 callbacks, 2 ok, 0 with contract violations, 3 with warnings only")
    assert "warnings: " in summary and "ambiguous ×1" in summary and "unknown JSON key(s) ×1" in summary

    code, strict_lines, err = await _run("simulate", "--gateway", url, "--scenario", scenario, "--strict")
    assert (code, err) == (1, "")
    assert strict_lines[-1].startswith("summary: 5 callbacks, 2 ok, 0 with contract violations, "
                                       "3 with warnings only (--strict: warnings fail)")
    code, _, _ = await _run("simulate", "--gateway", url, "--scenario", _scenario(tmp_path, "rails", "plain"),
                            "--strict")
    assert code == 0  # --strict fails on warnings, not on replies that simply keep the contract
    assert all(entry.startswith("POST /sl ") for entry in seen)


async def test_a_redirect_is_a_violation_not_a_login_page_accepted(aiohttp_server, tmp_path):
    url, seen = await _client_app(aiohttp_server)
    code, lines, err = await _run("simulate", "--gateway", url, "--scenario",
                                  _scenario(tmp_path, "redirect", "plain", "redirect"))
    assert (code, err) == (1, "")
    redirect, plain, _, summary = lines
    assert redirect.endswith("VIOLATION: HTTP 302 instead of 200, Location: /login "
                             "(the SL does not follow redirects)")
    assert plain.endswith("ok [reply]")
    assert summary.startswith("summary: 3 callbacks, 1 ok, 2 with contract violations, 0 with warnings only")
    assert "violations: HTTP 302 instead of 200 ×2" in summary
    assert not [entry for entry in seen if "/login" in entry]  # never followed


async def test_the_peers_location_cannot_control_the_terminal(tmp_path):
    """aiohttp will not serve control characters in a header, so a raw socket does."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: *(\d+)", head)  # none on simulate's HEAD probe
        await reader.readexactly(int(length[1]) if length else 0)
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: " + EVIL_LOCATION.encode()
                     + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        code, lines, err = await _run("simulate", "--gateway", f"http://127.0.0.1:{port}/",
                                      "--scenario", _scenario(tmp_path, "evil"))
    finally:
        server.close()
    assert (code, err) == (1, "")
    line = lines[0]
    assert not {"\x1b", "\x07", "\u202e"} & set(line)
    assert "VIOLATION: HTTP 302 instead of 200, Location: /\\x1b]52;c;cHduZWQ=\\x07\\u202exxx" in line
    assert "x" * 100 not in line and "…" in line  # bounded


async def test_a_wrong_host_is_named_as_the_host():
    code, lines, err = await _run("simulate", "--gateway", "http://999.1.1.1:8080/")
    assert (code, lines) == (2, [])
    assert err == ("python run.py simulate: argument --gateway: the host '999.1.1.1' is not an IPv4 address "
                   "(four numbers, each 0-255) (see --help)\n")
    code, lines, err = await _run("serve-sl", "--host", "999.1.1.1")
    assert (code, lines) == (2, [])
    assert err == ("python run.py serve-sl: argument --host: '999.1.1.1' is not an IPv4 address "
                   "(four numbers, each 0-255) (see --help)\n")
