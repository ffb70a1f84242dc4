"""Fallback: the rule `chaos-fallback` tries MTS, then T-Bank. While MTS fails before its first byte (500, 503,
a TCP reset, a hang past the read timeout), every request must be served — by T-Bank. While MTS cuts its streams
after the first bytes (a cut, a malformed chunk), the client has already been sent text, so there is nothing to
fall back to: every such stream must end with an explicit error event, never a silent truncation."""

import asyncio
from collections import Counter

import httpx

from bench.chaos.harness import Harness
from bench.chaos.provision import FALLBACK_MODEL

BEFORE_FIRST_BYTE = [{"status": 500}, {"status": 503}, {"reset": True}, {"latency_ms": 12000}]  # 12 s: past the read timeout
AFTER_FIRST_BYTE = [{"cut_after_chunks": 3}, {"malformed_chunk_at": 3}]


async def _one(client, base, key, i, stream) -> dict:
    body = {"model": FALLBACK_MODEL, "messages": [{"role": "user", "content": f"fallback {i} [long:30]"}]}
    if stream:
        body["stream"] = True
    out = {"status": None, "provider": None, "stream": stream, "done": False, "error_event": False}
    try:
        async with client.stream("POST", base + "/v1/chat/completions", json=body,
                                 headers={"authorization": f"Bearer {key}"}) as response:
            out["status"], out["provider"] = response.status_code, response.headers.get("x-xrouter-provider")
            if not stream:
                await response.aread()
                return out
            async for line in response.aiter_lines():
                if line == "data: [DONE]":
                    out["done"] = True
                elif line.startswith("data: ") and '"error"' in line[:40]:
                    out["error_event"] = True
    except httpx.HTTPError as exc:
        out["status"] = type(exc).__name__
    return out


async def _batch(base, key, count, stream_only=False, concurrency=24):
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=60) as client:
        async def one(i):
            async with gate:
                return await _one(client, base, key, i, stream_only or i % 2 == 0)
        return await asyncio.gather(*(one(i) for i in range(count)))


def run(harness: Harness, per_fault: int = 50) -> dict:
    base, key = harness.gateways[-1][1], harness.keys["billing"]
    served, statuses, providers, total = 0, Counter(), Counter(), 0
    for fault in BEFORE_FIRST_BYTE:
        harness.faults("mts", [{**fault, "share": 1, "path": "/v1/chat/completions"}])
        for r in asyncio.run(_batch(base, key, per_fault)):
            total += 1
            statuses[str(r["status"])] += 1
            providers[str(r["provider"])] += 1
            # A stream counts as served when it ended properly: [DONE] and no error event.
            served += r["status"] == 200 and (not r["stream"] or (r["done"] and not r["error_event"]))
    cut, silent, cut_statuses = 0, 0, Counter()
    for fault in AFTER_FIRST_BYTE:
        harness.faults("mts", [{**fault, "share": 1, "path": "/v1/chat/completions"}])
        for r in asyncio.run(_batch(base, key, per_fault, stream_only=True)):
            cut_statuses[str(r["status"])] += 1
            if r["status"] == 200 and r["provider"] == "mts":
                cut += 1
                silent += not r["error_event"]
    harness.faults("mts", [])
    return {"requests": total, "served": served, "served_share": round(served / total, 4) if total else 0,
            "statuses": dict(statuses), "providers": dict(providers), "cut_streams": cut, "silent_truncations": silent,
            "cut_statuses": dict(cut_statuses), "http_500": statuses.get("500", 0) + cut_statuses.get("500", 0)}
