"""Typed configuration, built once in `run.py` and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class AppKey:
    """An SL app allowed to call the gateway: its display name and its api_key."""

    name: str
    key: str

    @classmethod
    def parse(cls, text: str) -> "AppKey":
        """`NAME=KEY` or a bare `KEY` (named after its last four characters)."""
        name, sep, key = text.partition("=")
        if not sep:
            key, name = text, ""
        key = key.strip()
        if not key:
            raise ValueError("--api-key: the key is empty")
        name = name.strip()
        if not name or key in name:  # a name that spells the key would show it
            name = f"app {mask_key(key)}"
        return cls(name=name, key=key)


SHOWN_CHARACTERS = 4
"""A key longer than SHORT_KEY is shown by its last four characters; a shorter one not at all."""
SHORT_KEY = 8


def mask_key(key: str) -> str:
    """A key as it may be shown: `…` and its last four characters, or `••••` for a key of
    eight characters or fewer (four of eight would be half of it)."""
    if len(key) <= SHORT_KEY:
        return "••••"
    return "…" + key[-SHOWN_CHARACTERS:]


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    path: str = "/"
    api_keys: tuple[AppKey, ...] = ()
    reply_timeout: float = 20.0
    """Seconds a held callback waits for the operator before the fallback goes out."""
    fallback: str = ""
    """Reply text sent to an incoming_message when the deadline passes (empty: no reply)."""
    max_body: int = 64 * 1024
    max_fields: int = 1000
    max_pending: int = 5000
    """Held exchanges beyond this many are answered with the fallback at once."""
    head_timeout: float = 5.0
    """Seconds a client has to send a request's line and headers (server/gateway/connection.py)."""

    def app_name(self, api_key: str | None) -> str | None:
        """The display name for a key, '' when no keys are configured, None when refused."""
        if not self.api_keys:
            return mask_key(api_key) if api_key else ""
        for app in self.api_keys:
            if app.key == api_key:
                return app.name
        return None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"


@dataclass(frozen=True, slots=True)
class Config:
    """Everything `run.py` decided from the command line."""

    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    data_dir: Path = Path(".")
    headless: bool = False
    sl_url: str = ""
    """Base URL of the SL API for outbound messages (e.g. http://127.0.0.1:8090/api/)."""
    sl_api_key: str = ""
    demo: bool = False
    """Run the built-in SL simulator against our own gateway, and use it as the SL API."""
    demo_rate: float = 1.0
    demo_seed: int | None = None
    bell: bool = True
    """Ring the terminal bell when texts arrive (--no-bell turns it off)."""
    templates_file: Path | None = None
    """--templates: a JSON list of canned replies loaded at start."""
