"""Hostile review of the response cache without Redis (in-process): it was bounded by entry count
only (10,000), so a tenant asking for distinct long deterministic answers (temperature 0) could
make one gateway process hold 10,000 answers of any size — gigabytes — until it ran out of memory."""

import pytest

from apps.gateway import cache

MiB = 1024 * 1024
HELD_AT_MOST = 64 * MiB  # what the fix allows the in-process cache to hold


@pytest.fixture(autouse=True)
def local_cache(settings):
    settings.REDIS_URL = ""  # the in-process cache
    cache._local.clear()
    cache._local_bytes = 0
    yield
    cache._local.clear()
    cache._local_bytes = 0


async def test_the_in_process_cache_holds_a_bounded_number_of_bytes():
    answer = "x" * MiB
    for i in range(100):
        await cache.put(f"{cache.PREFIX}{i}", {"choices": [{"index": 0, "message": {"content": answer}}]}, 300)
    held = sum(len(raw) for _, raw in cache._local.values())
    assert held <= HELD_AT_MOST, f"{held // MiB} MiB held"
    assert await cache.get(f"{cache.PREFIX}99") is not None  # the newest entries stay
    assert cache._local_bytes == held


async def test_an_answer_too_large_for_the_in_process_cache_is_not_kept():
    await cache.put(cache.PREFIX + "huge", {"content": "x" * (cache.MAX_LOCAL_BYTES // 8 + 1)}, 300)
    assert await cache.get(cache.PREFIX + "huge") is None


async def test_an_entry_is_served_until_it_expires():
    await cache.put(cache.PREFIX + "a", {"v": 1}, 300)
    assert await cache.get(cache.PREFIX + "a") == {"v": 1}
    await cache.put(cache.PREFIX + "b", {"v": 2}, 0)
    assert await cache.get(cache.PREFIX + "b") is None
