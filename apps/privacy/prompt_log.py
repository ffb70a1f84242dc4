"""The prompt log's only work on the request path: an append to an in-process list.

Like the usage buffer (apps/usage/buffer.py), a flusher moves the list out every FLUSH_INTERVAL seconds;
here it masks the texts and inserts them from a worker thread (`prompt_log_store`), so a request never
waits on the detectors or the database. The masking happens in this process, before the text goes
anywhere: unmasked prompts never reach Redis, a Celery broker or the database. A full list drops new
entries (with a warning in the log) rather than grow: this is a log, not a bill.
The flusher runs only in gateways started with XROUTER_LOG_PROMPTS on (apps/gateway/lifecycle.py).
"""

import asyncio
import datetime
import logging
import time

from apps.common.db import run_sync

from .pseudonym import mask

log = logging.getLogger(__name__)
FLUSH_INTERVAL = 2.0
MAX_TEXT = 100_000  # characters of a prompt or answer kept (a 1 M-character prompt is logged cut)
MAX_PENDING_CHARS = 32_000_000  # what the list may hold between flushes

_pending: list[tuple] = []
_pending_chars = 0


def record(request_id: str, key, model: str, prompt: str, answer: str, names: bool) -> None:
    global _pending_chars
    prompt, answer = prompt[:MAX_TEXT], answer[:MAX_TEXT]
    size = len(prompt) + len(answer)
    if _pending_chars + size > MAX_PENDING_CHARS:
        log.warning("prompt log buffer full; not logging a request", extra={"request_id": request_id})
        return
    _pending_chars += size
    _pending.append((request_id, key.id if key.kind == "key" else None, key.organisation_id, model, prompt, answer,
                     names, time.time()))


def prompt_log_store(batch: list[tuple]) -> int:
    """Mask and insert queued entries (a worker thread, or a test)."""
    from .models import PromptLog

    rows = [
        PromptLog(request_id=request_id, api_key_id=key_id, organisation_id=organisation_id, model=model[:200],
                  prompt=mask(prompt, names), answer=mask(answer, names),
                  created_at=datetime.datetime.fromtimestamp(ts, tz=datetime.UTC))
        for request_id, key_id, organisation_id, model, prompt, answer, names, ts in batch
    ]
    PromptLog.objects.bulk_create(rows)
    return len(rows)


async def flush() -> int:
    global _pending, _pending_chars
    if not _pending:
        return 0
    batch, _pending, _pending_chars = _pending, [], 0
    return await run_sync(prompt_log_store)(batch)


async def run_flusher() -> None:
    while True:
        await asyncio.sleep(FLUSH_INTERVAL)
        try:
            await flush()
        except Exception:  # the database is down: this batch of a log is lost, the next may land
            log.exception("prompt log flush failed")
