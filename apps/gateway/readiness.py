"""/readyz: whether this process can serve /v1, and how its stores and usage writer are doing.

503 only when this process itself cannot serve: starting, draining after SIGTERM, no catalog
ever loaded, or a catalog older than XROUTER_STALE_MAX (kept through a database outage). A
failing store is reported with 200: every replica shares the stores, so taking replicas out of
the load balancer for it would turn a degraded service (the stale catalog, the spool) into none.
The probes are cached for PROBE_TTL seconds, so a flood of /readyz costs the stores nothing.
"""

import asyncio
import math
import time

import orjson
from django.conf import settings
from prometheus_client import Gauge

from apps.common import beat as celery_beat
from apps.common import redis as shared_redis
from apps.common.db import run_sync
from apps.routing.catalog import catalog_status, get_catalog
from apps.usage import buffer, spool
from apps.usage.deadletter import dead_stream, total_key, unsigned_key
from apps.usage.metrics import BACKLOG, DEAD_LETTER, UNSIGNED
from apps.usage.writer import GROUP

from . import lifecycle
from .http import send_json

PROBE_TTL = 1.5
PROBE_TIMEOUT = 2.0
WRITER_IDLE_MAX_MS = 15_000  # a live writer touches the stream every second (a blocking read)

READY = Gauge("xrouter_ready", "1 when this process can serve /v1 (/readyz answers 200)", multiprocess_mode="liveall")
STORE_UP = Gauge("xrouter_store_up", "Whether the last /readyz probe reached the store", ["store"],
                 multiprocess_mode="mostrecent")

_cached: tuple[float, dict] = (-math.inf, {})
_lock: asyncio.Lock | None = None
_database_probe: asyncio.Future | None = None  # still running after a timeout: never start a second
_catalog_refresh: asyncio.Future | None = None


def _select_one() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _database() -> dict:
    global _database_probe
    if _database_probe is None or _database_probe.done():
        _database_probe = asyncio.ensure_future(run_sync(_select_one)())
    try:
        await asyncio.wait_for(asyncio.shield(_database_probe), PROBE_TIMEOUT)
    except Exception as exc:  # only the class: a driver's message may name hosts or users
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def _cluster_total(key):
    """For /metrics (a Django thread): a count the writers keep in Redis, read with a short timeout."""

    def read():
        global _sync_client
        if not settings.REDIS_URL:
            return None
        if _sync_client is None:
            import redis

            _sync_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
        return _sync_client.get(key(settings.XROUTER["USAGE_STREAM"]))

    return read


_sync_client = None
DEAD_LETTER.read_cluster = _cluster_total(total_key)
UNSIGNED.read_cluster = _cluster_total(unsigned_key)


async def _redis() -> tuple[dict, dict]:
    client = shared_redis.client()
    if client is None:
        return {"configured": False}, {"writer": "in-process (no Redis)"}
    stream = settings.XROUTER["USAGE_STREAM"]
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.xlen(stream)
            pipe.xlen(dead_stream(stream))
            pipe.get(total_key(stream))
            pipe.xinfo_groups(stream)
            pipe.xinfo_consumers(stream, GROUP)
            pipe.get(celery_beat.key())
            length, dead, dead_total, groups, consumers, beat = await asyncio.wait_for(
                pipe.execute(raise_on_error=False), PROBE_TIMEOUT)
    except Exception as exc:
        return {"configured": True, "ok": False, "error": type(exc).__name__}, {}
    if isinstance(length, Exception):
        return {"configured": True, "ok": False, "error": type(length).__name__}, {}
    group = next((g for g in groups if g.get("name") in (GROUP, GROUP.encode())), {}) if isinstance(groups, list) else {}
    idle = [c.get("idle", math.inf) for c in consumers] if isinstance(consumers, list) else []
    DEAD_LETTER.cluster = int(dead_total or 0) if not isinstance(dead_total, Exception) else DEAD_LETTER.cluster
    writer = {
        "running": bool(idle) and min(idle) < WRITER_IDLE_MAX_MS,
        "consumers": len(idle),
        "stream_length": length,  # entries not yet written (each up to 500 records)
        "pending": group.get("pending", 0),  # read by a writer, not yet committed
        "dead_letter": dead if not isinstance(dead, Exception) else None,
    }
    return {"configured": True, "ok": True, "beat": _beat(beat)}, writer


def _beat(raw) -> dict:
    """Celery beat's heartbeat (apps/common/tasks.py): stale after four missed beats, absent if never seen."""
    try:
        age = time.time() - float(raw)
    except (TypeError, ValueError):
        return {"seen": False, "fresh": False}
    return {"seen": True, "age_s": round(age, 1), "fresh": age < 4 * celery_beat.INTERVAL}


async def _probe() -> dict:
    (redis_state, writer), database = await asyncio.gather(_redis(), _database())
    usage = {"buffered": buffer.pending_count(), "spool_files": spool.count(settings.XROUTER["SPOOL_DIR"]), **writer}
    STORE_UP.labels("database").set(database["ok"])
    if redis_state.get("configured"):
        STORE_UP.labels("redis").set(redis_state["ok"])
    for where in ("stream_length", "pending", "dead_letter", "spool_files", "buffered"):
        if isinstance(usage.get(where), int):
            BACKLOG.labels(where).set(usage[where])
    return {"database": database, "redis": redis_state, "usage": usage}


async def _stores() -> dict:
    global _cached, _lock
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:  # concurrent callers share one probe
        at, body = _cached
        if time.monotonic() - at > PROBE_TTL:
            body = await _probe()
            _cached = (time.monotonic(), body)
        return body


def _catalog() -> dict:
    global _catalog_refresh
    status = catalog_status()
    if (not status["loaded"] or status["age_s"] > settings.XROUTER["CONFIG_TTL"]) and (
            _catalog_refresh is None or _catalog_refresh.done()):
        # Without traffic nothing reloads it: do so in the background (one at a time; a failed
        # load keeps the old catalog, which then ages towards STALE_MAX).
        _catalog_refresh = asyncio.ensure_future(get_catalog())
        _catalog_refresh.add_done_callback(lambda task: task.cancelled() or task.exception())
    return {**status, "stale_max_s": settings.XROUTER["STALE_MAX"]}


async def readyz(scope, receive, send) -> None:
    catalog = _catalog()
    body = {**(await _stores()), "catalog": catalog}
    if lifecycle.state != "serving":
        status = lifecycle.state
    elif not catalog["loaded"]:
        status = "no catalog"
    elif not catalog["usable"]:
        status = "catalog stale"
    else:
        status = "ready"
    READY.set(status == "ready")
    await send_json(send, 200 if status == "ready" else 503, orjson.dumps({"status": status, **body}))
