"""ApiKey.last_used_at, in batches: the request path adds a key id to an in-process set; a flusher
writes the set every XROUTER_LAST_USED_INTERVAL seconds with one UPDATE (services.key_mark_used).

No database write on the request path, and none per request: a busy key costs one set insert per
request (no allocation once it is in the set) and one row update per interval. last_used_at is
therefore up to one interval late; a process killed outright loses its last interval's marks.
"""

import asyncio
import logging

from django.conf import settings
from django.utils import timezone

from apps.common.db import run_sync

from .services import key_mark_used

log = logging.getLogger(__name__)

_used: set[int] = set()  # bounded by the number of keys


def mark(key_id: int) -> None:
    _used.add(key_id)


async def flush() -> int:
    """Write the marks gathered so far; on failure they are kept for the next try. Returns the keys written."""
    global _used
    if not _used:
        return 0
    batch, _used = _used, set()
    try:
        await run_sync(key_mark_used)(batch, timezone.now())
    except BaseException as exc:
        _used |= batch
        if not isinstance(exc, Exception):
            raise
        log.warning("could not record when %d keys were last used (%s); retrying", len(batch), type(exc).__name__)
        return 0
    return len(batch)


async def run_flusher() -> None:
    interval = settings.XROUTER["LAST_USED_INTERVAL"]
    while True:
        await asyncio.sleep(interval)
        await flush()
