"""What a gateway process starts and stops beside the request path, and whether it is ready."""

import asyncio
import logging
import signal

from django.conf import settings

from apps.common import bus, tracing
from apps.common import redis as shared_redis
from apps.common.metrics import forget_dead_processes
from apps.keys import last_used
from apps.limits import services as limits
from apps.privacy import prompt_log
from apps.providers.adapters.registry import close_all
from apps.routing.catalog import get_catalog
from apps.usage import buffer

from . import metrics

log = logging.getLogger(__name__)
# Each attempt is bounded by the Redis timeouts and a spool write: the whole flush takes seconds, so
# the stop budget is XROUTER_SHUTDOWN_GRACE (open streams) + about 15 s (see the Dockerfile).
FLUSH_ATTEMPTS = 3
STOP_ROUNDS = 50  # background tasks cancelled again every 0.1 s, for at most 5 s (stop_tasks)
_tasks: list[asyncio.Task] = []
state = "starting"  # -> "serving" after startup -> "draining" from SIGTERM/SIGINT (read by /readyz)


def _watch_for_shutdown() -> None:
    """Mark the process draining as soon as the stop signal arrives (uvicorn's own handler, which
    stops accepting and drains, still runs): a load balancer reading /readyz stops sending here."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum, frame, previous=previous):
            global state
            state = "draining"
            previous(signum, frame)

        try:
            signal.signal(sig, handler)
        except ValueError:  # not the main thread (an in-process test server): no signals to watch
            return


async def startup() -> None:
    global state
    ready = asyncio.Event()
    _watch_for_shutdown()
    tracing.setup()
    _tasks.append(asyncio.create_task(buffer.run_flusher(), name="usage-flusher"))
    _tasks.append(asyncio.create_task(bus.listen(ready), name="bus-listener"))
    _tasks.append(asyncio.create_task(last_used.run_flusher(), name="last-used-flusher"))
    _tasks.append(asyncio.create_task(_sample_load(), name="metrics-sampler"))
    if settings.XROUTER["LOG_PROMPTS"]:  # off by default: nothing of the prompt log runs then
        _tasks.append(asyncio.create_task(prompt_log.run_flusher(), name="prompt-log-flusher"))
    forget_dead_processes()
    try:
        await asyncio.wait_for(ready.wait(), 5)
        await get_catalog()  # warm: the first request should not pay for it
    except Exception:
        log.exception("gateway warm-up failed; it will retry on the first request")
    if state == "starting":
        state = "serving"


async def _sample_load() -> None:
    from . import app, streaming  # app imports this module

    await metrics.run_sampler(lambda: app.inflight, lambda: streaming.open_streams)


async def stop_tasks(tasks: list[asyncio.Task], rounds: int = STOP_ROUNDS, wait: float = 0.1) -> bool:
    """Cancel `tasks` until every one has ended (True), at most `rounds` times `wait` seconds (False).

    Once is not enough on Python 3.11: `asyncio.wait_for` swallows a cancellation that arrives just as
    the call it waits on completes (CPython gh-86296, fixed in 3.12), and redis-py wraps every command it
    sends in one. Seen at a stop under load (tests/gateway/test_graceful_shutdown.py, about 1 in 5): the
    usage flusher, cancelled mid-flush, was back asleep in its loop, still marked "cancelling", and the
    worker waited for it forever."""
    pending = {task for task in tasks if not task.done()}
    for _ in range(rounds):
        if not pending:
            return True
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=wait)
    for task in tasks:  # what gather(return_exceptions=True) did: no "exception was never retrieved"
        if task.done() and not task.cancelled():
            task.exception()
    if pending:
        log.error("background tasks did not stop when cancelled: %s", sorted(t.get_name() for t in pending))
    return not pending


async def shutdown() -> None:
    """After the server stopped accepting and drained its streams: flush usage, close pools.
    A flush cancelled mid-way keeps its batch; one Redis cannot take goes to the disk spool."""
    global state
    state = "draining"
    await stop_tasks(_tasks)
    _tasks.clear()
    for _ in range(FLUSH_ATTEMPTS):
        await buffer.flush()
        if not buffer.pending_count():
            break
        await asyncio.sleep(0.5)
    await limits.flush()  # give back the leases and unused reservations of the last requests
    if buffer.pending_count():
        log.error("shutting down with %d usage records unflushed (Redis and the spool both failed)",
                  buffer.pending_count())
    await last_used.flush()
    if settings.XROUTER["LOG_PROMPTS"]:
        await prompt_log.flush()
    await asyncio.to_thread(tracing.shutdown)
    await close_all()
    await shared_redis.aclose()
