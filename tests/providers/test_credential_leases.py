"""A credential's concurrency cap shared by every process: two adapters (as two gateway processes
would hold) over one credential with max_concurrency=1, against the emulator, through real Redis."""

import asyncio

from django.conf import settings

from apps.common import redis as shared_redis
from apps.providers.adapters.base import ProviderError
from tests.conftest import need

from .conftest import ledger, user

CHAT = "/v1/chat/completions"


def _max_overlap(entries) -> int:
    events = sorted([(e["ts"], 1) for e in entries] + [(e["ended"], -1) for e in entries])
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


async def test_a_credential_with_one_slot_never_serves_two_requests_at_once_across_processes(make_adapter, controls):
    need("Redis", bool(settings.REDIS_URL))
    first, second = make_adapter("mts", max_concurrency=1), make_adapter("mts", max_concurrency=1)
    controls["mts"].add_fault(path=CHAT, latency_ms=200, share=1)
    calls = [adapter.chat({"messages": [user(f"m{i}")]}, "mws-gpt-alpha")
             for i, adapter in enumerate([first, second, first, second])]
    results = await asyncio.gather(*calls, return_exceptions=True)
    answered = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, ProviderError) and (r.status, r.kind) == (429, "concurrency") for r in refused), refused
    # One lease and, per process, at most one waiter: two requests answered (one after the other), the
    # others refused at once rather than queued.
    assert len(answered) >= 2
    entries = ledger(controls, "mts", CHAT)
    assert len(entries) == len(answered)
    assert _max_overlap(entries) == 1
    controls["mts"].reset()
    # Every lease came back: the next call gets one at once.
    assert (await second.chat({"messages": [user("after")]}, "mws-gpt-alpha")).choices[0]["message"]["content"] == "Echo: after"


async def test_a_lease_is_renewed_while_held_and_given_back(make_adapter, controls):
    need("Redis", bool(settings.REDIS_URL))
    from apps.common import leases

    adapter = make_adapter("mts", max_concurrency=1)
    stream = adapter.stream_chat({"messages": [user("x")], "stream": True}, "mws-gpt-alpha")
    await stream.__anext__()
    key = adapter._slots[0].key
    client = shared_redis.client()
    [(member, expiry)] = await client.zrange(key, 0, -1, withscores=True)
    await leases.renew()
    [(_, renewed)] = await client.zrange(key, 0, -1, withscores=True)
    assert renewed >= expiry
    async for _ in stream:
        pass
    assert await client.zcard(key) == 0
