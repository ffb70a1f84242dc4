"""Events every gateway process must see within a second: config edits, key revocations,
breaker openings, health results.

`publish` calls this process's handlers at once and, when Redis is configured, sends the
event on one pub/sub channel; each gateway process runs `listen()` and calls its own
handlers for events from the others. Handlers only invalidate in-process state (cheap,
thread-safe), so the hot path never waits on Redis.

Every message is signed (apps/common/signing.py): one without a valid signature — written by anyone
but an XRouter process holding XROUTER_BUS_HMAC_KEYS — is dropped, counted in
`xrouter_bus_unsigned_total` and logged without its content. Handlers still bound what they read
from a payload (apps/routing/state.py), a second line behind the signature.
"""

import asyncio
import logging
import math
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable

import orjson
from django.conf import settings
from prometheus_client import Counter

from . import signing

log = logging.getLogger(__name__)
CHANNEL = f"{settings.XROUTER['REDIS_NAMESPACE']}:bus"
ORIGIN = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

_handlers: dict[str, list[Callable]] = defaultdict(list)
_sync_client = None
_connected = False
HEARTBEAT = 2.0  # seconds: a silent Redis is noticed (the bus counts as down) within about two of these
UNSIGNED = Counter("xrouter_bus_unsigned_total", "Bus messages dropped for a missing or wrong signature")
MAX_MESSAGE = 4 * 2**20  # bytes: the largest legitimate event (a bulk key revocation's ids) is far smaller
UNSIGNED_LOG_EVERY = 10.0  # seconds between log lines about dropped messages
_unsigned_logged = -UNSIGNED_LOG_EVERY


def bounded(value, low: float, high: float, default: float) -> float:
    """A number read from an event, within [low, high]; `default` if it is not a finite number. Events are
    signed, but a handler still never trusts one to set a cooldown of a year or a negative count."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return min(max(float(value), low), high)


def connected() -> bool:
    """Whether this process hears other processes' events now (its listener is subscribed).

    False without Redis, before `listen()` subscribes and while it reconnects: caches that rely
    on events for freshness then re-check sooner."""
    return _connected


def subscribe(topic: str, handler: Callable[[dict], None]) -> None:
    _handlers[topic].append(handler)


def _dispatch(topic: str, payload: dict) -> None:
    for handler in list(_handlers.get(topic, ())):
        try:
            handler(payload)
        except Exception:  # one bad handler must not starve the others
            log.exception("bus handler failed", extra={"topic": topic})


def publish(topic: str, payload: dict | None = None) -> None:
    """Announce an event to this process and, through Redis, to every other one."""
    global _sync_client
    payload = payload or {}
    _dispatch(topic, payload)
    if not settings.REDIS_URL:
        return
    import redis

    try:
        if _sync_client is None:
            _sync_client = redis.Redis.from_url(settings.REDIS_URL)
        _sync_client.publish(CHANNEL, _message(topic, payload))
    except redis.RedisError:
        log.exception("bus publish failed; other processes pick the change up at their TTL", extra={"topic": topic})


def publish_nowait(topic: str, payload: dict | None = None) -> None:
    """From the event loop: apply here now, send to the others in the background."""
    payload = payload or {}
    _dispatch(topic, payload)
    if settings.REDIS_URL:
        task = asyncio.get_running_loop().create_task(_send(topic, payload))
        _background.add(task)
        task.add_done_callback(_background.discard)


_background: set = set()


async def apublish(topic: str, payload: dict | None = None) -> None:
    payload = payload or {}
    _dispatch(topic, payload)
    await _send(topic, payload)


async def _send(topic: str, payload: dict) -> None:
    from . import redis as shared_redis

    client = shared_redis.client()
    if client is not None:
        try:
            await client.publish(CHANNEL, _message(topic, payload))
        except Exception:
            log.exception("bus publish failed", extra={"topic": topic})


def _message(topic: str, payload: dict) -> bytes:
    return signing.signer().seal(orjson.dumps({"topic": topic, "origin": ORIGIN, "payload": payload}))


def _receive(data) -> None:
    """Apply one message from the channel: signed by an XRouter process, or dropped."""
    raw = signing.signer().open(data) if isinstance(data, bytes) and len(data) <= MAX_MESSAGE else None
    if raw is None:
        global _unsigned_logged
        UNSIGNED.inc()
        if time.monotonic() - _unsigned_logged >= UNSIGNED_LOG_EVERY:  # a flood of forgeries is not a flood of logs
            _unsigned_logged = time.monotonic()
            log.warning("bus message without a valid signature dropped (%d bytes; written by something without "
                        "XROUTER_BUS_HMAC_KEYS; xrouter_bus_unsigned_total counts them all)",
                        len(data) if isinstance(data, bytes) else 0)
        return
    try:
        event = orjson.loads(raw)
        topic, payload = event["topic"], event.get("payload") or {}
        if not isinstance(topic, str) or not isinstance(payload, dict):
            raise TypeError("topic or payload of the wrong type")
    except (ValueError, KeyError, TypeError) as exc:  # signed yet malformed: a bug of ours, not a forgery
        log.error("bus message unreadable (%s); dropped", type(exc).__name__)
        return
    if event.get("origin") != ORIGIN:
        _dispatch(topic, payload)


async def listen(ready: asyncio.Event | None = None) -> None:
    """Run for the life of a gateway process: apply other processes' events here."""
    global _connected
    from . import redis as shared_redis

    client = shared_redis.client()
    if client is None:
        if ready:
            ready.set()
        return
    while True:
        try:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(CHANNEL)
            _connected = True
            if ready:
                ready.set()
            # Events may have been missed while (re)connecting: treat it as "everything changed".
            for topic in list(_handlers):
                _dispatch(topic, {"resync": True})
            checked = time.monotonic()
            while True:
                # A Redis that stops answering keeps its sockets open, and a subscription alone would
                # wait on it forever: ping it when the channel is quiet, so "connected" stays true.
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=HEARTBEAT)
                if message is not None and message.get("type") == "message":
                    _receive(message["data"])
                if time.monotonic() - checked >= HEARTBEAT:
                    await asyncio.wait_for(client.ping(), HEARTBEAT)
                    checked = time.monotonic()
        except asyncio.CancelledError:
            _connected = False
            raise
        except Exception:
            _connected = False
            log.exception("bus listener lost Redis; reconnecting")
            await asyncio.sleep(1.0)
