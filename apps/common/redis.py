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


_lines: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object]" = weakref.WeakKeyDictionary()
_SHAS: dict[str, str] = {}


def script_sha(script: str) -> str:
    """The name EVALSHA knows a script by (SHA-1 of its text: an id, not a security measure)."""
    sha = _SHAS.get(script)
    if sha is None:
        import hashlib

        sha = _SHAS[script] = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
    return sha


async def run_script(script: str, args: list):
    """EVALSHA of `script` (no KEYS) on a connection of this loop's own, the command packed by hiredis: for
    a caller that sends one call at a time — the rate limiter's sender, on every limited request's path.
    redis-py's client checks a connection out of its pool, encodes each argument in Python and runs
    response callbacks: measured 38 µs of CPU a call against 12 µs this way. The script is loaded once
    when Redis does not know it (NOSCRIPT). Any failure, a timeout or a cancellation drops the connection
    (a reply may still be on its way); the next call opens another."""
    import hiredis
    from redis.exceptions import NoScriptError

    loop = asyncio.get_running_loop()
    line = _lines.get(loop)
    if line is None:
        line = _lines[loop] = client().connection_pool.make_connection()  # the URL's auth, database, TLS, timeouts
    sha = script_sha(script)
    try:
        if not line.is_connected:
            await line.connect()
        try:
            await line.send_packed_command(hiredis.pack_command(("EVALSHA", sha, 0, *args)), check_health=False)
            return await line.read_response()
        except NoScriptError:
            await line.send_packed_command(hiredis.pack_command(("SCRIPT", "LOAD", script)), check_health=False)
            await line.read_response()
            await line.send_packed_command(hiredis.pack_command(("EVALSHA", sha, 0, *args)), check_health=False)
            return await line.read_response()
    except BaseException:
        await line.disconnect(nowait=True)
        raise
