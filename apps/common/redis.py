"""One asyncio Redis client per event loop (None when REDIS_URL is unset).

A gateway worker has one loop for its life; a Celery task or management command that runs
async code through async_to_sync gets a fresh loop each time, and an asyncio client must
not cross loops.

Every command is bounded (XROUTER_REDIS_TIMEOUT, XROUTER_REDIS_CONNECT_TIMEOUT): a Redis that
hangs must not hang the requests and the usage flusher behind it (the flusher spools instead).
Pub/sub reads still block indefinitely (redis-py exempts them from the socket timeout).
"""

import asyncio
import weakref

from django.conf import settings

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object]" = weakref.WeakKeyDictionary()


def client():
    if not settings.REDIS_URL:
        return None
    loop = asyncio.get_running_loop()
    existing = _clients.get(loop)
    if existing is None:
        import redis.asyncio as aioredis

        existing = _clients[loop] = aioredis.Redis.from_url(
            settings.REDIS_URL, max_connections=256, health_check_interval=30,
            socket_timeout=settings.XROUTER["REDIS_TIMEOUT"], socket_connect_timeout=settings.XROUTER["REDIS_CONNECT_TIMEOUT"],
        )
    return existing


async def aclose():
    loop = asyncio.get_running_loop()
    existing = _clients.pop(loop, None)
    if existing is not None:
        await existing.aclose()
