"""What a gateway process starts and stops beside the request path."""

import asyncio
import logging

from apps.common import bus
from apps.common import redis as shared_redis
from apps.providers.adapters.registry import close_all
from apps.routing.catalog import get_catalog
from apps.usage import buffer

log = logging.getLogger(__name__)
_tasks: list[asyncio.Task] = []


async def startup() -> None:
    ready = asyncio.Event()
    _tasks.append(asyncio.create_task(buffer.run_flusher(), name="usage-flusher"))
    _tasks.append(asyncio.create_task(bus.listen(ready), name="bus-listener"))
    try:
        await asyncio.wait_for(ready.wait(), 5)
        await get_catalog()  # warm: the first request should not pay for it
    except Exception:
        log.exception("gateway warm-up failed; it will retry on the first request")


async def shutdown() -> None:
    """After the server stopped accepting and drained its streams: flush usage, close pools."""
    for task in _tasks:
        task.cancel()
    await asyncio.gather(*_tasks, return_exceptions=True)
    _tasks.clear()
    for _ in range(3):
        await buffer.flush()
        if not buffer.pending_count():
            break
        await asyncio.sleep(0.5)
    if buffer.pending_count():
        log.error("shutting down with %d usage records unflushed", buffer.pending_count())
    await close_all()
    await shared_redis.aclose()
