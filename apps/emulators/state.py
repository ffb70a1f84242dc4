"""Per-emulator state (config, ledger, faults, issued tokens) and the pieces every app shares:
the middleware that applies faults and fills the ledger, and the control API.

Control API (no auth; refused with 403 unless the caller is on loopback):

* ``GET /_emulator/health`` → ``{"status": "ok", "emulator": name}``
* ``GET /_emulator/ledger`` → ``{"emulator": name, "entries": [...]}`` (the last ``ledger_size``
  entries, a setting of every emulator: 10,000 unless configured); ``DELETE`` clears it.
  An entry: ``request_id, client_request_id, method, path, model, prompt_tokens, completion_tokens,
  status, stream, ts, ended, fault, note`` (``client_request_id``: the id the caller sent in the
  provider's request-id header, XRouter's ``<request id>.<attempt>``, so the ledger joins usage rows; (``ts``/``ended``: when it came and went; ``status`` 0 = connection reset; ``note`` e.g. ``"cut"``, ``"client_disconnected"``).
* ``POST /_emulator/faults`` (see ``faults.py``); ``GET`` lists pending ones; ``DELETE`` clears.
* ``GET /_emulator/config``; ``POST /_emulator/config`` merges settings (dict-valued settings are
  merged key by key, others replaced; unknown keys → 400); ``DELETE`` restores the defaults.
* ``POST /_emulator/reset`` → defaults, empty ledger, no faults, no issued tokens.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .faults import Fault, FaultQueue

CONTROL_PREFIX = "/_emulator/"
FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}

# Keys on the aiohttp request, so handlers and the middleware can talk.
FAULT = web.RequestKey("emulator_fault", Fault)
USAGE = web.RequestKey("emulator_usage", dict)
REQUEST_ID = web.RequestKey("emulator_request_id", str)
NOTE = web.RequestKey("emulator_note", str)
BODY = web.RequestKey("emulator_body", object)
BODY_ERROR = web.RequestKey("emulator_body_error", str)


@dataclass
class Dialect:
    """The provider-specific hooks the shared middleware needs."""

    name: str
    # (request, status, message or None) -> the provider's own error response
    error_response: Callable[[web.Request, int, str | None], web.StreamResponse]
    token_paths: frozenset = frozenset()
    model_of: Callable[[dict], str | None] = lambda body: body.get("model") if isinstance(body.get("model"), str) else None
    stream_of: Callable[[dict], bool] = lambda body: body.get("stream") is True
    # (request) -> extra response headers (request ids and the like)
    headers: Callable[[web.Request], dict] = lambda request: {}
    # The request header that carries the caller's own request id (kept in the ledger).
    client_request_id_header: str = ""


LEDGER_SIZE = 10_000  # the default of the `ledger_size` setting
LEDGER_SIZE_MAX = 10_000_000


class Ledger:
    # Bounded, so a long benchmark run against ``run_emulators`` cannot grow it without end.

    def __init__(self, size: int = LEDGER_SIZE) -> None:
        self._entries: deque[dict] = deque(maxlen=size)
        self._lock = threading.Lock()

    def resize(self, size: int) -> None:
        """Keep the newest `size` entries from now on."""
        with self._lock:
            if size != self._entries.maxlen:
                self._entries = deque(self._entries, maxlen=size)

    def record(self, entry: dict) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> int:
        with self._lock:
            n = len(self._entries)
            self._entries.clear()
            return n


@dataclass
class EmulatorState:
    name: str
    defaults: dict
    config: dict = field(default_factory=dict)
    ledger: Ledger = field(default_factory=Ledger)
    faults: FaultQueue = field(default_factory=FaultQueue)
    tokens: dict = field(default_factory=dict)  # issued access tokens -> details
    sessions: dict = field(default_factory=dict)  # provider-specific per-session memory (GigaChat's prompt cache)

    def __post_init__(self) -> None:
        self.defaults = {"ledger_size": LEDGER_SIZE, **self.defaults}
        self.config = copy.deepcopy(self.defaults)
        self.ledger.resize(self.config["ledger_size"])

    def configure(self, changes: dict) -> None:
        unknown = set(changes) - set(self.defaults)
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}; known: {sorted(self.defaults)}")
        size = changes.get("ledger_size", self.config["ledger_size"])
        if type(size) is not int or not 1 <= size <= LEDGER_SIZE_MAX:
            raise ValueError(f"ledger_size must be an integer from 1 to {LEDGER_SIZE_MAX}")
        for key, value in changes.items():
            if isinstance(self.config.get(key), dict) and isinstance(value, dict):
                self.config[key].update(copy.deepcopy(value))
            else:
                self.config[key] = copy.deepcopy(value)
        self.ledger.resize(self.config["ledger_size"])

    def reset(self) -> None:
        self.config = copy.deepcopy(self.defaults)
        self.ledger.clear()
        self.ledger.resize(self.config["ledger_size"])
        self.faults.clear()
        self.tokens.clear()
        self.sessions.clear()


def new_state(name: str, defaults: dict, options: dict) -> EmulatorState:
    """State whose baseline is the provider defaults overridden by ``make_app(**options)``."""
    probe = EmulatorState(name, defaults)
    probe.configure(options)
    return EmulatorState(name, probe.config)


STATE_KEY = web.AppKey("emulator_state", EmulatorState)
DIALECT_KEY = web.AppKey("emulator_dialect", Dialect)


def build_app(state: EmulatorState, dialect: Dialect) -> web.Application:
    """An application with the fault/ledger middleware and the control routes; the provider
    module adds its own routes."""
    app = web.Application(middlewares=[_emulate], client_max_size=64 * 1024 * 1024)
    app[STATE_KEY] = state
    app[DIALECT_KEY] = dialect
    app.on_response_prepare.append(_add_headers)
    _add_control_routes(app)
    return app


def json_body(request: web.Request) -> Any:
    """The request body parsed by the middleware (None if absent, see BODY_ERROR if invalid)."""
    return request.get(BODY)


def set_usage(request: web.Request, prompt_tokens: int, completion_tokens: int) -> None:
    request[USAGE] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}


async def _read_json(request: web.Request) -> None:
    # Parse whatever comes, whatever its Content-Type (the real gateways do), except forms.
    if not request.can_read_body or request.content_type in FORM_TYPES:
        return
    raw = await request.read()
    if not raw:
        return
    try:
        request[BODY] = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        request[BODY_ERROR] = str(exc)


@web.middleware
async def _emulate(request: web.Request, handler):
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    state, dialect = request.app[STATE_KEY], request.app[DIALECT_KEY]
    request[REQUEST_ID] = str(uuid.uuid4())
    await _read_json(request)
    body = request.get(BODY)
    model = dialect.model_of(body) if isinstance(body, dict) else None
    stream = dialect.stream_of(body) if isinstance(body, dict) else False
    fault = state.faults.take(request.path, model, request.path in dialect.token_paths)
    request[FAULT] = fault
    if fault is not None and fault.request_id is not None:
        request[REQUEST_ID] = fault.request_id
    entry = {
        "request_id": request[REQUEST_ID],
        "client_request_id": request.headers.get(dialect.client_request_id_header, "")[:200]
        if dialect.client_request_id_header else "",
        "method": request.method,
        "path": request.path,
        "model": model,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "status": 0,
        "stream": stream,
        "ts": time.time(),
        "fault": fault.kind if fault else None,
        "note": None,
    }
    try:
        response = await _respond(request, handler, fault, dialect)
        entry["status"] = response.status
        return response
    finally:
        entry.update(request.get(USAGE) or {})
        entry["note"] = request.get(NOTE)
        entry["ended"] = time.time()  # with `ts`: how many requests were in flight at once
        state.ledger.record(entry)


async def _respond(request: web.Request, handler, fault: Fault | None, dialect: Dialect):
    if fault and fault.latency_ms:
        await asyncio.sleep(fault.latency_ms / 1000)
    if fault and fault.reset:
        request[NOTE] = "reset"
        if request.transport is not None:
            request.transport.abort()
        # Nothing reaches the client: the transport is gone. Raising stops aiohttp's own reply.
        raise web.HTTPServiceUnavailable()
    if fault and fault.status:
        return fault_response(request, fault, dialect)
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return dialect.error_response(request, 404, "Not Found")
    except web.HTTPMethodNotAllowed:
        return dialect.error_response(request, 405, "Method Not Allowed")


def fault_response(request: web.Request, fault: Fault, dialect: Dialect) -> web.StreamResponse:
    if fault.body is not None:
        response = web.Response(body=_compact(fault.body).encode("utf-8"), status=fault.status, content_type="application/json")
    else:
        response = dialect.error_response(request, fault.status, fault.message)
    if fault.retry_after is not None:
        response.headers["Retry-After"] = str(fault.retry_after)
    return response


def _compact(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith(CONTROL_PREFIX) or REQUEST_ID not in request:
        return
    for name, value in request.app[DIALECT_KEY].headers(request).items():
        response.headers[name] = value


# --- Control API ---


def _add_control_routes(app: web.Application) -> None:
    p = CONTROL_PREFIX
    app.router.add_get(p + "health", _health)
    app.router.add_get(p + "ledger", _ledger_get)
    app.router.add_delete(p + "ledger", _ledger_clear)
    app.router.add_get(p + "faults", _faults_get)
    app.router.add_post(p + "faults", _faults_add)
    app.router.add_delete(p + "faults", _faults_clear)
    app.router.add_get(p + "config", _config_get)
    app.router.add_post(p + "config", _config_set)
    app.router.add_delete(p + "config", _config_reset)
    app.router.add_post(p + "reset", _reset)


def _control(view):
    async def wrapper(request: web.Request) -> web.Response:
        if request.remote not in LOOPBACK:
            return web.json_response({"error": "control API is loopback-only"}, status=403)
        try:
            return await view(request, request.app[STATE_KEY])
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)

    return wrapper


async def _payload(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None


@_control
async def _health(request, state):
    return web.json_response({"status": "ok", "emulator": state.name})


@_control
async def _ledger_get(request, state):
    return web.json_response({"emulator": state.name, "entries": state.ledger.entries()})


@_control
async def _ledger_clear(request, state):
    return web.json_response({"cleared": state.ledger.clear()})


@_control
async def _faults_get(request, state):
    return web.json_response({"faults": state.faults.pending()})


@_control
async def _faults_add(request, state):
    data = await _payload(request)
    items = data.get("faults") if isinstance(data, dict) and "faults" in data else data
    items = items if isinstance(items, list) else [items]
    faults = [Fault.from_json(item) for item in items]  # validate all before queueing any
    for fault in faults:
        state.faults.add(fault)
    return web.json_response({"queued": [f.to_json() for f in faults]})


@_control
async def _faults_clear(request, state):
    return web.json_response({"cleared": state.faults.clear()})


@_control
async def _config_get(request, state):
    return web.json_response(state.config)


@_control
async def _config_set(request, state):
    data = await _payload(request)
    if not isinstance(data, dict):
        raise ValueError("config must be a JSON object")
    state.configure(data)
    return web.json_response(state.config)


@_control
async def _config_reset(request, state):
    state.config = copy.deepcopy(state.defaults)
    state.ledger.resize(state.config["ledger_size"])
    return web.json_response(state.config)


@_control
async def _reset(request, state):
    state.reset()
    return web.json_response({"status": "reset"})
