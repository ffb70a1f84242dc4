"""Serving the emulators: ``start_emulators`` (inside a running event loop) and
``EmulatorThread`` (a background thread with its own loop, for sync tests and scripts).

Usable without Django. Example::

    with EmulatorThread() as emulators:            # all four, ephemeral ports
        url = emulators["gigachat"].base_url       # http://127.0.0.1:PORT/api/v1
        emulators["yandexgpt"].auth_url            # http://127.0.0.1:PORT/iam/v1/tokens
"""

from __future__ import annotations

import asyncio
import importlib
import ssl
import threading
from dataclasses import dataclass

from aiohttp import web

from .state import STATE_KEY, EmulatorState

EMULATORS = ("gigachat", "yandexgpt", "mts", "tbank")
_MODULES = {
    "gigachat": ("apps.emulators.gigachat", {}),
    "yandexgpt": ("apps.emulators.yandexgpt", {}),
    "mts": ("apps.emulators.openai_like", {"flavour": "mts"}),
    "tbank": ("apps.emulators.openai_like", {"flavour": "tbank"}),
}
# The paths adapters put after the origin.
_BASE_PATHS = {"gigachat": "/api/v1", "yandexgpt": "", "mts": "/v1", "tbank": "/v1"}
_AUTH_PATHS = {"gigachat": "/api/v2/oauth", "yandexgpt": "/iam/v1/tokens"}


def make_app(name: str, **options) -> web.Application:
    module_name, fixed = _MODULES[name]
    return importlib.import_module(module_name).make_app(**fixed, **options)


@dataclass
class RunningEmulator:
    name: str
    runner: web.AppRunner
    host: str
    port: int
    scheme: str

    @property
    def origin(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "::", ""):  # nosec B104 # recognises a wildcard bind, binds nothing
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin + _BASE_PATHS[self.name]

    @property
    def auth_url(self) -> str | None:
        path = _AUTH_PATHS.get(self.name)
        return self.origin + path if path else None

    @property
    def control_url(self) -> str:
        return self.origin + "/_emulator"

    @property
    def state(self) -> EmulatorState:
        """Direct access for in-process tests; prefer the control API from other threads."""
        return self.runner.app[STATE_KEY]


async def start_emulators(
    host: str = "127.0.0.1",
    ports: dict[str, int] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    options: dict[str, dict] | None = None,
) -> dict[str, RunningEmulator]:
    """Start the emulators named in ``ports`` (all four on ephemeral ports when None; port 0 =
    ephemeral). ``options[name]`` overrides that emulator's default settings."""
    ports = dict.fromkeys(EMULATORS, 0) if ports is None else ports
    running: dict[str, RunningEmulator] = {}
    try:
        for name, port in ports.items():
            app = make_app(name, **(options or {}).get(name, {}))
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
            await site.start()
            bound = runner.addresses[0][1]
            running[name] = RunningEmulator(name, runner, host, bound, "https" if ssl_context else "http")
    except BaseException:
        await stop_emulators(running)
        raise
    return running


async def stop_emulators(running: dict[str, RunningEmulator]) -> None:
    for emulator in running.values():
        await emulator.runner.cleanup()


class EmulatorThread:
    """The emulators served from a daemon thread with its own event loop.

    ``EmulatorThread(host, ports, ssl_context, options)`` takes the arguments of
    ``start_emulators``; ``ports`` may also be ``0`` (all four, ephemeral). ``start()`` blocks
    until every emulator listens (and re-raises a startup error); ``stop()`` shuts them down.
    ``thread["gigachat"]`` is a ``RunningEmulator`` (``origin``, ``base_url``, ``auth_url``, ``port``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        ports: dict[str, int] | int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        options: dict[str, dict] | None = None,
    ) -> None:
        self.host, self.ssl_context, self.options = host, ssl_context, options
        self.ports = None if ports in (None, 0) else ports
        self.emulators: dict[str, RunningEmulator] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def __getitem__(self, name: str) -> RunningEmulator:
        return self.emulators[name]

    def start(self, timeout: float = 10.0) -> EmulatorThread:
        self._thread = threading.Thread(target=self._run, name="emulators", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("emulators did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(stop_emulators(self.emulators), self._loop).result(timeout)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self.emulators = self._loop.run_until_complete(start_emulators(self.host, self.ports, self.ssl_context, self.options))
        except BaseException as exc:  # handed to start() in the caller's thread
            self._error = exc
            self._ready.set()
            self._loop.close()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()
