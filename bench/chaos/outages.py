"""Store outages under a steady load (8 clients in a loop on the second gateway process):

1. Redis frozen (SIGSTOP) for 5 s, with a key whose (high) limits make every request ask Redis for admission:
   no request may take longer than the gateway's Redis bounds (XROUTER_REDIS_TIMEOUT 2 s +
   XROUTER_LIMITS_TIMEOUT 1 s); the limiter fails open by default outside production.
2. PostgreSQL stopped (`pg_ctl -m immediate`) for 10 s: /v1 keeps serving from the last good configuration and
   its cached keys (every request a 200).
3. A gateway worker killed while PostgreSQL is down: its replacement starts with no configuration. Recovery =
   from PostgreSQL's return until every request of a probe is answered 200 again, without restarting anything.
"""

import asyncio
import time
from collections import Counter

import httpx

from bench.chaos.harness import Harness, log
from bench.chaos.provision import MODEL

DOWN_AFTER_RESTART = 20.0
REDIS_BOUND = 3.0  # XROUTER_REDIS_TIMEOUT (2 s) + XROUTER_LIMITS_TIMEOUT (1 s), the shipped values


async def _load(base: str, key: str, stop: asyncio.Event, record: list, clients: int = 8) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "steady"}], "max_tokens": 5}
    # A connection per request: a kept-alive one would stay with the worker it first reached.
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        async def loop():
            while not stop.is_set():
                started = time.monotonic()
                try:
                    status = (await client.post(base + "/v1/chat/completions", json=body,
                                                headers={"authorization": f"Bearer {key}"})).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                record.append((started, time.monotonic() - started, status))
                await asyncio.sleep(0.02)
        await asyncio.gather(*(loop() for _ in range(clients)))


def _window(record, start, end) -> dict:
    inside = [(lat, st) for t, lat, st in record if start <= t < end]
    return {"requests": len(inside), "ok": sum(st == 200 for _, st in inside),
            "statuses": dict(Counter(str(st) for _, st in inside)),
            "max_latency_s": round(max((lat for lat, _ in inside), default=0), 2)}


async def _scenario(harness: Harness) -> dict:
    base, key = harness.gateways[-1][1], harness.keys["steady"]  # limited: every request asks Redis for admission
    stop, record = asyncio.Event(), []
    load = asyncio.create_task(_load(base, key, stop, record))
    await asyncio.sleep(2)
    out = {}

    log("outages: Redis frozen for 5 s")
    t0 = time.monotonic()
    await asyncio.to_thread(harness.redis.freeze)
    await asyncio.sleep(5)
    await asyncio.to_thread(harness.redis.thaw)
    out["redis_frozen"] = _window(record, t0, t0 + 5)
    await asyncio.sleep(3)

    log("outages: PostgreSQL down for 10 s")
    t0 = time.monotonic()
    await asyncio.to_thread(harness.pg.stop, True)
    await asyncio.sleep(10)
    out["postgres_down"] = _window(record, t0, time.monotonic())

    log("outages: a worker killed while PostgreSQL is down, then PostgreSQL back")
    process = harness.gateways[-1][0]
    before = set(harness.worker_pids(process))
    killed = await asyncio.to_thread(lambda: harness.kill_worker(process))
    deadline = time.monotonic() + 30
    while set(harness.worker_pids(process)) - before == set() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)  # the replacement is up (and has no configuration: the database is down)
    await asyncio.sleep(DOWN_AFTER_RESTART)  # long enough for the reload's backoff to grow
    t_back = time.monotonic()
    await asyncio.to_thread(harness.pg.start)
    t_started = time.monotonic()
    recovered = None
    while time.monotonic() - t_started < 60:
        await asyncio.sleep(0.25)
        recent = [st for t, _, st in record if t >= time.monotonic() - 1.0]
        if len(recent) >= 16 and all(st == 200 for st in recent):
            recovered = round(time.monotonic() - 1.0 - t_started, 2)  # the first second of only 200s began here
            break
    out["worker_restarted_while_down"] = {"killed_pid": killed, "while_down": _window(record, t_back - DOWN_AFTER_RESTART, t_started),
                                          "recovery_s": recovered, "pg_start_s": round(t_started - t_back, 2)}
    stop.set()
    await load
    return out


def run(harness: Harness) -> dict:
    return asyncio.run(_scenario(harness))
