"""Overload against a bounded upstream, with the shipped defaults. The upstream allows 50 concurrent requests of
1 s each: the provider account `bounded` has max_concurrency=50 (one Redis lease set shared by every gateway
process, apps/providers/adapters/base.py) and the MTS emulator answers its model after 1 s (a queued fault).
So capacity is 50 requests/s.

First at capacity: 50 requests/s offered open-loop for PHASE seconds — the at-capacity p99. Then overload:
100 requests/s for PHASE seconds. A refusal must come within XROUTER_CONCURRENCY_WAIT (shipped: 2 s) + 50 ms,
as a 429 or 503 with Retry-After (≥ 95% of refusals); the admitted requests' p99 must stay within the
at-capacity p99 + XROUTER_CONCURRENCY_WAIT. Both phases go to the first gateway process (2 workers).
"""

import asyncio
import time
from collections import Counter

from bench.chaos.provision import BOUNDED, BOUNDED_MODEL

UPSTREAM_SECONDS = 1.0
CONCURRENCY_WAIT = 2.0  # the shipped XROUTER_CONCURRENCY_WAIT (the battery does not change it)
PHASE = 25.0


def _p(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _offer(base: str, key: str, rate: float, seconds: float) -> list:
    import aiohttp

    body = {"model": BOUNDED_MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "bounded"}]}
    headers = {"authorization": f"Bearer {key}"}
    record = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def one():
            started = time.monotonic()
            retry_after = None
            try:
                async with session.post(base + "/v1/chat/completions", json=body, headers=headers) as response:
                    await response.read()
                    status, retry_after = response.status, response.headers.get("retry-after")
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            record.append((time.monotonic() - started, status, retry_after))

        tasks, start = [], time.monotonic()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return record


def _summary(record: list) -> dict:
    admitted = [lat for lat, st, _ in record if st == 200]
    refused = [(lat, st, ra) for lat, st, ra in record if st != 200]
    bound = CONCURRENCY_WAIT + 0.05
    good = [r for r in refused if r[1] in (429, 503) and r[2] is not None and r[0] <= bound]
    p99 = _p(admitted, 0.99)
    return {"requests": len(record), "admitted": len(admitted), "refused": len(refused),
            "statuses": dict(Counter(str(st) for _, st, _ in record)),
            "admitted_p50_s": round(_p(admitted, 0.5), 3) if admitted else None,
            "admitted_p99_s": round(p99, 3) if p99 is not None else None,
            "refusal_p50_s": round(_p([r[0] for r in refused], 0.5), 3) if refused else None,
            "refusal_max_s": round(max(r[0] for r in refused), 3) if refused else None,
            "refusals_in_bound": len(good), "refusals_in_bound_share": round(len(good) / len(refused), 4) if refused else None,
            "refusals_without_retry_after": sum(r[2] is None for r in refused)}


def run(harness, phase: float = PHASE) -> dict:
    harness.faults("mts", [{"latency_ms": int(UPSTREAM_SECONDS * 1000), "model": "qwen2.5-72b-instruct", "share": 1.0}])
    try:
        key = harness.keys["overload"]
        asyncio.run(_offer(harness.base, key, 10, 3))  # warm
        capacity = _summary(asyncio.run(_offer(harness.base, key, BOUNDED / UPSTREAM_SECONDS, phase)))
        time.sleep(3)
        overload = _summary(asyncio.run(_offer(harness.base, key, 2 * BOUNDED / UPSTREAM_SECONDS, phase)))
    finally:
        harness.faults("mts", [])
    return {"bounded": BOUNDED, "upstream_s": UPSTREAM_SECONDS, "wait_s": CONCURRENCY_WAIT, "phase_s": phase,
            "at_capacity": capacity, "overload": overload,
            "admitted_p99_allowed_s": round(capacity["admitted_p99_s"] + CONCURRENCY_WAIT, 3)
            if capacity["admitted_p99_s"] is not None else None}
