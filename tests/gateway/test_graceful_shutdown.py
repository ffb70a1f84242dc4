"""Graceful shutdown of a gateway with two workers (`manage.py serve --workers 2`, as deployed): SIGTERM while
SSE streams, slow non-streamed requests and WebSocket streams are open. Every one of them finishes normally
within XROUTER_SHUTDOWN_GRACE, the process exits 0, and each request has exactly one usage row. (The full
battery measures the same with 10 of each kind: `python -m bench.chaos --only shutdown`.)"""

import asyncio
import json
import signal
import time
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import start_gateway, wait_for_usage
from tests.gateway.conftest import _stop_with_children

pytestmark = pytest.mark.timeout(60)

STREAMED = "gigachat/GigaChat-2-Max"  # 150 ms between chunks: its [long] answer takes about 3.5 s
SLOW = "tbank/t-tech/T-lite-it-2.1"  # answered after 3 s
EACH = 3
GRACE = 10  # the streams need about 3.5 s of it


async def _sse(client: httpx.AsyncClient, base: str, key: str, started: asyncio.Event) -> tuple[str, str]:
    body = {"model": STREAMED, "stream": True, "messages": [{"role": "user", "content": "drain [long]"}]}
    ending = "cut"
    async with client.stream("POST", base + "/v1/chat/completions", json=body,
                             headers={"authorization": f"Bearer {key}"}) as response:
        request_id = response.headers["x-request-id"]
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                started.set()
                ending = "done" if line == "data: [DONE]" else ending
    return request_id, ending


async def _http(client: httpx.AsyncClient, base: str, key: str, started: asyncio.Event) -> tuple[str, str]:
    body = {"model": SLOW, "messages": [{"role": "user", "content": "slow"}]}
    started.set()  # sent with the others; the emulator holds it 3 s
    response = await client.post(base + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
    ok = response.status_code == 200 and response.json()["choices"][0]["message"]["content"]
    return response.headers["x-request-id"], "done" if ok else f"http {response.status_code}"


async def _ws(base: str, key: str, started: asyncio.Event) -> tuple[str, str]:
    async with connect(base.replace("http://", "ws://") + "/v1/realtime/chat",
                       additional_headers={"authorization": f"Bearer {key}"}) as ws:
        await ws.send(json.dumps({"type": "request", "model": STREAMED,
                                  "messages": [{"role": "user", "content": "drain over ws [long]"}]}))
        request_id = None
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
            started.set()
            request_id = request_id or frame.get("id", "").removeprefix("chatcmpl-")
            if frame.get("type") in ("done", "error"):
                return request_id, frame["type"]


def test_sigterm_finishes_open_sse_http_and_websocket_requests_and_bills_each_once(gateway, emulator_control,
                                                                                    django_db_blocker):
    from apps.usage.models import UsageRecord

    emulator_control("gigachat", chunk_delay_ms=150, share=1.0)
    emulator_control("tbank", latency_ms=3000, share=1.0)
    env = {**gateway.env, "XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}",
           "XROUTER_SHUTDOWN_GRACE": str(GRACE)}
    process, base = start_gateway(env, args=("--workers", "2"))
    key = gateway.keys["alice"]

    async def through_a_shutdown():
        async with httpx.AsyncClient(timeout=30) as client:
            events = [asyncio.Event() for _ in range(3 * EACH)]
            tasks = [asyncio.create_task(_sse(client, base, key, events[i])) for i in range(EACH)]
            tasks += [asyncio.create_task(_http(client, base, key, events[EACH + i])) for i in range(EACH)]
            tasks += [asyncio.create_task(_ws(base, key, events[2 * EACH + i])) for i in range(EACH)]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 15)
            await asyncio.sleep(0.5)  # the slow requests are at the emulator
            assert not any(t.done() for t in tasks), "a request ended before the signal: the test proves nothing"
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            return results, signalled, time.monotonic() - signalled

    try:
        results, signalled, answered_after = asyncio.run(through_a_shutdown())
        code = process.wait(timeout=40)
        exited_after = time.monotonic() - signalled
    finally:
        _stop_with_children(process)
    assert [r if isinstance(r, BaseException) else r[1] for r in results] == ["done"] * (3 * EACH), results
    assert answered_after < GRACE and code == 0
    # The stop budget: the grace for open streams, then about 15 s to flush usage and stop the writer (lifecycle.py).
    assert exited_after < GRACE + 15, f"exited {exited_after:.1f} s after SIGTERM"
    ids = [request_id for request_id, _ in results]
    for request_id in ids:  # its own usage writer wrote them after the workers flushed, before it exited
        assert wait_for_usage(django_db_blocker, request_id, timeout=20).status == "ok"
    with django_db_blocker.unblock():
        assert UsageRecord.objects.filter(request_id__in=ids).count() == 3 * EACH


def _swallowing(times: int):
    """A background loop that loses its first `times` cancellations, as one caught in Python 3.11's
    asyncio.wait_for at the wrong moment does (CPython gh-86296)."""

    async def loop():
        lost = 0
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if lost >= times:
                    raise
                lost += 1

    return loop()


async def test_stopping_background_tasks_survives_a_lost_cancellation():
    from apps.gateway.lifecycle import stop_tasks

    task = asyncio.create_task(_swallowing(1))
    await asyncio.sleep(0.02)
    task.cancel()  # what the shutdown did before: one cancel, then gather() waited for ever
    done, _ = await asyncio.wait({task}, timeout=0.3)
    assert not done, "the task ended after one cancel: it does not show the problem"
    started = time.monotonic()
    assert await stop_tasks([task]) is True
    assert task.cancelled() and time.monotonic() - started < 1


async def test_a_task_that_never_stops_is_given_up_on_within_the_bound():
    from apps.gateway.lifecycle import stop_tasks

    task = asyncio.create_task(_swallowing(5))
    await asyncio.sleep(0.02)  # in its loop (a task cancelled before its first step just ends)
    started = time.monotonic()
    assert await stop_tasks([task], rounds=3, wait=0.05) is False  # bounded: the worker still exits
    assert time.monotonic() - started < 1
    assert await stop_tasks([task]) is True  # (it gives up after 5: cleaned up here)
