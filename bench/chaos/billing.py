"""Billing under faults: N chat requests (half streamed) through the gateway while the emulators answer with
random faults, the fault proxy cuts, stalls and resets, clients hang up mid-stream, gateway workers and the
usage writer are killed with SIGKILL, and Redis and PostgreSQL are restarted (kill -9 / pg_ctl -m immediate).

The oracle is the emulators' ledger: one entry per upstream attempt, keyed by the id the gateway sent in the
provider's request-id header (`<request id>.<attempt>`). After the usage pipeline drains:
  lost        = a ledger entry without a usage row for its (request id, attempt)
  duplicated  = more than one row for one (request id, attempt)
  mismatched  = a row not marked estimated whose tokens differ from the ledger's (a completed attempt must
                bill exactly what the provider counted; an interrupted one carries estimated=true)
  unbilled    = a request the client got a 200 for without any row.
"""

import asyncio
import random
import threading
import time
from collections import Counter

import httpx

from bench.chaos.harness import Harness, log
from bench.chaos.provision import MODEL

# Queued on the emulators (first that fires wins; `share` is deterministic, see apps/emulators/faults.py).
EMULATOR_FAULTS = [
    {"status": 500, "share": 0.02},
    {"status": 503, "share": 0.02},
    {"status": 429, "retry_after": 1, "share": 0.02},
    {"latency_ms": 1500, "share": 0.02},  # hangs before the headers, then answers
    {"latency_ms": 12000, "share": 0.004},  # hangs past the gateway's read timeout (10 s in the battery)
    {"first_byte_delay_ms": 1500, "share": 0.02},  # headers, then a stall
    {"malformed_chunk_at": 3, "share": 0.02},
    {"no_usage": True, "share": 0.03},  # a final chunk (or answer) without usage
    {"cut_after_chunks": 4, "share": 0.02},
    {"chunk_delay_ms": 40, "share": 0.3},  # slow streams: something is always mid-stream when a worker dies
]
# The proxy's plans, taken in turn every couple of seconds (one at a time: it holds one plan).
PROXY_PLANS = [
    {"reset": True, "share": 0.03},
    {"cut_after_bytes": 900, "share": 0.03},
    {"stall_ms": 1200, "share": 0.03},
    {"latency_ms": 300, "share": 0.05},
    {},
]
DISCONNECT_SHARE = 0.05  # streamed requests whose client reads two events, then hangs up
CLIENT_TIMEOUT = 60.0


class WorkerWatch:
    """Samples the gateway's worker pids; a pid that vanishes without the battery killing it is a death."""

    def __init__(self, harness: Harness, interval: float = 0.5):
        self.harness, self.interval = harness, interval
        self.seen: set[int] = set()
        self.gone: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            now = set(self.harness.worker_pids())
            self.gone |= self.seen - now
            self.seen |= now
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    @property
    def deaths(self) -> int:
        return len(self.gone - set(self.harness.killed))


async def _request(client: httpx.AsyncClient, base: str, key: str, i: int, rng: random.Random, out: dict) -> None:
    stream = i % 2 == 0
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"request {i} [long:{rng.choice((6, 24, 45))}]"}]}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    disconnect = stream and rng.random() < DISCONNECT_SHARE
    headers = {"authorization": f"Bearer {key}"}
    started = time.monotonic()
    try:
        async with client.stream("POST", base + "/v1/chat/completions", json=body, headers=headers) as response:
            out["statuses"][response.status_code] += 1
            request_id = response.headers.get("x-request-id")
            if not stream or response.status_code != 200:
                await response.aread()
                if response.status_code != 200:  # why: the error's code ("config_unavailable", "upstream_error", …)
                    try:
                        code = response.json()["error"].get("code") or response.json()["error"].get("type")
                    except (ValueError, KeyError, TypeError, AttributeError):
                        code = "unreadable"
                    out["refusals"][f"{response.status_code} {code}"] += 1
                if response.status_code == 200:
                    out["ok_ids"].append(request_id)
                return
            out["streams_open"] += 1
            events, ending = 0, "truncated"
            try:
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    events += 1
                    if line == "data: [DONE]":
                        ending = "done"
                    elif '"error"' in line[:40]:
                        ending = "error_event"
                    if disconnect and events >= 2:
                        ending = "client_disconnected"
                        break
            finally:
                out["streams_open"] -= 1
            out["stream_endings"][ending] += 1
            if ending == "done":
                out["ok_ids"].append(request_id)
    except httpx.TimeoutException:
        out["statuses"]["client_timeout"] += 1
    except httpx.TransportError as exc:
        out["statuses"][f"transport:{type(exc).__name__}"] += 1
    finally:
        out["latencies"].append(time.monotonic() - started)
        out["done"] += 1


async def _drive(harness: Harness, total: int, concurrency: int, events: list, seed: int) -> dict:
    rng = random.Random(seed)
    out = {"statuses": Counter(), "refusals": Counter(), "stream_endings": Counter(), "ok_ids": [], "latencies": [], "done": 0,
           "streams_open": 0, "events": []}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    queue = iter(range(total))

    async def worker(client):
        for i in queue:
            await _request(client, harness.base, harness.keys["billing"], i, rng, out)

    async def chaos():
        for fraction, name, action in events:
            while out["done"] < fraction * total:
                await asyncio.sleep(0.05)
            at, streams_open = out["done"], out["streams_open"]
            log(f"billing: {name} at {at}/{total} ({streams_open} streams open)")
            started = time.monotonic()
            detail = await asyncio.to_thread(action)
            out["events"].append({"event": name, "at_request": at, "streams_open": streams_open,
                                  "seconds": round(time.monotonic() - started, 2), "detail": detail})

    async def proxy_cycle(stop: asyncio.Event):
        turn = 0
        while not stop.is_set():
            plan = PROXY_PLANS[turn % len(PROXY_PLANS)]
            await asyncio.to_thread(harness.proxy, "mts", **plan)
            turn += 1
            try:
                await asyncio.wait_for(stop.wait(), 2.0)
            except TimeoutError:
                pass
        await asyncio.to_thread(harness.proxy, "mts")

    stop = asyncio.Event()
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT, limits=limits) as client:
        cycler = asyncio.create_task(proxy_cycle(stop))
        chaos_task = asyncio.create_task(chaos())
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        stop.set()
        await cycler
        await chaos_task
    return out


