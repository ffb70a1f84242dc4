"""The request path's only usage write: an append to an in-process list.

A flusher task moves the list out every XROUTER_USAGE_FLUSH_INTERVAL seconds:
- with Redis, into a Redis stream (one pipelined XADD per batch); the `usage_writer`
  process drains it into the database. A batch Redis cannot take (down, or hanging past the
  client's timeouts) goes to the disk spool (apps/usage/spool.py), replayed into Redis later;
- without Redis, straight into the database from a worker thread (at most the last
  interval is lost if the process is killed; README says so). Records the database refuses
  on their own go to a dead-letter file, so they cannot hold back the others.
A batch is never dropped: on any failure, or a cancellation mid-flush, it goes back to the list.
Each flush also rotates the start-record journal (apps/usage/journal.py) and removes the files
whose attempts have all ended once those ends have left the process.
"""

import asyncio
import logging
import time

import orjson
from django.conf import settings
from django.db import InterfaceError, OperationalError

from apps.common import redis as shared_redis
from apps.common import signing
from apps.common.db import run_sync

from . import deadletter, journal, spool
from .fields import usage_clean
from .services import usage_record_many

log = logging.getLogger(__name__)
MAX_PENDING = 1_000_000
ENTRY_SIZE = 500  # records per Redis stream entry
REPLAY_INTERVAL = 5.0  # seconds between looks for spool files (ours after an outage, or dead workers')

_pending: list[dict] = []
_next_replay = 0.0


def record(entry: dict) -> None:
    """Queue one usage record (a dict of UsageRecord fields plus `ts`), cleaned to fit its columns."""
    if len(_pending) < MAX_PENDING:
        _pending.append(usage_clean(entry))
    else:
        log.error("usage buffer full; dropping a record", extra={"request_id": entry.get("request_id")})


def _payloads(batch: list[dict]) -> list[bytes]:
    return [orjson.dumps(batch[start:start + ENTRY_SIZE], default=str) for start in range(0, len(batch), ENTRY_SIZE)]


async def _xadd(client, payloads: list[bytes]) -> None:
    stream = settings.XROUTER["USAGE_STREAM"]
    # One stream entry per slice of records: a command per request would cost more CPU here
    # and in the writer than the request itself. Signed (apps/common/signing.py): the writer bills
    # nothing it cannot verify. Spool files hold the payloads unsigned; they are signed here on replay.
    sign = signing.signer()
    async with client.pipeline(transaction=False) as pipe:
        for payload in payloads:
            pipe.xadd(stream, signing.usage_entry(payload, sign))
        await pipe.execute()


def _store_without_redis(batch: list[dict]) -> None:
    dead = deadletter.isolate(usage_record_many, batch, (OperationalError, InterfaceError))
    deadletter.to_file(settings.XROUTER["SPOOL_DIR"], dead)


async def flush() -> int:
    """Move everything pending out of the process. Returns the number of records moved."""
    global _pending
    ended = journal.rotate()  # before taking the batch: the ends of these journals' attempts are in it
    if not _pending:
        journal.remove(ended)
        return 0
    batch, _pending = _pending, []
    try:
        client = shared_redis.client()
        if client is None:
            await run_sync(_store_without_redis)(batch)
            journal.remove(ended)
            return len(batch)
        payloads = _payloads(batch)
        try:
            await _xadd(client, payloads)
        except Exception as exc:
            spooled = await asyncio.to_thread(spool.write, settings.XROUTER["SPOOL_DIR"],
                                              settings.XROUTER["SPOOL_MAX_MB"] * 2**20, payloads)
            log.warning("Redis could not take %d usage records (%s); spooled to %s", len(batch), exc, spooled)
        journal.remove(ended)
        return len(batch)
    except BaseException as exc:
        _pending = batch + _pending  # a cancelled flush (shutdown) keeps its batch too
        if not isinstance(exc, Exception):
            raise
        log.exception("usage flush failed; keeping %d records for the next try", len(batch))
        return 0


async def replay_spool() -> int:
    """Move this process's and dead processes' spool files into Redis, then dead processes' start
    journals as worker_lost records (after the batches, so a dead process's real end records enter
    the stream before its lost starts). Returns the stream entries replayed."""
    client = shared_redis.client()
    directory, moved = settings.XROUTER["SPOOL_DIR"], 0
    if client is None:
        # No stream, no writer: a dead process's ends are in the database already or lost with it,
        # so its starts go straight in (a real row wins on the unique key).
        for path in await asyncio.to_thread(journal.claimable, directory):
            claimed = await asyncio.to_thread(journal.claim, path)
            if claimed is not None:
                records = await asyncio.to_thread(journal.lost_records, claimed)
                await run_sync(_store_without_redis)([usage_clean(r) for r in records])
                await asyncio.to_thread(spool.done, claimed)
        return 0
    for path in await asyncio.to_thread(spool.claimable, directory):
        claimed = await asyncio.to_thread(spool.claim, path)
        if claimed is None:
            continue
        try:
            payloads = await asyncio.to_thread(spool.read, claimed)
            await _xadd(client, payloads)
        except BaseException:
            await asyncio.to_thread(spool.release, claimed)
            raise
        await asyncio.to_thread(spool.done, claimed)
        moved += len(payloads)
    for path in await asyncio.to_thread(journal.claimable, directory):
        claimed = await asyncio.to_thread(journal.claim, path)
        if claimed is None:
            continue
        records = await asyncio.to_thread(journal.lost_records, claimed)
        if records:
            payloads = _payloads([usage_clean(r) for r in records])
            await _xadd(client, payloads)  # on failure the .lost file stays ours, retried next time
            moved += len(payloads)
            log.warning("%d usage attempts of a dead process sent as worker_lost candidates", len(records))
        await asyncio.to_thread(spool.done, claimed)
    if moved:
        log.warning("replayed %d spooled usage entries into Redis", moved)
    return moved


async def run_flusher() -> None:
    global _next_replay
    interval = settings.XROUTER["USAGE_FLUSH_INTERVAL"]
    while True:
        await asyncio.sleep(interval)
        await flush()
        if time.monotonic() >= _next_replay:
            _next_replay = time.monotonic() + REPLAY_INTERVAL
            try:
                await replay_spool()
            except Exception as exc:
                log.warning("usage spool replay failed (%s); retrying in %.0f s", exc, REPLAY_INTERVAL)


def pending_count() -> int:
    return len(_pending)
