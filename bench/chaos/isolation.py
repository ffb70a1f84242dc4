"""Isolation between tenants: while a noisy tenant (its own organisation, a key limited to 50 requests/s) offers
500 requests/s — ten times its limit — and holds 200 streams it has stopped reading, a quiet tenant of another
organisation on the same gateway process gets no extra errors, and the latency the gateway adds to its requests
(p99) stays within max(+20%, +5 ms) of its solo baseline.

Both tenants use `chaos-shared` (MTS emulator, gpt-4o), which answers after a fixed 50 ms (a queued emulator
fault): the added latency of a quiet request = its round trip minus those 50 ms. The quiet tenant sends 20
requests/s open-loop (aiohttp, kept-alive connections) through the whole run; the noise comes and goes in
phases of 15 s — solo, noisy, solo, noisy, solo, noisy, solo — so that the machine's other work weighs on both
conditions alike. CPU seconds per second by role (machine, gateway process, emulators, load generator) are
recorded for each condition.

The noisy tenant runs in a process of its own (this module's `noisy` command, niced: raw asyncio sockets, no
HTTP library, so that 500 requests/s cost the 2-CPU machine little; its key comes in CHAOS_NOISY_KEY, never on a
command line): it opens 200 streamed requests (`[long:20000]`, on sockets with a 4 KiB receive buffer, paced
within its limit and retried when refused), reads their status line, then never reads again; after SETTLE seconds
(the emulators' catch-up: `_noisy`) it floods 500 requests/s over 32 kept-alive connections; then it closes everything.
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))

from bench import procs  # noqa: E402
from bench.chaos.provision import NOISY_RATE, SHARED_MODEL  # noqa: E402

UPSTREAM_DELAY = 0.050  # the emulator's fixed answer time for `chaos-shared`
QUIET_RATE = 20.0
NOISY_OFFER = 500.0
HELD_STREAMS = 200
PHASE_SECONDS = 15.0
SETTLE = 5.0  # seconds between holding the streams and the flood (_noisy)
CYCLES = 3


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the noisy tenant (its own process) ---

def _request_bytes(host: str, port: int, key: str, body: bytes) -> bytes:
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """One non-streamed answer (Content-Length framed): its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _noisy(host: str, port: int, key: str, seconds: float, offer: float, streams: int) -> dict:
    stream_body = json.dumps({"model": SHARED_MODEL, "stream": True,
                              "messages": [{"role": "user", "content": "hold me [long:20000]"}]}).encode()
    flood_body = json.dumps({"model": SHARED_MODEL, "max_tokens": 5,
                             "messages": [{"role": "user", "content": "flood"}]}).encode()
    held: list[asyncio.StreamWriter] = []
    refused_opening = 0
    deadline = time.monotonic() + 60
    while len(held) < streams and time.monotonic() < deadline:
        # Within the limit (50/s): 40 a second, each a connection of its own; a refused one is retried.
        batch = min(8, streams - len(held))

        async def open_one():
            # A small receive buffer, set before connecting (it caps the window): the gateway meets the
            # stalled reader after a few KiB instead of pouring the whole answer into the socket buffers.
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(_request_bytes(host, port, key, stream_body))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            if head[9:12] == b"200":
                return writer  # and never read again: the gateway's writes back up into the socket buffers
            writer.close()
            return None

        got = await asyncio.gather(*(open_one() for _ in range(batch)), return_exceptions=True)
        for g in got:
            if isinstance(g, asyncio.StreamWriter):
                held.append(g)
            else:
                refused_opening += 1
        await asyncio.sleep(0.2)
    print(json.dumps({"held": len(held)}), flush=True)
    # Let the emulators catch up before the flood. They stand in for providers on other machines, but here they
    # share the 2 CPUs and one process with the quiet tenant's upstream: the held answers' events (one per three
    # words, rendered up front, 85 ms of the emulator's CPU each) and their relay into the loopback buffers keep that
    # process busy for seconds after the last stream is held, and every quiet request waits on it — measured
    # (py-spy): the quiet tenant's slowest requests, 0.6–0.9 s, all fell there, the gateway's loop idle meanwhile.
    await asyncio.sleep(SETTLE)

    statuses: Counter = Counter()
    connections = 32
    interval = connections / offer
    stop_at = time.monotonic() + seconds
    print(json.dumps({"flood": "start"}), flush=True)

    async def flood(i: int):
        reader, writer = await asyncio.open_connection(host, port)
        request = _request_bytes(host, port, key, flood_body)
        next_at = time.monotonic() + i * interval / connections
        try:
            while True:
                now = time.monotonic()
                if now >= stop_at:
                    return
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                next_at += interval
                writer.write(request)
                try:
                    statuses[await asyncio.wait_for(_read_response(reader), 30)] += 1
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
                    statuses[type(exc).__name__] += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(flood(i) for i in range(connections)))
    elapsed = time.monotonic() - started
    print(json.dumps({"flood": "end"}), flush=True)
    for writer in held:
        writer.transport.abort()
    return {"held_streams": len(held), "refused_while_opening": refused_opening, "offered": sum(statuses.values()),
            "offered_per_s": round(sum(statuses.values()) / elapsed, 1), "statuses": {str(k): v for k, v in statuses.items()}}


