"""Graceful shutdown: a gateway process told to stop (SIGTERM to `manage.py serve`, which passes it to its
workers) finishes what it has open — SSE streams, slow non-streamed requests and WebSocket streams — within
XROUTER_SHUTDOWN_GRACE (10 s in the battery), and loses no usage.

N of each kind are opened against the last gateway process (it runs no usage writer: the first process's writer
writes its rows, as in a deployment with a separate writer): streams of `chaos-slow` (MTS emulator, 250 ms
between chunks, about 5 s) that have delivered their first event, and non-streamed requests of `chaos-shared`
that the emulator answers after 5 s. Then SIGTERM. Every one must complete normally (a stream ends with
`[DONE]`, a WebSocket stream with its `done` frame, a request with a 200 and its answer) and have exactly one
usage row, once the pipeline has drained.
"""

import asyncio
import json
import signal
import time
from collections import Counter

from bench.chaos.provision import SHARED_MODEL, SLOW_MODEL

N = 10
CHUNK_DELAY_MS = 250
SLOW_ANSWER_MS = 5000


async def _sse(base: str, key: str, started: asyncio.Event, out: list) -> None:
    import aiohttp

    body = {"model": SLOW_MODEL, "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "drain me [long:60]"}]}
    request_id, ending = None, "cut"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            async with session.post(base + "/v1/chat/completions", json=body,
                                    headers={"authorization": f"Bearer {key}"}) as response:
                request_id = response.headers.get("x-request-id")
                if response.status != 200:
                    ending = f"http {response.status} {_code(await response.read())}"
                else:
                    async for line in response.content:
                        if line.startswith(b"data: "):
                            started.set()
                            if line.strip() == b"data: [DONE]":
                                ending = "done"
                            elif b'"error"' in line[:40]:
                                ending = "error event"
    except Exception as exc:  # noqa: BLE001 — a cut connection is a figure, whatever its exception
        ending = f"cut ({type(exc).__name__})"
    started.set()
    out.append(("sse", request_id, ending))


def _code(body: bytes) -> str:
    """The error's code, for the report (`config_unavailable`, `service_unavailable`, …)."""
    try:
        error = json.loads(body)["error"]
        return str(error.get("code") or error.get("type"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return "unreadable"


async def _http(base: str, key: str, sent: asyncio.Event, out: list) -> None:
    import aiohttp

    body = {"model": SHARED_MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "slow answer"}]}
    request_id, ending = None, "cut"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            request = session.post(base + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
            sent.set()
            async with request as response:
                request_id = response.headers.get("x-request-id")
                data = await response.json(content_type=None)
                ending = "done" if response.status == 200 and data.get("choices") else \
                    f"http {response.status} {_code(json.dumps(data).encode())}"
    except Exception as exc:  # noqa: BLE001
        ending = f"cut ({type(exc).__name__})"
    sent.set()
    out.append(("http", request_id, ending))


async def _ws(base: str, key: str, started: asyncio.Event, out: list) -> None:
    from websockets.asyncio.client import connect

    request_id, ending = None, "cut"
    try:
        async with connect(base.replace("http://", "ws://") + "/v1/realtime/chat", open_timeout=10,
                           additional_headers={"authorization": f"Bearer {key}"}) as ws:
            await ws.send(json.dumps({"type": "request", "model": SLOW_MODEL,
                                      "messages": [{"role": "user", "content": "drain me too [long:60]"}]}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                started.set()
                if request_id is None and frame.get("id"):
                    request_id = frame["id"].removeprefix("chatcmpl-")
                if frame.get("type") == "done":
                    ending = "done"
                    break
                if frame.get("type") == "error":
                    ending = f"error frame {(frame.get('error') or {}).get('code')}"
                    break
    except Exception as exc:  # noqa: BLE001
        ending = f"cut ({type(exc).__name__})"
    started.set()
    out.append(("ws", request_id, ending))


async def _scenario(harness, n: int) -> dict:
    process, base = harness.gateways[-1]
    key = harness.keys["shutdown"]
    out: list = []
    events, tasks = [], []
    for kind in (_sse, _http, _ws):
        for _ in range(n):
            event = asyncio.Event()
            events.append(event)
            tasks.append(asyncio.create_task(kind(base, key, event, out)))
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 30)
    await asyncio.sleep(0.5)  # the non-streamed requests are at the emulator by now (it answers after 5 s)
    open_at_signal = sum(not t.done() for t in tasks)
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    await asyncio.gather(*tasks)
    all_answered = time.monotonic() - signalled
    exit_code = await asyncio.to_thread(_wait, process, 60)
    exit_s = time.monotonic() - signalled
    return {"open_at_signal": open_at_signal, "results": out, "answered_s": round(all_answered, 2),
            "exit_s": round(exit_s, 2), "exit_code": exit_code}


def _wait(process, timeout):
    try:
        return process.wait(timeout=timeout)
    except Exception:  # noqa: BLE001 — still running: reported as None
        return None


def run(harness, n: int = N) -> dict:
    harness.faults("mts", [{"chunk_delay_ms": CHUNK_DELAY_MS, "model": "QwQ-32B", "share": 1.0},
                           {"latency_ms": SLOW_ANSWER_MS, "model": "gpt-4o", "share": 1.0}])
    try:
        r = asyncio.run(_scenario(harness, n))
    finally:
        harness.faults("mts", [])
    ids = [rid for _, rid, _ in r["results"] if rid]
    deadline = time.monotonic() + 90
    while True:  # the rows, once the first process's writer has written what the stopped one left
        with harness.db() as conn:
            rows = conn.execute("SELECT request_id, count(*) FROM usage_usagerecord WHERE api_key_id = %s "
                                "GROUP BY request_id", (harness.keys["shutdown_id"],)).fetchall()
        per_request = dict(rows)
        if (all(per_request.get(i) for i in ids) and not harness.usage_backlog()["stream"]) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    endings = Counter(f"{kind} {ending}" for kind, _, ending in r["results"])
    completed = sum(ending == "done" for _, _, ending in r["results"])
    return {"per_kind": n, "grace_s": float(harness.env.get("XROUTER_SHUTDOWN_GRACE", 30)),
            "open_at_signal": r["open_at_signal"], "completed": completed, "cut": len(r["results"]) - completed,
            "endings": dict(endings), "request_ids": len(ids), "usage_rows": sum(per_request.values()),
            "requests_with_one_row": sum(per_request.get(i) == 1 for i in ids),
            "requests_without_row": sum(not per_request.get(i) for i in ids),
            "answered_s": r["answered_s"], "exit_s": r["exit_s"], "exit_code": r["exit_code"]}
