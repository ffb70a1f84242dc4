"""Fixtures for the adapter tests: adapters wired to the session's emulators over loopback HTTP.

Every test starts from clean emulators (no faults, default settings, no issued tokens) and an
empty token cache in its own Redis namespace, so a token cached by one test never serves another.
"""

import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from apps.emulators.control import EmulatorControl
from apps.emulators.gigachat_auth import DEMO_AUTHORIZATION_KEY
from apps.providers.adapters import adapter_class
from apps.providers.adapters.base import CredentialConfig, ProviderConfig
from apps.providers.adapters.tokens import TOKENS

YANDEX_API_KEY = "demo-yandex-api-key"
YANDEX_FOLDER = "b1gdemofolder"
MTS_KEY = "sk-demo-mts-key"
TBANK_KEY = "sk-demo-tbank-key"


class Controls(dict):
    """EmulatorControl by provider name; `since` is when the test started."""

    since = 0.0


@pytest.fixture
def controls(emulators):
    """EmulatorControl per provider, reset before and after the test."""
    made = Controls((name, EmulatorControl(emulators[name].origin)) for name in ("gigachat", "yandexgpt", "mts", "tbank"))
    for control in made.values():
        control.reset()
    made.since = time.time()
    yield made
    for control in made.values():
        control.reset()
        control.close()


@pytest.fixture(autouse=True)
async def token_cache(monkeypatch):
    """A fresh in-process cache; with REDIS_URL set (CI), a Redis client of this test's event loop."""
    from django.conf import settings

    TOKENS.clear()
    monkeypatch.setattr(TOKENS, "prefix", f"xrouter:test:{uuid.uuid4().hex[:8]}:token:")
    client = None
    if settings.REDIS_URL:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.REDIS_URL)
    monkeypatch.setattr(TOKENS, "_redis", lambda: client)
    yield TOKENS
    TOKENS.clear()
    if client is not None:
        keys = await client.keys(TOKENS.prefix + "*")
        if keys:
            await client.delete(*keys)
        await client.aclose()


def provider_config(emulators, kind: str, secrets: dict | None = None, **overrides) -> ProviderConfig:
    emulator = emulators["yandexgpt" if kind == "yandexgpt" else kind]
    defaults = {
        "gigachat": {"authorization_key": DEMO_AUTHORIZATION_KEY},
        "yandexgpt": {"api_key": YANDEX_API_KEY, "folder_id": YANDEX_FOLDER},
        "mts": {"api_key": MTS_KEY},
        "tbank": {"api_key": TBANK_KEY},
    }
    max_concurrency = overrides.pop("max_concurrency", 0)
    fields = {
        "name": kind,
        "kind": kind,
        "base_url": emulator.base_url,
        "auth_url": emulator.auth_url or "",
        "credentials": (CredentialConfig("default", defaults[kind] if secrets is None else secrets, max_concurrency),),
    }
    fields.update(overrides)
    return ProviderConfig(**fields)


@pytest.fixture
async def make_adapter(emulators, controls):
    """make_adapter("gigachat", secrets=..., **ProviderConfig overrides) → a live adapter, closed afterwards."""
    made = []

    def make(kind: str, secrets: dict | None = None, **overrides):
        adapter = adapter_class(kind)(provider_config(emulators, kind, secrets, **overrides))
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.close()


def user(text: str) -> dict:
    return {"role": "user", "content": text}


async def collect(stream) -> list:
    return [chunk async for chunk in stream]


def joined(chunks, key: str = "content") -> str:
    return "".join((c.delta or {}).get(key, "") for c in chunks)


def ledger(controls, name: str, path: str | None = None) -> list[dict]:
    """This test's requests to one emulator. A request a previous test abandoned (a timeout test)
    is logged only when its handler finishes, possibly during this test: its start time gives it away."""
    entries = controls[name].ledger()
    return [e for e in entries if e["ts"] >= controls.since and (path is None or e["path"] == path)]


# --- Redis for the cross-process token test -------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url():
    """REDIS_URL when set (CI); otherwise a private redis-server on a free port if one is installed."""
    from django.conf import settings

    if settings.REDIS_URL:
        yield settings.REDIS_URL
        return
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("XROUTER_REQUIRE_SERVICES") == "1":
            pytest.fail("Redis is required but neither REDIS_URL nor redis-server is available")
        pytest.skip("no Redis available")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


# --- a scripted upstream for wire shapes the emulators do not produce -------------------------
class Scripted:
    """A loopback server that answers every request with prepared raw chunks, and records requests."""

    def __init__(self):
        self.requests: list[dict] = []
        self.origin = ""
        self._runner = None
        self.status = 200
        self.chunks: list[bytes] = []
        self.content_type = "application/json"

    async def start(self):
        from aiohttp import web

        async def handler(request):
            raw = await request.read()
            self.requests.append({"path": request.path, "headers": dict(request.headers), "body": raw})
            response = web.StreamResponse(status=self.status)
            response.headers["Content-Type"] = self.content_type
            await response.prepare(request)
            for chunk in self.chunks:
                await response.write(chunk)
            await response.write_eof()
            return response

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.origin = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    def answer(self, *chunks: bytes | str, status: int = 200, content_type: str = "application/json"):
        self.chunks = [c.encode() if isinstance(c, str) else c for c in chunks]
        self.status, self.content_type = status, content_type

    async def stop(self):
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def scripted():
    server = await Scripted().start()
    yield server
    await server.stop()
