"""Soak: a steady mixed load (RATE requests/s, half of them streamed, alternating between the gateway processes)
for N minutes (`--soak-minutes`, 15 in the full run) while the summed resident memory (RSS) of every gateway
process — each serve process, its workers and the usage writer (bench/procs.py walks their trees) — is sampled
every SAMPLE seconds. Figure: growth from the mean of minutes 4–5 to the mean of the last minute (< 10%).
A run shorter than 6 minutes (development) keeps the reference window at the same place in the run: from 4/15
to 5/15 of it."""

import asyncio
import random
import threading
import time
from collections import Counter

from bench import procs
from bench.chaos.provision import MODEL

RATE = 10.0
SAMPLE = 5.0


def _reference_window(minutes: float) -> tuple[float, float]:
    """Seconds from the start: minutes 4–5, or for a short development run the same share of it (4/15–5/15)."""
    if minutes >= 6:
        return 240.0, 300.0
    total = minutes * 60
    return total * 4 / 15, total * 5 / 15


async def _load(bases: list[str], key: str, stop: asyncio.Event, out: dict) -> None:
    import aiohttp

    rng = random.Random(14)
    headers = {"authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def one(i: int):
            stream = i % 2 == 0
            body = {"model": MODEL, "messages": [{"role": "user", "content": f"soak {i} [long:{rng.choice((6, 24, 45))}]"}]}
            if stream:
                body.update(stream=True, stream_options={"include_usage": True})
            try:
                async with session.post(bases[i % len(bases)] + "/v1/chat/completions", json=body, headers=headers) as response:
                    data = await response.read()
                    status = response.status
                    if stream and status == 200 and not data.rstrip().endswith(b"data: [DONE]"):
                        status = "truncated"
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            out["statuses"][str(status)] += 1

        tasks, start, i = set(), time.monotonic(), 0
        while not stop.is_set():
            task = asyncio.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
            await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
        await asyncio.gather(*tasks)


def run(harness, minutes: float) -> dict:
    roots = [process.pid for process, _ in harness.gateways]
    samples: list[tuple[float, int, int]] = []  # (seconds from start, summed RSS KiB, processes)
    stop_sampling = threading.Event()
    start = time.monotonic()

    def sample():
        while not stop_sampling.is_set():
            pids = [pid for root in roots for pid in procs.tree(root)]
            samples.append((time.monotonic() - start, procs.total_rss_kib(pids), len(pids)))
            stop_sampling.wait(SAMPLE)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = {"statuses": Counter()}

    async def main():
        stop = asyncio.Event()
        load = asyncio.create_task(_load([base for _, base in harness.gateways], harness.keys["soak"], stop, out))
        await asyncio.sleep(minutes * 60)
        stop.set()
        await load

    try:
        asyncio.run(main())
    finally:
        stop_sampling.set()
        sampler.join(10)
    total = minutes * 60
    ref_a, ref_b = _reference_window(minutes)
    ref = [kib for t, kib, _ in samples if ref_a <= t < ref_b]
    last = [kib for t, kib, _ in samples if t >= total - 60]
    ref_mib = sum(ref) / len(ref) / 1024 if ref else None
    last_mib = sum(last) / len(last) / 1024 if last else None
    growth = (last_mib - ref_mib) / ref_mib if ref_mib and last_mib else None
    statuses = dict(out["statuses"])
    return {"minutes": minutes, "rate": RATE, "requests": sum(statuses.values()), "statuses": statuses,
            "reference_window_s": [round(ref_a), round(ref_b)], "reference_rss_mib": round(ref_mib, 1) if ref_mib else None,
            "last_minute_rss_mib": round(last_mib, 1) if last_mib else None,
            "growth": round(growth, 4) if growth is not None else None,
            "processes": samples[-1][2] if samples else 0,
            "samples_mib": [(round(t), round(kib / 1024, 1)) for t, kib, _ in samples]}
