"""The request path's only usage write: an append to an in-process list.

A flusher task moves the list out every XROUTER_USAGE_FLUSH_INTERVAL seconds:
- with Redis, into a Redis stream (one pipelined XADD per batch); the `usage_writer`
  process drains it into the database;
- without Redis, straight into the database from a worker thread (at most the last
  interval is lost if the process is killed; README says so).
If Redis is unreachable, records stay in memory and are retried, never dropped.
"""

import asyncio
import logging

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings

from apps.common import redis as shared_redis

from .fields import usage_clean
from .services import usage_record_many

log = logging.getLogger(__name__)
MAX_PENDING = 1_000_000
ENTRY_SIZE = 500  # records per Redis stream entry

_pending: list[dict] = []


def record(entry: dict) -> None:
    """Queue one usage record (a dict of UsageRecord fields plus `ts`), cleaned to fit its columns."""
    if len(_pending) < MAX_PENDING:
        _pending.append(usage_clean(entry))
    else:
        log.error("usage buffer full; dropping a record", extra={"request_id": entry.get("request_id")})


async def flush() -> int:
    """Move everything pending out of the process. Returns the number of records moved."""
    global _pending
    if not _pending:
        return 0
    batch, _pending = _pending, []
    try:
        client = shared_redis.client()
        if client is not None:
            stream = settings.XROUTER["USAGE_STREAM"]
            # One stream entry per slice of records: a command per request would cost more
            # CPU here and in the writer than the request itself.
            async with client.pipeline(transaction=False) as pipe:
                for start in range(0, len(batch), ENTRY_SIZE):
                    pipe.xadd(stream, {"b": orjson.dumps(batch[start:start + ENTRY_SIZE], default=str)})
                await pipe.execute()
        else:
            await sync_to_async(usage_record_many, thread_sensitive=False)(batch)
    except Exception:
        log.exception("usage flush failed; keeping %d records for the next try", len(batch))
        _pending = batch + _pending
        return 0
    return len(batch)


async def run_flusher() -> None:
    interval = settings.XROUTER["USAGE_FLUSH_INTERVAL"]
    while True:
        await asyncio.sleep(interval)
        await flush()


def pending_count() -> int:
    return len(_pending)