def run(harness: Harness, total: int, worker_kills: int, writer_kills: int, concurrency: int = 24,
        store_restarts: bool = True, seed: int = 14, drain_timeout: float = 300.0) -> dict:
    harness.clear_ledger("mts")
    harness.faults("mts", EMULATOR_FAULTS)

    def kill_worker():
        return {"pid": harness.kill_worker()}

    def kill_writer():
        return {"pid": harness.kill_writer()}

    events = [((k + 1) / (worker_kills + 1) * 0.9, "worker kill -9", kill_worker) for k in range(worker_kills)]
    events += [(0.3 + 0.1 * k, "writer kill -9", kill_writer) for k in range(writer_kills)]
    if store_restarts:
        events += [(0.55, "Redis kill -9 and restart", lambda: harness.restart_redis() or {}),
                   (0.7, "PostgreSQL pg_ctl -m immediate and restart", lambda: harness.restart_postgres() or {})]
    events.sort(key=lambda e: e[0])
    log(f"billing: {total} requests, {concurrency} at a time, {worker_kills} worker kill(s), {writer_kills} writer kill(s)")
    started = time.monotonic()
    with WorkerWatch(harness) as watch:
        out = asyncio.run(_drive(harness, total, concurrency, events, seed))
        harness.faults("mts", [])
        elapsed = time.monotonic() - started
        log(f"billing: load done in {elapsed:.0f} s; {dict(out['statuses'])}; draining usage")
        figures = _settle(harness, out, drain_timeout)
    deaths = watch.deaths
    lat = sorted(out["latencies"])
    return {
        "requests": total, "concurrency": concurrency, "seconds": round(elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(out["statuses"].items(), key=lambda kv: str(kv[0]))},
        "refusals": dict(out["refusals"].most_common()), "stream_endings": dict(out["stream_endings"]), "events": out["events"],
        "worker_kills": worker_kills, "writer_kills": writer_kills, "worker_deaths": deaths,
        "http_500": out["statuses"].get(500, 0),
        "p50_s": round(lat[len(lat) // 2], 3) if lat else None, "p99_s": round(lat[int(len(lat) * 0.99)], 3) if lat else None,
        **figures,
    }


def _settle(harness: Harness, out: dict, timeout: float) -> dict:
    """Wait until the usage pipeline has drained (or `timeout`), then join the ledger with the rows."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while True:
        backlog = harness.usage_backlog()
        figures = oracle(harness, out["ok_ids"])
        if (not any(backlog.values()) and figures["lost"] == 0 and figures["unbilled"] == 0) or time.monotonic() > deadline:
            break
        time.sleep(2)
    figures["drain_seconds"] = round(time.monotonic() - started, 1)
    figures["backlog_at_end"] = backlog
    return figures


def oracle(harness: Harness, ok_ids: list[str]) -> dict:
    entries = [e for e in harness.ledger("mts") + harness.ledger("tbank")
               if e["path"].endswith("/chat/completions") and e["client_request_id"]]
    keys = {}
    for entry in entries:
        request_id, _, attempt = entry["client_request_id"].rpartition(".")
        keys[(request_id, int(attempt))] = entry
    with harness.db() as conn:
        rows = conn.execute(
            "SELECT request_id, attempt, count(*), sum(prompt_tokens), sum(completion_tokens), bool_and(estimated), "
            "min(status) FROM usage_usagerecord GROUP BY request_id, attempt").fetchall()
    by_key = {(r[0], r[1]): r for r in rows}
    billed = {r[0] for r in rows}
    lost = [k for k in keys if k not in by_key]
    duplicated = [k for k, r in by_key.items() if r[2] > 1]
    mismatched, estimated, statuses = [], 0, Counter()
    for key, entry in keys.items():
        row = by_key.get(key)
        if row is None:
            continue
        statuses[row[6]] += 1
        if row[5]:
            estimated += 1
        elif (row[3], row[4]) != (entry["prompt_tokens"], entry["completion_tokens"]):
            mismatched.append({"key": ".".join(map(str, key)), "row": [row[3], row[4], row[6]],
                               "ledger": [entry["prompt_tokens"], entry["completion_tokens"], entry["status"],
                                          entry["fault"], entry["note"]]})
    unbilled = [i for i in ok_ids if i not in billed]
    completed = sum(1 for e in keys.values() if e["status"] == 200 and e["note"] is None and e["fault"] in (None, "delay"))
    return {"ledger_entries": len(keys), "rows": len(rows), "lost": len(lost), "duplicated": len(duplicated),
            "mismatched": len(mismatched), "estimated_rows": estimated, "unbilled": len(unbilled),
            "completed_in_ledger": completed, "row_statuses": dict(statuses),
            "examples": {"lost": [".".join(map(str, k)) for k in lost[:5]], "mismatched": mismatched[:5],
                         "unbilled": unbilled[:5]}}
