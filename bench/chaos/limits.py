"""Limits across gateway processes: trials of 200 simultaneous requests against a key with rpm=50, spread
over two gateway processes (each with its workers) sharing the battery's Redis — each trial with a fresh key,
so a fresh window; over-admission = answers 200 beyond 50. Then a budget burst: 200 simultaneous requests
against a key whose monthly budget covers a few dozen; overshoot = the settled spend of its usage rows above
the budget, once the usage has drained."""

import asyncio
import time
from collections import Counter
from decimal import Decimal

import httpx

from bench.chaos.harness import Harness
from bench.chaos.provision import BUDGET, MODEL, RPM

BURST = 200


async def _burst(bases: list[str], key: str, body: dict) -> list:
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        headers = {"authorization": f"Bearer {key}"}

        async def one(i):
            try:
                return (await client.post(bases[i % len(bases)] + "/v1/chat/completions", json=body, headers=headers)).status_code
            except httpx.HTTPError as exc:
                return type(exc).__name__
        return await asyncio.gather(*(one(i) for i in range(BURST)))


def run(harness: Harness, trials: int) -> dict:
    bases = [base for _, base in harness.gateways]
    body = {"model": MODEL, "messages": [{"role": "user", "content": "count me"}], "max_tokens": 5}
    results, over, statuses = [], 0, Counter()
    for key in harness.keys["limits"][:trials]:
        got = asyncio.run(_burst(bases, key, body))
        admitted = got.count(200)
        statuses.update(str(s) for s in got)
        over += max(0, admitted - RPM)
        results.append(admitted)
    budget = _budget(harness, bases)
    return {"trials": len(results), "burst": BURST, "rpm": RPM, "gateways": len(bases), "admitted_per_trial": results,
            "over_admitted": over, "under_admitted_trials": sum(1 for a in results if a < RPM),
            "statuses": dict(statuses), "http_500": statuses.get("500", 0), **budget}


def _budget(harness: Harness, bases: list[str]) -> dict:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "spend [long:20]"}], "max_tokens": 40}
    got = asyncio.run(_burst(bases, harness.keys["budget"], body))
    admitted = got.count(200)
    deadline = time.monotonic() + 60
    while True:  # until the admitted requests' rows are in and nothing is left on the way
        with harness.db() as conn:
            rows, spent = conn.execute("SELECT count(*) FILTER (WHERE status = 'ok'), coalesce(sum(cost), 0) "
                                       "FROM usage_usagerecord WHERE api_key_id = %s", (harness.keys["budget_id"],)).fetchone()
        if (rows >= admitted and not harness.usage_backlog()["stream"]) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    spent = Decimal(spent)
    return {"budget_roubles": str(BUDGET), "budget_admitted": admitted, "budget_refused": got.count(429),
            "budget_spent": str(spent), "budget_overshoot": str(max(Decimal(0), spent - BUDGET)),
            "budget_overshot": spent > BUDGET}
