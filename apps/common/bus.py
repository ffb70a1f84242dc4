"""Events every gateway process must see within a second: config edits, key revocations,
breaker openings, health results.

`publish` calls this process's handlers at once and, when Redis is configured, sends the
event on one pub/sub channel; each gateway process runs `listen()` and calls its own
handlers for events from the others. Handlers only invalidate in-process state (cheap,
thread-safe), so the hot path never waits on Redis.
"""

import asyncio
import logging
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable

import orjson
from django.conf import settings

log = logging.getLogger(__name__)
CHANNEL = f"{settings.XROUTER['REDIS_NAMESPACE']}:bus"
ORIGIN = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

_handlers: dict[str, list[Callable]] = defaultdict(list)
_sync_client = None
_connected = False
HEARTBEAT = 2.0  # seconds: a silent Redis is noticed (the bus counts as down) within about two of these


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
        _sync_client.publish(CHANNEL, orjson.dumps({"topic": topic, "origin": ORIGIN, "payload": payload}))
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
            await client.publish(CHANNEL, orjson.dumps({"topic": topic, "origin": ORIGIN, "payload": payload}))
        except Exception:
            log.exception("bus publish failed", extra={"topic": topic})


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
                    event = orjson.loads(message["data"])
                    if event.get("origin") != ORIGIN:
                        _dispatch(event["topic"], event.get("payload") or {})
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