# --- the quiet tenant and the phases (the battery's process) ---

async def _quiet(base: str, key: str, stop: asyncio.Event, record: list) -> None:
    import aiohttp

    body = {"model": SHARED_MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "quiet"}]}
    headers = {"authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def one():
            started = time.monotonic()
            try:
                async with session.post(base + "/v1/chat/completions", json=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            record.append((started, time.monotonic() - started, status))

        tasks, next_at = set(), time.monotonic()
        while not stop.is_set():
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += 1 / QUIET_RATE
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*tasks)


async def _scenario(harness, phase_seconds: float, cycles: int) -> dict:
    host, port = harness.base.removeprefix("http://").split(":")
    stop, record = asyncio.Event(), []
    quiet = asyncio.create_task(_quiet(harness.base, harness.keys["quiet"], stop, record))
    await asyncio.sleep(3)  # warm: connections made, caches filled
    solo_windows, noisy_windows, opening_windows, noisy_runs = [], [], [], []
    cpu = {"solo": Counter(), "noisy": Counter()}  # CPU seconds by role, summed over each condition's windows
    gateway = harness.gateways[0][0]

    def snapshot(noisy_pid=None):
        roles = {"gateway": procs.tree(gateway.pid), "emulators": procs.tree(harness.upstream.pid),
                 "noisy_client": [noisy_pid] if noisy_pid else [], "battery": [os.getpid()]}
        return time.monotonic(), procs.system_busy_seconds(), {r: procs.cpu_snapshot(p) for r, p in roles.items()}

    def account(condition, before, after):
        cpu[condition]["seconds"] += after[0] - before[0]
        cpu[condition]["machine"] += after[1] - before[1]
        for role in before[2]:
            cpu[condition][role] += procs.cpu_seconds(before[2][role], after[2][role])

    for _ in range(cycles):
        t0 = time.monotonic()
        before = snapshot()
        await asyncio.sleep(phase_seconds)
        account("solo", before, snapshot())
        solo_windows.append((t0, time.monotonic()))
        # The load generator stands for clients on other machines: niced, so that its own CPU weighs less on the
        # 2-CPU machine than the gateway's work for it.
        process = await asyncio.create_subprocess_exec(
            "nice", "-n", "10", sys.executable, "-m", "bench.chaos.isolation", "noisy", "--host", host, "--port", port,
            "--seconds", str(phase_seconds), cwd=ROOT, stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT), "CHAOS_NOISY_KEY": harness.keys["noisy"]})  # not on a command line
        window_start, opening_start = None, time.monotonic()
        lines = []
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), phase_seconds + 120)
            if not line:
                break
            data = json.loads(line)
            lines.append(data)
            if data.get("flood") == "start":
                window_start = time.monotonic()
                opening_windows.append((opening_start, window_start))
                before = snapshot(process.pid)
            elif data.get("flood") == "end":
                account("noisy", before, snapshot(process.pid))
                noisy_windows.append((window_start, time.monotonic()))
        await process.wait()
        noisy_runs.append(lines[-1])
        await asyncio.sleep(2)  # the held streams' connections closed: the gateway lets go of them
    t0 = time.monotonic()
    before = snapshot()
    await asyncio.sleep(phase_seconds)
    account("solo", before, snapshot())
    solo_windows.append((t0, time.monotonic()))
    stop.set()
    await quiet

    def pick(windows):
        return [(lat, st) for t, lat, st in record if any(a <= t < b for a, b in windows)]

    solo, noisy = pick(solo_windows), pick(noisy_windows)

    def summary(samples):
        added = [lat - UPSTREAM_DELAY for lat, st in samples if st == 200]
        p50, p99 = _percentile(added, 0.5), _percentile(added, 0.99)
        return {"requests": len(samples), "errors": sum(st != 200 for _, st in samples),
                "statuses": dict(Counter(str(st) for _, st in samples)),
                "added_p50_ms": round(p50 * 1000, 2) if p50 is not None else None,
                "added_p99_ms": round(p99 * 1000, 2) if p99 is not None else None}

    s, n, o = summary(solo), summary(noisy), summary(pick(opening_windows))
    origin = record[0][0] if record else 0.0
    slowest = sorted(record, key=lambda r: r[1], reverse=True)[:10]
    allowed = max(s["added_p99_ms"] * 1.2, s["added_p99_ms"] + 5) if s["added_p99_ms"] is not None else None
    return {"noisy_rate": NOISY_RATE, "offered_per_s": NOISY_OFFER, "quiet_rate": QUIET_RATE,
            "upstream_delay_ms": UPSTREAM_DELAY * 1000, "solo": s, "noisy": n,
            # While the held streams open and the emulators catch up (not a target: see SETTLE).
            "opening": o, "allowed_p99_ms": round(allowed, 2) if allowed else None,
            "extra_errors": max(0, n["errors"] - s["errors"]), "noisy_runs": noisy_runs,
            # When the slowest quiet requests started and how long they took (s, ms), and the noise's windows (s).
            "slowest_quiet": [(round(t - origin, 2), round(lat * 1000, 1), str(st)) for t, lat, st in slowest],
            "noisy_windows": [(round(a - origin, 2), round(b - origin, 2)) for a, b in noisy_windows],
            # CPU seconds per second of each condition, by role (of the machine's len(sched_getaffinity) CPUs)
            "cpu_per_s": {c: {role: round(v / max(cpu[c]["seconds"], 1e-9), 3) for role, v in cpu[c].items() if role != "seconds"}
                          for c in cpu}}


def run(harness, phase_seconds: float = PHASE_SECONDS, cycles: int = CYCLES) -> dict:
    harness.faults("mts", [{"latency_ms": int(UPSTREAM_DELAY * 1000), "model": "gpt-4o", "share": 1.0}])
    try:
        return asyncio.run(_scenario(harness, phase_seconds, cycles))
    finally:
        harness.faults("mts", [])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["noisy"])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=PHASE_SECONDS)
    parser.add_argument("--offer", type=float, default=NOISY_OFFER)
    parser.add_argument("--streams", type=int, default=HELD_STREAMS)
    args = parser.parse_args()
    import uvloop

    print(json.dumps(uvloop.run(_noisy(args.host, args.port, os.environ["CHAOS_NOISY_KEY"], args.seconds, args.offer, args.streams))), flush=True)


if __name__ == "__main__":
    main()
