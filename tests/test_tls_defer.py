"""Start-up leaves aiohttp's TLS certificates for later (server/gateway/tls_defer.py), and
nothing goes out without them: the SL client loads them before its first request, and the
gateway a moment after it listens. Each case in a fresh interpreter (aiohttp imported once)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHECK = """
import asyncio, ssl, sys
sys.path.insert(0, sys.argv[1])
from server.gateway.tls_defer import import_aiohttp
import_aiohttp()
import aiohttp.connector as connector
system = ssl.create_default_context().cert_store_stats()["x509_ca"]
contexts = (connector._SSL_CONTEXT_VERIFIED, connector._SSL_CONTEXT_UNVERIFIED)
before = [c.cert_store_stats()["x509_ca"] for c in contexts]
from server.sl_client import SLClient
async def call():
    client = SLClient("http://127.0.0.1:9/api/", "key", timeout=2)
    result = await client.{call}
    await client.close()
    return result
print(asyncio.run(call()))
after = [c.cert_store_stats()["x509_ca"] for c in contexts]
print(system, sum(before), sum(after))
"""


def test_the_sl_client_loads_the_deferred_certificates_before_its_first_request():
    call = "send_message('5550000001', 'hi')"
    done = subprocess.run([sys.executable, "-c", CHECK.replace("{call}", call), str(REPO)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    system, before, after = done.stdout.splitlines()[-1].split(" ", 2)
    assert int(system) > 0, "this machine has no CA certificates to load"
    assert before == "0" and int(after) == 2 * int(system)  # both contexts, loaded


GATEWAY = """
import asyncio, ssl, sys
sys.path.insert(0, sys.argv[1])
from server.gateway.tls_defer import import_aiohttp
import_aiohttp()
import aiohttp.connector as connector
from data.store import HistoryStore
from server.broker import Broker
from server.config import GatewayConfig
from server.gateway.runner import GatewayServer
async def main():
    store = HistoryStore.open(sys.argv[2])
    server = GatewayServer(GatewayConfig(port=0), Broker(), store)
    await server.start()
    at_start = connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"]
    await asyncio.sleep(1.3)
    later = connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"]
    await server.stop()
    store.close()
    print(at_start, later, ssl.create_default_context().cert_store_stats()["x509_ca"])
asyncio.run(main())
"""


def test_the_gateway_listens_first_and_loads_them_a_moment_later(tmp_path):
    done = subprocess.run([sys.executable, "-c", GATEWAY, str(REPO), str(tmp_path / "history")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    at_start, later, system = done.stdout.split()
    assert at_start == "0" and later == system != "0"
