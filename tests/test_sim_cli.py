"""`simulate` and `serve-sl` as the user runs them: simulate_main in a thread of its own
(it owns its event loop) against small gateways served by the test's loop; serve-sl as
a real subprocess stopped with SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import sys
from pathlib import Path

import pytest
from aiohttp import web

import run
from server.gateway.runner import free_port
from server.simulator.cli import serve_sl_main, simulate_main
from server.sl_client import SLClient

from .test_sim_helpers import TinyGateway, assert_well_formed, serve

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.json"))
FALLBACK = "Thanks, we will text you back"


def compliant(fields: dict[str, str]) -> web.Response:
    """A gateway that keeps the contract: the fallback text for a message, nothing else."""
    if fields["type"] == "incoming_message":
        return web.Response(text=FALLBACK)
    return web.Response(text="")


async def simulate(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(simulate_main, list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


async def test_a_compliant_gateway_passes_and_count_is_honoured(aiohttp_server):
    gateway = TinyGateway(compliant)
    url = await serve(aiohttp_server, gateway)
    code, out, err = await simulate("--gateway", url, "--count", "30", "--rate", "200", "--seed", "4")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 31 and len(gateway.received) == 30
    assert all(line.startswith("→ ") and line.endswith(("ok", "ok [reply]")) for line in lines[:-1]), lines
    assert lines[-1].startswith("summary: 30 callbacks, 30 ok, 0 with contract violations")
    for fields in gateway.received:
        assert_well_formed(fields)
        assert fields["api_key"] == "sim-key"


async def test_a_contract_breaking_gateway_exits_1(aiohttp_server):
    def breaking(fields):
        if fields["type"] == "incoming_message":
            return web.json_response({"body": ["wrong", "kind"]})
        return web.Response(text="")

    url = await serve(aiohttp_server, TinyGateway(breaking))
    code, out, _ = await simulate("--gateway", url, "--count", "5", "--rate", "200", "--seed", "1",
                                  "--api-key", "k-2")
    assert code == 1
    assert "VIOLATION: JSON 'body' is not a string" in out
    assert "with contract violations" in out.splitlines()[-1]
    assert "violations: JSON 'body' is not a string ×" in out.splitlines()[-1]


async def test_warnings_pass_unless_strict(aiohttp_server):
    def loose(fields):
        if fields["type"] == "incoming_message":
            return web.json_response({"body": "x", "free": 1})  # the SL's own modules send `free`
        return web.Response(text="")

    url = await serve(aiohttp_server, TinyGateway(loose))
    for strict, expected in (((), 0), (("--strict",), 1)):
        code, out, err = await simulate("--gateway", url, "--count", "4", "--rate", "200", "--seed", "2", *strict)
        assert (code, err) == (expected, ""), out
        lines = out.splitlines()
        warned = [line for line in lines if "  WARNING: unknown JSON key(s): free" in line]
        assert warned and all(" ok [reply]  WARNING: " in line for line in warned)
        assert "VIOLATION" not in out
        assert f"0 with contract violations, {len(warned)} with warnings only" in lines[-1]
        assert ("(--strict: warnings fail)" in lines[-1]) == bool(strict)


async def test_peer_text_is_neutralised_before_printing(aiohttp_server):
    evil = "\x1b]52;c;cHduZWQ=\x07 hi\u202e\nsecond line"
    url = await serve(aiohttp_server, TinyGateway(lambda f: web.Response(text=evil)))
    code, out, _ = await simulate("--gateway", url, "--count", "3", "--rate", "200", "--seed", "1")
    assert code == 0
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert len(out.splitlines()) == 4


async def test_timeout_option(aiohttp_server):
    async def slow(fields):
        await asyncio.sleep(3)
        return web.Response(text="")

    url = await serve(aiohttp_server, TinyGateway(slow))
    code, out, _ = await simulate("--gateway", url, "--count", "1", "--timeout", "0.3")
    assert code == 1
    assert "VIOLATION: no response within 0.3 s" in out


@pytest.mark.parametrize("argv", [
    [], ["--gateway", "localhost:8080"], ["--gateway", "http://x/", "--count", "0"],
    ["--gateway", "http://x/", "--rate", "fast"], ["--gateway", "http://x/", "--timeout", "-1"],
    ["--gateway", "http://x/", "--bogus"],
])
def test_bad_input_exits_2_with_one_line(argv, capsys):
    assert simulate_main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1


def test_unreachable_gateway_exits_2():
    out, err = io.StringIO(), io.StringIO()
    url = f"http://127.0.0.1:{free_port()}/"
    assert simulate_main(["--gateway", url, "--count", "3"], out, err) == 2
    assert out.getvalue() == ""
    assert err.getvalue().startswith(f"switchboard simulate: cannot reach the gateway at {url}: ")
    assert len(err.getvalue().splitlines()) == 1


def test_bad_scenario_file_exits_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"send": {"body": "no type"}}]')
    err = io.StringIO()
    assert simulate_main(["--gateway", "http://127.0.0.1:1/", "--scenario", str(bad)], io.StringIO(), err) == 2
    assert "step 1: 'send' must be an object with a 'type'" in err.getvalue()
    err = io.StringIO()
    assert simulate_main(["--gateway", "http://127.0.0.1:1/", "--scenario", str(tmp_path / "none.json")],
                         io.StringIO(), err) == 2
    assert "cannot read scenario" in err.getvalue()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)
async def test_shipped_scenarios_pass_against_a_compliant_gateway(aiohttp_server, scenario):
    gateway = TinyGateway(compliant)
    url = await serve(aiohttp_server, gateway)
    code, out, err = await simulate("--gateway", url, "--scenario", str(scenario))
    assert (code, err) == (0, ""), out
    steps = [step for step in json.loads(scenario.read_text()) if "send" in step]
    assert len(gateway.received) == len(steps)  # exactly the scripted callbacks, no follow-ups
    for fields in gateway.received:
        assert_well_formed(fields)


def test_every_callback_scenario_covers_every_type():
    from server.sms.contract import CallbackType

    steps = json.loads((ROOT / "scenarios" / "every-callback.json").read_text())
    assert {step["send"]["type"] for step in steps if "send" in step} == {t.value for t in CallbackType}


async def test_failed_expectations_count_as_violations(aiohttp_server, tmp_path):
    scenario = tmp_path / "expect.json"
    scenario.write_text(json.dumps([
        {"send": {"type": "incoming_message", "phone_number": "5551230001", "body": "HI", "sent_at": "10:00"},
         "expect": {"status": 200, "json": {"body": "Hello", "close_session": True}}},
        {"send": {"type": "subscription_created", "phone_number": "5551230001"}, "expect": {"tags": ["vip"]}},
        {"wait": 0.01},
        {"send": {"type": "phone_blacklisted", "phone_number": "5551230001"}, "expect": {"empty": True}},
    ]))

    def answer(fields):
        if fields["type"] == "incoming_message":
            return web.json_response({"body": "Hello", "close_session": True})
        if fields["type"] == "subscription_created":
            return web.Response(text="gold")
        return web.Response(text="")

    url = await serve(aiohttp_server, TinyGateway(answer))
    code, out, _ = await simulate("--gateway", url, "--scenario", str(scenario))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].endswith("ok [reply; close_session]")
    assert "VIOLATION: expected tags ['vip'], got ['gold']" in lines[1]
    assert lines[2].endswith("ok")
    assert lines[3].startswith("summary: 3 callbacks, 2 ok, 1 with contract violations")


def test_run_py_dispatches_simulate(capsys):
    assert run.main(["simulate", "--count", "nope"]) == 2
    assert "--count must be a number" in capsys.readouterr().err
    assert run.main(["serve-sl", "--port", "99999"]) == 2


async def test_serve_sl_runs_the_api_and_texters_and_stops_on_signals(aiohttp_server):
    gateway = TinyGateway(compliant)
    url = await serve(aiohttp_server, gateway)
    for sig in (signal.SIGINT, signal.SIGTERM):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "run.py", "serve-sl", "--port", "0", "--gateway", url, "--rate", "20",
            "--seed", "3", "--api-key", "serve-key",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            first = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
            assert first.startswith("simulated SL API at http://127.0.0.1:"), first
            sl_url = first.split(" at ", 1)[1].split(" ", 1)[0]
            client = SLClient(sl_url, "serve-key")
            try:
                result = await client.send_message("5551230001", "hello from the API")
                assert result.error == "" and len(result.message_ids) == 1
            finally:
                await client.close()
            await gateway.wait_for(lambda: bool(gateway.of_type("incoming_message")), timeout=10)
            process.send_signal(sig)
            out, err = await asyncio.wait_for(process.communicate(), 15)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, err.decode()
        assert out.decode().splitlines()[-1].startswith("summary: ")
        assert err.decode() == ""


def test_serve_sl_busy_port_is_a_one_line_error():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        out, err = io.StringIO(), io.StringIO()
        assert serve_sl_main(["--port", str(port)], out, err) == 2
    assert err.getvalue().startswith(f"switchboard serve-sl: cannot listen on 127.0.0.1:{port}")
    assert len(err.getvalue().splitlines()) == 1
