"""aiohttp builds two default TLS contexts when it is imported, and each loads the system's
CA certificates (about 0.1 s here, on every start, before the gateway can listen). The
gateway serves plain HTTP; only the SL client needs the certificates, and not before the
gateway is up.

`import_aiohttp()` imports aiohttp with that loading put off (the contexts it builds are
kept); `load_deferred_certificates()` loads them, once, and is called after the gateway
listens and by the SL client before its first request, so no request goes out without them.
"""

from __future__ import annotations

import importlib
import ssl
import sys
import threading

__all__ = ["import_aiohttp", "load_deferred_certificates"]

_deferred: list[ssl.SSLContext] = []
_lock = threading.Lock()


def import_aiohttp() -> None:
    """Import aiohttp (a no-op if it is already imported) without loading certificates."""
    if "aiohttp" in sys.modules:
        return

    def remember(context: ssl.SSLContext) -> None:
        _deferred.append(context)

    ssl.SSLContext.set_default_verify_paths = remember  # type: ignore[method-assign,assignment]
    try:
        importlib.import_module("aiohttp")
    finally:
        del ssl.SSLContext.set_default_verify_paths  # the C method again


def load_deferred_certificates() -> None:
    """Load the system's CA certificates into every context `import_aiohttp` built."""
    with _lock:
        while _deferred:
            _deferred.pop().set_default_verify_paths()
